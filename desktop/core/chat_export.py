"""A conversation exported: Markdown to read, JSON with every detail."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import PurePath

from desktop.core.chat_records import Conversation, Message, Source
from desktop.core.tool_calls import ToolCall


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def thought_label(message: Message) -> str:
    """How a reply's folded thinking is headed: "Thought for 12 s" (or "Thought")."""
    seconds = message.thought_seconds
    if seconds is None:
        return "Thought"
    return f"Thought for {max(1, round(seconds))} s"


def call_label(call: ToolCall) -> str:
    """A call's heading: the tool, its server, and how it ended, in words."""
    where = f"{call.tool} ({call.server})" if call.server else call.tool
    state = {"pending": "about to run", "asking": "waiting for your say", "running": "running",
             "done": "done", "failed": "failed", "denied": "denied",
             "stopped": "stopped"}[call.state.value]
    return f"{where}: {state}"


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in *text*, so the text cannot end it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _call_markdown(call: ToolCall) -> list[str]:
    fence = _fence(call.arguments + call.result)
    lines = ["<details>", f"<summary>Tool call: {call_label(call)}</summary>", "",
             "Arguments:", "", f"{fence}json", call.arguments or "{}", fence, ""]
    if call.result:
        lines += ["Result:", "", f"{fence}text", call.result, fence, ""]
    return [*lines, "</details>", ""]


def source_label(number: int, source: Source) -> str:
    """A source's heading: "[1] report.pdf, page 3 — Findings"."""
    where = f"[{number}] {PurePath(source.path).name}"
    if source.page is not None:
        where += f", page {source.page}"
    if source.heading:
        where += f" — {source.heading}"
    return where


def one_line(text: str, limit: int = 160) -> str:
    """*text* on one line, cut to *limit* characters with "…"."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def _sources_markdown(sources: Sequence[Source]) -> list[str]:
    lines = ["", "Sources:", ""]
    for number, source in enumerate(sources, start=1):
        lines.append(f"- {source_label(number, source)} ({source.path}, score "
                     f"{source.score:.3f}): {one_line(source.snippet)}")
    return lines


def export_markdown(conversation: Conversation, messages: Sequence[Message]) -> str:
    """The conversation as a Markdown document: title, system prompt, one heading per turn."""
    parts = [f"# {conversation.title}", ""]
    if conversation.system_prompt.strip():
        parts += ["## System prompt", "", conversation.system_prompt.strip(), ""]
    for message in messages:
        heading = message.role.capitalize()
        if message.role == "assistant" and message.model_id:
            heading += f" ({message.model_id})"
        parts += [f"## {heading}", ""]
        if message.thinking.strip():
            parts += ["<details>", f"<summary>{thought_label(message)}</summary>", "",
                      message.thinking.strip(), "", "</details>", ""]
        for step in message.tool_steps:
            if step.text.strip():
                parts += [step.text.strip(), ""]
            for call in step.calls:
                parts += _call_markdown(call)
        parts.append(message.content.strip())
        if message.state == "stopped":
            parts += ["", "*(stopped before the end)*"]
        elif message.state == "error":
            parts += ["", f"*(failed: {message.error or 'unknown error'})*"]
        if message.sources:
            parts += _sources_markdown(message.sources)
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
            "thinking": m.thinking,
            "thought_seconds": m.thought_seconds,
            "created": _iso(m.created),
            "model": m.model_id,
            "settings": m.settings,
            "prompt_tokens": m.prompt_tokens,
            "completion_tokens": m.completion_tokens,
            "seconds_to_first_token": m.seconds_to_first_token,
            "tokens_per_second": m.tokens_per_second,
            "state": m.state,
            "error": m.error,
            "tool_steps": [s.to_json() for s in m.tool_steps],
            "sources": [s.to_json() for s in m.sources],
        } for m in messages],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


