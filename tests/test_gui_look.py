"""The window's look: the navigation rail by keyboard, the theme switch, text that fits, icons.

The window is opened as it first appears (the engine is not needed for any of this).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QIcon, QImage
from PySide6.QtWidgets import (QApplication, QPushButton, QStyle, QStyleOptionButton,
                               QStyleOptionToolButton, QToolButton, QWidget)
from pytestqt.qtbot import QtBot

from desktop.core.library import installed_models
from desktop.ui.app import DesktopApp
from desktop.ui.style import DARK, LIGHT, current, icon, icon_pixmap
from desktop.ui.style.icons import APP_ICON, ICON_DIR, app_icon, icon_path
from desktop.ui.views.rail import MARGIN, PAGE_ICONS

REPO = Path(__file__).resolve().parent.parent
PAGES = ["Chat", "Models", "Adapters", "Train", "Compare", "Server", "Tools", "Documents",
         "Settings"]
SIZES = ((1280, 820), (1024, 700))


@pytest.fixture
def desktop(first_window: DesktopApp) -> DesktopApp:
    return first_window


def pixel(widget: QWidget, x: int, y: int) -> str:
    """The colour *widget* shows at (x, y), painted now."""
    return widget.grab().toImage().pixelColor(x, y).name()


def choose_theme(app: DesktopApp, theme: str) -> None:
    """As the user does it: the Settings page's theme box."""
    box = app.settings_page.theme
    box.setCurrentIndex(box.findData(theme))


def drawn_in(image: QImage, colour: str) -> bool:
    """Whether *image* has a drawing, all of it in *colour*: its mostly opaque pixels (not the
    soft edges), each channel within a few units (antialiasing rounds them)."""
    wanted = QColor(colour).getRgb()[:3]
    drawn = [image.pixelColor(x, y).getRgb()[:3] for x in range(image.width())
             for y in range(image.height()) if image.pixelColor(x, y).alpha() > 160]
    return bool(drawn) and all(max(abs(a - b) for a, b in zip(rgb, wanted)) <= 6
                               for rgb in drawn)


def tint(image: QImage) -> str:
    """Which theme's text colour *image* is drawn in."""
    for theme in (LIGHT, DARK):
        if drawn_in(image, theme.text):
            return theme.text
    return "neither"


# -- the rail ------------------------------------------------------------------------------------
def test_every_page_is_reached_by_keyboard_through_the_rail(qtbot: QtBot,
                                                             desktop: DesktopApp) -> None:
    window = desktop.window
    rail = window.nav
    assert rail.names() == PAGES
    assert all(name in PAGE_ICONS for name in PAGES) and "Train" in PAGE_ICONS
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)

    # Shift+Tab from the conversation list's first button goes to the rail, which then
    # shows its focus ring.
    window.sidebar.new_button.setFocus()
    assert not rail.shows_focus()
    qtbot.keyClick(window.sidebar.new_button, Qt.Key.Key_Backtab,
                   Qt.KeyboardModifier.ShiftModifier)
    assert QApplication.focusWidget() is rail
    assert rail.shows_focus()

    # The arrow keys go through every page, in order; the one shown is the one marked.
    qtbot.keyClick(rail, Qt.Key.Key_Home)
    for index, name in enumerate(PAGES):
        if index:
            qtbot.keyClick(rail, Qt.Key.Key_Down)
        assert rail.currentItem().text() == name
        assert window.stack.currentWidget() is window.pages[name]
        assert rail.currentItem().isSelected()
    qtbot.keyClick(rail, Qt.Key.Key_Home)
    assert window.stack.currentWidget() is window.chat_page

    # Tab leaves the rail for the page.
    qtbot.keyClick(rail, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is not rail

    # Ctrl+1 … Ctrl+9 from anywhere, and the shortcuts the window had.
    for index, name in enumerate(PAGES):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + index), Qt.KeyboardModifier.ControlModifier)
        assert window.stack.currentWidget() is window.pages[name], name
        assert f"Ctrl+{index + 1}" in rail.item(index).toolTip()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.chat_page
    assert QApplication.focusWidget() is window.sidebar.search

    # A click marks the page without the keyboard's ring.
    rect = rail.visualItemRect(rail.item(PAGES.index("Server")))
    qtbot.mouseClick(rail.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.stack.currentWidget() is window.pages["Server"]
    assert not rail.shows_focus()


# -- the theme -----------------------------------------------------------------------------------
def test_the_theme_switch_restyles_everything_at_once(qtbot: QtBot,
                                                      desktop: DesktopApp) -> None:
    window = desktop.window
    window.resize(1280, 820)
    QApplication.processEvents()
    composer = window.chat_page.composer_box  # the rounded box the message is typed in
    new_chat = window.sidebar.new_button
    search_icon = icon("search")

    def looks() -> dict[str, str]:
        """Colours of different kinds of widget, painted as they are now."""
        return {
            "window": QApplication.palette().color(QApplication.palette().ColorRole.Window).name(),
            "rail": pixel(window.nav, window.nav.width() // 2, window.nav.height() - 5),
            "sidebar": pixel(window.sidebar, 2, window.sidebar.height() - 5),
            "button": pixel(new_chat, 4, new_chat.height() // 2),
            "composer": pixel(composer, composer.width() // 2, 4),
            "status bar": pixel(window.statusBar(), 3, window.statusBar().height() // 2),
            "icon": tint(search_icon.pixmap(QSize(16, 16), 1.0).toImage()),
        }

    light = looks()
    assert light == {"window": LIGHT.window, "rail": LIGHT.surface, "sidebar": LIGHT.surface,
                     "button": LIGHT.raised, "composer": LIGHT.base,
                     "status bar": LIGHT.surface, "icon": LIGHT.text}
    choose_theme(desktop, "dark")  # no waiting: everything is restyled by the time it returns
    assert current() is DARK
    dark = looks()
    assert dark == {"window": DARK.window, "rail": DARK.surface, "sidebar": DARK.surface,
                    "button": DARK.raised, "composer": DARK.base,
                    "status bar": DARK.surface, "icon": DARK.text}
    assert all(light[part] != dark[part] for part in light), (light, dark)
    # The page in the rail is marked in the theme's accent.
    rail = window.nav
    marked = rail.visualItemRect(rail.item(0))
    image = rail.grab().toImage()
    assert image.pixelColor(QPoint(1, marked.center().y())).name() == DARK.accent
    choose_theme(desktop, "light")
    assert looks() == light


def test_the_keyboard_focus_shows_as_a_ring_in_the_accent(qtbot: QtBot,
                                                         desktop: DesktopApp) -> None:
    window = desktop.window
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    button = window.sidebar.new_button
    edge = (1, button.height() // 2)
    before = pixel(button, *edge)
    button.setFocus(Qt.FocusReason.TabFocusReason)
    assert pixel(button, *edge) == LIGHT.focus != before
    search = window.sidebar.search
    search.setFocus(Qt.FocusReason.TabFocusReason)
    assert pixel(search, 1, search.height() // 2) == LIGHT.focus


# -- text that fits ------------------------------------------------------------------------------
def needed_width(button: QPushButton | QToolButton) -> int:
    """How wide *button* must be to show its text whole: the text as its font measures it,
    its icon, and what the style puts around them."""
    metrics = QFontMetrics(button.font())
    text = button.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
    width = metrics.horizontalAdvance(text)
    style = button.style()
    if isinstance(button, QPushButton):
        option = QStyleOptionButton()
        button.initStyleOption(option)
        if not button.icon().isNull():
            width += button.iconSize().width() + 4
        element = QStyle.ContentsType.CT_PushButton
    else:
        option = QStyleOptionToolButton()
        button.initStyleOption(option)
        if (not button.icon().isNull()
                and button.toolButtonStyle() != Qt.ToolButtonStyle.ToolButtonTextOnly):
            width += button.iconSize().width() + 4
        element = QStyle.ContentsType.CT_ToolButton
    return style.sizeFromContents(element, option, QSize(width, metrics.height()), button).width()


def cut_buttons(root: QWidget) -> list[str]:
    """The buttons shown in *root* that are narrower than their text needs."""
    cut = []
    for kind in (QPushButton, QToolButton):
        for button in root.findChildren(kind):
            if not button.isVisible() or not button.text():
                continue
            if isinstance(button, QToolButton) and (
                    button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonIconOnly):
                continue
            if button.width() < needed_width(button):
                cut.append(f"{button.text()!r} ({button.width()} < {needed_width(button)})")
    return cut


def cut_picker(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The model picker's lines (the name, the load state) that its text field cuts short."""
    picker = page.model_picker
    field = picker.field_rect()
    lines = ((picker.currentText(), picker.name_font()), (picker.state, picker.state_font()))
    return [f"{text!r} ({QFontMetrics(font).horizontalAdvance(text)} > {field.width()})"
            for text, font in lines
            if QFontMetrics(font).horizontalAdvance(text) > field.width()]


def cut_rail_labels(window) -> list[str]:  # type: ignore[no-untyped-def]
    rail = window.nav
    metrics = QFontMetrics(rail.caption_font())
    cut = []
    for row in range(rail.count()):
        item = rail.item(row)
        rect = rail.visualItemRect(item)
        room = rect.width() - 2 * MARGIN
        if room < metrics.horizontalAdvance(item.text()) or rect.right() >= rail.viewport().width():
            cut.append(item.text())
    return cut


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_no_text_is_cut_off_on_the_rail_or_on_buttons(qtbot: QtBot, desktop: DesktopApp,
                                                      size: tuple[int, int]) -> None:
    window = desktop.window
    width, height = size
    # The adapters beside the chat (closed at first), where there is room for them.
    desktop.adapters_dock.setVisible(width >= 1280)
    # The picker with the starter model, loaded in a good deal of memory.
    chat = window.chat_page
    choices = [(m.id, m.name) for m in installed_models() if m.loadable and m.kind == "chat"]
    chat.set_models(choices, choices[0][0])
    chat.set_engine_state("ready")
    chat.set_engine_status({"model": {"id": choices[0][0]}, "memory_bytes": 12 * 1024**3})
    assert chat.model_picker.currentText() == choices[0][1]
    assert chat.model_picker.state == "Loaded · 12.00 GB in memory"
    for page in PAGES:
        window.show_page(page)
        QApplication.processEvents()  # the window's smallest size follows the page shown
        window.resize(width, height)
        QApplication.processEvents()
        assert (window.width(), window.height()) == size, page
        assert not cut_rail_labels(window), page
        assert not cut_buttons(window), (page, cut_buttons(window))
        if page == "Chat":
            assert not cut_picker(chat), cut_picker(chat)
        if desktop.adapters_dock.isVisible():
            assert not cut_buttons(desktop.adapters_dock), (page, "dock")


def test_the_rail_fits_its_labels_in_a_larger_font(qtbot: QtBot, desktop: DesktopApp) -> None:
    window = desktop.window
    narrow = window.nav.width()
    desktop.settings_page.font_size.setValue(18)
    qtbot.waitUntil(lambda: window.nav.width() > narrow)
    QApplication.processEvents()
    assert not cut_rail_labels(window)


# -- icons ---------------------------------------------------------------------------------------
def test_icons_render_crisp_at_device_pixel_ratio_1_and_2(qapp) -> None:  # type: ignore[no-untyped-def]
    names = sorted(path.stem for path in ICON_DIR.glob("*.svg"))
    assert set(PAGE_ICONS.values()) <= set(names)
    for name in names:
        one = icon_pixmap(name, 20, LIGHT.accent, 1.0)
        two = icon_pixmap(name, 20, LIGHT.accent, 2.0)
        assert (one.width(), one.height(), one.devicePixelRatio()) == (20, 20, 1.0)
        assert (two.width(), two.height(), two.devicePixelRatio()) == (40, 40, 2.0)
        assert two.deviceIndependentSize().toSize() == QSize(20, 20)
        for pixmap in (one, two):
            assert drawn_in(pixmap.toImage(), LIGHT.accent), name  # drawn, and in the tint
        # Drawn at 40 pixels, not the 20-pixel one scaled up: its 2x2 blocks differ within.
        image = two.toImage()
        uneven = sum(1 for x in range(0, 40, 2) for y in range(0, 40, 2)
                     if len({image.pixel(x + dx, y + dy) for dx in (0, 1) for dy in (0, 1)}) > 1)
        assert uneven > 10, name
    # As a QIcon: the size asked for at each ratio, disabled in the faint colour.
    for ratio in (1.0, 2.0):
        pixmap = icon("settings").pixmap(QSize(16, 16), ratio)
        assert pixmap.width() == round(16 * ratio) and pixmap.devicePixelRatio() == ratio
        disabled = icon("settings").pixmap(QSize(16, 16), ratio, QIcon.Mode.Disabled)
        assert drawn_in(disabled.toImage(), current().text_faint)
    with pytest.raises(FileNotFoundError, match="No icon called 'no-such-icon'"):
        icon_path("no-such-icon")
    assert not app_icon().isNull() and APP_ICON.is_file()
    drawn = app_icon().pixmap(QSize(32, 32), 2.0).toImage()
    assert drawn.width() == 64 and drawn.pixelColor(32, 32).alpha() == 255


def test_the_icon_set_is_bundled_with_its_license() -> None:
    license_text = (ICON_DIR / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("ISC License") and "Lucide Contributors" in license_text
    spec = importlib.util.spec_from_file_location("packaging_bundle_look",
                                                  REPO / "packaging" / "bundle.py")
    assert spec is not None and spec.loader is not None
    bundle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundle)
    pairs = bundle.data_files()
    for path in [ICON_DIR / "LICENSE", *ICON_DIR.glob("*.svg")]:
        assert (str(path), "resources/icons/lucide") in pairs, path
    assert "PySide6.QtSvg" not in bundle.EXCLUDES


def test_the_window_has_the_apps_own_icon(desktop: DesktopApp) -> None:
    assert not desktop.window.windowIcon().isNull()
    assert QApplication.windowIcon().cacheKey() == desktop.window.windowIcon().cacheKey()
    launcher = (REPO / "packaging" / "linux" / "nomoat.desktop").read_text(encoding="utf-8")
    assert "Icon=nomoat\n" in launcher
