"""Named adapter stacks ("pirate 0.8 + sql 0.5"), kept in one JSON file beside the adapters.

A preset names adapters from the library with a scale and an on/off switch each. The API
offers every preset as a model, ``<base model id>+<preset name>``, so preset names keep to
characters that read well in a model id.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.paths import get_paths

PRESETS_FILE = "presets.json"
SCHEMA_VERSION = 1
MAX_SCALE = 100.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")


class PresetError(ValueError):
    """A preset cannot be saved or read; the message says why and what to do."""


@dataclass(frozen=True)
class StackEntry:
    """One adapter in a stack: its library name, its scale, and whether it is on."""

    name: str
    scale: float = 1.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise PresetError("Every adapter in a stack needs a name.")
        if not math.isfinite(self.scale) or abs(self.scale) > MAX_SCALE:
            raise PresetError(f"The scale of '{self.name}' must be a number between "
                              f"-{MAX_SCALE:g} and {MAX_SCALE:g}.")

    @property
    def active(self) -> bool:
        """Whether this entry changes the model: switched on with a scale other than 0."""
        return self.enabled and self.scale != 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scale": self.scale, "enabled": self.enabled}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackEntry:
        try:
            return cls(name=str(data["name"]), scale=float(data.get("scale", 1.0)),
                       enabled=bool(data.get("enabled", True)))
        except (KeyError, TypeError, ValueError) as exc:
            raise PresetError(f"A stack entry is not valid: {data!r}.") from exc


def check_preset_name(name: str) -> str:
    """Return *name* stripped, or raise :class:`PresetError` if it cannot name a preset."""
    clean = name.strip()
    if not _NAME.fullmatch(clean):
        raise PresetError(f"'{name}' cannot name a preset: use up to 64 letters, digits, "
                          "spaces, dots, dashes or underscores, starting with a letter or "
                          "digit.")
    return clean


@dataclass(frozen=True)
class Preset:
    """A saved adapter stack, optionally tied to the base model it was made for."""

    name: str
    entries: tuple[StackEntry, ...] = field(default_factory=tuple)
    base_model: str | None = None

    def describe(self) -> str:
        """The active adapters in words, as the chat header shows them."""
        active = [f"{e.name} {e.scale:g}" for e in self.entries if e.active]
        return " + ".join(active) or "no adapters"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "base_model": self.base_model,
                "entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        entries = data.get("entries") or []
        if not isinstance(entries, list):
            raise PresetError(f"Preset {data.get('name')!r} has no list of adapters.")
        base = data.get("base_model")
        return cls(name=check_preset_name(str(data.get("name", ""))),
                   entries=tuple(StackEntry.from_dict(e) for e in entries),
                   base_model=str(base) if base else None)


class PresetStore:
    """Presets in ``presets.json`` in the adapters folder, written whole on every change."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else get_paths().adapters / PRESETS_FILE

    def presets(self) -> list[Preset]:
        """Every saved preset, in the order they were first saved."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise PresetError(f"The presets file {self.path} cannot be read ({exc}). Move it "
                              "away to start again.") from exc
        items = data.get("presets") if isinstance(data, dict) else None
        return [Preset.from_dict(item) for item in items or [] if isinstance(item, dict)]

    def get(self, name: str) -> Preset | None:
        for preset in self.presets():
            if preset.name == name:
                return preset
        return None

    def save(self, preset: Preset) -> Preset:
        """Save *preset*, replacing the one with the same name."""
        preset = Preset(check_preset_name(preset.name), tuple(preset.entries),
                        preset.base_model)
        presets = self.presets()
        for index, existing in enumerate(presets):
            if existing.name == preset.name:
                presets[index] = preset
                break
        else:
            presets.append(preset)
        self._write(presets)
        return preset

    def rename(self, name: str, new_name: str) -> Preset:
        new_name = check_preset_name(new_name)
        presets = self.presets()
        if new_name != name and any(p.name == new_name for p in presets):
            raise PresetError(f"A preset called '{new_name}' already exists.")
        for index, existing in enumerate(presets):
            if existing.name == name:
                presets[index] = Preset(new_name, existing.entries, existing.base_model)
                self._write(presets)
                return presets[index]
        raise PresetError(f"There is no preset called '{name}'.")

    def delete(self, name: str) -> None:
        presets = self.presets()
        kept = [p for p in presets if p.name != name]
        if len(kept) == len(presets):
            raise PresetError(f"There is no preset called '{name}'.")
        self._write(kept)

    def _write(self, presets: list[Preset]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"schema_version": SCHEMA_VERSION,
                           "presets": [p.to_dict() for p in presets]}, indent=2,
                          ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(prefix=".presets-", suffix=".json", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, self.path)
