"""Markdown for chat messages: text through Qt's Markdown support, code blocks as their own
widgets with syntax colouring and a copy button.

A message is cut into paragraphs, each its own widget that keeps its layout: while a reply
streams only its last paragraph is parsed and laid out again, so a 2,000-token reply costs no
more per update than a short one.
"""

from __future__ import annotations

import math
import re
import time

from PySide6.QtCore import QEvent, QSize, QSizeF, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (QColor, QDesktopServices, QFont, QGuiApplication, QPalette,
                           QSyntaxHighlighter, QTextCharFormat, QTextCursor, QWheelEvent)
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QLayout, QPlainTextEdit,
                               QPushButton, QSizePolicy, QTextBrowser, QVBoxLayout, QWidget)

from desktop.ui.style.tokens import DARK, LIGHT
from desktop.ui.views.fonts import code_font

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w#+.-]*)\s*$")


# Text that means the same as Markdown and as plain words: letters, digits, spaces and the
# punctuation that starts or ends no Markdown construct in the middle of a line.
_PLAIN_WORDS = re.compile(r"(?:[^\W_]|[ ,.;:!?'\"()%-])+")
REPARSE_MS = 250

_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)]) ")
# A citation of a source in a reply, "[2]", that is not already a link or a link's text.
_CITATION = re.compile(r"(?<!\\)\[(\d{1,3})\](?![(:])")
_CODE_SPAN = re.compile(r"(`+[^`\n]*`+)")  # code is shown as it is written
SOURCE_SCHEME = "source"


def link_citations(text: str, count: int) -> str:
    """Markdown *text* with each citation [n] of a source (1 <= n <= *count*) made a link to
    ``source:n``, which the view hands to the reply's sources."""
    if count <= 0 or "[" not in text:
        return text

    def link(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if not 1 <= number <= count:
            return match.group(0)
        return f"[\\[{number}\\]]({SOURCE_SCHEME}:{number})"

    pieces = _CODE_SPAN.split(text)  # odd pieces are code spans
    return "".join(piece if index % 2 else _CITATION.sub(link, piece)
                   for index, piece in enumerate(pieces))


def _kind(line: str) -> str:
    if _LIST_ITEM.match(line):
        return "list"
    if line.lstrip().startswith("|"):
        return "table"
    return "indented" if line[:1].isspace() else "text"


def _carries_on(block_start: str, line: str) -> bool:
    """Whether *line*, after a blank line, still belongs to the block that began with
    *block_start*: a loose list stays one block (so its numbering holds), and so does a table."""
    kind = _kind(block_start)
    return (kind == "list" and _kind(line) in ("list", "indented")) or \
        (kind == "table" and _kind(line) == "table")


def _paragraphs(text: str) -> list[str]:
    """Cut text at blank lines, so a growing reply re-renders only its last paragraph."""
    blocks: list[str] = []
    current: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not line.strip():
            if not current:
                continue
            following = next((rest for rest in lines[index + 1:] if rest.strip()), None)
            if following is not None and not _carries_on(current[0], following):
                blocks.append("\n".join(current))
                current = []
                continue
        current.append(line)
    if current and "\n".join(current).strip():
        blocks.append("\n".join(current).rstrip("\n"))
    return blocks


def split_markdown(text: str) -> list[tuple[str, str, str]]:
    """Split Markdown into ("text", "", paragraph) and ("code", language, body) segments.

    An unterminated fence (a reply still streaming) is a code block up to the end.
    """
    segments: list[tuple[str, str, str]] = []
    for kind, language, body in _fenced(text):
        if kind == "code":
            segments.append((kind, language, body))
        else:
            segments.extend(("text", "", block) for block in _paragraphs(body))
    return segments


def _fenced(text: str) -> list[tuple[str, str, str]]:
    """Fenced code blocks and the text between them."""
    segments: list[tuple[str, str, str]] = []
    lines: list[str] = []
    fence: str | None = None
    language = ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is None and match:
            if lines:
                segments.append(("text", "", "\n".join(lines)))
            lines, fence, language = [], match.group(1), match.group(2)
        elif fence is not None and match and match.group(1) == fence and not match.group(2):
            segments.append(("code", language, "\n".join(lines)))
            lines, fence, language = [], None, ""
        else:
            lines.append(line)
    if fence is not None:
        segments.append(("code", language, "\n".join(lines)))
    elif lines and "\n".join(lines).strip():
        segments.append(("text", "", "\n".join(lines)))
    return segments


_KEYWORDS = (
    "and as assert async await break case catch class const continue def default del do elif "
    "else enum except export extends false finally fn for from func function if impl import in "
    "interface is lambda let match mut new nil none not null or pass private pub public raise "
    "return self static struct super switch this throw true try type use var void while with "
    "yield True False None echo fi then esac done local"
).split()


class CodeHighlighter(QSyntaxHighlighter):
    """Keywords, strings, numbers and comments, for the languages models write most."""

    def __init__(self, document, dark: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(document)
        self.dark = dark
        self._rules = self._make_rules(dark)

    def set_dark(self, dark: bool) -> None:
        """Colour the code for a dark (or light) background from now on, and again now."""
        if dark != self.dark:
            self.dark = dark
            self._rules = self._make_rules(dark)
            self.rehighlight()

    @staticmethod
    def _make_rules(dark: bool) -> list[tuple[re.Pattern[str], QTextCharFormat]]:
        theme = DARK if dark else LIGHT
        palette = {"keyword": theme.code_keyword, "string": theme.code_string,
                   "number": theme.code_number, "comment": theme.code_comment}
        rules: list[tuple[re.Pattern[str], QTextCharFormat]] = []

        def fmt(color: str, italic: bool = False, bold: bool = False) -> QTextCharFormat:
            form = QTextCharFormat()
            form.setForeground(QColor(color))
            form.setFontItalic(italic)
            if bold:
                form.setFontWeight(QFont.Weight.Bold)
            return form

        rules.append((re.compile(r"\b(" + "|".join(_KEYWORDS) + r")\b"),
                      fmt(palette["keyword"], bold=True)))
        rules.append((re.compile(r"\b\d+(\.\d+)?\b"), fmt(palette["number"])))
        rules.append((re.compile(r"\"[^\"\\]*(\\.[^\"\\]*)*\"|'[^'\\]*(\\.[^'\\]*)*'"),
                      fmt(palette["string"])))
        rules.append((re.compile(r"(#|//|--).*$"), fmt(palette["comment"], italic=True)))
        return rules

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        for pattern, form in self._rules:
            for match in pattern.finditer(text):
                self.setFormat(match.start(), match.end() - match.start(), form)


class CodeBlock(QFrame):
    """A fenced code block: language, a copy button, and the code in a fixed-width font."""

    def __init__(self, language: str, dark: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        header = QHBoxLayout()
        self.language = QLabel(language or "code")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy code")
        self.copy_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.copy_button.clicked.connect(self.copy)
        header.addWidget(self.language)
        header.addStretch(1)
        header.addWidget(self.copy_button)
        layout.addLayout(header)
        self.editor = QPlainTextEdit()
        self.editor.setReadOnly(True)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setFont(code_font())  # the family only: the size is the app's setting
        self.editor.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.editor.setAccessibleName(f"{language or 'Code'} code block")
        self.editor.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._highlighter = CodeHighlighter(self.editor.document(), dark)
        layout.addWidget(self.editor)
        self.code = ""

    def set_code(self, code: str) -> None:
        if code == self.code:
            return
        if code.startswith(self.code) and self.code:
            cursor = self.editor.textCursor()
            cursor.movePosition(cursor.MoveOperation.End)
            cursor.insertText(code[len(self.code):])
        else:
            self.editor.setPlainText(code)
        self.code = code
        self._fit()

    def _fit(self) -> None:
        """As tall as the code's lines, plus room for the scroll bar of long lines."""
        lines = max(1, self.code.count("\n") + 1)
        metrics = self.editor.fontMetrics()
        self.editor.setFixedHeight(lines * metrics.lineSpacing() + 16
                                   + self.editor.horizontalScrollBar().sizeHint().height())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            QTimer.singleShot(0, self, self._fit)  # once the editor has the new font too

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.copy_button.setText("Copied")

    def set_dark(self, dark: bool) -> None:
        self._highlighter.set_dark(dark)


class MarkdownText(QTextBrowser):
    """One paragraph of Markdown, exactly as tall as its text, selectable, with working links.

    Its document is laid out once per width and its height is fixed from that layout, so the
    message list never asks it to lay its text out again (a word-wrapped QLabel re-lays out its
    whole text on every height-for-width query, for every paragraph, on every update).
    """

    LINK_SCHEMES = ("http", "https", "mailto")
    #: a link of another scheme was clicked (a citation of a source): the view handles it
    linkClicked = Signal(QUrl)

    def __init__(self, background: QPalette.ColorRole = QPalette.ColorRole.Window,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        # Opaque, in the colour of what is behind it: a repaint of the text does not repaint
        # the message and the list beneath it as well.
        self.viewport().setBackgroundRole(background)
        self.viewport().setAutoFillBackground(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setOpenLinks(False)  # a link opens in the browser, never inside the message
        self.anchorClicked.connect(self._open_link)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                     | Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(0)
        self.document().setUndoRedoEnabled(False)  # nobody edits it: no history to keep
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.markdown = ""
        self.exact = True  # False while words were appended without parsing the Markdown again
        self.setFixedHeight(0)

    def set_markdown(self, text: str) -> None:
        if text != self.markdown or not self.exact:
            self.markdown = text
            self.exact = True
            self.setMarkdown(text)

    def append_words(self, words: str) -> None:
        """Add words that carry no Markdown at the end, in the style of the text before them."""
        document = self.document()
        # Keep the shaped text of the paragraph that grows: painting it would shape it all
        # again each time otherwise (Qt drops it once a paragraph is laid out).
        document.lastBlock().layout().setCacheEnabled(True)
        cursor = QTextCursor(document)
        # In an edit block the cursor does not work out where it is on screen, which would
        # shape the last line's text again, twice, for nothing.
        cursor.beginEditBlock()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        style = cursor.charFormat()
        style.setAnchor(False)  # a link just before the new words does not take them in
        style.setAnchorHref("")
        cursor.insertText(words, style)
        cursor.endEditBlock()
        self.markdown += words
        self.exact = False

    def _fit(self, size: QSizeF) -> None:
        height = math.ceil(size.height())
        if height != self.height():
            self.setFixedHeight(height)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(0, self.height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.fontMetrics().averageCharWidth() * 40, self.height())

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        event.ignore()  # the chat scrolls, the paragraph never does (nor zooms)

    def _open_link(self, url: QUrl) -> None:
        if url.scheme() in self.LINK_SCHEMES:
            QDesktopServices.openUrl(url)
        else:
            self.linkClicked.emit(url)


class MarkdownView(QWidget):
    """Shows a Markdown text; updating it with a longer text reuses the widgets it has.

    A reply with sources shows its citations ([1], [2]…) as links; a click on one is
    :attr:`sourceClicked` with its number.
    """

    sourceClicked = Signal(int)

    def __init__(self, dark: bool = False, parent: QWidget | None = None,
                 bubble: bool = False) -> None:
        super().__init__(parent)
        self._dark = dark
        self._background = (QPalette.ColorRole.AlternateBase if bubble
                            else QPalette.ColorRole.Window)
        # It paints nothing itself, and grows at the bottom: a longer last paragraph makes it
        # taller at once and paints only the new strip, never moving the paragraphs above.
        self.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        self._parts: list[tuple[str, str, QWidget]] = []
        self.markdown = ""
        self.sources = 0  # how many sources its citations may point to
        self._parsed_at = 0.0
        # After words were appended unparsed, the Markdown is parsed again soon even if the
        # reply pauses, so its formatting is never behind by more than REPARSE_MS.
        self._reparse = QTimer(self, singleShot=True, interval=REPARSE_MS)
        self._reparse.timeout.connect(lambda: self.set_markdown(self.markdown))

    def stream(self, text: str) -> None:
        """Show *text*, the reply so far, which is usually the last text plus a few words.

        Words that carry no Markdown are appended to the last paragraph as they are; the whole
        is parsed as Markdown at most REPARSE_MS later. Anything else is parsed at once.
        """
        words = text[len(self.markdown):] if text.startswith(self.markdown) else ""
        last = self._parts[-1][2] if self._parts else None
        if (words and isinstance(last, MarkdownText) and _PLAIN_WORDS.fullmatch(words)
                and not self.markdown.endswith("\n")
                and (time.monotonic() - self._parsed_at) * 1000 < REPARSE_MS):
            last.append_words(words)
            self.markdown = text
            if not self._reparse.isActive():
                self._reparse.start()
            return
        self.set_markdown(text)

    def set_markdown(self, text: str) -> None:
        self._reparse.stop()
        if text == self.markdown and all(p.exact for p in self.paragraphs()):
            return
        self.markdown = text
        self._parsed_at = time.monotonic()
        segments = split_markdown(text)
        for index, (kind, language, body) in enumerate(segments):
            if index < len(self._parts) and self._parts[index][:2] == (kind, language):
                widget = self._parts[index][2]
            else:
                self._drop(index)
                widget = self._make(kind, language)
                self._layout.addWidget(widget)
                self._parts.append((kind, language, widget))
            if isinstance(widget, CodeBlock):
                widget.set_code(body)
            elif isinstance(widget, MarkdownText):
                widget.set_markdown(link_citations(body, self.sources))
        self._drop(len(segments))

    def _drop(self, start: int) -> None:
        """Remove the parts from *start* on; they vanish now, and are deleted soon."""
        for _, _, old in self._parts[start:]:
            self._layout.removeWidget(old)
            old.hide()
            old.deleteLater()
        del self._parts[start:]

    def set_sources(self, count: int) -> None:
        """Make citations of *count* sources links from now on (0: none)."""
        if count != self.sources:
            self.sources = count
            for paragraph in self.paragraphs():
                paragraph.exact = False  # parsed again below, with the links
            self.set_markdown(self.markdown)

    def _open_source(self, url: QUrl) -> None:
        if url.scheme() == SOURCE_SCHEME and url.path().isdigit():
            self.sourceClicked.emit(int(url.path()))

    def _make(self, kind: str, language: str) -> QWidget:
        if kind == "code":
            return CodeBlock(language, self._dark, self)
        text = MarkdownText(self._background, self)
        text.linkClicked.connect(self._open_source)
        return text

    def set_dark(self, dark: bool) -> None:
        """Code from now on, and the code shown, in colours for a dark (or light) theme."""
        self._dark = dark
        for block in self.code_blocks():
            block.set_dark(dark)

    def code_blocks(self) -> list[CodeBlock]:
        return [widget for _, _, widget in self._parts if isinstance(widget, CodeBlock)]

    def paragraphs(self) -> list[MarkdownText]:
        return [widget for _, _, widget in self._parts if isinstance(widget, MarkdownText)]
