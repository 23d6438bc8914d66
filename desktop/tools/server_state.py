"""What the list of MCP servers shows of each: its state, its tools, the results of calls, and
the tail of a stdio server's own output. Kept apart from the SDK's session (connection.py), so
that the window can start without importing the SDK, which takes half a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, TextIO

LOG_TAIL_BYTES = 8192
LOG_KEEP_BYTES = 1_000_000  # a log past this is started afresh at the server's next start
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class ServerState(StrEnum):
    """Where an MCP server is in its life."""

    OFF = "off"  # switched off in mcp.json
    IDLE = "idle"  # on, not started yet (servers start when first needed)
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"


class ToolInfo(NamedTuple):
    """A tool a server offers: its name, what it does, and the JSON schema of its arguments."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class CallResult:
    """What a tool call gave: the tool's result as text, or why it failed, in words."""

    ok: bool
    text: str


def clean(text: Any, limit: int = 300) -> str:
    """A server's own words made safe to show: one line, no control characters, cut short."""
    line = re.sub(r"\s+", " ", _CONTROL.sub(" ", str(text))).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


class ServerLog:
    """The stderr of one run of a stdio server, in a file per server that later runs append to.

    The SDK hands the child a real file; the tail is read back from where this run began."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def open(self, what: str) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.stat().st_size > LOG_KEEP_BYTES:
                self.path.unlink()
        except FileNotFoundError:
            pass  # the first run of this server
        stream = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        stream.write(f"--- {datetime.now():%Y-%m-%d %H:%M:%S} started: {what}\n")
        stream.flush()
        self.offset = stream.tell()
        return stream

    def tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        """The last *limit* bytes this run wrote, from a line's start where it was cut."""
        try:
            with open(self.path, "rb") as stream:
                size = stream.seek(0, 2)
                start = max(self.offset, size - limit)
                stream.seek(start)
                data = stream.read(limit)
        except OSError:
            return ""
        if start > self.offset and b"\n" in data:
            data = data[data.index(b"\n") + 1:]
        return data.decode("utf-8", errors="replace")

    def last_lines(self, count: int = 8, limit: int = 1000) -> str:
        lines = [clean(line, 200) for line in self.tail().splitlines()]
        text = " | ".join([line for line in lines if line][-count:])
        return text if len(text) <= limit else "…" + text[-limit + 1:]
