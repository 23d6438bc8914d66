"""The least a Qt window can spend showing a streaming reply, to compare the chat window with.

For --seconds of reply time, 30 times a second, the GUI thread (1) only wakes on a timer, then
(2) also appends the text that arrived to one plain QTextBrowser, then (3) also scrolls it to
its end: no NoMoat code, no Markdown, one text view. The GUI thread's CPU time is printed for
each; benchmarks/gui_streaming.py --replays does the same for the chat window.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/qt_floor.py [--seconds 26]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SENTENCE = ("Bread was baked in the ancient world from wheat and barley, and each region "
            "kept its own loaves, ovens and customs for many centuries. ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=26.0)
    parser.add_argument("--chars", type=int, default=8600, help="length of the reply")
    args = parser.parse_args()

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication, QTextBrowser

    app = QApplication(sys.argv[:1])
    paragraphs = (SENTENCE * 4 + "\n\n") * (args.chars // (len(SENTENCE) * 4 + 2) + 1)
    text = paragraphs[:args.chars]

    def run(kind: str) -> float:
        view = QTextBrowser()
        view.resize(900, 700)
        view.show()
        app.processEvents()
        cursor = QTextCursor(view.document())
        loop = QEventLoop()
        shown = 0
        started = time.perf_counter()

        def update() -> None:
            nonlocal shown
            end = min(len(text), int(len(text) * (time.perf_counter() - started) / args.seconds))
            if end > shown and kind != "wake":
                cursor.movePosition(QTextCursor.MoveOperation.End)
                cursor.insertText(text[shown:end])
                if kind == "scroll":
                    bar = view.verticalScrollBar()
                    bar.setValue(bar.maximum())
            shown = end
            if end == len(text):
                loop.quit()

        timer = QTimer()
        timer.setInterval(33)
        timer.timeout.connect(update)
        cpu = time.thread_time()
        timer.start()
        loop.exec()
        timer.stop()
        cpu = time.thread_time() - cpu
        view.close()
        view.deleteLater()
        return cpu

    print(f"{args.chars} characters over {args.seconds:g} s, 30 updates a second; "
          "GUI thread CPU:")
    for kind, what in (("wake", "timer only"), ("append", "+ append to a QTextBrowser"),
                       ("scroll", "+ scroll it to its end")):
        print(f"  {what}: {run(kind):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
