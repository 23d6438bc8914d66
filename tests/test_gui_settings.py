"""The Settings page: changes apply at once, survive a restart of the app, and are checked."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from hubserver import HubServer
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetricsF, QPalette
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QPushButton
from test_gui import send
from test_gui_models import TOKEN, catalog_url, open_app, publish

from desktop.core.chats import DATABASE_NAME, ChatStore
from desktop.core.library import STARTER_ID
from desktop.core.settings import load_settings, settings_path
from desktop.ui.style import DARK

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the engine tests use POSIX signals")

DARK_WINDOW = DARK.window  # the dark theme's window colour


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def window_color() -> str:
    return QApplication.instance().palette().color(QPalette.ColorRole.Window).name()


def edit(field: Any, text: str) -> None:
    """Type into a line edit and leave it, as a user does."""
    field.setText(text)
    field.editingFinished.emit()


def test_settings_apply_at_once_and_come_back_after_a_restart(qtbot, home) -> None:
    app = QApplication.instance()
    first = open_app(qtbot)
    try:
        page = first.settings_page
        assert page.theme.currentData() == "system" and page.font_size.value() == 11
        page.theme.setCurrentIndex(page.theme.findData("dark"))
        assert window_color() == DARK_WINDOW
        # The chat's scroll bar is opaque again after the new style (it repaints every line).
        bar = first.window.chat_page.scroll.verticalScrollBar()
        qtbot.waitUntil(lambda: bar.testAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent))
        page.font_size.setValue(15)
        assert app.font().pointSize() == 15
        page.concurrency.setValue(5)
        assert first.downloads.manager.max_concurrent == 5

        edit(page.hub_endpoint, "ftp://mirror.example")
        assert not page.errors["hub_endpoint"].isHidden()
        assert "https://" in page.errors["hub_endpoint"].text()
        assert first.models_page.hub_endpoint is None  # a bad value is not used
        edit(page.hub_endpoint, "http://127.0.0.1:9")
        assert page.errors["hub_endpoint"].isHidden()
        edit(page.hub_token, "hf_secret_value")
        assert first.models_page.hub_endpoint == "http://127.0.0.1:9"
        assert first.downloads.manager.options.endpoint == "http://127.0.0.1:9"
        assert first.downloads.manager.options.token == "hf_secret_value"
        assert page.hub_token.echoMode() == page.hub_token.EchoMode.Password

        edit(page.models_dir, "relative/folder")
        assert "whole path" in page.errors["models_dir"].text()
        qtbot.waitUntil(lambda: page.default_model.findData(STARTER_ID) >= 0)
        page.default_model.setCurrentIndex(page.default_model.findData(STARTER_ID))
        page.default_model.activated.emit(page.default_model.currentIndex())
        with qtbot.waitSignal(page.saved, timeout=5_000):
            pass  # saved in the worker a moment after the last change
    finally:
        first.close()

    saved = load_settings()
    assert (saved.theme, saved.font_size, saved.download_concurrency) == ("dark", 15, 5)
    assert saved.hub_endpoint == "http://127.0.0.1:9" and saved.models_dir is None
    assert saved.default_model == STARTER_ID
    assert "geometry" not in json.loads(settings_path().read_text())  # window state is apart
    assert (home / "settings" / "window.ini").is_file()

    second = open_app(qtbot)
    try:
        page = second.settings_page
        assert page.theme.currentData() == "dark" and window_color() == DARK_WINDOW
        assert page.font_size.value() == 15 and app.font().pointSize() == 15
        assert page.concurrency.value() == 5 and second.downloads.manager.max_concurrent == 5
        assert page.hub_endpoint.text() == "http://127.0.0.1:9"
        assert page.hub_token.text() == "hf_secret_value"
        assert second.models_page.hub_endpoint == "http://127.0.0.1:9"
        qtbot.waitUntil(lambda: page.default_model.currentData() == STARTER_ID)
        assert second.chat.model == STARTER_ID
        notes = [label.text() for label in page.findChildren(QLabel)]
        assert any("after a restart" in note for note in notes)
        assert page.data_folder.text() == str(home)
    finally:
        second.close()


def test_refresh_catalog_fetches_it_and_says_what_happened(qtbot, home, starter) -> None:
    with HubServer(token=TOKEN) as hub:
        publish(hub, starter)
        app = open_app(qtbot)
        try:
            page = app.settings_page
            catalog = app.models_page.catalog_tab
            qtbot.waitUntil(lambda: catalog.model.rowCount() >= 15, timeout=10_000)
            assert catalog.card("tiny-chat") is None

            edit(page.catalog_url, "catalog.json")
            assert "https://" in page.errors["catalog_url"].text()
            page.refresh_catalog.click()
            assert page.catalog_notice.text() == ""  # nothing fetched from a bad address

            edit(page.catalog_url, f"http://127.0.0.1:{free_port()}/catalog.json")
            assert page.errors["catalog_url"].isHidden()
            qtbot.waitUntil(lambda: "could not be fetched" in page.catalog_notice.text(),
                            timeout=10_000)
            page.catalog_notice.clear()
            page.refresh_catalog.click()
            qtbot.waitUntil(lambda: "could not be fetched" in page.catalog_notice.text(),
                            timeout=10_000)
            assert "comes with NoMoat" in page.catalog_notice.text()
            assert "could not be fetched" in catalog.notice.text()

            edit(page.catalog_url, catalog_url(hub))  # a new address is fetched at once
            qtbot.waitUntil(lambda: catalog.card("tiny-chat") is not None, timeout=10_000)
            assert page.catalog_notice.text() == f"3 models from {catalog_url(hub)}."
            assert catalog.model.rowCount() == 3 and catalog.notice.isHidden()
            qtbot.waitUntil(lambda: load_settings().catalog_url == catalog_url(hub),
                            timeout=5_000)
        finally:
            app.close()


def test_the_data_folder_moves_at_the_next_start_with_every_conversation(
        qtbot, home, tmp_path, starter, monkeypatch) -> None:
    monkeypatch.setenv("NOMOAT_DATA", "unset")  # what the app sets is undone after the test
    monkeypatch.delenv("NOMOAT_DATA")
    (home / "models").mkdir(parents=True)
    try:
        os.link(starter, home / "models" / "far-bread.gguf")
    except OSError:  # another file system
        shutil.copyfile(starter, home / "models" / "far-bread.gguf")
    disk = tmp_path / "disk"
    (disk / "photos").mkdir(parents=True)  # a folder with other files: NoMoat goes inside
    target = disk / "NoMoat"

    first = open_app(qtbot)
    try:
        first.chat.sampling = {"max_tokens": 8, "temperature": 0.0}
        before, _ = send(qtbot, first, "Before the move")
        page = first.settings_page
        assert page.data_folder.text() == str(home) and page.data_move.isHidden()
        page.move_data_folder("elsewhere")
        assert "whole path" in page.errors["data_dir"].text()
        page.move_data_folder(str(home))
        assert "already keeps its data" in page.errors["data_dir"].text()
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_: str(disk))
        move = next(b for b in page.findChildren(QPushButton)
                    if b.accessibleName() == "Move the data folder")
        move.click()
        assert page.errors["data_dir"].isHidden() and not page.data_move.isHidden()
        assert f"copy your conversations and adapters to {target}" in page.data_move.text()
        assert f"they stay in {home / 'models'}" in page.data_move.text()
        page.cancel_move.click()
        assert page.data_move.isHidden()
        move.click()
        # Until NoMoat starts again, everything goes on in the old folder, and moves with it.
        first.chat.new_conversation()
        after, _ = send(qtbot, first, "After choosing")
        qtbot.waitUntil(lambda: load_settings().data_dir == str(target), timeout=5_000)
    finally:
        first.close()
    assert not target.exists()

    second = open_app(qtbot)
    try:
        banner = second.window.banner
        assert not banner.isHidden()
        assert f"now keeps your conversations and adapters in {target}" in banner.text.text()
        assert second.settings_page.data_folder.text() == str(target)
        assert second.settings_page.data_move.isHidden()
        assert second.settings_page.models_dir.text() == str(home / "models")
        qtbot.waitUntil(lambda: any(m.id == "far-bread" for m in second.models), timeout=10_000)
        assert [m.content for m in second.store.messages(before.conversation_id)] == [
            "Before the move", before.content]
        assert [m.content for m in second.store.messages(after.conversation_id)] == [
            "After choosing", after.content]
        second.chat.sampling = {"max_tokens": 8, "temperature": 0.0}
        second.chat.new_conversation()
        send(qtbot, second, "In the new folder")
    finally:
        second.close()
    with ChatStore(target / "chats" / DATABASE_NAME) as moved:
        assert len(moved.list_conversations()) == 3
    with ChatStore(home / "chats" / DATABASE_NAME) as old:  # left as it was
        assert len(old.list_conversations()) == 2


def show_code_reply(qtbot: Any, app: Any) -> None:
    """Open a saved conversation whose reply has words, a code block, and words again."""
    with ChatStore() as store:
        chat = store.create_conversation()
        store.add_message(chat.id, "user", "Some code?")
        store.add_message(chat.id, "assistant",
                          "Here:\n\n```python\ndef knead(dough):\n    pass\n```\n\nDone.")
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=5_000):
        app.chat.open_conversation(chat.id)


def keyword_colour(app: Any) -> str:
    """The colour of `def` in the chat's first code block."""
    [code] = app.window.chat_page.messages[-1].body.code_blocks()
    formats = code.editor.document().firstBlock().layout().formats()
    return next(f.format.foreground().color().name() for f in formats if f.start == 0)


def test_the_system_theme_follows_the_system_while_the_app_runs(qtbot, home) -> None:
    app = open_app(qtbot)
    try:
        show_code_reply(qtbot, app)
        light = keyword_colour(app)
        hints = QApplication.instance().styleHints()
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # the system turns dark
        assert window_color() == DARK_WINDOW
        assert keyword_colour(app) != light  # the code shown is coloured for dark too
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
        assert window_color() != DARK_WINDOW and keyword_colour(app) == light

        page = app.settings_page
        page.theme.setCurrentIndex(page.theme.findData("light"))  # chosen: the system is ignored
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
        assert window_color() != DARK_WINDOW and keyword_colour(app) == light
    finally:
        app.close()


def test_a_new_font_size_reaches_every_message_at_once(qtbot, home) -> None:
    app = open_app(qtbot)
    try:
        show_code_reply(qtbot, app)
        reply = app.window.chat_page.messages[-1]
        [code] = reply.body.code_blocks()
        words = reply.body.paragraphs()[0]
        assert words.font().pointSize() == 11 and code.editor.font().pointSize() == 11

        app.settings_page.font_size.setValue(20)
        qtbot.waitUntil(lambda: words.font().pointSize() == 20)
        assert reply.who.font().pointSize() == 20 and reply.who.font().bold()
        assert code.editor.font().pointSize() == 20  # fixed width, at the size chosen
        # What the reader sees: narrow and wide letters take the same room in the code.
        metrics = QFontMetricsF(code.editor.font())
        assert metrics.horizontalAdvance("iiii") == pytest.approx(
            metrics.horizontalAdvance("MMMM"), abs=0.5)
        assert metrics.horizontalAdvance("MMMM") > 0
        # Both lines of code still show, and every page's name fits the list of pages.
        qtbot.waitUntil(lambda: code.editor.height()
                        >= 2 * code.editor.fontMetrics().lineSpacing() + 16)
        nav = app.window.nav
        assert nav.width() > nav.fontMetrics().horizontalAdvance("Settings")
        qtbot.waitUntil(lambda: words.height() >= words.fontMetrics().height())
    finally:
        app.close()


def text_colour(label: QLabel) -> str:
    return label.palette().color(QPalette.ColorRole.WindowText).name()


def test_warnings_errors_and_disabled_controls_read_well_in_both_themes(qtbot, home) -> None:
    app = open_app(qtbot)
    try:
        page = app.settings_page
        edit(page.hub_endpoint, "ftp://mirror.example")
        error = page.errors["hub_endpoint"]
        notice = app.adapters_page.notice
        normal = text_colour(notice)
        app.adapters_page.show_message("That adapter was made for another model.", problem=True)
        colours = {}
        for theme in ("light", "dark"):
            page.theme.setCurrentIndex(page.theme.findData(theme))
            palette = QApplication.instance().palette()
            disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText)
            enabled = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText)
            assert disabled != enabled  # a disabled button does not look like one to press
            colours[theme] = (text_colour(error), text_colour(notice))
        assert colours == {"light": ("#b91c1c", "#b45309"), "dark": ("#f87171", "#fbbf24")}
        app.adapters_page.show_message("All is well.")
        assert text_colour(notice) not in ("#b45309", "#fbbf24") and normal != "#b45309"
    finally:
        app.close()
