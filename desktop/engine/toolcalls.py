"""Tool calls: the call syntax of each model family, the prompt for models whose template has
no tools, the grammar that makes a call valid, and the parser that takes calls out of a reply
as it streams.

Families write calls differently: Hermes and Qwen put JSON in ``<tool_call>`` tags, Llama 3.x
answers with a bare JSON object (or after ``<|python_tag|>``), Mistral writes ``[TOOL_CALLS]``
and a JSON list, Phi-4 wraps a list in ``<|tool_call|>`` tags. The parser knows all of them,
whatever the model, so call markup never ends up in the answer's text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.grammar import CALL_RULE, calls_schema, tool_call_grammar


@dataclass(frozen=True)
class CallSyntax:
    """How one family writes calls: *marker* starts them; the grammar writes *opening*, the
    calls with *between* in between, then *closing*."""

    name: str
    marker: str
    opening: str
    between: str
    closing: str
    key: str = "arguments"


HERMES = CallSyntax("hermes", "<tool_call>", '"<tool_call>" [ \\n]*',
                    '[ \\n]* "</tool_call>" [ \\n]* "<tool_call>" [ \\n]*',
                    '[ \\n]* "</tool_call>"')
LLAMA3 = CallSyntax("llama3", "", '""', '";" " "?', '""', key="parameters")
MISTRAL = CallSyntax("mistral", "[TOOL_CALLS]", '"[TOOL_CALLS]" "[" " "?', '"," " "?', '"]"')

# Every marker a call may start with, and the text between and around calls.
_OPENERS = ("<tool_call>", "[TOOL_CALLS]", "<|tool_call|>", "<|python_tag|>")
_CLOSERS = ("</tool_call>", "<|/tool_call|>", "<|eom_id|>")
_HEADER = re.compile(r'\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"(?:arguments|parameters)"'
                     r'\s*:\s*')
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def syntax_for(template: str) -> CallSyntax:
    """The call syntax a chat template teaches its model (Hermes where it teaches none)."""
    if "[TOOL_CALLS]" in template:
        return MISTRAL
    if "<|python_tag|>" in template or ("ipython" in template and "parameters" in template):
        return LLAMA3
    return HERMES


def template_takes_tools(template: str) -> bool:
    return re.search(r"\btools\b", template) is not None


def valid_name(name: str) -> bool:
    return _NAME.match(name) is not None


def call_grammar(syntax: CallSyntax, functions: list[tuple[str, dict[str, Any]]],
                 parallel: bool) -> str:
    """GBNF for calls of *functions* in *syntax*, markup included."""
    more = f" ({syntax.between} {CALL_RULE})*" if parallel else ""
    root = f"root ::= {syntax.opening} {CALL_RULE}{more} {syntax.closing}"
    return tool_call_grammar(calls_schema(functions, syntax.key), root)


def call_trigger(syntax: CallSyntax, after_thinking: bool) -> str | None:
    """The lazy grammar's trigger for a call the model chooses to make: its marker (after the
    thinking, for a reply that thinks first). None where calls have no marker."""
    if not syntax.marker:
        return None
    think = r"[\s\S]*?</think>" if after_thinking else ""
    return think + r"[\s\S]*?(" + re.escape(syntax.marker) + r"[\s\S]*)"


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """A system-prompt text for templates that have no place for tools."""
    listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return ("You can call functions to answer. They are described here as JSON schemas:\n"
            f"<tools>\n{listed}\n</tools>\n"
            "To call a function, answer with only this, one block for each call:\n"
            '<tool_call>\n{"name": "the function\'s name", "arguments": {the arguments as '
            "JSON}}\n</tool_call>\nThe results come back in <tool_response> blocks.")


def hermes_call_text(name: str, arguments: Any) -> str:
    return ("<tool_call>\n" + json.dumps({"name": name, "arguments": arguments},
                                         ensure_ascii=False) + "\n</tool_call>")


@dataclass
class ParsedCall:
    index: int
    id: str
    name: str
    arguments: str = ""  # the JSON text, as it arrived
    complete: bool = False


@dataclass
class CallEvent:
    kind: str  # "content", "start" (a call's name is known) or "arguments" (more of them)
    text: str = ""
    call: ParsedCall | None = None


def _value_end(text: str, start: int) -> int:
    """Where the JSON value at *start* ends (the index after it), or -1 if it is not whole yet.
    Only brackets and strings are followed; the value is parsed properly afterwards."""
    depth = 0
    in_string = escaped = False
    i = start
    while i < len(text):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
                if depth == 0:
                    return i + 1
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth <= 0:
                return i + 1
        elif depth == 0 and c in ",}] \n\t\r":
            return i
        i += 1
    return -1


@dataclass
class CallParser:
    """Takes the calls out of a reply's text as it arrives; the rest is the answer.

    *bare* lets a reply that begins with a JSON object be a call (Llama 3's way); *forced*
    means the whole reply is calls (the grammar made it so)."""

    make_id: Any
    bare: bool = False
    forced: bool = False
    calls: list[ParsedCall] = field(default_factory=list)
    _buffer: str = ""
    _in_calls: bool = False
    _started: bool = False  # some text has been seen (a bare call must come first)
    _current: ParsedCall | None = None
    _args_from: int = -1  # where the current call's arguments begin in the buffer
    _sent: int = 0  # how much of them has gone out

    def feed(self, text: str) -> list[CallEvent]:
        self._buffer += text
        events: list[CallEvent] = []
        if not self._in_calls:
            self._look_for_calls(events)
        if self._in_calls:
            self._read_calls(events)
        return events

    def finish(self) -> list[CallEvent]:
        """The end of the reply: what is left is either the last call or answer text."""
        events = self.feed("")
        if self._current is not None:  # cut short: what arrived of its arguments stands
            rest = self._buffer[self._args_from + self._sent:] if self._args_from >= 0 else ""
            if rest:
                self._current.arguments += rest
                events.append(CallEvent("arguments", rest, self._current))
            self._current = None
        elif self._buffer.strip() and not self._in_calls:
            events.append(CallEvent("content", self._buffer))
        elif self._buffer.strip():
            leftover = self._buffer.strip()
            for closer in _CLOSERS + _OPENERS:
                leftover = leftover.replace(closer, "")
            leftover = leftover.strip(" \n\t,;[]")
            cut_marker = any(m.startswith(leftover) for m in _CLOSERS + _OPENERS)
            if leftover and not cut_marker:  # a marker cut short by the end is no answer
                events.append(CallEvent("content", leftover))
        self._buffer = ""
        return events

    def _look_for_calls(self, events: list[CallEvent]) -> None:
        buffer = self._buffer
        if self.forced or (self.bare and not self._started):
            stripped = buffer.lstrip()
            if not stripped:
                return
            if stripped[0] == "{" or self.forced:
                self._in_calls = True
                return
        found = [(buffer.find(m), m) for m in _OPENERS if m in buffer]
        if found:
            at, marker = min(found)
            if buffer[:at].strip():
                events.append(CallEvent("content", buffer[:at].rstrip()))
            self._buffer = buffer[at + len(marker):]
            self._in_calls = True
            self._started = True
            return
        # Hold back an end of the text that may be the start of a marker.
        hold = 0
        for marker in _OPENERS:
            for k in range(min(len(marker) - 1, len(buffer)), hold, -1):
                if buffer.endswith(marker[:k]):
                    hold = k
                    break
        out = buffer[:len(buffer) - hold]
        if out:
            if out.strip():
                self._started = True
            events.append(CallEvent("content", out))
        self._buffer = buffer[len(buffer) - hold:]

    def _read_calls(self, events: list[CallEvent]) -> None:
        while True:
            if self._current is not None:
                if not self._stream_arguments(events):
                    return
                continue
            stripped = self._skip_between(self._buffer)
            self._buffer = stripped
            if not stripped:
                return
            if stripped[0] != "{":
                if any(m.startswith(stripped) or c.startswith(stripped)
                       for m in _OPENERS for c in _CLOSERS):
                    return  # maybe a marker, not yet whole
                self._in_calls = False  # text after the calls: answer again
                self._look_for_calls(events)
                return
            header = _HEADER.match(stripped)
            if header is not None:
                name = json.loads(f'"{header.group(1)}"')
                start = header.end()
                if start >= len(stripped):
                    return
                if stripped[start] == "{":
                    self._current = ParsedCall(len(self.calls), self.make_id(), name)
                    self.calls.append(self._current)
                    events.append(CallEvent("start", call=self._current))
                    self._args_from, self._sent = start, 0
                    continue
            end = _value_end(stripped, 0)
            if end < 0:
                return
            self._whole_call(stripped[:end], events)
            self._buffer = stripped[end:]

    def _stream_arguments(self, events: list[CallEvent]) -> bool:
        """Send what arrived of the current call's arguments; True once the call is done."""
        call = self._current
        assert call is not None
        begin = self._args_from
        end = _value_end(self._buffer, begin)
        stop = len(self._buffer) if end < 0 else end
        piece = self._buffer[begin + self._sent:stop]
        if piece:
            call.arguments += piece
            self._sent += len(piece)
            events.append(CallEvent("arguments", piece, call))
        if end < 0:
            return False
        rest = self._buffer[end:].lstrip()
        if not rest:
            return False
        if rest[0] == "}":
            rest = rest[1:]
        call.complete = True
        self._current = None
        self._buffer = rest
        self._args_from = -1
        return True

    def _whole_call(self, text: str, events: list[CallEvent]) -> None:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            events.append(CallEvent("content", text))
            return
        name = value.get("name") if isinstance(value, dict) else None
        args = None
        if isinstance(value, dict):
            args = value.get("arguments", value.get("parameters"))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = None
        if not isinstance(name, str) or not isinstance(args, dict):
            events.append(CallEvent("content", text))
            return
        call = ParsedCall(len(self.calls), self.make_id(), name,
                          json.dumps(args, ensure_ascii=False), complete=True)
        self.calls.append(call)
        events.append(CallEvent("start", call=call))
        events.append(CallEvent("arguments", call.arguments, call))

    @staticmethod
    def _skip_between(text: str) -> str:
        while True:
            before = text
            text = text.lstrip(" \n\t\r,;[]")
            for marker in _OPENERS + _CLOSERS:
                text = text.removeprefix(marker)
            if text == before:
                return text
