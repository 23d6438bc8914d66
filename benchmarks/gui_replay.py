"""The window's own cost, one checkout against another: what a change of the window's code costs
while a reply streams, and at the window's start, free of the day's decode speed.

For each checkout given (a folder holding NoMoat's code, e.g. a `git worktree` of an older
commit beside this one), alternately, in a fresh process that imports the code from there:

- the starter model writes the benchmark's 2,000-token reply (fixed seed, as in
  gui_streaming.py), then its text is streamed into that checkout's chat window again at a fixed
  pace (--seconds for the whole reply, through the chat page as the paint timer does) with the
  engine idle, --runs times; the window thread's CPU time for each replay is printed;
- the time from launching a Python process that opens the window to the window being shown,
  --cold times.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_replay.py [--rounds 2]
     [--seconds 30] [--runs 2] [--cold 4] CHECKOUT [CHECKOUT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def replays(root: Path, seconds: float, runs: int) -> list[float]:
    """In this process: the window thread's CPU for each replay of the reply into the window
    of the code in *root*."""
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NOMOAT_HOME"] = tempfile.mkdtemp(prefix="nomoat-replay-")
    from gui_streaming import ESSAY, SAMPLING, replay  # it puts this checkout first on the path

    sys.path.insert(0, str(root))
    from PySide6.QtWidgets import QApplication

    import desktop
    from desktop.ui.app import DesktopApp

    assert Path(desktop.__file__).resolve().is_relative_to(root.resolve()), desktop.__file__
    app = QApplication(sys.argv[:1])
    window = DesktopApp(app, "light")
    window.start()
    while not (window.engine.state == "ready" and window.engine.status.get("model")):
        app.processEvents()
        time.sleep(0.01)
    client = window.engine.supervisor.client
    text = "".join(piece for piece in client.chat_stream(
        [{"role": "user", "content": ESSAY}], **SAMPLING) if isinstance(piece, str))

    try:
        return [replay(window, text, seconds) for _ in range(runs)]
    finally:
        window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--cold", type=int, default=4)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the child's own run
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(replays(args.one, args.seconds, args.runs)))
        return 0
    if not args.checkouts:
        parser.error("give at least one checkout")
    sys.path.insert(0, str(HERE))
    import gui_streaming

    cpu: dict[Path, list[float]] = {root: [] for root in args.checkouts}
    cold: dict[Path, list[float]] = {root: [] for root in args.checkouts}
    for _ in range(args.rounds):
        for root in args.checkouts:
            done = subprocess.run(
                [sys.executable, __file__, "--one", str(root), "--seconds", str(args.seconds),
                 "--runs", str(args.runs)], capture_output=True, text=True, check=True)
            cpu[root] += json.loads(done.stdout.strip().splitlines()[-1])
            gui_streaming.ROOT = root
            cold[root] += gui_streaming.cold_start(args.cold)
    for root in args.checkouts:
        print(f"{root}: window thread CPU per replay over {args.seconds:g} s "
              f"{', '.join(f'{c:.2f}' for c in cpu[root])} s (median "
              f"{statistics.median(cpu[root]):.2f}); cold start median "
              f"{statistics.median(cold[root]):.2f} s (runs: "
              f"{', '.join(f'{t:.2f}' for t in cold[root])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
