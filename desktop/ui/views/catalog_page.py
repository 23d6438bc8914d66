"""The catalog tab: a search box, filters and an order over a grid of cards, one per
recommended model, each with its facts, whether it fits in memory, and one main action
(Download, or once installed Load; an embedding model is for Documents, never loaded as the
chat's model). When nothing matches, it says so and offers to clear the filters."""

from __future__ import annotations

import os
from dataclasses import replace

from PySide6.QtCore import QEvent, QModelIndex, QSettings, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.core.catalog import Catalog, CatalogEntry
from desktop.core.downloads import DownloadRequest
from desktop.ui.downloads import DownloadsController
from desktop.ui.models.catalog import (
    CatalogModel,
    DownloadRole,
    EntryRole,
    FitRole,
    InstalledRole,
    LoadedRole,
    download_key,
)
from desktop.ui.models.catalog_filter import CatalogFilterModel, Filters
from desktop.ui.style import icon, type_font
from desktop.ui.style.tokens import SPACE_M, SPACE_S, SPACE_XL, TYPE_SUBTITLE
from desktop.ui.views.card_grid import CardGrid
from desktop.ui.views.catalog_filters import FilterBar
from desktop.ui.views.model_card import CARD_WIDTH, EMBEDDING_LABEL, CatalogCard

__all__ = ["EMBEDDING_LABEL", "CatalogCard", "CatalogTab", "catalog_request"]

DEFAULT_HUB = "https://huggingface.co"


def catalog_request(entry: CatalogEntry) -> DownloadRequest:
    """The download of a catalog entry, checked against its size and sha256."""
    return DownloadRequest.of_files(entry.repo_id, entry.files, entry.size_bytes, entry.sha256)


class EmptyResult(QWidget):
    """What shows when no model passes the filters: that, and a button to clear them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(SPACE_XL, SPACE_XL, SPACE_XL, SPACE_XL)
        layout.setSpacing(SPACE_S)
        layout.addStretch(1)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._draw_picture()
        layout.addWidget(self.picture)
        self.title = QLabel("No models match")
        self.title.setObjectName("emptyTitle")
        self.title.setFont(type_font(TYPE_SUBTITLE, self.title.font()))
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.title)
        self.text = QLabel("")
        self.text.setProperty("muted", True)
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.text)
        self.clear = QPushButton("Clear filters")
        self.clear.setProperty("primary", True)
        self.clear.setAccessibleName("Clear the filters and show every model")
        layout.addSpacing(SPACE_M)
        layout.addWidget(self.clear, 0, Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(2)

    def _draw_picture(self) -> None:
        self.picture.setPixmap(icon("search-x", "text_faint").pixmap(
            QSize(40, 40), self.devicePixelRatioF()))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._draw_picture()  # in the new theme's colour

    def describe(self, filters: Filters, total: int) -> None:
        """Say why nothing shows: the search, the filters, or both."""
        filtered = filters.cleared() != replace(filters, text="")
        none = f"None of the {total} models in the catalog"
        searched = f"\u201c{filters.text}\u201d"
        if filters.text and filtered:
            why = f"{none} matches {searched} with these filters."
        elif filters.text:
            why = f"{none} matches {searched}. Clear the search to see every model."
        else:
            why = f"{none} passes these filters."
        self.text.setText(why if not filtered else f"{why} Clear them to see every model.")


class CatalogTab(QWidget):
    """Cards of the catalog's models, and what the catalog itself has to say."""

    loadRequested = Signal(str)
    removeRequested = Signal(str)
    filtersChanged = Signal(object)  # Filters, as the user left them

    def __init__(self, downloads: DownloadsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.downloads = downloads
        self.hub_endpoint: str | None = None  # None: HF_ENDPOINT, else the Hugging Face hub
        self.model = CatalogModel(self)
        self.shown = CatalogFilterModel(self.model, self)
        layout = QVBoxLayout(self)
        layout.setSpacing(SPACE_S)
        self.filter_bar = FilterBar()
        self.search = self.filter_bar.search
        layout.addWidget(self.filter_bar)
        self.source = QLabel("Loading the catalog…")
        self.source.setProperty("muted", True)
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.source)
        self.notice = QLabel("")
        self.notice.setObjectName("chatNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        layout.addWidget(self.notice)
        self.cards = CardGrid(self.shown, lambda index: index.data(EntryRole).id, self._make,
                              self._update, lambda card: card.actions(), CARD_WIDTH)
        self.cards.setAccessibleName("Catalog")
        self.cards.before = self.filter_bar.clear
        layout.addWidget(self.cards, 1)
        self.empty = EmptyResult()
        self.empty.clear.clicked.connect(self.filter_bar.clear_filters)
        self.empty.hide()
        layout.addWidget(self.empty, 1)

        self.filter_bar.changed.connect(self._filter)
        for signal in (self.shown.rowsInserted, self.shown.rowsRemoved, self.shown.modelReset,
                       self.shown.layoutChanged):
            signal.connect(self._count)
        downloads.changed.connect(self.model.set_download)
        self._count()

    # -- the catalog -------------------------------------------------------------------------------
    def show_catalog(self, catalog: Catalog) -> None:
        where = {"bundled": "the catalog that comes with NoMoat",
                 "remote": f"the catalog at {catalog.location}",
                 "cache": f"a saved copy of the catalog at {catalog.location}"}
        origin = (f"{len(catalog.entries)} models from "
                  f"{where.get(catalog.source, catalog.location)}.")
        self.filter_bar.count.setToolTip(origin)
        # The catalog that comes with the app goes without saying; another is named.
        self.source.setText(origin)
        self.source.setVisible(catalog.source != "bundled")
        lines = ([catalog.notice] if catalog.notice else []) + list(catalog.warnings)
        self.notice.setText("\n".join(lines))
        self.notice.setVisible(bool(lines))
        self.filter_bar.set_licenses(catalog.entries)
        self.model.set_entries(catalog.entries)
        for event in self.downloads.events():
            self.model.set_download(event)

    def card(self, entry_id: str) -> CatalogCard | None:
        """The card of *entry_id* (shown, or left out by the filters), or None."""
        return self.cards.card(entry_id)  # type: ignore[return-value]

    def shown_ids(self) -> list[str]:
        """The ids of the cards shown, in their order."""
        return list(self.cards.shown)

    # -- the filters -------------------------------------------------------------------------------
    def restore(self, state: QSettings) -> None:
        """Take up the filters kept in *state* last time."""
        self.filter_bar.set_filters(FilterBar.saved(state))

    def _filter(self, filters: Filters) -> None:
        self.shown.set_filters(filters)
        self._count()
        self.filtersChanged.emit(filters)

    def _count(self, *_args: object) -> None:
        total, shown = self.model.rowCount(), self.shown.rowCount()
        self.filter_bar.show_count(shown, total)
        nothing = total > 0 and shown == 0
        if nothing:
            self.empty.describe(self.filter_bar.filters(), total)
        self.empty.setVisible(nothing)
        self.cards.setVisible(not nothing)

    # -- the cards ---------------------------------------------------------------------------------
    def _make(self, index: QModelIndex) -> CatalogCard:
        entry: CatalogEntry = index.data(EntryRole)
        card = CatalogCard(entry)
        key = download_key(entry)
        card.controls.downloadClicked.connect(lambda: self.downloads.start(catalog_request(entry)))
        card.controls.pauseClicked.connect(lambda: self.downloads.pause(key))
        card.controls.resumeClicked.connect(lambda: self.downloads.resume(key))
        card.controls.cancelClicked.connect(lambda: self.downloads.cancel(key))
        card.load_button.clicked.connect(lambda: self._load(card))
        card.removeRequested.connect(self.removeRequested)
        card.hubPageRequested.connect(self.open_hub_page)
        return card

    def _load(self, card: CatalogCard) -> None:
        if card.installed_id is not None and not card.embedding:
            self.loadRequested.emit(card.installed_id)

    def _update(self, card: QWidget, index: QModelIndex) -> None:
        assert isinstance(card, CatalogCard)
        card.show_fit(index.data(FitRole))
        card.controls.show_event(index.data(DownloadRole))
        card.show_installed(index.data(InstalledRole), bool(index.data(LoadedRole)))

    def hub_page(self, repo_id: str) -> str:
        """The address of *repo_id*'s page on the hub (or the mirror) in use."""
        base = self.hub_endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB
        return f"{base.rstrip('/')}/{repo_id}"

    def open_hub_page(self, repo_id: str) -> None:
        QDesktopServices.openUrl(QUrl(self.hub_page(repo_id)))
