"""The sidebar's list: conversations grouped by date, with a header row for each group."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QFont

from desktop.core.chats import Conversation, ConversationEntry

ConversationRole = Qt.ItemDataRole.UserRole + 1
IsHeaderRole = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


class ConversationListModel(QAbstractListModel):
    """Rows are group headers ("Today", …) and conversations, newest first."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[str, Conversation | None]] = []

    def set_entries(self, entries: list[ConversationEntry]) -> None:
        rows: list[tuple[str, Conversation | None]] = []
        group = None
        for entry in entries:
            if entry.group != group:
                group = entry.group
                rows.append((group, None))
            rows.append((entry.conversation.title, entry.conversation))
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        text, conversation = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole,
                    Qt.ItemDataRole.AccessibleTextRole):
            return text
        if role == ConversationRole:
            return conversation
        if role == IsHeaderRole:
            return conversation is None
        if role == Qt.ItemDataRole.FontRole and conversation is None:
            font = QFont()
            font.setBold(True)
            font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
            return font
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        if self._rows[index.row()][1] is None:
            return Qt.ItemFlag.ItemIsEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def row_of(self, conversation_id: int) -> int:
        for row, (_, conversation) in enumerate(self._rows):
            if conversation is not None and conversation.id == conversation_id:
                return row
        return -1
