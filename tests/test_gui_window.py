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
        assert desktop.adapters_dock.isVisible()
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
        first.adapters_dock.toggleViewAction().trigger()  # closed by the user
        assert not first.adapters_dock.isVisible()
        QApplication.processEvents()
        wanted = first.window.splitter.sizes()
    finally:
        first.close()

    second = opened(qtbot)
    try:
        assert not second.adapters_dock.isVisible()
        assert (second.window.width(), second.window.height()) == (1400, 820)
        assert second.window.splitter.sizes() == wanted
        second.adapters_dock.toggleViewAction().trigger()
        second.window.show_page("Settings")  # the dock steps aside off the chat...
        assert not second.adapters_dock.isVisible()
    finally:
        second.close()

    third = opened(qtbot)
    try:
        assert third.adapters_dock.isVisible()  # ...and was open beside the chat when closed
    finally:
        third.close()
