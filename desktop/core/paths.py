"""Every directory NoMoat reads or writes.

By default the directories come from platformdirs. Setting NOMOAT_HOME (or passing
``--data-dir``, which sets it for this process and its engine) puts all of them under one
folder, which is what tests and portable installs use. NOMOAT_DATA moves only the user's data
(models, adapters, conversations) elsewhere; it is how the data folder chosen in the settings
reaches this process and its engine (see desktop.core.datafolder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "NoMoat"
ENV_HOME = "NOMOAT_HOME"
ENV_DATA = "NOMOAT_DATA"


@dataclass(frozen=True)
class Paths:
    """The resolved directories; create them with :meth:`ensure`."""

    models: Path
    adapters: Path
    chats: Path
    settings: Path
    logs: Path
    cache: Path

    @property
    def data(self) -> Path:
        """The data folder: models, adapters and conversations are in it."""
        return self.models.parent

    def ensure(self) -> "Paths":
        for folder in (self.models, self.adapters, self.chats, self.settings, self.logs,
                       self.cache):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def set_home(folder: str | os.PathLike[str]) -> None:
    """Point every directory under *folder* for this process and the processes it starts."""
    os.environ[ENV_HOME] = str(Path(folder).expanduser().resolve())


def set_data_folder(folder: str | os.PathLike[str]) -> None:
    """Keep models, adapters and conversations in *folder*, for this process and the processes
    it starts (settings, logs and the cache stay where they are)."""
    os.environ[ENV_DATA] = str(Path(folder).expanduser().resolve())


def default_data_folder() -> Path:
    """The data folder when none is chosen: under NOMOAT_HOME, else the platform's."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def get_paths() -> Paths:
    """The directories in force now (NOMOAT_HOME wins over the platform defaults, and
    NOMOAT_DATA over both for the data folder)."""
    chosen = os.environ.get(ENV_DATA)
    data = Path(chosen).expanduser() if chosen else default_data_folder()
    home = os.environ.get(ENV_HOME)
    if home:
        root = Path(home).expanduser()
        settings, logs, cache = root / "settings", root / "logs", root / "cache"
    else:
        settings = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
        logs = Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
        cache = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    return Paths(models=data / "models", adapters=data / "adapters", chats=data / "chats",
                 settings=settings, logs=logs, cache=cache)
