"""The list of conversations: new, search, rename, delete."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import (QInputDialog, QLineEdit, QListView, QMenu, QMessageBox,
                               QPushButton, QVBoxLayout, QWidget)

from desktop.core.chats import ConversationEntry, SearchHit, date_group
from desktop.ui.chat_controller import ChatController
from desktop.ui.models.conversations import ConversationListModel, ConversationRole
from desktop.ui.style import icon
from desktop.ui.style.tokens import SPACE_S


class Sidebar(QWidget):
    """Conversations grouped by date; the search box filters them by title and content."""

    conversationChosen = Signal(int)

    def __init__(self, chat: ChatController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chat = chat
        self.setObjectName("sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)  # the theme's panel colour
        layout = QVBoxLayout(self)
        layout.setContentsMargins(SPACE_S, SPACE_S, SPACE_S, SPACE_S)
        layout.setSpacing(SPACE_S)
        self.new_button = QPushButton(icon("square-pen"), "New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("New chat (Ctrl+N)")
        self.new_button.clicked.connect(chat.new_conversation)
        layout.addWidget(self.new_button)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setAccessibleName("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(icon("search", "text_muted"),
                              QLineEdit.ActionPosition.LeadingPosition)
        self._search_timer = QTimer(self, singleShot=True, interval=200)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(self._search_timer.start)
        layout.addWidget(self.search)
        self.model = ConversationListModel(self)
        self.view = QListView()
        self.view.setAccessibleName("Conversations")
        self.view.setModel(self.model)
        # Long titles end in "…" (the tooltip has them whole); the list never scrolls sideways.
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.activated.connect(self._activated)
        self.view.clicked.connect(self._activated)
        layout.addWidget(self.view, 1)
        chat.conversationsChanged.connect(self.refresh)

    def refresh(self) -> None:
        text = self.search.text().strip()
        store = self.chat.store

        def load() -> list[ConversationEntry]:
            if not text:
                return store.list_conversations()
            hits: list[SearchHit] = store.search(text)
            return [ConversationEntry(hit.conversation, date_group(hit.conversation.updated))
                    for hit in hits]

        self.chat.workers.submit(load, on_done=self._show, serial=True)

    def _show(self, entries: list[ConversationEntry]) -> None:
        self.model.set_entries(entries)
        current = self.chat.conversation
        if current is not None:
            row = self.model.row_of(current.id)
            if row >= 0:
                self.view.setCurrentIndex(self.model.index(row))

    def _activated(self, index: QModelIndex) -> None:
        conversation = index.data(ConversationRole)
        if conversation is not None:
            self.chat.open_conversation(conversation.id)
            self.conversationChosen.emit(conversation.id)

    def _menu(self, pos: QPoint) -> None:
        conversation = self.view.indexAt(pos).data(ConversationRole)
        if conversation is None:
            return
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.rename(conversation.id, conversation.title))
        menu.addAction("Delete…", lambda: self.delete(conversation.id, conversation.title))
        menu.exec(self.view.viewport().mapToGlobal(pos))

    def rename(self, conversation_id: int, title: str) -> None:
        new, ok = QInputDialog.getText(self, "Rename chat", "Name:", text=title)
        if ok and new.strip():
            self.chat.rename(conversation_id, new.strip())

    def delete(self, conversation_id: int, title: str) -> None:
        answer = QMessageBox.question(self, "Delete chat",
                                      f"Delete “{title}” and all its messages?")
        if answer == QMessageBox.StandardButton.Yes and not self.chat.delete(conversation_id):
            QMessageBox.information(self, "Delete chat", f"A reply is still being written in "
                                    f"“{title}”. Stop it (Esc) or let it finish, then delete "
                                    "the chat.")
