"""The server page's log of recent API requests."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex
COLUMNS = ("Time", "Route", "Status", "Duration", "Tokens")


class RequestLogModel(QAbstractTableModel):
    """Newest request first."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[dict[str, Any]] = []

    def set_requests(self, requests: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = list(reversed(requests))
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(COLUMNS)):
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        if not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        column = index.column()
        if column == 0:
            return time.strftime("%H:%M:%S", time.localtime(row.get("time", 0)))
        if column == 1:
            return f"{row.get('method', '')} {row.get('route', '')}"
        if column == 2:
            return str(row.get("status", ""))
        if column == 3:
            return f"{row.get('duration_ms', 0):.0f} ms"
        if column == 4:
            tokens = row.get("tokens")
            return "" if tokens is None else str(tokens)
        return None
