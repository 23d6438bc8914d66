"""The catalog tab's list: one row per catalog entry, with its memory fit, whether it is
installed, and where its download stands."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.core.catalog import CatalogEntry
from desktop.core.downloads import DownloadEvent, format_bytes
from desktop.core.gguf_info import EMBEDDING
from desktop.core.memory import TIGHT, WONT_FIT, MemoryFit

EntryRole = Qt.ItemDataRole.UserRole + 1
FitRole = Qt.ItemDataRole.UserRole + 2
InstalledRole = Qt.ItemDataRole.UserRole + 3  # the installed model's id, or None
DownloadRole = Qt.ItemDataRole.UserRole + 4  # the latest DownloadEvent, or None
LoadedRole = Qt.ItemDataRole.UserRole + 5  # whether the engine has its installed model loaded

Index = QModelIndex | QPersistentModelIndex


def download_key(entry: CatalogEntry) -> str:
    """What the download of *entry* is known by (``DownloadRequest.key``)."""
    return f"{entry.repo_id}/{entry.files[0]}"


def fit_message(entry: CatalogEntry, fit: MemoryFit) -> str:
    """One sentence on whether *entry* fits: a chat model's estimate, or for an embedding
    model what it adds beside the chat model."""
    if entry.kind != EMBEDDING:
        return fit.message
    need = (f"An embedding model for Documents, loaded beside the chat model when documents are "
            f"indexed or searched: it needs roughly {format_bytes(fit.estimate.model_bytes)}")
    if fit.available is None:
        return need + "; the free memory of this computer is not known."
    free = f"{format_bytes(fit.available)} is free now"
    if fit.verdict == WONT_FIT:
        return f"{need}, but only {free}: it won't fit. Close other programs first."
    if fit.verdict == TIGHT:
        return f"{need} and {free}: it is tight."
    return f"{need} and {free}: it fits."


class CatalogModel(QAbstractListModel):
    """Catalog entries in catalog order; fits, installs and downloads are filled in later."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._entries: list[CatalogEntry] = []
        self._fits: dict[str, MemoryFit] = {}
        self._installed: dict[str, str] = {}
        self._loaded: str | None = None
        self._downloads: dict[str, DownloadEvent] = {}

    # -- filling in ------------------------------------------------------------------------------
    def set_entries(self, entries: list[CatalogEntry]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self._fits = {}
        self.endResetModel()

    def set_fits(self, fits: dict[str, MemoryFit]) -> None:
        """Memory verdicts by entry id (computed off the GUI thread)."""
        self._fits = dict(fits)
        self._changed_all([FitRole, Qt.ItemDataRole.ToolTipRole])

    def set_installed(self, installed: dict[str, str]) -> None:
        """Installed model ids by catalog entry id."""
        if installed == self._installed:
            return
        self._installed = dict(installed)
        self._changed_all([InstalledRole, LoadedRole])

    def set_loaded(self, model_id: str | None) -> None:
        """The id of the model the engine has loaded (an installed model's id), or None."""
        if model_id == self._loaded:
            return
        self._loaded = model_id
        self._changed_all([LoadedRole])

    def set_download(self, event: DownloadEvent) -> None:
        """Show the latest event of a download on the entry it belongs to, if any."""
        self._downloads[event.key] = event
        for row, entry in enumerate(self._entries):
            if download_key(entry) == event.key:
                index = self.index(row)
                self.dataChanged.emit(index, index, [DownloadRole])

    def entries(self) -> list[CatalogEntry]:
        return list(self._entries)

    def row_of(self, entry_id: str) -> int:
        return next((row for row, e in enumerate(self._entries) if e.id == entry_id), -1)

    def _changed_all(self, roles: list[int]) -> None:
        if self._entries:
            self.dataChanged.emit(self.index(0), self.index(len(self._entries) - 1), roles)

    # -- Qt ------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return entry.name
        if role == Qt.ItemDataRole.ToolTipRole:
            fit = self._fits.get(entry.id)
            return entry.description + (f"\n\n{fit_message(entry, fit)}" if fit else "")
        if role == EntryRole:
            return entry
        if role == FitRole:
            return self._fits.get(entry.id)
        if role == InstalledRole:
            return self._installed.get(entry.id)
        if role == LoadedRole:
            installed = self._installed.get(entry.id)
            return installed is not None and installed == self._loaded
        if role == DownloadRole:
            return self._downloads.get(download_key(entry))
        return None
