"""`nomoat --smoke-test`: one real round through the desktop app, to check a build.

The app opens its window (set QT_QPA_PLATFORM=offscreen where there is no display), starts its
engine and loads a model the way every start does, sends one chat message and waits for the
reply, turns on the public API switch of the Server page, and prints where the API listens.
The test then sends a request with its own client and writes a line to stdin; the app checks
that the engine logged the request, and quits the way the window does.

Each step prints one line ``nomoat-smoke {json}`` on stdout; a failed step prints
``nomoat-smoke-failed: reason`` and the exit code is 1. packaging/smoke_test.py drives this.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from desktop import __version__
from desktop.client.process import engine_command
from desktop.core.chats import Message
from desktop.core.paths import set_home

PREFIX = "nomoat-smoke"
FAILED = "nomoat-smoke-failed:"
REPLY_TOKENS = 48  # enough for a real sentence, short enough to keep the test quick


def report(event: str, **facts: Any) -> None:
    """One progress line for the test that drives the app."""
    print(f"{PREFIX} {json.dumps({'event': event, **facts}, sort_keys=True)}", flush=True)


class SmokeRun(QObject):
    """Steps through the round as the app's own signals arrive; fails on a timeout."""

    def __init__(self, desktop: Any, prompt: str, port: int, timeout: float) -> None:
        super().__init__(desktop)
        self.desktop = desktop
        self.prompt = prompt
        self.port = port
        self.step = "starting the engine"
        self.code: int | None = None
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(lambda: self.fail(f"timed out while {self.step}"))
        self._deadline.start(int(timeout * 1000))
        self._poll = QTimer(self)
        self._poll.setInterval(100)
        self._poll.timeout.connect(self._check_public)
        desktop.engine.stateChanged.connect(self._engine_state)
        desktop.chat.replyFinished.connect(self._reply)
        desktop.chat.replyFailed.connect(lambda reason: self.fail(f"the reply failed: {reason}"))

    def fail(self, reason: str) -> None:
        if self.code is not None:
            return
        print(f"{FAILED} {reason}", flush=True)
        self._finish(1)

    def _finish(self, code: int) -> None:
        self.code = code
        self._deadline.stop()
        self._poll.stop()
        QTimer.singleShot(0, QApplication.quit)

    def _engine_state(self, state: str, message: str) -> None:
        if state in ("crashed", "failed"):
            self.fail(f"the engine {state} while {self.step}: {message}")
            return
        if state != "ready" or self.step != "starting the engine":
            return
        supervisor = self.desktop.engine.supervisor
        if supervisor.model is None:
            self.fail(f"the engine started without a model: {message}")
            return
        report("engine", model=supervisor.model[0], pid=supervisor.pid, command=engine_command())
        self.step = "waiting for the chat reply"
        self.desktop.chat.sampling = {"max_tokens": REPLY_TOKENS}
        if not self.desktop.chat.send(self.prompt):
            self.fail("the chat did not take the message")

    def _reply(self, message: Message) -> None:
        if self.step != "waiting for the chat reply":
            return
        if message.state != "complete" or not message.content.strip():
            self.fail(f"the reply was not complete ({message.state}: {message.error})")
            return
        report("reply", text=message.content, tokens=message.completion_tokens)
        self.step = "opening the public API"
        page = self.desktop.server_page
        page.port.setValue(self.port)
        page.switch.setChecked(True)
        self._poll.start()

    def _check_public(self) -> None:
        status = self.desktop.server_page.status.text()
        if status.startswith("Could not change the server"):
            self.fail(status)
            return
        public = self.desktop.engine.supervisor.public
        if public is None or not status.startswith("Serving at"):
            return
        self._poll.stop()
        report("public", base_url=f"http://127.0.0.1:{public['port']}/v1",
               model=self.desktop.engine.supervisor.model[0])
        self.step = "waiting for the test's API request"
        self.desktop.workers.submit(sys.stdin.readline, on_done=self._request_sent,
                                    on_error=lambda exc: self.fail(f"stdin: {exc}"))

    def _request_sent(self, _line: str) -> None:
        self.step = "reading the engine's request log"
        supervisor = self.desktop.engine.supervisor
        self.desktop.workers.submit(lambda: supervisor.client.request_log(),
                                    on_done=self._logged,
                                    on_error=lambda exc: self.fail(f"request log: {exc}"))

    def _logged(self, entries: list[dict[str, Any]]) -> None:
        routes = [str(entry.get("route")) for entry in entries]
        if not any(route.endswith("/chat/completions") for route in routes):
            self.fail(f"the public API logged no chat request (it logged {routes})")
            return
        report("requests", routes=routes)
        self.step = "quitting"
        self._finish(0)


def main(argv: list[str] | None = None) -> int:
    """Run the round; 0 when every step worked."""
    parser = argparse.ArgumentParser(prog="nomoat --smoke-test",
                                     description="Check a build: one chat turn, one API call.")
    parser.add_argument("--data-dir", metavar="DIR", help="data folder (also: NOMOAT_HOME)")
    parser.add_argument("--model", metavar="ID|PATH", help="model to load (default: as usual)")
    parser.add_argument("--port", type=int, required=True, help="port for the public API")
    parser.add_argument("--prompt", default="Say hello in one short sentence.")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    if args.data_dir:
        set_home(args.data_dir)

    from desktop.ui.app import DesktopApp

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("NoMoat")
    app.setApplicationVersion(__version__)
    desktop = DesktopApp(app)  # type: ignore[arg-type]
    run = SmokeRun(desktop, args.prompt, args.port, args.timeout)
    desktop.start(args.model)
    app.exec()
    desktop.close()
    if desktop.engine.pid is not None:
        print(f"{FAILED} the engine was still running after the app closed", flush=True)
        return 1
    report("closed", code=run.code)
    return run.code if run.code is not None else 1
