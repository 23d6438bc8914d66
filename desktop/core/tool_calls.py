"""A tool call in a reply, as the chat saves it: what the model asked for, what the user
decided, and what came back; and a reply's rounds of calls in OpenAI's message shape.

A reply that used tools is saved as *steps*: each step is the text the model wrote in one round
and the calls that ended that round; the text after the last step is the reply's content. Sent
back to the model, a step is an assistant message with ``tool_calls`` followed by one ``tool``
message per call.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

MAX_RESULT_CHARS = 16_000  # of one result, kept for the model and the chat
MAX_ARGUMENT_CHARS = 16_000  # of the arguments the model wrote, kept for the chat


class Decision(StrEnum):
    """What the user said to a call."""

    ONCE = "once"  # run this call
    ALWAYS = "always"  # run it, and every later call of this tool, without asking
    DENY = "deny"


class CallState(StrEnum):
    PENDING = "pending"  # made by the model, not yet asked about or run
    ASKING = "asking"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the tool ran and reported an error, or could not be reached
    DENIED = "denied"
    STOPPED = "stopped"  # the reply was stopped (or NoMoat closed) before the call ended


@dataclass
class ToolCall:
    """One call the model made: what it asked for, what the user decided, what came back."""

    id: str
    function: str  # the name the model called
    server: str  # the MCP server the tool belongs to ("" for a name no server offers)
    tool: str  # the tool's own name on that server
    arguments: str  # the JSON text the model wrote
    state: CallState = CallState.PENDING
    result: str = ""

    @classmethod
    def from_openai(cls, call: dict[str, Any], servers: dict[str, tuple[str, str]]) -> ToolCall:
        """A call in OpenAI's shape; *servers* maps a function name to (server, tool)."""
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        server, tool = servers.get(name, ("", name))
        arguments = str(function.get("arguments") or "")[:MAX_ARGUMENT_CHARS]
        return cls(str(call.get("id") or f"call_{uuid.uuid4().hex[:12]}"), name, server, tool,
                   arguments)

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as an object; ValueError with the reason when they are not one."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise ValueError(f"the arguments are not JSON ({exc})") from exc
        if not isinstance(value, dict):
            raise ValueError("the arguments must be a JSON object")
        return value

    def finish(self, state: CallState, result: str) -> None:
        self.state = state
        if len(result) > MAX_RESULT_CHARS:
            result = (result[:MAX_RESULT_CHARS]
                      + f"\n[… {len(result) - MAX_RESULT_CHARS:,} more characters left out]")
        self.result = result

    @property
    def ended(self) -> bool:
        return self.state not in (CallState.PENDING, CallState.ASKING, CallState.RUNNING)

    def as_openai(self) -> dict[str, Any]:
        """The call as the chat API takes it back. Arguments that are not a JSON object (a
        call cut short) go as an empty object: the call's result says what was wrong."""
        try:
            self.parsed_arguments()
            arguments = self.arguments or "{}"
        except ValueError:
            arguments = "{}"
        return {"id": self.id, "type": "function",
                "function": {"name": self.function, "arguments": arguments}}

    def result_message(self) -> dict[str, Any]:
        """The tool message that answers this call, for the model's next round."""
        text = self.result
        if self.state == CallState.DENIED:
            text = f"The user did not allow this call of {self.tool}. {text}".strip()
        elif self.state in (CallState.FAILED, CallState.STOPPED):
            text = f"Error: {text}"
        elif not self.ended:
            text = "Error: the call did not finish."
        return {"role": "tool", "tool_call_id": self.id, "content": text}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> ToolCall:
        """A saved call; anything unreadable in it becomes empty text rather than an error."""
        raw = raw if isinstance(raw, dict) else {}
        try:
            state = CallState(raw.get("state", "done"))
        except ValueError:
            state = CallState.FAILED
        return cls(str(raw.get("id", "")), str(raw.get("function", "")),
                   str(raw.get("server", "")), str(raw.get("tool", "")),
                   str(raw.get("arguments", "")), state, str(raw.get("result", "")))


@dataclass
class ToolStep:
    """One round of a reply that ended in tool calls: the text before them, then the calls."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "calls": [c.to_json() for c in self.calls]}

    @classmethod
    def from_json(cls, raw: Any) -> ToolStep:
        raw = raw if isinstance(raw, dict) else {}
        calls = raw.get("calls")
        return cls(str(raw.get("text", "")),
                   [ToolCall.from_json(c) for c in calls] if isinstance(calls, list) else [])


def steps_to_text(steps: list[ToolStep]) -> str:
    return json.dumps([s.to_json() for s in steps], ensure_ascii=False)


def steps_from_text(text: str | None) -> list[ToolStep]:
    """Saved steps; a value that is not a list of steps gives none (the reply text stays)."""
    try:
        raw = json.loads(text or "[]")
    except ValueError:
        return []
    return [ToolStep.from_json(s) for s in raw] if isinstance(raw, list) else []


def steps_as_chat(steps: list[ToolStep]) -> list[dict[str, Any]]:
    """The rounds of a reply as OpenAI chat messages: each an assistant message with its calls,
    then the calls' results."""
    messages: list[dict[str, Any]] = []
    for step in steps:
        if not step.calls:
            continue
        messages.append({"role": "assistant", "content": step.text,
                         "tool_calls": [c.as_openai() for c in step.calls]})
        messages.extend(c.result_message() for c in step.calls)
    return messages
