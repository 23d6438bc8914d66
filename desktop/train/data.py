"""Training examples: what one is, what makes one unusable, and a data set of them.

An example is a short conversation that ends in the answer the model should learn: an optional
system turn, then user and assistant turns taking turns, starting with the user. The loss is
taken on the assistant turns only, so every example needs at least one. Readers
(:mod:`desktop.train.readers`) turn files and saved chats into examples and list every row
they could not use, with its line number and the reason (:class:`Problem`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")
#: Fewer good examples than this cannot teach a model anything dependable.
MIN_EXAMPLES = 10
#: A data set of at least this many examples keeps some back to measure the held-out loss.
MIN_FOR_HELD_OUT = 10
MAX_HELD_OUT = 200


class DataError(ValueError):
    """A data file or selection cannot be used at all; the message says why and what to do."""


@dataclass(frozen=True)
class Turn:
    """One message of an example."""

    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Example:
    """A conversation to learn from; *line* is where it starts in its source (1-based)."""

    turns: tuple[Turn, ...]
    line: int = 0

    def messages(self) -> list[dict[str, str]]:
        """The turns as chat-template messages."""
        return [turn.to_dict() for turn in self.turns]

    @property
    def prompt(self) -> str:
        """The first user turn: what a preview or a before/after comparison asks."""
        return next((t.content for t in self.turns if t.role == "user"), "")

    @property
    def answer(self) -> str:
        """The last assistant turn: what the example teaches."""
        return next((t.content for t in reversed(self.turns) if t.role == "assistant"), "")


@dataclass(frozen=True)
class Problem:
    """A row that cannot be used: where it is (``line 12``, ``conversation 7``) and why."""

    line: int
    reason: str
    unit: str = "line"

    @property
    def where(self) -> str:
        return f"{self.unit} {self.line}" if self.line else "the file"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "unit": self.unit}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Problem:
        return cls(int(raw.get("line") or 0), str(raw.get("reason") or ""),
                   str(raw.get("unit") or "line"))


@dataclass
class DataSet:
    """Examples read from one source, and the rows that could not be used."""

    name: str
    examples: list[Example]
    problems: list[Problem] = field(default_factory=list)
    source: str = ""  # the file's path, or a description such as "3 chats"
    kind: str = ""  # "jsonl", "json", "csv" or "chats"

    @property
    def usable(self) -> bool:
        """Whether there are enough good examples to start training."""
        return self.unusable_reason() is None

    def unusable_reason(self) -> str | None:
        """Why training cannot start with this data, or None when it can."""
        count = len(self.examples)
        if count >= MIN_EXAMPLES:
            return None
        bad = len(self.problems)
        rows = f" ({bad} row{'s' * (bad != 1)} could not be used: see the list)" if bad else ""
        return (f"{self.name} has {count} usable example{'s' * (count != 1)}{rows}; training "
                f"needs at least {MIN_EXAMPLES}. Add examples, or fix the rows listed.")

    def summary(self) -> str:
        """``42 examples, 3 rows skipped``."""
        text = f"{len(self.examples)} example{'s' * (len(self.examples) != 1)}"
        if self.problems:
            text += f", {len(self.problems)} row{'s' * (len(self.problems) != 1)} skipped"
        return text

    def split(self, held_out: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
        """(training, held-out): a *held_out* share kept back, the same one for the same seed.

        Small data sets keep none back (every example is needed to learn from), larger ones
        at least one and at most :data:`MAX_HELD_OUT`. Both lists keep the source order.
        """
        count = len(self.examples)
        keep = 0
        if count >= MIN_FOR_HELD_OUT and held_out > 0:
            keep = min(MAX_HELD_OUT, max(1, int(count * held_out)), count - MIN_EXAMPLES)
            keep = max(keep, 0)
        chosen = set(random.Random(seed).sample(range(count), keep))
        train = [e for i, e in enumerate(self.examples) if i not in chosen]
        held = [e for i, e in enumerate(self.examples) if i in chosen]
        return train, held

    # -- the job folder's copy -------------------------------------------------------------------
    def to_jsonl(self) -> str:
        """The examples as JSONL, each with its source line, for the trainer to read back."""
        return "".join(json.dumps({"messages": e.messages(), "line": e.line},
                                  ensure_ascii=False) + "\n" for e in self.examples)

    @classmethod
    def from_jsonl(cls, text: str, name: str, source: str = "", kind: str = "") -> DataSet:
        """Read back :meth:`to_jsonl`'s text (already checked when it was written)."""
        examples = []
        for row in text.split("\n"):
            if row.strip():
                raw = json.loads(row)
                examples.append(Example(tuple(Turn(m["role"], m["content"])
                                              for m in raw["messages"]), int(raw.get("line", 0))))
        return cls(name, examples, [], source, kind)


def check_turns(turns: Sequence[Turn]) -> str | None:
    """Why these turns cannot be an example, or None when they can.

    The order most chat templates require: an optional system turn first, then user and
    assistant turns taking turns, starting with the user; no empty turn; at least one answer.
    """
    if not turns:
        return "no messages"
    for number, turn in enumerate(turns, 1):
        if turn.role not in ROLES:
            return (f"message {number} has the role '{turn.role}': use system, user or "
                    "assistant")
        if not turn.content.strip():
            return f"message {number} ({turn.role}) is empty"
    body = list(turns)
    if body[0].role == "system":
        body = body[1:]
    if not body:
        return "only a system message: add a user message and the assistant's answer"
    expected = "user"
    for number, turn in enumerate(body, len(turns) - len(body) + 1):
        if turn.role != expected:
            if turn.role == "system":
                return f"message {number} is a system message: only the first may be one"
            return (f"wrong roles: message {number} is from the {turn.role}, but the "
                    f"{expected} speaks next (user and assistant take turns, user first)")
        expected = "assistant" if expected == "user" else "user"
    if not any(turn.role == "assistant" for turn in body):
        return "no assistant message: nothing to learn (add the answer)"
    if body[-1].role == "user":
        return "the last message is from the user and has no answer"
    return None


def make_example(turns: Iterable[Turn], line: int) -> Example | str:
    """An :class:`Example`, or the reason the turns cannot be one."""
    turns = tuple(turns)
    reason = check_turns(turns)
    return reason if reason else Example(turns, line)
