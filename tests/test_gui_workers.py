"""Background work in the window: results come back on the GUI thread, and none after quit."""

from __future__ import annotations

import threading

from PySide6.QtCore import QCoreApplication

from desktop.ui.workers import Workers


def test_a_result_that_arrives_after_the_app_closed_is_dropped(qtbot) -> None:
    workers = Workers()
    got: list[str] = []
    errors: list[Exception] = []
    gate = threading.Event()
    workers.submit(lambda: (gate.wait(10), "late")[1], on_done=got.append)
    workers.submit(lambda: "early", on_done=got.append)
    qtbot.waitUntil(lambda: got == ["early"])

    def fails() -> None:
        gate.wait(10)
        raise OSError("the disk went away")

    workers.submit(fails, on_error=errors.append)
    gate.set()
    assert workers.close()  # waits for both to end...
    QCoreApplication.processEvents()  # ...whose results are queued to this thread now
    assert got == ["early"] and errors == []  # and dropped: nothing reaches a closed app
