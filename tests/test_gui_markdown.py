"""Markdown in chat messages: what it is cut into, how it looks, and what streaming costs."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import QPoint, QPointF, QUrl
from PySide6.QtGui import QDesktopServices, QFont, QGuiApplication, QTextTable
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QScrollArea, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from desktop.ui.views.markdown import (
    REPARSE_MS,
    CodeBlock,
    MarkdownText,
    MarkdownView,
    split_markdown,
)

REPLY = """# Bread

Bread is **old**. People baked it [long ago](https://en.wikipedia.org/wiki/Bread).

1. Flour

2. Water

| Grain | Use |
|-------|-----|
| Wheat | Loaves |

```python
def knead(dough):
    return dough * 2
```

The end."""


@pytest.fixture
def view(qtbot: QtBot) -> MarkdownView:
    widget = MarkdownView()
    qtbot.addWidget(widget)
    widget.resize(500, 400)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def test_split_keeps_loose_lists_and_tables_whole_and_code_apart() -> None:
    segments = split_markdown(REPLY)
    assert [kind for kind, _, _ in segments] == ["text", "text", "text", "text", "code", "text"]
    assert segments[0][2] == "# Bread"
    assert segments[2][2] == "1. Flour\n\n2. Water"  # a loose list stays one block
    assert segments[3][2].startswith("| Grain")
    assert segments[4][1:] == ("python", "def knead(dough):\n    return dough * 2")
    # A fence still open (a reply streaming) is code up to the end.
    assert split_markdown("Look:\n```sh\nls -l")[-1] == ("code", "sh", "ls -l")


def test_renders_headings_tables_links_and_highlighted_code(view: MarkdownView,
                                                            qtbot: QtBot) -> None:
    view.set_markdown(REPLY)
    settle()
    heading, words, items, table, end = view.paragraphs()
    assert heading.document().firstBlock().blockFormat().headingLevel() == 1
    assert "https://en.wikipedia.org/wiki/Bread" in words.toHtml()
    assert items.document().firstBlock().textList() is not None
    frames = table.document().rootFrame().childFrames()
    assert any(isinstance(frame, QTextTable) for frame in frames)
    assert end.toPlainText() == "The end."
    [code] = view.code_blocks()
    assert code.editor.toPlainText() == "def knead(dough):\n    return dough * 2"
    formats = code.editor.document().firstBlock().layout().formats()
    assert formats, "the keyword and the name were not coloured"
    code.copy_button.click()
    assert QGuiApplication.clipboard().text() == code.code


def test_each_paragraph_is_exactly_as_tall_as_its_text(view: MarkdownView,
                                                       qtbot: QtBot) -> None:
    view.set_markdown("One line.")
    settle()
    [paragraph] = view.paragraphs()
    line = paragraph.fontMetrics().lineSpacing()
    assert line <= paragraph.height() <= 1.5 * line  # no empty space under a short paragraph
    view.set_markdown(("Bread is good to eat. " * 40).strip())
    settle()
    assert view.paragraphs() == [paragraph]
    wide = paragraph.height()
    assert wide == math.ceil(paragraph.document().size().height()) and wide > 0
    assert paragraph.document().textWidth() == paragraph.viewport().width()
    view.resize(250, 400)  # narrower: more lines, a taller paragraph, nothing cut off
    qtbot.waitUntil(lambda: paragraph.height() > wide)
    assert paragraph.height() == math.ceil(paragraph.document().size().height())


def test_streaming_relays_out_only_the_growing_paragraph(view: MarkdownView,
                                                        qtbot: QtBot) -> None:
    pieces = [REPLY[i:i + 7] for i in range(0, len(REPLY), 7)]
    text = ""
    seen: dict[int, tuple[MarkdownText, int]] = {}
    for piece in pieces:
        text += piece
        view.stream(text)
        settle()
        paragraphs = view.paragraphs()
        for index, paragraph in enumerate(paragraphs[:-1]):
            # A paragraph that is done keeps its widget and is never parsed or laid out again.
            if index in seen and seen[index][0] is paragraph and index < len(paragraphs) - 2:
                assert paragraph.document().revision() == seen[index][1], index
            seen[index] = (paragraph, paragraph.document().revision())
    view.set_markdown(REPLY)  # the finished reply, as the chat shows it at the end
    fresh = MarkdownView()
    fresh.set_markdown(REPLY)
    assert [p.toHtml() for p in view.paragraphs()] == [p.toHtml() for p in fresh.paragraphs()]
    fresh.deleteLater()


def test_plain_words_are_appended_and_parsed_soon_after(view: MarkdownView,
                                                        qtbot: QtBot) -> None:
    view.stream("Bread is **good**")
    [paragraph] = view.paragraphs()
    assert paragraph.exact and paragraph.toPlainText() == "Bread is good"
    revision = paragraph.document().revision()
    view.stream("Bread is **good** to eat")  # plain words: appended, nothing parsed again
    assert paragraph.toPlainText() == "Bread is good to eat" and not paragraph.exact
    assert view.paragraphs() == [paragraph]
    # Parsed again within REPARSE_MS even though no more text comes: the new words are not
    # bold just because the words before them are.
    qtbot.waitUntil(lambda: paragraph.exact, timeout=REPARSE_MS * 4)
    assert paragraph.document().revision() > revision
    cursor = paragraph.document().find("eat")
    assert cursor.charFormat().fontWeight() != QFont.Weight.Bold
    assert paragraph.toPlainText() == "Bread is good to eat"
    view.stream("Bread is **good** to eat.\n\n`code`")  # Markdown: parsed at once
    assert [p.toPlainText() for p in view.paragraphs()] == ["Bread is good to eat.", "code"]
    assert all(p.exact for p in view.paragraphs())


STREAMED = ("Bread is one of the oldest foods, made wherever grain grows: flatbreads baked on "
            "hot stones, loaves risen with wild yeast, and extraordinarilylongwordsthatwrap "
            "across lines. Ελληνικά και русский текст, café naïve façade, fjord office ffi. "
            "Some **bold words** and *italic ones* and a [link](https://example.com) inside.\n\n"
            "- a list item long enough to wrap around the narrow width used here\n"
            "- and a second one that goes on and on for a while\n\n"
            "Last paragraph, with words that keep coming until the very end of the reply.")


@pytest.mark.parametrize("width", [190, 460])
def test_what_streaming_paints_is_what_a_full_repaint_shows(qtbot: QtBot, width: int,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    # While a reply streams, Qt paints only what it takes to have changed (the views grow at
    # the bottom and keep what they painted before); the window must still hold exactly what
    # painting all of it would show, as lines wrap and words carry on.
    from desktop.ui.views import markdown

    monkeypatch.setattr(markdown, "REPARSE_MS", 10 ** 6)  # keep the appended text unparsed
    view = MarkdownView()  # made after the change, so its timer waits as long
    window = QWidget()
    layout = QVBoxLayout(window)
    layout.addWidget(view)
    layout.addStretch(1)
    qtbot.addWidget(window)
    window.resize(width, 900)
    window.show()
    qtbot.waitExposed(window)
    screen = QGuiApplication.primaryScreen()
    size, checked = 1, 0
    while size < len(STREAMED):
        size = min(len(STREAMED), size + 1 + size % 7)
        view.stream(STREAMED[:size])
        settle()
        shown = screen.grabWindow(window.winId()).toImage()  # what the window holds now
        assert shown == window.grab().toImage(), STREAMED[:size]  # painted afresh
        checked += 1
    assert checked > 60
    assert not view.paragraphs()[-1].exact  # words were appended, not parsed again


def test_wheel_over_a_message_scrolls_the_chat(qtbot: QtBot) -> None:
    area = QScrollArea()
    qtbot.addWidget(area)
    area.setWidgetResizable(True)
    view = MarkdownView()
    view.set_markdown("\n\n".join(f"Paragraph {n}. " + "Some words here. " * 12
                                  for n in range(30)))
    area.setWidget(view)
    area.resize(400, 300)
    area.show()
    qtbot.waitExposed(area)
    settle()
    bar = area.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0
    paragraph = view.paragraphs()[0]
    point = paragraph.viewport().mapTo(area, QPoint(20, 5))
    assert area.childAt(point) is paragraph.viewport()  # the wheel turns over the text itself
    QTest.wheelEvent(area.windowHandle(), QPointF(point), QPoint(0, -120))
    QApplication.processEvents()
    assert bar.value() > 0


def test_links_open_in_the_browser_only_for_web_addresses(view: MarkdownView,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()))
    view.set_markdown("[a](https://example.com/) [b](file:///etc/passwd) [c](relative.html)")
    [paragraph] = view.paragraphs()
    for url in ("https://example.com/", "file:///etc/passwd", "relative.html"):
        paragraph.anchorClicked.emit(QUrl(url))
    assert opened == ["https://example.com/"]
    assert paragraph.toPlainText() == "a b c"  # a click never replaced the message


def test_code_block_grows_by_appending(view: MarkdownView) -> None:
    view.set_markdown("```python\nx = 1")
    [code] = view.code_blocks()
    document = code.editor.document()
    view.set_markdown("```python\nx = 1\ny = 2\n```")
    assert view.code_blocks() == [code] and isinstance(code, CodeBlock)
    assert document.toPlainText() == "x = 1\ny = 2"
    assert code.editor.height() > code.editor.fontMetrics().lineSpacing() * 2


def test_a_failed_reply_and_a_long_model_name_fit_inside_the_chat(qtbot: QtBot) -> None:
    # Why a reply failed is shown in full under the message's header: a long reason wraps, and
    # a long model name is cut short, instead of making the message wider than the chat (which
    # cut the reply's text off at the right).
    from datetime import datetime

    from PySide6.QtWidgets import QLayout

    from desktop.core.chats import Message
    from desktop.ui.views.message import MessageWidget

    reason = ("The engine was killed (SIGKILL); the system may have run out of memory, or "
              "another program stopped it, and the reply was cut off here.")
    message = Message(1, 1, 1, "assistant", "Bread is old. " * 20, datetime.now(),
                      model_id="qwen2.5-coder-14b-instruct-abliterated-q4_k_m", state="error",
                      error=reason)
    area = QScrollArea()
    area.setWidgetResizable(True)
    chat = QWidget()  # as the chat page holds its messages
    layout = QVBoxLayout(chat)
    layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
    widget = MessageWidget.from_message(message)
    layout.addWidget(widget)
    layout.addStretch(1)
    area.setWidget(chat)
    qtbot.addWidget(area)
    area.resize(420, 500)
    area.show()
    qtbot.waitExposed(area)
    settle()
    assert widget.note.text() == "failed"
    assert widget.reason.isVisible() and widget.reason.text() == reason
    assert widget.who.text().endswith("…") and widget.who.toolTip().endswith("q4_k_m")
    assert area.horizontalScrollBar().maximum() == 0  # nothing is wider than the chat
    assert widget.width() <= area.viewport().width()
    lines = widget.reason.fontMetrics().lineSpacing()
    narrow = widget.reason.height()
    assert narrow >= 2 * lines  # wrapped, and all of it shown
    assert narrow >= widget.reason.heightForWidth(widget.reason.width())
    area.resize(widget.reason.fontMetrics().horizontalAdvance(reason) + 200, 500)
    settle()
    assert widget.reason.height() < narrow  # one line where there is room
    assert widget.who.text() == "Assistant · qwen2.5-coder-14b-instruct-abliterated-q4_k_m"
    widget.set_state("complete")
    assert widget.reason.isHidden()


def test_code_gets_a_face_whose_letters_measure_the_same(qtbot: QtBot, monkeypatch) -> None:
    from PySide6.QtGui import QFontDatabase

    from desktop.ui.views import fonts

    block = CodeBlock("python", dark=False)
    qtbot.addWidget(block)
    assert fonts.measures_fixed(block.editor.font())
    # A system whose "fixed" font is in fact proportional still gets a fixed-width face.
    general = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
    assert not fonts.measures_fixed(general)

    class ProportionalSystem(QFontDatabase):
        @staticmethod
        def systemFont(_kind):  # noqa: N802 - Qt's name
            return general

    monkeypatch.setattr(fonts, "QFontDatabase", ProportionalSystem)
    fonts.code_families.cache_clear()
    try:
        chosen = fonts.code_font()
        assert fonts.measures_fixed(chosen)
        assert chosen.families()[0] not in general.families()
    finally:
        fonts.code_families.cache_clear()
