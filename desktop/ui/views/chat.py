"""The chat page: the header with the model picker, a conversation's messages in a readable
column, and the message box."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QLayout,
                               QPlainTextEdit, QScrollArea, QToolButton, QVBoxLayout, QWidget)

from desktop.core.chat_records import Source
from desktop.core.chats import Conversation, Message
from desktop.core.tool_calls import Decision, ToolStep
from desktop.ui.chat_controller import ChatController, Turn
from desktop.ui.style.tokens import READABLE_WIDTH, SPACE_L, SPACE_S
from desktop.ui.views.chat_header import ChatHeader
from desktop.ui.views.composer import ComposerBox, conversation_tokens
from desktop.ui.views.message import MessageWidget
from desktop.ui.views.model_settings import ModelSettingsPanel
from desktop.ui.views.welcome import Welcome

WRITING_ELSEWHERE = ("A reply is still being written in another chat. You can send here when "
                     "it is done, or stop it (Esc).")


def centred(widget: QWidget, bottom: int = 0) -> QWidget:
    """*widget* in the middle of a row, no wider than the chat's column."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(SPACE_L, 0, SPACE_L, bottom)
    widget.setMaximumWidth(READABLE_WIDTH)
    row.addWidget(widget)
    return holder


class ChatPage(QWidget):
    """Shows one conversation and sends the user's messages through the ChatController."""

    modelChosen = Signal(str)
    manageToolsRequested = Signal()  # the user asked for the Tools page

    def __init__(self, chat: ChatController, dark: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chat = chat
        self.dark = dark
        self.messages: list[MessageWidget] = []
        self.reply: MessageWidget | None = None
        self._held: list[str] = []  # reply text that came while the chat could not be seen
        self._held_thought: list[str] = []  # and thinking
        self._held_seconds: float | None = None  # and the end of the thinking
        self._shown: list[Message] = []  # the conversation's messages, for the token count
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        # Beside the chat, in a dock the window makes (MainWindow); created here, as the app
        # reaches it through the page.
        self.settings_panel = ModelSettingsPanel()
        self.settings_panel.setAccessibleName("Model settings")

        self.header = ChatHeader()
        self.title = self.header.title
        self.adapters_label = self.header.adapters_label
        self.model_picker = self.header.model_picker
        self.model_picker.activated.connect(self._picked)
        self.system_button = self.header.system_button
        self.system_button.toggled.connect(self._toggle_system)
        self.export_button = self.header.export_button
        self.header.exportRequested.connect(self._export)
        layout.addWidget(self.header)

        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setPlaceholderText("How the assistant should behave in this chat")
        self.system_prompt.setMaximumHeight(80)
        self.system_prompt.setTabChangesFocus(True)
        self._system_timer = QTimer(self, singleShot=True, interval=600)
        self._system_timer.timeout.connect(self._system_changed)
        self.system_prompt.textChanged.connect(self._system_timer.start)
        self.system_row = centred(self.system_prompt)
        self.system_row.layout().setContentsMargins(SPACE_L, SPACE_S, SPACE_L, 0)
        self.system_row.hide()
        layout.addWidget(self.system_row)

        self.scroll = QScrollArea()
        self.scroll.setObjectName("chatScroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._opaque_scroll_bar()
        self.list_widget = QWidget()
        # Messages only grow at the bottom: when the list grows, only the new strip is painted,
        # and it is resized at once to fit, never laid out squeezed first (which would move, and
        # so repaint, every message shown).
        self.list_widget.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        self.list_layout = QVBoxLayout(self.list_widget)
        self.list_layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        self.list_layout.setSpacing(SPACE_L)
        self.list_layout.addStretch(1)
        self.scroll.setWidget(self.list_widget)
        self.empty = Welcome()
        self.empty.promptChosen.connect(self.send_prompt)
        self.list_layout.insertWidget(0, self.empty)
        # The column of messages stays READABLE_WIDTH wide at most, in the middle.
        self.scroll.viewport().installEventFilter(self)
        layout.addWidget(self.scroll, 1)

        bottom = QWidget()
        column = QVBoxLayout(bottom)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(SPACE_S)
        self.notice = QLabel("")
        self.notice.setObjectName("chatNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        column.addWidget(self.notice)
        self.composer_box = ComposerBox(chat)
        column.addWidget(self.composer_box)
        layout.addWidget(centred(bottom, SPACE_L))
        self.composer = self.composer_box.composer
        self.composer.submitted.connect(self.send)
        self.send_button = self.composer_box.send_button
        self.send_button.clicked.connect(self._send_or_stop)
        self.tools_button = self.composer_box.tools_button
        self.tools_menu = self.tools_button.tools_menu
        self.tools_button.manageRequested.connect(self.manageToolsRequested)
        self.docs_button = self.composer_box.docs_button
        self.thinking_button = self.composer_box.thinking_button
        self.thinking_button.toggled.connect(self.chat.set_thinking)

        chat.conversationOpened.connect(self.show_conversation)
        chat.replyStarted.connect(self._reply_started)
        chat.replyText.connect(self._reply_text)
        chat.replyThinking.connect(self._reply_thinking)
        chat.replyThought.connect(self._reply_thought)
        chat.replySteps.connect(self._reply_steps)
        chat.replySearching.connect(self._reply_searching)
        chat.replySources.connect(self._reply_sources)
        chat.toolNote.connect(self._tool_note)
        chat.replyFinished.connect(self._reply_finished)
        chat.replyFailed.connect(self._reply_failed)
        chat.contextTrimmed.connect(self._context_trimmed)
        chat.busyChanged.connect(self._busy)
        self.scroll.verticalScrollBar().rangeChanged.connect(self._follow)
        self._at_bottom = True
        self._follow_timer = QTimer(self, singleShot=True, interval=0)
        self._follow_timer.timeout.connect(self._scroll_to_end)
        self.scroll.verticalScrollBar().valueChanged.connect(self._track_bottom)
        self._show_model_state()

    @property
    def settings_button(self) -> QToolButton:
        """The header's button for the model settings panel (once the window has made it)."""
        return self.header.panel_buttons["Model settings"]

    def add_panel_button(self, name: str, action: Any, icon_name: str) -> QToolButton:
        """A header button that opens and closes the side panel *name* (see ChatHeader)."""
        return self.header.add_panel_button(name, action, icon_name)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_column()
        return super().eventFilter(watched, event)

    def _fit_column(self) -> None:
        """Centre the messages in a column at most READABLE_WIDTH wide; the welcome fills the
        height shown, so that it sits in the middle."""
        viewport = self.scroll.viewport()
        side = max(SPACE_L, (viewport.width() - READABLE_WIDTH) // 2)
        margins = self.list_layout.contentsMargins()
        if (margins.left(), margins.right()) != (side, side):
            self.list_layout.setContentsMargins(side, SPACE_L, side, SPACE_L)
        self.empty.setMinimumHeight(max(0, viewport.height() - 2 * SPACE_L))

    def column_width(self) -> int:
        """How wide the messages' column is now."""
        margins = self.list_layout.contentsMargins()
        return self.list_widget.width() - margins.left() - margins.right()

    # -- models ----------------------------------------------------------------------------------
    def set_models(self, models: list[tuple[str, str]], current: str | None) -> None:
        self.model_picker.set_models(models, current)
        self._show_model_state()

    def _picked(self, index: int) -> None:
        self.model_picker.picked(index)
        self.modelChosen.emit(self.model_picker.itemData(index))

    def set_engine_state(self, state: str) -> None:
        """The engine is starting, ready, restarting or stopped."""
        self.model_picker.set_engine_state(state)
        self._show_model_state()

    def set_engine_status(self, status: dict[str, Any]) -> None:
        """The engine's latest status: which model it has loaded, the memory it takes."""
        self.model_picker.set_status(status)
        self._show_model_state()

    def _show_model_state(self) -> None:
        self.model_picker.set_remote(self.chat.engine.remote is not None)
        self.composer_box.set_context(self.chat.engine.context_for(self.chat.model))

    def set_dark(self, dark: bool) -> None:
        """The theme turned dark (or light): messages from now on, and those shown, follow."""
        self.dark = dark
        for widget in self.messages:
            widget.set_dark(dark)

    def set_adapters_text(self, text: str) -> None:
        """Name the LoRA adapters that change the replies ("pirate 0.8 + sql 0.5"), or none."""
        self.header.set_adapters_text(text)

    def set_model_thinks(self, thinks: bool) -> None:
        """Show the thinking switch while the model in use is one that thinks."""
        self.thinking_button.setVisible(thinks)

    # -- tools and documents ----------------------------------------------------------------
    def _tool_note(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.show()

    def _reply_steps(self, steps: list[ToolStep]) -> None:
        """The reply's tool calls changed. The text that came before belongs to the round
        they end, which the steps hold whole; what follows is the next round's."""
        if self.reply is not None:
            if len(steps) != len(self.reply.steps):
                self._held.clear()
            self.reply.set_steps(steps)

    def _reply_searching(self, names: list[str]) -> None:
        if self.reply is not None:
            self.reply.note.setText(f"Searching {', '.join(names)}…")

    def _reply_sources(self, reply_id: int, sources: tuple[Source, ...]) -> None:
        if self.reply is not None and self.reply.message_id == reply_id:
            self.reply.set_sources(sources)
            self.reply.set_state("streaming")

    def _decide(self, call_id: str, decision: str) -> None:
        self.chat.decide(call_id, Decision(decision))

    # -- showing a conversation ------------------------------------------------------------------
    def show_conversation(self, conversation: Conversation | None,
                          messages: list[Message]) -> None:
        self._clear()
        self.notice.hide()
        self.title.setText(conversation.title if conversation else "New chat")
        self.system_prompt.blockSignals(True)
        self.system_prompt.setPlainText(conversation.system_prompt if conversation else "")
        self.system_prompt.blockSignals(False)
        self.thinking_button.blockSignals(True)
        self.thinking_button.setChecked(self.chat.thinking)
        self.thinking_button.blockSignals(False)
        self._add_all(messages)
        self._count(messages)
        turn = self.chat.turn
        if turn is not None and conversation is not None \
                and turn.conversation_id == conversation.id:
            self._follow_reply(turn)
        elif turn is not None:
            self.notice.setText(WRITING_ELSEWHERE)
            self.notice.show()
        self.composer.setFocus()

    def _follow_reply(self, turn: Turn) -> None:
        """Back in the conversation whose reply is being written: show it live again, with
        everything it has said so far (the saved copy may be up to a second behind)."""
        self.reply = next((w for w in self.messages if w.message_id == turn.reply_id), None)
        self._clear_held()
        if self.reply is not None:
            self.reply.set_steps(turn.steps_taken)
            self.reply.set_text(turn.taken)
            if turn.thought_taken:
                self.reply.thinking.set_text(turn.thought_taken, turn.thought_seconds)
                if turn.thought_seconds is None:
                    self.reply.thinking.start()
            self._at_bottom = True

    def _clear(self) -> None:
        for widget in self.messages:
            self.list_layout.removeWidget(widget)
            widget.deleteLater()
        self.messages.clear()
        self._shown = []
        self.reply = None
        self._clear_held()
        self.empty.show()

    def _clear_held(self) -> None:
        self._held.clear()
        self._held_thought.clear()
        self._held_seconds = None

    def _add_all(self, messages: list[Message]) -> None:
        last_user: int | None = None
        for message in messages:
            if message.role == "system":
                continue
            widget = MessageWidget.from_message(message, self.dark)
            if message.role == "user":
                last_user = message.id
            else:
                widget.answers_id = last_user
            self._add_widget(widget)

    def _add_widget(self, widget: MessageWidget) -> None:
        self.empty.hide()
        widget.editSubmitted.connect(self.chat.edit_and_resend)
        widget.regenerateRequested.connect(self.chat.regenerate)
        widget.callDecided.connect(self._decide)
        self.list_layout.insertWidget(self.list_layout.count() - 1, widget)
        self.messages.append(widget)
        widget.set_actions_enabled(not self.chat.busy)

    # -- sending ---------------------------------------------------------------------------------
    def send(self) -> None:
        text = self.composer.toPlainText()
        if self.chat.send(text, self.system_prompt.toPlainText()):
            self.composer.clear()

    def send_prompt(self, text: str) -> None:
        """Send one of the welcome's example prompts, as if it had been typed."""
        self.composer.setPlainText(text)
        self.send()

    def _send_or_stop(self) -> None:
        if self.chat.busy:
            self.chat.stop()
        else:
            self.send()

    def _count(self, messages: list[Message]) -> None:
        """Count the tokens of the conversation shown again (when it changes, not as a reply
        streams)."""
        self._shown = list(messages)
        self.composer_box.set_history(
            conversation_tokens(messages, self.system_prompt.toPlainText()))

    def _system_changed(self) -> None:
        self.chat.set_system_prompt(self.system_prompt.toPlainText())
        self._count(self._shown)

    def _reply_started(self, conversation: Conversation, messages: list[Message]) -> None:
        self._clear()
        self.title.setText(conversation.title)
        self._add_all(messages)
        self._count(messages)
        self.reply = self.messages[-1] if self.messages else None
        self._at_bottom = True

    def _reply_text(self, text: str) -> None:
        """Show new text of the streaming reply, or keep it while nobody can see the chat.

        Laying out and painting a reply costs the GUI thread, and on a machine where llama.cpp
        has a thread on every core, whatever the window spends is taken from decoding. While
        another page is shown or the window is minimized the text waits here, and it is shown
        at once when the chat is seen again.
        """
        if self.reply is not None:
            self._held.append(text)
            self.show_held()

    def _reply_thinking(self, text: str) -> None:
        if self.reply is not None:
            self._held_thought.append(text)
            self.show_held()

    def _reply_thought(self, seconds: float) -> None:
        if self.reply is not None:
            self._held_seconds = seconds
            self.show_held()

    def show_held(self) -> None:
        """Show the reply's text (and thinking) that waited, if the chat can be seen now."""
        if (self.reply is None or not self.isVisible() or self.window().isMinimized()
                or not (self._held or self._held_thought or self._held_seconds is not None)):
            return
        thought, text = "".join(self._held_thought), "".join(self._held)
        seconds, self._held_seconds = self._held_seconds, None
        self._held.clear()
        self._held_thought.clear()
        if thought:
            self.reply.append_thinking(thought)
        if seconds is not None:
            self.reply.thought(seconds)
        if text:
            self.reply.append(text)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.show_held()

    def _reply_finished(self, message: Message) -> None:
        if self.reply is not None and self.reply.message_id == message.id:
            self.reply.set_steps(list(message.tool_steps))
            self.reply.set_text(message.content)
            section = self.reply.thinking
            if message.thinking and (section.thinking or not section.text):
                section.set_text(message.thinking, message.thought_seconds)
            self.reply.set_state(message.state, message.error)
        if any(m.id == message.id for m in self._shown):
            self._count([message if m.id == message.id else m for m in self._shown])
        self.reply = None
        self._clear_held()

    def _reply_failed(self, reason: str) -> None:
        self.notice.setText(reason)
        self.notice.show()

    def _context_trimmed(self, count: int) -> None:
        self.notice.setText(f"This conversation is longer than the model's context, so the "
                            f"{count} oldest messages were left out of the last prompt. The "
                            "system prompt was kept.")
        self.notice.show()

    def _busy(self, busy: bool) -> None:
        self.composer_box.set_streaming(busy)
        for widget in self.messages:
            widget.set_actions_enabled(not busy)
        if not busy:
            if self.notice.text() == WRITING_ELSEWHERE:
                self.notice.hide()
            self.composer.setFocus()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.StyleChange:
            # A new style sheet polishes the scroll bar again, which drops the attribute.
            QTimer.singleShot(0, self, self._opaque_scroll_bar)

    def _opaque_scroll_bar(self) -> None:
        """The scroll bar changes with every new line of a streaming reply. It paints all of
        itself (a flat background in the style sheet), so repainting it must not repaint the
        page and the window beneath it."""
        self.scroll.verticalScrollBar().setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def _track_bottom(self, value: int) -> None:
        self._at_bottom = value >= self.scroll.verticalScrollBar().maximum() - 4

    def _follow(self, _minimum: int, _maximum: int) -> None:
        if self._at_bottom:
            self._follow_timer.start()

    def _scroll_to_end(self) -> None:
        """Keep the end of the conversation in view as it grows.

        What changed is painted first: Qt scrolls a window with nothing left to paint by
        moving its pixels, but repaints everything shown when part of it is waiting to be
        painted, and that is every message on screen, once per new line of a reply.
        """
        if not self._at_bottom:
            return
        QCoreApplication.sendPostedEvents(self.window(), QEvent.Type.UpdateRequest)
        bar = self.scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _toggle_system(self, shown: bool) -> None:
        self.system_row.setVisible(shown)
        if shown:
            self.system_prompt.setFocus()

    def _export(self, kind: str) -> None:
        conversation = self.chat.conversation
        if conversation is None:
            return
        suffix = "Markdown (*.md)" if kind == "md" else "JSON (*.json)"
        path, _ = QFileDialog.getSaveFileName(self, "Export conversation",
                                              f"{conversation.title}.{kind}", suffix)
        if path:
            self.export_to(path, kind)

    def export_to(self, path: str, kind: str) -> None:
        conversation = self.chat.conversation
        if conversation is None:
            return
        store = self.chat.store
        cid = conversation.id

        def write() -> None:
            text = store.export_markdown(cid) if kind == "md" else store.export_json(cid)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)

        self.chat.workers.submit(write, serial=True)

    def state(self) -> dict[str, Any]:
        """What the page shows, for tests and screenshots."""
        return {"messages": [(w.role, w.text) for w in self.messages],
                "busy": self.chat.busy, "notice": self.notice.text()}
