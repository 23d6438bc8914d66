"""One run of one MCP server, from its start until it stops: the process it runs (stdio) or the
address it is reached at (streamable HTTP), the SDK's ``ClientSession`` held open over it, and
the calls made through it. Everything here lives on the event loop of
:class:`desktop.tools.servers.McpServers`; what can go wrong is turned into sentences here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from pydantic import ValidationError

from desktop import __version__
from desktop.tools.calls import result_text
from desktop.tools.config import ServerConfig
from desktop.tools.server_state import CallResult, ServerLog, ServerState, ToolInfo, clean

MAX_TOOL_PAGES = 50  # a server that pages its tool list forever is cut off here
_HTTP_TIMEOUT = httpx.Timeout(30.0, read=300.0)


class Connection:
    """One run of one server. Created on the manager's loop; reports every change of its state
    through *on_change*. The SDK's context managers are entered and left in :meth:`_run`, the
    one task that owns them; calls are made from other tasks through the open session."""

    def __init__(self, config: ServerConfig, log: ServerLog | None, start_timeout: float,
                 on_change: Callable[[Connection], None]) -> None:
        self.config = config
        self.log = log
        self.start_timeout = start_timeout
        self.state = ServerState.STARTING
        self.tools: tuple[ToolInfo, ...] = ()
        self.error = ""
        self.settled = asyncio.Event()  # ready or failed
        self._on_change = on_change
        self._stopping = False
        self._scope: anyio.CancelScope | None = None
        self._ended = asyncio.Event()  # the server's output came to its end
        self._session: ClientSession | None = None
        self._unreadable = ""  # the last output of the server that was not an MCP message
        loop = asyncio.get_running_loop()
        # Starting, from the process being spawned to the list of tools, ends by this time of
        # the loop's clock: whoever waits for the run can tell when it is overdue.
        self.deadline = loop.time() + start_timeout
        self.task = loop.create_task(self._run(), name=f"mcp server {config.name}")

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def running(self) -> bool:
        """Starting or ready: not failed and not stopped."""
        return self.state in (ServerState.STARTING, ServerState.READY) and not self._stopping

    def stop(self) -> None:
        """End the run: the session is closed and the process ended, in the run's own task."""
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()

    def overdue(self) -> bool:
        """Still starting after its start timeout: the timer has not fired yet only because
        the loop was too busy to run it."""
        return (self.state == ServerState.STARTING
                and asyncio.get_running_loop().time() >= self.deadline)

    def give_up(self) -> None:
        """Fail an overdue start now, as its own timer would have, and end the process."""
        if self.state == ServerState.STARTING:
            self._fail(self._late())
            self.stop()

    def _late(self) -> str:
        sentence = f"did not answer within {self.start_timeout:g} s after it started."
        if self._unreadable:
            sentence += f" It wrote output that is not MCP ({self._unreadable})."
        return f"The MCP server '{self.name}' {sentence}"

    def output(self) -> str:
        return self.log.last_lines() if self.log is not None else ""

    def _said(self, sentence: str) -> str:
        output = self.output()
        return f"{sentence} Its output: {output}" if output else sentence

    def _fail(self, sentence: str) -> None:
        if self.state == ServerState.FAILED:
            return
        self.state, self.error, self._session = ServerState.FAILED, self._said(sentence), None
        self.settled.set()
        if not self._stopping:
            self._on_change(self)

    async def _run(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                read, write = await self._open(stack)
                watched = await self._watch(stack, read)
                session = await stack.enter_async_context(ClientSession(
                    watched, write, client_info=types.Implementation(name="NoMoat",
                                                                     version=__version__)))
                with anyio.CancelScope() as self._scope:
                    if self._stopping:
                        self._scope.cancel()
                    await self._serve(session)
        except Exception as exc:  # noqa: BLE001 - every failure of a server becomes its status
            self._fail(self._describe(exc))
        finally:
            self._session = None
            if self.state != ServerState.FAILED:
                self.state = ServerState.IDLE  # stopped as asked
            self.settled.set()

    async def _open(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        config = self.config
        if config.command is None:
            client = await stack.enter_async_context(httpx.AsyncClient(
                headers=config.headers, timeout=_HTTP_TIMEOUT, follow_redirects=True))
            read, write, _ = await stack.enter_async_context(
                streamable_http_client(config.url or "", http_client=client))
            return read, write
        cwd = Path(config.cwd).expanduser() if config.cwd else None
        if cwd is not None and not cwd.is_dir():
            raise _Unusable(f"could not be started: its folder '{config.cwd}' does not exist. "
                            "Fix 'cwd' in mcp.json.")
        params = StdioServerParameters(
            command=config.command, args=list(config.args), cwd=cwd,
            env={**get_default_environment(), **config.env},
            encoding_error_handler="replace")  # a stray byte is not worth the connection
        try:
            errlog = self.log.open(config.describe()) if self.log is not None else None
        except OSError as exc:
            raise _Unusable(f"could not be started: its log {self.log.path if self.log else ''} "
                            f"cannot be written ({clean(exc.strerror or exc)}).") from exc
        if errlog is not None:
            stack.callback(errlog.close)  # after the process ended: it is left before this
        try:
            return await stack.enter_async_context(
                stdio_client(params, errlog=errlog) if errlog else stdio_client(params))
        except FileNotFoundError as exc:
            raise _Unusable(f"could not be started: the program '{config.command}' was not "
                            "found. Install it, or give its full path as 'command' in "
                            "mcp.json.") from exc
        except PermissionError as exc:
            raise _Unusable(f"could not be started: '{config.command}' cannot be run "
                            "(permission denied).") from exc
        except OSError as exc:
            raise _Unusable(f"could not be started: {clean(exc.strerror or exc)}.") from exc

    async def _watch(self, stack: AsyncExitStack, read: Any) -> Any:
        """The server's messages, passed on to the session, so that the end of its output (the
        process died) is seen at once, and output that is not MCP is remembered for the error.
        """
        sender, receiver = anyio.create_memory_object_stream[Any](0)
        stack.push_async_callback(receiver.aclose)
        group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(group.cancel_scope.cancel)  # runs before the group is left

        async def forward() -> None:
            async with sender, read:
                async for item in read:
                    if isinstance(item, ValidationError):
                        self._unreadable = _first_problem(item)
                    elif isinstance(item, Exception):
                        self._unreadable = clean(item, 160)
                    try:
                        await sender.send(item)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        break  # the session has closed
            self._ended.set()

        group.start_soon(forward)
        return receiver

    async def _serve(self, session: ClientSession) -> None:
        try:
            left = self.deadline - asyncio.get_running_loop().time()
            with anyio.fail_after(max(left, 0.0)):
                started = await session.initialize()
                tools = await self._list_tools(session) if started.capabilities.tools else []
        except TimeoutError:
            self._fail(self._late())
            return
        except Exception as exc:  # noqa: BLE001 - what the server answered is its status
            self._fail(self._describe(exc))
            return
        self.tools, self._session = tuple(tools), session
        self.state = ServerState.READY
        self.settled.set()
        self._on_change(self)
        await self._ended.wait()
        self._fail(f"The MCP server '{self.name}' stopped unexpectedly; it is started again "
                   "when it is next used.")

    async def _list_tools(self, session: ClientSession) -> list[ToolInfo]:
        tools: list[ToolInfo] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            listed = await session.list_tools(params=params)
            tools += [ToolInfo(tool.name, tool.description or "", dict(tool.inputSchema))
                      for tool in listed.tools]
            cursor = listed.nextCursor
            if not cursor:
                break
        return tools

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> CallResult:
        """Call *tool*; every failure comes back as a CallResult saying what went wrong."""
        session = self._session
        if session is None or self.state != ServerState.READY:
            return CallResult(False, self.error or f"The MCP server '{self.name}' is not ready.")
        request = asyncio.ensure_future(session.call_tool(tool, arguments))
        request.add_done_callback(_consume)
        try:
            done, _ = await asyncio.wait({request, self.task}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            request.cancel()
            raise
        if request not in done:
            request.cancel()
            if self.task in done or self.error:  # it failed meanwhile
                return CallResult(False, self.error or self._said(
                    f"The MCP server '{self.name}' stopped during the call of '{tool}'."))
            return CallResult(False, f"The tool '{tool}' of the MCP server '{self.name}' did "
                                     f"not answer within {timeout:g} s.")
        try:
            result = request.result()
        except Exception as exc:  # noqa: BLE001 - every failure of a call is told in words
            return CallResult(False, self._call_error(tool, exc))
        text = result_text(result.content, result.structuredContent)
        if result.isError:
            return CallResult(False, text.strip()[:4000] or
                              f"The tool '{tool}' reported an error without saying which.")
        return CallResult(True, text)

    def _call_error(self, tool: str, exc: Exception) -> str:
        if isinstance(exc, McpError) and exc.error.code == types.CONNECTION_CLOSED:
            return self._said(f"The MCP server '{self.name}' stopped during the call of "
                              f"'{tool}'.")
        if _session_ended(exc) and self.config.url:
            # Its session is gone (the server restarted): the next use connects afresh.
            self._fail(f"The MCP server '{self.name}' ended the session at {self.config.url} "
                       "(it may have restarted); it is connected again when it is next used.")
            if self._scope is not None:
                self._scope.cancel()
            return self.error
        if isinstance(exc, McpError):
            return (f"The MCP server '{self.name}' refused the call of '{tool}': "
                    f"{clean(exc.error.message) or 'it gave no reason'}.")
        if isinstance(exc, ValidationError):
            return (f"The MCP server '{self.name}' answered the call of '{tool}' with "
                    f"something that is not valid MCP ({_first_problem(exc)}).")
        return f"The call of '{tool}' on the MCP server '{self.name}' failed: {_plain(exc)}."

    def _describe(self, exc: BaseException) -> str:
        """Why the server could not be started or reached, as a sentence starting with it."""
        exc = _leaf(exc)
        start = f"The MCP server '{self.name}'"
        url = self.config.url
        if isinstance(exc, _Unusable):
            return f"{start} {exc}"
        if isinstance(exc, httpx.HTTPStatusError):
            code = exc.response.status_code
            if code in (401, 403):
                return (f"{start} refused the connection at {url} (HTTP {code}). Check the key "
                        "or token in its 'headers' in mcp.json.")
            if code == 404:
                return (f"{start} has no MCP endpoint at {url} (HTTP 404). Check the address; "
                        "it often ends in /mcp.")
            return f"{start} answered HTTP {code} at {url}."
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return (f"{start} could not be reached at {url}. Check that it is running and "
                    "that the address is right.")
        if isinstance(exc, httpx.HTTPError):
            return f"{start} could not be reached at {url} ({_plain(exc)})."
        if isinstance(exc, _GONE) or (isinstance(exc, McpError)
                                      and exc.error.code == types.CONNECTION_CLOSED):
            if self.state == ServerState.READY:
                return (f"{start} stopped unexpectedly; it is started again when it is next "
                        "used.")
            return f"{start} stopped before it was ready."
        if _session_ended(exc) and url:  # what the SDK makes of an HTTP 404
            return (f"{start} has no MCP endpoint at {url} (HTTP 404). Check the address; "
                    "it often ends in /mcp.")
        if isinstance(exc, McpError):
            return (f"{start} answered the start with an error: "
                    f"{clean(exc.error.message) or 'it gave no reason'}.")
        if isinstance(exc, ValidationError):
            return (f"{start} answered with something that is not valid MCP "
                    f"({_first_problem(exc)}).")
        return f"{start} failed: {_plain(exc)}."


_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, BrokenPipeError,
         ConnectionResetError)  # what writing to a server that has exited raises


class _Unusable(Exception):
    """A server that cannot be started as configured; the message says why."""


def _consume(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of a call nobody waits for any more as seen."""
    if not task.cancelled():
        task.exception()


def _session_ended(exc: BaseException) -> bool:
    return isinstance(exc, McpError) and exc.error.message == "Session terminated"


def _leaf(exc: BaseException) -> BaseException:
    """The error inside the groups the SDK's task groups wrap around it, cancellations aside."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (inner or list(exc.exceptions))[0]
    return exc


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "unreadable"
    where = ".".join(str(part) for part in errors[0].get("loc", ()))
    problem = errors[0].get("msg", "")
    return clean(f"{where}: {problem}" if where else problem, 160)


def _plain(exc: BaseException) -> str:
    text = clean(exc, 200)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
