"""The chat's message box: one rounded box with the text; under it the tools, documents and
thinking buttons, a count of the tokens the conversation takes of the model's context, and the
send button, which turns into Stop while a reply is written. Where the box is narrow, the
buttons show only their icons (their tooltips and accessible names still say what they are).

The count is an estimate made on the GUI thread from lengths alone (no tokenizer): the tokens
the engine counted for the conversation's last reply where it has them, and about one token for
every four characters of the rest and of what is being typed. It is worked out again a moment
after the typing stops, never for each key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QMenu, QPlainTextEdit, QSizePolicy,
                               QToolButton, QVBoxLayout, QWidget)

from desktop.core.chats import Message
from desktop.ui.chat_controller import ChatController
from desktop.ui.style import icon, type_font
from desktop.ui.style.tokens import ICON_S, SPACE_M, SPACE_S, SPACE_XS, TYPE_CAPTION
from desktop.ui.views.labels import CompactButton
from desktop.ui.views.sources import DocsButton

CHARS_PER_TOKEN = 4  # English prose, in the tokenizers of the usual small models
MESSAGE_TOKENS = 4  # what the chat template adds around each message
COUNT_DELAY_MS = 150  # after the last key, the count is made again
MAX_LINES = 8  # the box grows with the text up to this many lines, then scrolls
SEND_SIZE = 32


def estimate_tokens(characters: int) -> int:
    """About how many tokens a text of *characters* characters takes."""
    return math.ceil(max(0, characters) / CHARS_PER_TOKEN)


def conversation_tokens(messages: Sequence[Message], system_prompt: str = "") -> int:
    """About how many tokens of context *messages* take when the next one is sent.

    The engine's own count is used where it is known: the last reply that has its prompt and
    completion counted covers everything up to it; the messages after it are estimated.
    """
    shown = [m for m in messages if m.role != "system"]
    start, total = 0, 0
    for index in range(len(shown) - 1, -1, -1):
        message = shown[index]
        if (message.role == "assistant" and message.prompt_tokens
                and message.completion_tokens is not None):
            total = message.prompt_tokens + message.completion_tokens
            start = index + 1
            break
    else:
        if system_prompt.strip():
            total = estimate_tokens(len(system_prompt)) + MESSAGE_TOKENS
    for message in shown[start:]:
        total += estimate_tokens(len(message.content)) + MESSAGE_TOKENS
    return total


def count_text(tokens: int, context: int | None) -> str:
    """The count as shown: "123 / 4,096 tokens", or "123 tokens" while the context is unknown."""
    if context:
        return f"{tokens:,} / {context:,} tokens"
    return f"{tokens:,} tokens"


class Composer(QPlainTextEdit):
    """The text of the message: Enter sends, Shift+Enter starts a new line, Tab moves on."""

    submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if (event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self.submitted.emit()
            return
        super().keyPressEvent(event)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit()

    def _fit(self, *_: object) -> None:
        """As tall as its lines, from two up to MAX_LINES (a QPlainTextEdit's document counts
        its size in lines); it scrolls beyond that."""
        lines = max(2, min(MAX_LINES, math.ceil(self.document().size().height())))
        margins = self.contentsMargins()
        height = (lines * self.fontMetrics().lineSpacing()
                  + 2 * round(self.document().documentMargin()) + margins.top()
                  + margins.bottom())
        if height != self.maximumHeight():
            self.setFixedHeight(height)


class SendButton(QToolButton):
    """The round button in the box: Send, or Stop while a reply is written."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sendButton")
        self.setFixedSize(SEND_SIZE, SEND_SIZE)
        self.setIconSize(QSize(ICON_S + 2, ICON_S + 2))
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.streaming = False
        self.set_streaming(False)

    def set_streaming(self, streaming: bool) -> None:
        self.streaming = streaming
        if streaming:
            self.setIcon(icon("square", "on_accent"))
            self.setAccessibleName("Stop reply")
            self.setToolTip("Stop the reply (Esc)")
        else:
            self.setIcon(icon("arrow-up", "on_accent"))
            self.setAccessibleName("Send message")
            self.setToolTip("Send (Enter)")


class ToolsButton(CompactButton):
    """Which MCP servers' tools the chat may use (each call still asks first)."""

    manageRequested = Signal()  # the user asked for the Tools page

    def __init__(self, chat: ChatController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chat = chat
        self.setIcon(icon("wrench", "text_muted"))
        self.setToolTip("Pick the MCP servers whose tools the model may call in this chat; "
                        "every call asks you first")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.tools_menu = QMenu(self)
        self.tools_menu.aboutToShow.connect(self.fill_menu)
        self.setMenu(self.tools_menu)
        chat.toolsChanged.connect(self._changed)
        self._changed([])

    def fill_menu(self) -> None:
        """The configured servers, each checkable; those switched off cannot be picked."""
        self.tools_menu.clear()
        servers = self.chat.tool_servers
        configured = servers.config.servers if servers is not None else {}
        for name, server in configured.items():
            label = name if server.enabled else f"{name} (switched off)"
            action = self.tools_menu.addAction(label)
            action.setCheckable(True)
            action.setChecked(name in self.chat.tools)
            action.setEnabled(server.enabled)
            action.toggled.connect(lambda on, n=name: self._pick(n, on))
        if not configured:
            self.tools_menu.addAction("No MCP servers yet").setEnabled(False)
        self.tools_menu.addSeparator()
        self.tools_menu.addAction("Manage servers…", self.manageRequested)

    def _pick(self, name: str, on: bool) -> None:
        picked = [n for n in self.chat.tools if n != name] + ([name] if on else [])
        self.chat.set_tools(picked)

    def _changed(self, names: list[str]) -> None:
        self.setText(f"Tools ({len(names)})" if names else "Tools")
        self.setAccessibleName(f"Tools this chat may use: {', '.join(names)}" if names
                               else "Tools this chat may use")


class ComposerBox(QFrame):
    """The rounded box: the text on top; under it the tools and documents buttons, the token
    count and the send button. Its border shows the focus ring while the text has the focus."""

    def __init__(self, chat: ChatController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composerBox")
        self.setProperty("focused", False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(SPACE_M, SPACE_S + 2, SPACE_S, SPACE_S)
        layout.setSpacing(SPACE_XS)
        self.composer = Composer()
        self.composer.setAccessibleName("Message")
        self.composer.setPlaceholderText("Message the model (Shift+Enter for a new line)")
        self.composer.installEventFilter(self)
        layout.addWidget(self.composer)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(SPACE_XS)
        self.tools_button = ToolsButton(chat)
        self.docs_button = DocsButton(chat)
        # Shown for models that think: whether this chat lets them think before answering.
        self.thinking_button = CompactButton()
        self.thinking_button.setIcon(icon("brain", "text_muted"))
        self.thinking_button.setText("Thinking")
        self.thinking_button.setAccessibleName("Let the model think before it answers")
        self.thinking_button.setToolTip("Let the model think before it answers, in this chat "
                                        "(off: it answers at once)")
        self.thinking_button.setCheckable(True)
        self.thinking_button.setChecked(True)
        self.thinking_button.hide()
        for button in (self.tools_button, self.docs_button, self.thinking_button):
            button.setAutoRaise(True)
            button.setProperty("chatTool", True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setIconSize(QSize(ICON_S, ICON_S))
            button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            row.addWidget(button)
        row.addStretch(1)
        self.token_count = QLabel("")
        self.token_count.setObjectName("tokenCount")
        self.token_count.setFont(type_font(TYPE_CAPTION, self.font()))
        self.token_count.setAccessibleName("Tokens of the context")
        row.addWidget(self.token_count)
        row.addSpacing(SPACE_XS)
        self.send_button = SendButton()
        row.addWidget(self.send_button)
        layout.addLayout(row)
        self.setTabOrder(self.composer, self.tools_button)
        self.setTabOrder(self.tools_button, self.docs_button)
        self.setTabOrder(self.docs_button, self.thinking_button)
        self.setTabOrder(self.thinking_button, self.send_button)

        self.history_tokens = 0  # the conversation's, before what is typed
        self.context: int | None = None
        self._count_timer = QTimer(self, singleShot=True, interval=COUNT_DELAY_MS)
        self._count_timer.timeout.connect(self.update_count)
        self.composer.textChanged.connect(self._typed)
        self.set_streaming(False)
        self.update_count()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.composer and event.type() in (QEvent.Type.FocusIn,
                                                         QEvent.Type.FocusOut):
            self.setProperty("focused", event.type() == QEvent.Type.FocusIn)
            self.style().unpolish(self)
            self.style().polish(self)
        return super().eventFilter(watched, event)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # the app's font size changed
            self.token_count.setFont(type_font(TYPE_CAPTION, self.font()))

    def _typed(self) -> None:
        self._count_timer.start()
        if not self.send_button.streaming:
            self.send_button.setEnabled(not self.composer.document().isEmpty())

    def set_streaming(self, streaming: bool) -> None:
        """A reply is being written (the button stops it), or not (it sends)."""
        self.send_button.set_streaming(streaming)
        self.send_button.setEnabled(streaming or not self.composer.document().isEmpty())

    def set_history(self, tokens: int) -> None:
        """The conversation so far takes about *tokens* tokens."""
        self.history_tokens = tokens
        self.update_count()

    def set_context(self, context: int | None) -> None:
        """The model's context per reply, in tokens (None: not known yet)."""
        if context != self.context:
            self.context = context
            self.update_count()

    def typed_tokens(self) -> int:
        # characterCount() counts the document's closing paragraph mark too.
        characters = self.composer.document().characterCount() - 1
        return estimate_tokens(characters) + (MESSAGE_TOKENS if characters else 0)

    def update_count(self) -> None:
        self._count_timer.stop()
        tokens = self.history_tokens + self.typed_tokens()
        self.token_count.setText(count_text(tokens, self.context))
        over = bool(self.context) and tokens > (self.context or 0)
        self.token_count.setToolTip(
            "About how many tokens of the model's context the conversation and your message "
            "take (estimated from their length)."
            + (" The oldest messages will be left out of the prompt." if over else ""))
        if self.token_count.property("problem") != over:
            self.token_count.setProperty("problem", over)
            self.token_count.style().unpolish(self.token_count)
            self.token_count.style().polish(self.token_count)
