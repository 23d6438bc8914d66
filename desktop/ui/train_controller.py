"""What the Train page does: the models and data it offers, the checks before a run, the run,
and the runs on disk that were stopped before they finished. No widgets here.

Reading a data file or chats, laying the examples out with the chat template (a process of its
own) and the checks made before a start (the model's header, the name, the memory) run on
workers; each kind of request carries a ticket, so only the answer to the latest one is shown.
The trainer runs in a process of its own (desktop.train.job): its events arrive on the job's
reader thread, come here through a Qt signal queued to the GUI thread, and are gathered in
:attr:`TrainController.run`, which the page paints from on a timer, not at every event.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QObject, QTimer, Signal

from desktop.core.adapters import AdapterError, AdapterLibrary
from desktop.core.chats import ChatStore
from desktop.train import TrainError, require_extra
from desktop.train.data import DataError, DataSet
from desktop.train.events import (
    Checkpoint,
    Event,
    HeldOut,
    Paused,
    Progress,
    Resumed,
    Started,
    Status,
    is_final,
)
from desktop.train.job import (
    JobSummary,
    StartCheck,
    TrainingJob,
    check_start,
    discard_training,
    resume_training,
    start_training,
    training_jobs,
)
from desktop.train.settings import TrainSettings
from desktop.ui.workers import Workers

#: Job states that can go on (from a checkpoint, or from the start when there is none).
UNFINISHED = ("stopped", "failed", "new")
#: At quit, how long a cancelled trainer gets to finish its step and save it.
QUIT_WAIT_S = 60.0
#: Prompts the before/after view answers with and without a new adapter.
BEFORE_AFTER_PROMPTS = 3


@dataclass
class RunView:
    """The run in progress (or the last one), as the page shows it."""

    name: str
    base_model: str = ""  # the GGUF file it trains on
    stage: str = "Starting the trainer…"
    started: bool = False  # the steps have begun (the model is loaded)
    step: int = 0
    total: int | None = None
    epoch: float = 0.0
    elapsed: float = 0.0
    eta: float | None = None
    loss: float | None = None
    held_out: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    held: list[tuple[int, float]] = field(default_factory=list)
    checkpoint: int | None = None
    paused: bool = False
    skipped: tuple[dict[str, Any], ...] = ()
    final: Event | None = None
    version: int = 0  # goes up with every change, so a painter knows when to paint again

    def take(self, event: Event) -> None:
        """Take one event of the run into account."""
        self.version += 1
        if isinstance(event, Status):
            self.stage = f"{event.message}…"
        elif isinstance(event, Started):
            self.started = True
            self.total = event.total_steps
            self.step = max(self.step, event.start_step)
            self.skipped = event.skipped
            self.stage = "Training"
            # The steps after the checkpoint it goes on from are taken again.
            self.losses = [p for p in self.losses if p[0] <= event.start_step]
            self.held = [p for p in self.held if p[0] <= event.start_step]
        elif isinstance(event, Progress):
            self.step, self.total, self.epoch = event.step, event.total_steps, event.epoch
            self.elapsed, self.eta, self.loss = event.elapsed_s, event.eta_s, event.loss
            self.losses.append((event.step, event.loss))
        elif isinstance(event, HeldOut):
            self.held_out = event.loss
            self.held.append((event.step, event.loss))
        elif isinstance(event, Checkpoint):
            self.checkpoint = event.step
        elif isinstance(event, (Paused, Resumed)):
            self.paused = isinstance(event, Paused)
        elif is_final(event):
            self.final = event
            self.paused = False

    @property
    def running(self) -> bool:
        return self.final is None


def history_of(name: str) -> list[Event]:
    """What an earlier run of the job *name* reported for the steps its checkpoint keeps: the
    start of the loss curve of a run that goes on from there."""
    from desktop.train.store import JobFolder

    folder = JobFolder.for_name(name)
    step = folder.checkpoint_step() or 0
    return [e for e in folder.events() if isinstance(e, (Progress, HeldOut, Checkpoint))
            and e.step <= step]


def free_name(stem: str) -> str:
    """*stem*, or *stem*-2, -3…: the first that names no adapter and no unfinished training."""
    library = AdapterLibrary()
    taken = {job.name for job in training_jobs() if job.state in UNFINISHED}
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem.strip()) or "adapter"
    for number in itertools.count(1):
        name = stem if number == 1 else f"{stem}-{number}"
        if name not in taken and library.find(name) is None:
            return name
    raise AssertionError("unreachable")


def prompts_to_compare(name: str) -> tuple[list[str], bool]:
    """The prompts the before/after view asks: those of the held-out examples (the run never
    learned from them), else the first examples'; and whether they were held out."""
    from desktop.train.store import JobFolder

    folder = JobFolder.for_name(name)
    settings = folder.settings()
    data = folder.data()
    train, held = data.split(settings.held_out, settings.seed)
    chosen = held or train
    prompts = list(dict.fromkeys(e.prompt for e in chosen if e.prompt))
    return prompts[:BEFORE_AFTER_PROMPTS], bool(held)


def _check(settings: TrainSettings, data: DataSet) -> StartCheck:
    """check_start, with the window's words for a name an unfinished training has. It runs at
    every change of the form, so it looks at the one training of that name, not at all of
    them (each one's events are read to know its state), and the model's header is read once
    per version of the file (:func:`desktop.core.library.read_header`)."""
    from desktop.train.store import JobFolder

    name = settings.name.strip()
    try:
        folder: JobFolder | None = JobFolder.for_name(name)
    except TrainError:
        folder = None  # no training of that name
    if folder is not None and folder.state() in UNFINISHED:
        raise TrainError(f"A training called '{name}' was stopped before it finished (see "
                         "Unfinished trainings): resume it or discard it, or choose another "
                         "name.")
    return check_start(settings, data)


def _read_file(path: str) -> tuple[DataSet, str]:
    from desktop.train.readers import load_data

    data = load_data(path)
    return data, free_name(Path(path).stem)


def _read_chats(store: ChatStore, ids: list[int]) -> tuple[DataSet, str]:
    from desktop.train.readers import from_chats

    data = from_chats(store, ids)
    return data, free_name("chats")


def _models() -> list[Any]:
    from desktop.train.models import trainable_models

    return trainable_models()


def _words(exc: Exception) -> str:
    """What went wrong, for the page."""
    if isinstance(exc, (TrainError, DataError, AdapterError, OSError)):
        return str(exc)
    return f"Something went wrong: {type(exc).__name__}: {exc}"


class TrainController(QObject):
    """The Train page's work: reads, checks, the trainer, and the unfinished runs on disk."""

    modelsChanged = Signal(object)  # list of desktop.train.models.ModelCheck
    dataChanged = Signal(object, str)  # the DataSet read, a free name for its adapter
    dataFailed = Signal(str)  # why the file or the chats cannot be used at all
    previewed = Signal(object)  # a DataPreview, or a str saying why there is none
    checked = Signal(object)  # a StartCheck, or a str saying why the run cannot start
    runStarted = Signal(object)  # the RunView of a run that begins (or goes on)
    runEnded = Signal(object)  # the run's final event: Done, Cancelled or Failed
    startFailed = Signal(str)  # the run did not start, and why
    jobsChanged = Signal(object)  # list of JobSummary: the trainings that can go on
    chatsListed = Signal(object)  # list of ConversationEntry, for picking chats
    _event = Signal(int, object)  # (the run's number, an event), from the job's reader thread

    def __init__(self, workers: Workers, store: ChatStore, parent: QObject | None = None
                 ) -> None:
        super().__init__(parent)
        self.workers = workers
        self.store = store
        self.missing: str | None = None
        try:
            require_extra()
        except TrainError as exc:
            self.missing = str(exc)
        self.models: list[Any] = []
        self.data: DataSet | None = None
        self.run: RunView | None = None
        self.job: TrainingJob | None = None
        self.jobs: list[JobSummary] = []
        self._tickets: dict[str, int] = {}
        self._previewing = False  # a preview process runs
        self._preview_asked = 0  # previews asked for; only the latest one's answer is shown
        self._preview_next: tuple[int, str, int, DataSet] | None = None
        self._run_number = 0
        self._starting = False  # a trainer is being started on a worker
        self._stop_asked = False
        self._event.connect(self._on_event)

    # -- tickets: only the latest answer of each kind counts -----------------------------------
    def _submit(self, kind: str, fn: Callable[..., Any], *args: Any,
                on_done: Callable[[Any], None], on_error: Callable[[Exception], None]) -> None:
        ticket = self._tickets.get(kind, 0) + 1
        self._tickets[kind] = ticket

        def done(result: Any) -> None:
            if self._tickets.get(kind) == ticket:
                on_done(result)

        def failed(exc: Exception) -> None:
            if self._tickets.get(kind) == ticket:
                on_error(exc)

        self.workers.submit(fn, *args, on_done=done, on_error=failed)

    def _drop(self, kind: str) -> None:
        """Answers on their way for *kind* are no longer wanted."""
        self._tickets[kind] = self._tickets.get(kind, 0) + 1

    # -- models and data -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the models and the unfinished trainings again."""
        if self.missing:
            return
        self._submit("models", _models, on_done=self._got_models,
                     on_error=lambda exc: self.modelsChanged.emit([]))
        self.refresh_jobs()

    def _got_models(self, found: list[Any]) -> None:
        self.models = found
        self.modelsChanged.emit(found)

    def model_id_for(self, base_model: str) -> str | None:
        """The installed model's id for a base model's path, where it is listed."""
        return next((c.model.id for c in self.models if str(c.model.path) == base_model), None)

    def load_file(self, path: str) -> None:
        """Read a JSONL, JSON or CSV file of examples."""
        self._drop_preview()
        self._submit("data", _read_file, path, on_done=self._got_data,
                     on_error=lambda exc: self._data_failed(exc))

    def list_chats(self) -> None:
        """List the saved conversations (chatsListed), to pick some to learn from."""
        self._submit("chats", self.store.list_conversations, on_done=self.chatsListed.emit,
                     on_error=lambda exc: self.dataFailed.emit(_words(exc)))

    def load_chats(self, ids: list[int]) -> None:
        """Make examples of the conversations *ids* ("teach it to answer like this")."""
        self._drop_preview()
        store = self.store
        self._submit("data", _read_chats, store, list(ids), on_done=self._got_data,
                     on_error=lambda exc: self._data_failed(exc))

    def _got_data(self, result: tuple[DataSet, str]) -> None:
        self.data, name = result
        self.dataChanged.emit(self.data, name)

    def _data_failed(self, exc: Exception) -> None:
        self.data = None
        self.dataFailed.emit(_words(exc))

    def preview(self, base_model: str, max_length: int) -> bool:
        """Lay the data out with the model's chat template and count its tokens (when the data
        is usable: rows to fix come first); False when there is nothing to preview.

        Each preview is a process that loads the tokenizer (seconds, and a core): one runs at
        a time, and of the requests made meanwhile only the latest is done after it.
        """
        data = self.data
        if data is None or not data.usable:
            self._drop_preview()
            return False
        self._preview_asked += 1
        self._preview_next = (self._preview_asked, base_model, max_length, data)
        if not self._previewing:
            self._start_preview()
        return True

    def _start_preview(self) -> None:
        from desktop.train.preview import preview_data

        wanted, self._preview_next = self._preview_next, None
        if wanted is None:
            return
        number, base_model, max_length, data = wanted
        self._previewing = True
        self.workers.submit(
            lambda: preview_data(base_model, data, max_length=max_length, limit=3),
            on_done=lambda result: self._preview_done(number, result),
            on_error=lambda exc: self._preview_done(number, _words(exc)))

    def _preview_done(self, number: int, result: Any) -> None:
        self._previewing = False
        if number == self._preview_asked:
            self.previewed.emit(result)
        self._start_preview()

    def _drop_preview(self) -> None:
        """The previews asked for so far are no longer wanted."""
        self._preview_asked += 1
        self._preview_next = None

    def check(self, settings: TrainSettings) -> None:
        """Every check made before a start; the answer comes as :attr:`checked`."""
        data = self.data
        if data is None:
            return
        self._submit("check", _check, settings, data, on_done=self.checked.emit,
                     on_error=lambda exc: self.checked.emit(_words(exc)))

    # -- the run ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether a trainer runs (or is being started)."""
        return self._starting or (self.run is not None and self.run.running
                                  and self.job is not None)

    def start(self, settings: TrainSettings) -> None:
        """Start training with *settings* on the data read last."""
        data = self.data
        if self.busy or data is None:
            return
        self._begin(settings.name, settings.base_model)
        number = self._run_number
        self.workers.submit(
            lambda: start_training(settings, data, on_event=lambda e: self._event.emit(number, e)),
            on_done=lambda job: self._spawned(number, job),
            on_error=lambda exc: self._not_spawned(number, exc))

    def resume(self, job: JobSummary) -> None:
        """Go on with the unfinished training *job* from its last checkpoint."""
        if self.busy:
            return
        name = job.name
        self._begin(name, job.base_model)
        number = self._run_number

        def work() -> tuple[TrainingJob, list[Event]]:
            history = history_of(name)
            job = resume_training(name, on_event=lambda e: self._event.emit(number, e))
            return job, history

        self.workers.submit(work, on_done=lambda result: self._resumed(number, *result),
                            on_error=lambda exc: self._not_spawned(number, exc))

    def _begin(self, name: str, base_model: str) -> None:
        self._run_number += 1
        self._starting = True
        self._stop_asked = False
        self.job = None
        self.run = RunView(name, base_model)
        self.runStarted.emit(self.run)

    def _resumed(self, number: int, job: TrainingJob, history: list[Event]) -> None:
        run = self.run
        if number == self._run_number and run is not None:
            # The steps the checkpoint keeps, with those this run has reported so far.
            earlier = RunView(run.name)
            for event in history:
                earlier.take(event)
            run.losses = sorted(set(earlier.losses) | set(run.losses))
            run.held = sorted(set(earlier.held) | set(run.held))
            run.checkpoint = run.checkpoint if run.checkpoint is not None else earlier.checkpoint
            run.version += 1
        self._spawned(number, job)

    def _spawned(self, number: int, job: TrainingJob) -> None:
        if number != self._run_number:
            self.workers.submit(job.close)
            return
        self._starting = False
        self.job = job
        if self._stop_asked:
            job.kill()
        if self.run is not None and self.run.final is not None:
            self._let_go(job)  # it ended before its start was reported
        self.refresh_jobs()

    def _not_spawned(self, number: int, exc: Exception) -> None:
        if number != self._run_number:
            return
        self._starting = False
        self.run = None
        self.startFailed.emit(_words(exc))
        self.refresh_jobs()

    def _on_event(self, number: int, event: Event) -> None:
        run = self.run
        if number != self._run_number or run is None or not run.running:
            return
        run.take(event)
        if is_final(event):
            if self.job is not None:
                self._let_go(self.job)
            self.runEnded.emit(event)

    def _let_go(self, job: TrainingJob) -> None:
        """Once its trainer has ended: let go of its pipes and thread, and list the trainings
        again (its job is no longer running; it may be one to resume)."""
        self.workers.submit(job.close, on_done=lambda _: self.refresh_jobs(),
                            on_error=lambda _: self.refresh_jobs())

    def pause(self) -> None:
        if self.job is not None and self.busy:
            self.job.pause()

    def go_on(self) -> None:
        """Go on after :meth:`pause`."""
        if self.job is not None and self.busy:
            self.job.resume()

    def cancel(self) -> None:
        """Stop after the step in progress; what was learned is kept at a checkpoint."""
        if self.job is not None and self.busy:
            self.job.cancel()

    # -- trainings on disk -------------------------------------------------------------------------
    def refresh_jobs(self) -> None:
        if self.missing:
            return
        self._submit("jobs", training_jobs, on_done=self._got_jobs,
                     on_error=lambda exc: self.startFailed.emit(_words(exc)))

    def _got_jobs(self, found: list[JobSummary]) -> None:
        running = self.run.name if self.run is not None and self.busy else None
        self.jobs = [j for j in found if j.state in UNFINISHED and j.name != running]
        self.jobsChanged.emit(self.jobs)

    def discard(self, name: str) -> None:
        """Delete the unfinished training *name* (what it learned goes with it)."""
        self.workers.submit(discard_training, name, on_done=lambda _: self.refresh_jobs(),
                            on_error=lambda exc: self.startFailed.emit(_words(exc)))

    # -- quitting --------------------------------------------------------------------------------
    def stop(self, timeout_s: float = QUIT_WAIT_S) -> None:
        """Stop the run for a quit and wait until its trainer has ended, the window painting
        meanwhile. Once the steps have begun it is cancelled, which keeps what it learned at a
        checkpoint; while the model still loads there is nothing to keep, so it is ended at
        once, as it is past *timeout_s*. The training can be resumed at the next start."""
        if not self.busy:
            return
        self._stop_asked = True
        loop = QEventLoop()
        self.runEnded.connect(loop.quit)
        limit = QTimer()
        limit.setSingleShot(True)
        limit.timeout.connect(loop.quit)
        job, run = self.job, self.run
        if job is not None and run is not None and run.started:
            job.cancel()
            limit.start(int(timeout_s * 1000))
            loop.exec()
        if self.busy and self.job is not None:
            self.job.kill()  # its reader says so at once
            limit.start(10_000)
            loop.exec()
        elif self.busy:  # still being started: killed as soon as it is there
            limit.start(int(timeout_s * 1000))
            loop.exec()
        limit.stop()
        self.runEnded.disconnect(loop.quit)
        if self.job is not None:
            self.job.close(timeout=10)

    def close(self) -> None:
        """At quit: stop a run that is still going (see :meth:`stop`)."""
        self.stop()
        self._drop_preview()
        self._drop("check")
