"""Adding models to the library (imported by copy, or registered where they are) and taking
them out of it; what the library holds is listed by :mod:`desktop.core.library`."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from desktop.core.library import (
    InstalledModel,
    LibraryError,
    UnknownModel,
    describe_files,
    find_model,
    installed_models,
    load_registry,
    models_folder,
    record_checksum,
    save_registry,
    shard_files,
)
from desktop.core.settings import load_settings

COPY_MARGIN = 64 * 1024 * 1024  # free space to leave on the disk when importing by copy
def _format_size(value: int) -> str:
    return f"{value / 1024**3:.1f} GB" if value >= 1024**3 else f"{value / 1024**2:.0f} MB"


def import_model(source: str | os.PathLike[str], *, copy: bool = True,
                 on_progress: Callable[[int, int], None] | None = None,
                 space_margin: int = COPY_MARGIN) -> InstalledModel:
    """Add a local GGUF model to the library and return it.

    With *copy*, the file (every shard of a split model) is copied into the models folder
    under a temporary name and renamed when complete; otherwise it is registered where it is.
    The header is checked first: a damaged file, a LoRA adapter or a missing shard is refused
    with :class:`LibraryError`. *on_progress* gets (bytes copied, bytes in all). A copy needs
    the files' size plus *space_margin* bytes free on the models folder's disk.
    """
    given = Path(source).expanduser()
    if not given.exists():
        raise LibraryError(f"{given} does not exist.")
    src = given.resolve()
    if not src.is_file():
        raise LibraryError(f"{src} is not a file.")
    if not src.name.lower().endswith(".gguf"):
        raise LibraryError(f"{src.name} is not a .gguf file. NoMoat runs GGUF models; other "
                           "formats must be converted with llama.cpp's tools first.")
    files = shard_files(src)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise LibraryError(f"{src.name} is part of a model split into {len(files)} files, "
                           f"but {missing[0].name} is not next to it. Put every part in the "
                           "same folder and import again.")
    info, problem, _ = describe_files(files)
    if problem is not None:
        raise LibraryError(f"{problem} It was not imported.")
    assert info is not None

    settings = load_settings()
    folder = models_folder(settings)
    models = installed_models()
    resolved = {str(f.resolve()) for m in models for f in m.files if f.exists()}
    if str(files[0]) in resolved:
        already = find_model(str(files[0]), models)
        raise LibraryError(f"{src.name} is already in the library"
                           + (f" as '{already.id}'." if already else "."))
    if copy:
        path = _copy_into(files, folder, on_progress, space_margin)
    else:
        doc = load_registry()
        doc["registered"].append(str(files[0]))
        save_registry(doc)
        path = files[0]
    model = find_model(str(path))
    if model is None:  # the models folder setting changed under us
        raise LibraryError(f"{path} was imported but is not in the library; check the models "
                           "folder setting.")
    return model


def _copy_into(files: list[Path], folder: Path, on_progress: Callable[[int, int], None] | None,
               margin: int) -> Path:
    """Copy *files* into *folder* under temporary names, verify the size, then rename."""
    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder / f.name for f in files]
    for target in targets:
        if target.exists():
            raise LibraryError(f"The models folder already has a file called {target.name}. "
                               "Remove that model first, or rename the file to import.")
    total = sum(f.stat().st_size for f in files)
    free = shutil.disk_usage(folder).free
    if free < total + margin:
        raise LibraryError(f"Copying needs {_format_size(total + margin)} of free space in "
                           f"{folder}, but only {_format_size(free)} is free. Free some space, "
                           "or import the file where it is without copying.")
    done = 0
    placed: list[Path] = []
    temps: list[Path] = []
    digests: list[str] = []
    try:
        for src, target in zip(files, targets):
            temp = target.with_name(f".{target.name}.importing")
            temps.append(temp)
            digest = hashlib.sha256()
            with src.open("rb") as reader, temp.open("wb") as writer:
                while chunk := reader.read(4 * 1024 * 1024):
                    writer.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
                writer.flush()
                os.fsync(writer.fileno())
            if temp.stat().st_size != src.stat().st_size:
                raise LibraryError(f"{src.name} changed while it was being copied; import it "
                                   "again.")
            digests.append(digest.hexdigest())
        for temp, target in zip(temps, targets):
            os.replace(temp, target)
            placed.append(target)
    except OSError as exc:
        for leftover in temps + placed:
            leftover.unlink(missing_ok=True)
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise LibraryError(f"Copying into {folder} failed: {reason}. Nothing was added.") \
            from exc
    except BaseException:
        for leftover in temps + placed:
            leftover.unlink(missing_ok=True)
        raise
    for target, hexdigest in zip(targets, digests):
        record_checksum(target, hexdigest)
    return targets[0]


def remove_model(ref: str | os.PathLike[str]) -> InstalledModel:
    """Remove a model from the library and return what was removed.

    A model in the models folder is deleted (every shard); a registered one is only
    forgotten, and its file is left where it is. The bundled starter model cannot be removed.
    """
    models = installed_models()
    model = find_model(ref, models)
    if model is None:
        known = ", ".join(m.id for m in models) or "none"
        raise UnknownModel(f"No installed model is called '{os.fspath(ref)}'. Installed: "
                           f"{known}.")
    if model.bundled:
        raise LibraryError(f"{model.name} is the starter model that comes with NoMoat; it "
                           "cannot be removed.")
    doc = load_registry()
    if model.registered:
        doc["registered"] = [p for p in doc["registered"] if p != str(model.path)]
        save_registry(doc)
        return model
    for file in model.files:
        try:
            file.unlink(missing_ok=True)
        except OSError as exc:
            raise LibraryError(f"{file.name} could not be deleted ({exc.strerror or exc}). "
                               "If the model is loaded, unload it and try again.") from exc
        doc["checksums"].pop(str(file), None)
    save_registry(doc)
    _prune(model.path.parent, models_folder())
    return model


def _prune(folder: Path, root: Path) -> None:
    """Remove folders left empty between *folder* and *root* (downloads make owner/repo)."""
    try:
        folder.relative_to(root)
    except ValueError:
        return
    while folder != root:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty, or not ours to remove
        folder = folder.parent
