"""The only module that starts threads in the GUI process.

Work runs on a QThreadPool; results come back as Qt signals carrying plain data, queued to the
GUI thread. Workers never touch widgets. Every pool is registered so the app can wait for it
at quit.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Signals(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        super().__init__()
        self.fn = fn
        self.args = args
        self.signals = _Signals()

    def run(self) -> None:
        try:
            result = self.fn(*self.args)
        except Exception as exc:  # reported to the GUI, which shows it in words
            exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self.signals.failed.emit(exc)
        else:
            self.signals.done.emit(result)


class Workers(QObject):
    """A pool for background work, and a one-thread lane for work that must stay in order."""

    def __init__(self, parent: QObject | None = None, threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._serial = QThreadPool(self)
        self._serial.setMaxThreadCount(1)
        self._tasks: set[_Task] = set()
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any,
               on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[Exception], None] | None = None,
               serial: bool = False) -> None:
        """Run ``fn(*args)`` off the GUI thread; call *on_done* / *on_error* on the GUI thread.

        Copy mutable arguments before handing them over: the worker must not share them.
        """
        task = _Task(fn, args)
        task.setAutoDelete(False)
        # A result that arrives once the app has closed is not wanted: the widgets and the
        # stores it would go to are gone (Picard's File._load_check).
        task.signals.done.connect(lambda result, t=task: self._deliver(t, on_done, result))
        task.signals.failed.connect(lambda exc, t=task: self._deliver(t, on_error, exc))
        with self._lock:
            self._tasks.add(task)
        (self._serial if serial else self._pool).start(task)

    def _deliver(self, task: _Task, callback: Callable[[Any], None] | None, value: Any) -> None:
        with self._lock:
            self._tasks.discard(task)
        if callback is not None and not self._closed:
            callback(value)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Wait for running work to end; True if everything finished in time."""
        return self._serial.waitForDone(timeout_ms) and self._pool.waitForDone(timeout_ms)

    def close(self, timeout_ms: int = 10_000) -> bool:
        """At quit: let running work end, and drop the results still on their way."""
        self._closed = True
        return self.shutdown(timeout_ms)
