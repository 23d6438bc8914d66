"""The MCP servers of mcp.json, shared by the whole window: the Tools page edits them, the chat
uses their tools.

The servers themselves are run by :class:`desktop.tools.servers.McpServers`, which reports each
change of a server's state from a thread of its own; here those reports become a Qt signal on
the GUI thread. Nothing here blocks: starting a server returns at once, and listing or calling
tools is left to workers.

A file that cannot be read is never written over: until the user fixes it and reloads, the list
is empty and every save is refused with the reason.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal

from desktop.core.files import write_atomic
from desktop.tools.config import (McpConfig, McpConfigError, ServerConfig, config_path,
                                  load_config, merge, parse_server, save_config, with_allowed)
from desktop.tools.servers import McpServers, ServerState, ServerStatus


def copy_config(config: McpConfig) -> McpConfig:
    """A copy whose server list can be changed without touching *config*."""
    return replace(config, servers=dict(config.servers), problems=list(config.problems),
                   extra=dict(config.extra))


class ToolServers(QObject):
    """mcp.json, the servers it names, and their states, for every page of the window."""

    statusChanged = Signal(object)  # ServerStatus
    configChanged = Signal()  # servers added/removed/edited/switched, or always-allowed tools
    _reported = Signal(object)  # a ServerStatus from the manager's thread
    _allow_asked = Signal(str, str, bool)  # set_always_allowed from another thread

    def __init__(self, parent: QObject | None = None, *, start_timeout: float = 30.0,
                 call_timeout: float = 120.0) -> None:
        super().__init__(parent)
        self.config = McpConfig(path=config_path())
        self.error = ""
        self._readable = False  # False while mcp.json cannot be read: never written over then
        self._kept: dict[str, Any] = {}  # entries the config cannot use, written back as they are
        self._closed = False
        # Queued even when the manager reports from this thread: a page never hears of a
        # change in the middle of its own call.
        self._reported.connect(self._report, Qt.ConnectionType.QueuedConnection)
        self._allow_asked.connect(self.set_always_allowed, Qt.ConnectionType.QueuedConnection)
        self._load()
        self.manager = McpServers(_for_manager(self.config), self._from_manager,
                                  start_timeout=start_timeout, call_timeout=call_timeout)

    # -- reading and writing mcp.json ------------------------------------------------------------
    def _load(self) -> None:
        path = config_path()
        try:
            config = load_config(path)
        except McpConfigError as exc:
            self.config, self._readable, self._kept = McpConfig(path=path), False, {}
            self.error = (f"{exc} Choose Reload once it is fixed; until then, changes made "
                          "here are not saved.")
            return
        self.config, self.error, self._readable = config, "", True
        self._kept = _unusable_entries(path) if config.problems else {}

    def reload(self) -> None:
        """Read mcp.json again (after the user edited it by hand) and use what it says now."""
        self._load()
        self.manager.configure(_for_manager(self.config))
        self.configChanged.emit()

    def save(self, config: McpConfig) -> None:
        """Use *config* from now on and write it to mcp.json.

        A file that could not be read is left alone; a failed write keeps *config* in use.
        Either way :attr:`error` says what happened, in words.
        """
        self.config = copy_config(config)
        if self._readable:  # else the error already says that nothing is saved
            try:
                self._write(self.config)
            except McpConfigError as exc:
                self.error = f"{exc} The change is used until NoMoat closes."
            else:
                self.error = ""
        self.manager.configure(_for_manager(self.config))
        self.configChanged.emit()

    def _write(self, config: McpConfig) -> None:
        path = config.path or config_path()
        if not self._kept:
            save_config(config, path)
            return
        # Entries NoMoat cannot use stay in the file for the user to fix: they are written
        # back as they were, after the servers in use.
        document = config.to_json()
        for name, raw in self._kept.items():
            document["mcpServers"].setdefault(name, raw)
        data = json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        try:
            write_atomic(path, data, private=True)
        except OSError as exc:
            raise McpConfigError(f"{path} cannot be written ({exc.strerror or exc}).") from exc

    @property
    def readable(self) -> bool:
        """Whether mcp.json could be read, so that changes are saved to it."""
        return self._readable

    # -- changes the Tools page makes ------------------------------------------------------------
    def put(self, server: ServerConfig, replacing: str | None = None) -> None:
        """Add *server*, or put it in the place of the server named *replacing*."""
        config = copy_config(self.config)
        if replacing is not None and replacing in config.servers:
            config.servers = {(server.name if name == replacing else name):
                              (server if name == replacing else entry)
                              for name, entry in config.servers.items()}
        else:
            config.servers[server.name] = server
        self.save(config)

    def remove(self, name: str) -> None:
        config = copy_config(self.config)
        if config.servers.pop(name, None) is not None:
            self.save(config)

    def set_enabled(self, name: str, enabled: bool) -> None:
        server = self.config.servers.get(name)
        if server is not None and server.enabled != enabled:
            self.put(replace(server, enabled=enabled), name)

    def add_servers(self, other: McpConfig) -> list[str]:
        """Add the servers of an imported mcp.json under free names; returns those names."""
        config = copy_config(self.config)
        added = merge(config, other)
        if added:
            self.save(config)
        return added

    def always_allowed(self, server: str, tool: str) -> bool:
        """Whether the user said *tool* of *server* may always run without asking."""
        entry = self.config.servers.get(server)
        return entry is not None and tool in entry.always_allow

    def set_always_allowed(self, server: str, tool: str, allowed: bool) -> None:
        """Remember in mcp.json (its alwaysAllow) whether *tool* runs without asking.

        From another thread (a tool call deciding in a worker), the change is handed to the GUI
        thread and made there a moment later.
        """
        if QThread.currentThread() is not self.thread():
            self._allow_asked.emit(server, tool, allowed)
            return
        entry = self.config.servers.get(server)
        if entry is not None and (tool in entry.always_allow) != allowed:
            self.put(with_allowed(entry, tool, allowed), server)

    # -- states ----------------------------------------------------------------------------------
    def status(self, name: str) -> ServerStatus:
        """*name*'s state now (never waits)."""
        try:
            return self.manager.status(name)
        except KeyError:  # configured a moment ago: the manager has not taken it in yet
            entry = self.config.servers.get(name)
            on = entry is not None and entry.enabled
            return ServerStatus(name, ServerState.IDLE if on else ServerState.OFF)

    def _from_manager(self, status: ServerStatus) -> None:
        if not self._closed:
            self._reported.emit(status)

    def _report(self, status: ServerStatus) -> None:
        if not self._closed:
            self.statusChanged.emit(status)

    def close(self) -> None:
        """Stop every server; no state is reported after this."""
        if self._closed:
            return
        self._closed = True
        self.manager.close()


def _for_manager(config: McpConfig) -> McpConfig:
    """*config* as the manager gets it: without the tools always allowed, which only this
    module asks about, so that allowing or revoking one never restarts a running server."""
    servers = {name: replace(server, always_allow=frozenset())
               for name, server in config.servers.items()}
    return replace(config, servers=servers, problems=list(config.problems),
                   extra=dict(config.extra))


def _unusable_entries(path: Path) -> dict[str, Any]:
    """The entries of mcpServers in the file at *path* that parse_server refuses, by name."""
    try:
        document = json.loads(path.read_bytes())
        servers = document.get("mcpServers", document.get("servers", {}))
    except (OSError, ValueError, AttributeError):  # read a moment ago: changed since
        return {}
    kept = {}
    for name, raw in servers.items() if isinstance(servers, dict) else ():
        try:
            parse_server(name, raw)
        except (ValueError, TypeError):
            kept[name] = raw
    return kept
