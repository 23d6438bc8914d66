"""The document index's database file (see :class:`desktop.core.sqlite_store.SqliteStore`)."""

from __future__ import annotations

import sqlite3

from desktop.core.docs.schema import DocStoreError, migrate
from desktop.core.sqlite_store import SqliteStore

DATABASE_NAME = "docs.sqlite3"


class Database(SqliteStore):
    """The index's database; *path* defaults to ``docs.sqlite3`` in the chats folder."""

    FILE_NAME = DATABASE_NAME
    WHAT = "document index"
    DAMAGED = ("If it is damaged, move it elsewhere and NoMoat will start a new one (your "
               "documents are not in it, only their index).")
    BUSY_TIMEOUT_S = 30.0
    Error = DocStoreError

    def _prepare(self, conn: sqlite3.Connection) -> None:
        migrate(conn)
