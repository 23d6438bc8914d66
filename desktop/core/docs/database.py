"""The document index's connection: opening (creating or migrating) the SQLite database in
WAL mode, and its transactions. One connection, guarded by a lock, so any thread may use it."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from desktop.core.docs.schema import DocStoreError, migrate
from desktop.core.paths import get_paths

DATABASE_NAME = "docs.sqlite3"


class Database:
    """The index's database; *path* defaults to ``docs.sqlite3`` in the chats folder."""

    def __init__(self, path: str | Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else get_paths().chats / DATABASE_NAME
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    # -- lifetime ----------------------------------------------------------------------------
    def open(self) -> Self:
        """Open (creating or migrating) the database."""
        with self._lock:
            if self._conn is not None:
                return self
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # every commit survives an app crash
                conn.execute("PRAGMA foreign_keys = ON")
                migrate(conn)
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise DocStoreError(
                    f"The document index {self.path} cannot be opened ({exc}). If it is "
                    "damaged, move it elsewhere and NoMoat will start a new one (your "
                    "documents are not in it, only their index).") from exc
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

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DocStoreError("The document index is closed; open it first.")
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
