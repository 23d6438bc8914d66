"""The side panels beside the chat (the adapters, the model settings): closed in a new data
folder, opened from the chat's header, and open or closed again as they were left when the
window comes back; with adapters in use, a small window still shows the header and the message
box whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import open_desktop
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot
from test_adapters import make_lora
from test_gui_look import cut_buttons, cut_picker

from desktop.core.settings import ModelSettings, Settings, save_settings
from desktop.ui.app import DesktopApp

PANELS = ("Model settings", "Adapters")
MODEL = "smollm2-135m-instruct"


def use_folder(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(folder))
    return folder


def opened(qtbot: QtBot) -> DesktopApp:
    """The window as it first appears (the panels need no engine)."""
    desktop = DesktopApp(QApplication.instance(), "light")  # type: ignore[arg-type]
    qtbot.addWidget(desktop.window)
    desktop.window.show()
    qtbot.waitExposed(desktop.window)
    return desktop


def open_panels(desktop: DesktopApp) -> set[str]:
    """The panels shown, checked against their buttons in the chat's header."""
    window = desktop.window
    buttons = window.chat_page.header.panel_buttons
    shown = {name for name, dock in window.docks.items() if dock.isVisible()}
    assert shown == {name for name, button in buttons.items() if button.isChecked()}
    return shown


def test_the_panels_start_closed_and_open_from_the_header(qtbot: QtBot, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    use_folder(monkeypatch, tmp_path / "fresh")
    desktop = opened(qtbot)
    try:
        window = desktop.window
        assert tuple(window.docks) == PANELS
        assert window.docks["Adapters"] is desktop.adapters_dock
        assert open_panels(desktop) == set()  # the chat has the room
        buttons = window.chat_page.header.panel_buttons
        assert set(buttons) == set(PANELS)
        assert all(b.isVisible() and b.isCheckable() and b.accessibleName().endswith(name)
                   and b.toolTip() for name, b in buttons.items())

        buttons["Adapters"].click()
        assert open_panels(desktop) == {"Adapters"}
        assert desktop.adapters_panel.isVisible()
        buttons["Model settings"].click()
        assert open_panels(desktop) == {"Adapters", "Model settings"}
        assert window.chat_page.settings_panel.isVisible()
        buttons["Adapters"].click()  # the same button closes it again
        assert open_panels(desktop) == {"Model settings"}
        buttons["Model settings"].click()
        assert open_panels(desktop) == set()
    finally:
        desktop.close()


@pytest.mark.parametrize("left_open", [("Adapters",), ("Model settings",), PANELS],
                         ids=["adapters", "model-settings", "both"])
def test_a_panel_left_open_comes_back_open(qtbot: QtBot, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           left_open: tuple[str, ...]) -> None:
    use_folder(monkeypatch, tmp_path / "home")
    first = opened(qtbot)
    try:
        for name in left_open:
            first.window.chat_page.header.panel_buttons[name].click()
        assert open_panels(first) == set(left_open)
    finally:
        first.close()

    second = opened(qtbot)  # the same data folder
    try:
        assert open_panels(second) == set(left_open)
        for name in left_open:  # closed this time...
            second.window.chat_page.header.panel_buttons[name].click()
        assert open_panels(second) == set()
    finally:
        second.close()

    third = opened(qtbot)
    try:
        assert open_panels(third) == set()  # ...and closed they stay
    finally:
        third.close()

    # What one data folder remembers is its own: another one starts with the panels closed.
    use_folder(monkeypatch, tmp_path / "other")
    fresh = opened(qtbot)
    try:
        assert open_panels(fresh) == set()
    finally:
        fresh.close()


def test_a_panel_open_when_the_window_closes_on_another_page_comes_back(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_folder(monkeypatch, tmp_path / "home")
    first = opened(qtbot)
    try:
        first.window.chat_page.header.panel_buttons["Model settings"].click()
        first.window.show_page("Models")  # the panel steps aside off the chat
        assert not first.window.docks["Model settings"].isVisible()
    finally:
        first.close()

    second = opened(qtbot)
    try:
        assert second.window.stack.currentWidget() is second.window.chat_page
        assert open_panels(second) == {"Model settings"}
    finally:
        second.close()


def beside(desktop: DesktopApp) -> bool:
    """Whether the two panels stand side by side (rather than one above the other)."""
    first, second = desktop.window.docks.values()
    return first.geometry().top() == second.geometry().top() and (
        first.geometry().right() < second.geometry().left()
        or second.geometry().right() < first.geometry().left())


def settle() -> None:
    for _ in range(5):
        QApplication.processEvents()


def test_a_second_panel_goes_beside_the_first_where_there_is_room_else_under_it(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_folder(monkeypatch, tmp_path / "home")
    desktop = opened(qtbot)
    try:
        window = desktop.window
        buttons = window.chat_page.header.panel_buttons
        for size, side_by_side in (((1440, 820), True), ((1024, 700), False)):
            for name in PANELS:
                window.docks[name].hide()
            settle()  # the window's smallest size follows the panels shown
            window.resize(*size)
            settle()
            buttons["Adapters"].click()
            buttons["Model settings"].click()
            settle()
            assert open_panels(desktop) == set(PANELS), size
            assert (window.width(), window.height()) == size  # never made wider for them
            assert window.minimumSizeHint().width() <= size[0], size
            assert beside(desktop) is side_by_side, size

        # Beside in a wide window; on another page it is made narrow; back on the chat the
        # panels come back under each other rather than widen it again.
        for name in PANELS:
            window.docks[name].hide()
        settle()
        window.resize(1440, 820)
        settle()
        buttons["Adapters"].click()
        buttons["Model settings"].click()
        settle()
        assert beside(desktop)
        window.show_page("Settings")
        settle()
        window.resize(1024, 700)
        settle()
        assert window.width() == 1024
        window.show_page("Chat")
        settle()
        assert open_panels(desktop) == set(PANELS)
        assert window.width() == 1024 and not beside(desktop)

        # The docks' own menu holds the same actions as the header's buttons.
        menu = window.createPopupMenu()
        assert [a.text() for a in menu.actions()] == list(PANELS)
        assert all(a.isChecked() for a in menu.actions())
        menu.actions()[0].trigger()
        assert open_panels(desktop) == {"Adapters"}
        menu.deleteLater()
    finally:
        desktop.close()


# -- with adapters in use ------------------------------------------------------------------------
def cut_labels(root) -> list[str]:  # type: ignore[no-untyped-def]
    """The labels shown in *root* narrower than their one line of plain text (those that end
    in "…" on purpose keep the whole text in their tooltip)."""
    cut = []
    for label in root.findChildren(QLabel):
        text = label.text()
        if (not label.isVisible() or not text or label.wordWrap() or "<" in text
                or text.endswith("…")):
            continue
        needed = QFontMetrics(label.font()).horizontalAdvance(text)
        if label.contentsRect().width() < needed:
            cut.append(f"{text!r} ({label.contentsRect().width()} < {needed})")
    return cut


@pytest.mark.skipif(os.name != "posix", reason="uses the engine process")
def test_a_small_window_with_the_adapters_open_and_in_use_shows_everything_whole(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_folder(monkeypatch, tmp_path / "home")
    settings = Settings()  # one thread: the machine may be small and busy
    settings.models[MODEL] = ModelSettings(n_ctx=1024, n_threads=1)
    save_settings(settings)
    desktop = open_desktop(qtbot)
    try:
        window, page = desktop.window, desktop.window.chat_page
        page.header.panel_buttons["Adapters"].click()
        for seed, (name, scale) in enumerate((("pirate-voice", 0.8), ("sql-helper", 0.5)),
                                             start=1):
            with qtbot.waitSignal(desktop.adapters.applied, timeout=30_000):
                desktop.adapters_panel.add_path(str(make_lora(tmp_path / f"{name}.gguf", seed)))
            qtbot.waitUntil(lambda name=name: name in desktop.adapters_panel.rows,
                            timeout=10_000)
            with qtbot.waitSignal(desktop.adapters.applied, timeout=10_000):
                desktop.adapters_panel.rows[name].spin.setValue(scale)
        desktop.adapters.save_preset("both")
        qtbot.waitUntil(lambda: desktop.adapters.active_preset == "both", timeout=10_000)
        summary = "Adapters (both): pirate-voice 0.8 + sql-helper 0.5"
        qtbot.waitUntil(lambda: page.adapters_label.toolTip() == summary, timeout=10_000)
        page.composer.setPlainText("Tell me about the sea.")

        buttons = page.header.panel_buttons
        for size in ((1280, 820), (1024, 700)):
            for wanted in (("Adapters",), PANELS):  # opened as the user opens them
                for name in PANELS:
                    window.docks[name].hide()
                settle()
                window.resize(*size)
                settle()
                for name in wanted:
                    buttons[name].click()
                settle()
                where = (wanted, size)
                assert open_panels(desktop) == set(wanted), where
                # The open panels never force the window wider than the user made it.
                assert window.minimumSizeHint().width() <= size[0], where
                assert (window.width(), window.height()) == size, where
                assert page.adapters_label.isVisible(), where
                assert not cut_picker(page), (where, cut_picker(page))
                assert not cut_buttons(window), (where, cut_buttons(window))
                assert not cut_labels(page.header), (where, cut_labels(page.header))
                assert not cut_labels(page.composer_box), (where,
                                                          cut_labels(page.composer_box))
                # The header and the message box lie whole inside the chat page.
                for part in (page.header, page.composer_box):
                    right = part.mapTo(page, part.rect().topRight()).x()
                    assert part.isVisible() and right < page.width(), (where, part)
    finally:
        desktop.close()
