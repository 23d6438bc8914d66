"""The chat page: a conversation's messages, the model picker, and the box to type in."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QShowEvent
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFrame, QHBoxLayout, QLabel, QLayout,
                               QMenu, QPlainTextEdit, QPushButton, QScrollArea, QToolButton,
                               QVBoxLayout, QWidget)

from desktop.core.chat_records import Source
from desktop.core.chats import Conversation, Message
from desktop.core.tool_calls import Decision, ToolStep
from desktop.ui.chat_controller import ChatController, Turn
from desktop.ui.views.labels import ElidedLabel
from desktop.ui.views.message import MessageWidget
from desktop.ui.views.model_settings import ModelSettingsPanel
from desktop.ui.views.sources import DocsButton

WRITING_ELSEWHERE = ("A reply is still being written in another chat. You can send here when "
                     "it is done, or stop it (Esc).")


class Composer(QPlainTextEdit):
    """The message box: Enter sends, Shift+Enter starts a new line."""

    submitted = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if (event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self.submitted.emit()
            return
        super().keyPressEvent(event)


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
        outer = QHBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        column = QWidget()
        layout = QVBoxLayout(column)
        layout.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(column, 1)
        self.settings_panel = ModelSettingsPanel()
        self.settings_panel.setAccessibleName("Model settings")
        self.settings_panel.setFixedWidth(260)
        self.settings_panel.hide()
        outer.addWidget(self.settings_panel)

        top = QHBoxLayout()
        self.title = ElidedLabel("New chat")
        self.title.setObjectName("chatTitle")
        top.addWidget(self.title, 1)
        self.adapters_label = QLabel("")
        self.adapters_label.setObjectName("chatAdapters")
        self.adapters_label.setAccessibleName("Active adapters")
        self.adapters_label.hide()
        top.addWidget(self.adapters_label)
        self.model_picker = QComboBox()
        self.model_picker.setAccessibleName("Model")
        self.model_picker.setMinimumContentsLength(14)
        self.model_picker.activated.connect(
            lambda index: self.modelChosen.emit(self.model_picker.itemData(index)))
        top.addWidget(self.model_picker)
        # Shown for models that think: whether this chat lets them think before answering.
        self.thinking_button = QPushButton("Thinking")
        self.thinking_button.setCheckable(True)
        self.thinking_button.setChecked(True)
        self.thinking_button.setAccessibleName("Let the model think before it answers")
        self.thinking_button.setToolTip("Let the model think before it answers, in this chat "
                                        "(off: it answers at once)")
        self.thinking_button.toggled.connect(self.chat.set_thinking)
        self.thinking_button.hide()
        top.addWidget(self.thinking_button)
        self.system_button = QPushButton("System prompt")
        self.system_button.setCheckable(True)
        self.system_button.toggled.connect(self._toggle_system)
        top.addWidget(self.system_button)
        self.settings_button = QPushButton("Model settings")
        self.settings_button.setCheckable(True)
        self.settings_button.toggled.connect(self.settings_panel.setVisible)
        top.addWidget(self.settings_button)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setAccessibleName("Export conversation")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        menu.addAction("As Markdown…", lambda: self._export("md"))
        menu.addAction("As JSON…", lambda: self._export("json"))
        self.export_button.setMenu(menu)
        top.addWidget(self.export_button)
        layout.addLayout(top)

        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setPlaceholderText("How the assistant should behave in this chat")
        self.system_prompt.setMaximumHeight(80)
        self.system_prompt.hide()
        self._system_timer = QTimer(self, singleShot=True, interval=600)
        self._system_timer.timeout.connect(
            lambda: self.chat.set_system_prompt(self.system_prompt.toPlainText()))
        self.system_prompt.textChanged.connect(self._system_timer.start)
        layout.addWidget(self.system_prompt)

        self.notice = QLabel("")
        self.notice.setObjectName("chatNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        layout.addWidget(self.notice)

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
        self.list_layout.addStretch(1)
        self.scroll.setWidget(self.list_widget)
        self.empty = QLabel("Type a message below to start chatting. Everything stays on this "
                            "computer.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.list_layout.insertWidget(0, self.empty)
        layout.addWidget(self.scroll, 1)

        bottom = QHBoxLayout()
        # Which MCP servers' tools this chat may use (each call still asks first).
        self.tools_button = QToolButton()
        self.tools_button.setText("Tools")
        self.tools_button.setAccessibleName("Tools this chat may use")
        self.tools_button.setToolTip("Pick the MCP servers whose tools the model may call in "
                                     "this chat; every call asks you first")
        self.tools_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.tools_menu = QMenu(self.tools_button)
        self.tools_menu.aboutToShow.connect(self._fill_tools_menu)
        self.tools_button.setMenu(self.tools_menu)
        bottom.addWidget(self.tools_button)
        # Which document collections this chat answers from.
        self.docs_button = DocsButton(chat)
        bottom.addWidget(self.docs_button)
        self.composer = Composer()
        self.composer.setAccessibleName("Message")
        self.composer.setPlaceholderText("Message (Enter sends, Shift+Enter for a new line)")
        self.composer.setMaximumHeight(84)
        self.composer.submitted.connect(self.send)
        bottom.addWidget(self.composer, 1)
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send message")
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop reply")
        self.stop_button.clicked.connect(self.chat.stop)
        self.stop_button.hide()
        bottom.addWidget(self.send_button)
        bottom.addWidget(self.stop_button)
        layout.addLayout(bottom)
        self.setTabOrder(self.composer, self.send_button)
        self.setTabOrder(self.send_button, self.model_picker)

        chat.conversationOpened.connect(self.show_conversation)
        chat.replyStarted.connect(self._reply_started)
        chat.replyText.connect(self._reply_text)
        chat.replyThinking.connect(self._reply_thinking)
        chat.replyThought.connect(self._reply_thought)
        chat.replySteps.connect(self._reply_steps)
        chat.replySearching.connect(self._reply_searching)
        chat.replySources.connect(self._reply_sources)
        chat.toolsChanged.connect(self._tools_changed)
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

    # -- models ----------------------------------------------------------------------------------
    def set_models(self, models: list[tuple[str, str]], current: str | None) -> None:
        self.model_picker.clear()
        for model_id, label in models:
            self.model_picker.addItem(label, model_id)
        if current is not None:
            index = self.model_picker.findData(current)
            if index >= 0:
                self.model_picker.setCurrentIndex(index)

    def set_dark(self, dark: bool) -> None:
        """The theme turned dark (or light): messages from now on, and those shown, follow."""
        self.dark = dark
        for widget in self.messages:
            widget.set_dark(dark)

    def set_adapters_text(self, text: str) -> None:
        """Name the LoRA adapters that change the replies ("pirate 0.8 + sql 0.5"), or none."""
        # Elided: a long stack must not widen the window; the tooltip has all of it.
        metrics = self.adapters_label.fontMetrics()
        self.adapters_label.setText(metrics.elidedText(text, Qt.TextElideMode.ElideRight, 360))
        self.adapters_label.setToolTip(text)
        self.adapters_label.setVisible(bool(text))

    def set_model_thinks(self, thinks: bool) -> None:
        """Show the thinking switch while the model in use is one that thinks."""
        self.thinking_button.setVisible(thinks)

    # -- tools -----------------------------------------------------------------------------------
    def _fill_tools_menu(self) -> None:
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
            action.toggled.connect(lambda on, n=name: self._pick_server(n, on))
        if not configured:
            self.tools_menu.addAction("No MCP servers yet").setEnabled(False)
        self.tools_menu.addSeparator()
        self.tools_menu.addAction("Manage servers…", self.manageToolsRequested)

    def _pick_server(self, name: str, on: bool) -> None:
        picked = [n for n in self.chat.tools if n != name] + ([name] if on else [])
        self.chat.set_tools(picked)

    def _tools_changed(self, names: list[str]) -> None:
        self.tools_button.setText(f"Tools ({len(names)})" if names else "Tools")
        self.tools_button.setAccessibleName(
            f"Tools this chat may use: {', '.join(names)}" if names
            else "Tools this chat may use")

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

    def _reply_started(self, conversation: Conversation, messages: list[Message]) -> None:
        self._clear()
        self.title.setText(conversation.title)
        self._add_all(messages)
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
        self.send_button.setVisible(not busy)
        self.stop_button.setVisible(busy)
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
        self.system_prompt.setVisible(shown)

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
