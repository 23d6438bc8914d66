"""What travels between the HTTP side and the scheduler: jobs, their events and results."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.sampling import Sampling
from desktop.engine.steering import Steer


class NeedsIdle(Exception):
    """Raised while preparing a request that can only start once every slot is idle."""


class Steps:
    """Work that the model thread does a piece at a time, between decode steps, so replies
    keep streaming while it runs (embedding many texts). A job's work returns it; each
    ``next()`` of *pieces* does one piece, and what the generator returns is the job's result.
    """

    def __init__(self, pieces: Generator[None, None, Any]) -> None:
        self.pieces = pieces


@dataclass
class GenerationResult:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    seconds_to_first_token: float | None
    tokens_per_second: float | None
    slot: int | None = None
    reasoning_tokens: int = 0  # of completion_tokens, those written while thinking


@dataclass
class Prepared:
    """What a request decodes: set up on the model thread when it reaches a slot."""

    tokens: list[int]
    sampling: Sampling
    stack_key: tuple[tuple[int, float], ...]
    apply_stack: Callable[[], object]  # makes llama.cpp apply the request's adapter stack
    shown: str
    reuse_cache: bool = True
    model: Any = None  # the LoadedModel it was made for: another model means make it again
    steer: Steer = field(default_factory=Steer)
    visible: frozenset[int] = frozenset()  # control tokens whose text the reply shows
    plan: Any = None  # the chat plan (desktop.engine.plan), for reading the reply


class Job:
    """One unit of work for the model thread, with a queue of events for the asyncio side.

    Events: ("started", model id) for a generation once it has a slot, ("text", str),
    ("logprob", (token bytes, log-probability, [(bytes, log-probability)…])) before the text
    of a token when the request asked for log-probabilities,
    ("result", value), ("error", APIError) and finally ("end", None).
    """

    def __init__(self, work: Callable[[Job], Any] | None, loop: asyncio.AbstractEventLoop,
                 *, prepare: Callable[[Job], Prepared] | None = None,
                 exclusive: bool = True) -> None:
        self.work = work
        self.prepare = prepare
        self.exclusive = exclusive
        self.loop = loop
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.queued_at = time.perf_counter()
        self.prepared: Prepared | None = None

    def emit(self, kind: str, payload: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))
        except RuntimeError:  # the loop has closed: nobody is listening any more
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()
