"""Side-by-side comparisons: blind shuffling of the two set-ups, and the votes users cast.

A set-up is named the way the API names models: a model id, or ``<model>+<preset>``. Votes are
kept in a small SQLite file in the chats folder, written as they are cast; the tally counts
each unordered pair of set-ups once, whichever side each one was shown on.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from desktop.core.paths import get_paths

Winner = Literal["left", "right", "tie"]
WINNERS = ("left", "right", "tie")
VOTES_FILE = "compare.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY,
    left_setup TEXT NOT NULL,
    right_setup TEXT NOT NULL,
    winner TEXT NOT NULL CHECK (winner IN ('left', 'right', 'tie')),
    blind INTEGER NOT NULL,
    prompt TEXT,
    cast_at REAL NOT NULL
)
"""


class CompareError(ValueError):
    """A vote cannot be stored; the message says why."""


@dataclass(frozen=True)
class Vote:
    left: str
    right: str
    winner: Winner
    blind: bool
    prompt: str | None
    cast_at: float

    @property
    def preferred(self) -> str | None:
        """The set-up that won, or None for a tie."""
        return {"left": self.left, "right": self.right}.get(self.winner)


@dataclass(frozen=True)
class PairTally:
    """Votes between two set-ups; ``first`` sorts before ``second``."""

    first: str
    second: str
    first_wins: int = 0
    second_wins: int = 0
    ties: int = 0

    @property
    def total(self) -> int:
        return self.first_wins + self.second_wins + self.ties

    def wins_of(self, setup: str) -> int:
        if setup == self.first:
            return self.first_wins
        if setup == self.second:
            return self.second_wins
        raise KeyError(setup)


def blind_sides(a: str, b: str, rng: random.Random | None = None) -> tuple[str, str]:
    """Put *a* and *b* on the left and right at random, for a blind comparison."""
    pick = (rng or random.SystemRandom()).random() < 0.5
    return (a, b) if pick else (b, a)


class VoteStore:
    """The votes file: record votes as they are cast, read them back, tally them."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else get_paths().chats / VOTES_FILE

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            with db:  # one transaction per operation, committed on success
                yield db

    def record(self, left: str, right: str, winner: Winner, *, blind: bool = False,
               prompt: str | None = None) -> Vote:
        """Store one vote at once and return it."""
        if winner not in WINNERS:
            raise CompareError(f"A vote is 'left', 'right' or 'tie', not {winner!r}.")
        if not left or not right:
            raise CompareError("Both sides of a comparison need a set-up.")
        if left == right:
            raise CompareError(f"Both sides are '{left}': compare two different set-ups.")
        vote = Vote(left, right, winner, blind, prompt, time.time())
        with self._connect() as db:
            db.execute("INSERT INTO votes (left_setup, right_setup, winner, blind, prompt, "
                       "cast_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (left, right, winner, int(blind), prompt, vote.cast_at))
        return vote

    def votes(self) -> list[Vote]:
        """Every vote, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT left_setup, right_setup, winner, blind, prompt, cast_at "
                              "FROM votes ORDER BY id").fetchall()
        return [Vote(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    def tally(self) -> list[PairTally]:
        """One tally per pair of set-ups that has votes, most voted first."""
        counts: dict[tuple[str, str], list[int]] = {}
        for vote in self.votes():
            first, second = sorted((vote.left, vote.right))
            row = counts.setdefault((first, second), [0, 0, 0])
            if vote.preferred is None:
                row[2] += 1
            elif vote.preferred == first:
                row[0] += 1
            else:
                row[1] += 1
        tallies = [PairTally(a, b, *row) for (a, b), row in counts.items()]
        return sorted(tallies, key=lambda t: (-t.total, t.first, t.second))

    def tally_for(self, a: str, b: str) -> PairTally:
        """The tally between *a* and *b* (all zero when they have no votes yet)."""
        first, second = sorted((a, b))
        for tally in self.tally():
            if (tally.first, tally.second) == (first, second):
                return tally
        return PairTally(first, second)
