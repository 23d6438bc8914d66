"""Every directory comes from platformdirs unless NOMOAT_HOME / --data-dir moves them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core import paths


def test_nomoat_home_moves_every_directory(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path))
    found = paths.get_paths().ensure()
    for folder in (found.models, found.adapters, found.chats, found.settings, found.logs,
                   found.cache):
        assert folder.is_dir()
        assert tmp_path in folder.parents


def test_platform_defaults_without_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOMOAT_HOME", raising=False)
    found = paths.get_paths()
    assert "NoMoat" in str(found.models)
    assert found.models != found.cache


def test_set_home_resolves_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOMOAT_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    paths.set_home("relative")
    assert paths.get_paths().models == tmp_path / "relative" / "models"
