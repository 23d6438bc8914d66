"""mcp.json: the MCP servers the chat may use, in the format Claude Desktop and Cursor read.

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem",
                  "/home/me/notes"], "env": {"LOG": "1"}},
        "search": {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "Bearer …"}}
    }}

A server is a command to start (stdio) or the address of one that runs (streamable HTTP).
NoMoat reads three keys of its own, which Cline also reads: ``disabled``, ``alwaysAllow`` (the
tools the user said may always run) and ``timeout`` (seconds a server may take to start; 30 by
default). Keys it does not know are kept as they are.

Reading never fails as a whole for one bad server: each problem names the server and what is
wrong with it, and the others are used. A file that is not JSON is left untouched (nothing is
saved over it) and the error says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from desktop.core.files import write_atomic
from desktop.core.paths import get_paths

FILE_NAME = "mcp.json"
MAX_FILE_BYTES = 1_000_000
MAX_NAME = 64
_KNOWN = {"command", "args", "env", "cwd", "url", "headers", "type", "transport", "disabled",
          "alwaysAllow", "timeout"}
MAX_TIMEOUT = 600
_TYPES = {None, "stdio", "http", "streamable-http", "streamableHttp"}


class McpConfigError(Exception):
    """mcp.json cannot be read or written; the message says why and what to do."""


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server: started with *command* (stdio), or reached at *url* (streamable HTTP)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    always_allow: frozenset[str] = frozenset()
    timeout: float | None = None  # seconds it may take to start (None: the default)
    extra: dict[str, Any] = field(default_factory=dict)  # keys kept for other programs

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def describe(self) -> str:
        """What it runs or where it is, in one line."""
        if self.command is not None:
            return " ".join([self.command, *self.args])
        return self.url or ""

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = dict(self.extra)
        if self.command is not None:
            entry["command"] = self.command
            if self.args:
                entry["args"] = list(self.args)
            if self.env:
                entry["env"] = dict(self.env)
            if self.cwd:
                entry["cwd"] = self.cwd
        else:
            entry["url"] = self.url
            if self.headers:
                entry["headers"] = dict(self.headers)
        if not self.enabled:
            entry["disabled"] = True
        if self.always_allow:
            entry["alwaysAllow"] = sorted(self.always_allow)
        if self.timeout is not None:
            entry["timeout"] = self.timeout
        return entry


@dataclass
class McpConfig:
    """The servers, in the file's order; *problems* are what could not be used, in words."""

    servers: dict[str, ServerConfig] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # top-level keys kept as they are
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.extra,
                "mcpServers": {name: s.to_json() for name, s in self.servers.items()}}


def config_path() -> Path:
    return get_paths().settings / FILE_NAME


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{what}' must be a list of strings")
    return tuple(value)


def _mapping(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"'{what}' must be an object of names and text values")
    out = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ValueError(f"'{what}.{key}' must be text")
        out[str(key)] = str(item)
    return out


def check_name(name: Any) -> str:
    """A server's name as the list shows it; ValueError says what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a server needs a name")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ValueError(f"a server's name may have at most {MAX_NAME} characters")
    if any(not ch.isprintable() for ch in name):
        raise ValueError("a server's name may not hold control characters")
    return name


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValueError("'url' must be an http:// or https:// address")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'url' must be an http:// or https:// address, not {url[:80]!r}")
    return url.strip()


def parse_server(name: Any, raw: Any) -> ServerConfig:
    """One entry of ``mcpServers``; ValueError says what is wrong with it."""
    name = check_name(name)
    if not isinstance(raw, dict):
        raise ValueError("its entry must be an object with 'command' or 'url'")
    kind = raw.get("type", raw.get("transport"))
    if kind == "sse":
        raise ValueError("the SSE transport is not supported; use the server's streamable "
                         "HTTP address")
    if kind not in _TYPES:
        raise ValueError(f"unknown transport {json.dumps(kind)[:40]} (known: stdio, http)")
    command, url = raw.get("command"), raw.get("url")
    if command is not None and url is not None:
        raise ValueError("it has both 'command' and 'url'; keep one")
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        raise ValueError("'disabled' must be true or false")
    allowed = frozenset(_strings(raw.get("alwaysAllow", []), "alwaysAllow"))
    timeout = raw.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not 0 < timeout <= MAX_TIMEOUT):
        raise ValueError(f"'timeout' must be the seconds it may take to start, at most "
                         f"{MAX_TIMEOUT}")
    extra = {k: v for k, v in raw.items() if k not in _KNOWN}
    if command is not None:
        if not isinstance(command, str) or not command.strip():
            raise ValueError("'command' must be the program to start")
        cwd = raw.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ValueError("'cwd' must be a folder's path")
        return ServerConfig(name, command=command.strip(),
                            args=_strings(raw.get("args", []), "args"),
                            env=_mapping(raw.get("env", {}), "env"), cwd=cwd or None,
                            enabled=not disabled, always_allow=allowed, timeout=timeout,
                            extra=extra)
    if url is None:
        raise ValueError("it needs 'command' (a program to start) or 'url' (a running server)")
    return ServerConfig(name, url=check_url(url),
                        headers=_mapping(raw.get("headers", {}), "headers"),
                        enabled=not disabled, always_allow=allowed, timeout=timeout,
                        extra=extra)


def parse_config(text: str | bytes, source: str = FILE_NAME) -> McpConfig:
    """Servers from the text of an mcp.json; McpConfigError if it is not such a file at all."""
    if len(text) > MAX_FILE_BYTES:
        raise McpConfigError(f"{source} is {len(text):,} bytes; at most {MAX_FILE_BYTES:,} "
                             "are read.")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise McpConfigError(f"{source} is not valid JSON ({_short(exc)}). Fix it in a text "
                             "editor; NoMoat does not write over it meanwhile.") from exc
    if not isinstance(document, dict):
        raise McpConfigError(f"{source} must hold a JSON object with \"mcpServers\".")
    servers = document.get("mcpServers", document.get("servers", {}))
    if not isinstance(servers, dict):
        raise McpConfigError(f"\"mcpServers\" in {source} must be an object of servers by "
                             "name.")
    config = McpConfig(extra={k: v for k, v in document.items()
                              if k not in ("mcpServers", "servers")})
    for name, raw in servers.items():
        try:
            server = parse_server(name, raw)
        except (ValueError, TypeError) as exc:
            config.problems.append(f"The MCP server {str(name)[:MAX_NAME]!r} in {source} is "
                                   f"not used: {exc}.")
            continue
        if server.name in config.servers:
            config.problems.append(f"The MCP server {server.name!r} appears twice in {source}; "
                                   "the first is used.")
            continue
        config.servers[server.name] = server
    return config


def _short(exc: Exception) -> str:
    return re.sub(r"\s+", " ", str(exc))[:120]


def load_config(path: Path | None = None) -> McpConfig:
    """The configured servers; an absent file means none. McpConfigError for a file that
    cannot be read or is not an mcp.json."""
    path = path or config_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return McpConfig(path=path)
    except OSError as exc:
        raise McpConfigError(f"{path} cannot be read ({exc.strerror or exc}).") from exc
    config = parse_config(data, str(path))
    config.path = path
    return config


def save_config(config: McpConfig, path: Path | None = None) -> None:
    """Write *config* in one step (readable by the user only: headers and env may hold keys)."""
    path = path or config.path or config_path()
    data = json.dumps(config.to_json(), indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    try:
        write_atomic(path, data, private=True)
    except OSError as exc:
        raise McpConfigError(f"{path} cannot be written ({exc.strerror or exc}).") from exc
    config.path = path


def merge(config: McpConfig, other: McpConfig) -> list[str]:
    """Add *other*'s servers (an imported mcp.json) to *config*; a name already taken gets a
    number. Returns the names added."""
    added = []
    for server in other.servers.values():
        name, n = server.name, 2
        while name in config.servers:
            name = f"{server.name} ({n})"
            n += 1
        config.servers[name] = replace(server, name=name)
        added.append(name)
    return added


def with_allowed(server: ServerConfig, tool: str, allowed: bool) -> ServerConfig:
    """*server* with *tool* added to (or taken from) the tools that always run."""
    tools = set(server.always_allow)
    (tools.add if allowed else tools.discard)(tool)
    return replace(server, always_allow=frozenset(tools))
