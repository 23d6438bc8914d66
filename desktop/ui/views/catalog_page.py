"""The catalog tab: a card per recommended model, with its facts, whether it fits in memory, and
a Download button (or, once installed, Load; an embedding model is for Documents, never
loaded as the chat's model)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.core.catalog import Catalog, CatalogEntry
from desktop.core.downloads import DownloadRequest, format_bytes
from desktop.core.gguf_info import EMBEDDING
from desktop.core.memory import FITS, TIGHT, UNKNOWN, WONT_FIT, MemoryFit
from desktop.ui.downloads import DownloadsController
from desktop.ui.models.catalog import (
    CatalogModel,
    DownloadRole,
    EntryRole,
    FitRole,
    InstalledRole,
    download_key,
    fit_message,
)
from desktop.ui.style.tokens import LIGHT, RADIUS_S
from desktop.ui.views.downloads_page import CardList, DownloadControls

# Solid fills with white text: the same in both themes, so they need no restyling on a switch.
BADGE_COLORS = {FITS: LIGHT.fill_success, TIGHT: LIGHT.fill_warning, WONT_FIT: LIGHT.fill_error,
                UNKNOWN: LIGHT.fill_neutral}
EMBEDDING_LABEL = "Embedding model — for Documents"


def catalog_request(entry: CatalogEntry) -> DownloadRequest:
    """The download of a catalog entry, checked against its size and sha256."""
    return DownloadRequest.of_files(entry.repo_id, entry.files, entry.size_bytes, entry.sha256)


def entry_facts(entry: CatalogEntry) -> str:
    """'98.4 MB · 135M parameters · Q4_1 · 8,192 tokens of context · apache-2.0'."""
    parts = [format_bytes(entry.size_bytes), f"{entry.parameters} parameters",
             entry.quantization, f"{entry.context_length:,} tokens of context",
             f"license {entry.license}"]
    if entry.is_split:
        parts.append(f"{len(entry.files)} files")
    return " · ".join(parts)


class CatalogCard(QFrame):
    """One catalog entry."""

    def __init__(self, entry: CatalogEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.installed_id: str | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName(f"Catalog model {entry.name}")
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.title = QLabel(entry.name)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        top.addWidget(self.title)
        self.badge = QLabel("checking memory…")
        self.badge.setAccessibleName(f"Memory fit of {entry.name}")
        top.addWidget(self.badge)
        self.embedding = entry.kind == EMBEDDING
        self.kind_label = QLabel(EMBEDDING_LABEL)
        self.kind_label.setAccessibleName(f"What {entry.name} is for")
        self.kind_label.setToolTip("It turns text into vectors so the chat can search your "
                                   "documents by meaning; it cannot chat. The Documents page "
                                   "uses it once it is installed.")
        top.addWidget(self.kind_label)
        if not self.embedding:
            self.kind_label.hide()
        top.addStretch(1)
        layout.addLayout(top)
        self.facts = QLabel(entry_facts(entry))
        self.facts.setWordWrap(True)
        layout.addWidget(self.facts)
        self.description = QLabel(entry.description)
        self.description.setWordWrap(True)
        layout.addWidget(self.description)

        self.installed_row = QWidget()
        row = QHBoxLayout(self.installed_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.installed_label = QLabel("Installed")
        row.addWidget(self.installed_label)
        row.addStretch(1)
        self.load_button = QPushButton("Load")
        self.load_button.setAccessibleName(f"Load {entry.name}")
        row.addWidget(self.load_button)
        self.load_button.setHidden(self.embedding)  # not a chat model: nothing to load
        layout.addWidget(self.installed_row)
        self.controls = DownloadControls(entry.name)
        layout.addWidget(self.controls)

    def show_fit(self, fit: MemoryFit | None) -> None:
        if fit is None:
            self.badge.setText("checking memory…")
            self.badge.setStyleSheet("")
            self.badge.setToolTip("")
            return
        self.badge.setText("memory unknown" if fit.verdict == UNKNOWN else fit.verdict)
        self.badge.setStyleSheet(f"color: white; background: {BADGE_COLORS[fit.verdict]}; "
                                 f"border-radius: {RADIUS_S}px; padding: 1px 6px;")
        self.badge.setToolTip(fit_message(self.entry, fit))

    def show_installed(self, model_id: str | None) -> None:
        self.installed_id = model_id
        self.installed_row.setVisible(model_id is not None)
        # Once installed, the card offers Load (a chat model); a running download still shows
        # its progress.
        state = self.controls.state
        self.controls.setVisible(model_id is None or (state is not None
                                                      and not state.finished))


class CatalogTab(QWidget):
    """Cards of the catalog's models, and what the catalog itself has to say."""

    loadRequested = Signal(str)

    def __init__(self, downloads: DownloadsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.downloads = downloads
        self.model = CatalogModel(self)
        layout = QVBoxLayout(self)
        self.source = QLabel("Loading the catalog…")
        self.source.setWordWrap(True)
        layout.addWidget(self.source)
        self.notice = QLabel("")
        self.notice.setObjectName("chatNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        layout.addWidget(self.notice)
        self.cards = CardList(self.model, self._make, self._update,
                              "The catalog has no models to show.")
        self.cards.setAccessibleName("Catalog")
        layout.addWidget(self.cards, 1)
        downloads.changed.connect(self.model.set_download)

    def show_catalog(self, catalog: Catalog) -> None:
        where = {"bundled": "the catalog that comes with NoMoat",
                 "remote": f"the catalog at {catalog.location}",
                 "cache": f"a saved copy of the catalog at {catalog.location}"}
        self.source.setText(f"{len(catalog.entries)} models from "
                            f"{where.get(catalog.source, catalog.location)}.")
        lines = ([catalog.notice] if catalog.notice else []) + list(catalog.warnings)
        self.notice.setText("\n".join(lines))
        self.notice.setVisible(bool(lines))
        self.model.set_entries(catalog.entries)
        for event in self.downloads.events():
            self.model.set_download(event)

    def card(self, entry_id: str) -> CatalogCard | None:
        row = self.model.row_of(entry_id)
        return self.cards.cards[row] if row >= 0 else None  # type: ignore[return-value]

    def _make(self, index: QModelIndex) -> QWidget:
        entry: CatalogEntry = index.data(EntryRole)
        card = CatalogCard(entry)
        key = download_key(entry)
        card.controls.downloadClicked.connect(lambda: self.downloads.start(catalog_request(entry)))
        card.controls.pauseClicked.connect(lambda: self.downloads.pause(key))
        card.controls.resumeClicked.connect(lambda: self.downloads.resume(key))
        card.controls.cancelClicked.connect(lambda: self.downloads.cancel(key))
        card.load_button.clicked.connect(lambda: self._load(card))
        return card

    def _load(self, card: CatalogCard) -> None:
        if card.installed_id is not None and not card.embedding:
            self.loadRequested.emit(card.installed_id)

    def _update(self, card: QWidget, index: QModelIndex) -> None:
        assert isinstance(card, CatalogCard)
        card.show_fit(index.data(FitRole))
        card.controls.show_event(index.data(DownloadRole))
        card.show_installed(index.data(InstalledRole))
