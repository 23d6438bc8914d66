"""The installed tab: every model in the library with the facts from its GGUF header, Load (chat
models; embedding models are for Documents) and Remove on each row, and Import for a .gguf file
from elsewhere."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.core.gguf_info import EMBEDDING
from desktop.core.library import InstalledModel
from desktop.ui.models.installed import ACTIONS_COLUMN, STATUS_COLUMN, InstalledListModel


class InstalledTab(QWidget):
    """The library as a table; the page behind it does the loading, removing and importing."""

    loadRequested = Signal(str)
    removeRequested = Signal(str)
    importRequested = Signal()
    refreshRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = InstalledListModel(self)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.summary = QLabel("Reading the models folder…")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Installed models summary")
        top.addWidget(self.summary, 1)
        self.import_button = QPushButton("Import a .gguf file…")
        self.import_button.setAccessibleName("Import a GGUF model file")
        self.import_button.clicked.connect(self.importRequested)
        top.addWidget(self.import_button)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setAccessibleName("Refresh installed models")
        self.refresh_button.clicked.connect(self.refreshRequested)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)
        # What the last load, import or removal did, in words.
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setAccessibleName("Library status")
        layout.addWidget(self.status)

        self.table = QTableView()
        self.table.setAccessibleName("Installed models")
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(ACTIONS_COLUMN, QHeaderView.ResizeMode.Fixed)
        # A broken model's reason is long: the column keeps its width, the tooltip and the
        # line above the table give the whole text.
        header.setSectionResizeMode(STATUS_COLUMN, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.setColumnWidth(STATUS_COLUMN, 150)
        layout.addWidget(self.table, 1)
        self.copy_imports = QCheckBox("Copy imported files into the models folder")
        self.copy_imports.setToolTip("Otherwise an imported file is used where it is, and "
                                     "moving or deleting it takes it out of the library.")
        self.copy_imports.setAccessibleName("Copy imported files")
        self.copy_imports.setChecked(True)
        layout.addWidget(self.copy_imports)
        # The view drops its row widgets on a reset; put new ones over the new rows.
        self.model.modelReset.connect(self._place_actions)
        self.row_buttons: dict[str, tuple[QPushButton | None, QPushButton | None]] = {}

    def set_models(self, models: list[InstalledModel]) -> None:
        self.model.set_models(models)
        broken = [m for m in models if not m.loadable]
        text = f"{len(models)} models installed."
        if broken:
            text += (f" {len(broken)} cannot be loaded (remove them, or download or copy them "
                     "again):")
            text += "".join(f"\n• {m.problem}" for m in broken)
        self.summary.setText(text)

    def load_button(self, model_id: str) -> QPushButton | None:
        return self.row_buttons.get(model_id, (None, None))[0]

    def remove_button(self, model_id: str) -> QPushButton | None:
        return self.row_buttons.get(model_id, (None, None))[1]

    def _place_actions(self) -> None:
        self.row_buttons = {}
        width = 0
        for row, model in enumerate(self.model.models()):
            box = QWidget()
            layout = QHBoxLayout(box)
            layout.setContentsMargins(2, 0, 2, 0)
            load = remove = None
            if model.loadable and model.kind != EMBEDDING:
                load = QPushButton("Load")
                load.setAccessibleName(f"Load {model.name}")
                load.clicked.connect(lambda _=False, m=model.id: self.loadRequested.emit(m))
                layout.addWidget(load)
            if not model.bundled:
                remove = QPushButton("Remove…")
                remove.setAccessibleName(f"Remove {model.name}")
                remove.clicked.connect(lambda _=False, m=model.id: self.removeRequested.emit(m))
                layout.addWidget(remove)
            layout.addStretch(1)
            self.row_buttons[model.id] = (load, remove)
            self.table.setIndexWidget(self.model.index(row, ACTIONS_COLUMN), box)
            width = max(width, box.sizeHint().width())
        self.table.setColumnWidth(ACTIONS_COLUMN, width)
