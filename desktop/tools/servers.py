"""The MCP servers the chat may use, started when first needed and kept running.

:class:`McpServers` owns one thread with an asyncio event loop; each running server is one task
on it (see :class:`desktop.tools.connection.Connection`) that holds the SDK's session open.
The methods that only ask for something (start, stop, restart, configure) return at once; the
two that need an answer (tools, call) block their caller, never beyond their timeout, and are
meant to be called off the GUI thread. Nothing a server does raises out of them: it comes back
as a status or a :class:`CallResult` that says what happened, in words.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from desktop.core.paths import get_paths
from desktop.tools.config import McpConfig, ServerConfig
from desktop.tools.server_state import CallResult, ServerLog, ServerState, ToolInfo

if TYPE_CHECKING:  # the SDK is imported when the first server starts, not with the window
    from desktop.tools.connection import Connection

__all__ = ["CallResult", "McpServers", "ServerState", "ServerStatus", "ToolInfo"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_MARGIN = 1.0  # seconds a caller waits past a server's own timeout, so the server's error wins


@dataclass(frozen=True)
class ServerStatus:
    """What the list of servers shows for one: its state, its tools when ready, and why it
    failed (ending with the last lines of the server's own error output, when it wrote any)."""

    name: str
    state: ServerState
    tools: tuple[ToolInfo, ...] = ()
    error: str = ""
    log: str = ""  # the tail of the server's stderr (stdio servers), at most ~8 kB


class McpServers:
    """The servers of an mcp.json, run on demand.

    *on_status* is called from the manager's own thread whenever a server's status changes.
    Call :meth:`close` when done: it ends every server process and the manager's thread.
    """

    def __init__(self, config: McpConfig,
                 on_status: Callable[[ServerStatus], None] | None = None, *,
                 start_timeout: float = 30.0, call_timeout: float = 120.0,
                 log_dir: Path | None = None) -> None:
        self._on_status = on_status
        self._start_timeout = start_timeout
        self._call_timeout = call_timeout
        self._log_dir = log_dir if log_dir is not None else get_paths().logs / "mcp"
        self._lock = threading.Lock()  # guards the fields from here to _thread
        self._configs: dict[str, ServerConfig] = {}
        self._statuses: dict[str, ServerStatus] = {}
        self._logs: dict[str, ServerLog] = {}  # of each server's latest run, for the log tail
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Touched on the loop only: the current run of each server, and every run not yet ended.
        self._runs: dict[str, Connection] = {}
        self._ending: set[Connection] = set()
        self._configure(config)

    # --- asked from any thread ---------------------------------------------------------------

    def configure(self, config: McpConfig) -> None:
        """Use the servers of *config* from now on. Servers removed, changed or switched off
        are stopped; new ones are idle (or off) until needed."""
        changed = self._configure(config)
        with self._lock:
            loop = self._loop
        if loop is None:  # no thread of the manager's yet: nothing runs, tell from here
            for status in changed:
                self._notify(status)
            return
        try:
            loop.call_soon_threadsafe(self._apply_config)
            for status in changed:
                loop.call_soon_threadsafe(self._notify, status)
        except RuntimeError:
            log.debug("configure() after close(): nothing to stop")

    def _configure(self, config: McpConfig) -> list[ServerStatus]:
        changed: list[ServerStatus] = []
        with self._lock:
            if self._closed:
                return []
            statuses: dict[str, ServerStatus] = {}
            for name, server in config.servers.items():
                kept = self._statuses.get(name)
                if kept is None or self._configs.get(name) != server:
                    kept = ServerStatus(name, ServerState.IDLE if server.enabled
                                        else ServerState.OFF)
                    changed.append(kept)
                statuses[name] = kept
            self._configs, self._statuses = dict(config.servers), statuses
            self._logs = {name: self._logs[name] for name in statuses if name in self._logs}
        return changed

    def statuses(self) -> list[ServerStatus]:
        """Every configured server's status, in the order of mcp.json."""
        with self._lock:
            return [self._with_log(status) for status in self._statuses.values()]

    def status(self, name: str) -> ServerStatus:
        """The status of the server *name*; KeyError when there is no such server."""
        with self._lock:
            return self._with_log(self._statuses[name])

    def start(self, name: str) -> None:
        """Start the server *name* if it is on and not running; an unknown name is ignored."""
        self._post(self._start, name)

    def restart(self, name: str) -> None:
        """Stop the server *name* and start it again."""
        self._post(self._restart, name)

    def stop(self, name: str) -> None:
        """Stop the server *name*; it is idle until it is needed again."""
        self._post(self._stop, name)

    def tools(self, names: Iterable[str], timeout: float | None = None,
              ) -> tuple[dict[str, list[ToolInfo]], list[str]]:
        """The tools of the servers *names*, by server, and one sentence for each of them that
        cannot be used. Starts those that are on and not running, and waits until each is
        ready or failed, at most *timeout* (by default the start timeout). Blocks."""
        names = list(dict.fromkeys(names))
        wait = (max((self._timeout_of(n) for n in names), default=self._start_timeout)
                + _MARGIN if timeout is None else timeout)
        future = self._submit(self._ready_tools(names, wait))
        if future is None:
            return {}, [f"The MCP server '{name}' cannot be used: the MCP servers were closed."
                        for name in names]
        try:
            return future.result(wait + _MARGIN)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            future.cancel()
            return {}, [f"The MCP server '{name}' did not get ready within {wait:g} s."
                        for name in names]

    def call(self, server: str, tool: str, arguments: dict[str, Any], *,
             timeout: float | None = None,
             cancelled: threading.Event | None = None) -> CallResult:
        """Call *tool* of *server* with *arguments*, starting the server first if needed.
        Blocks until the result, the *timeout* (by default the call timeout; starting has the
        start timeout on top), or *cancelled* being set. Never raises for what a server does."""
        timeout = self._call_timeout if timeout is None else timeout
        future = self._submit(self._call(server, tool, dict(arguments), timeout))
        if future is None:
            return CallResult(False, f"The call of '{tool}' was not made: the MCP servers were "
                                     "closed.")
        deadline = time.monotonic() + self._timeout_of(server) + timeout + 2 * _MARGIN
        while True:
            if cancelled is not None and cancelled.is_set():
                future.cancel()
                return CallResult(False, f"The call of '{tool}' was cancelled.")
            left = deadline - time.monotonic()
            if left <= 0:
                future.cancel()
                return CallResult(False, f"The tool '{tool}' of the MCP server '{server}' did "
                                         f"not answer within {timeout:g} s.")
            try:
                return future.result(min(left, 0.05) if cancelled is not None else left)
            except concurrent.futures.TimeoutError:
                continue
            except concurrent.futures.CancelledError:
                return CallResult(False, f"The call of '{tool}' was not finished: the MCP "
                                         "servers were closed.")

    def _timeout_of(self, name: str) -> float:
        """The seconds the server *name* may take to start: its own, or the default."""
        with self._lock:
            config = self._configs.get(name)
        return (config.timeout if config is not None and config.timeout
                else self._start_timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every server (their processes end, none is left behind) and end the manager's
        thread. Calling it again does nothing."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        if thread is threading.current_thread():  # from on_status: it cannot wait for itself
            loop.create_task(self._shutdown(timeout, then_stop=True))
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), loop)
            future.result(timeout + 2 * _MARGIN)
        except RuntimeError:
            pass  # the loop is closed: another close() ended it meanwhile
        except concurrent.futures.CancelledError:
            pass  # another close() stopped the loop first
        except concurrent.futures.TimeoutError:
            log.warning("The MCP servers did not all stop within %s s.", timeout)
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass  # already closed
        thread.join(timeout + 2 * _MARGIN)

    # --- plumbing between threads ------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop | None:
        with self._lock:
            if self._closed:
                return None
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                # Not a daemon: close() ends it, and ending it ends the server processes.
                self._thread = threading.Thread(target=self._serve, args=(self._loop,),
                                                name="mcp-servers")
                self._thread.start()
            return self._loop

    def _post(self, function: Callable[[str], Any], name: str) -> None:
        loop = self._ensure_loop()
        if loop is not None:
            loop.call_soon_threadsafe(function, name)

    def _submit(self, work: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T] | None:
        loop = self._ensure_loop()
        if loop is None:
            work.close()
            return None
        try:
            return asyncio.run_coroutine_threadsafe(work, loop)
        except RuntimeError:  # closed meanwhile
            work.close()
            return None

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _notify(self, status: ServerStatus) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:  # a broken listener must not stop the servers
            log.exception("on_status failed for the MCP server %r", status.name)

    def _with_log(self, status: ServerStatus) -> ServerStatus:
        server_log = self._logs.get(status.name)
        if server_log is None or status.state == ServerState.OFF:
            return status
        return ServerStatus(status.name, status.state, status.tools, status.error,
                            server_log.tail())

    # --- on the loop ------------------------------------------------------------------------

    def _publish(self, run: Connection) -> None:
        """A run changed state: show it, unless the run is no longer the server's current one."""
        with self._lock:
            if self._runs.get(run.name) is not run or self._configs.get(run.name) != run.config:
                return
            status = ServerStatus(run.name, run.state,
                                  run.tools if run.state == ServerState.READY else (),
                                  run.error if run.state == ServerState.FAILED else "")
            self._statuses[run.name] = status
            status = self._with_log(status)
        self._notify(status)

    def _set_idle(self, name: str) -> None:
        with self._lock:
            config = self._configs.get(name)
            if config is None:
                return
            status = ServerStatus(name, ServerState.IDLE if config.enabled else ServerState.OFF)
            changed = self._statuses.get(name) != status
            self._statuses[name] = status
        if changed:
            self._notify(status)

    def _connect(self, name: str) -> Connection | None:
        """The server's current run, started now if it is on and not running."""
        run = self._runs.get(name)
        if run is not None and run.running:
            return run
        with self._lock:
            config = self._configs.get(name)
            if config is None or not config.enabled or self._closed:
                return None
            server_log = None
            if config.command is not None:
                server_log = ServerLog(self._log_dir / _log_name(name))
                self._logs[name] = server_log
        from desktop.tools.connection import Connection

        run = Connection(config, server_log, config.timeout or self._start_timeout,
                         self._publish)
        self._runs[name] = run
        self._ending.add(run)
        run.task.add_done_callback(lambda _: self._ending.discard(run))
        self._publish(run)
        return run

    def _start(self, name: str) -> None:
        self._connect(name)

    def _stop(self, name: str) -> None:
        run = self._runs.pop(name, None)
        if run is not None:
            run.stop()
        self._set_idle(name)

    def _restart(self, name: str) -> None:
        self._stop(name)
        self._connect(name)

    def _apply_config(self) -> None:
        with self._lock:
            configs = dict(self._configs)
        for name, run in list(self._runs.items()):
            config = configs.get(name)
            if config is None or not config.enabled or config != run.config:
                del self._runs[name]
                run.stop()

    def _unusable(self, name: str) -> str | None:
        """Why *name* cannot be used even before it is started, or None."""
        with self._lock:
            config = self._configs.get(name)
        if config is None:
            return f"There is no MCP server named '{name}' in mcp.json."
        if not config.enabled:
            return (f"The MCP server '{name}' is switched off; switch it on in the list of MCP "
                    "servers to use it.")
        return None

    async def _ready(self, name: str, wait: float) -> Connection | str:
        """The running server, ready; or why it is not."""
        problem = self._unusable(name)
        run = self._connect(name) if problem is None else None
        if run is None:
            return problem or f"The MCP server '{name}' cannot be used now."
        try:
            await asyncio.wait_for(run.settled.wait(), wait)
        except TimeoutError:
            if not run.overdue():  # the caller asked for less time than the server has
                return f"The MCP server '{name}' is still starting; try again in a moment."
            run.give_up()  # what the list shows agrees with what the caller was told
        if run.state != ServerState.READY:
            return run.error or f"The MCP server '{name}' stopped before it was ready."
        return run

    async def _ready_tools(self, names: list[str], wait: float,
                           ) -> tuple[dict[str, list[ToolInfo]], list[str]]:
        found = await asyncio.gather(*(self._ready(name, wait) for name in names))
        tools = {name: list(run.tools) for name, run in zip(names, found)
                 if not isinstance(run, str)}
        return tools, [problem for problem in found if isinstance(problem, str)]

    async def _call(self, server: str, tool: str, arguments: dict[str, Any],
                    timeout: float) -> CallResult:
        run = await self._ready(server, self._timeout_of(server) + _MARGIN)
        if isinstance(run, str):
            return CallResult(False, run)
        return await run.call(tool, arguments, timeout)

    async def _shutdown(self, timeout: float, then_stop: bool = False) -> None:
        for name in list(self._runs):
            self._stop(name)
        ending = [run.task for run in self._ending]
        if ending:
            _, late = await asyncio.wait(ending, timeout=timeout)
            for task in late:  # cancelled, the SDK kills the process it started
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=_MARGIN)
        if then_stop:
            asyncio.get_running_loop().stop()


def _log_name(name: str) -> str:
    """A file name for the server *name*'s log; names that had to be changed get a hash."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:48]
    if safe != name:
        safe += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return safe + ".log"
