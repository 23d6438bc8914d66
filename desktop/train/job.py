"""Starting, following and steering training runs from the app (no Qt, no torch).

    job = start_training(TrainSettings.from_preset("quick", base_model=path, data=file,
                                                   name="pirate"))
    for event in job.events():          # blocks; ends after Done, Cancelled or Failed
        ...
    job.pause(); job.resume(); job.cancel()

A window either polls (:meth:`TrainingJob.poll` returns what arrived, without waiting) or
passes ``on_event``, called on the job's reader thread with each event as it arrives (emit a
Qt signal from it; never touch widgets there). A run
that was cancelled, or cut short by a crash, a kill or a quit, goes on from its last
checkpoint with :func:`resume_training`. :func:`check_start` runs every check
:func:`start_training` makes (the extra, the model, the data, the name, the memory) without
starting anything, so a page can say what is wrong before the user presses Train.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from desktop.core.adapters import AdapterError, AdapterLibrary, check_name
from desktop.core.gguf_info import GGUFError, GGUFInfo
from desktop.core.library import read_header
from desktop.train import TrainError, require_extra
from desktop.train.data import DataSet
from desktop.train.estimate import TrainEstimate, estimate_training
from desktop.train.events import Event, Failed, is_final, parse_event
from desktop.train.models import info_problem
from desktop.train.readers import load_data
from desktop.train.settings import TrainSettings
from desktop.train.store import LOG_FILE, JobFolder, list_jobs

_END = object()


@dataclass(frozen=True)
class JobSummary:
    """A training job on disk, for a list of past and unfinished runs."""

    name: str
    state: str  # running, done, stopped (resumable), failed, new
    step: int | None  # the last checkpoint's step, when stopped
    total_steps: int | None
    data_set: str
    examples: int
    base_model: str
    folder: str


class TrainingJob:
    """A trainer process working on one job. Events arrive on a reader thread; take them with
    :meth:`events` (blocking) or :meth:`poll` (not). :meth:`close` ends everything it started.
    """

    def __init__(self, folder: JobFolder, process: subprocess.Popen[str], log: IO[bytes],
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.folder = folder
        self.settings = folder.settings()
        self.process = process
        self.final: Event | None = None
        self._log = log
        self._on_event = on_event
        self._queue: queue.Queue[object] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"train-events-{process.pid}")
        self._reader.start()

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    # -- events --------------------------------------------------------------------------------
    def _read(self) -> None:
        assert self.process.stdout is not None
        final = None
        for line in self.process.stdout:
            event = parse_event(line)
            if event is not None:
                final = event if is_final(event) else final
                self._deliver(event)
        code = self.process.wait()
        self._log.close()
        if final is None:
            self._deliver(self._lost(code))
        self._queue.put(_END)

    def _deliver(self, event: Event) -> None:
        self._queue.put(event)
        if self._on_event is not None:
            self._on_event(event)

    def _lost(self, code: int) -> Failed:
        """The event for a worker that ended without saying how."""
        how = (f"was killed (signal {-code})" if code < 0 else f"stopped with status {code}")
        step = self.folder.checkpoint_step()
        tail = _tail(self.folder.file(LOG_FILE))
        resume = (f" It can go on from step {step}." if step else
                  " It has no checkpoint yet, so resuming starts it over.")
        return Failed(f"The trainer {how} unexpectedly.{resume}", step=step,
                      resumable=step is not None, detail=tail)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Every event until the final one (Done, Cancelled or Failed). With *timeout*, stop
        waiting after that many seconds without an event (the run goes on)."""
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return
            if item is _END:
                self._queue.put(_END)  # later calls end at once too
                return
            if is_final(item):  # type: ignore[arg-type]
                self.final = item  # type: ignore[assignment]
            yield item  # type: ignore[misc]

    def poll(self) -> list[Event]:
        """The events that arrived since the last call, without waiting."""
        found: list[Event] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return found
            if item is _END:
                self._queue.put(_END)
                return found
            if is_final(item):  # type: ignore[arg-type]
                self.final = item  # type: ignore[assignment]
            found.append(item)  # type: ignore[arg-type]

    def wait(self, timeout: float | None = None) -> Event | None:
        """Wait for the final event (taking the others on the way); None on timeout."""
        for _ in self.events(timeout):
            pass
        return self.final

    def history(self) -> list[Event]:
        """Every event the job reported, earlier runs' steps included (for a loss plot)."""
        return self.folder.events()

    # -- commands ------------------------------------------------------------------------------
    def _send(self, command: str) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the worker has ended; its final event says how

    def pause(self) -> None:
        """Stop after the step in progress, holding the model in memory."""
        self._send("pause")

    def resume(self) -> None:
        """Go on after :meth:`pause`."""
        self._send("resume")

    def cancel(self) -> None:
        """Stop after the step in progress, saving a checkpoint to resume from."""
        self._send("cancel")

    def kill(self) -> None:
        """End the worker at once (work since the last checkpoint is lost)."""
        if self.running:
            self.process.kill()

    def close(self, timeout: float = 60) -> None:
        """Cancel if running, wait for the worker to end (kill it past *timeout*), and let go
        of its pipes and thread. Safe to call more than once."""
        if self.running:
            self.cancel()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _tail(path: os.PathLike[str], size: int = 2000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# -- starting ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartCheck:
    """What :func:`check_start` found: the data and model read, and the estimate."""

    settings: TrainSettings
    data: DataSet
    model: GGUFInfo
    estimate: TrainEstimate


def check_start(settings: TrainSettings, data: DataSet | None = None, *,
                check_memory: bool = True, restart: bool = False) -> StartCheck:
    """Every check made before a run starts; :class:`TrainError` says what stops it.

    *data* is read from ``settings.data`` when not given (pass a data set made from chats
    with :func:`desktop.train.readers.from_chats`). *restart* lets a new run replace an
    unfinished one of the same name.
    """
    require_extra()
    try:
        settings = settings.with_changes(name=check_name(settings.name))
        info = read_header(settings.base_model)
    except (AdapterError, GGUFError) as exc:
        raise TrainError(str(exc)) from exc
    problem = info_problem(info)
    if problem:
        raise TrainError(f"{info.name or info.path.name} cannot be trained here: {problem}")
    if data is None:
        data = load_data(settings.data)
    reason = data.unusable_reason()
    if reason:
        raise TrainError(reason)
    if AdapterLibrary().find(settings.name) is not None:
        raise TrainError(f"An adapter called '{settings.name}' is already in the library. "
                         "Choose another name, or remove that adapter first.")
    try:
        folder = JobFolder.for_name(settings.name)
    except TrainError:
        folder = None
    if folder is not None:
        state = folder.state()
        if state == "running":
            raise TrainError(f"'{settings.name}' is training now.")
        if state in ("stopped", "failed", "new") and not restart:
            step = folder.checkpoint_step()
            where = f" at step {step}" if step else ""
            raise TrainError(f"A training of '{settings.name}' was stopped{where}. Resume it "
                             "(nomoat train --out NAME --resume), or start it over "
                             "(--restart).")
    estimate = estimate_training(settings, info, data)
    if check_memory and estimate.refusal():
        raise TrainError(str(estimate.refusal()))
    return StartCheck(settings, data, info, estimate)


def start_training(settings: TrainSettings, data: DataSet | None = None, *,
                   check_memory: bool = True, restart: bool = False,
                   on_event: Callable[[Event], None] | None = None) -> TrainingJob:
    """Check (see :func:`check_start`), write the job's folder, and start its trainer.
    *on_event* is called on the job's reader thread with every event."""
    checked = check_start(settings, data, check_memory=check_memory, restart=restart)
    folder = JobFolder.for_name(checked.settings.name, create=True)
    folder.create(checked.settings, checked.data)
    return _spawn(folder, on_event)


def resume_training(name: str, *, check_memory: bool = True,
                    on_event: Callable[[Event], None] | None = None) -> TrainingJob:
    """Go on with the job that makes the adapter *name*, from its last checkpoint (from the
    start when it has none), with the settings and data it began with."""
    require_extra()
    folder = JobFolder.for_name(name)
    state = folder.state()
    if state == "running":
        raise TrainError(f"'{name}' is training now.")
    if state == "done":
        raise TrainError(f"'{name}' finished training; it is in the adapter library.")
    settings = folder.settings()
    if check_memory:
        try:
            info = read_header(settings.base_model)
        except GGUFError as exc:
            raise TrainError(f"The base model cannot be read: {exc}") from exc
        refusal = estimate_training(settings, info, folder.data()).refusal()
        if refusal:
            raise TrainError(refusal)
    return _spawn(folder, on_event)


def _spawn(folder: JobFolder, on_event: Callable[[Event], None] | None) -> TrainingJob:
    log = open(folder.file(LOG_FILE), "ab")  # noqa: SIM115 - closed by the job's reader
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1",
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    # Idle threads sleep instead of spinning: the trainer shares the cores with the engine and
    # the window, and threads that spin while waiting on each other stall badly when another
    # program takes a core (on a busy 2-core machine the first steps took many times longer).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Its own process group: Ctrl-C in a terminal reaches the parent, which cancels cleanly.
    if sys.platform == "win32":
        options = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    else:
        options = {"start_new_session": True}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "desktop.train.worker", str(folder.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            encoding="utf-8", errors="replace", env=env, **options)  # type: ignore[call-overload]
    except OSError as exc:
        log.close()
        raise TrainError(f"The trainer could not be started: {exc}") from exc
    return TrainingJob(folder, process, log, on_event)


# -- jobs on disk ------------------------------------------------------------------------------
def training_jobs() -> list[JobSummary]:
    """Every training job in the data folder, most recent first."""
    found = []
    for folder in list_jobs():
        meta = folder.meta()
        settings = meta.get("settings") or {}
        started = [e for e in folder.events() if e.kind == "progress"]
        found.append(JobSummary(
            name=str(settings.get("name") or folder.path.name), state=folder.state(),
            step=folder.checkpoint_step(),
            total_steps=getattr(started[-1], "total_steps", None) if started else None,
            data_set=str(meta.get("data_set") or ""), examples=int(meta.get("examples") or 0),
            base_model=str(settings.get("base_model") or ""), folder=str(folder.path)))
    return found


def discard_training(name: str) -> None:
    """Delete an unfinished (or finished) job's folder; its adapter, if any, stays."""
    JobFolder.for_name(name).remove()

