"""Every directory NoMoat reads or writes.

By default the directories come from platformdirs. Setting NOMOAT_HOME (or passing
``--data-dir``, which sets it for this process and its engine) puts all of them under one
folder, which is what tests and portable installs use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "NoMoat"
ENV_HOME = "NOMOAT_HOME"


@dataclass(frozen=True)
class Paths:
    """The resolved directories; create them with :meth:`ensure`."""

    models: Path
    adapters: Path
    chats: Path
    settings: Path
    logs: Path
    cache: Path

    def ensure(self) -> "Paths":
        for folder in (self.models, self.adapters, self.chats, self.settings, self.logs,
                       self.cache):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def set_home(folder: str | os.PathLike[str]) -> None:
    """Point every directory under *folder* for this process and the processes it starts."""
    os.environ[ENV_HOME] = str(Path(folder).expanduser().resolve())


def get_paths() -> Paths:
    """The directories in force now (NOMOAT_HOME wins over the platform defaults)."""
    home = os.environ.get(ENV_HOME)
    if home:
        root = Path(home).expanduser()
        return Paths(
            models=root / "models",
            adapters=root / "adapters",
            chats=root / "chats",
            settings=root / "settings",
            logs=root / "logs",
            cache=root / "cache",
        )
    data = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return Paths(
        models=data / "models",
        adapters=data / "adapters",
        chats=data / "chats",
        settings=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        logs=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
        cache=Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
    )
