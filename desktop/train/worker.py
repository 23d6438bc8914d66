"""The trainer process: ``python -m desktop.train.worker JOB_FOLDER``.

It trains the job in JOB_FOLDER (see desktop.train.store) from its last checkpoint, if it has
one. Events go out as JSON lines on standard output (desktop.train.events) and into the job's
``events.jsonl``; anything else a library prints goes to standard error, which the parent
sends to the job's ``worker.log``. Commands come in on standard input, one a line:

- ``pause``: stop after the step in progress and wait; ``resume``: go on;
- ``cancel``: stop after the step in progress, save a checkpoint, end (resumable).

The end of standard input (the parent went away) counts as ``cancel``, and so does SIGTERM,
so the work done is kept however the app ends; Ctrl-C in a terminal is for the parent, which
passes it on as ``cancel``. Exit status: 0 when done or cancelled, 1 when failed.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO

from desktop.train import TrainError
from desktop.train.events import (
    Cancelled,
    Done,
    Event,
    Failed,
    Status,
    claim_stdout,
    event_to_json,
    parse_event,
)
from desktop.train.store import EVENTS_FILE, LOCK_FILE, JobFolder, WorkerLock
from desktop.train.trainer import Control

# Events of an earlier run kept when a job resumes: those of the steps the checkpoint holds.
_HISTORY = ("progress", "held_out", "checkpoint")


class StdinControl(Control):
    """Commands read from a stream by a thread of their own."""

    def __init__(self, stream: IO[str]) -> None:
        self._cancel = threading.Event()
        self._going = threading.Event()
        self._going.set()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True,
                                        name="train-commands")
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            command = line.strip().lower()
            if command == "pause":
                self._going.clear()
            elif command == "resume":
                self._going.set()
            elif command == "cancel":
                self.cancel()
        self.cancel()  # the parent is gone: keep what was learned and stop

    def cancel(self) -> None:
        self._cancel.set()
        self._going.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait_if_paused(self, on_pause: Callable[[], None], on_resume: Callable[[], None]
                       ) -> None:
        if self._going.is_set():
            return
        on_pause()
        self._going.wait()
        if not self.cancelled:
            on_resume()


class Reporter:
    """Writes events to the parent and to the job's history."""

    def __init__(self, job: JobFolder, out: IO[str]) -> None:
        self.out = out
        self.path = job.file(EVENTS_FILE)
        self._lock = threading.Lock()

    def keep_history_until(self, step: int | None) -> None:
        """Drop what an earlier run reported past the checkpoint this run starts from."""
        try:
            lines = self.path.read_text(encoding="utf-8").split("\n")
        except OSError:
            lines = []
        kept = []
        for line in lines:
            event = parse_event(line) if line.strip() else None
            if (event is not None and step is not None and event.kind in _HISTORY
                    and getattr(event, "step", 0) <= step):
                kept.append(line + "\n")
        self.path.write_text("".join(kept), encoding="utf-8")

    def __call__(self, event: Event) -> None:
        line = event_to_json(event)
        with self._lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the parent is gone; the history below still has it
            with self.path.open("a", encoding="utf-8") as history:
                history.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m desktop.train.worker JOB_FOLDER", file=sys.stderr)
        return 2
    job = JobFolder(Path(args[0]))
    out = claim_stdout()
    report = Reporter(job, out)
    lock = WorkerLock(job.file(LOCK_FILE))
    if not job.exists:
        out.write(event_to_json(Failed(f"There is no training job in {job.path}.")) + "\n")
        return 1
    if not lock.acquire():
        out.write(event_to_json(Failed("This training is already running.")) + "\n")
        return 1
    control = StdinControl(sys.stdin)
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: control.cancel())
    report.keep_history_until(job.checkpoint_step())
    final: Event
    try:
        report(Status("starting", "Starting the trainer"))
        from desktop.train.loading import quiet
        from desktop.train.trainer import Run

        quiet()
        final = Run(job, report, control).run()
    except TrainError as exc:
        final = _failed(job, str(exc))
    except MemoryError:
        final = _failed(job, "The computer ran out of memory while training. Close other "
                             "programs, or lower the maximum length or the batch size.")
    except Exception as exc:  # noqa: BLE001 - every failure becomes an event the user reads
        detail = traceback.format_exc()
        print(detail, file=sys.stderr)
        final = _failed(job, f"Training failed: {type(exc).__name__}: {exc}", detail[-4000:])
    report(final)
    lock.release()
    return 0 if isinstance(final, (Done, Cancelled)) else 1


def _failed(job: JobFolder, message: str, detail: str = "") -> Failed:
    step = job.checkpoint_step()
    return Failed(message, step=step, resumable=step is not None, detail=detail)


if __name__ == "__main__":
    sys.exit(main())
