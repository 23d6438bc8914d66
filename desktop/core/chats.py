"""The conversation store: every chat, saved in SQLite as it happens.

A user message is written when it is sent; a reply is written as a row in state "streaming" when
it starts and saved again as it grows, so a crash or a kill loses at most the text since the last
save. On open, replies left streaming become "stopped" with their saved text kept.

The database uses WAL, a schema version (``PRAGMA user_version``) and an ordered list of
migrations applied at open. One connection per store, guarded by a lock, so any thread may call it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from desktop.core.paths import get_paths

DEFAULT_TITLE = "New chat"
DATABASE_NAME = "conversations.sqlite3"
ROLES = ("system", "user", "assistant")
STATES = ("complete", "streaming", "stopped", "error")
FINISHED_STATES = ("complete", "stopped", "error")

Role = Literal["system", "user", "assistant"]
State = Literal["complete", "streaming", "stopped", "error"]


class ChatStoreError(Exception):
    """The conversation database cannot be used; the message says why and what to do."""


class ConversationNotFound(LookupError):
    """No conversation (or message) has that id; it may have been deleted."""


# -- schema and migrations -----------------------------------------------------------------------

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


Migration = Callable[[sqlite3.Connection], None]

#: Step *n* (counting from 1) takes a database from version n-1 to version n. Append only.
MIGRATIONS: tuple[Migration, ...] = (_v1_conversations_and_messages, _v2_adapter_preset)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a new, empty one)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS,
            target: int | None = None) -> int:
    """Apply the missing steps of *migrations* up to *target* (default: all); return the version.

    Each step runs in its own transaction together with the version bump, so a failing step
    leaves the database at the last version that worked. *conn* must be in autocommit mode
    (``isolation_level=None``).
    """
    target = len(migrations) if target is None else target
    version = schema_version(conn)
    if version > len(migrations):
        raise ChatStoreError(
            f"The conversation database was made by a newer version of NoMoat (schema "
            f"{version}; this version knows up to {len(migrations)}). Update NoMoat to open it.")
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


# -- records -------------------------------------------------------------------------------------

def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _load_json(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class Conversation:
    """One conversation's own fields; its messages come from :meth:`ChatStore.messages`."""

    id: int
    title: str
    created: datetime
    updated: datetime
    system_prompt: str
    model_id: str | None
    adapter_preset: str | None
    settings: dict[str, Any]

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Conversation:
        return cls(row["id"], row["title"], _when(row["created"]), _when(row["updated"]),
                   row["system_prompt"], row["model_id"], row["adapter_preset"],
                   json.loads(row["settings"]))


@dataclass(frozen=True)
class Message:
    """One turn. ``settings`` is the sampling a reply was made with; timings are in seconds."""

    id: int
    conversation_id: int
    position: int
    role: Role
    content: str
    created: datetime
    model_id: str | None = None
    settings: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds_to_first_token: float | None = None
    tokens_per_second: float | None = None
    state: State = "complete"
    error: str | None = None

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Message:
        return cls(row["id"], row["conversation_id"], row["position"], row["role"],
                   row["content"], _when(row["created"]), row["model_id"],
                   _load_json(row["settings"]), row["prompt_tokens"], row["completion_tokens"],
                   row["seconds_to_first_token"], row["tokens_per_second"], row["state"],
                   row["error"])

    def as_chat(self) -> dict[str, str]:
        """The message as the OpenAI chat API takes it."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ConversationEntry:
    """A conversation as the sidebar lists it, with the date group it falls under."""

    conversation: Conversation
    group: str


@dataclass(frozen=True)
class SearchHit:
    """A conversation that matches a search; ``message_id`` is None when only the title did."""

    conversation: Conversation
    message_id: int | None
    snippet: str


# -- pure helpers --------------------------------------------------------------------------------

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def date_group(when: datetime, now: datetime | None = None) -> str:
    """The sidebar group for a conversation last active at *when*, seen from *now*.

    Calendar days in *now*'s time zone (local time by default): "Today", "Yesterday",
    "Previous 7 days", "Previous 30 days", then "Month Year" in English.
    """
    now = now if now is not None else datetime.now().astimezone()
    # A naive *now* means local time; compare calendar days in one zone.
    when = when.astimezone(now.tzinfo) if now.tzinfo is not None else when.astimezone()
    days = (now.date() - when.date()).days
    if days <= 0:  # today, or a clock that was ahead
        return "Today"
    if days == 1:
        return "Yesterday"
    if days <= 7:
        return "Previous 7 days"
    if days <= 30:
        return "Previous 30 days"
    return f"{_MONTHS[when.month - 1]} {when.year}"


_MARKUP_ONLY = re.compile(r"^(?:[#>*_`~\-=|]+|```\S*)$")


def title_from_message(text: str, words: int = 6, limit: int = 60) -> str:
    """A conversation title from a first message: its first *words* words, trimmed.

    Lone Markdown markers (``#``, ``>``, fences) are skipped; returns "" when nothing is left.
    """
    kept = [word for word in text.split() if not _MARKUP_ONLY.match(word)][:words]
    title = " ".join(kept).rstrip(".,;:!?-–—")
    if len(title) > limit:
        title = title[:limit].rstrip() + "…"
    return title


Turn = TypeVar("Turn", Message, Mapping[str, Any])


def _role_and_text(turn: Message | Mapping[str, Any]) -> tuple[str, str]:
    if isinstance(turn, Message):
        return turn.role, turn.content
    return str(turn["role"]), str(turn.get("content") or "")


@dataclass(frozen=True)
class ContextFit:
    """What goes into the prompt: the kept messages, how many older ones were left out, and the
    tokens counted for the kept ones. ``fits`` is False when even the minimum is over budget."""

    messages: list[Any]
    left_out: int
    tokens: int
    fits: bool


def fit_context(messages: Sequence[Turn], count_tokens: Callable[[str], int], budget: int,
                per_message: int = 4) -> ContextFit:
    """Keep the system messages and the newest turns whose tokens fit in *budget*.

    *budget* is the context length less the room kept for the reply. Each message costs its
    text's tokens plus *per_message* for the chat template's role markers. Turns are dropped
    oldest first and never from the middle; the newest message is always kept; a kept part
    never starts with an assistant turn, which strict chat templates reject.
    """
    cost = [count_tokens(_role_and_text(turn)[1]) + per_message for turn in messages]
    system = [i for i, turn in enumerate(messages) if _role_and_text(turn)[0] == "system"]
    others = [i for i, turn in enumerate(messages) if _role_and_text(turn)[0] != "system"]
    used = sum(cost[i] for i in system)
    kept: list[int] = []
    for index in reversed(others):
        if kept and used + cost[index] > budget:
            break
        kept.append(index)
        used += cost[index]
    kept.reverse()
    while len(kept) > 1 and _role_and_text(messages[kept[0]])[0] == "assistant":
        used -= cost[kept.pop(0)]
    chosen = sorted(system + kept)
    return ContextFit([messages[i] for i in chosen], len(others) - len(kept), used,
                      used <= budget)


def prompt_messages(conversation: Conversation,
                    messages: Sequence[Message]) -> list[dict[str, str]]:
    """The chat API messages for *conversation*: its system prompt, then every turn that has
    text (replies that failed with nothing written, or are still streaming, are skipped)."""
    chat: list[dict[str, str]] = []
    if conversation.system_prompt.strip():
        chat.append({"role": "system", "content": conversation.system_prompt})
    for message in messages:
        if message.state == "streaming" or (message.role == "assistant" and not message.content):
            continue
        chat.append(message.as_chat())
    return chat


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def export_markdown(conversation: Conversation, messages: Sequence[Message]) -> str:
    """The conversation as a Markdown document: title, system prompt, one heading per turn."""
    parts = [f"# {conversation.title}", ""]
    if conversation.system_prompt.strip():
        parts += ["## System prompt", "", conversation.system_prompt.strip(), ""]
    for message in messages:
        heading = message.role.capitalize()
        if message.role == "assistant" and message.model_id:
            heading += f" ({message.model_id})"
        parts += [f"## {heading}", "", message.content.strip()]
        if message.state == "stopped":
            parts += ["", "*(stopped before the end)*"]
        elif message.state == "error":
            parts += ["", f"*(failed: {message.error or 'unknown error'})*"]
        parts.append("")
    return "\n".join(parts)


def export_json(conversation: Conversation, messages: Sequence[Message]) -> str:
    """The conversation as JSON: every message with its model, settings, tokens and timings."""
    document = {
        "format": "nomoat-conversation",
        "version": 1,
        "title": conversation.title,
        "created": _iso(conversation.created),
        "updated": _iso(conversation.updated),
        "system_prompt": conversation.system_prompt,
        "model": conversation.model_id,
        "adapter_preset": conversation.adapter_preset,
        "settings": conversation.settings,
        "messages": [{
            "role": m.role,
            "content": m.content,
            "created": _iso(m.created),
            "model": m.model_id,
            "settings": m.settings,
            "prompt_tokens": m.prompt_tokens,
            "completion_tokens": m.completion_tokens,
            "seconds_to_first_token": m.seconds_to_first_token,
            "tokens_per_second": m.tokens_per_second,
            "state": m.state,
            "error": m.error,
        } for m in messages],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _clean_title(title: str) -> str:
    # One line, single spaces: titles sit in the sidebar and in Markdown headings.
    return " ".join(title.split()) or DEFAULT_TITLE


def _fold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _snippet(text: str, needle: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    found = re.search(re.escape(needle), flat, re.IGNORECASE)
    start = max(0, found.start() - width // 3) if found else 0
    piece = flat[start:start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


# -- the store -----------------------------------------------------------------------------------

_CONVERSATION_COLUMNS = ("id, title, created, updated, system_prompt, model_id, adapter_preset, "
                         "settings")


class ChatStore:
    """Conversations and their messages in one SQLite database; safe to call from any thread.

    Use ``with ChatStore() as store:`` or ``store = ChatStore().open()`` … ``store.close()``.
    *path* defaults to ``conversations.sqlite3`` in the chats folder; *clock* gives the time in
    seconds since the epoch (tests pass their own).
    """

    def __init__(self, path: str | Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else get_paths().chats / DATABASE_NAME
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        #: How many replies were found cut off (left "streaming") when the store was opened.
        self.recovered = 0

    # -- lifetime ----------------------------------------------------------------------------
    def open(self) -> Self:
        """Open (creating or migrating) the database; mark replies cut off by a crash stopped."""
        with self._lock:
            if self._conn is not None:
                return self
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode = WAL")
                # With WAL, NORMAL keeps every commit across a crash of the app; only a power
                # cut can cost the last commits.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.create_function("nomoat_fold", 1, _fold, deterministic=True)
                migrate(conn)
                self.recovered = conn.execute(
                    "UPDATE messages SET state = 'stopped' WHERE state = 'streaming'").rowcount
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise ChatStoreError(
                    f"The conversation database {self.path} cannot be opened ({exc}). If it is "
                    "damaged, move it elsewhere and NoMoat will start a new one.") from exc
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

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ChatStoreError("The conversation store is closed; open it first.")
        return self._conn

    def _read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._require().execute(sql, params).fetchall()

    # -- conversations -----------------------------------------------------------------------
    def create_conversation(self, title: str = DEFAULT_TITLE, *, system_prompt: str = "",
                            model_id: str | None = None, settings: Mapping[str, Any] | None = None,
                            adapter_preset: str | None = None) -> Conversation:
        """Start a conversation and return it."""
        now = self._clock()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO conversations (title, created, updated, system_prompt, model_id, "
                "adapter_preset, settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_clean_title(title), now, now, system_prompt, model_id, adapter_preset,
                 json.dumps(dict(settings or {}))))
            return self._conversation(conn, int(cursor.lastrowid or 0))

    def conversation(self, conversation_id: int) -> Conversation:
        """One conversation; ConversationNotFound if it does not exist."""
        with self._lock:
            return self._conversation(self._require(), conversation_id)

    def _conversation(self, conn: sqlite3.Connection, conversation_id: int) -> Conversation:
        row = conn.execute(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?",
                           (conversation_id,)).fetchone()
        if row is None:
            raise ConversationNotFound(f"There is no conversation {conversation_id}.")
        return Conversation._from_row(row)

    def list_conversations(self, now: datetime | None = None) -> list[ConversationEntry]:
        """Every conversation, most recently active first, each with its date group."""
        rows = self._read(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations "
                          "ORDER BY updated DESC, id DESC")
        listed = [Conversation._from_row(row) for row in rows]
        return [ConversationEntry(c, date_group(c.updated, now)) for c in listed]

    def search(self, text: str, limit: int = 100) -> list[SearchHit]:
        """Conversations whose title or any message contains *text*, most recent first.

        Case-insensitive for every script (not only ASCII); ``%`` and ``_`` match themselves.
        """
        needle = text.strip().casefold()
        if not needle:
            return []
        with self._lock:  # one lock for both queries: a hit's message cannot vanish between
            return self._search(needle, text.strip(), limit)

    def _search(self, needle: str, shown: str, limit: int) -> list[SearchHit]:
        rows = self._read(
            f"SELECT {_CONVERSATION_COLUMNS}, "
            "  (SELECT m.id FROM messages m WHERE m.conversation_id = c.id "
            "     AND instr(nomoat_fold(m.content), :needle) > 0 "
            "     ORDER BY m.position LIMIT 1) AS message_id "
            "FROM conversations c "
            "WHERE instr(nomoat_fold(c.title), :needle) > 0 OR message_id IS NOT NULL "
            "ORDER BY c.updated DESC, c.id DESC LIMIT :limit",
            {"needle": needle, "limit": limit})
        hits = []
        for row in rows:
            conversation = Conversation._from_row(row)
            message_id = row["message_id"]
            if message_id is None:
                snippet = conversation.title
            else:
                content = self._read("SELECT content FROM messages WHERE id = ?",
                                     (message_id,))[0]["content"]
                snippet = _snippet(content, shown)
            hits.append(SearchHit(conversation, message_id, snippet))
        return hits

    def _set(self, conversation_id: int, column: str, value: Any) -> Conversation:
        with self._write() as conn:
            changed = conn.execute(f"UPDATE conversations SET {column} = ? WHERE id = ?",
                                   (value, conversation_id)).rowcount
            if not changed:
                raise ConversationNotFound(f"There is no conversation {conversation_id}.")
            return self._conversation(conn, conversation_id)

    def rename(self, conversation_id: int, title: str) -> Conversation:
        """Give a conversation a new title (blank titles become "New chat")."""
        return self._set(conversation_id, "title", _clean_title(title))

    def set_system_prompt(self, conversation_id: int, system_prompt: str) -> Conversation:
        """Set the system prompt used for the conversation's next replies."""
        return self._set(conversation_id, "system_prompt", system_prompt)

    def set_model(self, conversation_id: int, model_id: str | None) -> Conversation:
        """Set the model the conversation's next replies come from."""
        return self._set(conversation_id, "model_id", model_id)

    def set_adapter_preset(self, conversation_id: int, preset: str | None) -> Conversation:
        """Set the LoRA adapter preset the conversation uses (None for none)."""
        return self._set(conversation_id, "adapter_preset", preset)

    def rename_adapter_preset(self, name: str, new_name: str) -> int:
        """Conversations that use the preset *name* use *new_name* from now on; returns how many."""
        with self._write() as conn:
            return conn.execute("UPDATE conversations SET adapter_preset = ? "
                                "WHERE adapter_preset = ?", (new_name, name)).rowcount

    def set_settings(self, conversation_id: int, settings: Mapping[str, Any]) -> Conversation:
        """Replace the conversation's sampling settings (a JSON-compatible mapping)."""
        return self._set(conversation_id, "settings", json.dumps(dict(settings)))

    def delete(self, conversation_id: int) -> bool:
        """Delete a conversation and all its messages; False if it was already gone."""
        with self._write() as conn:
            return bool(conn.execute("DELETE FROM conversations WHERE id = ?",
                                     (conversation_id,)).rowcount)

    # -- messages ----------------------------------------------------------------------------
    def messages(self, conversation_id: int) -> list[Message]:
        """The conversation's messages in order."""
        rows = self._read("SELECT * FROM messages WHERE conversation_id = ? ORDER BY position",
                          (conversation_id,))
        return [Message._from_row(row) for row in rows]

    def message(self, message_id: int) -> Message:
        """One message; ConversationNotFound if it does not exist."""
        with self._lock:
            return self._message(self._require(), message_id)

    def _message(self, conn: sqlite3.Connection, message_id: int) -> Message:
        row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise ConversationNotFound(f"There is no message {message_id}.")
        return Message._from_row(row)

    def _append(self, conn: sqlite3.Connection, conversation_id: int, role: str, content: str,
                state: str, model_id: str | None, settings: Mapping[str, Any] | None) -> Message:
        if role not in ROLES:
            raise ValueError(f"A message's role must be one of {', '.join(ROLES)}, not {role!r}.")
        conversation = self._conversation(conn, conversation_id)
        now = self._clock()
        position = conn.execute(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM messages WHERE conversation_id = ?",
            (conversation_id,)).fetchone()[0]
        cursor = conn.execute(
            "INSERT INTO messages (conversation_id, position, role, content, created, model_id, "
            "settings, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, position, role, content, now, model_id,
             None if settings is None else json.dumps(dict(settings)), state))
        title = conversation.title
        if role == "user" and title == DEFAULT_TITLE:
            title = title_from_message(content) or DEFAULT_TITLE
        conn.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?",
                     (now, title, conversation_id))
        return self._message(conn, int(cursor.lastrowid or 0))

    def add_message(self, conversation_id: int, role: Role, content: str, *,
                    model_id: str | None = None,
                    settings: Mapping[str, Any] | None = None) -> Message:
        """Append a finished message (a user message as it is sent, say).

        The first user message of a conversation still called "New chat" also names it.
        """
        with self._write() as conn:
            return self._append(conn, conversation_id, role, content, "complete", model_id,
                                settings)

    def begin_reply(self, conversation_id: int, model_id: str | None = None,
                    settings: Mapping[str, Any] | None = None) -> Message:
        """Append an empty assistant message in state "streaming", to be filled as it grows."""
        with self._write() as conn:
            return self._append(conn, conversation_id, "assistant", "", "streaming", model_id,
                                settings)

    def update_reply(self, message_id: int, content: str) -> bool:
        """Save the text a streaming reply has so far (cheap: one row, one commit).

        Returns False, changing nothing, if the reply is gone or already finished, so a late
        save from a worker can never overwrite the final text.
        """
        with self._write() as conn:
            return bool(conn.execute(
                "UPDATE messages SET content = ? WHERE id = ? AND state = 'streaming'",
                (content, message_id)).rowcount)

    def finish_reply(self, message_id: int, content: str, state: State = "complete", *,
                     prompt_tokens: int | None = None, completion_tokens: int | None = None,
                     seconds_to_first_token: float | None = None,
                     tokens_per_second: float | None = None,
                     error: str | None = None) -> Message:
        """Save a reply's final text, how it ended ("complete", "stopped" or "error"), its
        token counts and its timings. ConversationNotFound if the reply was deleted meanwhile."""
        if state not in FINISHED_STATES:
            raise ValueError(f"A finished reply's state must be one of "
                             f"{', '.join(FINISHED_STATES)}, not {state!r}.")
        with self._write() as conn:
            message = self._message(conn, message_id)
            conn.execute(
                "UPDATE messages SET content = ?, state = ?, prompt_tokens = ?, "
                "completion_tokens = ?, seconds_to_first_token = ?, tokens_per_second = ?, "
                "error = ? WHERE id = ?",
                (content, state, prompt_tokens, completion_tokens, seconds_to_first_token,
                 tokens_per_second, error, message_id))
            conn.execute("UPDATE conversations SET updated = ? WHERE id = ?",
                         (self._clock(), message.conversation_id))
            return self._message(conn, message_id)

    def edit_message(self, message_id: int, content: str) -> Message:
        """Replace a message's text (for "edit and send again", followed by truncate_after)."""
        with self._write() as conn:
            if not conn.execute("UPDATE messages SET content = ? WHERE id = ?",
                                (content, message_id)).rowcount:
                raise ConversationNotFound(f"There is no message {message_id}.")
            return self._message(conn, message_id)

    def truncate_after(self, message_id: int) -> int:
        """Delete every message after *message_id* in its conversation; return how many.

        Edit-and-resend truncates after the edited user message; regenerate truncates after
        the user message the reply answered.
        """
        with self._write() as conn:
            message = self._message(conn, message_id)
            deleted = conn.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND position > ?",
                (message.conversation_id, message.position)).rowcount
            conn.execute("UPDATE conversations SET updated = ? WHERE id = ?",
                         (self._clock(), message.conversation_id))
            return deleted

    # -- export --------------------------------------------------------------------------------
    def export_markdown(self, conversation_id: int) -> str:
        """The conversation as Markdown (see :func:`export_markdown`)."""
        with self._lock:
            return export_markdown(self.conversation(conversation_id),
                                   self.messages(conversation_id))

    def export_json(self, conversation_id: int) -> str:
        """The conversation as JSON (see :func:`export_json`)."""
        with self._lock:
            return export_json(self.conversation(conversation_id), self.messages(conversation_id))


class ReplyWriter:
    """Saves a streaming reply as it grows, at most once per *interval* seconds.

    A worker calls :meth:`append` with each piece of text and :meth:`finish` at the end; between
    saves the text lives only here, so a crash loses at most *interval* seconds of the reply.
    """

    def __init__(self, store: ChatStore, message_id: int, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.message_id = message_id
        self.interval = interval
        self._clock = clock
        self._pieces: list[str] = []
        self._saved_at = clock()
        self._dirty = False

    @property
    def text(self) -> str:
        """The reply so far."""
        return "".join(self._pieces)

    def append(self, piece: str) -> bool:
        """Add *piece*; save if the last save is *interval* old. Returns whether it saved."""
        self._pieces.append(piece)
        self._dirty = True
        if self._clock() - self._saved_at >= self.interval:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Save the text so far now, if anything changed since the last save."""
        if self._dirty:
            self.store.update_reply(self.message_id, self.text)
            self._dirty = False
        self._saved_at = self._clock()

    def finish(self, state: State = "complete", **details: Any) -> Message:
        """Save the final text and how the reply ended (see :meth:`ChatStore.finish_reply`)."""
        self._dirty = False
        return self.store.finish_reply(self.message_id, self.text, state, **details)
