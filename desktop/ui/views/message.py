"""One message in the chat: who said it, its Markdown, and what can be done with it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLayout, QPlainTextEdit, QPushButton, \
    QSizePolicy, QVBoxLayout, QWidget

from desktop.core.chats import Message, Source
from desktop.core.tool_calls import ToolStep
from desktop.ui.views.labels import ElidedLabel, WrappedLabel
from desktop.ui.views.markdown import MarkdownView
from desktop.ui.views.sources import SourcesSection
from desktop.ui.views.thinking import ThinkingSection
from desktop.ui.views.tool_call import ToolCallBlock


class MessageWidget(QFrame):
    """A chat bubble. Buttons: copy, and edit (user) or regenerate (assistant)."""

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
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        # A reply grows at the bottom while it streams: it takes the height it needs at once and
        # only its new strip is painted (a reply draws no frame; the user's bubble does, so it
        # is painted whole when it changes size).
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        if role != "user":
            self.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        header = QHBoxLayout()
        who = "You" if role == "user" else ("Assistant" + (f" · {model}" if model else ""))
        # A long model name is cut short rather than making the message wider than the chat.
        self.who = ElidedLabel(who)
        self.who.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        bold = self.who.font()
        bold.setBold(True)
        self.who.setFont(bold)
        self.note = QLabel("")
        self.note.setObjectName("messageNote")
        header.addWidget(self.who)
        header.addWidget(self.note)
        header.addStretch(1)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy message")
        self.copy_button.clicked.connect(self.copy)
        header.addWidget(self.copy_button)
        self.action_button = QPushButton("Edit" if role == "user" else "Regenerate")
        self.action_button.setAccessibleName("Edit message" if role == "user"
                                             else "Regenerate reply")
        self.action_button.clicked.connect(self._action)
        header.addWidget(self.action_button)
        layout.addLayout(header)
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
        self.body = MarkdownView(dark, self, bubble=role == "user")
        layout.addWidget(self.body)
        # The passages of the user's documents the reply was given; its citations open them.
        self.sources = SourcesSection(self)
        self.body.sourceClicked.connect(self.sources.show_source)
        layout.addWidget(self.sources)
        self.editor: QPlainTextEdit | None = None
        self._edit_row: QWidget | None = None
        self.text = ""
        self.setAccessibleName("Your message" if role == "user" else "Reply")

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
        self.body.hide()
        row = QWidget()
        buttons = QHBoxLayout(row)
        buttons.setContentsMargins(0, 0, 0, 0)
        send = QPushButton("Send again")
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
        self.body.show()
