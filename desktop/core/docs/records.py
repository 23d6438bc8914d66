"""What the document index holds, as plain data: collections, their files, stored chunks."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

CollectionState = Literal["new", "indexed", "incomplete"]
FileState = Literal["indexed", "unreadable"]


class CollectionNotFound(LookupError):
    """No collection has that id; it may have been deleted."""


@dataclass(frozen=True)
class Collection:
    """A named set of folders and files, with what its index holds.

    ``state`` is "new" before its first indexing, "indexed" when the last one finished, and
    "incomplete" when one began and did not finish (stopped, or the app was closed or crashed:
    indexing again picks up where it was).
    """

    id: int
    name: str
    created: float
    roots: tuple[str, ...]
    files: int
    chunks: int
    unreadable: int
    scan_started: float | None
    scan_finished: float | None

    @property
    def state(self) -> CollectionState:
        """Whether the collection has been indexed, fully or in part."""
        if self.scan_started is None:
            return "new"
        if self.scan_finished is not None and self.scan_finished >= self.scan_started:
            return "indexed"
        return "incomplete"


@dataclass(frozen=True)
class FileRecord:
    """One file of a collection: when it was seen (size, mtime, content hash) and how it went.

    ``error`` is why an unreadable file could not be read, or for an indexed one the parts that
    could not be (a damaged page); None when all went well.
    """

    id: int
    collection_id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    state: FileState
    error: str | None
    kind: str | None
    chunks: int
    model_id: str | None
    indexed: float

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> FileRecord:
        return cls(row["id"], row["collection_id"], row["path"], row["size"], row["mtime_ns"],
                   row["hash"], row["state"], row["error"], row["kind"], row["chunks"],
                   row["model_id"], row["indexed"])


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as stored: its id, its file's path, and where in the file it is."""

    id: int
    file_id: int
    path: str
    ordinal: int
    page: int | None
    heading: str | None
    text: str
