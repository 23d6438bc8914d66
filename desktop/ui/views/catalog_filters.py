"""The catalog's search box, filters and order, above its cards.

One line for the search, how many models show and the order; one for the filters: size,
license, kind, "Fits in memory" and "Fully open" (desktop/ui/models/catalog_filter.py says
what each means), and "Clear filters" while any is on. The choices are kept in the window's
state (QSettings, not the user's settings) and come back at the next start; the search text
does not, as a search is for now.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QVBoxLayout, QWidget)

from desktop.core.catalog import CatalogEntry
from desktop.ui.models.catalog_filter import (ANY, KINDS, SIZES, SORTS, Filters,
                                              license_name)
from desktop.ui.style import icon
from desktop.ui.style.tokens import SPACE_S

STATE_GROUP = "catalogFilters"
FITS_TIP = ("Only the models that fit in the memory free now, at their default context: "
            "those marked \u201cfits\u201d or \u201ctight\u201d.")
OPEN_TIP = ("Only fully open models: open weights under an open-source license, with their "
            "training data and code published too (the catalog marks them).")
SIZE_TIP = ("By parameters: tiny under 1B, small from 1B to under 3B, medium from 3B to "
            "under 7B, large 7B and more. More parameters answer better and need more memory.")


def _combo(name: str, tip: str) -> QComboBox:
    box = QComboBox()
    box.setAccessibleName(name)
    box.setToolTip(tip)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    box.setProperty("chip", True)
    return box


def _chip(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setCheckable(True)
    button.setProperty("chip", True)
    button.setToolTip(tip)
    return button


class FilterBar(QWidget):
    """The search, the filters and the order; ``changed`` carries the new Filters."""

    changed = Signal(object)  # Filters

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._quiet = False  # set while the boxes are filled in: one change, not many
        self._pending_license = ANY  # a license kept from last time, before the catalog is in
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(SPACE_S)

        top = QHBoxLayout()
        top.setSpacing(SPACE_S)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search the catalog (Ctrl+F)")
        self.search.setAccessibleName("Search the catalog")
        self.search.setClearButtonEnabled(True)
        self.search.setProperty("chip", True)
        self.search.addAction(icon("search", "text_muted"),
                              QLineEdit.ActionPosition.LeadingPosition)
        top.addWidget(self.search, 1)
        self.count = QLabel("")
        self.count.setProperty("muted", True)
        self.count.setAccessibleName("Models shown")
        top.addWidget(self.count)
        sort_label = QLabel("Sort")
        sort_label.setProperty("muted", True)
        top.addWidget(sort_label)
        self.sort = _combo("Sort the catalog", "The order of the cards")
        for key, label in SORTS.items():
            self.sort.addItem(label, key)
        sort_label.setBuddy(self.sort)
        top.addWidget(self.sort)
        layout.addLayout(top)

        row = QHBoxLayout()
        row.setSpacing(SPACE_S)
        self.size = _combo("Filter by size", SIZE_TIP)
        self.size.addItem("Any size", ANY)
        for key, label, _least in SIZES:
            self.size.addItem(label, key)
        row.addWidget(self.size)
        self.license = _combo("Filter by license", "Only the models under this license")
        self.license.addItem("Any license", ANY)
        row.addWidget(self.license)
        self.kind = _combo("Filter by kind", "Chat models answer in the chat; embedding "
                           "models let the Documents page search your files.")
        self.kind.addItem("Any kind", ANY)
        for key, label in KINDS.items():
            self.kind.addItem(label, key)
        row.addWidget(self.kind)
        self.fits = _chip("Fits in memory", FITS_TIP)
        row.addWidget(self.fits)
        self.fully_open = _chip("Fully open", OPEN_TIP)
        row.addWidget(self.fully_open)
        row.addStretch(1)
        self.clear = QPushButton("Clear filters")
        self.clear.setProperty("subtle", True)
        self.clear.setAccessibleName("Clear the catalog's filters")
        self.clear.clicked.connect(self.clear_filters)
        self.clear.hide()
        row.addWidget(self.clear)
        layout.addLayout(row)

        self.license.activated.connect(self._license_chosen)
        self.search.textChanged.connect(self._emit)
        for box in (self.sort, self.size, self.license, self.kind):
            box.currentIndexChanged.connect(self._emit)
        for chip in (self.fits, self.fully_open):
            chip.toggled.connect(self._emit)

    # -- the choices ---------------------------------------------------------------------------
    def filters(self) -> Filters:
        return Filters(text=self.search.text().strip(), size=self.size.currentData() or ANY,
                       license=self.license.currentData() or self._pending_license,
                       kind=self.kind.currentData() or ANY, fits=self.fits.isChecked(),
                       fully_open=self.fully_open.isChecked(),
                       sort=self.sort.currentData() or "recommended")

    def set_filters(self, filters: Filters) -> None:
        """Show *filters* (a choice the boxes do not offer is left at "any"); one ``changed``
        follows."""
        self._quiet = True
        try:
            self.search.setText(filters.text)
            self._pending_license = filters.license
            for box, value in ((self.size, filters.size), (self.license, filters.license),
                               (self.kind, filters.kind), (self.sort, filters.sort)):
                box.setCurrentIndex(max(0, box.findData(value)))
            self.fits.setChecked(filters.fits)
            self.fully_open.setChecked(filters.fully_open)
        finally:
            self._quiet = False
        self._emit()

    def clear_filters(self) -> None:
        """Show every model again (the order stays)."""
        self.set_filters(self.filters().cleared())

    def set_licenses(self, entries: list[CatalogEntry]) -> None:
        """Offer the licenses of *entries*, by name; the one chosen stays if it is there."""
        chosen = self.license.currentData() or self._pending_license
        self._pending_license = ANY
        ids = sorted({e.license for e in entries}, key=lambda i: license_name(i).casefold())
        self._quiet = True
        try:
            self.license.clear()
            self.license.addItem("Any license", ANY)
            for license_id in ids:
                self.license.addItem(license_name(license_id), license_id)
                self.license.setItemData(self.license.count() - 1, license_id,
                                         Qt.ItemDataRole.ToolTipRole)
            self.license.setCurrentIndex(max(0, self.license.findData(chosen)))
        finally:
            self._quiet = False
        self._emit()

    def _license_chosen(self) -> None:
        self._pending_license = ANY  # the user's own choice wins over the one kept
        self._emit()

    def show_count(self, shown: int, total: int) -> None:
        filtered = self.filters().active
        self.count.setText(f"{shown} of {total} models" if filtered else f"{total} models")
        self.clear.setVisible(filtered)

    def _emit(self, *_args: object) -> None:
        if not self._quiet:
            self.changed.emit(self.filters())

    # -- kept in the window's state --------------------------------------------------------------
    def save(self, state: QSettings) -> None:
        """Keep the filters and the order (not the search) in *state*."""
        filters = self.filters()
        state.beginGroup(STATE_GROUP)
        for key, value in (("size", filters.size), ("license", filters.license),
                           ("kind", filters.kind), ("fits", filters.fits),
                           ("fully_open", filters.fully_open), ("sort", filters.sort)):
            state.setValue(key, value)
        state.endGroup()

    @staticmethod
    def saved(state: QSettings) -> Filters:
        """The filters kept in *state*, or the defaults for what is not there."""

        def flag(value: object) -> bool:
            return value is True or str(value).lower() == "true"

        state.beginGroup(STATE_GROUP)
        try:
            default = Filters()
            return Filters(size=str(state.value("size", default.size) or ANY),
                           license=str(state.value("license", default.license) or ANY),
                           kind=str(state.value("kind", default.kind) or ANY),
                           fits=flag(state.value("fits", False)),
                           fully_open=flag(state.value("fully_open", False)),
                           sort=str(state.value("sort", default.sort) or default.sort))
        finally:
            state.endGroup()
