"""What the trainer reports, as plain dataclasses, and their one-line JSON form.

The worker writes one JSON object a line on its standard output (``{"event": "progress",
...}``) and appends the same lines to the job's ``events.jsonl``; the parent turns each back
into one of the classes below with :func:`parse_event`. A run ends with exactly one of
:class:`Done`, :class:`Cancelled` or :class:`Failed`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import IO, Any, ClassVar


@dataclass(frozen=True)
class Status:
    """A stage before or after the steps: ``loading``, ``tokenizing``, ``saving``,
    ``converting``; *message* says it in words."""

    stage: str
    message: str
    kind: ClassVar[str] = "status"


@dataclass(frozen=True)
class Started:
    """Training begins (or goes on from a checkpoint at *start_step*)."""

    total_steps: int
    steps_per_epoch: int
    train_examples: int
    held_out_examples: int
    start_step: int = 0
    trainable_parameters: int = 0
    threads: int = 0
    #: Examples left out because they are too long after tokenizing: ``{line, reason, unit}``.
    skipped: tuple[dict[str, Any], ...] = ()
    kind: ClassVar[str] = "started"


@dataclass(frozen=True)
class Progress:
    """One optimizer step done. *loss* is the step's training loss; *eta_s* the seconds the
    remaining steps should take at the recent pace."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    learning_rate: float
    elapsed_s: float
    eta_s: float
    seconds_per_step: float
    kind: ClassVar[str] = "progress"


@dataclass(frozen=True)
class HeldOut:
    """The loss on the held-out examples after *step*."""

    step: int
    loss: float
    kind: ClassVar[str] = "held_out"


@dataclass(frozen=True)
class Checkpoint:
    """The run was saved after *step*; a crash from here on resumes at this step."""

    step: int
    kind: ClassVar[str] = "checkpoint"


@dataclass(frozen=True)
class Paused:
    step: int
    kind: ClassVar[str] = "paused"


@dataclass(frozen=True)
class Resumed:
    step: int
    kind: ClassVar[str] = "resumed"


@dataclass(frozen=True)
class Done:
    """The adapter is trained, converted to GGUF and in the library as *adapter*."""

    adapter: str
    path: str
    steps: int
    final_loss: float | None
    held_out_loss: float | None
    elapsed_s: float
    peak_memory: int | None = None  # the trainer's peak resident memory, in bytes
    kind: ClassVar[str] = "done"


@dataclass(frozen=True)
class Cancelled:
    """Stopped on request after *step*; the run was saved there, so it can be resumed."""

    step: int
    resumable: bool = True
    kind: ClassVar[str] = "cancelled"


@dataclass(frozen=True)
class Failed:
    """The run stopped on an error. *step* is the last checkpoint's step when one exists (the
    run can then be resumed from it)."""

    message: str
    step: int | None = None
    resumable: bool = False
    detail: str = field(default="", repr=False)  # the end of a traceback, for the log
    kind: ClassVar[str] = "failed"


Event = Status | Started | Progress | HeldOut | Checkpoint | Paused | Resumed | Done | \
    Cancelled | Failed
FINAL = (Done, Cancelled, Failed)
_KINDS: dict[str, type[Any]] = {cls.kind: cls for cls in (
    Status, Started, Progress, HeldOut, Checkpoint, Paused, Resumed, Done, Cancelled, Failed)}


def event_to_json(event: Event) -> str:
    """The event as one line of JSON (no newline)."""
    return json.dumps({"event": event.kind, **asdict(event)}, ensure_ascii=False)


def parse_event(line: str) -> Event | None:
    """The event a line holds, or None for a line that is not one (or of an unknown kind)."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    cls = _KINDS.get(str(raw.get("event")))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in raw.items() if k in names}
    if "skipped" in values:
        values["skipped"] = tuple(values["skipped"] or ())
    try:
        return cls(**values)  # type: ignore[no-any-return]
    except TypeError:
        return None


def is_final(event: Event) -> bool:
    return isinstance(event, FINAL)


def claim_stdout() -> IO[str]:
    """Standard output, kept for this protocol alone: file descriptor 1 then points at standard
    error, so whatever a library prints cannot mix into the lines the parent reads."""
    stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream
