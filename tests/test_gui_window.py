"""The window's own layout: room for the chat and the conversation list, remembered as left."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.ui.app import DesktopApp


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def opened(qtbot: QtBot) -> DesktopApp:
    """The window as it first appears (the engine is not needed to lay it out)."""
    desktop = DesktopApp(QApplication.instance(), "light")
    qtbot.addWidget(desktop.window)
    desktop.window.show()
    qtbot.waitExposed(desktop.window)
    return desktop


def test_default_window_leaves_room_for_the_conversation_list(qtbot: QtBot, home: Path) -> None:
    desktop = opened(qtbot)
    try:
        window = desktop.window
        # No page forces the first window wider than 1,180 pixels, unless this machine's fonts
        # make the window's own minimum wider than that.
        first_width = window.width()
        assert first_width == max(1180, window.minimumSizeHint().width()), first_width
        # The side panels are closed at first: the chat has the room.
        assert list(window.docks) == ["Model settings", "Adapters"]
        assert not any(dock.isVisible() for dock in window.docks.values())
        assert not any(b.isChecked() for b in window.chat_page.header.panel_buttons.values())
        sidebar, chat = window.splitter.sizes()
        assert sidebar >= 180 and chat >= 500, (sidebar, chat)
        # A long conversation title ends in "…" instead of widening the window.
        title = "A very long question about the history of bread " * 4
        window.chat_page.title.setText(title)
        QApplication.processEvents()
        assert window.width() == first_width
        shown = window.chat_page.title.text()
        assert shown.endswith("…") and len(shown) >= 5, shown
        assert window.chat_page.title.toolTip() == title
    finally:
        desktop.close()


def test_docks_and_the_sidebar_are_remembered(qtbot: QtBot, home: Path) -> None:
    first = opened(qtbot)
    try:
        first.window.resize(1400, 820)
        first.window.splitter.setSizes([320, 700])
        buttons = first.window.chat_page.header.panel_buttons
        buttons["Adapters"].click()  # opened by the user, from the chat's header
        assert first.adapters_dock.isVisible() and buttons["Adapters"].isChecked()
        QApplication.processEvents()
        wanted = first.window.splitter.sizes()
    finally:
        first.close()

    second = opened(qtbot)
    try:
        docks = second.window.docks
        buttons = second.window.chat_page.header.panel_buttons
        assert second.adapters_dock.isVisible() and buttons["Adapters"].isChecked()
        assert not docks["Model settings"].isVisible()
        assert (second.window.width(), second.window.height()) == (1400, 820)
        assert second.window.splitter.sizes() == wanted
        buttons["Adapters"].click()  # closed again
        assert not second.adapters_dock.isVisible() and not buttons["Adapters"].isChecked()
        buttons["Model settings"].click()
        assert docks["Model settings"].isVisible()
        assert second.window.chat_page.settings_panel.isVisible()
        second.window.show_page("Settings")  # the dock steps aside off the chat...
        assert not docks["Model settings"].isVisible()
    finally:
        second.close()

    third = opened(qtbot)
    try:
        # ...and was open beside the chat when the window closed.
        assert third.window.docks["Model settings"].isVisible()
        assert not third.adapters_dock.isVisible()
    finally:
        third.close()
