"""Choosing where the user's data lives, and moving it there.

The data folder holds conversations, LoRA adapters and their presets, the registry of models
used in place, and (unless the Models folder setting says otherwise) the models. The user picks
another one in the settings; nothing moves while NoMoat runs, because the conversations
database and the adapters are open then. The choice is written to the settings
(``data_dir``, with ``data_dir_from`` naming the folder in use), and the next start copies the
data across before anything opens it, then uses the new folder. The old folder is left as it
was, and the models stay in it: they can be many gigabytes, and the Models folder setting is
pointed at them so they remain installed.

A copy that fails leaves NoMoat on the old folder with everything in it, and says why.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from desktop.core.chats import DATABASE_NAME
from desktop.core.library import REGISTRY_FILE
from desktop.core.paths import ENV_DATA, default_data_folder, get_paths, set_data_folder
from desktop.core.settings import Settings, load_settings, save_settings

# What marks a folder as NoMoat data (a folder holding it is used as it is, not filled).
_MARKS = ("chats", "adapters", REGISTRY_FILE)
SUBFOLDER = "NoMoat"  # made inside a chosen folder that already holds other files


class DataFolderError(Exception):
    """The chosen folder cannot hold NoMoat's data; the message says why, for the user."""


def is_data_folder(folder: Path) -> bool:
    """Whether *folder* already holds NoMoat data."""
    return any((folder / mark).exists() for mark in _MARKS)


def plan_move(chosen: str | os.PathLike[str], current: Path | None = None) -> Path:
    """The folder the data goes to, from the one the user chose; raise DataFolderError with the
    reason if it will not do.

    An empty or new folder takes the data; a folder with NoMoat data in it is used as it is;
    a folder with other files in it gets a NoMoat folder inside it.
    """
    current = (current or get_paths().data).expanduser().resolve()
    folder = Path(chosen).expanduser()
    if not folder.is_absolute():
        raise DataFolderError("Give the whole path of the folder, such as /home/me/NoMoat.")
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise DataFolderError(f"{folder} is a file, not a folder.")
    if folder != current and folder.is_relative_to(current):
        raise DataFolderError(f"{folder} is inside the data folder in use now; choose a folder "
                              "outside it.")
    if folder.is_dir() and not is_data_folder(folder) and any(folder.iterdir()):
        folder = folder / SUBFOLDER
    if folder == current:
        raise DataFolderError(f"NoMoat already keeps its data in {folder}.")
    if not is_data_folder(folder):
        if folder.exists() and any(folder.iterdir()):
            raise DataFolderError(f"{folder} already has other files in it; choose an empty "
                                  "folder.")
        parent = next(p for p in (folder, *folder.parents) if p.exists())
        if not os.access(parent, os.W_OK | os.X_OK):
            raise DataFolderError(f"NoMoat may not write to {parent}; choose a folder of yours.")
    return folder


def choose(settings: Settings, folder: Path, current: Path | None = None) -> None:
    """Set *settings* to move the data to *folder* (from plan_move) at the next start (not
    saved here)."""
    current = (current or get_paths().data).expanduser().resolve()
    settings.data_dir = None if folder == default_data_folder().resolve() else str(folder)
    settings.data_dir_from = str(current)


def cancel(settings: Settings) -> None:
    """Forget a move that has not happened yet: the folder in use stays (not saved here)."""
    if settings.data_dir_from is None:
        return
    current = Path(settings.data_dir_from)
    settings.data_dir = None if current == default_data_folder().resolve() else str(current)
    settings.data_dir_from = None


def pending(settings: Settings) -> Path | None:
    """The folder the data moves to at the next start, if a move waits."""
    if settings.data_dir_from is None:
        return None
    return Path(settings.data_dir) if settings.data_dir else default_data_folder()


def copy_data(source: Path, target: Path) -> None:
    """Copy NoMoat's data (not the models) from *source* into *target*; keep what *target* has.

    SQLite databases are copied with SQLite's own backup, which gives a whole, consistent
    copy even of a database that was not closed cleanly. Raises OSError or sqlite3.Error.
    """
    target.mkdir(parents=True, exist_ok=True)
    chats = source / "chats"
    if chats.is_dir():
        (target / "chats").mkdir(exist_ok=True)
        for path in chats.iterdir():
            copy = target / "chats" / path.name
            if path.name.endswith(("-wal", "-shm", "-journal")) or copy.exists():
                continue
            if path.suffix == ".sqlite3":
                _copy_database(path, copy)
            elif path.is_file():
                shutil.copy2(path, copy)
    if (source / "adapters").is_dir():
        shutil.copytree(source / "adapters", target / "adapters", dirs_exist_ok=True,
                        copy_function=_copy_new)
    if (source / REGISTRY_FILE).is_file():
        _copy_new(str(source / REGISTRY_FILE), str(target / REGISTRY_FILE))


def _copy_new(source: str, target: str) -> str:
    """Copy a file unless the target has one of that name already."""
    if not os.path.exists(target):
        shutil.copy2(source, target)
    return target


def _copy_database(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".moving")
    partial.unlink(missing_ok=True)
    try:
        with closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)) as reader, \
                closing(sqlite3.connect(partial)) as writer:
            reader.backup(writer)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def move_waiting() -> Path | None:
    """The folder this start moves the data to, if a move waits (see open_data_folder)."""
    if os.environ.get(ENV_DATA):
        return None
    return pending(load_settings())


def open_data_folder() -> list[str]:
    """At start-up: finish a move of the data folder that waits, and use the chosen folder for
    this process and the processes it starts. Returns what the user should be told.

    An explicit NOMOAT_DATA in the environment wins over the settings.
    """
    if os.environ.get(ENV_DATA):
        return []
    settings = load_settings()
    target = pending(settings)
    messages: list[str] = []
    if target is not None and settings.data_dir_from is not None:
        messages.append(_finish_move(settings, Path(settings.data_dir_from), target))
        try:
            save_settings(settings)
        except OSError as exc:
            messages.append(f"The settings could not be saved ({exc.strerror or exc}), so "
                            "this is done again at the next start.")
    if settings.data_dir and Path(settings.data_dir).is_dir():
        set_data_folder(settings.data_dir)
    elif settings.data_dir:
        # Not made anew: it may be on a disk that is not connected, and a new empty folder
        # in its place would look like every conversation was lost.
        messages.append(f"The data folder {settings.data_dir} cannot be found. If it is on a "
                        "disk that is not connected, connect it and start NoMoat again; until "
                        f"then NoMoat uses {default_data_folder()}.")
    return messages


def _finish_move(settings: Settings, source: Path, target: Path) -> str:
    """Copy the data (copies are whole or absent, so an interrupted move is finished by the
    next start) and set *settings* to use *target*, or to stay on *source* if it fails."""
    had_conversations = (target / "chats" / DATABASE_NAME).exists()
    had_models = (target / "models").exists()
    try:
        copy_data(source, target)
    except (OSError, sqlite3.Error) as exc:
        cancel(settings)
        return (f"Your data could not be moved to {target} "
                f"({getattr(exc, 'strerror', None) or exc}). NoMoat goes on using {source}, "
                "with everything in it.")
    settings.data_dir_from = None
    if had_conversations:
        said = (f"NoMoat now uses the conversations and adapters in {target}. Those in "
                f"{source} were left there.")
    else:
        said = (f"NoMoat now keeps your conversations and adapters in {target}. The old "
                f"folder, {source}, was left as it was.")
    if settings.models_dir is None and not had_models and (source / "models").is_dir():
        settings.models_dir = str(source / "models")
        said += (f" Your models stay in {settings.models_dir} (see the Models folder "
                 "setting).")
    return said
