"""The tools one reply may use, and each call the model makes with them: offered from the
servers the chat picked, asked about (unless the user said "always" for that tool), run, and
answered with the result or the reason it did not run.

Used the same way by the window and by the terminal; neither the asking nor the running ever
happens on a GUI thread (the caller's *ask* blocks until the user has decided).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from desktop.core.tool_calls import CallState, Decision, ToolCall
from desktop.tools.calls import OfferedTool, offer
from desktop.tools.servers import McpServers

Ask = Callable[[ToolCall], Decision]


class ToolSession:
    """The tools of *names* (MCP servers), ready to offer to the model.

    Starting the servers happens here (blocking, bounded by their start timeout); servers that
    cannot be used are listed in :attr:`problems` in words, and the others are offered.
    """

    def __init__(self, servers: McpServers, names: Iterable[str],
                 always_allowed: Callable[[str, str], bool],
                 remember: Callable[[str, str], None] | None = None,
                 timeout: float | None = None) -> None:
        self.servers = servers
        self.always_allowed = always_allowed
        self.remember = remember
        tools, self.problems = servers.tools(list(names), timeout)
        self.offered: dict[str, OfferedTool] = offer(
            {server: [(t.name, t.description, t.input_schema) for t in listed]
             for server, listed in tools.items()})

    def __bool__(self) -> bool:
        return bool(self.offered)

    def openai_tools(self) -> list[dict[str, Any]]:
        """The tools as the chat API's ``tools`` field takes them."""
        return [tool.as_openai() for tool in self.offered.values()]

    def routes(self) -> dict[str, tuple[str, str]]:
        """Each offered function name: the server and tool it calls."""
        return {name: (tool.server, tool.tool) for name, tool in self.offered.items()}

    def make_call(self, raw: dict[str, Any]) -> ToolCall:
        """A call the model made (OpenAI's shape), as the chat saves it."""
        return ToolCall.from_openai(raw, self.routes())

    @staticmethod
    def cut_short(calls: list[ToolCall]) -> None:
        """The reply reached its length limit: those of *calls* whose arguments it did not
        finish writing never run (the others are whole, and run as usual)."""
        for call in calls:
            try:
                call.parsed_arguments()
            except ValueError:
                call.finish(CallState.FAILED, "The call was cut short: the reply reached its "
                                              "length limit (Max tokens) while writing it.")

    def run(self, call: ToolCall, ask: Ask, cancelled: threading.Event,
            changed: Callable[[], None]) -> None:
        """Decide and run *call*, calling *changed* after each change of its state.

        Nothing runs without the user's say: *ask* is asked unless the tool is always allowed.
        A call that cannot run (no such tool, arguments that are not an object) fails without
        asking; a stop ends it at once.
        """
        if call.ended:  # cut short before it could run
            return None
        if cancelled.is_set():
            call.finish(CallState.STOPPED, "The reply was stopped before this call ran.")
            return changed()
        if call.function not in self.offered:
            names = ", ".join(sorted(self.offered)) or "none"
            call.finish(CallState.FAILED, f"There is no tool named {call.function!r}. "
                                          f"The tools are: {names}.")
            return changed()
        try:
            arguments = call.parsed_arguments()
        except ValueError as exc:
            call.finish(CallState.FAILED, f"The call could not be made: {exc}.")
            return changed()
        if not self.always_allowed(call.server, call.tool):
            call.state = CallState.ASKING
            changed()
            decision = ask(call)
            if cancelled.is_set():
                call.finish(CallState.STOPPED, "The reply was stopped before this call ran.")
                return changed()
            if decision == Decision.DENY:
                call.finish(CallState.DENIED, "")
                return changed()
            if decision == Decision.ALWAYS and self.remember is not None:
                self.remember(call.server, call.tool)
        call.state = CallState.RUNNING
        changed()
        result = self.servers.call(call.server, call.tool, arguments, cancelled=cancelled)
        if cancelled.is_set():
            call.finish(CallState.STOPPED, result.text or "The reply was stopped while this "
                                                          "call ran.")
        else:
            call.finish(CallState.DONE if result.ok else CallState.FAILED, result.text)
        changed()
