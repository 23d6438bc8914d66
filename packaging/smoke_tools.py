"""The smoke test's check of tools in the chat: the frozen terminal chat calls a tool of a
real MCP server (the tests' own, run by the Python that runs the smoke test, which has the
SDK) after asking y/N, and shows its result. So the MCP client made it into the build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTE = "Buy bread, then call Ada at 5."


class ToolsCheckFailed(Exception):
    """What went wrong, with the program's output."""


def check_tools(exe: Path, base: Path, data: Path, env: dict[str, str], model: str,
                timeout: float) -> str:
    """Run the check in the sandbox at *base*; return what the chat showed of the call."""
    notes = base / "notes"
    notes.mkdir()
    (notes / "today.txt").write_text(NOTE, encoding="utf-8")
    server = {"command": sys.executable,
              "args": [str(REPO / "tests" / "mcp_servers" / "notes.py"), "--only", "todays_note"],
              "env": {"NOTES_DIR": str(notes)}}
    (data / "settings").mkdir(parents=True, exist_ok=True)
    (data / "settings" / "mcp.json").write_text(
        json.dumps({"mcpServers": {"notes": server}}), encoding="utf-8")
    cmd = [str(exe), "--data-dir", str(data), "chat", "--model", model, "--ctx", "1024",
           "--max-tokens", "32", "--mcp", "notes", "--tool-choice", "required",
           "--tool-rounds", "1"]
    try:
        done = subprocess.run(cmd, input="What is today's note?\ny\n/exit\n", env=env, cwd=base,
                              capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolsCheckFailed(f"nomoat chat --mcp: still running after {timeout:.0f} s") \
            from exc
    shown = f"[todays_note: done] {NOTE}"
    if done.returncode != 0 or shown not in done.stdout or "Traceback" in done.stderr:
        raise ToolsCheckFailed(f"nomoat chat --mcp: exit code {done.returncode}; expected "
                               f"{shown!r}. Output:\n{done.stdout}\n{done.stderr}")
    return shown
