"""The chat page's look: a readable column, bubbles, actions on hover and focus, the model
picker, the message box with its token count and its Send/Stop button, the welcome.

The first tests open the window alone (saved conversations are shown without the engine); the
last ones start the engine with the starter model, as the app does.
"""

from __future__ import annotations

import os

import pytest
from conftest import open_desktop
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QFontMetrics, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QToolButton, QWidget
from pytestqt.qtbot import QtBot
from test_gui_look import cut_picker

from desktop.core.chats import ChatStore
from desktop.core.library import installed_models
from desktop.ui.app import DesktopApp
from desktop.ui.style.tokens import READABLE_WIDTH
from desktop.ui.views.composer import CHARS_PER_TOKEN
from desktop.ui.views.welcome import EXAMPLES

GiB = 1024**3
LONG_ADAPTERS = "Adapters (both): pirate-voice-strong 0.8 + sql-helper-large 0.5 + tone 1"


@pytest.fixture
def desktop(first_window: DesktopApp) -> DesktopApp:
    return first_window


def settle() -> None:
    for _ in range(5):
        QApplication.processEvents()


def open_saved_chat(qtbot: QtBot, app: DesktopApp) -> None:
    """A saved conversation: a short question, a reply with code, a long question."""
    with ChatStore() as store:
        chat = store.create_conversation()
        store.add_message(chat.id, "user", "Some code?")
        store.add_message(chat.id, "assistant", "Here:\n\n```python\ndef knead(dough):\n"
                          "    return dough\n```\n\nDone. " + "It kneads the dough. " * 12,
                          model_id="smollm2-135m-instruct")
        store.add_message(chat.id, "user", "And now explain, in a few sentences, why bread "
                          "needs to rest before it is baked, so that I understand it.")
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=5_000):
        app.chat.open_conversation(chat.id)
    settle()


def painted(widget: QWidget) -> QImage:
    """What *widget* shows now, its parent's background included."""
    parent = widget.parentWidget()
    assert parent is not None
    return parent.grab(widget.geometry()).toImage()


# -- the column ----------------------------------------------------------------------------------
def test_the_conversation_is_a_readable_column_in_the_middle(qtbot: QtBot,
                                                             desktop: DesktopApp) -> None:
    window, page = desktop.window, desktop.window.chat_page
    window.resize(1280, 820)
    open_saved_chat(qtbot, desktop)
    viewport = page.scroll.viewport()
    assert page.column_width() <= READABLE_WIDTH
    assert page.column_width() >= READABLE_WIDTH - 8  # as wide as it may be, at 1280
    for widget in page.messages:
        left = widget.mapTo(viewport, QPoint(0, 0)).x()
        right = viewport.width() - (left + widget.width())
        assert abs(left - right) <= 1, (left, right)  # in the middle
        assert widget.width() == page.column_width()
    # The user's messages are bubbles on the right, as wide as their text needs; the model's
    # text takes the column.
    question, reply, long_question = page.messages
    assert question.bubble is not None and reply.bubble is None
    bubble = question.bubble
    assert bubble.geometry().right() == question.width() - 1
    assert bubble.width() < question.width() // 2
    assert long_question.bubble is not None
    assert long_question.bubble.width() <= 0.85 * long_question.width() + 1
    words = question.body.paragraphs()[0]
    assert words.height() <= words.fontMetrics().lineSpacing() + 2  # one line: not squeezed
    assert reply.body.width() == reply.width()
    assert page.scroll.horizontalScrollBar().maximum() == 0
    # A smaller window: the column takes what there is.
    window.resize(1024, 700)
    settle()
    assert page.column_width() < READABLE_WIDTH
    assert all(w.width() == page.column_width() for w in page.messages)
    assert page.scroll.horizontalScrollBar().maximum() == 0


# -- the actions under a message ------------------------------------------------------------------
def test_a_messages_actions_show_on_hover_and_on_keyboard_focus(qtbot: QtBot,
                                                                desktop: DesktopApp) -> None:
    window, page = desktop.window, desktop.window.chat_page
    window.resize(1280, 820)
    open_saved_chat(qtbot, desktop)
    question, reply, _ = page.messages
    for widget, names in ((question, ["Copy message", "Edit message"]),
                          (reply, ["Copy message", "Regenerate reply"])):
        buttons = widget.actions.buttons
        assert [b.accessibleName() for b in buttons] == names
        assert all(b.toolTip() and not b.icon().isNull() and not b.text() for b in buttons)
        assert all(b.focusPolicy() & Qt.FocusPolicy.TabFocus for b in buttons)
    copy = reply.copy_button
    page.scroll.ensureWidgetVisible(copy)
    settle()
    hidden = painted(copy)
    assert not reply.actions.shown
    assert len({hidden.pixel(x, y) for x in range(hidden.width())
                for y in range(hidden.height())}) == 1  # nothing drawn: only the background

    # The pointer over the message shows its buttons, and only its.
    qtbot.mouseMove(reply.body, QPoint(10, 5))
    qtbot.waitUntil(lambda: reply.actions.shown)
    assert not question.actions.shown
    shown = painted(copy)
    assert shown != hidden
    qtbot.mouseMove(window.sidebar, QPoint(5, 5))
    qtbot.waitUntil(lambda: not reply.actions.shown)
    assert painted(copy) == hidden

    # The keyboard on one of them shows them too, through the row, and not once it leaves.
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    copy.setFocus(Qt.FocusReason.TabFocusReason)
    assert reply.actions.shown and painted(copy) != hidden
    qtbot.keyClick(copy, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is reply.action_button and reply.actions.shown
    qtbot.keyClick(reply.action_button, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() not in reply.actions.buttons
    assert not reply.actions.shown

    # Copy copies the message, and says so for a moment.
    copy.click()
    assert QGuiApplication.clipboard().text() == reply.text
    assert copy.toolTip() == "Copied"
    qtbot.waitUntil(lambda: copy.toolTip() == "Copy", timeout=5_000)
    # Edit opens the user's text in place of the bubble.
    question.action_button.click()
    assert question.editor is not None and question.editor.toPlainText() == "Some code?"
    assert question.bubble is not None and question.bubble.isHidden()
    question.end_edit()
    assert question.bubble.isVisible()


# -- the header ----------------------------------------------------------------------------------
def starter_choices() -> list[tuple[str, str]]:
    return [(m.id, m.name) for m in installed_models() if m.loadable and m.kind == "chat"]


def chip_problems(page) -> list[str]:  # type: ignore[no-untyped-def]
    """What is wrong with the adapters' chip: its text cut without "…", or room it holds that
    its short forms ("Adapters (both)", "Adapters", the icon) leave empty beside the title."""
    chip = page.adapters_label
    shown, room = chip.text(), chip.contentsRect().width()
    needed = QFontMetrics(chip.font()).horizontalAdvance(shown)
    problems = []
    if shown and needed > room:
        problems.append(f"{shown!r} cut ({needed} > {room})")
    if not shown and chip.width() > chip.minimumWidth():
        problems.append(f"the icon alone in {chip.width()} pixels")
    if shown and chip.short_text.startswith(shown.removesuffix("…")) and room > needed + 2:
        problems.append(f"{shown!r} in {room} pixels")
    return problems


def test_the_header_fits_a_small_window_whatever_is_in_it(qtbot: QtBot,
                                                          desktop: DesktopApp) -> None:
    window, page = desktop.window, desktop.window.chat_page
    choices = starter_choices()
    model = choices[0][0]
    page.set_models(choices, model)
    page.set_engine_state("ready")
    page.set_engine_status({"model": {"id": model}, "memory_bytes": int(12.5 * GiB)})
    assert page.model_picker.state == "Loaded · 12.50 GB in memory"
    # Everything the header can show at once: adapters in use, a model that thinks, a title.
    page.set_adapters_text(LONG_ADAPTERS)
    page.set_model_thinks(True)
    page.title.setText("A very long question about the history of bread " * 3)
    header_buttons = [page.system_button, page.export_button,
                      *page.header.panel_buttons.values()]
    assert all(b.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonIconOnly
               and b.toolTip() and b.accessibleName() for b in header_buttons)
    for open_panels in ([], ["Adapters"], ["Model settings"]):
        for name, dock in window.docks.items():
            dock.setVisible(name in open_panels)
        for size in ((1280, 820), (1024, 700)):
            settle()
            window.resize(*size)
            settle()
            assert (window.width(), window.height()) == size, (open_panels, size)
            assert window.minimumSizeHint().width() <= size[0], (open_panels, size)
            assert not cut_picker(page), (open_panels, size)
            assert page.adapters_label.toolTip() == LONG_ADAPTERS
            assert not chip_problems(page), (open_panels, size, chip_problems(page))
    # Where the message box is narrow its buttons show their icons alone, never cut text.
    tools = page.tools_button
    assert all(isinstance(b, QToolButton) for b in (tools, page.docs_button))
    assert tools.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonIconOnly or \
        tools.width() >= tools.sizeHint().width()


# -- with the engine ----------------------------------------------------------------------------
needs_engine = pytest.mark.skipif(os.name != "posix", reason="uses the engine process")


@pytest.fixture
def app(qtbot, data_home):  # type: ignore[no-untyped-def]
    desktop = open_desktop(qtbot)
    desktop.chat.sampling = {"max_tokens": 16, "temperature": 0.0}
    yield desktop
    desktop.close()


@needs_engine
def test_the_picker_and_the_token_count_follow_the_engine(qtbot, app) -> None:
    page = app.window.chat_page
    picker = page.model_picker
    status = app.engine.status
    assert picker.currentData() == app.chat.model == status["model"]["id"]
    assert picker.state == f"Loaded · {status['memory_bytes'] / GiB:.2f} GB in memory"
    assert picker.accessibleDescription() == picker.state
    assert not cut_picker(page)
    context = app.engine.context_for(app.chat.model)
    assert context and page.composer_box.token_count.text() == f"0 / {context:,} tokens"

    # Typing changes the count, a moment after the keys (not for each of them).
    label = page.composer_box.token_count
    text = "Tell me about the rivers of Europe, please."
    qtbot.keyClicks(page.composer, text)
    qtbot.waitUntil(lambda: label.text() != f"0 / {context:,} tokens", timeout=2_000)
    typed = int(label.text().split(" / ")[0].replace(",", ""))
    assert len(text) / CHARS_PER_TOKEN <= typed <= len(text) / CHARS_PER_TOKEN + 8
    assert label.text().endswith(f" / {context:,} tokens")

    # After a reply, the count is the engine's own for the conversation.
    with qtbot.waitSignal(app.chat.replyFinished, timeout=60_000) as finished:
        qtbot.keyClick(page.composer, Qt.Key.Key_Return)
    reply = finished.args[0]
    qtbot.waitUntil(lambda: label.text() == (f"{reply.prompt_tokens + reply.completion_tokens:,}"
                                             f" / {context:,} tokens"), timeout=2_000)
    # Past the context, the count says so.
    page.composer_box.set_context(8)
    assert label.property("problem") is True and "left out" in label.toolTip()


@needs_engine
def test_send_turns_into_stop_and_back(qtbot, app) -> None:
    page = app.window.chat_page
    button = page.send_button
    assert button.accessibleName() == "Send message" and not button.isEnabled()  # no text
    qtbot.keyClicks(page.composer, "Write a very long essay about the history of bread.")
    assert button.isEnabled()
    app.chat.sampling = {"max_tokens": 2000, "temperature": 0.7}
    with qtbot.waitSignal(app.chat.replyText, timeout=60_000):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert page.composer.toPlainText() == ""
    assert button.accessibleName() == "Stop reply" and button.isEnabled()
    assert "Stop" in button.toolTip()
    # The reply's buttons have their place from the start (nothing moves when it ends); one
    # reply at a time, so it cannot be written again yet.
    assert page.reply is not None and page.reply.actions.isVisible()
    assert not page.reply.action_button.isEnabled()
    with qtbot.waitSignal(app.chat.replyFinished, timeout=30_000) as finished:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert finished.args[0].state == "stopped"
    assert button.accessibleName() == "Send message" and not button.isEnabled()
    assert page.messages[-1].action_button.isEnabled()


@needs_engine
def test_a_welcome_prompt_is_sent_with_a_click(qtbot, app) -> None:
    page = app.window.chat_page
    assert page.empty.isVisible() and not page.messages
    assert [b.text() for b in page.empty.prompts] == [prompt for _, prompt in EXAMPLES]
    assert all(b.accessibleName().startswith("Send: ") for b in page.empty.prompts)
    prompt = EXAMPLES[1][1]
    with qtbot.waitSignal(app.chat.replyFinished, timeout=60_000) as finished:
        qtbot.mouseClick(page.empty.prompts[1], Qt.MouseButton.LeftButton)
    assert page.state()["messages"][0] == ("user", prompt)
    assert finished.args[0].content and not page.empty.isVisible()
    assert page.composer.toPlainText() == ""
    app.chat.new_conversation()
    assert page.empty.isVisible()
