"""One SQLite database file of NoMoat's own (the conversations, the document index): opened in
WAL mode and brought to its schema, one connection guarded by a lock so any thread may use it,
and its transactions."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from desktop.core.paths import get_paths


class SqliteStore:
    """Subclasses name the file (in the chats folder unless *path* is given), what it is called
    in messages, the error they raise, and what :meth:`_prepare` does once it is open
    (migrations, recovery)."""

    FILE_NAME = ""
    WHAT = "database"  # in messages: "The <WHAT> cannot be opened …"
    DAMAGED = "If it is damaged, move it elsewhere and NoMoat will start a new one."
    BUSY_TIMEOUT_S = 10.0
    Error: type[Exception] = Exception

    def __init__(self, path: str | Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else get_paths().chats / self.FILE_NAME
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Bring a newly opened database to its schema (raises on a newer one)."""

    # -- lifetime ----------------------------------------------------------------------------
    def open(self) -> Self:
        """Open (creating or migrating) the database; opening it again does nothing."""
        with self._lock:
            if self._conn is not None:
                return self
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode = WAL")
                # With WAL, NORMAL keeps every commit across a crash of the app; only a power
                # cut can cost the last commits.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                self._prepare(conn)
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise self.Error(f"The {self.WHAT} {self.path} cannot be opened ({exc}). "
                                 f"{self.DAMAGED}") from exc
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            return self

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- access ------------------------------------------------------------------------------
    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self.Error(f"The {self.WHAT} is closed; open it first.")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._require()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Reads that must see one state of the database, however others write meanwhile."""
        with self._lock:
            conn = self._require()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._require().execute(sql, params).fetchall()
