"""`nomoat chat --mcp NAME`: the terminal chat calls a configured MCP server's tools, asking
y/N before each call."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from test_cli import nomoat

SERVERS = Path(__file__).resolve().parent / "mcp_servers"
NOTE = "Buy bread, then call Ada at 5."
CHAT = ("chat", "--ctx", "1024", "--max-tokens", "24", "--mcp", "notes", "--tool-choice",
        "required", "--tool-rounds", "1")


def _configure(home: Path) -> None:
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "today.txt").write_text(NOTE, encoding="utf-8")
    (home / "settings").mkdir(parents=True)
    entry = {"command": sys.executable,
             "args": [str(SERVERS / "notes.py"), "--only", "todays_note"],
             "env": {"NOTES_DIR": str(home / "notes"), "NOTES_LOG": str(home / "ran.log")}}
    (home / "settings" / "mcp.json").write_text(json.dumps({"mcpServers": {"notes": entry}}),
                                                encoding="utf-8")


def _ran(home: Path) -> list[str]:
    log = home / "ran.log"
    return log.read_text(encoding="utf-8").split() if log.exists() else []


def test_a_call_asked_and_allowed_runs_and_its_result_is_shown(tmp_path: Path) -> None:
    _configure(tmp_path)
    result = nomoat("--data-dir", str(tmp_path), *CHAT,
                    stdin="What is today's note?\ny\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert "Tools: todays_note" in result.stdout
    assert "Run todays_note (notes) with {" in result.stdout and "[y/N/a=always]" in result.stdout
    assert f"[todays_note: done] {NOTE}" in result.stdout
    assert _ran(tmp_path) == ["todays_note"]


def test_a_call_denied_never_runs(tmp_path: Path) -> None:
    _configure(tmp_path)
    result = nomoat("--data-dir", str(tmp_path), *CHAT, stdin="What is today's note?\nn\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert "[todays_note: denied]" in result.stdout
    assert _ran(tmp_path) == []


def test_always_is_remembered_in_mcp_json(tmp_path: Path) -> None:
    _configure(tmp_path)
    result = nomoat("--data-dir", str(tmp_path), *CHAT,
                    stdin="What is today's note?\na\nAnd now?\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[y/N/a=always]") == 1  # the second call did not ask
    assert result.stdout.count("[todays_note: done]") == 2
    saved = json.loads((tmp_path / "settings" / "mcp.json").read_text(encoding="utf-8"))
    assert saved["mcpServers"]["notes"]["alwaysAllow"] == ["todays_note"]


def test_an_unknown_server_is_named_with_the_ones_there_are(tmp_path: Path) -> None:
    _configure(tmp_path)
    result = nomoat("--data-dir", str(tmp_path), "chat", "--mcp", "nope", stdin="/exit\n")
    assert result.returncode != 0
    assert "'nope'" in result.stderr and "Configured: notes" in result.stderr
