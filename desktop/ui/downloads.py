"""The window's handle on downloads: owns the DownloadManager and turns its events into signals.

The manager calls back from its download threads; those calls only emit a signal, which Qt
queues to the GUI thread. Progress is coalesced there and handed on at most about four times a
second per download, so a fast download never floods the window with repaints; changes of
state (paused, failed, done...) go out at once.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.download_manager import DownloadManager, DownloadTask
from desktop.core.downloads import (
    NOTE,
    PART,
    DownloadEvent,
    DownloadOptions,
    DownloadRequest,
    State,
    discard_partial,
)

REFRESH_MS = 250  # progress reaches the window at most this often
LEFT_OVER = ("Stopped when NoMoat last closed; Resume continues from the bytes already "
             "fetched.")


def unfinished_downloads(models_dir: Path) -> list[tuple[DownloadRequest, DownloadEvent]]:
    """Downloads an earlier run left unfinished, from the notes next to their .part files,
    each with a PAUSED event (this reads the disk: call it in a worker)."""
    found: dict[str, tuple[DownloadRequest, int, int, int]] = {}
    for note in sorted(models_dir.rglob("*" + NOTE)):
        try:
            doc = json.loads(note.read_text(encoding="utf-8"))
            part = note.with_name(note.name[:-len(NOTE)] + PART)
            done = part.stat().st_size if part.exists() else 0
            request = DownloadRequest.of(str(doc["repo_id"]), str(doc["filename"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a note this version can read: the download starts over when asked
        size = doc.get("size") if isinstance(doc.get("size"), int) else 0
        _, had, total, notes = found.get(request.key, (request, 0, 0, 0))
        found[request.key] = (request, had + done, total + size, notes + 1)
    left = []
    for key, (request, done, total, notes) in found.items():
        known = total if notes == len(request.files) else None  # every part's size is known
        left.append((request, DownloadEvent(key, State.PAUSED, done, known,
                                            filename=request.files[0].filename,
                                            message=LEFT_OVER)))
    return left


class DownloadsController(QObject):
    """Start, pause, resume and cancel downloads; follow them through signals."""

    #: the latest DownloadEvent of a download (progress at most every REFRESH_MS)
    changed = Signal(object)
    #: a DownloadEvent whose state is DONE, FAILED or CANCELLED
    finished = Signal(object)
    _arrived = Signal(object)

    def __init__(self, models_dir: Path, *, max_concurrent: int = 2,
                 options: DownloadOptions | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._events: dict[str, DownloadEvent] = {}
        self._requests: dict[str, DownloadRequest] = {}
        self._pending: dict[str, DownloadEvent] = {}
        self._arrived.connect(self._on_event)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._flush)
        self.manager = DownloadManager(models_dir, max_concurrent=max_concurrent,
                                       options=options, on_event=self._arrived.emit)
        self._closed = False

    @property
    def models_dir(self) -> Path:
        return self.manager.models_dir

    # -- control ---------------------------------------------------------------------------------
    def start(self, request: DownloadRequest) -> None:
        """Queue *request* (the same model again resumes it); events follow."""
        if self._closed:
            return
        self._requests[request.key] = request
        self.manager.submit(request)

    def restart(self, key: str) -> None:
        """Start a finished (cancelled or failed) download of *key* again."""
        request = self._requests.get(key)
        if request is not None:
            self.start(request)

    def pause(self, key: str) -> None:
        task = self._task(key)
        if task is not None:
            task.pause()

    def resume(self, key: str) -> None:
        task = self._task(key)
        if task is not None:
            task.resume()
        else:
            self.restart(key)  # left over from an earlier run: its bytes are picked up

    def show_unfinished(self, left: list[tuple[DownloadRequest, DownloadEvent]]) -> None:
        """List downloads an earlier run left (see unfinished_downloads) as paused."""
        for request, event in left:
            if event.key in self._events or self._closed:
                continue  # started again in this run already
            self._requests[event.key] = request
            self._on_event(event)

    def cancel(self, key: str) -> None:
        """Stop the download and delete its unfinished files (also those of a failed one)."""
        task = self._task(key)
        if task is None:
            request = self._requests.get(key)
            event = self.latest(key)
            if request is not None and event is not None and not event.state.finished:
                discard_partial(request, self.models_dir)  # left over from an earlier run
                self._on_event(replace(event, state=State.CANCELLED, speed=0.0, eta=None,
                                       message="Cancelled; the unfinished download was "
                                       "deleted."))
            return
        if task.state is State.FAILED:
            # The manager leaves a failed download as it is; its kept bytes go on request.
            discard_partial(task.request, self.models_dir)
            self._on_event(replace(task.last_event, state=State.CANCELLED, speed=0.0, eta=None,
                                   message="Cancelled; the unfinished download was deleted."))
            return
        task.cancel()

    def latest(self, key: str) -> DownloadEvent | None:
        """The latest event of the download *key* (pending progress included)."""
        return self._pending.get(key) or self._events.get(key)

    def events(self) -> list[DownloadEvent]:
        """The latest event of every download, oldest download first."""
        return [self.latest(key) or event for key, event in self._events.items()]

    def set_concurrency(self, count: int) -> None:
        """How many downloads run at once; the rest wait in the queue."""
        self.manager.max_concurrent = count

    def set_hub(self, endpoint: str | None, token: str | bool | None) -> None:
        """The hub (or mirror) and token for downloads that start from now on."""
        self.manager.options = replace(self.manager.options, endpoint=endpoint, token=token)

    def close(self) -> None:
        """Pause what is running (the bytes are kept for next time) and join every thread."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        self.manager.close(timeout=15.0)

    def _task(self, key: str) -> DownloadTask | None:
        return next((t for t in self.manager.tasks() if t.key == key), None)

    # -- events (on the GUI thread) ----------------------------------------------------------------
    def _on_event(self, event: DownloadEvent) -> None:
        previous = self.latest(event.key)
        self._events.setdefault(event.key, event)
        if (event.state is State.DOWNLOADING and previous is not None
                and previous.state is State.DOWNLOADING):
            self._pending[event.key] = event  # progress only: the timer hands it on
            if not self._timer.isActive():
                self._timer.start()
            return
        self._pending.pop(event.key, None)
        self._events[event.key] = event
        self.changed.emit(event)
        if event.state.finished:
            self.finished.emit(event)

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            self._timer.stop()
            return
        for key, event in pending.items():
            self._events[key] = event
            self.changed.emit(event)
