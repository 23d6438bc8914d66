"""User settings: defaults, a round trip through the file, validation, unknown keys, a corrupt
file, migrations and a file from a newer version."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from desktop.core import settings as settings_module
from desktop.core.paths import get_paths
from desktop.core.settings import (
    SCHEMA_VERSION,
    ModelSettings,
    Settings,
    load_settings,
    save_settings,
    settings_path,
)


def write(doc: object) -> Path:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_defaults_without_a_file(data_home: Path) -> None:
    assert settings_path() == get_paths().settings / "settings.json"
    loaded = load_settings()
    assert loaded == Settings()
    assert loaded.messages == []
    assert (loaded.theme, loaded.download_concurrency, loaded.server_port) == ("system", 2, 4891)
    assert loaded.catalog_url is None and loaded.hub_endpoint is None
    assert loaded.hub_token is None and loaded.models_dir is None
    assert loaded.server_api_key is None and loaded.server_lan is False
    assert loaded.server_cors_origins == [] and loaded.models == {}
    assert not settings_path().exists()  # loading does not write


def test_round_trip(data_home: Path) -> None:
    chosen = Settings(theme="dark", font_size=14, default_model="qwen3-4b",
                      catalog_url="https://example.org/catalog.json",
                      hub_endpoint="https://hf-mirror.example", hub_token="hf_secret",
                      download_concurrency=4, models_dir="/data/models", server_port=8080,
                      server_api_key="key", server_lan=True,
                      server_cors_origins=["http://localhost:3000"],
                      models={"qwen3-4b": ModelSettings(n_ctx=8192, n_threads=4,
                                                        n_gpu_layers=-1, temperature=0.6,
                                                        top_p=0.95, top_k=20, min_p=0.0,
                                                        repeat_penalty=1.1, max_tokens=512,
                                                        chat_template="{{ x }}")})
    save_settings(chosen)
    loaded = load_settings()
    assert loaded == chosen
    assert loaded.messages == []
    doc = json.loads(settings_path().read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["models"]["qwen3-4b"]["n_ctx"] == 8192
    # Only the user may read the file: it can hold a hub token and an API key.
    assert stat.S_IMODE(settings_path().stat().st_mode) == 0o600
    assert [p.name for p in settings_path().parent.iterdir()] == ["settings.json"]


def test_model_settings_helpers() -> None:
    chosen = Settings(models={"m": ModelSettings(n_ctx=2048, temperature=0.2, max_tokens=9)})
    assert chosen.model("m").load_options() == {"n_ctx": 2048}
    assert chosen.model("m").sampling_options() == {"temperature": 0.2, "max_tokens": 9}
    assert chosen.model("other") == ModelSettings()
    assert chosen.model("other").load_options() == {}


def test_bad_values_fall_back_to_defaults_with_a_message(data_home: Path) -> None:
    write({"schema_version": 1, "theme": "purple", "font_size": "12", "server_port": 70000,
           "server_lan": "yes", "server_cors_origins": "http://x", "download_concurrency": 3,
           "download_concurrency_typo": 5, "catalog_url": "ftp://example.org/c.json",
           "hub_token": 12345, "default_model": "gemma-3-1b-it",
           "models": {"good": {"n_ctx": 4096, "temperature": "hot", "top_p": 1.5,
                               "n_threads": True, "min_p": 0.1},
                      "bad": "not an object"}})
    loaded = load_settings()
    assert loaded.theme == "system"
    assert loaded.font_size == 11
    assert loaded.server_port == 4891
    assert loaded.server_lan is False
    assert loaded.server_cors_origins == []
    assert loaded.catalog_url is None
    assert loaded.hub_token is None
    assert loaded.download_concurrency == 3  # good values are kept
    assert loaded.default_model == "gemma-3-1b-it"
    assert loaded.models["good"] == ModelSettings(n_ctx=4096, min_p=0.1)
    assert "bad" not in loaded.models
    text = "\n".join(loaded.messages)
    assert len(loaded.messages) == 11
    assert "'theme' was 'purple'; it must be one of \"system\", \"light\", \"dark\"" in text
    assert "'server_port' was 70000; it must be a whole number from 1 to 65,535" in text
    assert "'temperature' of model 'good' was 'hot'" in text
    assert "model 'bad' are not an object" in text
    assert "12345" not in text  # a secret is never repeated


def test_unknown_keys_are_kept(data_home: Path) -> None:
    write({"schema_version": 1, "theme": "light", "future_setting": {"a": [1, 2]},
           "models": {"m": {"n_ctx": 2048, "future_knob": 3}}})
    loaded = load_settings()
    assert loaded.messages == []
    loaded.font_size = 13
    save_settings(loaded)
    doc = json.loads(settings_path().read_text())
    assert doc["future_setting"] == {"a": [1, 2]}
    assert doc["models"]["m"] == {"n_ctx": 2048, "future_knob": 3}
    assert doc["font_size"] == 13 and doc["theme"] == "light"


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2, 3]", b"\xff\xfe\x00garbage"])
def test_a_corrupt_file_is_kept_aside_and_defaults_used(data_home: Path, content: bytes) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    loaded = load_settings()
    assert loaded == Settings()
    backups = list(path.parent.glob("settings.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == content
    assert not path.exists()
    assert len(loaded.messages) == 1
    assert str(backups[0]) in loaded.messages[0] and "default settings are used" in \
        loaded.messages[0]
    save_settings(loaded)
    assert load_settings().messages == []


def test_migrations_run_in_order(data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def rename_dark_mode(doc: dict) -> dict:
        doc["theme"] = "dark" if doc.pop("dark_mode", False) else "light"
        return doc

    def move_port(doc: dict) -> dict:
        doc["server_port"] = doc.pop("port")
        return doc

    monkeypatch.setattr(settings_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(settings_module, "MIGRATIONS", {1: rename_dark_mode, 2: move_port})
    write({"schema_version": 1, "dark_mode": True, "port": 5000})
    loaded = load_settings()
    assert (loaded.theme, loaded.server_port) == ("dark", 5000)
    assert loaded.extra == {} and loaded.messages == []
    save_settings(loaded)
    assert json.loads(settings_path().read_text())["schema_version"] == 3

    write({"schema_version": 2, "port": 6000, "theme": "light"})  # only the second runs
    assert (load_settings().server_port, load_settings().theme) == (6000, "light")


def test_a_failing_migration_keeps_the_file_aside(data_home: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(settings_module, "MIGRATIONS", {1: lambda doc: doc["missing"]})
    write({"schema_version": 1})
    loaded = load_settings()
    assert loaded == Settings()
    assert "could not be updated to the current format" in loaded.messages[0]


def test_a_file_from_a_newer_version_keeps_its_version(data_home: Path) -> None:
    write({"schema_version": SCHEMA_VERSION + 5, "theme": "dark", "new_thing": 1})
    loaded = load_settings()
    assert loaded.theme == "dark"
    assert "written by a newer NoMoat" in loaded.messages[0]
    save_settings(loaded)
    doc = json.loads(settings_path().read_text())
    assert doc["schema_version"] == SCHEMA_VERSION + 5 and doc["new_thing"] == 1


def test_save_replaces_the_file_atomically(data_home: Path) -> None:
    save_settings(Settings(theme="dark"))
    first = settings_path().stat().st_ino
    save_settings(Settings(theme="light"))
    # A new file was renamed over the old one, never rewritten in place.
    assert settings_path().stat().st_ino != first
    assert load_settings().theme == "light"
    assert sorted(p.name for p in settings_path().parent.iterdir()) == ["settings.json"]


def test_save_to_an_explicit_path(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "s.json"
    save_settings(Settings(font_size=20), target)
    assert load_settings(target).font_size == 20
