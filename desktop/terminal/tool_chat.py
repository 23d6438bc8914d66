"""`nomoat chat --mcp NAME`: the terminal chat with the tools of configured MCP servers, asking
y/N before each call runs."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from desktop.client.api import EngineClient
from desktop.core.tool_calls import CallState, Decision, ToolCall
from desktop.terminal import CommandError
from desktop.terminal.engine import print_reply
from desktop.tools.config import McpConfigError, load_config, save_config, with_allowed
from desktop.tools.servers import McpServers
from desktop.tools.session import ToolSession

_ENDED = {CallState.DONE: "done", CallState.FAILED: "failed", CallState.DENIED: "denied",
          CallState.STOPPED: "stopped"}


class TerminalTools:
    """The servers named with --mcp, started for the chat and stopped when it ends."""

    def __init__(self, names: list[str], ask: Callable[[str], str] = input) -> None:
        try:
            self.config = load_config()
        except McpConfigError as exc:
            raise CommandError(str(exc)) from exc
        unknown = [n for n in names if n not in self.config.servers]
        if unknown:
            known = ", ".join(self.config.servers) or "none yet (add them on the Tools page)"
            raise CommandError(f"No MCP server is called {', '.join(map(repr, unknown))} in "
                               f"{self.config.path}. Configured: {known}.")
        self._ask_line = ask
        self.servers = McpServers(self.config)
        try:
            self.session = ToolSession(self.servers, names, self._always_allowed, self._remember)
        except BaseException:
            self.servers.close()
            raise
        for problem in self.session.problems:
            print(f"nomoat: {problem}", file=sys.stderr, flush=True)
        tools = ", ".join(sorted(self.session.offered)) or "none"
        print(f"Tools: {tools}", flush=True)

    def close(self) -> None:
        self.servers.close()

    def _always_allowed(self, server: str, tool: str) -> bool:
        entry = self.config.servers.get(server)
        return entry is not None and tool in entry.always_allow

    def _remember(self, server: str, tool: str) -> None:
        entry = self.config.servers.get(server)
        if entry is None:
            return
        self.config.servers[server] = with_allowed(entry, tool, True)
        try:
            save_config(self.config)
        except McpConfigError as exc:
            print(f"nomoat: {exc}", file=sys.stderr, flush=True)

    def ask(self, call: ToolCall) -> Decision:
        """y runs the call, a runs it and every later call of the tool, anything else denies."""
        arguments = call.arguments or "{}"
        if len(arguments) > 400:
            arguments = arguments[:400] + "…"
        try:
            answer = self._ask_line(f"Run {call.tool} ({call.server}) with {arguments}? "
                                    "[y/N/a=always] ")
        except EOFError:
            return Decision.DENY
        answer = answer.strip().lower()
        if answer in ("a", "always"):
            return Decision.ALWAYS
        return Decision.ONCE if answer in ("y", "yes") else Decision.DENY


def reply_with_tools(client: EngineClient, messages: list[dict[str, Any]], tools: TerminalTools,
                     params: dict[str, Any], rounds: int, first_choice: str = "auto"
                     ) -> list[dict[str, Any]]:
    """Stream a reply that may call tools, printing it; return the messages it adds to the
    conversation (each round's calls and results, then the answer). Ctrl+C stops it all."""
    session, cancelled = tools.session, threading.Event()
    added: list[dict[str, Any]] = []
    for round_ in range(rounds + 1):
        choice = first_choice if round_ == 0 else "auto"
        request = {**params, "tools": session.openai_tools(),
                   "tool_choice": "none" if round_ >= rounds else choice}
        text, end = print_reply(client, messages + added, request)
        if text:
            print(flush=True)
        if end is None or not end.tool_calls:
            if text:
                added.append({"role": "assistant", "content": text})
            return added
        calls = [session.make_call(raw) for raw in end.tool_calls]
        if end.finish_reason == "length":
            session.cut_short(calls)
        added.append({"role": "assistant", "content": text,
                      "tool_calls": [c.as_openai() for c in calls]})
        try:
            for call in calls:
                session.run(call, tools.ask, cancelled, lambda: None)
                _show(call)
        except KeyboardInterrupt:
            cancelled.set()
            for call in calls:
                if not call.ended:
                    call.finish(CallState.STOPPED, "Stopped.")
        added.extend(c.result_message() for c in calls)
        if cancelled.is_set():
            print("[stopped]", flush=True)
            return added
    return added


def _show(call: ToolCall) -> None:
    result = call.result if len(call.result) <= 300 else call.result[:300] + "…"
    print(f"[{call.tool}: {_ENDED.get(call.state, call.state.value)}]"
          + (f" {result}" if result else ""), flush=True)
