"""The installed tab's table: each model in the library with the facts from its GGUF header."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.core.downloads import format_bytes
from desktop.core.gguf_info import EMBEDDING
from desktop.core.library import InstalledModel

ModelRole = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex
# The buttons and the status come right after the name, so they stay in view.
COLUMNS = ("Model", "", "Status", "Parameters", "Quantization", "Size", "Context",
           "Chat template", "Architecture", "License")
ACTIONS_COLUMN = 1  # Load / Remove buttons sit over this column
STATUS_COLUMN = COLUMNS.index("Status")


def parameters_label(count: int | None) -> str:
    """135000000 -> '135M', 7200000000 -> '7.2B'."""
    if not count:
        return ""
    if count >= 1_000_000_000:
        return f"{count / 1e9:.1f}B"
    if count >= 1_000_000:
        return f"{count / 1e6:.0f}M"
    return f"{count:,}"


class InstalledListModel(QAbstractTableModel):
    """The starter model first, then the rest by id, as the library lists them."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._models: list[InstalledModel] = []
        self._loaded: str | None = None

    def set_models(self, models: list[InstalledModel]) -> None:
        self.beginResetModel()
        self._models = list(models)
        self.endResetModel()

    def set_loaded(self, model_id: str | None) -> None:
        """Mark the model the engine holds now."""
        if model_id == self._loaded:
            return
        self._loaded = model_id
        if self._models:
            self.dataChanged.emit(self.index(0, STATUS_COLUMN),
                                  self.index(len(self._models) - 1, STATUS_COLUMN))

    @property
    def loaded(self) -> str | None:
        return self._loaded

    def models(self) -> list[InstalledModel]:
        return list(self._models)

    def row_of(self, model_id: str) -> int:
        return next((row for row, m in enumerate(self._models) if m.id == model_id), -1)

    def status(self, model: InstalledModel) -> str:
        if model.problem is not None:
            return f"Cannot be loaded: {model.problem}"
        if model.kind == EMBEDDING:
            return "Embedding model — for Documents"
        if model.id == self._loaded:
            return "Loaded"
        return "Ready"

    def _cell(self, model: InstalledModel, column: int) -> str:
        name = COLUMNS[column]
        if name == "Model":
            return model.name + (" (comes with NoMoat)" if model.bundled else "")
        if name == "Architecture":
            return model.architecture or ""
        if name == "Parameters":
            return parameters_label(model.parameter_count)
        if name == "Quantization":
            return model.quantization or ""
        if name == "Context":
            return f"{model.context_length:,}" if model.context_length else ""
        if name == "Chat template":
            return "" if model.info is None else ("yes" if model.has_chat_template else "no")
        if name == "License":
            return model.license or ""
        if name == "Size":
            return format_bytes(model.size_bytes)
        if name == "Status":
            return self.status(model)
        return ""

    # -- Qt ------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._models)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(COLUMNS)):
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._models):
            return None
        model = self._models[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return self._cell(model, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            if index.column() == STATUS_COLUMN and model.problem:
                return model.problem
            return str(model.path)
        if role == ModelRole:
            return model
        return None
