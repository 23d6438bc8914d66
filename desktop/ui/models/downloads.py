"""The downloads tab's list: every download since NoMoat started, with its latest event."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.core.downloads import DownloadEvent, State

EventRole = Qt.ItemDataRole.UserRole + 1
KeyRole = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


def download_label(key: str) -> str:
    """'owner/repo/Model.Q4_K_M.gguf' -> 'Model.Q4_K_M.gguf (owner/repo)'."""
    parts = key.split("/", 2)
    if len(parts) < 3:
        return key
    return f"{parts[2]} ({parts[0]}/{parts[1]})"


class DownloadListModel(QAbstractListModel):
    """One row per download; a new event for a known download updates its row."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._events: list[DownloadEvent] = []

    def update(self, event: DownloadEvent) -> None:
        row = self.row_of(event.key)
        if row < 0:
            self.beginInsertRows(QModelIndex(), len(self._events), len(self._events))
            self._events.append(event)
            self.endInsertRows()
            return
        self._events[row] = event
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def remove_finished(self) -> None:
        """Forget downloads that are done or cancelled (failed ones stay: they can be retried)."""
        for row in reversed(range(len(self._events))):
            if self._events[row].state in (State.DONE, State.CANCELLED):
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._events[row]
                self.endRemoveRows()

    def row_of(self, key: str) -> int:
        return next((row for row, e in enumerate(self._events) if e.key == key), -1)

    def event_at(self, row: int) -> DownloadEvent | None:
        return self._events[row] if 0 <= row < len(self._events) else None

    # -- Qt ------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._events)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._events):
            return None
        event = self._events[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return download_label(event.key)
        if role == Qt.ItemDataRole.ToolTipRole:
            return event.message or event.state.value
        if role == EventRole:
            return event
        if role == KeyRole:
            return event.key
        return None
