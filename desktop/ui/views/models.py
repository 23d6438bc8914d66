"""The Models page: the catalog, the installed models, the hub, and downloads, in four tabs.

The tabs are views; this page does the work behind them. Everything that touches the disk or
the network (reading the catalog, scanning the library's GGUF headers, memory estimates,
removing and importing, hub search) runs through Workers, and every result is checked to be
still wanted before it is shown.

The catalog's filters and order are kept in the window's state (``window.ini``, apart from the
user's settings). While this page is shown, Ctrl+F goes to its search (the hub's, on the
Explore tab) instead of the conversation list's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core.catalog import Catalog, CatalogEntry, load_catalog
from desktop.core.downloads import DownloadEvent, State, destination
from desktop.core.gguf_info import EMBEDDING
from desktop.core.hub import GgufFile, HubModel, Sort, list_gguf_files, search_models
from desktop.core.library import InstalledModel, installed_models
from desktop.core.library_changes import import_model, remove_model
from desktop.core.memory import (
    BYTES_PER_VOCAB_TOKEN,
    DEFAULT_CONTEXT,
    EMBEDDING_BASE,
    EMBEDDING_CONTEXT,
    ENGINE_RUNTIME,
    MemoryEstimate,
    MemoryFit,
    available_memory,
    check_fit,
    choose_parallel,
    estimate_from_size,
)
from desktop.core.paths import get_paths
from desktop.core.settings import Settings
from desktop.ui.downloads import DownloadsController, unfinished_downloads
from desktop.ui.engine import EngineController
from desktop.ui.views.catalog_page import CatalogTab
from desktop.ui.views.downloads_page import DownloadsTab
from desktop.ui.views.explore_page import ExploreTab
from desktop.ui.views.installed_page import InstalledTab
from desktop.ui.workers import Workers

PROGRESS_INTERVAL = 0.25  # seconds between import progress updates
ENCODER_VOCAB = 32_000  # about the vocabulary of a BERT-family embedding model
ENCODER_WIDTH = 1024  # and at most its width


def embedding_estimate(entry: CatalogEntry) -> MemoryEstimate:
    """A rough estimate of an embedding model not on disk yet, as the engine runs it: in a
    context of its own beside the chat model, one batch of text at a time, with no cache."""
    outputs = EMBEDDING_CONTEXT * (ENCODER_VOCAB + ENCODER_WIDTH) * 4
    overhead = ENGINE_RUNTIME + EMBEDDING_BASE + ENCODER_VOCAB * BYTES_PER_VOCAB_TOKEN + outputs
    return MemoryEstimate(weights=entry.size_bytes, kv_cache=0, overhead=overhead,
                          runtime=ENGINE_RUNTIME, rough=True)


def catalog_fits(entries: list[CatalogEntry], engine_running: bool = False
                 ) -> dict[str, MemoryFit]:
    """Whether each catalog entry fits in the memory free now, at its default context."""
    available = available_memory()
    fits = {}
    for entry in entries:
        if entry.kind == EMBEDDING:
            # Loaded beside the chat model, in the engine that runs it.
            fits[entry.id] = check_fit(embedding_estimate(entry), available, engine_running=True)
            continue
        n_ctx = min(entry.context_length, DEFAULT_CONTEXT)

        def estimate(slots: int, entry: CatalogEntry = entry, n_ctx: int = n_ctx
                     ) -> MemoryEstimate:
            return estimate_from_size(entry.size_bytes, entry.parameters_count, n_ctx, slots)

        slots = choose_parallel(estimate, None, available, engine_running=engine_running)
        fits[entry.id] = check_fit(estimate(slots), available, engine_running=engine_running)
    return fits


class ModelsPage(QWidget):
    """Find, download, load, import and remove models."""

    #: the library after a scan (list of InstalledModel), so the chat's picker can follow
    installedChanged = Signal(list)
    #: a model was loaded from this page (its id)
    modelLoaded = Signal(str)
    _importProgress = Signal(int, int)

    def __init__(self, engine: EngineController, workers: Workers,
                 downloads: DownloadsController, settings: Settings,
                 window_state: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if window_state is None:
            window_state = QSettings(str(get_paths().settings / "window.ini"),
                                     QSettings.Format.IniFormat)
        self.window_state = window_state
        self._find_window: QWidget | None = None  # where Ctrl+F is caught while shown
        self.engine = engine
        self.workers = workers
        self.downloads = downloads
        self.catalog_url = settings.catalog_url
        self.hub_endpoint = settings.hub_endpoint
        self.hub_token: str | None = settings.hub_token
        self.catalog: Catalog | None = None
        self.models: list[InstalledModel] = []
        self._wanted: dict[str, int] = {}  # the latest request of each kind of work
        self._import_shown = 0.0
        #: engine load options for a model id (the per-model settings); none by default
        self.load_options: Callable[[str], dict[str, Any]] = lambda model_id: {}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setAccessibleName("Models status")
        self.status.hide()
        layout.addWidget(self.status)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Model pages")
        self.catalog_tab = CatalogTab(downloads)
        self.installed_tab = InstalledTab()
        self.explore_tab = ExploreTab()
        self.downloads_tab = DownloadsTab(downloads)
        self.tabs.addTab(self.catalog_tab, "Catalog")
        self.tabs.addTab(self.installed_tab, "Installed")
        self.tabs.addTab(self.explore_tab, "Explore the hub")
        self.tabs.addTab(self.downloads_tab, "Downloads")
        layout.addWidget(self.tabs)

        self.catalog_tab.hub_endpoint = self.hub_endpoint
        self.catalog_tab.restore(window_state)
        self.catalog_tab.filtersChanged.connect(self._keep_filters)
        self.catalog_tab.loadRequested.connect(self.load)
        self.catalog_tab.removeRequested.connect(self.remove)
        self.installed_tab.loadRequested.connect(self.load)
        self.installed_tab.removeRequested.connect(self.remove)
        self.installed_tab.importRequested.connect(self.import_file)
        self.installed_tab.refreshRequested.connect(self.refresh_library)
        self.explore_tab.searchRequested.connect(self.search)
        self.explore_tab.repoSelected.connect(self.list_files)
        self.explore_tab.downloadRequested.connect(self.download_file)
        self._importProgress.connect(self._show_import_progress)
        downloads.finished.connect(self._download_finished)
        engine.statusChanged.connect(self._engine_status)
        self.load_catalog()
        self.workers.submit(unfinished_downloads, downloads.models_dir,
                            on_done=downloads.show_unfinished)

    def show_tab(self, name: str) -> None:
        for index in range(self.tabs.count()):
            if self.tabs.tabText(index) == name:
                self.tabs.setCurrentIndex(index)

    # -- Ctrl+F and the window's state -------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        window = self.window()
        if window is not self and window is not self._find_window:
            # Ctrl+F is the window's shortcut to the conversation list; the window is told
            # first (ShortcutOverride) and lets this page have it while the page is shown.
            window.installEventFilter(self)
            self._find_window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if (event.type() == QEvent.Type.ShortcutOverride and self.isVisible()
                and isinstance(event, QKeyEvent)
                and event.matches(QKeySequence.StandardKey.Find)):
            event.accept()
            self.focus_search()
            return True
        return super().eventFilter(watched, event)

    def focus_search(self) -> None:
        """Put the keyboard in the search of the tab shown (the catalog's, unless it is
        Explore the hub)."""
        if self.tabs.currentWidget() is self.explore_tab:
            box = self.explore_tab.query
        else:
            self.tabs.setCurrentWidget(self.catalog_tab)
            box = self.catalog_tab.search
        box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        box.selectAll()

    def _keep_filters(self) -> None:
        self.catalog_tab.filter_bar.save(self.window_state)

    def _ticket(self, kind: str) -> int:
        self._wanted[kind] = self._wanted.get(kind, 0) + 1
        return self._wanted[kind]

    def _still_wanted(self, kind: str, ticket: int) -> bool:
        return self._wanted.get(kind) == ticket

    # -- catalog ---------------------------------------------------------------------------------
    def load_catalog(self, refresh: bool = False) -> None:
        """Read the catalog (fetching the remote one if set) in a worker, then show it."""
        ticket = self._ticket("catalog")
        self.workers.submit(partial(load_catalog, self.catalog_url, refresh=refresh),
                            on_done=lambda catalog: self._catalog_loaded(catalog, ticket),
                            on_error=lambda exc: self._catalog_failed(exc, ticket))

    def set_catalog_url(self, url: str | None) -> None:
        self.catalog_url = url or None

    def show_catalog(self, catalog: Catalog) -> None:
        """Show *catalog* (say, one the settings page has just fetched)."""
        self._ticket("catalog")  # a load still under way is no longer wanted
        self._catalog_loaded(catalog, self._wanted["catalog"])

    def _catalog_loaded(self, catalog: Catalog, ticket: int) -> None:
        if not self._still_wanted("catalog", ticket):
            return
        self.catalog = catalog
        self.catalog_tab.show_catalog(catalog)
        self._match_installed()
        fits_ticket = self._ticket("fits")
        self.workers.submit(catalog_fits, list(catalog.entries), self.engine.state == "ready",
                            on_done=lambda fits: self._fits_ready(fits, fits_ticket))

    def _fits_ready(self, fits: dict[str, MemoryFit], ticket: int) -> None:
        if self._still_wanted("fits", ticket):
            self.catalog_tab.model.set_fits(fits)

    def _catalog_failed(self, exc: Exception, ticket: int) -> None:
        if self._still_wanted("catalog", ticket):
            self.catalog_tab.source.setText(f"The catalog could not be read: {exc}")
            self.catalog_tab.source.show()

    # -- the library -----------------------------------------------------------------------------
    def refresh_library(self) -> None:
        """Scan the models folder again (in a worker); installedChanged follows."""
        ticket = self._ticket("library")
        self.workers.submit(installed_models,
                            on_done=lambda found: self._scanned(found, ticket),
                            on_error=lambda exc: self.installed_tab.status.setText(
                                f"The models folder could not be read: {exc}"))

    def _scanned(self, found: list[InstalledModel], ticket: int) -> None:
        if not self._still_wanted("library", ticket):
            return
        self.set_installed(found)
        self.installedChanged.emit(found)

    def set_installed(self, models: list[InstalledModel]) -> None:
        """Show the library as a scan found it."""
        self.models = list(models)
        self.installed_tab.set_models(self.models)
        self._engine_status(self.engine.status)
        self._match_installed()

    def _match_installed(self) -> None:
        if self.catalog is None:
            return
        installed: dict[str, str] = {}
        by_path = {m.path: m.id for m in self.models if m.loadable}
        for entry in self.catalog.entries:
            match = next((m.id for m in self.models if m.loadable and m.catalog is not None
                          and m.catalog.id == entry.id), None)
            if match is None:
                try:
                    path = destination(entry.repo_id, entry.files[0], self.downloads.models_dir)
                except ValueError:
                    continue
                match = by_path.get(path)
            if match is not None:
                installed[entry.id] = match
        self.catalog_tab.model.set_installed(installed)

    def _engine_status(self, status: dict[str, Any]) -> None:
        model = (status or {}).get("model") or {}
        self.installed_tab.model.set_loaded(model.get("id"))
        self.catalog_tab.model.set_loaded(model.get("id"))

    def say(self, text: str) -> None:
        """Tell the user, above the tabs, what a load or a download came to."""
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def load(self, model_id: str) -> None:
        """Load *model_id* in the engine; modelLoaded follows, or the reason it failed."""
        self.say(f"Loading {model_id}…")
        self.engine.load_model(model_id, self.load_options(model_id),
                               on_done=lambda _: self._loaded(model_id),
                               on_error=lambda exc: self.say(f"Could not load {model_id}: {exc}"))

    def _loaded(self, model_id: str) -> None:
        self.say(f"{model_id} is loaded; the chat uses it now.")
        self.installed_tab.model.set_loaded(model_id)
        self.catalog_tab.model.set_loaded(model_id)
        self.modelLoaded.emit(model_id)

    def remove(self, model_id: str) -> None:
        """Ask, then remove *model_id* from the library (never the starter model)."""
        model = next((m for m in self.models if m.id == model_id), None)
        if model is None or model.bundled:
            return
        if model.registered:
            what = f"NoMoat forgets it; the file stays where it is ({model.path})."
        else:
            what = (f"Its file ({model.path.name}, {len(model.files)} file(s)) is deleted from "
                    "the models folder.")
        if model_id == self.installed_tab.model.loaded:
            what += " It is loaded now: the engine keeps it until another model is loaded."
        answer = QMessageBox.question(
            self, "Remove model", f"Remove {model.name}? {what}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.installed_tab.status.setText(f"Removing {model.name}…")
        self.workers.submit(remove_model, model_id, serial=True,
                            on_done=lambda removed: self._removed(removed),
                            on_error=lambda exc: self.installed_tab.status.setText(
                                f"Could not remove {model.name}: {exc}"))

    def _removed(self, model: InstalledModel) -> None:
        self.refresh_library()
        self.installed_tab.status.setText(f"Removed {model.name}.")

    def import_file(self) -> None:
        """Pick a .gguf file and add it to the library (copied, or used where it is)."""
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", str(Path.home()),
                                              "GGUF models (*.gguf);;All files (*)")
        if not path:
            return
        copy = self.installed_tab.copy_imports.isChecked()
        name = Path(path).name
        self.installed_tab.status.setText(f"{'Copying' if copy else 'Adding'} {name}…")
        self.installed_tab.import_button.setEnabled(False)
        self.workers.submit(partial(import_model, path, copy=copy,
                                    on_progress=self._import_progress), serial=True,
                            on_done=self._imported, on_error=self._import_failed)

    def _import_progress(self, done: int, total: int) -> None:
        # Called in the worker: only a signal may leave it, and not too often.
        now = time.monotonic()
        if now - self._import_shown >= PROGRESS_INTERVAL or done == total:
            self._import_shown = now
            self._importProgress.emit(done, total)

    def _show_import_progress(self, done: int, total: int) -> None:
        if total:
            self.installed_tab.status.setText(f"Copying: {done * 100 // total}%…")

    def _imported(self, model: InstalledModel) -> None:
        self.installed_tab.import_button.setEnabled(True)
        self.refresh_library()
        self.installed_tab.status.setText(f"Imported {model.name} as '{model.id}'.")

    def _import_failed(self, exc: Exception) -> None:
        self.installed_tab.import_button.setEnabled(True)
        self.installed_tab.status.setText(f"Could not import: {exc}")

    # -- downloads ---------------------------------------------------------------------------------
    def _download_finished(self, event: DownloadEvent) -> None:
        if event.state is State.DONE:
            name = event.key.rsplit("/", 1)[-1]
            self.say(f"{name} was downloaded and checked; Installed lists it, ready to load.")
            self.refresh_library()

    # -- the hub ---------------------------------------------------------------------------------
    def set_hub(self, endpoint: str | None, token: str | None) -> None:
        """The hub (or mirror) and token for searches and downloads from now on."""
        self.hub_endpoint = endpoint or None
        self.hub_token = token or None
        self.catalog_tab.hub_endpoint = self.hub_endpoint
        self.downloads.set_hub(self.hub_endpoint, self.hub_token)

    def search(self, text: str, sort: str) -> None:
        ticket = self._ticket("search")
        self.explore_tab.show_status(f"Searching for '{text}'…" if text else "Searching…")
        order: Sort = "likes" if sort == "likes" else "downloads"
        self.workers.submit(partial(search_models, text, sort=order, endpoint=self.hub_endpoint,
                                    token=self.hub_token),
                            on_done=lambda found: self._found(found, text, ticket),
                            on_error=lambda exc: self._hub_failed(exc, "search", ticket))

    def _found(self, found: list[HubModel], text: str, ticket: int) -> None:
        if not self._still_wanted("search", ticket):
            return
        self.explore_tab.show_results(found)
        if found:
            self.explore_tab.show_status(f"{len(found)} GGUF model repos. Choose one to see "
                                         "its files.")
        else:
            self.explore_tab.show_status(f"No GGUF model repos match '{text}'.")

    def list_files(self, repo_id: str) -> None:
        ticket = self._ticket("files")
        self.explore_tab.show_files([])
        self.explore_tab.show_status(f"Listing the GGUF files of {repo_id}…")
        self.workers.submit(partial(list_gguf_files, repo_id, endpoint=self.hub_endpoint,
                                    token=self.hub_token),
                            on_done=lambda files: self._listed(files, repo_id, ticket),
                            on_error=lambda exc: self._hub_failed(exc, "files", ticket))

    def _listed(self, files: list[GgufFile], repo_id: str, ticket: int) -> None:
        if not self._still_wanted("files", ticket):
            return
        self.explore_tab.show_files(files)
        self.explore_tab.show_status(f"{repo_id} has {len(files)} GGUF models." if files else
                                     f"{repo_id} has no GGUF model files.")

    def _hub_failed(self, exc: Exception, kind: str, ticket: int) -> None:
        if self._still_wanted(kind, ticket):
            self.explore_tab.show_status(str(exc))

    def download_file(self, file: GgufFile) -> None:
        self.downloads.start(file.request())
        self.explore_tab.show_status(f"Downloading {file.filename}; the Downloads tab shows "
                                     "how it goes.")
