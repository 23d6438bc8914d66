"""`nomoat train`: train a LoRA adapter from a terminal, with a progress line.

Ctrl-C stops after the step in progress and keeps a checkpoint (a second Ctrl-C stops at
once, keeping the last one); ``--resume`` goes on from it. The finished adapter is converted to
GGUF and added to the adapter library.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from desktop.terminal import CommandError
from desktop.train import TrainError, missing_extra
from desktop.train.events import (
    Cancelled,
    Checkpoint,
    Done,
    Event,
    Failed,
    HeldOut,
    Paused,
    Progress,
    Started,
    Status,
)
from desktop.train.job import TrainingJob

#: Rows of a data file's problems printed before "and N more".
SHOWN_PROBLEMS = 20


def train(args: argparse.Namespace) -> int:
    """Run `nomoat train`; the exit status is 0 when done, 130 when stopped by the user."""
    problem = missing_extra()
    if problem:
        raise CommandError(problem)
    try:
        job = _resume(args) if args.resume else _start(args)
    except TrainError as exc:
        raise CommandError(str(exc)) from exc
    return follow(job, sys.stdout)


def _start(args: argparse.Namespace) -> TrainingJob:
    from desktop.core.library import UnknownModel, resolve_model
    from desktop.train.job import check_start, start_training
    from desktop.train.readers import load_data
    from desktop.train.settings import TrainSettings

    if not args.base or not args.data:
        _refuse_if_stopped(args.out)
        raise CommandError("Say which model to train and on what: --base MODEL --data FILE "
                           "(or --resume to go on with a stopped training).")
    try:
        _, base = resolve_model(args.base)
    except UnknownModel as exc:
        raise CommandError(str(exc)) from exc
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip()) \
        if args.targets else None
    settings = TrainSettings.from_preset(
        args.preset, base_model=str(base), data=str(Path(args.data).expanduser().resolve()),
        name=args.out, steps=args.steps, epochs=args.epochs, rank=args.rank,
        alpha=args.alpha, threads=args.threads, learning_rate=args.lr,
        max_length=args.max_length, targets=targets, batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every)
    data = load_data(settings.data)
    print(f"{data.name}: {data.summary()}", flush=True)
    _print_problems([str(p) for p in data.problems])
    checked = check_start(settings, data, restart=args.restart)
    print(checked.estimate.message(), flush=True)
    return start_training(settings, data, restart=args.restart)


def _refuse_if_stopped(name: str) -> None:
    from desktop.train.store import JobFolder

    try:
        folder = JobFolder.for_name(name)
    except TrainError:
        return
    if folder.state() in ("stopped", "failed", "new"):
        step = folder.checkpoint_step()
        where = f" at step {step}" if step else ""
        raise CommandError(f"A training of '{name}' was stopped{where}. Go on with: nomoat "
                           f"train --out {_quoted(name)} --resume (or start over with "
                           "--restart).")


def _resume(args: argparse.Namespace) -> TrainingJob:
    from desktop.train.job import resume_training
    from desktop.train.store import JobFolder

    step = JobFolder.for_name(args.out).checkpoint_step()
    print(f"Resuming '{args.out}' from step {step}." if step else
          f"'{args.out}' has no checkpoint: starting it over with its settings.", flush=True)
    return resume_training(args.out)


def _print_problems(problems: list[str]) -> None:
    for line in problems[:SHOWN_PROBLEMS]:
        print(f"  skipped {line}", file=sys.stderr)
    if len(problems) > SHOWN_PROBLEMS:
        print(f"  and {len(problems) - SHOWN_PROBLEMS} more", file=sys.stderr)


class _Stopper:
    """Ctrl-C (or SIGTERM): the first asks the trainer to stop after this step, the second
    stops it at once."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.asked = 0
        self._previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.asked += 1
        if self.asked == 1:
            print("\nStopping after this step (Ctrl-C again to stop at once)…",
                  file=sys.stderr, flush=True)
            self.job.cancel()
        else:
            self.job.kill()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def follow(job: TrainingJob, out: TextIO) -> int:
    """Print *job*'s progress until it ends; the exit status."""
    live = out.isatty()
    stopper = _Stopper(job)
    held: float | None = None
    line_open = False
    started = time.monotonic()
    final: Event | None = None
    try:
        while True:
            for event in job.events(timeout=0.5):
                if isinstance(event, Progress):
                    text = _progress_line(event, held)
                    if live:
                        out.write(f"\r\x1b[K{text}")
                        line_open = True
                    else:
                        out.write(text + "\n")
                    out.flush()
                    continue
                if line_open:
                    out.write("\n")
                    line_open = False
                if isinstance(event, HeldOut):
                    held = event.loss
                elif isinstance(event, Status):
                    print(f"{event.message}…", file=out, flush=True)
                elif isinstance(event, Started):
                    _started(event, out)
                elif isinstance(event, Checkpoint) and not live:
                    print(f"checkpoint saved at step {event.step}", file=out, flush=True)
                elif isinstance(event, Paused):
                    print(f"paused at step {event.step}", file=out, flush=True)
                elif isinstance(event, (Done, Cancelled, Failed)):
                    final = event
            if final is not None:
                break
    finally:
        stopper.restore()
        job.close()
    if line_open:
        out.write("\n")
    name = job.name
    if isinstance(final, Done):
        took = _duration(time.monotonic() - started)
        losses = f"final loss {final.final_loss:.3f}" if final.final_loss is not None else ""
        if final.held_out_loss is not None:
            losses += f", held-out loss {final.held_out_loss:.3f}"
        print(f"Trained '{final.adapter}' in {took} ({final.steps} steps; {losses}).", file=out)
        print(f"It is in the adapter library as '{final.adapter}'. Use it with:\n"
              f"  nomoat serve --lora {shlex.quote(final.adapter)}", file=out, flush=True)
        return 0
    if isinstance(final, Cancelled):
        print(f"Stopped at step {final.step}; nothing learned is lost. Go on with:\n"
              f"  nomoat train --out {_quoted(name)} --resume", file=out, flush=True)
        return 130
    assert isinstance(final, Failed)
    hint = (f" Go on from step {final.step} with: nomoat train --out {_quoted(name)} --resume"
            if final.resumable else "")
    raise CommandError(final.message + hint)


def _started(event: Started, out: TextIO) -> None:
    where = f" from step {event.start_step}" if event.start_step else ""
    held = f", {event.held_out_examples} held out" if event.held_out_examples else ""
    print(f"Training{where}: {event.total_steps} steps, {event.train_examples} examples"
          f"{held}, {event.threads} thread{'s' * (event.threads != 1)}.", file=out, flush=True)
    for skipped in event.skipped[:SHOWN_PROBLEMS]:
        print(f"  skipped {skipped.get('unit', 'line')} {skipped.get('line')}: "
              f"{skipped.get('reason')}", file=sys.stderr)


def _progress_line(event: Progress, held: float | None) -> str:
    width = len(str(event.total_steps))
    text = (f"step {event.step:>{width}}/{event.total_steps}  epoch {event.epoch:.2f}  "
            f"loss {event.loss:.4f}")
    if held is not None:
        text += f"  held-out {held:.4f}"
    return text + f"  {event.seconds_per_step:.2f} s/step  {_duration(event.eta_s)} left"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _quoted(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").replace(".", "").isalnum() \
        else repr(name)
