"""What the conversation store holds (conversations, messages, search hits) and the pure
functions around them: sidebar date groups, titles, what fits the context, the prompt."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from desktop.core.tool_calls import ToolStep, steps_as_chat, steps_from_text

DEFAULT_TITLE = "New chat"
#: Characters of a passage kept with a reply as its source's snippet.
SNIPPET_CHARS = 1000

Role = Literal["system", "user", "assistant"]
State = Literal["complete", "streaming", "stopped", "error"]


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
class Source:
    """A passage of the user's documents that a reply was given to answer from: its file, page
    and heading, the passage's text (``snippet``, capped) and its search score."""

    path: str
    page: int | None
    heading: str | None
    snippet: str
    score: float

    def to_json(self) -> dict[str, Any]:
        """The source as saved with its reply and exported."""
        return {"path": self.path, "page": self.page, "heading": self.heading,
                "snippet": self.snippet, "score": self.score}

    @classmethod
    def from_json(cls, raw: Any) -> Source | None:
        """A saved source, or None for an entry that is not one (it is left out)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            return None
        page, heading, score = raw.get("page"), raw.get("heading"), raw.get("score")
        return cls(raw["path"], page if isinstance(page, int) else None,
                   heading if isinstance(heading, str) else None,
                   str(raw.get("snippet") or "")[:SNIPPET_CHARS],
                   float(score) if isinstance(score, (int, float)) else 0.0)


def sources_to_text(sources: Sequence[Source]) -> str:
    """Sources as the JSON text of the ``sources`` column."""
    return json.dumps([source.to_json() for source in sources], ensure_ascii=False)


def sources_from_text(text: str | None) -> tuple[Source, ...]:
    """The sources saved in the ``sources`` column; what cannot be read is left out."""
    try:
        raw = json.loads(text or "[]")
    except ValueError:
        return ()
    found = (Source.from_json(item) for item in raw) if isinstance(raw, list) else ()
    return tuple(source for source in found if source is not None)


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
    thinking: str = ""  # what a reasoning model thought before its answer
    thought_seconds: float | None = None
    tool_steps: tuple[ToolStep, ...] = ()  # rounds that ended in tool calls, before the content
    sources: tuple[Source, ...] = ()  # passages of the user's documents it answered from

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Message:
        return cls(row["id"], row["conversation_id"], row["position"], row["role"],
                   row["content"], _when(row["created"]), row["model_id"],
                   _load_json(row["settings"]), row["prompt_tokens"], row["completion_tokens"],
                   row["seconds_to_first_token"], row["tokens_per_second"], row["state"],
                   row["error"], row["thinking"], row["thought_seconds"],
                   tuple(steps_from_text(row["tool_steps"])), sources_from_text(row["sources"]))

    def as_chat(self) -> dict[str, str]:
        """The message as the OpenAI chat API takes it. A reply's thinking goes as
        ``reasoning_content``, which the engine passes on only to templates that ask for it."""
        chat = {"role": self.role, "content": self.content}
        if self.role == "assistant" and self.thinking:
            chat["reasoning_content"] = self.thinking
        return chat

    def as_chat_messages(self) -> list[dict[str, Any]]:
        """The message as the chat API takes it, with the rounds of tool calls a reply made
        before its last text (an assistant message with ``tool_calls``, then each result).
        A reply that ended on its calls, with no text after them, has no last message."""
        chat: list[dict[str, Any]] = steps_as_chat(list(self.tool_steps))
        if self.content or self.role == "user" or not chat:
            chat.append(self.as_chat())
        return chat

    @property
    def has_content(self) -> bool:
        """Whether the message holds anything to send back: text, or tool calls."""
        return bool(self.content or self.role == "user" or any(s.calls for s in self.tool_steps))


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
                    messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The chat API messages for *conversation*: its system prompt, then every turn that has
    text or tool calls (replies that failed with nothing written, or are still streaming, are
    skipped)."""
    chat: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        chat.append({"role": "system", "content": conversation.system_prompt})
    for message in messages:
        if message.state == "streaming" or not message.has_content:
            continue
        chat.extend(message.as_chat_messages())
    return chat


