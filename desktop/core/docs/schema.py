"""The document index's schema: the ordered migrations applied when it is opened, and the
version recorded in it (``PRAGMA user_version``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from desktop.core.sqlite_schema import Migration, apply_steps, schema_version

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "DocStoreError", "Migration", "migrate",
           "schema_version"]


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


#: Step *n* (counting from 1) takes a database from version n-1 to version n. Append only.
MIGRATIONS: tuple[Migration, ...] = (_v1_collections_files_chunks,)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing steps of *migrations*; return the version reached (see
    :func:`desktop.core.sqlite_schema.apply_steps`)."""
    return apply_steps(conn, migrations, len(migrations), _newer)


def _newer(version: int, known: int) -> DocStoreError:
    return DocStoreError(
        f"The document index was made by a newer version of NoMoat (schema {version}; this "
        f"version knows up to {known}). Update NoMoat to open it.")
