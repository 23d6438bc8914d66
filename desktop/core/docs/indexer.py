"""Indexing a collection: finding what changed, reading and chunking those files, embedding the
chunks in batches and saving each file in one transaction.

Runs on whatever thread calls :meth:`Indexer.run` (the window hands it to a worker); it starts
no threads. Progress comes as plain data through a callback. Pause, resume and cancel take
effect between embedding batches. A run stopped any way at all (cancelled, the app closed, the
process killed) leaves every file fully indexed or not at all; running again carries on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from desktop.core.docs.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, chunk_document
from desktop.core.docs.document import Limits, UnreadableDocument
from desktop.core.docs.parsing import document_kind, read_document
from desktop.core.docs.scanning import FoundFile, Work, file_hash, plan_changes, scan_roots
from desktop.core.docs.store import DocStore
from desktop.core.docs.vectors import Embed, EmbeddingError, Matrix, embed_texts

Phase = Literal["scanning", "indexing", "finished", "cancelled"]
# A file's share of the time estimate: its size, but never under this (small files still
# cost a read and a transaction).
_MIN_WEIGHT = 4096


@dataclass(frozen=True)
class IndexProgress:
    """Where an indexing run is: files done of those to read, chunks saved, the file being
    read, an estimate of the seconds left (None until there is something to go on)."""

    collection_id: int
    phase: Phase
    files_done: int = 0
    files_total: int = 0
    chunks: int = 0
    unreadable: int = 0
    current: str | None = None
    seconds_left: float | None = None
    paused: bool = False


@dataclass
class IndexReport:
    """What a run did, counted by kind of change."""

    collection_id: int
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    renamed: int = 0
    deleted: int = 0
    unreadable: int = 0
    chunks: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    #: Roots that were not there (their files were kept), and why the scan stopped early.
    missing_roots: list[str] = field(default_factory=list)
    truncated: bool = False


class _Cancelled(Exception):
    pass


class Indexer:
    """Indexes collections of *store* with the embedding function *embed*, whose vectors are
    recorded as made by *model_id* (a file embedded by another model is embedded again).

    One run at a time per indexer; :meth:`pause`, :meth:`resume` and :meth:`cancel` may be
    called from any thread.
    """

    def __init__(self, store: DocStore, embed: Embed, model_id: str, *, batch_size: int = 32,
                 chunk_size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP,
                 limits: Limits = Limits(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.embed = embed
        self.model_id = model_id
        self.batch_size = max(1, batch_size)
        self.chunk_size = chunk_size
        self.overlap = overlap
        self.limits = limits
        self._clock = clock
        self._go = threading.Event()
        self._go.set()
        self._cancel = threading.Event()
        self._progress: Callable[[IndexProgress], None] | None = None
        self._state = IndexProgress(0, "scanning")
        self._paused_for = 0.0
        self._started = 0.0
        self._weight_total = 0
        self._weight_done = 0

    # -- control (any thread) ------------------------------------------------------------------
    def pause(self) -> None:
        """Stop after the current embedding batch until :meth:`resume`."""
        self._go.clear()

    def resume(self) -> None:
        """Go on after :meth:`pause`."""
        self._go.set()

    def cancel(self) -> None:
        """Stop the run after the current batch; the file being read is left as it was."""
        self._cancel.set()
        self._go.set()

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` is in force."""
        return not self._go.is_set()

    def _checkpoint(self) -> None:
        if not self._go.is_set():
            since = self._clock()
            self._report(paused=True)
            self._go.wait()
            self._paused_for += self._clock() - since
            self._report(paused=False)
        if self._cancel.is_set():
            raise _Cancelled

    def _report(self, **changes: object) -> None:
        self._state = replace(self._state, **changes)  # type: ignore[arg-type]
        if self._progress is not None:
            self._progress(self._state)

    def _seconds_left(self) -> float | None:
        if self._weight_done <= 0:
            return None
        spent = self._clock() - self._started - self._paused_for
        return max(0.0, spent / self._weight_done * (self._weight_total - self._weight_done))

    # -- the run -----------------------------------------------------------------------------
    def run(self, collection_id: int,
            progress: Callable[[IndexProgress], None] | None = None) -> IndexReport:
        """Bring the collection's index up to date with its folders; returns what changed.

        Raises EmbeddingError if the embedding model fails (what was saved stays saved) and
        CollectionNotFound if the collection is deleted meanwhile.
        """
        self._progress = progress
        self._started = self._clock()
        self._paused_for = 0.0
        report = IndexReport(collection_id)
        self._state = IndexProgress(collection_id, "scanning", paused=self.paused)
        try:
            self._run(collection_id, report)
        except _Cancelled:
            report.cancelled = True
            self._report(phase="cancelled", current=None, seconds_left=None)
        finally:
            self._cancel.clear()
            self._progress = None
            report.seconds = self._clock() - self._started - self._paused_for
        return report

    def _run(self, collection_id: int, report: IndexReport) -> None:
        collection = self.store.collection(collection_id)
        self.store.mark_scan(collection_id, finished=False)
        self._report()
        self._checkpoint()
        scan = scan_roots(collection.roots, checkpoint=self._checkpoint)
        report.missing_roots, report.truncated = scan.missing_roots, scan.truncated
        known = {record.path: record for record in self.store.files(collection_id)}
        plan = plan_changes(known, scan, self.model_id, self._hash)
        report.unchanged = len(plan.unchanged) + len(plan.touched)
        for record, found in plan.touched:
            self.store.touch_file(record.id, size=found.size, mtime_ns=found.mtime_ns)
        for record, found in plan.renamed:
            self.store.move_file(record.id, found.path, size=found.size,
                                 mtime_ns=found.mtime_ns)
        report.renamed = len(plan.renamed)
        report.deleted = self.store.delete_files([record.id for record in plan.deleted])
        for folder, reason in scan.errors.items():
            if known.get(folder) is None or known[folder].error != reason:
                self.store.save_unreadable(collection_id, folder, size=0, mtime_ns=0, hash="",
                                           reason=reason, kind="folder")
        self._weight_total = sum(max(w.file.size, _MIN_WEIGHT) for w in plan.work)
        self._weight_done = 0
        self._report(phase="indexing", files_total=len(plan.work))
        for done, work in enumerate(plan.work):
            self._checkpoint()
            self._report(files_done=done, current=work.file.path)
            self._index_file(collection_id, work, report)
            self._weight_done += max(work.file.size, _MIN_WEIGHT)
            self._report(files_done=done + 1, seconds_left=self._seconds_left())
        self.store.mark_scan(collection_id, finished=True)
        self._report(phase="finished", current=None, seconds_left=0.0)

    def _hash(self, found: FoundFile) -> str | None:
        if found.size > self.limits.max_bytes:
            # Too large to index anyway: not worth reading gigabytes to spot a rename.
            return f"large:{found.size}:{found.mtime_ns}"
        return file_hash(found.path)

    def _index_file(self, collection_id: int, work: Work, report: IndexReport) -> None:
        found = work.file
        digest = work.hash or self._hash(found) or ""
        try:
            document = read_document(found.path, self.limits)
            chunks = chunk_document(document, self.chunk_size, self.overlap)
        except UnreadableDocument as exc:
            self._unreadable(collection_id, found, digest, exc.reason, report)
            return
        except Exception as exc:
            # A reader's own failure costs one file, not the run; its name goes in the reason
            # so it can be reported.
            self._unreadable(collection_id, found, digest,
                             f"could not be read ({type(exc).__name__}: {exc})", report)
            return
        vectors = self._embed_chunks([chunk.embedding_text for chunk in chunks])
        self.store.save_file(collection_id, found.path, size=found.size,
                             mtime_ns=found.mtime_ns, hash=digest, kind=document.kind,
                             chunks=chunks, vectors=vectors, model_id=self.model_id,
                             notes=document.notes)
        report.chunks += len(chunks)
        if work.why == "new":
            report.new += 1
        else:
            report.changed += 1
        self._report(chunks=self._state.chunks + len(chunks))

    def _unreadable(self, collection_id: int, found: FoundFile, digest: str, reason: str,
                    report: IndexReport) -> None:
        if not os.path.lexists(found.path):
            return  # gone since the scan: the next run drops it
        self.store.save_unreadable(collection_id, found.path, size=found.size,
                                   mtime_ns=found.mtime_ns, hash=digest, reason=reason,
                                   kind=document_kind(found.path))
        report.unreadable += 1
        self._report(unreadable=self._state.unreadable + 1)

    def _embed_chunks(self, texts: list[str]) -> Matrix:
        parts: list[Matrix] = []
        for start in range(0, len(texts), self.batch_size):
            self._checkpoint()
            parts.append(embed_texts(self.embed, texts[start:start + self.batch_size]))
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        dims = {part.shape[1] for part in parts}
        if len(dims) > 1:
            raise EmbeddingError(f"The embedding model gave vectors of sizes {sorted(dims)} "
                                 "for one file.")
        return np.concatenate(parts)
