"""Decoding while other programs keep the CPUs busy, for several thread settings.

A laptop runs other programs. This measures one sequence's greedy decode rate (the engine's
batch loop: one llama_decode per token) on an idle machine and beside --loops busy loops
(`while True: pass`, one process each), alternating stretch by stretch, for each setting:
  threads       llama.cpp's threads (default: one per physical core, and one)
  OMP_WAIT_POLICY / GOMP_SPINCOUNT  how long OpenMP's idle threads spin before they sleep
Each setting runs in a process of its own (OpenMP reads its settings once, at start).
Printed: idle and busy tokens/s and busy/idle, median over --rounds stretches each.

Run: .venv/bin/python benchmarks/busy_neighbours.py [--rounds 4] [--tokens 96] [--loops 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from desktop.core.cpu import default_threads  # noqa: E402
from desktop.core.library import starter_model_path  # noqa: E402

WORKER = r"""
import json, os, signal, subprocess, sys, time
import llama_cpp
from desktop.engine import amx  # noqa: E402
amx.keep_out()  # the engine's loading (see desktop/engine/amx.py)
from llama_cpp import _internals as internals

@llama_cpp.llama_log_callback
def quiet(level, text, data):
    pass

llama_cpp.llama_log_set(quiet, None)
path, threads, tokens, rounds, loops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
weights = internals.LlamaModel(path_model=path, params=llama_cpp.llama_model_default_params(),
                               verbose=False)
params = llama_cpp.llama_context_default_params()
params.n_ctx, params.n_seq_max, params.kv_unified = 1024 * 4, 4, False
params.n_batch = params.n_ubatch = 512
params.n_threads = params.n_threads_batch = threads
context = internals.LlamaContext(model=weights, params=params, verbose=False)
memory = llama_cpp.llama_get_memory(context.ctx)
batch = llama_cpp.llama_batch_init(512, 0, 1)
prompt = weights.tokenize(b"Write a long story about a lighthouse.", add_bos=True, special=True)

def stretch():
    llama_cpp.llama_memory_clear(memory, True)
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
    todo, pos, made, started = list(prompt), 0, 0, None
    while made < tokens:
        for i, token in enumerate(todo):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = 0, i == len(todo) - 1
            pos += 1
        batch.n_tokens = len(todo)
        assert llama_cpp.llama_decode(context.ctx, batch) == 0
        todo = [llama_cpp.llama_sampler_sample(chain, context.ctx, len(todo) - 1)]
        if started is None:
            started = time.perf_counter()  # decode only: from the first generated token
        made += 1
    llama_cpp.llama_sampler_free(chain)
    return (made - 1) / (time.perf_counter() - started)

burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(loops)]
for proc in burners:
    os.kill(proc.pid, signal.SIGSTOP)
stretch()  # warm-up
idle, busy = [], []
try:
    for _ in range(rounds):
        idle.append(stretch())
        for proc in burners:
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.2)
        busy.append(stretch())
        for proc in burners:
            os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.1)
finally:
    for proc in burners:
        proc.kill()
        proc.wait()
print(json.dumps({"idle": idle, "busy": busy}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--loops", type=int, default=2, help="busy loops beside llama.cpp")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    path = args.model or starter_model_path()
    cores = default_threads()
    settings = [(cores, {}), (cores, {"OMP_WAIT_POLICY": "PASSIVE"}),
                (cores, {"GOMP_SPINCOUNT": "100000"}), (cores, {"GOMP_SPINCOUNT": "10000"}),
                (cores, {"GOMP_SPINCOUNT": "1000"}), (1, {})]
    print(f"model {Path(path).name}, {os.cpu_count()} CPUs, {cores} cores, {args.loops} busy "
          f"loops, {args.tokens} tokens a stretch, {args.rounds} rounds")
    print(f"{'threads':>7} {'OpenMP setting':<24} {'idle tok/s':>10} {'busy tok/s':>10} "
          f"{'busy/idle':>9}")
    for threads, extra in settings:
        env = {k: v for k, v in os.environ.items()
               if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env.update(extra)
        out = subprocess.run([sys.executable, "-c", WORKER, str(path), str(threads),
                              str(args.tokens), str(args.rounds), str(args.loops)],
                             env=env, capture_output=True, text=True, check=True, timeout=900)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        idle, busy = statistics.median(result["idle"]), statistics.median(result["busy"])
        label = ", ".join(f"{k}={v}" for k, v in extra.items()) or "default"
        print(f"{threads:>7} {label:<24} {idle:>10.1f} {busy:>10.1f} {busy / idle:>9.2f}",
              flush=True)
        time.sleep(1)
    engine_row(path, args)
    return 0


def engine_row(path: Path, args: argparse.Namespace) -> None:
    """The same through the engine (HTTP, its own thread choice), stretch by stretch."""
    import signal
    import tempfile

    os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))
    from desktop.client.api import StreamEnd
    from desktop.client.process import EngineSupervisor

    supervisor = EngineSupervisor()
    supervisor.start()
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(args.loops)]
    for proc in burners:
        os.kill(proc.pid, signal.SIGSTOP)

    def stretch() -> float:
        times, tokens = [], 0
        for piece in supervisor.client.chat_stream(
                [{"role": "user", "content": "Write a long story about a lighthouse."}],
                max_tokens=args.tokens, temperature=0.0, cache_prompt=False):
            if isinstance(piece, StreamEnd):
                tokens = (piece.usage or {}).get("completion_tokens", 0)
            else:
                times.append(time.perf_counter())
        return (tokens - 1) / (times[-1] - times[0])

    idle, busy, threads = [], [], []
    try:
        supervisor.load(str(path), n_ctx=1024)
        stretch()
        for _ in range(args.rounds):
            idle.append(stretch())
            for proc in burners:
                os.kill(proc.pid, signal.SIGCONT)
            stretch()  # the engine looks at the load about once a second while it decodes
            busy.append(stretch())
            threads.append(supervisor.client.status()["model"]["threads_now"])
            for proc in burners:
                os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(0.1)
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()
        supervisor.stop()
    i, b = statistics.median(idle), statistics.median(busy)
    print(f"{'engine':>7} {'adaptive, busy: ' + str(sorted(set(threads))):<24} {i:>10.1f} "
          f"{b:>10.1f} {b / i:>9.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
