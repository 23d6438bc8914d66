"""LoRA training: teach a model from the user's own examples, on this computer.

The parent side (this package's plain modules: data, settings, estimate, models, job) needs
nothing beyond NoMoat's own dependencies, so the window and the terminal import it freely.
torch, transformers and peft are imported only by the processes the parent starts: the
trainer (``python -m desktop.train.worker``) and the data preview
(``python -m desktop.train.preview``). They come with the optional ``train`` extra; without it
the app works as before and :func:`missing_extra` says in one line how to add it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

#: The packages of the ``train`` extra that the trainer imports.
EXTRA_MODULES = ("torch", "transformers", "peft")
INSTALL_HINT = ('pip install "nomoat[train]" (in a NoMoat checkout: '
                '.venv/bin/pip install -e ".[train]")')


class TrainError(Exception):
    """Training cannot start or go on; the message says why and what to do."""


def missing_extra() -> str | None:
    """None when training can run here, else one line that says how to make it possible."""
    if getattr(sys, "frozen", False):
        return ("This build of NoMoat cannot train adapters: training needs the Python "
                f"packages torch, transformers and peft. Install NoMoat with them: {INSTALL_HINT}.")
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"Training needs the optional packages {', '.join(missing)}, which are not "
            f"installed. Add them with: {INSTALL_HINT}.")


def import_extra(name: str) -> ModuleType:
    """Import a module of the train extra (``torch``, ``transformers.utils``, ``peft``, ...).

    By name, not with an import statement: the installers' module scan follows every import
    statement it finds, and would pack a gigabyte the frozen app never uses (it does not train).
    """
    return importlib.import_module(name)


def require_extra() -> None:
    """Raise :class:`TrainError` with :func:`missing_extra`'s line when training cannot run."""
    problem = missing_extra()
    if problem:
        raise TrainError(problem)
