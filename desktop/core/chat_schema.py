"""The conversation database's schema: the ordered migrations applied when it is opened, and
the version recorded in it (``PRAGMA user_version``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from desktop.core.sqlite_schema import Migration, apply_steps, schema_version

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "ChatStoreError", "Migration", "migrate",
           "schema_version"]


class ChatStoreError(Exception):
    """The conversation database cannot be used; the message says why and what to do."""


def _v1_conversations_and_messages(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            system_prompt TEXT NOT NULL DEFAULT '',
            model_id TEXT,
            settings TEXT NOT NULL DEFAULT '{}'
        )""")
    conn.execute("CREATE INDEX conversations_by_updated ON conversations (updated DESC)")
    # AUTOINCREMENT: a worker still holding the id of a deleted reply must never write into
    # a newer message that reused it.
    conn.execute("""
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            model_id TEXT,
            settings TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            seconds_to_first_token REAL,
            tokens_per_second REAL,
            state TEXT NOT NULL DEFAULT 'complete'
                CHECK (state IN ('complete', 'streaming', 'stopped', 'error')),
            error TEXT,
            UNIQUE (conversation_id, position)
        )""")
    conn.execute("CREATE INDEX messages_streaming ON messages (id) WHERE state = 'streaming'")


def _v2_adapter_preset(conn: sqlite3.Connection) -> None:
    # The LoRA adapters panel remembers which preset a conversation used.
    conn.execute("ALTER TABLE conversations ADD COLUMN adapter_preset TEXT")


def _v3_thinking(conn: sqlite3.Connection) -> None:
    # What a reasoning model thought before its answer, and for how long; kept apart from the
    # answer so it is shown folded and not sent back as something the model said.
    conn.execute("ALTER TABLE messages ADD COLUMN thinking TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE messages ADD COLUMN thought_seconds REAL")


def _v4_tool_steps(conn: sqlite3.Connection) -> None:
    # A reply that called tools: each round's text and its calls with their results, as JSON
    # (see desktop.core.tool_calls); the text after the last round stays in ``content``.
    conn.execute("ALTER TABLE messages ADD COLUMN tool_steps TEXT NOT NULL DEFAULT '[]'")


def _v5_sources(conn: sqlite3.Connection) -> None:
    # The passages of the user's documents a reply was given (JSON: file, page, heading,
    # snippet, score), saved when the reply begins so they are there after a crash too.
    conn.execute("ALTER TABLE messages ADD COLUMN sources TEXT NOT NULL DEFAULT '[]'")


#: Step *n* (counting from 1) takes a database from version n-1 to version n. Append only.
MIGRATIONS: tuple[Migration, ...] = (_v1_conversations_and_messages, _v2_adapter_preset,
                                     _v3_thinking, _v4_tool_steps, _v5_sources)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS,
            target: int | None = None) -> int:
    """Apply the missing steps of *migrations* up to *target* (default: all); return the version
    (see :func:`desktop.core.sqlite_schema.apply_steps`)."""
    return apply_steps(conn, migrations, len(migrations) if target is None else target, _newer)


def _newer(version: int, known: int) -> ChatStoreError:
    return ChatStoreError(
        f"The conversation database was made by a newer version of NoMoat (schema {version}; "
        f"this version knows up to {known}). Update NoMoat to open it.")
