"""Reading a reply as it streams into its parts: the answer, the thinking, tool calls, and
the log-probabilities of its tokens."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from desktop.engine.plan import ChatPlan, is_bare_json_syntax
from desktop.engine.reasoning import ThinkSplitter
from desktop.engine.toolcalls import CallParser, ParsedCall


def call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass
class Part:
    kind: str  # "content", "reasoning", "call" (a call's name is known), "arguments"
    text: str = ""
    call: ParsedCall | None = None


class ReplyReader:
    """Feed the text and log-probability events of one reply; get its parts in order."""

    def __init__(self, plan: ChatPlan | None) -> None:
        self.splitter = None
        self.parser = None
        if plan is not None and plan.thinking is not False:
            self.splitter = ThinkSplitter(plan.thinking)
        if plan is not None and plan.parses_calls:
            assert plan.tools is not None
            self.parser = CallParser(call_id, bare=is_bare_json_syntax(plan.syntax),
                                     forced=plan.tools.forced)
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.logprobs: list[tuple[bytes, float, list[tuple[bytes, float]]]] = []
        self._unsent = 0  # log-probabilities not yet given out by take_logprobs
        self.thinking_began: float | None = None
        self.thinking_ended: float | None = None

    @property
    def calls(self) -> list[ParsedCall]:
        return self.parser.calls if self.parser is not None else []

    def whole_calls(self) -> list[ParsedCall]:
        """The calls whose arguments arrived whole (a reply cut short by max_tokens may end
        inside one: that one is left out)."""
        out = []
        for call in self.calls:
            try:
                if isinstance(json.loads(call.arguments), dict):
                    out.append(call)
            except json.JSONDecodeError:
                continue
        return out

    def text(self, piece: str) -> list[Part]:
        pieces = self.splitter.feed(piece) if self.splitter is not None else [("content", piece)]
        return self._parts(pieces)

    def finish(self) -> list[Part]:
        parts = self._parts(self.splitter.finish()) if self.splitter is not None else []
        if self.parser is not None:
            parts += self._calls(self.parser.finish())
        return parts

    def _parts(self, pieces: list[tuple[str, str]]) -> list[Part]:
        out: list[Part] = []
        for kind, text in pieces:
            if kind == "reasoning":
                if self.thinking_began is None:
                    self.thinking_began = time.monotonic()
                self.reasoning.append(text)
                out.append(Part("reasoning", text))
                continue
            if self.thinking_began is not None and self.thinking_ended is None:
                self.thinking_ended = time.monotonic()
            if self.parser is not None:
                out += self._calls(self.parser.feed(text))
            else:
                self.content.append(text)
                out.append(Part("content", text))
        return out

    def _calls(self, events: list[Any]) -> list[Part]:
        out = []
        for event in events:
            if event.kind == "content":
                self.content.append(event.text)
                out.append(Part("content", event.text))
            elif event.kind == "start":
                out.append(Part("call", call=event.call))
            else:
                out.append(Part("arguments", event.text, event.call))
        return out

    def logprob(self, entry: tuple[bytes, float, list[tuple[bytes, float]]]) -> None:
        self.logprobs.append(entry)

    def take_logprobs(self) -> list[tuple[bytes, float, list[tuple[bytes, float]]]]:
        fresh = self.logprobs[self._unsent:]
        self._unsent = len(self.logprobs)
        return fresh

    def finish_reason(self, engine_reason: str) -> str:
        if engine_reason == "length":
            return "length"
        return "tool_calls" if self.whole_calls() else "stop"


def chat_logprob(entry: tuple[bytes, float, list[tuple[bytes, float]]]) -> dict[str, Any]:
    """One token's log-probabilities in the chat completion shape."""
    raw, logprob, top = entry

    def token(data: bytes, value: float) -> dict[str, Any]:
        return {"token": data.decode("utf-8", errors="replace"), "logprob": value,
                "bytes": list(data)}

    return {**token(raw, logprob), "top_logprobs": [token(b, v) for b, v in top]}


def completion_logprobs(entries: list[tuple[bytes, float, list[tuple[bytes, float]]]],
                        offset: int = 0) -> dict[str, Any]:
    """Tokens' log-probabilities in the legacy completions shape; *offset* is where the first
    token's text starts in the reply."""
    tokens, values, tops, offsets = [], [], [], []
    for raw, logprob, top in entries:
        text = raw.decode("utf-8", errors="replace")
        tokens.append(text)
        values.append(logprob)
        tops.append({b.decode("utf-8", errors="replace"): v for b, v in top})
        offsets.append(offset)
        offset += len(text)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops,
            "text_offset": offsets}


def chat_delta(part: Part) -> dict[str, Any]:
    """A streamed chat delta for one part of the reply."""
    if part.kind == "content":
        return {"content": part.text}
    if part.kind == "reasoning":
        return {"reasoning_content": part.text}
    call = part.call
    assert call is not None
    if part.kind == "call":
        return {"tool_calls": [{"index": call.index, "id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": ""}}]}
    return {"tool_calls": [{"index": call.index, "function": {"arguments": part.text}}]}


def chat_message(reader: ReplyReader) -> dict[str, Any]:
    """The whole reply as an assistant message."""
    content = "".join(reader.content)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    reasoning = "".join(reader.reasoning).strip()
    if reasoning:
        message["reasoning_content"] = reasoning
    calls = reader.whole_calls()
    if calls:
        if not content.strip():
            message["content"] = None
        message["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}} for c in calls]
    return message
