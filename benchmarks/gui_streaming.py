"""Does streaming into the window cost speed or make it stutter? And how fast does it open?

1. A reply of 2,000 tokens is streamed into the chat window while a 10 ms timer measures how
   late the GUI event loop runs (goal: longest stall under 50 ms).
2. The same request is made headless (the engine client, no window), and streamed into the
   window with no timer running; the three kinds of run are interleaved, their order rotating
   each round. Decode tokens per second are compared (goal: window within 3% of headless),
   and so is the CPU time the app's process spends per reply (what it takes from llama.cpp).
   The timer is left out of the runs that measure speed because it is the benchmark's own
   probe, not part of the app: it wakes the window's thread 100 times a second. The ratio with
   the timer running is printed too.
3. The last reply's text is streamed into the window again at the same pace with the engine
   idle (--replays times), to report the window's own CPU time without llama.cpp's noise.
4. Cold start: the time from launching `python -m desktop app` to the window being shown.

--threads N loads the model with N llama.cpp threads for every run: below the number of cores
it leaves the window a core of its own (see benchmarks/contention.py for why that matters).
--away adds a fourth kind of run: the user sends, then opens the Models page while the reply
streams (the chat lays nothing out while it cannot be seen).

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_streaming.py [--rounds 4]
[--threads N] [--away]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))

ESSAY = "Write a very long essay about the history of bread, with many sections."
SAMPLING = {"max_tokens": 2000, "temperature": 0.7, "seed": 1}

SHOWN_PROBE = """
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from desktop.ui.app import DesktopApp
app = QApplication(sys.argv[:1])
desktop = DesktopApp(app, "light")
desktop.start()
def shown():
    print("shown" if desktop.window.isVisible() else "hidden", flush=True)
    desktop.close()
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""


def cold_start(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        home = tempfile.mkdtemp(prefix="nomoat-cold-")
        env = dict(os.environ, NOMOAT_HOME=home)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", SHOWN_PROBE], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        times.append(time.perf_counter() - started)
        proc.communicate(timeout=60)
        assert line == "shown", line
    return times


def replay(desktop: Any, text: str, seconds: float) -> float:
    """Stream *text* into the chat page of *desktop* (a DesktopApp) at an even pace over
    *seconds*, as the chat controller's paint timer does, with no engine at work; return the
    CPU time the window's thread spent."""
    from PySide6.QtCore import QEventLoop, QTimer

    from desktop.ui.chat_controller import PAINT_INTERVAL_MS
    from desktop.ui.views.message import MessageWidget

    page = desktop.window.chat_page
    desktop.chat.new_conversation()
    question = MessageWidget("user")
    question.set_text(ESSAY)
    page._add_widget(question)
    page.reply = MessageWidget("assistant")
    page._add_widget(page.reply)
    loop = QEventLoop()
    shown = 0
    started, cpu = time.perf_counter(), time.thread_time()

    def update() -> None:  # what the chat controller does on its paint timer
        nonlocal shown
        end = min(len(text), int(len(text) * (time.perf_counter() - started) / seconds))
        if end > shown:
            page._reply_text(text[shown:end])
            shown = end
        if shown == len(text):
            loop.quit()

    timer = QTimer()
    timer.setInterval(PAINT_INTERVAL_MS)
    timer.timeout.connect(update)
    timer.start()
    loop.exec()
    timer.stop()
    return time.thread_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads for every run (default: the engine's own choice)")
    parser.add_argument("--replays", type=int, default=2,
                        help="then stream the reply's text into the window this many times at "
                             "the same pace with the engine idle, and report the window's CPU")
    parser.add_argument("--away", action="store_true",
                        help="also stream replies while the Models page is shown")
    parser.add_argument("--nice", type=int, default=0,
                        help="run the window's GUI thread at this niceness (not the engine)")
    args = parser.parse_args()

    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.ui.app import DesktopApp

    app = QApplication(sys.argv[:1])
    desktop = DesktopApp(app, "light")
    desktop.start()
    while not (desktop.engine.state == "ready" and desktop.engine.status.get("model")):
        app.processEvents()
        time.sleep(0.01)
    model = desktop.engine.supervisor.client.status()["model"]
    if args.threads:
        model = desktop.engine.supervisor.load(model["id"], n_threads=args.threads)["model"]
    threads = model["settings"]["n_threads"]
    if args.nice:  # this thread only (Linux); the engine started already, at its own priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), args.nice)
    desktop.chat.sampling = dict(SAMPLING)

    def windowed(probe: bool, away: bool = False) -> tuple[float, float, int, float, float]:
        clock = QElapsedTimer()
        stalls: list[float] = []
        last = [0.0]
        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.setInterval(10)

        def tick() -> None:
            now = clock.nsecsElapsed() / 1e6
            stalls.append(now - last[0] - 10.0)
            last[0] = now

        timer.timeout.connect(tick)
        loop = QEventLoop()  # the app's own event loop, as in real use: no polling
        desktop.chat.replyFinished.connect(loop.quit)
        desktop.chat.new_conversation()
        desktop.window.chat_page.composer.setPlainText(ESSAY)
        clock.start()
        if probe:
            timer.start()
        cpu, gui = time.process_time(), time.thread_time()  # this is the GUI thread
        desktop.window.chat_page.send()
        if away:
            desktop.window.show_page("Models")
        loop.exec()
        cpu, gui = time.process_time() - cpu, time.thread_time() - gui
        timer.stop()
        desktop.window.show_page("Chat")
        desktop.chat.replyFinished.disconnect(loop.quit)
        status = desktop.engine.supervisor.client.status()["last_generation"]
        return (max(stalls[1:], default=float("nan")), status["tokens_per_second"],
                status["completion_tokens"], cpu, gui)

    reply: list[str] = []  # the text of the last headless reply, for the replays

    def replayed(seconds: float) -> float:
        return replay(desktop, "".join(reply), seconds)

    def headless() -> tuple[float, int, float]:
        client = desktop.engine.supervisor.client
        cpu = time.process_time()
        # Read the whole stream, as a client that shows nothing does.
        pieces = list(client.chat_stream([{"role": "user", "content": ESSAY}], **SAMPLING))
        reply[:] = [piece for piece in pieces if isinstance(piece, str)]
        cpu = time.process_time() - cpu
        status = client.status()["last_generation"]
        return status["tokens_per_second"], status["completion_tokens"], cpu

    runs: dict[str, list[tuple[float, int, float]]] = {"headless": [], "window": [],
                                                       "probed": []}
    if args.away:
        runs["away"] = []
    stalls: list[float] = []
    gui_cpu: dict[str, list[float]] = {}  # the GUI thread's share of the app's CPU
    kinds = list(runs)

    def rate(kind: str) -> float:
        return statistics.median(r[0] for r in runs[kind])

    def run(kind: str) -> None:
        if kind == "headless":
            runs[kind].append(headless())
            return
        stall, rate, tokens, cpu, gui = windowed(probe=kind == "probed", away=kind == "away")
        runs[kind].append((rate, tokens, cpu))
        gui_cpu.setdefault(kind, []).append(gui)
        if kind == "probed":
            stalls.append(stall)

    replays: list[float] = []
    try:
        for n in range(args.rounds):
            for kind in kinds[n % len(kinds):] + kinds[:n % len(kinds)]:
                run(kind)
        seconds = SAMPLING["max_tokens"] / rate("headless")
        replays = [replayed(seconds) for _ in range(args.replays)]
    finally:
        desktop.close()

    def paired(kind: str) -> float:
        return statistics.median(w[0] / h[0] for w, h in zip(runs[kind], runs["headless"],
                                                              strict=True))

    print(f"llama.cpp threads {threads} on {os.cpu_count()} CPUs; {args.rounds} rounds of "
          f"{len(kinds)} replies, interleaved; tokens per reply: "
          + ", ".join(f"{kind} {[r[1] for r in runs[kind]]}" for kind in kinds))
    print(f"  longest event-loop stall while streaming: {max(stalls):.1f} ms (goal < 50 ms)")
    print(f"  decode: window {rate('window'):.1f} tok/s, headless {rate('headless'):.1f} tok/s, "
          f"ratio {rate('window') / rate('headless'):.3f} (goal >= 0.97); median of each "
          f"round's ratio {paired('window'):.3f}")
    if threads >= (os.cpu_count() or 1):
        print("  llama.cpp has a thread on every CPU here, so the window's own work takes a core "
              "from it (benchmarks/contention.py measures what that costs)")
    print(f"  with the 10 ms timer running: window {rate('probed'):.1f} tok/s, ratio "
          f"{rate('probed') / rate('headless'):.3f}; median of each round's ratio "
          f"{paired('probed'):.3f}")
    if args.away:
        print(f"  on the Models page while the reply streams: {rate('away'):.1f} tok/s, ratio "
              f"{rate('away') / rate('headless'):.3f}; median of each round's ratio "
              f"{paired('away'):.3f}")
    print("  per run, tok/s: " + "; ".join(
        f"{kind} {[round(r[0], 1) for r in runs[kind]]}" for kind in kinds))
    print("  app process CPU per reply (medians): " + ", ".join(
        f"{kind} {statistics.median(r[2] for r in runs[kind]):.2f} s" for kind in kinds))
    print("  of which the GUI thread (the rest reads the stream and saves the reply; headless, "
          "one thread reads it): " + ", ".join(
              f"{kind} {statistics.median(times):.2f} s" for kind, times in gui_cpu.items()))
    if replays:
        print(f"  the reply's text replayed into the window at the headless pace, no engine "
              f"running: window thread CPU {', '.join(f'{c:.2f}' for c in replays)} s")
    starts = cold_start(3)
    print(f"  cold start to window shown: median {statistics.median(starts):.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in starts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
