"""The document collections for the whole window: the index, indexing in the background, and
what the Documents page and the chat need to know of them.

Nothing here touches SQLite or the engine on the GUI thread: reads and changes go to workers
(changes in the serial lane, so they keep their order), and one collection at a time is indexed
by a long task on the pool, which reports its progress through a signal carrying plain data.
Embeddings come from the local engine, which loads the embedding model beside the chat model.
When NoMoat starts, every collection is brought up to date (what changed while it was closed;
an indexing cut short goes on where it was); while it runs, what changes in the collections'
folders is indexed by itself (desktop.ui.docs_watcher notices it). Nothing is indexed without
an embedding model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.client.api import EngineError
from desktop.client.docs import NoEmbeddingModel, choose_embedding_model, engine_embed
from desktop.core.docs.indexer import Indexer, IndexProgress, IndexReport
from desktop.core.docs.records import Collection, CollectionNotFound
from desktop.core.docs.store import DocStore
from desktop.core.docs.vectors import Embed, EmbeddingError
from desktop.core.gguf_info import EMBEDDING
from desktop.core.library import InstalledModel
from desktop.ui.chat_docs import DocsFound, search_documents
from desktop.ui.docs_watcher import DocsWatcher, WatchTiming
from desktop.ui.engine import EngineController
from desktop.ui.workers import Workers

#: Unreadable files listed for a collection; the count says how many there are in all.
MAX_UNREADABLE_SHOWN = 200
PROGRESS_INTERVAL = 0.1  # seconds between progress reports from the indexing worker
NO_MODEL = ("Documents are searched with an embedding model, and none is installed: download "
            "Nomic Embed Text v1.5 (nomic-embed-text-v1-5) on the Models page, or import a GGUF "
            "embedding model there.")


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as the Documents page shows it: its counts and folders, the embedding
    model most of it was indexed with, and its unreadable files with the reasons."""

    collection: Collection
    model: str | None
    unreadable: tuple[tuple[str, str], ...]

    @property
    def id(self) -> int:
        return self.collection.id

    @property
    def name(self) -> str:
        return self.collection.name


def read_collections(store: DocStore) -> list[CollectionInfo]:
    """Every collection with what the page shows of it (on a worker)."""
    infos = []
    for collection in store.collections():
        models = store.embedding_models(collection.id)
        unreadable = store.unreadable_files(collection.id)[:MAX_UNREADABLE_SHOWN]
        infos.append(CollectionInfo(collection, list(models)[-1] if models else None,
                                    tuple((f.path, f.error or "") for f in unreadable)))
    return infos


class _Run:
    """The indexing under way: its collection, its indexer, and when it last reported."""

    def __init__(self, collection_id: int, indexer: Indexer) -> None:
        self.collection_id = collection_id
        self.indexer = indexer
        self.reported = 0.0
        self.last: IndexProgress | None = None


class DocsController(QObject):
    """The document index, its collections, and the indexing of them, for every page."""

    collectionsChanged = Signal(object)  # list[CollectionInfo]
    indexingChanged = Signal()  # a collection began or ended indexing, waits, or paused
    progressChanged = Signal(object)  # IndexProgress of the collection being indexed
    message = Signal(str)  # what went wrong (or what the user should know), in words
    renamed = Signal(str, str)  # a collection's old name and its new one
    _progress = Signal(object)  # IndexProgress, from the indexing worker

    def __init__(self, engine: EngineController, workers: Workers,
                 wanted_model: Callable[[], str | None] = lambda: None,
                 parent: QObject | None = None, watch_timing: WatchTiming | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.workers = workers
        #: the embedding model the settings name (None: the first installed)
        self.wanted_model = wanted_model
        self.store: DocStore | None = None
        self.collections: list[CollectionInfo] = []
        self.read = False  # whether the collections have been read from the index yet
        self.models: list[InstalledModel] | None = None  # None until the library is read
        self.waiting: list[int] = []  # collections to index, in order
        self.progress: IndexProgress | None = None  # of the collection being indexed
        self._run: _Run | None = None
        self._read_ticket = 0
        self._answered_ticket = 0  # the last read that came back (or failed)
        self._caught_up = False  # whether the start-up check of every collection was asked
        self._closed = False
        # Cancelled by the user, or failed: not indexed again by themselves (Index again is).
        self._held: set[int] = set()
        self._again: set[int] = set()  # asked to index while being indexed: once more after
        self._progress.connect(self._on_progress)
        self.watcher = DocsWatcher(workers, lambda: self.store, self._may_look, watch_timing,
                                   parent=self)
        self.watcher.changed.connect(self._changed_on_disk)
        self.watcher.problem.connect(self._look_failed)
        engine.stateChanged.connect(lambda *_: self._next())

    # -- opening and reading ---------------------------------------------------------------------
    def open(self) -> None:
        """Open (or create) the index on a worker, then read the collections."""
        self.workers.submit(lambda: DocStore().open(), on_done=self._opened,
                            on_error=lambda exc: self.message.emit(str(exc)), serial=True)

    def _opened(self, store: DocStore) -> None:
        if self._closed:
            store.close()
            return
        self.store = store
        self.refresh()

    def refresh(self) -> None:
        """Read the collections again (on a worker); collectionsChanged follows."""
        store = self.store
        if store is None or self._closed:
            return
        self._read_ticket += 1
        ticket = self._read_ticket
        self.workers.submit(read_collections, store,
                            on_done=lambda infos: self._read(infos, ticket),
                            on_error=lambda exc: self._unread(exc, ticket))

    @property
    def reading(self) -> bool:
        """Whether the collections are being read again (their cards are about to change)."""
        return self._answered_ticket != self._read_ticket

    def _unread(self, exc: Exception, ticket: int) -> None:
        self._answered_ticket = max(self._answered_ticket, ticket)
        self.message.emit(f"The document collections could not be read: {exc}")

    def _read(self, infos: list[CollectionInfo], ticket: int) -> None:
        self._answered_ticket = max(self._answered_ticket, ticket)
        if ticket != self._read_ticket:
            return  # a newer read is on its way
        self.collections = infos
        self.read = True
        self._held &= {info.id for info in infos}
        self.collectionsChanged.emit(list(infos))
        self.watcher.set_collections({info.id: info.collection.roots for info in infos})
        self._catch_up()

    def set_models(self, models: Sequence[InstalledModel]) -> None:
        """The library as last read: whether there is an embedding model to index with."""
        had_none = self.models is None or bool(self.model_problem())
        self.models = list(models)
        self.indexingChanged.emit()
        if had_none and not self.model_problem():
            self._caught_up = False  # collections waiting for a model are indexed now
        self._catch_up()
        self._next()

    def model_problem(self) -> str:
        """Why nothing can be indexed now ("" when an embedding model is installed)."""
        if self.models is None:
            return ""
        ready = [m for m in self.models if m.kind == EMBEDDING and m.problem is None]
        return "" if ready else NO_MODEL

    def info(self, collection_id: int) -> CollectionInfo | None:
        return next((c for c in self.collections if c.id == collection_id), None)

    def names(self) -> list[str]:
        """The collections' names, as last read (for the chat's documents button)."""
        return [c.name for c in self.collections]

    # -- changes ---------------------------------------------------------------------------------
    def _change(self, work: Callable[[DocStore], Any], after: Callable[[Any], None] | None = None,
                failed: str = "") -> None:
        """Run *work* on the store in the serial lane, then read the collections again."""
        store = self.store
        if store is None:
            self.message.emit("The document index is not open yet. Try again in a moment.")
            return

        def done(result: Any) -> None:
            self.refresh()
            if after is not None:
                after(result)

        def error(exc: Exception) -> None:
            self.message.emit(f"{failed}{exc}")
            self.refresh()

        self.workers.submit(work, store, on_done=done, on_error=error, serial=True)

    def create(self, name: str) -> None:
        """Make an empty collection called *name*."""
        self._change(lambda store: store.create_collection(name),
                     failed="The collection was not made: ")

    def rename(self, collection_id: int, name: str) -> None:
        """Give a collection a new name (the chats that answer from it follow)."""
        info = self.info(collection_id)
        self._change(lambda store: store.rename_collection(collection_id, name),
                     (lambda collection: self.renamed.emit(info.name, collection.name))
                     if info is not None else None,
                     failed="The collection was not renamed: ")

    def delete(self, collection_id: int) -> None:
        """Delete a collection's index (never the documents); its indexing stops first."""
        self.cancel(collection_id)
        self._change(lambda store: store.delete_collection(collection_id),
                     failed="The collection was not deleted: ")

    def add(self, collection_id: int, paths: Sequence[str]) -> None:
        """Add folders or files to a collection and index it at once."""
        paths = [os.fspath(p) for p in paths]

        def work(store: DocStore) -> None:
            for path in paths:
                store.add_root(collection_id, path)

        self._change(work, lambda _: self.index(collection_id),
                     failed="The folders were not added: ")

    def remove_root(self, collection_id: int, path: str) -> None:
        """Take a folder or file out of a collection (its passages go with it)."""
        running = self._run is not None and self._run.collection_id == collection_id
        if running:
            self.cancel(collection_id)  # it would go on reading the folder taken out
        self._change(lambda store: store.remove_root(collection_id, path),
                     (lambda _: self.index(collection_id)) if running else None,
                     failed="The folder was not taken out: ")

    # -- indexing --------------------------------------------------------------------------------
    def index(self, collection_id: int) -> None:
        """Bring a collection up to date (only what changed is read again), now or after the
        ones before it; asked while it is being indexed, once more after that."""
        self._held.discard(collection_id)
        if self.indexing == collection_id:
            self._again.add(collection_id)
            return
        if collection_id in self.waiting:
            return
        self.waiting.append(collection_id)
        self.indexingChanged.emit()
        self._next()

    @property
    def indexing(self) -> int | None:
        """The collection being indexed now, if any."""
        return self._run.collection_id if self._run is not None else None

    @property
    def paused(self) -> bool:
        return self._run is not None and self._run.indexer.paused

    def pause(self) -> None:
        if self._run is not None:
            self._run.indexer.pause()
            self.indexingChanged.emit()

    def resume(self) -> None:
        if self._run is not None:
            self._run.indexer.resume()
            self.indexingChanged.emit()

    def cancel(self, collection_id: int) -> None:
        """Stop indexing a collection (after the batch under way), or take it off the queue;
        what was indexed stays, and Index again goes on from there."""
        self._again.discard(collection_id)
        if collection_id in self.waiting:
            self.waiting.remove(collection_id)
            self._held.add(collection_id)
            self.indexingChanged.emit()
        if self._run is not None and self._run.collection_id == collection_id:
            self._held.add(collection_id)
            self._run.indexer.cancel()

    # -- changes on disk -------------------------------------------------------------------------
    def _may_look(self, collection_id: int) -> bool:
        """Whether the watcher may look for changes in a collection now: not while it is
        indexed or waits for it (it looks once that ends), nor when it could not be indexed."""
        return (not self._closed and self.store is not None and self.models is not None
                and not self.model_problem() and self.indexing != collection_id
                and collection_id not in self.waiting and collection_id not in self._held)

    def _changed_on_disk(self, collection_id: int) -> None:
        if self._may_look(collection_id):  # still: the user may have cancelled meanwhile
            self.index(collection_id)

    def _look_failed(self, collection_id: int, reason: str) -> None:
        info = self.info(collection_id)
        if info is not None:
            self.message.emit(f"Changes in the folders of {info.name} could not be looked for "
                              f"({reason}); they are looked for again in a few minutes.")

    def _catch_up(self) -> None:
        """Once, when the index, the library and the collections are known: bring every
        collection up to date."""
        if self._caught_up or not self.read or self.models is None or self.model_problem():
            return
        self._caught_up = True
        for info in self.collections:
            if info.collection.roots:
                self.index(info.id)

    def _next(self) -> None:
        """Start indexing the next collection that waits, when everything needed is there."""
        if (self._closed or self._run is not None or not self.waiting or self.store is None
                or self.models is None or self.engine.state != "ready" or self.model_problem()):
            return
        collection_id = self.waiting.pop(0)
        info = self.info(collection_id)
        try:
            model = choose_embedding_model(self.models, self.wanted_model(),
                                           info.model if info is not None else None)
        except NoEmbeddingModel:
            # The model it was indexed with is gone: indexed again with the one there is.
            model = choose_embedding_model(self.models, None)
        indexer = Indexer(self.store, self._embed(model), model)
        self._run = _Run(collection_id, indexer)
        self.progress = IndexProgress(collection_id, "scanning")
        self.indexingChanged.emit()
        self.workers.submit(self._index, self._run,
                            on_done=self._indexed, on_error=lambda exc: self._failed(
                                collection_id, exc))

    def _embed(self, model: str) -> Embed:
        supervisor = self.engine.supervisor

        def embed(texts: list[str]) -> Sequence[Sequence[float]]:
            try:
                client = supervisor.client  # waits while the engine restarts
            except EngineError as exc:
                raise EmbeddingError(str(exc)) from exc
            return engine_embed(client, model)(texts)

        return embed

    def _index(self, run: _Run) -> IndexReport:
        """The worker: index the collection, reporting at most every PROGRESS_INTERVAL."""

        def report(progress: IndexProgress) -> None:
            now = time.monotonic()
            last = run.last
            run.last = progress
            if (last is None or progress.phase != last.phase or progress.paused != last.paused
                    or now - run.reported >= PROGRESS_INTERVAL):
                run.reported = now
                self._progress.emit(progress)

        result = run.indexer.run(run.collection_id, report)
        if run.last is not None:
            self._progress.emit(run.last)  # the last word, however soon after the one before
        return result

    def _on_progress(self, progress: IndexProgress) -> None:
        if self._run is not None and progress.collection_id == self._run.collection_id:
            # ``paused`` is the indexer's word: it has stopped at a batch (the page shows the
            # button's state at once, from :attr:`paused`).
            self.progress = progress
            self.progressChanged.emit(progress)

    def _ended(self, collection_id: int, stopped: bool) -> None:
        """An indexing ended: a collection asked for meanwhile goes on the queue again, one
        cancelled or failed is left alone, and the watcher looks for what changed meanwhile."""
        self._run = None
        self.progress = None
        if collection_id in self._again:
            self._again.discard(collection_id)
            self.waiting.append(collection_id)
        elif stopped:
            self._held.add(collection_id)
        self.indexingChanged.emit()
        self.refresh()
        self.watcher.after_pass(collection_id)
        self._next()

    def _indexed(self, report: IndexReport) -> None:
        info = self.info(report.collection_id)
        self._ended(report.collection_id, report.cancelled)
        name = info.name if info is not None else "the collection"
        if report.missing_roots:
            self.message.emit(f"Some folders of {name} are not there now ("
                              f"{', '.join(report.missing_roots)}); their files are kept until "
                              "they are back.")
        elif report.truncated:
            self.message.emit(f"{name} has too many files; only the first ones were indexed. "
                              "Choose smaller folders.")

    def _failed(self, collection_id: int, exc: Exception) -> None:
        info = self.info(collection_id)
        self._ended(collection_id, stopped=True)
        if isinstance(exc, CollectionNotFound) or info is None:
            return  # deleted while it was being indexed
        self.message.emit(f"Indexing {info.name} stopped: {exc} What was indexed is kept; "
                          "choose Index again to go on.")

    # -- the chat --------------------------------------------------------------------------------
    def search(self, names: list[str], question: str, context: int) -> DocsFound:
        """The passages for a chat's turn (called on the turn's worker)."""
        return search_documents(self.store, lambda: self.engine.supervisor.client, names,
                                question, context)

    # -- quitting --------------------------------------------------------------------------------
    def stop(self) -> None:
        """At quit, before the workers are waited for: the indexing under way ends after its
        batch, nothing else starts, and nothing is watched any more."""
        self._closed = True
        self.watcher.stop()
        self.waiting.clear()
        if self._run is not None:
            self._run.indexer.cancel()

    def close(self) -> None:
        """Once the workers are done: close the index."""
        self.stop()
        if self.store is not None:
            self.store.close()
            self.store = None
