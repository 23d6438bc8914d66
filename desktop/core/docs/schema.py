"""The document index's schema: the ordered migrations applied when it is opened, and the
version recorded in it (``PRAGMA user_version``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence


class DocStoreError(Exception):
    """The document index cannot be used; the message says why and what to do."""


def _v1_collections_files_chunks(conn: sqlite3.Connection) -> None:
    # A collection's generation grows with every change to its files, so a search can tell
    # whether the vectors it holds in memory are still current (in this process or another).
    conn.execute("""
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            scan_started REAL,
            scan_finished REAL,
            generation INTEGER NOT NULL DEFAULT 0
        )""")
    conn.execute("""
        CREATE TABLE roots (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            added REAL NOT NULL,
            UNIQUE (collection_id, path)
        )""")
    # One row per file found under a root: indexed (with its chunks) or unreadable (with the
    # reason in ``error``). ``error`` on an indexed file notes parts that could not be read.
    conn.execute("""
        CREATE TABLE files (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            hash TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('indexed', 'unreadable')),
            error TEXT,
            kind TEXT,
            chunks INTEGER NOT NULL DEFAULT 0,
            model_id TEXT,
            indexed REAL NOT NULL,
            UNIQUE (collection_id, path)
        )""")
    conn.execute("CREATE INDEX files_by_hash ON files (collection_id, hash)")
    conn.execute("""
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            page INTEGER,
            heading TEXT,
            text TEXT NOT NULL,
            UNIQUE (file_id, ordinal)
        )""")
    # Full-text index over the chunks' text and headings; the text itself is stored once, in
    # chunks, and the triggers keep the index in step (cascaded deletes fire them too).
    conn.execute("""
        CREATE VIRTUAL TABLE chunk_text USING fts5(
            text, heading, content = 'chunks', content_rowid = 'id',
            tokenize = 'unicode61 remove_diacritics 2'
        )""")
    conn.execute("""
        CREATE TRIGGER chunks_indexed AFTER INSERT ON chunks BEGIN
            INSERT INTO chunk_text (rowid, text, heading) VALUES (new.id, new.text, new.heading);
        END""")
    conn.execute("""
        CREATE TRIGGER chunks_unindexed AFTER DELETE ON chunks BEGIN
            INSERT INTO chunk_text (chunk_text, rowid, text, heading)
                VALUES ('delete', old.id, old.text, old.heading);
        END""")
    conn.execute("""
        CREATE TRIGGER chunks_reindexed AFTER UPDATE ON chunks BEGIN
            INSERT INTO chunk_text (chunk_text, rowid, text, heading)
                VALUES ('delete', old.id, old.text, old.heading);
            INSERT INTO chunk_text (rowid, text, heading) VALUES (new.id, new.text, new.heading);
        END""")
    # Each chunk's embedding: float32 values, little-endian, with the model that made it.
    conn.execute("""
        CREATE TABLE vectors (
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
            model_id TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL
        )""")


Migration = Callable[[sqlite3.Connection], None]

#: Step *n* (counting from 1) takes a database from version n-1 to version n. Append only.
MIGRATIONS: tuple[Migration, ...] = (_v1_collections_files_chunks,)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a new, empty one)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing steps of *migrations*; return the version reached.

    Each step runs in its own transaction with the version bump, so a failing step leaves the
    database at the last version that worked. *conn* must be in autocommit mode.
    """
    version = schema_version(conn)
    if version > len(migrations):
        raise DocStoreError(
            f"The document index was made by a newer version of NoMoat (schema {version}; this "
            f"version knows up to {len(migrations)}). Update NoMoat to open it.")
    for number in range(version + 1, len(migrations) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrations[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {int(number)}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return schema_version(conn)
