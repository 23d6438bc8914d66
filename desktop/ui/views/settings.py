"""The Settings page: the user's typed settings, applied at once where they can be.

Each change is checked first (an error shows next to its field and nothing is saved), applied
through a signal (theme, font size, downloads, hub, catalog), and written with save_settings in
the serial worker lane, a moment after the last change. The save reads the file again and
changes only the fields edited here, so settings written elsewhere in the meantime survive.
Window geometry is not a setting: the main window keeps it in QSettings.
"""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core import datafolder
from desktop.core.catalog import Catalog, load_catalog
from desktop.core.datafolder import DataFolderError
from desktop.core.gguf_info import CHAT, EMBEDDING
from desktop.core.library import InstalledModel, models_folder
from desktop.core.paths import get_paths
from desktop.core.settings import THEMES, Settings, load_settings, save_settings
from desktop.ui.views.page_column import page_column
from desktop.ui.workers import Workers

SAVE_DELAY_MS = 300  # changes within this time go out in one write
# A field whose values are short (a number, a theme): as wide as they are, not as the page.
SHORT = (QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)


def save_changes(changes: dict[str, Any]) -> None:
    """Write *changes* over the settings on disk now (run in a worker)."""
    settings = load_settings()
    for key, value in changes.items():
        setattr(settings, key, copy.deepcopy(value))
    save_settings(settings)


def check_url(text: str) -> str | None:
    """None when *text* is empty or a web address; else what is wrong with it."""
    if text and not text.startswith(("https://", "http://")):
        return "Write a web address that starts with https:// (or http://), or leave it empty."
    if text in ("https://", "http://"):
        return "The address has no host name after the //."
    return None


def check_folder(text: str) -> str | None:
    """None when *text* is empty or a usable folder path; else what is wrong with it."""
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute():
        return "Give the whole path of the folder, such as /home/me/models."
    return None


class SettingsPage(QWidget):
    """Theme, font size, folders, hub, downloads, default model and catalog."""

    themeChanged = Signal(str)
    fontSizeChanged = Signal(int)
    concurrencyChanged = Signal(int)
    hubChanged = Signal(object, object)  # endpoint or None, token or None
    catalogUrlChanged = Signal(object)  # URL or None
    catalogFetched = Signal(object)  # Catalog, after "Refresh catalog"
    saved = Signal()

    def __init__(self, workers: Workers, settings: Settings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.settings = settings
        self.errors: dict[str, QLabel] = {}
        self._pending: dict[str, Any] = {}
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.flush)
        self._catalog_ticket = 0

        layout = page_column(self).layout
        self.status = QLabel("\n".join(settings.messages))
        self.status.setWordWrap(True)
        self.status.setObjectName("chatNotice")
        self.status.setAccessibleName("Settings status")
        self.status.setVisible(bool(settings.messages))
        layout.addWidget(self.status)

        look = QGroupBox("Appearance")
        form = QFormLayout(look)
        self.theme = QComboBox()
        self.theme.setSizePolicy(*SHORT)
        self.theme.setAccessibleName("Theme")
        for theme in THEMES:
            self.theme.addItem({"system": "Same as the system"}.get(theme, theme.title()),
                               theme)
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))
        self.theme.currentIndexChanged.connect(self._theme)
        form.addRow("Theme", self.theme)
        self.font_size = QSpinBox()
        self.font_size.setSizePolicy(*SHORT)
        self.font_size.setAccessibleName("Font size")
        self.font_size.setRange(6, 72)
        self.font_size.setSuffix(" pt")
        self.font_size.setValue(settings.font_size)
        self.font_size.valueChanged.connect(self._font_size)
        form.addRow("Font size", self.font_size)
        layout.addWidget(look)

        folders = QGroupBox("Folders")
        form = QFormLayout(folders)
        row = QHBoxLayout()
        self.data_folder = QLabel(str(get_paths().data))
        self.data_folder.setAccessibleName("Data folder")
        self.data_folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.data_folder.setWordWrap(True)
        row.addWidget(self.data_folder, 1)
        move = QPushButton("Move…")
        move.setAccessibleName("Move the data folder")
        move.clicked.connect(lambda: self._choose_data_folder())
        row.addWidget(move)
        self.cancel_move = QPushButton("Cancel the move")
        self.cancel_move.clicked.connect(self.cancel_data_move)
        row.addWidget(self.cancel_move)
        form.addRow("Data folder", self._with_error("data_dir", row, (
            "Conversations and adapters are kept here, and models unless the Models folder "
            f"below says otherwise; settings are in {get_paths().settings}.")))
        self.data_move = QLabel("")
        self.data_move.setWordWrap(True)
        self.data_move.setObjectName("chatNotice")
        self.data_move.setAccessibleName("Data folder move")
        form.addRow(self.data_move)
        self._show_data_move()
        row = QHBoxLayout()
        self.models_dir = QLineEdit(settings.models_dir or "")
        self.models_dir.setAccessibleName("Models folder")
        self.models_dir.setPlaceholderText(str(get_paths().models))
        self.models_dir.editingFinished.connect(self._models_dir)
        row.addWidget(self.models_dir, 1)
        choose = QPushButton("Choose…")
        choose.setAccessibleName("Choose the models folder")
        choose.clicked.connect(lambda: self._choose_models_dir())
        row.addWidget(choose)
        form.addRow("Models folder", self._with_error("models_dir", row,
                    "A new models folder takes effect after a restart of NoMoat."))
        layout.addWidget(folders)

        hub = QGroupBox("Hugging Face hub and downloads")
        form = QFormLayout(hub)
        self.hub_endpoint = QLineEdit(settings.hub_endpoint or "")
        self.hub_endpoint.setAccessibleName("Hub address")
        self.hub_endpoint.setPlaceholderText("https://huggingface.co (or HF_ENDPOINT)")
        self.hub_endpoint.editingFinished.connect(self._hub)
        form.addRow("Hub address (mirror)", self._with_error("hub_endpoint", self.hub_endpoint))
        self.hub_token = QLineEdit(settings.hub_token or "")
        self.hub_token.setAccessibleName("Hub token")
        self.hub_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.hub_token.setPlaceholderText("for gated models (or HF_TOKEN)")
        self.hub_token.editingFinished.connect(self._hub)
        form.addRow("Hub token", self._with_error("hub_token", self.hub_token))
        self.concurrency = QSpinBox()
        self.concurrency.setSizePolicy(*SHORT)
        self.concurrency.setAccessibleName("Downloads at once")
        self.concurrency.setRange(1, 16)
        self.concurrency.setValue(settings.download_concurrency)
        self.concurrency.valueChanged.connect(self._concurrency)
        form.addRow("Downloads at once", self.concurrency)
        layout.addWidget(hub)

        models = QGroupBox("Models")
        form = QFormLayout(models)
        self.default_model = QComboBox()
        self.default_model.setAccessibleName("Default model")
        self.default_model.addItem("The first installed model", None)
        if settings.default_model:
            self.default_model.addItem(settings.default_model, settings.default_model)
            self.default_model.setCurrentIndex(1)
        self.default_model.activated.connect(self._default_model)
        form.addRow("Default model", self.default_model)
        self.embedding_model = QComboBox()
        self.embedding_model.setAccessibleName("Embedding model for documents")
        self.embedding_model.setToolTip(
            "New document collections are indexed with this model; a collection keeps the "
            "model it was indexed with.")
        self.embedding_model.addItem("The first installed embedding model", None)
        if settings.docs_embedding_model:
            self.embedding_model.addItem(settings.docs_embedding_model,
                                         settings.docs_embedding_model)
            self.embedding_model.setCurrentIndex(1)
        self.embedding_model.activated.connect(self._embedding_model)
        form.addRow("Embedding model (documents)", self.embedding_model)
        row = QHBoxLayout()
        self.catalog_url = QLineEdit(settings.catalog_url or "")
        self.catalog_url.setAccessibleName("Catalog address")
        self.catalog_url.setPlaceholderText("empty: the catalog that comes with NoMoat")
        self.catalog_url.editingFinished.connect(self._catalog_edited)
        row.addWidget(self.catalog_url, 1)
        self.refresh_catalog = QPushButton("Refresh catalog")
        self.refresh_catalog.setAccessibleName("Refresh catalog")
        self.refresh_catalog.clicked.connect(lambda: self.fetch_catalog())
        row.addWidget(self.refresh_catalog)
        form.addRow("Catalog address", self._with_error("catalog_url", row))
        self.catalog_notice = QLabel("")
        self.catalog_notice.setWordWrap(True)
        self.catalog_notice.setAccessibleName("Catalog status")
        self.catalog_notice.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse)
        self.catalog_notice.hide()  # until there is something to say
        form.addRow(self.catalog_notice)
        layout.addWidget(models)
        layout.addStretch(1)

    def _with_error(self, key: str, field: QWidget | QHBoxLayout,
                    note: str | None = None) -> QWidget:
        """The field with a line under it for what is wrong with its value."""
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        if isinstance(field, QHBoxLayout):
            column.addLayout(field)
        else:
            column.addWidget(field)
        if note:
            hint = QLabel(note)
            hint.setWordWrap(True)
            column.addWidget(hint)
        error = QLabel("")
        error.setWordWrap(True)
        error.setObjectName("fieldError")
        error.setAccessibleName(f"Problem with {key.replace('_', ' ')}")
        error.hide()
        column.addWidget(error)
        self.errors[key] = error
        return box

    def _check(self, key: str, problem: str | None) -> bool:
        error = self.errors[key]
        error.setText(problem or "")
        error.setVisible(problem is not None)
        return problem is None

    # -- saving ----------------------------------------------------------------------------------
    def _save(self, key: str, value: Any) -> None:
        setattr(self.settings, key, value)
        self._pending[key] = copy.deepcopy(value)
        self._save_timer.start()

    def flush(self) -> None:
        """Write the pending changes now (in the serial worker lane)."""
        self._save_timer.stop()
        if not self._pending:
            return
        changes, self._pending = self._pending, {}
        self.workers.submit(save_changes, changes, serial=True,
                            on_done=lambda _: self.saved.emit(), on_error=self._save_failed)

    def _save_failed(self, exc: Exception) -> None:
        self.status.setText(f"The settings could not be saved: {exc}. Check that the settings "
                            "folder can be written to.")
        self.status.show()

    # -- fields ----------------------------------------------------------------------------------
    def _theme(self, _index: int = 0) -> None:
        theme = self.theme.currentData()
        self._save("theme", theme)
        self.themeChanged.emit(theme)

    def _font_size(self, size: int) -> None:
        self._save("font_size", size)
        self.fontSizeChanged.emit(size)

    def _concurrency(self, count: int) -> None:
        self._save("download_concurrency", count)
        self.concurrencyChanged.emit(count)

    def _models_dir(self) -> None:
        text = self.models_dir.text().strip()
        if self._check("models_dir", check_folder(text)) and (text or None) != \
                self.settings.models_dir:
            self._save("models_dir", text or None)

    def _choose_models_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder",
                                                  self.models_dir.text() or str(Path.home()))
        if folder:
            self.models_dir.setText(folder)
            self._models_dir()

    def _choose_data_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Move the data folder to",
                                                  str(Path.home()))
        if folder:
            self.move_data_folder(folder)

    def move_data_folder(self, folder: str) -> None:
        """Move the data to *folder* at the next start, or say why it cannot go there."""
        try:
            target = datafolder.plan_move(folder)
        except DataFolderError as exc:
            self._check("data_dir", str(exc))
            return
        self._check("data_dir", None)
        datafolder.choose(self.settings, target)
        self._save("data_dir", self.settings.data_dir)
        self._save("data_dir_from", self.settings.data_dir_from)
        self._show_data_move()

    def cancel_data_move(self) -> None:
        datafolder.cancel(self.settings)
        self._save("data_dir", self.settings.data_dir)
        self._save("data_dir_from", self.settings.data_dir_from)
        self._show_data_move()

    def _show_data_move(self) -> None:
        target = datafolder.pending(self.settings)
        if target is None:
            self.data_move.setText("")
        elif datafolder.is_data_folder(target):
            self.data_move.setText(
                f"When NoMoat next starts it will use the conversations and adapters already in "
                f"{target}. Those in this folder stay here.")
        else:
            self.data_move.setText(
                f"When NoMoat next starts it will copy your conversations and adapters to "
                f"{target} and keep them there. This folder is left as it was. Models are not "
                f"moved: they stay in {models_folder(self.settings)}.")
        self.data_move.setVisible(target is not None)
        self.cancel_move.setVisible(target is not None)

    def _hub(self) -> None:
        endpoint = self.hub_endpoint.text().strip()
        token = self.hub_token.text().strip()
        if not self._check("hub_endpoint", check_url(endpoint)):
            return
        if (endpoint or None, token or None) == (self.settings.hub_endpoint,
                                                 self.settings.hub_token):
            return
        self._save("hub_endpoint", endpoint or None)
        self._save("hub_token", token or None)
        self.hubChanged.emit(endpoint or None, token or None)

    def _default_model(self, _index: int = 0) -> None:
        self._save("default_model", self.default_model.currentData())

    def _embedding_model(self, _index: int = 0) -> None:
        self._save("docs_embedding_model", self.embedding_model.currentData())

    def _take_catalog_url(self) -> tuple[bool, bool]:
        """Check the address typed in and keep it if it is good: (good, changed)."""
        url = self.catalog_url.text().strip()
        if not self._check("catalog_url", check_url(url)):
            return False, False
        if (url or None) == self.settings.catalog_url:
            return True, False
        self._save("catalog_url", url or None)
        self.catalogUrlChanged.emit(url or None)
        return True, True

    def _catalog_edited(self) -> None:
        if self._take_catalog_url()[1]:
            self.fetch_catalog()  # a new address: show what it holds now

    def set_models(self, models: list[InstalledModel]) -> None:
        """The installed models the default chat model and the documents' embedding model
        are chosen from."""
        for box, kind, current in (
                (self.default_model, CHAT, self.settings.default_model),
                (self.embedding_model, EMBEDDING, self.settings.docs_embedding_model)):
            first = box.itemText(0)
            box.clear()
            box.addItem(first, None)
            for model in models:
                if model.loadable and model.kind == kind:
                    box.addItem(model.name, model.id)
            if current and box.findData(current) < 0:
                box.addItem(f"{current} (not installed)", current)
            box.setCurrentIndex(max(0, box.findData(current)))

    def fetch_catalog(self) -> None:
        """Fetch the catalog at the address now (in a worker) and say how it went."""
        if not self._take_catalog_url()[0]:
            return
        url = self.settings.catalog_url
        self._catalog_ticket += 1
        ticket = self._catalog_ticket
        self.catalog_notice.setText(f"Fetching {url}…" if url else
                                    "Reading the catalog that comes with NoMoat…")
        self.catalog_notice.show()
        self.workers.submit(partial(load_catalog, url, refresh=True),
                            on_done=lambda catalog: self._catalog_fetched(catalog, ticket),
                            on_error=lambda exc: self._catalog_failed(exc, ticket))

    def _catalog_fetched(self, catalog: Catalog, ticket: int) -> None:
        if ticket != self._catalog_ticket:
            return
        where = {"bundled": "the catalog that comes with NoMoat", "remote": catalog.location,
                 "cache": f"the saved copy of {self.settings.catalog_url}"}
        text = f"{len(catalog.entries)} models from {where.get(catalog.source, catalog.location)}."
        if catalog.notice:
            text = f"{catalog.notice} Showing {text}"
        if catalog.warnings:
            text += " " + " ".join(catalog.warnings)
        self.catalog_notice.setText(text)
        self.catalogFetched.emit(catalog)

    def _catalog_failed(self, exc: Exception, ticket: int) -> None:
        if ticket == self._catalog_ticket:
            self.catalog_notice.setText(f"The catalog could not be read: {exc}")
