"""One message in the chat: the user's as a bubble on the right, the model's as text across the
column; under each, small icon buttons (copy, and edit or regenerate) that show while the
pointer is over the message or the keyboard is on one of them."""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QEnterEvent, QFocusEvent, QGuiApplication, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QLayout, QPlainTextEdit,
                               QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from desktop.core.chats import Message, Source
from desktop.core.tool_calls import ToolStep
from desktop.ui.style import icon
from desktop.ui.style.tokens import ICON_S, SPACE_M, SPACE_S, SPACE_XS
from desktop.ui.views.labels import ElidedLabel, WrappedLabel
from desktop.ui.views.markdown import MarkdownView
from desktop.ui.views.sources import SourcesSection
from desktop.ui.views.thinking import ThinkingSection
from desktop.ui.views.tool_call import ToolCallBlock

BUBBLE_SHARE = 0.85  # of the column: the widest a bubble gets
COPIED_MS = 1500  # how long the copy button shows its tick


class ActionButton(QToolButton):
    """A small icon button under a message. It is always there for the keyboard and for
    screen readers, but painted only while its row is shown, so nothing moves when it shows."""

    def __init__(self, icon_name: str, name: str, tip: str, row: MessageActions) -> None:
        super().__init__(row)
        self.row = row
        self.setObjectName("messageAction")
        self.setIcon(icon(icon_name, "text_muted"))
        self.setIconSize(QSize(ICON_S, ICON_S))
        self.setAccessibleName(name)
        self.setToolTip(tip)
        self.setAutoRaise(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        if self.row.shown:
            super().paintEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt's name
        super().focusInEvent(event)
        self.row.update_shown()

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt's name
        super().focusOutEvent(event)
        self.row.update_shown()


class MessageActions(QWidget):
    """The row of a message's action buttons; shown while hovered or focused."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row_layout = QHBoxLayout(self)
        self.row_layout.setContentsMargins(0, 0, 0, 0)
        self.row_layout.setSpacing(2)
        self.buttons: list[ActionButton] = []
        self.hovered = False
        self.shown = False

    def add(self, icon_name: str, name: str, tip: str) -> ActionButton:
        button = ActionButton(icon_name, name, tip, self)
        self.row_layout.addWidget(button)
        self.buttons.append(button)
        return button

    def set_hovered(self, hovered: bool) -> None:
        self.hovered = hovered
        self.update_shown()

    def update_shown(self) -> None:
        shown = self.hovered or any(b.hasFocus() for b in self.buttons)
        if shown != self.shown:
            self.shown = shown
            for button in self.buttons:
                button.update()


class Bubble(QFrame):
    """The user's message: as wide as its text needs, up to BUBBLE_SHARE of the column."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("userBubble")
        self.natural = 0  # the width of the text's longest line, unwrapped
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        frame, inside = self.contentsMargins(), self.layout().contentsMargins()
        return QSize(self.natural + frame.left() + frame.right() + inside.left()
                     + inside.right(), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(min(self.sizeHint().width(), 96), super().minimumSizeHint().height())


class MessageWidget(QFrame):
    """A message, and what can be done with it: copy, and edit (user) or regenerate (reply)."""

    editSubmitted = Signal(int, str)
    regenerateRequested = Signal(int)
    callDecided = Signal(str, str)  # a tool call's id, the user's decision

    def __init__(self, role: str, message_id: int | None = None, model: str | None = None,
                 dark: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.answers_id: int | None = None  # for a reply: the user message it answers
        self.setObjectName("userMessage" if role == "user" else "assistantMessage")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(SPACE_XS)
        # A reply grows at the bottom while it streams: it takes the height it needs at once and
        # only its new strip is painted (a reply draws no frame; the user's bubble does, so it
        # is painted whole when it changes size).
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        if role != "user":
            self.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        # Over a reply: the model that wrote it, and how it ended.
        self.header = QWidget()
        header = QHBoxLayout(self.header)
        header.setContentsMargins(0, 0, 0, 0)
        who = "You" if role == "user" else ("Assistant" + (f" · {model}" if model else ""))
        # A long model name is cut short rather than making the message wider than the chat.
        self.who = ElidedLabel(who)
        self.who.setObjectName("messageWho")
        self.who.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        bold = self.who.font()
        bold.setBold(True)  # bold only: the size follows the app's font size setting
        self.who.setFont(bold)
        self.note = QLabel("")
        self.note.setObjectName("messageNote")
        header.addWidget(self.who)
        header.addWidget(self.note)
        header.addStretch(1)
        layout.addWidget(self.header)
        self.header.setVisible(role != "user")  # once in the layout: never a window of its own
        # Why a reply ended early, in full: it may be long, so it wraps under the header.
        self.reason = WrappedLabel()
        self.reason.setObjectName("messageReason")
        self.reason.hide()
        layout.addWidget(self.reason)
        self.thinking = ThinkingSection(self)
        layout.addWidget(self.thinking)
        # A reply that used tools: each round's text and its calls, before the last text.
        self.steps_box = QWidget()
        self.steps_layout = QVBoxLayout(self.steps_box)
        self.steps_layout.setContentsMargins(0, 0, 0, 0)
        self.steps_box.hide()
        layout.addWidget(self.steps_box)
        self.dark = dark
        self.steps: list[ToolStep] = []
        self.call_blocks: dict[str, ToolCallBlock] = {}
        self.bubble: Bubble | None = None
        if role == "user":
            self.bubble = Bubble()
            inside = QVBoxLayout(self.bubble)
            inside.setContentsMargins(SPACE_M + 2, SPACE_S + 2, SPACE_M + 2, SPACE_S + 2)
            self.body = MarkdownView(dark, self.bubble, bubble=True)
            inside.addWidget(self.body)
            row = QHBoxLayout()
            row.setContentsMargins(0, 0, 0, 0)
            row.addStretch(1)
            row.addWidget(self.bubble)
            layout.addLayout(row)
        else:
            self.body = MarkdownView(dark, self)
            layout.addWidget(self.body)
        # The passages of the user's documents the reply was given; its citations open them.
        self.sources = SourcesSection(self)
        self.sources.hide()  # it shows itself once the reply has sources
        self.body.sourceClicked.connect(self.sources.show_source)
        layout.addWidget(self.sources)
        # Laid out from the start, a streaming reply's too: nothing moves when it ends.
        self.actions = MessageActions()
        self.copy_button = self.actions.add("copy", "Copy message", "Copy")
        self.copy_button.clicked.connect(self.copy)
        if role == "user":
            self.action_button = self.actions.add("pencil", "Edit message",
                                                  "Edit and send again")
        else:
            self.action_button = self.actions.add("refresh-cw", "Regenerate reply",
                                                  "Write this reply again")
        self.action_button.clicked.connect(self._action)
        actions_row = QHBoxLayout()  # under the bubble's right edge, or the reply's left
        actions_row.setContentsMargins(0, 0, 0, 0)
        actions_row.addWidget(self.actions)
        actions_row.insertStretch(0 if role == "user" else 1, 1)
        layout.addLayout(actions_row)
        self.editor: QPlainTextEdit | None = None
        self._edit_row: QWidget | None = None
        self.text = ""
        self.setAccessibleName("Your message" if role == "user" else "Reply")

    def enterEvent(self, event: QEnterEvent) -> None:  # noqa: N802 - Qt's name
        super().enterEvent(event)
        self.actions.set_hovered(True)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().leaveEvent(event)
        self.actions.set_hovered(False)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self.bubble is not None:
            self.bubble.setMaximumWidth(max(96, int(event.size().width() * BUBBLE_SHARE)))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange and self.bubble is not None:
            QTimer.singleShot(0, self, self._measure)  # once the text has the new font

    def _measure(self) -> None:
        """How wide the bubble would like to be: its text's longest line."""
        if self.bubble is None:
            return
        if self.body.code_blocks():
            natural = 10_000  # code keeps its lines: as wide as the column allows
        else:
            natural = 0
            for paragraph in self.body.paragraphs():
                document = paragraph.document().clone()
                document.setTextWidth(-1)
                natural = max(natural, math.ceil(document.idealWidth()))
                del document
        self.bubble.natural = natural + 2
        self.bubble.updateGeometry()

    @classmethod
    def from_message(cls, message: Message, dark: bool = False) -> "MessageWidget":
        widget = cls(message.role, message.id, message.model_id, dark)
        widget.set_steps(list(message.tool_steps))  # before the text: a new round clears it
        widget.set_sources(message.sources)
        widget.set_text(message.content)
        if message.thinking:
            widget.thinking.set_text(message.thinking, message.thought_seconds)
        widget.set_state(message.state, message.error)
        return widget

    def set_steps(self, steps: list[ToolStep]) -> None:
        """Show the reply's rounds of tool calls; a new round ends the text shown below them
        (it is the new round's step text now), so the body starts again empty."""
        shape = [[c.id for c in s.calls] for s in steps]
        if shape == [[c.id for c in s.calls] for s in self.steps]:
            for step in steps:
                for call in step.calls:
                    self.call_blocks[call.id].update_call(call)
            self.steps = steps
            return
        new_round = len(steps) != len(self.steps)
        while self.steps_layout.count():
            item = self.steps_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.call_blocks.clear()
        for step in steps:
            if step.text.strip():
                view = MarkdownView(self.dark, self.steps_box)
                view.set_markdown(step.text)
                self.steps_layout.addWidget(view)
            for call in step.calls:
                block = ToolCallBlock(call, self.steps_box)
                block.decided.connect(self.callDecided)
                self.call_blocks[call.id] = block
                self.steps_layout.addWidget(block)
        self.steps = steps
        self.steps_box.setVisible(bool(steps))
        if new_round:
            self.set_text("")

    def set_sources(self, sources: tuple[Source, ...]) -> None:
        """Show the reply's sources under it, and its citations of them as links."""
        self.sources.set_sources(sources)
        self.body.set_sources(len(sources))

    def set_text(self, text: str) -> None:
        self.text = text
        self.body.set_markdown(text)
        self._measure()

    def append(self, piece: str) -> None:
        """More of a reply that is streaming in."""
        self.text += piece
        self.body.stream(self.text)

    def append_thinking(self, piece: str) -> None:
        """More of the thinking of a reply that is streaming in."""
        self.thinking.append(piece)

    def thought(self, seconds: float) -> None:
        """The thinking is over and the answer begins."""
        self.thinking.finish(seconds)

    def set_state(self, state: str, error: str | None = None) -> None:
        notes = {"stopped": "stopped", "error": "failed", "streaming": "…"}
        self.note.setText(notes.get(state, ""))
        self.reason.setText(error if state == "error" and error else "")
        self.reason.setVisible(bool(self.reason.text()))

    def set_dark(self, dark: bool) -> None:
        self.dark = dark
        self.body.set_dark(dark)
        for view in self.steps_box.findChildren(MarkdownView):
            view.set_dark(dark)

    def set_actions_enabled(self, enabled: bool) -> None:
        self.action_button.setEnabled(enabled)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text)
        self.copy_button.setIcon(icon("check", "success"))
        self.copy_button.setToolTip("Copied")
        QTimer.singleShot(COPIED_MS, self, self._copied_done)

    def _copied_done(self) -> None:
        self.copy_button.setIcon(icon("copy", "text_muted"))
        self.copy_button.setToolTip("Copy")

    def _action(self) -> None:
        if self.role == "user":
            self.start_edit()
        elif self.answers_id is not None:
            self.regenerateRequested.emit(self.answers_id)

    def start_edit(self) -> None:
        if self.editor is not None or self.message_id is None:
            return
        self.editor = QPlainTextEdit(self.text)
        self.editor.setAccessibleName("Edit message text")
        self.editor.setMaximumHeight(self.editor.fontMetrics().lineSpacing() * 10)
        if self.bubble is not None:
            self.bubble.hide()
        self.actions.hide()
        row = QWidget()
        buttons = QHBoxLayout(row)
        buttons.setContentsMargins(0, 0, 0, 0)
        send = QPushButton("Send again")
        send.setProperty("primary", True)
        send.setAccessibleName("Send edited message")
        cancel = QPushButton("Cancel")
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(send)
        self.layout().addWidget(self.editor)
        self.layout().addWidget(row)
        self._edit_row = row
        send.clicked.connect(self._submit_edit)
        cancel.clicked.connect(self.end_edit)
        self.editor.setFocus()

    def _submit_edit(self) -> None:
        if self.editor is not None and self.message_id is not None:
            text = self.editor.toPlainText()
            self.end_edit()
            self.editSubmitted.emit(self.message_id, text)

    def end_edit(self) -> None:
        for widget in (self.editor, self._edit_row):
            if widget is not None:
                widget.deleteLater()
        self.editor = self._edit_row = None
        if self.bubble is not None:
            self.bubble.show()
        self.actions.show()
