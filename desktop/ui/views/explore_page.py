"""The explore tab: search the hub for GGUF repos, list a repo's GGUF files, download one."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.core.hub import GgufFile, HubModel
from desktop.ui.models.hub import GgufFilesModel, HubResultsModel


def _table(name: str) -> QTableView:
    table = QTableView()
    table.setAccessibleName(name)
    table.verticalHeader().hide()
    table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class ExploreTab(QWidget):
    """A search box and two tables; the page behind it asks the hub, in a worker."""

    searchRequested = Signal(str, str)  # text, "downloads" or "likes"
    repoSelected = Signal(str)
    downloadRequested = Signal(object)  # GgufFile

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.results = HubResultsModel(self)
        self.files = GgufFilesModel(self)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.query = QLineEdit()
        self.query.setPlaceholderText("Search the hub for GGUF models, e.g. qwen, llama, phi")
        self.query.setAccessibleName("Search the hub")
        self.query.returnPressed.connect(self.search)
        row.addWidget(self.query, 1)
        self.sort = QComboBox()
        self.sort.setAccessibleName("Sort search results")
        self.sort.addItem("Most downloaded", "downloads")
        self.sort.addItem("Most liked", "likes")
        row.addWidget(self.sort)
        self.search_button = QPushButton("Search")
        self.search_button.setAccessibleName("Search the hub")
        self.search_button.clicked.connect(self.search)
        row.addWidget(self.search_button)
        layout.addLayout(row)
        self.status = QLabel("Find GGUF models on the Hugging Face hub (or the mirror set in "
                             "Settings).")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setAccessibleName("Hub status")
        layout.addWidget(self.status)

        splitter = QSplitter(Qt.Orientation.Vertical)
        self.results_view = _table("Search results")
        self.results_view.setModel(self.results)
        self.results_view.selectionModel().currentRowChanged.connect(self._repo_chosen)
        splitter.addWidget(self.results_view)
        self.files_view = _table("GGUF files")
        self.files_view.setModel(self.files)
        header = self.files_view.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(GgufFilesModel.ACTIONS_COLUMN, QHeaderView.ResizeMode.Fixed)
        splitter.addWidget(self.files_view)
        layout.addWidget(splitter, 1)
        self.files.modelReset.connect(self._place_buttons)
        self.download_buttons: dict[str, QPushButton] = {}

    def search(self) -> None:
        self.searchRequested.emit(self.query.text().strip(), self.sort.currentData())

    def show_status(self, text: str) -> None:
        self.status.setText(text)

    def show_results(self, models: list[HubModel]) -> None:
        self.files.set_files([])
        self.results.set_results(models)

    def show_files(self, files: list[GgufFile]) -> None:
        self.files.set_files(files)

    def select_repo(self, row: int) -> None:
        self.results_view.setCurrentIndex(self.results.index(row, 0))

    def _repo_chosen(self, current: QModelIndex, _previous: QModelIndex) -> None:
        repo = self.results.repo(current.row())
        if repo is not None:
            self.repoSelected.emit(repo.repo_id)

    def _place_buttons(self) -> None:
        self.download_buttons = {}
        for row in range(self.files.rowCount()):
            file = self.files.file(row)
            assert file is not None
            button = QPushButton("Download")
            button.setAccessibleName(f"Download {file.filename}")
            button.clicked.connect(lambda _=False, f=file: self.downloadRequested.emit(f))
            self.download_buttons[file.filename] = button
            self.files_view.setIndexWidget(self.files.index(row, GgufFilesModel.ACTIONS_COLUMN),
                                           button)
            self.files_view.setColumnWidth(GgufFilesModel.ACTIONS_COLUMN,
                                           button.sizeHint().width() + 8)
