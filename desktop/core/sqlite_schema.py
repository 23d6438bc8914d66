"""Schema versions of NoMoat's SQLite databases (conversations, the document index): the
version recorded in the file (``PRAGMA user_version``) and the ordered steps that bring a file
up to date."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

Migration = Callable[[sqlite3.Connection], None]


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a new, empty one)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def apply_steps(conn: sqlite3.Connection, migrations: Sequence[Migration], target: int,
                newer: Callable[[int, int], Exception]) -> int:
    """Apply the missing steps of *migrations* up to *target*; return the version reached.

    Step *n* (from 1) takes a database from version n-1 to n. Each runs in its own transaction
    with the version bump, so a failing step leaves the database at the last version that
    worked. *conn* must be in autocommit mode (``isolation_level=None``). A database newer
    than *migrations* know raises ``newer(its version, the newest known)``.
    """
    version = schema_version(conn)
    if version > len(migrations):
        raise newer(version, len(migrations))
    for number in range(version + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrations[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {int(number)}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return schema_version(conn)
