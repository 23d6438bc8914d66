"""Markdown for chat messages: text through Qt's Markdown support, code blocks as their own
widgets with syntax colouring and a copy button."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QSyntaxHighlighter, \
    QTextCharFormat
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, \
    QSizePolicy, QVBoxLayout, QWidget

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w#+.-]*)\s*$")


# A line that carries on the block above it across a blank line: an indented line, a list
# item (loose lists stay one block, so their numbering holds) or a table row.
_CONTINUES = re.compile(r"^(\s|[-*+] |\d+[.)] |\|)")


def _paragraphs(text: str) -> list[str]:
    """Cut text at blank lines, so a growing reply re-renders only its last paragraph."""
    blocks: list[str] = []
    current: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not line.strip() and current:
            following = next((rest for rest in lines[index + 1:] if rest.strip()), None)
            if following is not None and not _CONTINUES.match(following):
                blocks.append("\n".join(current))
                current = []
                continue
        current.append(line)
    if current and "\n".join(current).strip():
        blocks.append("\n".join(current))
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
        palette = {"keyword": "#c678dd" if dark else "#a626a4",
                   "string": "#98c379" if dark else "#50a14f",
                   "number": "#d19a66" if dark else "#986801",
                   "comment": "#7f848e" if dark else "#a0a1a7"}
        self._rules: list[tuple[re.Pattern[str], QTextCharFormat]] = []

        def fmt(color: str, italic: bool = False, bold: bool = False) -> QTextCharFormat:
            form = QTextCharFormat()
            form.setForeground(QColor(color))
            form.setFontItalic(italic)
            if bold:
                form.setFontWeight(QFont.Weight.Bold)
            return form

        self._rules.append((re.compile(r"\b(" + "|".join(_KEYWORDS) + r")\b"),
                            fmt(palette["keyword"], bold=True)))
        self._rules.append((re.compile(r"\b\d+(\.\d+)?\b"), fmt(palette["number"])))
        self._rules.append((re.compile(r"\"[^\"\\]*(\\.[^\"\\]*)*\"|'[^'\\]*(\\.[^'\\]*)*'"),
                            fmt(palette["string"])))
        self._rules.append((re.compile(r"(#|//|--).*$"), fmt(palette["comment"], italic=True)))

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
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
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
        lines = max(1, code.count("\n") + 1)
        metrics = self.editor.fontMetrics()
        self.editor.setFixedHeight(lines * metrics.lineSpacing() + 16
                                   + self.editor.horizontalScrollBar().sizeHint().height())

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.copy_button.setText("Copied")


class MarkdownView(QWidget):
    """Shows a Markdown text; updating it with a longer text reuses the widgets it has."""

    def __init__(self, dark: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._dark = dark
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._parts: list[tuple[str, str, QWidget]] = []
        self.markdown = ""

    def set_markdown(self, text: str) -> None:
        if text == self.markdown:
            return
        self.markdown = text
        segments = split_markdown(text)
        for index, (kind, language, body) in enumerate(segments):
            if index < len(self._parts) and self._parts[index][:2] == (kind, language):
                widget = self._parts[index][2]
            else:
                for _, _, old in self._parts[index:]:
                    self._layout.removeWidget(old)
                    old.deleteLater()
                del self._parts[index:]
                widget = self._make(kind, language)
                self._layout.addWidget(widget)
                self._parts.append((kind, language, widget))
            if isinstance(widget, CodeBlock):
                widget.set_code(body)
            elif isinstance(widget, QLabel) and widget.text() != body:
                widget.setText(body)
        for _, _, old in self._parts[len(segments):]:
            self._layout.removeWidget(old)
            old.deleteLater()
        del self._parts[len(segments):]

    def _make(self, kind: str, language: str) -> QWidget:
        if kind == "code":
            return CodeBlock(language, self._dark, self)
        label = QLabel(self)
        label.setTextFormat(Qt.TextFormat.MarkdownText)
        label.setWordWrap(True)
        label.setOpenExternalLinks(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                      | Qt.TextInteractionFlag.LinksAccessibleByMouse)
        label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        return label

    def code_blocks(self) -> list[CodeBlock]:
        return [widget for _, _, widget in self._parts if isinstance(widget, CodeBlock)]
