"""Noticing, while NoMoat runs, that files in the document collections' folders changed.

A QFileSystemWatcher watches every folder of every collection (it is not recursive) and, as
far as the limit allows, their files: a folder's signal says that entries came, went or were
renamed in it, a file's that it was written in place. Events are gathered until none has come
for a moment (a save writes several times, a copy many files), and then the collection is
looked at on a worker: a walk that only stats files, compared with the index. Only when that
finds a difference is :attr:`DocsWatcher.changed` emitted, so an editor's swap file or a log
that NoMoat writes itself never starts an indexing. The same look lists the folders and files
to watch, so new subfolders are watched from then on.

What the watcher cannot see is found by looking again on a timer: every few minutes for every
collection (network drives send no events), and more often for a collection with more folders
and files than may be watched, or with a folder that is not there now.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from desktop.core.docs.records import CollectionNotFound
from desktop.core.docs.scanning import looks_changed, scan_roots
from desktop.core.docs.store import DocStore
from desktop.core.paths import get_paths
from desktop.ui.workers import Workers

#: Watches at most, in all, where the system's own limit is not known. Off Linux a watch costs
#: a handle (Windows) or a descriptor, so fewer are taken.
DEFAULT_LIMIT = 8192 if sys.platform.startswith("linux") else 1024
_INOTIFY_WATCHES = "/proc/sys/fs/inotify/max_user_watches"


@dataclass(frozen=True)
class WatchTiming:
    """How long the watcher waits, in seconds."""

    debounce: float = 2.0  # after the last event, before looking
    longest: float = 30.0  # the most that events coming on and on put a look off
    partial: float = 60.0  # between looks at collections not wholly watched
    safety: float = 300.0  # between looks at every collection


#: The timing a new watcher takes (tests make it shorter).
TIMING = WatchTiming()


def watch_limit() -> int:
    """How many folders and files one window may watch: on Linux a quarter of what inotify
    allows this user (other programs need theirs), never more than :data:`DEFAULT_LIMIT`."""
    try:
        with open(_INOTIFY_WATCHES, encoding="ascii") as handle:
            allowed = int(handle.read().strip())
    except (OSError, ValueError):
        return DEFAULT_LIMIT
    return max(1, min(DEFAULT_LIMIT, allowed // 4))


def own_folders() -> list[str]:
    """NoMoat's own folders: what it writes there (its index, its logs) is no change to the
    user's documents, even when a collection holds them."""
    paths = get_paths()
    return [os.path.normpath(os.path.abspath(folder))
            for folder in (paths.models, paths.adapters, paths.chats, paths.settings,
                           paths.logs, paths.cache)]


@dataclass(frozen=True)
class Look:
    """What a look at a collection found: the paths to watch (folders first, at most the
    limit), whether that is all of them, and whether its files differ from its index."""

    collection_id: int
    roots: tuple[str, ...]
    paths: list[str]
    complete: bool
    changed: bool


def _inside(path: str, folder: str) -> bool:
    path = os.path.normpath(os.path.abspath(path))
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def look_at(store: DocStore, collection_id: int, limit: int, own: list[str]) -> Look:
    """Walk a collection's roots and compare what is there with its index (on a worker)."""
    collection = store.collection(collection_id)
    roots = collection.roots
    # NoMoat's folders are left out, unless a root is inside one of them.
    skip = [folder for folder in own if not any(_inside(root, folder) for root in roots)]
    scan = scan_roots(roots, skip=skip)
    known = {record.path: record for record in store.files(collection_id)}
    paths = [*scan.folders, *scan.files]
    complete = len(paths) <= limit and not scan.missing_roots and not scan.truncated
    return Look(collection_id, roots, paths[:limit], complete, looks_changed(known, scan, skip))


class DocsWatcher(QObject):
    """Watches the collections' folders and says which collections changed on disk.

    *may_look* says whether a collection may be looked at now (not while it is being indexed
    or waits for it: :meth:`after_pass` looks at it once its indexing ends). Timers and
    watches end with :meth:`stop`.
    """

    changed = Signal(int)  # a collection whose files differ from its index
    problem = Signal(int, str)  # a collection that could not be looked at, and why

    def __init__(self, workers: Workers, store: Callable[[], DocStore | None],
                 may_look: Callable[[int], bool], timing: WatchTiming | None = None,
                 limit: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.store = store
        self.may_look = may_look
        self.timing = timing or TIMING
        #: how many folders and files may be watched, for all collections together
        self.limit = limit if limit is not None else watch_limit()
        self._own = own_folders()
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._event)
        self._watcher.fileChanged.connect(self._event)
        self._roots: dict[int, tuple[str, ...]] = {}
        self._paths: dict[int, set[str]] = {}  # what each collection has watched
        self._partial: set[int] = set()  # collections not wholly watched
        self._dirty: set[int] = set()  # collections to look at
        self._looking: set[int] = set()
        self._since: float | None = None  # when the first event not looked at yet came
        self._stopped = False
        self._debounce = self._timer(self.timing.debounce, self._look_now, single=True)
        self._partial_timer = self._timer(self.timing.partial, self._look_partial)
        self._safety_timer = self._timer(self.timing.safety, self._look_all)

    def _timer(self, seconds: float, slot: Callable[[], None], single: bool = False) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(single)
        timer.setInterval(max(1, round(seconds * 1000)))
        timer.timeout.connect(slot)
        return timer

    # -- what is watched -------------------------------------------------------------------------
    def set_collections(self, roots: Mapping[int, tuple[str, ...]]) -> None:
        """The collections as last read: those gone stop being watched, those new or with
        other roots are looked at (and watched) soon."""
        if self._stopped:
            return
        for collection_id in set(self._roots) - set(roots):
            self._forget(collection_id)
        for collection_id, folders in roots.items():
            if not folders:
                self._forget(collection_id)
            elif self._roots.get(collection_id) != folders:
                self._forget(collection_id)  # a root taken out is not watched from now
                self._roots[collection_id] = folders
                self._dirty.add(collection_id)
                self._soon()
        if self._roots and not self._safety_timer.isActive():
            self._safety_timer.start()
        elif not self._roots:
            self._safety_timer.stop()

    def after_pass(self, collection_id: int) -> None:
        """A collection's indexing ended: look at it again soon, for what changed meanwhile
        and for the folders to watch."""
        if self._stopped or collection_id not in self._roots:
            return
        self._dirty.add(collection_id)
        self._soon()

    def watched(self) -> list[str]:
        """The folders and files watched now."""
        return [*self._watcher.directories(), *self._watcher.files()]

    def _forget(self, collection_id: int) -> None:
        self._roots.pop(collection_id, None)
        self._dirty.discard(collection_id)
        self._partial.discard(collection_id)
        if not self._partial:
            self._partial_timer.stop()
        self._unwatch(self._paths.pop(collection_id, set()))

    def _others(self, collection_id: int | None = None) -> set[str]:
        """The paths the collections but *collection_id* watch (a folder may be in two)."""
        return set().union(*(paths for other, paths in self._paths.items()
                             if other != collection_id))

    def _unwatch(self, paths: set[str]) -> None:
        """Stop watching *paths*, but for those another collection still watches."""
        gone = (paths - self._others()) & set(self.watched())
        if gone:
            self._watcher.removePaths(sorted(gone))

    def _watch(self, look: Look) -> None:
        """Watch what the look found, as far as the limit allows."""
        others = self._others(look.collection_id)
        room = self.limit - len(others)
        chosen: set[str] = set()
        for path in look.paths:
            if path in others:
                chosen.add(path)
            elif room > 0:
                chosen.add(path)
                room -= 1
        old = self._paths.get(look.collection_id, set())
        self._paths[look.collection_id] = chosen
        self._unwatch(old - chosen)
        # A watch ends by itself when its file is deleted or replaced: add what is not watched
        # now, whatever was asked before.
        new = sorted(chosen - set(self.watched()))
        if new:
            chosen.difference_update(self._watcher.addPaths(new))  # gone since the look
        if look.complete and len(chosen) >= len(look.paths):
            self._partial.discard(look.collection_id)
        else:
            self._partial.add(look.collection_id)
        if self._partial and not self._partial_timer.isActive():
            self._partial_timer.start()
        elif not self._partial:
            self._partial_timer.stop()

    # -- events and looks ------------------------------------------------------------------------
    def _event(self, path: str) -> None:
        owners = [cid for cid, paths in self._paths.items() if path in paths]
        if owners and not self._stopped:
            self._dirty.update(owners)
            self._soon()

    def _soon(self) -> None:
        """Look once no event has come for a moment, but put off by events for no longer
        than ``timing.longest``."""
        now = time.monotonic()
        if self._since is None or not self._debounce.isActive():
            self._since = now
            self._debounce.start()
        elif now - self._since < self.timing.longest:
            self._debounce.start()  # starts the wait again

    def _look_partial(self) -> None:
        self._dirty.update(self._partial)
        self._look_now()

    def _look_all(self) -> None:
        self._dirty.update(self._roots)
        self._look_now()

    def _look_now(self) -> None:
        self._since = None
        store = self.store()
        if self._stopped or store is None:
            return
        for collection_id in sorted(self._dirty):
            if collection_id in self._looking or not self.may_look(collection_id):
                continue  # looked at when its look or its indexing ends
            self._dirty.discard(collection_id)
            self._looking.add(collection_id)
            self.workers.submit(look_at, store, collection_id, self.limit, list(self._own),
                                on_done=self._looked,
                                on_error=partial(self._failed, collection_id))

    def _looked(self, look: Look) -> None:
        self._looking.discard(look.collection_id)
        if self._stopped:
            return
        if look.collection_id in self._dirty:
            self._soon()  # events came during the look, or its roots changed
        if self._roots.get(look.collection_id) != look.roots:
            return  # taken out, or its roots changed since
        self._watch(look)
        if look.changed:
            self.changed.emit(look.collection_id)

    def _failed(self, collection_id: int, exc: Exception) -> None:
        self._looking.discard(collection_id)
        if self._stopped or isinstance(exc, CollectionNotFound):
            return  # deleted meanwhile: the next read of the collections forgets it
        self.problem.emit(collection_id, str(exc))

    # -- quitting --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every timer and watch; nothing more is looked at."""
        self._stopped = True
        for timer in (self._debounce, self._partial_timer, self._safety_timer):
            timer.stop()
        watched = self.watched()
        if watched:
            self._watcher.removePaths(watched)
        self._roots.clear()
        self._paths.clear()
        self._dirty.clear()
        self._partial.clear()
