"""Several downloads at once: a queue, a limit on how many run together, and worker threads
that report each download's events (what the window uses)."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Self

from desktop.core.download_types import (
    DownloadControl,
    DownloadError,
    DownloadEvent,
    DownloadInterrupted,
    DownloadOptions,
    DownloadRequest,
    EventCallback,
    State,
    discard_partial,
)
from desktop.core.downloads import download
from desktop.core.paths import get_paths


class DownloadTask:
    """One download in a :class:`DownloadManager`; its methods are safe from any thread."""

    def __init__(self, manager: DownloadManager, request: DownloadRequest) -> None:
        self.request = request
        self.last_event = DownloadEvent(request.key, State.QUEUED)
        self.path: Path | None = None
        self.error: DownloadError | None = None
        self._manager = manager
        self._control = DownloadControl()
        self._paused_on_purpose = False

    @property
    def key(self) -> str:
        return self.request.key

    @property
    def state(self) -> State:
        return self.last_event.state

    def pause(self) -> None:
        """Stop transferring and keep the bytes; :meth:`resume` continues where it stopped."""
        self._manager._pause(self)

    def resume(self) -> None:
        """Queue a paused (or failed) download again; it continues from the bytes on disk."""
        self._manager._resume(self)

    def cancel(self) -> None:
        """Stop and delete the unfinished files."""
        self._manager._cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the download is done, failed, cancelled or paused; False on timeout."""
        return self._manager._wait(self, timeout)


class DownloadManager:
    """Runs downloads in worker threads, at most *max_concurrent* at a time; the rest queue.

    *on_event* receives every task's events, in order, from the thread that caused them
    (mostly worker threads; a GUI forwards them to its own thread). :meth:`close` pauses what
    is running, keeping the bytes for next time, and joins every thread.
    """

    def __init__(self, models_dir: Path | None = None, *, max_concurrent: int = 2,
                 options: DownloadOptions | None = None,
                 on_event: EventCallback | None = None) -> None:
        self.models_dir = Path(models_dir) if models_dir is not None else get_paths().models
        self.options = options or DownloadOptions()
        self._on_event = on_event
        self._max = max(1, max_concurrent)
        self._changed = threading.Condition()
        self._queue: deque[DownloadTask] = deque()
        self._running: dict[DownloadTask, threading.Thread] = {}
        self._tasks: dict[str, DownloadTask] = {}
        self._closed = False

    @property
    def max_concurrent(self) -> int:
        return self._max

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        with self._changed:
            self._max = max(1, value)
            self._dispatch()

    def tasks(self) -> list[DownloadTask]:
        """Every task submitted, oldest first."""
        with self._changed:
            return list(self._tasks.values())

    def submit(self, request: DownloadRequest) -> DownloadTask:
        """Queue *request*; the same model again returns (and resumes) the existing task."""
        with self._changed:
            if self._closed:
                raise RuntimeError("this DownloadManager is closed")
            task = self._tasks.get(request.key)
            if task is not None and task.state not in (State.DONE, State.CANCELLED):
                if task.state not in (State.PAUSED, State.FAILED):
                    return task  # already queued or running
            else:
                task = DownloadTask(self, request)
                self._tasks[request.key] = task
            task._paused_on_purpose = False
        self._enqueue(task)
        return task

    def close(self, timeout: float = 30.0) -> None:
        """Pause running downloads (bytes kept), drop the queue, and join the worker threads."""
        with self._changed:
            self._closed = True
            self._queue.clear()
            threads = list(self._running.values())
            for task in self._running:
                task._paused_on_purpose = True
                task._control.pause()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- task operations (called without the lock) --------------------------------------

    def _enqueue(self, task: DownloadTask) -> None:
        """Announce QUEUED, then queue: the event goes out before any event of the run."""
        with self._changed:
            task._control.reset()
            task.error = None
            event = _with_state(task.last_event, State.QUEUED, "")
            self._set(task, event)
        self._emit(event)
        with self._changed:
            # Paused or cancelled while the event went out: then it stays that way.
            if task.state is State.QUEUED and task not in self._queue and not self._closed:
                self._queue.append(task)
                self._dispatch()

    def _pause(self, task: DownloadTask) -> None:
        with self._changed:
            task._paused_on_purpose = True
            if task in self._running:
                task._control.pause()
                return
            if task.state is not State.QUEUED:
                return
            if task in self._queue:
                self._queue.remove(task)
            event = _with_state(task.last_event, State.PAUSED, "Paused before it started.")
            self._set(task, event)
        self._emit(event)

    def _resume(self, task: DownloadTask) -> None:
        with self._changed:
            task._paused_on_purpose = False
            if task in self._running:
                task._control.reset()  # a pause not acted on yet is simply withdrawn
                return
            if task.state not in (State.PAUSED, State.FAILED) or self._closed:
                return
        self._enqueue(task)

    def _cancel(self, task: DownloadTask) -> None:
        with self._changed:
            if task in self._running:
                task._control.cancel()
                return
            if task.state.finished:
                return
            if task in self._queue:
                self._queue.remove(task)
            event = _with_state(task.last_event, State.CANCELLED,
                                "Cancelled; the unfinished download was deleted.")
            self._set(task, event)
        discard_partial(task.request, self.models_dir)
        self._emit(event)

    def _wait(self, task: DownloadTask, timeout: float | None) -> bool:
        def settled() -> bool:
            settled_state = task.state is State.PAUSED or task.state.finished
            return settled_state and task not in self._running

        with self._changed:
            return self._changed.wait_for(settled, timeout)

    # --- workers ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start queued tasks while there are free slots (called with the lock held)."""
        while self._queue and len(self._running) < self._max and not self._closed:
            task = self._queue.popleft()
            thread = threading.Thread(target=self._work, args=(task,), daemon=True,
                                      name=f"download {task.key}")
            self._running[task] = thread
            thread.start()

    def _set(self, task: DownloadTask, event: DownloadEvent) -> None:
        task.last_event = event
        self._changed.notify_all()

    def _emit(self, event: DownloadEvent) -> None:
        """Hand *event* to the callback, without the lock, so that it may call back in."""
        if self._on_event is not None:
            self._on_event(event)

    def _event_from_worker(self, task: DownloadTask, event: DownloadEvent) -> None:
        with self._changed:
            self._set(task, event)
        self._emit(event)

    def _work(self, task: DownloadTask) -> None:
        """Run one download in its worker thread."""
        try:
            task.path = download(task.request, self.models_dir, options=self.options,
                                 on_event=lambda event: self._event_from_worker(task, event),
                                 control=task._control)
        except DownloadInterrupted:
            pass  # download() has reported PAUSED or CANCELLED
        except DownloadError as error:
            task.error = error  # download() has reported FAILED with the message
        except Exception as error:  # noqa: BLE001 - a worker must report, never die silently
            task.error = DownloadError(f"Downloading {task.key} failed unexpectedly: {error}")
            self._event_from_worker(task, _with_state(task.last_event, State.FAILED,
                                                      str(task.error)))
        finally:
            with self._changed:
                del self._running[task]
                # Resumed while its pause was taking effect: run it again.
                again = (task.state is State.PAUSED and not task._paused_on_purpose
                         and not self._closed)
                self._dispatch()
                self._changed.notify_all()
            if again:
                self._enqueue(task)


def _with_state(event: DownloadEvent, state: State, message: str) -> DownloadEvent:
    """*event* with another state and message, keeping its byte counts."""
    return DownloadEvent(event.key, state, event.done_bytes, event.total_bytes, 0.0, None,
                         event.filename, message, event.path)
