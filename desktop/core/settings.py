"""User settings: one typed schema with defaults, a schema version and migrations.

Settings live in ``settings.json`` in the settings folder and are written atomically (a
temporary file, then ``os.replace``), so a crash never leaves half a file. Loading never fails:
a value of the wrong type falls back to its default, and a file that cannot be read is kept
aside as ``settings.json.corrupt-<time>`` while the defaults are used; ``messages`` says what
happened. Keys this version does not know are kept and written back, so settings added by a
newer NoMoat survive a run of an older one.

UI state such as window geometry is not stored here.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from desktop.core.files import write_atomic
from desktop.core.memory import MAX_PARALLEL
from desktop.core.paths import get_paths

SCHEMA_VERSION = 1
FILE_NAME = "settings.json"
THEMES = ("system", "light", "dark")

# MIGRATIONS[n] turns a version-n document into a version n+1 document. Loading applies them
# in order up to SCHEMA_VERSION; add one with every schema change that renames or reshapes.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass
class ModelSettings:
    """How one model is loaded and sampled; None means the model's (or engine's) default."""

    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    parallel: int | None = None  # replies written at once (None: the engine's default)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None
    thinking_budget: int | None = None  # tokens a reasoning model may think (None: no limit)
    chat_template: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def load_options(self) -> dict[str, Any]:
        """The settings that are set and apply when loading, as engine load() keywords."""
        keys = ("n_ctx", "n_threads", "n_gpu_layers", "parallel", "chat_template")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def sampling_options(self) -> dict[str, Any]:
        """The sampling settings that are set, as chat request parameters."""
        keys = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens",
                "thinking_budget")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass
class Settings:
    """Every user setting, with its default."""

    theme: str = "system"
    font_size: int = 11
    default_model: str | None = None
    catalog_url: str | None = None  # None: the bundled catalog only
    hub_endpoint: str | None = None  # None: HF_ENDPOINT, else huggingface_hub's default
    hub_token: str | None = None  # None: HF_TOKEN, else the huggingface login
    download_concurrency: int = 2
    models_dir: str | None = None  # None: the models folder of the data directory
    data_dir: str | None = None  # None: the default data folder (see desktop.core.datafolder)
    data_dir_from: str | None = None  # set while a move of the data folder waits for a start
    server_port: int = 4891
    server_api_key: str | None = None
    server_lan: bool = False
    server_cors_origins: list[str] = field(default_factory=list)
    remote_url: str | None = None  # a server elsewhere the chat can use (the Server page)
    remote_api_key: str | None = None
    tool_rounds: int = 8  # rounds of tool calls one reply may make before it must answer
    docs_embedding_model: str | None = None  # None: the first installed embedding model
    models: dict[str, ModelSettings] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    messages: list[str] = field(default_factory=list, repr=False, compare=False)
    file_version: int = field(default=SCHEMA_VERSION, repr=False, compare=False)

    def model(self, model_id: str) -> ModelSettings:
        """The settings of *model_id* (defaults when it has none yet)."""
        return self.models.get(model_id) or ModelSettings()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, unknown keys included."""
        doc: dict[str, Any] = dict(self.extra)
        doc["schema_version"] = max(SCHEMA_VERSION, self.file_version)
        for spec in fields(self):
            if spec.name in _NOT_STORED:
                continue
            value = getattr(self, spec.name)
            if spec.name == "models":
                value = {mid: _model_dict(ms) for mid, ms in value.items()}
            elif isinstance(value, list):
                value = list(value)
            doc[spec.name] = value
        return doc


_NOT_STORED = {"extra", "messages", "file_version"}
_SECRET = {"hub_token", "server_api_key", "remote_api_key"}  # never repeated in messages


def _model_dict(settings: ModelSettings) -> dict[str, Any]:
    doc = dict(settings.extra)
    for spec in fields(settings):
        if spec.name != "extra" and getattr(settings, spec.name) is not None:
            doc[spec.name] = getattr(settings, spec.name)
    return doc


# -- validation ----------------------------------------------------------------------------------
# Each check returns the value to keep, or raises ValueError with what a good value looks like.

def _int(low: int, high: int, optional: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"a whole number from {low} to {high:,}")
        return value
    return check


def _float(low: float, high: float, optional: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not low <= value <= high):
            raise ValueError(f"a number from {low:g} to {high:g}")
        return float(value)
    return check


def _text(optional: bool = True) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a text" + (" or null" if optional else ""))
        return value
    return check


def _url(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError("an http:// or https:// address, or null")
    return value


def _choice(*options: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in options:
            raise ValueError("one of " + ", ".join(f'"{o}"' for o in options))
        return value
    return check


def _bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


def _text_list(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("a list of texts")
    return list(value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "theme": _choice(*THEMES),
    "font_size": _int(6, 72),
    "default_model": _text(),
    "catalog_url": _url,
    "hub_endpoint": _url,
    "hub_token": _text(),
    "download_concurrency": _int(1, 16),
    "models_dir": _text(),
    "data_dir": _text(),
    "data_dir_from": _text(),
    "server_port": _int(1, 65535),
    "server_api_key": _text(),
    "server_lan": _bool,
    "server_cors_origins": _text_list,
    "remote_url": _url,
    "remote_api_key": _text(),
    "tool_rounds": _int(1, 100),
    "docs_embedding_model": _text(),
}

_MODEL_CHECKS: dict[str, Callable[[Any], Any]] = {
    "n_ctx": _int(16, 10_000_000, optional=True),
    "n_threads": _int(1, 1024, optional=True),
    "n_gpu_layers": _int(-1, 100_000, optional=True),
    "parallel": _int(1, MAX_PARALLEL, optional=True),
    "temperature": _float(0.0, 5.0, optional=True),
    "top_p": _float(0.0, 1.0, optional=True),
    "top_k": _int(0, 100_000, optional=True),
    "min_p": _float(0.0, 1.0, optional=True),
    "repeat_penalty": _float(0.01, 5.0, optional=True),
    "max_tokens": _int(1, 10_000_000, optional=True),
    "thinking_budget": _int(1, 1_000_000, optional=True),
    "chat_template": _text(),
}


def _model_settings(model_id: str, raw: Any, messages: list[str]) -> ModelSettings | None:
    if not isinstance(raw, dict):
        messages.append(f"The settings for model '{model_id}' are not an object; they were "
                        "reset.")
        return None
    values, extra = _checked(raw, _MODEL_CHECKS, messages,
                             lambda key, value: f"of model '{model_id}' was {value!r}")
    return ModelSettings(**values, extra=extra)


def _checked(raw: dict[str, Any], checks: dict[str, Callable[[Any], Any]], messages: list[str],
             describe: Callable[[str, Any], str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values *checks* accept, and the keys it does not know (kept as they are).

    A value that fails its check is left out (so the default applies) with a message;
    *describe* says what the bad value was without repeating secrets.
    """
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        check = checks.get(key)
        if check is None:
            extra[key] = value
            continue
        try:
            values[key] = check(value)
        except (TypeError, ValueError) as exc:
            messages.append(f"The setting '{key}' {describe(key, value)}; it must be {exc}, so "
                            "the default is used.")
    return values, extra


def from_dict(doc: dict[str, Any]) -> Settings:
    """Settings from a document of the current schema; bad values become defaults."""
    messages: list[str] = []
    plain = {key: value for key, value in doc.items()
             if key not in ("schema_version", "models")}
    values, extra = _checked(plain, _CHECKS, messages, lambda key, value: (
        "was not valid" if key in _SECRET else f"was {value!r}"))
    if "models" in doc:
        if isinstance(doc["models"], dict):
            models = {}
            for model_id, raw in doc["models"].items():
                parsed = _model_settings(model_id, raw, messages)
                if parsed is not None:
                    models[model_id] = parsed
            values["models"] = models
        else:
            messages.append("The per-model settings are not an object; they were reset.")
    settings = Settings(**values, extra=extra)
    settings.messages = messages
    return settings


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    """Bring a document up to SCHEMA_VERSION with MIGRATIONS (newer documents are kept)."""
    version = doc.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        version = 1
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](dict(doc))
        version += 1
        doc["schema_version"] = version
    return doc


# -- the file -----------------------------------------------------------------------------------

def settings_path() -> Path:
    """Where the settings file is."""
    return get_paths().settings / FILE_NAME


def load_settings(path: Path | None = None) -> Settings:
    """The saved settings, or the defaults; never raises for a bad or missing file."""
    path = path or settings_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        settings = Settings()
        settings.messages.append(f"The settings file {path} cannot be read "
                                 f"({exc.strerror or exc}); the defaults are used.")
        return settings
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return _set_aside(path, str(exc))
    if not isinstance(doc, dict):
        return _set_aside(path, "it is not a JSON object")
    file_version = doc.get("schema_version")
    try:
        doc = migrate(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A migration that trips on odd data must not stop the app.
        return _set_aside(path, f"it could not be updated to the current format: {exc}")
    settings = from_dict(doc)
    if isinstance(file_version, int) and not isinstance(file_version, bool) \
            and file_version > SCHEMA_VERSION:
        settings.file_version = file_version
        settings.messages.append(f"The settings file was written by a newer NoMoat (format "
                                 f"{file_version}); settings this version does not know are "
                                 "kept unchanged.")
    return settings


def _set_aside(path: Path, reason: str) -> Settings:
    backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    settings = Settings()
    try:
        os.replace(path, backup)
        where = f"it was kept as {backup}"
    except OSError:
        where = "it was left in place"
    settings.messages.append(f"The settings file {path} could not be read ({reason}); {where} "
                             "and the default settings are used.")
    return settings


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write *settings* atomically; the file is readable by the user only (it may hold keys)."""
    path = path or settings_path()
    data = json.dumps(settings.to_dict(), indent=2, sort_keys=True).encode("utf-8") + b"\n"
    write_atomic(path, data, private=True)
