"""A training job's folder: its settings, data, checkpoint, events and the lock its worker holds.

Each job lives in ``<data folder>/training/<name>/``:

- ``job.json``: the settings and the data set's name and size (written once, at the start);
- ``data.jsonl``: the examples, copied, so a resumed run learns from exactly the same data
  even if the original file changed;
- ``checkpoint.pt`` (+ ``checkpoint.json``, its step, readable without torch): the adapter,
  the optimizer, the step and the random state, replaced atomically every interval;
- ``events.jsonl``: every event the worker reported, for the loss curve after a restart;
- ``adapter/``: the finished PEFT adapter; ``worker.log``: the worker's own messages;
- ``worker.lock``: held (an OS file lock) while a worker runs, so a job runs once at a time;
  the lock goes with the process however it ends, even killed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from desktop.core.files import write_atomic
from desktop.core.paths import get_paths
from desktop.train import TrainError
from desktop.train.data import DataSet
from desktop.train.events import Checkpoint, Done, Event, Failed, parse_event
from desktop.train.settings import TrainSettings

FOLDER = "training"
JOB_FILE = "job.json"
DATA_FILE = "data.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_INFO = "checkpoint.json"
EVENTS_FILE = "events.jsonl"
ADAPTER_FOLDER = "adapter"
LOG_FILE = "worker.log"
LOCK_FILE = "worker.lock"


def jobs_folder() -> Path:
    return get_paths().data / FOLDER


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")[:64] or "adapter"


@dataclass(frozen=True)
class JobFolder:
    """The files of one training job."""

    path: Path

    @classmethod
    def for_name(cls, name: str, create: bool = False) -> JobFolder:
        """The folder of the job that makes the adapter *name* (a new one when *create* and
        none exists; a name whose folder name another job took gets a numbered one)."""
        root = jobs_folder()
        stem = _slug(name)
        candidate = root / stem
        number = 2
        while (candidate / JOB_FILE).is_file():
            if _read_json(candidate / JOB_FILE).get("settings", {}).get("name") == name:
                return cls(candidate)
            candidate = root / f"{stem}-{number}"
            number += 1
        if not create:
            raise TrainError(f"There is no training called '{name}'.")
        return cls(candidate)

    # -- files ---------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def exists(self) -> bool:
        return self.file(JOB_FILE).is_file()

    def create(self, settings: TrainSettings, data: DataSet) -> None:
        """Write a new job's settings and data; the folder must hold no other job."""
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        write_atomic(self.file(DATA_FILE), data.to_jsonl().encode("utf-8"))
        meta = {"settings": settings.to_dict(), "data_set": data.name, "data_source": data.source,
                "data_kind": data.kind, "examples": len(data.examples), "created": time.time()}
        write_atomic(self.file(JOB_FILE), json.dumps(meta, indent=2, ensure_ascii=False)
                     .encode("utf-8"))

    def meta(self) -> dict[str, Any]:
        """``job.json``: settings, data_set, examples, created."""
        return _read_json(self.file(JOB_FILE))

    def settings(self) -> TrainSettings:
        raw = self.meta().get("settings")
        if not isinstance(raw, dict):
            raise TrainError(f"The training in {self.path} has no readable settings.")
        return TrainSettings.from_dict(raw)

    def data(self) -> DataSet:
        meta = self.meta()
        try:
            text = self.file(DATA_FILE).read_text(encoding="utf-8")
            return DataSet.from_jsonl(text, str(meta.get("data_set") or "data"),
                                      str(meta.get("data_source") or ""),
                                      str(meta.get("data_kind") or ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TrainError(f"The training's copy of its data cannot be read ({exc}).") from exc

    def events(self) -> list[Event]:
        """Every event reported so far, oldest first (the history a plot starts from)."""
        try:
            lines = self.file(EVENTS_FILE).read_text(encoding="utf-8").split("\n")
        except OSError:
            return []
        return [e for e in (parse_event(line) for line in lines if line.strip()) if e]

    def checkpoint_step(self) -> int | None:
        """The step of the last checkpoint, or None when there is none."""
        if not self.file(CHECKPOINT_FILE).is_file():
            return None
        step = _read_json(self.file(CHECKPOINT_INFO)).get("step")
        return int(step) if isinstance(step, int) else 0

    def write_checkpoint_info(self, step: int) -> None:
        write_atomic(self.file(CHECKPOINT_INFO), json.dumps({"step": step}).encode())

    def running(self) -> bool:
        """Whether a worker holds this job's lock now."""
        if not self.file(LOCK_FILE).exists():
            return False
        lock = WorkerLock(self.file(LOCK_FILE))
        if lock.acquire():
            lock.release()
            return False
        return True

    def state(self) -> str:
        """``running``, ``done``, ``stopped`` (resumable from a checkpoint), ``failed``
        (stopped before its first checkpoint) or ``new``."""
        if self.running():
            return "running"
        events = self.events()
        if any(isinstance(e, Done) for e in events):
            return "done"
        if self.checkpoint_step() is not None:
            return "stopped"
        if any(isinstance(e, Failed) for e in events):
            return "failed"
        return "new"

    def last_checkpoint_event(self) -> Checkpoint | None:
        found = [e for e in self.events() if isinstance(e, Checkpoint)]
        return found[-1] if found else None

    def remove(self) -> None:
        if self.running():
            raise TrainError("This training is running: cancel it first.")
        shutil.rmtree(self.path, ignore_errors=True)


def list_jobs() -> list[JobFolder]:
    """Every training job in the data folder, most recent first."""
    root = jobs_folder()
    if not root.is_dir():
        return []
    found = [JobFolder(p) for p in root.iterdir() if (p / JOB_FILE).is_file()]
    return sorted(found, key=lambda j: -float(j.meta().get("created") or 0))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


class WorkerLock:
    """An exclusive lock on a file, held by one process; the OS drops it when the process
    ends, however it ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - held until release
        try:
            if sys.platform == "win32":
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None
