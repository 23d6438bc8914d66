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
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from desktop.core.chat_export import export_json, export_markdown
from desktop.core.chat_records import (
    DEFAULT_TITLE,
    Conversation,
    ConversationEntry,
    Message,
    Role,
    SearchHit,
    Source,
    State,
    date_group,
    sources_to_text,
    title_from_message,
)
from desktop.core.chat_schema import ChatStoreError, migrate
from desktop.core.sqlite_store import SqliteStore
from desktop.core.tool_calls import (
    CallState,
    ToolCall,
    ToolStep,
    steps_from_text,
    steps_to_text,
)

DATABASE_NAME = "conversations.sqlite3"
ROLES = ("system", "user", "assistant")
FINISHED_STATES = ("complete", "stopped", "error")

__all__ = ["DATABASE_NAME", "ChatStore", "ChatStoreError", "Conversation", "ConversationEntry",
           "ConversationNotFound", "Message", "ReplyWriter", "SearchHit", "Source"]


class ConversationNotFound(LookupError):
    """No conversation (or message) has that id; it may have been deleted."""


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


def _stop_unfinished_calls(conn: sqlite3.Connection) -> None:
    """Tool calls of replies cut off by a crash, still asking or running, are marked stopped."""
    rows = conn.execute("SELECT id, tool_steps FROM messages "
                        "WHERE state = 'streaming' AND tool_steps != '[]'").fetchall()
    for row in rows:
        steps = steps_from_text(row["tool_steps"])
        for step in steps:
            for call in step.calls:
                if not call.ended:
                    call.finish(CallState.STOPPED, "NoMoat closed before this call ended.")
        conn.execute("UPDATE messages SET tool_steps = ? WHERE id = ?",
                     (steps_to_text(steps), row["id"]))


class ChatStore(SqliteStore):
    """Conversations and their messages in one SQLite database; safe to call from any thread.

    Use ``with ChatStore() as store:`` or ``store = ChatStore().open()`` … ``store.close()``.
    *path* defaults to ``conversations.sqlite3`` in the chats folder; *clock* gives the time in
    seconds since the epoch (tests pass their own).
    """

    FILE_NAME = DATABASE_NAME
    WHAT = "conversation database"
    Error = ChatStoreError

    def __init__(self, path: str | Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(path, clock)
        #: How many replies were found cut off (left "streaming") when the store was opened.
        self.recovered = 0

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Migrate; mark replies cut off by a crash (and their unfinished calls) stopped."""
        conn.create_function("nomoat_fold", 1, _fold, deterministic=True)
        migrate(conn)
        _stop_unfinished_calls(conn)
        self.recovered = conn.execute(
            "UPDATE messages SET state = 'stopped' WHERE state = 'streaming'").rowcount

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

    def rename_in_settings(self, key: str, name: str, new_name: str) -> int:
        """Conversations whose settings list *name* under *key* (the document collections
        they answer from, say) list *new_name* instead; returns how many."""
        with self._write() as conn:
            changed = 0
            for row in conn.execute("SELECT id, settings FROM conversations").fetchall():
                settings = json.loads(row["settings"])
                listed = settings.get(key)
                if not isinstance(listed, list) or name not in listed:
                    continue
                settings[key] = [new_name if item == name else item for item in listed]
                conn.execute("UPDATE conversations SET settings = ? WHERE id = ?",
                             (json.dumps(settings), row["id"]))
                changed += 1
            return changed

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
                    settings: Mapping[str, Any] | None = None,
                    sources: Sequence[Source] = ()) -> Message:
        """Append an empty assistant message in state "streaming", to be filled as it grows,
        with the passages of the user's documents it answers from (*sources*)."""
        with self._write() as conn:
            reply = self._append(conn, conversation_id, "assistant", "", "streaming", model_id,
                                 settings)
            if not sources:
                return reply
            conn.execute("UPDATE messages SET sources = ? WHERE id = ?",
                         (sources_to_text(sources), reply.id))
            return self._message(conn, reply.id)

    def set_sources(self, message_id: int, sources: Sequence[Source]) -> bool:
        """Give a streaming reply the passages it answers from (found once it was begun).
        False, changing nothing, if the reply is gone or already finished."""
        with self._write() as conn:
            return bool(conn.execute(
                "UPDATE messages SET sources = ? WHERE id = ? AND state = 'streaming'",
                (sources_to_text(sources), message_id)).rowcount)

    def update_reply(self, message_id: int, content: str, thinking: str = "",
                     tool_steps: Sequence[ToolStep] | None = None) -> bool:
        """Save the text (and thinking, and tool calls) a streaming reply has so far (cheap: one
        row, one commit). *tool_steps* None keeps the calls saved before.

        Returns False, changing nothing, if the reply is gone or already finished, so a late
        save from a worker can never overwrite the final text.
        """
        with self._write() as conn:
            if tool_steps is None:
                return bool(conn.execute(
                    "UPDATE messages SET content = ?, thinking = ? "
                    "WHERE id = ? AND state = 'streaming'",
                    (content, thinking, message_id)).rowcount)
            return bool(conn.execute(
                "UPDATE messages SET content = ?, thinking = ?, tool_steps = ? "
                "WHERE id = ? AND state = 'streaming'",
                (content, thinking, steps_to_text(list(tool_steps)), message_id)).rowcount)

    def finish_reply(self, message_id: int, content: str, state: State = "complete", *,
                     prompt_tokens: int | None = None, completion_tokens: int | None = None,
                     seconds_to_first_token: float | None = None,
                     tokens_per_second: float | None = None,
                     error: str | None = None, thinking: str | None = None,
                     thought_seconds: float | None = None,
                     tool_steps: Sequence[ToolStep] | None = None) -> Message:
        """Save a reply's final text, how it ended ("complete", "stopped" or "error"), its
        token counts and its timings, its thinking and its tool calls (None keeps what was
        saved).
        ConversationNotFound if the reply was deleted meanwhile."""
        if state not in FINISHED_STATES:
            raise ValueError(f"A finished reply's state must be one of "
                             f"{', '.join(FINISHED_STATES)}, not {state!r}.")
        with self._write() as conn:
            message = self._message(conn, message_id)
            conn.execute(
                "UPDATE messages SET content = ?, state = ?, prompt_tokens = ?, "
                "completion_tokens = ?, seconds_to_first_token = ?, tokens_per_second = ?, "
                "error = ?, thinking = ?, thought_seconds = ?, tool_steps = ? WHERE id = ?",
                (content, state, prompt_tokens, completion_tokens, seconds_to_first_token,
                 tokens_per_second, error, message.thinking if thinking is None else thinking,
                 thought_seconds,
                 steps_to_text(list(message.tool_steps if tool_steps is None else tool_steps)),
                 message_id))
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
        self._thinking: list[str] = []
        self.steps: list[ToolStep] = []  # rounds that ended in tool calls
        self._saved_at = clock()
        self._dirty = False

    @property
    def text(self) -> str:
        """The reply so far."""
        return "".join(self._pieces)

    @property
    def thinking(self) -> str:
        """What the model has thought so far."""
        return "".join(self._thinking)

    def append_thinking(self, piece: str) -> bool:
        """Add *piece* to the thinking; saved with the text (see :meth:`append`)."""
        self._thinking.append(piece)
        return self._grew()

    def append(self, piece: str) -> bool:
        """Add *piece*; save if the last save is *interval* old. Returns whether it saved."""
        self._pieces.append(piece)
        return self._grew()

    def _grew(self) -> bool:
        self._dirty = True
        if self._clock() - self._saved_at >= self.interval:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Save the text so far now, if anything changed since the last save."""
        if self._dirty:
            self.store.update_reply(self.message_id, self.text, self.thinking,
                                    self.steps if self.steps else None)
            self._dirty = False
        self._saved_at = self._clock()

    def begin_calls(self, calls: list[ToolCall]) -> ToolStep:
        """End the round: the text so far and *calls* become a step, saved at once; the text
        of the next round starts empty."""
        step = ToolStep(self.text, calls)
        self.steps.append(step)
        self._pieces.clear()
        self.save_calls()
        return step

    def save_calls(self) -> None:
        """Save now: a call was decided, or its result came (never left for later)."""
        self._dirty = True
        self.flush()

    def finish(self, state: State = "complete", **details: Any) -> Message:
        """Save the final text and how the reply ended (see :meth:`ChatStore.finish_reply`)."""
        self._dirty = False
        return self.store.finish_reply(self.message_id, self.text, state,
                                       thinking=self.thinking, tool_steps=self.steps,
                                       **details)
