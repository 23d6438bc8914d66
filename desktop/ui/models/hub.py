"""The explore tab's tables: model repos a hub search found, and the GGUF files of one repo."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.core.downloads import format_bytes
from desktop.core.hub import GgufFile, HubModel

RepoRole = Qt.ItemDataRole.UserRole + 1
FileRole = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


class _Table(QAbstractTableModel):
    """A read-only table of plain rows with fixed column names."""

    columns: tuple[str, ...] = ()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def _set_rows(self, rows: list[Any]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def _cell(self, row: Any, column: int) -> str:
        raise NotImplementedError

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(self.columns)):
            return self.columns[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return self._cell(row, index.column())
        return self._extra(row, role)

    def _extra(self, row: Any, role: int) -> Any:
        return None


class HubResultsModel(_Table):
    """Model repos found by a search, in the hub's order (most downloaded or liked first)."""

    columns = ("Repository", "Downloads", "Likes", "Access")

    def set_results(self, models: list[HubModel]) -> None:
        self._set_rows(models)

    def repo(self, row: int) -> HubModel | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def _cell(self, row: HubModel, column: int) -> str:
        if column == 0:
            return row.repo_id
        if column == 1:
            return f"{row.downloads:,}"
        if column == 2:
            return f"{row.likes:,}"
        if column == 3:
            return "gated: needs a token" if row.gated else "open"
        return ""

    def _extra(self, row: HubModel, role: int) -> Any:
        if role == RepoRole:
            return row
        if role == Qt.ItemDataRole.ToolTipRole:
            return ", ".join(row.tags)
        return None


class GgufFilesModel(_Table):
    """The GGUF models in one repo; the shards of a split model are one row."""

    columns = ("File", "Quantization", "Size", "Parts", "")
    ACTIONS_COLUMN = 4  # the Download button sits over this column

    def set_files(self, files: list[GgufFile]) -> None:
        self._set_rows(files)

    def file(self, row: int) -> GgufFile | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def _cell(self, row: GgufFile, column: int) -> str:
        if column == 0:
            return row.filename + (" (vision projector)" if row.is_projector else "")
        if column == 1:
            return row.quantization or "unknown"
        if column == 2:
            size = row.size_bytes
            return format_bytes(size) if size is not None else "unknown"
        if column == 3:
            return str(row.shards)
        return ""

    def _extra(self, row: GgufFile, role: int) -> Any:
        if role == FileRole:
            return row
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(f.filename for f in row.files)
        return None
