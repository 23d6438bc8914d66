"""Tools in the chat, driven as a user drives them: a real MCP server (the SDK's, over stdio or
streamable HTTP), the starter model, and the window's own buttons.

The 135M starter model seldom decides to call a tool by itself, so the first round of each
reply is forced to call a named tool (``tool_choice``); what happens next is what a user sees
with any model: the call asks first, runs or not, and the reply goes on with the result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from conftest import free_port, start_serve, stop_serve
from test_gui import open_app

from desktop.client.api import EngineClient
from desktop.core.chats import ChatStore
from desktop.core.tool_calls import CallState

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals")

REPO = Path(__file__).resolve().parent.parent
SERVERS = Path(__file__).resolve().parent / "mcp_servers"
NOTE = "Buy bread, then call Ada at 5."
ASK = "What is today's note?"


def named(tool: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": tool}}


def notes_entry(tmp_path: Path, *only: str, **extra: Any) -> dict[str, Any]:
    args = [str(SERVERS / "notes.py")] + [a for tool in only for a in ("--only", tool)]
    return {"command": sys.executable, "args": args,
            "env": {"NOTES_DIR": str(tmp_path / "notes"), "NOTES_LOG": str(tmp_path / "ran.log"),
                    **extra.pop("env", {})}, **extra}


def write_mcp(home: Path, servers: dict[str, Any]) -> Path:
    path = home / "settings" / "mcp.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "today.txt").write_text(NOTE, encoding="utf-8")
    write_mcp(tmp_path / "home", {"notes": notes_entry(tmp_path, "todays_note", "fail"),
                                  "broken": {"command": sys.executable,
                                             "args": [str(SERVERS / "broken.py")]}})
    return tmp_path / "home"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each round of a reply asked of the engine (the real client still sends it)."""
    requests: list[dict[str, Any]] = []
    original = EngineClient.chat_stream

    def chat_stream(self, messages, model=None, **params):  # type: ignore[no-untyped-def]
        requests.append({"messages": json.loads(json.dumps(messages)), **params})
        return original(self, messages, model, **params)

    monkeypatch.setattr(EngineClient, "chat_stream", chat_stream)
    return requests


@pytest.fixture
def app(qtbot, home, sent):  # type: ignore[no-untyped-def]
    desktop = open_app(qtbot, home)
    desktop.chat.tool_rounds = 1  # one round of calls, then the reply answers
    yield desktop
    desktop.close()


def pick(app, *servers: str) -> None:  # type: ignore[no-untyped-def]
    """Tick servers in the chat's tools menu, as the user does."""
    page = app.window.chat_page
    page.tools_menu.aboutToShow.emit()
    for action in page.tools_menu.actions():
        if action.text() in servers:
            action.trigger()
    assert app.chat.tools == list(servers)
    assert page.tools_button.text() == f"Tools ({len(servers)})"


def ask(qtbot, app, text: str = ASK) -> None:  # type: ignore[no-untyped-def]
    page = app.window.chat_page
    page.composer.setPlainText(text)
    qtbot.keyClick(page.composer, Qt.Key.Key_Return)


def asking_block(qtbot, app):  # type: ignore[no-untyped-def]
    """The call block that waits for the user's say."""
    page = app.window.chat_page

    def block():  # type: ignore[no-untyped-def]
        blocks = list(page.reply.call_blocks.values()) if page.reply is not None else []
        return next((b for b in blocks if b.state == CallState.ASKING), None)

    qtbot.waitUntil(lambda: block() is not None and block().allow_once.isVisible(),
                    timeout=120_000)
    return block()


def ran(tmp_path: Path) -> list[str]:
    log = tmp_path / "ran.log"
    return log.read_text(encoding="utf-8").split() if log.exists() else []


def test_a_call_asks_first_then_its_result_reaches_the_model_and_the_saved_chat(
        qtbot, app, tmp_path, sent) -> None:
    pick(app, "notes")
    app.chat.tool_choice = named("todays_note")
    ask(qtbot, app)
    block = asking_block(qtbot, app)
    assert block.header.text() == "Tool call: todays_note (notes): waiting for your say"
    assert block.arguments.isVisible()  # what would run is shown before the user decides
    assert ran(tmp_path) == []  # nothing runs without the user's say
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        qtbot.mouseClick(block.allow_once, Qt.MouseButton.LeftButton)
    message = finished.args[0]
    assert message.state == "complete"
    [step] = message.tool_steps
    [call] = step.calls
    assert (call.state, call.result, call.server, call.tool) == (
        CallState.DONE, NOTE, "notes", "todays_note")
    assert ran(tmp_path) == ["todays_note"]
    # The next round carried the result to the model, and had to answer in words.
    first, second = sent[-2:]
    assert [t["function"]["name"] for t in first["tools"]] == ["todays_note", "fail"]
    assert second["tool_choice"] == "none"
    assert {"role": "tool", "tool_call_id": call.id, "content": NOTE} in second["messages"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "todays_note"
    # Shown in the reply, folded once done, and saved with the chat.
    block = app.window.chat_page.messages[-1].call_blocks[call.id]
    assert block.header.text() == "Tool call: todays_note (notes): done"
    assert not block.details.isVisible()
    block.header.click()
    assert block.result.isVisible() and NOTE in block.result.text()
    saved = app.store.messages(message.conversation_id)
    assert saved[-1].tool_steps[0].calls[0].result == NOTE
    assert app.store.conversation(message.conversation_id).settings["tools"] == ["notes"]
    # Reopened, the chat shows the call again and keeps its servers; exports carry it.
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=10_000):
        app.chat.new_conversation()
    assert app.window.chat_page.tools_button.text() == "Tools"
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=10_000):
        app.chat.open_conversation(message.conversation_id)
    reopened = app.window.chat_page.messages[-1]
    assert reopened.call_blocks[call.id].header.text() == "Tool call: todays_note (notes): done"
    assert app.chat.tools == ["notes"]
    markdown = app.store.export_markdown(message.conversation_id)
    assert "Tool call: todays_note (notes): done" in markdown and NOTE in markdown
    exported = json.loads(app.store.export_json(message.conversation_id))
    assert exported["messages"][-1]["tool_steps"][0]["calls"][0]["result"] == NOTE


def test_a_denied_call_never_runs_and_the_model_is_told(qtbot, app, tmp_path, sent) -> None:
    pick(app, "notes")
    app.chat.tool_choice = named("todays_note")
    ask(qtbot, app)
    block = asking_block(qtbot, app)
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        qtbot.mouseClick(block.deny, Qt.MouseButton.LeftButton)
    [call] = finished.args[0].tool_steps[0].calls
    assert call.state == CallState.DENIED
    assert ran(tmp_path) == []
    told = next(m for m in sent[-1]["messages"] if m["role"] == "tool")
    assert "did not allow" in told["content"]
    shown = app.window.chat_page.messages[-1].call_blocks[call.id]
    assert shown.header.text() == "Tool call: todays_note (notes): denied"


def test_always_is_remembered_and_the_next_call_runs_without_asking(
        qtbot, app, home, tmp_path) -> None:
    pick(app, "notes")
    app.chat.tool_choice = named("todays_note")
    ask(qtbot, app)
    block = asking_block(qtbot, app)
    assert block.allow_always.text() == "Always allow todays_note"
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000):
        qtbot.mouseClick(block.allow_always, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: json.loads((home / "settings" / "mcp.json").read_text(
        encoding="utf-8"))["mcpServers"]["notes"].get("alwaysAllow") == ["todays_note"],
        timeout=5_000)
    saved = json.loads((home / "settings" / "mcp.json").read_text(encoding="utf-8"))
    assert saved["mcpServers"]["broken"]["args"] == [str(SERVERS / "broken.py")]  # kept
    states: list[str] = []
    app.chat.replySteps.connect(lambda steps: states.extend(
        c.state.value for s in steps for c in s.calls))
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        ask(qtbot, app, "And again?")
    assert "asking" not in states and finished.args[0].tool_steps[0].calls[0].state == "done"
    assert ran(tmp_path) == ["todays_note", "todays_note"]


def test_a_failing_tool_goes_back_to_the_model_as_an_error(qtbot, app, home, tmp_path) -> None:
    write_mcp(home, {"notes": notes_entry(tmp_path, "todays_note", "fail",
                                          alwaysAllow=["fail"])})
    app.tool_servers.reload()
    pick(app, "notes")
    app.chat.tool_choice = named("fail")
    app.chat.sampling = {**app.chat.sampling, "max_tokens": 64}  # room for the reason
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        ask(qtbot, app, "Try the failing tool.")
    message = finished.args[0]
    [call] = message.tool_steps[0].calls
    assert call.state == CallState.FAILED and call.result
    assert message.state == "complete", message.error
    assert ran(tmp_path) == ["fail"]
    assert app.window.chat_page.messages[-1].call_blocks[call.id].header.text() == \
        "Tool call: fail (notes): failed"


def test_a_call_cut_short_by_the_length_limit_never_runs(qtbot, app, home, tmp_path) -> None:
    write_mcp(home, {"notes": notes_entry(tmp_path, "fail", alwaysAllow=["fail"])})
    app.tool_servers.reload()
    pick(app, "notes")
    app.chat.tool_choice = named("fail")
    app.chat.sampling = {**app.chat.sampling, "max_tokens": 20}  # ends inside the arguments
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        ask(qtbot, app, "Try the failing tool.")
    [call] = finished.args[0].tool_steps[0].calls
    assert call.state == CallState.FAILED and "cut short" in call.result
    assert ran(tmp_path) == []
    # The conversation can go on: the cut call goes back to the model as valid JSON.
    app.chat.set_tools([])
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        ask(qtbot, app, "Never mind.")
    assert finished.args[0].state == "complete", finished.args[0].error


def test_stop_while_a_call_asks_ends_the_whole_reply_at_once(qtbot, app, tmp_path) -> None:
    pick(app, "notes")
    app.chat.tool_choice = named("todays_note")
    ask(qtbot, app)
    asking_block(qtbot, app)
    stop = app.window.chat_page.send_button  # Stop while the reply is written
    assert stop.accessibleName() == "Stop reply"
    with qtbot.waitSignal(app.chat.busyChanged, timeout=5_000):
        qtbot.mouseClick(stop, Qt.MouseButton.LeftButton)
    message = app.store.messages(app.chat.conversation.id)[-1]
    assert message.state == "stopped"
    assert message.tool_steps[0].calls[0].state == CallState.STOPPED
    assert ran(tmp_path) == []


def test_a_server_that_fails_to_start_says_why_and_the_reply_goes_on(qtbot, app) -> None:
    pick(app, "broken")
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        ask(qtbot, app, "Hello")
    assert finished.args[0].state == "complete" and not finished.args[0].tool_steps
    notice = app.window.chat_page.notice
    assert notice.isVisible() and "broken" in notice.text()
    assert "broken server: cannot open its database" in notice.text()  # its own words


def test_a_server_that_hangs_never_stalls_the_window(qtbot, app, home, tmp_path) -> None:
    write_mcp(home, {"slow": {"command": sys.executable,
                              "args": [str(SERVERS / "notes.py"), "--hang"], "timeout": 2}})
    app.tool_servers.reload()
    pick(app, "slow")
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    try:
        with qtbot.waitSignal(app.chat.toolNote, timeout=30_000) as note:
            ask(qtbot, app, "Hello")
        timer.stop()
    finally:
        timer.stop()
    assert "did not" in note.args[0] and "slow" in note.args[0]
    assert len(gaps) > 50 and max(gaps) < 0.05, max(gaps)
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        pass
    assert finished.args[0].state == "complete"


def test_tools_of_an_http_server_reach_a_remote_engine(qtbot, app, home, tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "NOTES_DIR": str(tmp_path / "notes"),
           "NOTES_LOG": str(tmp_path / "ran.log")}
    server = subprocess.Popen([sys.executable, str(SERVERS / "notes.py"), "--http", str(port),
                               "--only", "todays_note"], env=env, stderr=subprocess.DEVNULL)
    far = start_serve()
    try:
        write_mcp(home, {"web": {"url": f"http://127.0.0.1:{port}/mcp",
                                 "alwaysAllow": ["todays_note"]}})
        app.tool_servers.reload()
        before = app.engine.supervisor.client.status()["last_generation"]
        settings = app.window.pages["Server"]
        settings.remote_url.setText(far.base_url)
        settings.use_remote.setChecked(True)
        qtbot.waitUntil(lambda: "serves" in settings.remote_status.text(), timeout=10_000)
        pick(app, "web")
        app.chat.tool_choice = named("todays_note")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the HTTP server takes a moment to listen
            if app.tool_servers.manager.tools(["web"], timeout=5)[0]:
                break
        with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
            ask(qtbot, app)
        [call] = finished.args[0].tool_steps[0].calls
        assert (call.state, call.result) == (CallState.DONE, NOTE)
        assert app.engine.supervisor.client.status()["last_generation"] == before
        settings.use_remote.setChecked(False)
    finally:
        stop_serve(far)
        server.terminate()
        server.wait(10)


CHILD = """
import json, os, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from desktop.ui.app import DesktopApp

qt = QApplication([])
app = DesktopApp(qt, "light")
app.start()
app.chat.sampling = {"max_tokens": 24, "temperature": 0.0}
app.chat.tool_choice = {"type": "function", "function": {"name": "todays_note"}}
app.chat.set_tools(["notes"])

def steps(found):
    if any(c.state.value == "running" for s in found for c in s.calls):
        print("running", flush=True)

app.chat.replySteps.connect(steps)

def go():
    if app.engine.state == "ready" and app.engine.status.get("model"):
        app.chat.send("What is today's note?")
    else:
        QTimer.singleShot(100, go)

go()
qt.exec()
"""


def test_killing_the_app_mid_call_loses_nothing_saved_before_it(home, tmp_path) -> None:
    write_mcp(home, {"notes": notes_entry(tmp_path, "todays_note", alwaysAllow=["todays_note"],
                                          env={"NOTES_DELAY": "60"})})
    env = {**os.environ, "NOMOAT_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "running", child.stderr.read() if child.stderr else ""
        os.killpg(child.pid, signal.SIGKILL)  # the app, its engine and its MCP server
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    with ChatStore(home / "chats" / "conversations.sqlite3") as store:
        [entry] = store.list_conversations()
        question, reply = store.messages(entry.conversation.id)
        assert question.content == "What is today's note?"
        assert entry.conversation.settings["tools"] == ["notes"]
        assert reply.state == "stopped"
        [call] = reply.tool_steps[0].calls
        assert (call.tool, call.state) == ("todays_note", CallState.STOPPED)
        assert call.arguments  # what the model asked for is kept
