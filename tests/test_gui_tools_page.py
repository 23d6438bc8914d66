"""The Tools page: MCP servers added, edited, switched, started and imported through the real
widgets, with real MCP servers (tests/mcp_servers) started as the chat would start them."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QFileDialog, QMessageBox

from desktop.core.settings import load_settings
from desktop.tools.config import config_path, parse_server
from desktop.tools.servers import ServerState
from desktop.ui.tool_servers import ToolServers
from desktop.ui.views.tools_page import ToolsPage

SERVERS = Path(__file__).resolve().parent / "mcp_servers"
NOTES = str(SERVERS / "notes.py")
BROKEN = str(SERVERS / "broken.py")
HANG = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write_mcp(servers: dict[str, Any]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def saved() -> dict[str, Any]:
    return json.loads(config_path().read_text())["mcpServers"]


def notes_entry(folder: Path, **more: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [NOTES], "env": {"NOTES_DIR": str(folder)},
            **more}


@pytest.fixture
def tools(qtbot, home) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """Open the Tools page on the mcp.json the test wrote (its ToolServers: page.servers)."""
    opened: list[ToolServers] = []

    def open_page(start_timeout: float = 20.0) -> ToolsPage:
        servers = ToolServers(start_timeout=start_timeout)
        opened.append(servers)
        page = ToolsPage(servers, 8)
        qtbot.addWidget(page)
        page.resize(900, 700)
        page.show()
        return page

    yield open_page
    for servers in opened:
        servers.close()


def fill_program(dialog: Any, name: str, command: str, args: list[str], env: str = "") -> None:
    dialog.name.setText(name)
    dialog.kind.setCurrentIndex(dialog.kind.findData("stdio"))
    dialog.command.setText(command)
    dialog.args.setPlainText("\n".join(args))
    dialog.env.setPlainText(env)


def save_button(dialog: Any) -> Any:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Save)


def test_a_server_added_in_the_dialog_is_saved_to_mcp_json(qtbot, tools, tmp_path) -> None:
    page = tools()
    assert not page.empty.isHidden() and page.notice.isHidden()
    page.add.click()
    dialog = page.dialog
    assert dialog is not None and dialog.isVisible()
    fill_program(dialog, "notes", sys.executable, [NOTES], f"NOTES_DIR={tmp_path}\nLEVEL=2")
    dialog.cwd.setText(str(tmp_path))
    save_button(dialog).click()
    assert not dialog.isVisible() and page.dialog is None
    assert saved() == {"notes": {"command": sys.executable, "args": [NOTES],
                                 "env": {"NOTES_DIR": str(tmp_path), "LEVEL": "2"},
                                 "cwd": str(tmp_path)}}
    card = page.cards["notes"]
    assert card.describe.text() == f"{sys.executable} {NOTES}"
    assert card.state.text() == "Starts when a chat needs it"
    assert card.switch.isChecked() and page.empty.isHidden()

    page.add.click()  # an address, with a header
    dialog = page.dialog
    dialog.name.setText("search")
    dialog.kind.setCurrentIndex(dialog.kind.findData("http"))
    dialog.url.setText("http://127.0.0.1:9/mcp")
    dialog.headers.setPlainText("Authorization: Bearer secret")
    save_button(dialog).click()
    assert saved()["search"] == {"url": "http://127.0.0.1:9/mcp",
                                 "headers": {"Authorization": "Bearer secret"}}
    assert list(page.cards) == ["notes", "search"]

    page.cards["notes"].edit.click()  # renamed in place: it keeps its position
    dialog = page.dialog
    assert dialog.name.text() == "notes" and dialog.args.toPlainText() == NOTES
    dialog.name.setText("my notes")
    save_button(dialog).click()
    assert list(saved()) == ["my notes", "search"] and list(page.cards) == ["my notes", "search"]
    assert saved()["my notes"]["env"]["LEVEL"] == "2"


def test_a_bad_entry_shows_its_error_and_keeps_what_was_typed(qtbot, tools, tmp_path) -> None:
    write_mcp({"notes": notes_entry(tmp_path)})
    page = tools()
    page.add.click()
    dialog = page.dialog
    fill_program(dialog, "notes", sys.executable, [NOTES, "--verbose"], "NOTES_DIR")
    save_button(dialog).click()
    assert dialog.isVisible() and not dialog.error.isHidden()
    assert "named notes already" in dialog.error.text()

    dialog.name.setText("more notes")
    save_button(dialog).click()
    assert dialog.isVisible()
    assert dialog.error.text() == "Line 1 of the environment is not like NAME=value."
    assert dialog.args.toPlainText() == f"{NOTES}\n--verbose"
    assert dialog.env.toPlainText() == "NOTES_DIR" and dialog.name.text() == "more notes"

    dialog.kind.setCurrentIndex(dialog.kind.findData("http"))
    dialog.url.setText("ftp://files.example")
    save_button(dialog).click()
    assert dialog.isVisible() and "http://" in dialog.error.text()
    assert dialog.url.text() == "ftp://files.example"
    dialog.name.setText("   ")
    save_button(dialog).click()
    assert dialog.error.text() == "A server needs a name."

    dialog.name.setText("more notes")  # what was typed for the program is still there
    dialog.kind.setCurrentIndex(dialog.kind.findData("stdio"))
    assert dialog.command.text() == sys.executable
    dialog.env.setPlainText(f"NOTES_DIR={tmp_path}")
    assert list(saved()) == ["notes"]  # nothing saved while the entry was wrong
    save_button(dialog).click()
    assert not dialog.isVisible()
    assert saved()["more notes"]["args"] == [NOTES, "--verbose"]


def test_switching_a_server_off_is_saved_at_once(qtbot, tools, tmp_path) -> None:
    write_mcp({"notes": notes_entry(tmp_path, alwaysAllow=["read_note"]),
               "other": {"url": "http://127.0.0.1:9/mcp"}})
    page = tools()
    servers = page.servers
    card = page.cards["notes"]
    card.switch.click()
    assert saved()["notes"]["disabled"] is True
    assert saved()["notes"]["alwaysAllow"] == ["read_note"]  # the rest stays as it was
    assert card.state.text() == "Off" and not card.restart.isEnabled()
    assert servers.status("notes").state == ServerState.OFF
    card.switch.click()
    assert "disabled" not in saved()["notes"]
    qtbot.waitUntil(lambda: card.state.text() == "Starts when a chat needs it")
    assert card.restart.isEnabled()


def test_start_makes_a_server_ready_and_lists_its_tools(qtbot, tools, tmp_path) -> None:
    write_mcp({"notes": notes_entry(tmp_path)})
    page = tools()
    servers = page.servers
    card = page.cards["notes"]
    assert card.restart.text() == "Start"
    card.restart.click()
    qtbot.waitUntil(lambda: card.state.text() == "Ready — 4 tools", timeout=30_000)
    assert set(card.tool_names()) == {"todays_note", "read_note", "fail", "wait"}
    assert card.restart.text() == "Restart"
    card.restart.click()  # a restart goes through starting back to ready
    qtbot.waitUntil(lambda: card.state.text() == "Ready — 4 tools"
                    and servers.status("notes").state == ServerState.READY, timeout=30_000)


def test_a_server_that_fails_shows_its_own_error_output(qtbot, tools) -> None:
    write_mcp({"broken": {"command": sys.executable, "args": [BROKEN]}})
    page = tools()
    card = page.cards["broken"]
    card.restart.click()
    qtbot.waitUntil(lambda: card.state.text().startswith("Failed:"), timeout=30_000)
    assert card.state.property("problem") is True
    line = broken_line()
    assert not card.show_output.isHidden() and card.output.isHidden()
    card.show_output.click()
    assert not card.output.isHidden() and card.show_output.text() == "Hide output"
    assert line in card.output.toPlainText() and line in card.state.text()
    assert card.restart.text() == "Start"  # it can be tried again


def broken_line() -> str:
    """The line tests/mcp_servers/broken.py writes to its standard error."""
    import subprocess

    done = subprocess.run([sys.executable, BROKEN], capture_output=True, text=True, timeout=30,
                          check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 3
    return done.stderr.strip().splitlines()[-1]


def test_import_adds_the_servers_of_another_mcp_json(qtbot, tools, tmp_path,
                                                     monkeypatch) -> None:
    write_mcp({"notes": notes_entry(tmp_path)})
    page = tools()
    other = tmp_path / "claude_desktop_config.json"
    other.write_text(json.dumps({"mcpServers": {
        "notes": {"command": "npx", "args": ["-y", "notes-server"]},
        "search": {"url": "https://search.example/mcp"},
        "old": {"url": "http://127.0.0.1:9/sse", "type": "sse"}}}))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_, **__: (str(other), ""))
    page.import_button.click()
    assert list(saved()) == ["notes", "notes (2)", "search"]
    assert saved()["notes (2)"] == {"command": "npx", "args": ["-y", "notes-server"]}
    assert saved()["notes"]["args"] == [NOTES]
    assert list(page.cards) == ["notes", "notes (2)", "search"]
    notice = page.notice.text()
    assert not page.notice.isHidden()
    assert "Imported notes (2), search from claude_desktop_config.json." in notice
    assert "'old'" in notice and "SSE" in notice

    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_, **__: (str(broken), ""))
    page.import_button.click()
    assert "Nothing was imported" in page.notice.text()
    assert "not valid JSON" in page.notice.text()
    assert list(saved()) == ["notes", "notes (2)", "search"]


def test_a_broken_mcp_json_is_shown_and_never_written_over(qtbot, tools, tmp_path) -> None:
    path = config_path()
    path.parent.mkdir(parents=True)
    broken = '{"mcpServers": {"notes": {"command": "x",}}'
    path.write_text(broken)
    page = tools()
    servers = page.servers
    assert servers.config.servers == {} and "not valid JSON" in servers.error
    assert not page.notice.isHidden() and "not valid JSON" in page.notice.text()
    assert "Reload" in page.notice.text()
    assert not page.add.isEnabled() and not page.import_button.isEnabled()
    assert page.empty.isHidden()  # the list is not empty: it could not be read

    servers.put(parse_server("new", {"command": "x"}))  # a later change is used, not saved
    servers.set_always_allowed("new", "tool", True)
    servers.set_enabled("new", False)
    assert servers.always_allowed("new", "tool") and list(page.cards) == ["new"]
    assert path.read_text() == broken
    assert "not valid JSON" in page.notice.text()

    write_mcp({"notes": notes_entry(tmp_path)})  # fixed by hand
    page.reload.click()
    assert servers.error == "" and page.notice.isHidden()
    assert list(page.cards) == ["notes"] and page.add.isEnabled()
    page.cards["notes"].switch.click()
    assert saved()["notes"]["disabled"] is True


def test_entries_nobody_can_use_stay_in_mcp_json(qtbot, tools, tmp_path) -> None:
    write_mcp({"notes": notes_entry(tmp_path), "typo": {"command": "x", "args": "one"}})
    page = tools()
    assert "'typo'" in page.notice.text() and list(page.cards) == ["notes"]
    page.cards["notes"].switch.click()
    assert saved() == {"notes": notes_entry(tmp_path, disabled=True),
                       "typo": {"command": "x", "args": "one"}}


def test_revoking_an_always_allowed_tool_takes_it_from_mcp_json(qtbot, tools, tmp_path) -> None:
    write_mcp({"notes": notes_entry(tmp_path, alwaysAllow=["read_note", "wait"])})
    page = tools()
    servers = page.servers
    card = page.cards["notes"]
    assert servers.always_allowed("notes", "read_note")
    assert not servers.always_allowed("notes", "fail")
    assert card.tool_names() == ["read_note", "wait"]  # revocable before the server runs
    card.restart.click()
    qtbot.waitUntil(lambda: card.state.text() == "Ready — 4 tools", timeout=30_000)
    revoke = dict(card.revoke)
    assert sorted(revoke) == ["read_note", "wait"]
    started_again: list[Any] = []
    servers.statusChanged.connect(started_again.append)
    with qtbot.waitSignal(servers.configChanged):
        revoke["read_note"].click()
    assert saved()["notes"]["alwaysAllow"] == ["wait"]
    assert not servers.always_allowed("notes", "read_note")
    assert sorted(card.revoke) == ["wait"]

    # A decision made while a tool call runs in a worker is taken to the GUI thread.
    worker = threading.Thread(target=servers.set_always_allowed, args=("notes", "fail", True))
    with qtbot.waitSignal(servers.configChanged):
        worker.start()
        worker.join()
    assert saved()["notes"]["alwaysAllow"] == ["fail", "wait"]
    card.revoke["wait"].click()
    card.revoke["fail"].click()
    assert "alwaysAllow" not in saved()["notes"] and card.revoke == {}
    # Allowing and revoking never restarted the server.
    assert card.state.text() == "Ready — 4 tools" and not started_again


def test_remove_asks_first(qtbot, tools, tmp_path, monkeypatch) -> None:
    write_mcp({"notes": notes_entry(tmp_path), "other": {"url": "http://127.0.0.1:9/mcp"}})
    page = tools()
    asked: list[str] = []

    def answer(reply: QMessageBox.StandardButton) -> Any:
        def question(_parent: Any, _title: str, text: str, *_: Any) -> Any:
            asked.append(text)
            return reply
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    page.cards["notes"].remove.click()
    assert list(saved()) == ["notes", "other"] and "Remove notes" in asked[0]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    page.cards["notes"].remove.click()
    assert list(saved()) == ["other"] and list(page.cards) == ["other"]


def test_a_server_that_hangs_at_start_never_stalls_the_window(qtbot, tools) -> None:
    write_mcp({"hangs": {"command": HANG[0], "args": HANG[1:]}})
    page = tools(start_timeout=2.0)
    card = page.cards["hangs"]
    gaps: list[int] = []
    clock = QElapsedTimer()
    timer = QTimer(page, interval=10)

    def tick() -> None:
        gaps.append(clock.restart())

    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    started = time.monotonic()
    card.restart.click()
    qtbot.waitUntil(lambda: card.state.text() == "Starting…", timeout=5_000)
    qtbot.waitUntil(lambda: card.state.text().startswith("Failed:"), timeout=15_000)
    timer.stop()
    assert time.monotonic() - started >= 1.5  # it waited for the start timeout
    assert len(gaps) > 100 and max(gaps) <= 50, max(gaps)
    assert "2 s" in card.state.text()


@pytest.mark.skipif(os.name != "posix", reason="the engine tests use POSIX signals")
def test_the_tools_page_in_the_window(qtbot, home) -> None:
    from conftest import open_desktop

    write_mcp({"notes": notes_entry(home)})
    app = open_desktop(qtbot)
    try:
        window = app.window
        assert list(window.pages).index("Tools") == list(window.pages).index("Server") + 1
        assert app.chat.tool_servers is app.tool_servers
        assert app.chat.tool_rounds == 8
        assert list(app.tools_page.cards) == ["notes"]

        # By keyboard: the list of pages, then Tab into the page.
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)
        window.nav.setFocus()
        while window.nav.currentItem().text() != "Tools":
            qtbot.keyClick(window.nav, Qt.Key.Key_Down)
        assert window.stack.currentWidget() is app.tools_page
        reached = []
        for _ in range(30):
            qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
            reached.append(QApplication.focusWidget())
        page = app.tools_page
        for widget in (page.add, page.import_button, page.cards["notes"].switch,
                       page.cards["notes"].restart, page.tool_rounds):
            assert widget in reached, widget.accessibleName() or widget.text()

        page.tool_rounds.setValue(12)
        assert app.chat.tool_rounds == 12
        qtbot.waitUntil(lambda: load_settings().tool_rounds == 12, timeout=5_000)
        page.cards["notes"].restart.click()
        qtbot.waitUntil(lambda: page.cards["notes"].state.text() == "Ready — 4 tools",
                        timeout=30_000)
    finally:
        app.close()
    # Closing the app ends the servers and their thread.
    assert not [t for t in threading.enumerate() if t.name == "mcp-servers"]

