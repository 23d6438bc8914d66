"""Thin Qt models over the adapter library, the saved presets and the compare votes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from desktop.core.compare import PairTally
from desktop.core.downloads import format_bytes
from desktop.core.presets import Preset

Index = QModelIndex | QPersistentModelIndex
NameRole = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class AdapterRow:
    """One library adapter as the panel shows it.

    ``fit`` is why the adapter does not fit the loaded model (None when it fits, or when no
    model is loaded); ``in_stack`` says whether it is in the adapter stack now.
    """

    name: str
    architecture: str
    rank: int | None
    alpha: float | None
    targets: str
    size_bytes: int
    base_model: str | None
    source: str | None
    problem: str | None = None
    fit: str | None = None
    in_stack: bool = False

    @property
    def usable(self) -> bool:
        return self.problem is None and self.fit is None

    @property
    def status(self) -> str:
        if self.problem is not None:
            return f"Cannot be used: {self.problem}"
        if self.fit is not None:
            return f"Does not fit the loaded model: {self.fit}"
        return "In use" if self.in_stack else "Ready"

    def details(self) -> str:
        """Every fact about the adapter, in lines, for the panel's details box."""
        lines = [self.name]
        if self.architecture:
            alpha = "unknown" if self.alpha is None else f"{self.alpha:g}"
            lines.append(f"Made for {self.architecture} models · rank {self.rank} · "
                         f"alpha {alpha} · {format_bytes(self.size_bytes)}")
        if self.targets:
            lines.append(f"Changes {self.targets}")
        if self.base_model:
            lines.append(f"Base model: {self.base_model}")
        if self.source:
            lines.append(f"From {self.source}")
        lines.append(self.status)
        return "\n".join(lines)


ADAPTER_COLUMNS = ("Name", "Status", "Architecture", "Rank", "Alpha", "Targets", "Size",
                   "Base model")
NAME_COLUMN = 0
STATUS_COLUMN = 1


class AdapterTableModel(QAbstractTableModel):
    """The library's adapters, by name. The name cell is editable: editing it asks to rename."""

    #: (old name, new name): the user edited a name; the library is renamed elsewhere
    renameRequested = Signal(str, str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[AdapterRow] = []

    def set_rows(self, rows: list[AdapterRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[AdapterRow]:
        return list(self._rows)

    def row_of(self, name: str) -> int:
        return next((i for i, row in enumerate(self._rows) if row.name == name), -1)

    def adapter(self, row: int) -> AdapterRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(ADAPTER_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(ADAPTER_COLUMNS)):
            return ADAPTER_COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and index.column() == NAME_COLUMN:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return self._cell(row, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.details()
        if role == NameRole:
            return row.name
        return None

    def setData(self, index: Index, value: Any,
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        if (role != Qt.ItemDataRole.EditRole or not index.isValid()
                or index.column() != NAME_COLUMN or not 0 <= index.row() < len(self._rows)):
            return False
        old, new = self._rows[index.row()].name, str(value).strip()
        if not new or new == old:
            return False
        self.renameRequested.emit(old, new)
        return True

    @staticmethod
    def _cell(row: AdapterRow, column: int) -> str:
        name = ADAPTER_COLUMNS[column] if 0 <= column < len(ADAPTER_COLUMNS) else ""
        if name == "Name":
            return row.name
        if name == "Status":
            return row.status
        if name == "Architecture":
            return row.architecture
        if name == "Rank":
            return "" if row.rank is None else str(row.rank)
        if name == "Alpha":
            return "" if row.alpha is None else f"{row.alpha:g}"
        if name == "Targets":
            return row.targets
        if name == "Size":
            return format_bytes(row.size_bytes)
        if name == "Base model":
            return row.base_model or ""
        return ""


class PresetListModel(QAbstractListModel):
    """Saved presets: "duo: pirate 0.8 + sql 0.5"; NameRole gives the preset's name."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._presets: list[Preset] = []

    def set_presets(self, presets: list[Preset]) -> None:
        self.beginResetModel()
        self._presets = list(presets)
        self.endResetModel()

    def presets(self) -> list[Preset]:
        return list(self._presets)

    def row_of(self, name: str) -> int:
        return next((i for i, p in enumerate(self._presets) if p.name == name), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._presets)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._presets):
            return None
        preset = self._presets[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{preset.name}: {preset.describe()}"
        if role == Qt.ItemDataRole.ToolTipRole:
            base = f" (made with {preset.base_model})" if preset.base_model else ""
            return f"{preset.describe()}{base}"
        if role == NameRole:
            return preset.name
        return None


TALLY_COLUMNS = ("Set-up", "Wins", "Other set-up", "Wins", "Ties", "Votes")


class TallyTableModel(QAbstractTableModel):
    """Votes per pair of set-ups, most voted pair first."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[PairTally] = []

    def set_tallies(self, tallies: list[PairTally]) -> None:
        self.beginResetModel()
        self._rows = list(tallies)
        self.endResetModel()

    def tallies(self) -> list[PairTally]:
        return list(self._rows)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(TALLY_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(TALLY_COLUMNS)):
            return TALLY_COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role != Qt.ItemDataRole.DisplayRole or not index.isValid()
                or not 0 <= index.row() < len(self._rows)):
            return None
        tally = self._rows[index.row()]
        cells = (tally.first, tally.first_wins, tally.second, tally.second_wins, tally.ties,
                 tally.total)
        column = index.column()
        return str(cells[column]) if 0 <= column < len(cells) else None
