"""A small real MCP server for the tests, written with the official SDK.

    python tests/mcp_servers/notes.py [--http PORT] [--hang] [--only TOOL ...]

It serves over stdio, or over streamable HTTP at http://127.0.0.1:PORT/mcp with --http. Its
tools read notes from the folder in NOTES_DIR, fail on request, and wait. With --hang it never
starts serving: a server that hangs at start. Its first line on stderr gives its process id.
Where NOTES_LOG names a file, each tool that runs adds a line with its name to it, so a test
can tell what ran; NOTES_DELAY makes each tool take that many seconds first. --only offers
just the tools named (so a model forced to call one calls that one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from mcp.server.fastmcp import FastMCP


def _ran(tool: str) -> None:
    log = os.environ.get("NOTES_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(tool + "\n")
    time.sleep(float(os.environ.get("NOTES_DELAY", "0")))


def build(port: int, only: list[str] | None = None) -> FastMCP:
    server = FastMCP("notes", host="127.0.0.1", port=port, log_level="WARNING")

    @server.tool()
    def todays_note() -> str:
        """Today's note (today.txt in the notes folder)."""
        _ran("todays_note")
        return (Path(os.environ["NOTES_DIR"]) / "today.txt").read_text(encoding="utf-8")

    @server.tool()
    def read_note(name: str) -> str:
        """The text of the note *name* in the notes folder."""
        _ran("read_note")
        folder = Path(os.environ["NOTES_DIR"]).resolve()
        path = (folder / name).resolve()
        if path == folder or not path.is_relative_to(folder):
            raise ValueError(f"{name!r} is not a note in the notes folder")
        return path.read_text(encoding="utf-8")

    @server.tool()
    def fail(reason: str) -> str:
        """Fail with *reason*."""
        _ran("fail")
        raise ValueError(reason)

    @server.tool()
    async def wait(seconds: float) -> str:
        """Wait *seconds*, then say so."""
        _ran("wait")
        await asyncio.sleep(seconds)
        return "waited"

    for name in ("todays_note", "read_note", "fail", "wait"):
        if only and name not in only:
            server.remove_tool(name)
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP")
    parser.add_argument("--hang", action="store_true", help="never start serving")
    parser.add_argument("--only", action="append", metavar="TOOL", help="offer only this tool")
    args = parser.parse_args()
    print(f"notes server pid {os.getpid()}", file=sys.stderr, flush=True)
    if args.hang:
        print("notes server hangs before serving", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    server = build(args.http or 8000, args.only)
    server.run("streamable-http" if args.http else "stdio")


if __name__ == "__main__":
    main()
