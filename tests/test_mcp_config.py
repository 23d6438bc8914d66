"""mcp.json as Claude Desktop and Cursor write it: read, checked server by server, written
back with what NoMoat does not know kept, and never written over when it is broken."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from desktop.tools.config import (
    McpConfig,
    McpConfigError,
    load_config,
    merge,
    parse_config,
    save_config,
    with_allowed,
)

CLAUDE_DESKTOP = {
    "mcpServers": {
        "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem",
                                                  "/Users/me/Desktop"]},
        "github": {"command": "docker", "args": ["run", "-i", "--rm", "ghcr.io/github/mcp"],
                   "env": {"GITHUB_TOKEN": "ghp_x"}},
        "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer t"},
                   "type": "http"},
    },
    "globalShortcut": "Ctrl+Space",
}


def test_a_claude_desktop_file_is_read_whole() -> None:
    config = parse_config(json.dumps(CLAUDE_DESKTOP))
    assert config.problems == []
    assert list(config.servers) == ["filesystem", "github", "remote"]
    files = config.servers["filesystem"]
    assert files.transport == "stdio" and files.command == "npx"
    assert files.args[-1] == "/Users/me/Desktop" and files.enabled
    assert config.servers["github"].env == {"GITHUB_TOKEN": "ghp_x"}
    remote = config.servers["remote"]
    assert remote.transport == "http" and remote.headers["Authorization"] == "Bearer t"
    assert remote.describe() == "https://mcp.example.com/mcp"


def test_saving_keeps_what_nomoat_does_not_know(tmp_path: Path) -> None:
    raw = json.loads(json.dumps(CLAUDE_DESKTOP))
    raw["mcpServers"]["github"]["autoApprove"] = ["x"]  # another program's key
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(raw))
    config = load_config(path)
    config.servers["github"] = with_allowed(config.servers["github"], "search", True)
    save_config(config)
    again = json.loads(path.read_text())
    assert again["globalShortcut"] == "Ctrl+Space"
    assert again["mcpServers"]["github"]["autoApprove"] == ["x"]
    assert again["mcpServers"]["github"]["alwaysAllow"] == ["search"]
    assert load_config(path).servers["github"].always_allow == {"search"}
    assert path.stat().st_mode & 0o077 == 0  # env and headers may hold keys


def test_one_bad_server_is_named_and_the_others_are_used() -> None:
    text = json.dumps({"mcpServers": {
        "good": {"command": "uvx", "args": ["mcp-server-time"]},
        "both": {"command": "x", "url": "http://a"},
        "neither": {"args": ["a"]},
        "old": {"url": "http://127.0.0.1:9/sse", "type": "sse"},
        "ftp": {"url": "ftp://example.com"},
        "args": {"command": "x", "args": "one string"},
        "": {"command": "x"},
    }})
    config = parse_config(text)
    assert list(config.servers) == ["good"]
    joined = "\n".join(config.problems)
    for words in ("'both'", "both 'command' and 'url'", "'neither'", "SSE transport",
                  "'ftp'", "http:// or https://", "'args' must be a list", "needs a name"):
        assert words in joined, (words, joined)


def test_a_broken_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {"a": {"command": "x",}}')
    with pytest.raises(McpConfigError, match="not valid JSON.*does not write over it"):
        load_config(path)
    assert path.read_text() == '{"mcpServers": {"a": {"command": "x",}}'
    assert load_config(tmp_path / "absent.json").servers == {}


def test_an_imported_file_adds_its_servers_under_free_names() -> None:
    mine = parse_config(json.dumps({"mcpServers": {"github": {"command": "gh-mcp"}}}))
    added = merge(mine, parse_config(json.dumps(CLAUDE_DESKTOP)))
    assert added == ["filesystem", "github (2)", "remote"]
    assert mine.servers["github"].command == "gh-mcp"
    assert mine.servers["github (2)"].command == "docker"


ODD = [None, True, 0, -1, 1.5, "", "x", " ", "\x00", "é" * 70, [], {}, [1], {"a": None},
       "http://", "https://[::1]:8000/mcp", ["a", 1], {"k": [1]}, 10**30]
KEYS = ["command", "args", "env", "cwd", "url", "headers", "type", "disabled", "alwaysAllow"]


def _odd(rng: random.Random):  # type: ignore[no-untyped-def]
    return copy.deepcopy(rng.choice(ODD))


def _mutate(rng: random.Random) -> str:
    document = json.loads(json.dumps(CLAUDE_DESKTOP))
    servers = document["mcpServers"]
    for _ in range(rng.randint(1, 4)):
        name = rng.choice(list(servers) + ["new", "", "x" * 80, "tab\there"])
        entry = servers.setdefault(name, {}) if rng.random() < 0.8 else _odd(rng)
        servers[name] = entry
        if isinstance(entry, dict):
            entry[rng.choice(KEYS)] = _odd(rng)
    if rng.random() < 0.1:
        document["mcpServers"] = _odd(rng)
    text = json.dumps(document)
    if rng.random() < 0.2:  # broken text: cut, a byte changed, not UTF-8
        cut = rng.randrange(len(text))
        text = rng.choice([text[:cut], text[:cut] + "\x7f" + text[cut + 1:],
                           text[:cut] + "\udcff" + text[cut:]])
    return text


def test_fuzzed_files_never_raise_anything_but_a_clear_error(tmp_path: Path) -> None:
    rng = random.Random(20261204)
    used = refused = 0
    for _ in range(400):
        text = _mutate(rng)
        path = tmp_path / "mcp.json"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            config = load_config(path)
        except McpConfigError as exc:
            assert "mcp.json" in str(exc) and len(str(exc)) > 20
            refused += 1
            assert path.read_bytes() == text.encode("utf-8", "surrogateescape")
            continue
        used += 1
        for problem in config.problems:
            assert problem.startswith("The MCP server") or "appears twice" in problem
        save_config(config)  # what was read can always be written and read back the same
        again = load_config(path)
        assert again.servers == config.servers and again.problems == []
    assert used > 200 and refused > 20, (used, refused)
    assert isinstance(McpConfig(), McpConfig)
