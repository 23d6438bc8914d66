"""What LoRA hot-swap costs: changing the stack vs reloading the model, and decode speed.

Runs the engine's ModelRunner in this process (no HTTP) with the starter model and three
random adapters (fixed seeds) of rank 16 on every attention and MLP projection, the shape of a
typical "all linear layers" fine-tune.

1. Changing the stack: ``AdapterSet.apply`` between two different stacks, alone and followed
   by the first token of a short reply, against unloading the model, loading it again and
   applying the adapter (what a runtime without hot-swap must do), followed by the same first
   token. Prints the medians and the ratio.
2. Decode tokens per second of a 128-token greedy reply with 0, 1 and 3 adapters applied,
   interleaved round by round; prints the medians.

Run: .venv/bin/python benchmarks/lora.py [--rounds 5] [--threads 1] [--tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))

import numpy as np

from desktop.core.adapters import write_lora_gguf
from desktop.core.gguf_info import read_gguf
from desktop.core.library import starter_model_path
from desktop.engine.adapters import Active, AdapterSet
from desktop.engine.jobs import GenerationResult, Prepared
from desktop.engine.runner import LoadSettings, ModelRunner
from desktop.engine.sampling import Sampling

TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
SHORT = [{"role": "user", "content": "Hi"}]


def generate(runner: ModelRunner, tokens: list[int], sampling: Sampling,
             stack: Active) -> GenerationResult:
    """One reply through the engine's scheduler, waited for here (no HTTP in between)."""
    model = runner.require_model()
    prepared = Prepared(tokens, sampling, AdapterSet.key(stack),
                        lambda: runner.adapters.apply(model, stack), model.id, model=model)

    async def wait() -> GenerationResult:
        job = runner.submit_generation(lambda job: prepared, asyncio.get_running_loop())
        while True:
            kind, payload = await job.events.get()
            if kind == "result":
                return payload
            if kind == "error":
                raise payload

    return asyncio.run(wait())


def make_adapter(folder: Path, seed: int, rank: int, architecture: str,
                 shapes: dict[str, tuple[int, ...]], layers: int) -> Path:
    rng = np.random.default_rng(seed)
    pairs = {}
    for layer in range(layers):
        for target in TARGETS:
            name = f"blk.{layer}.{target}.weight"
            n_in, n_out = shapes[name]
            pairs[name] = ((rng.standard_normal((rank, n_in)) / np.sqrt(n_in)).astype(np.float32),
                           (rng.standard_normal((n_out, rank)) * 0.02).astype(np.float32))
    return write_lora_gguf(folder / f"adapter-{seed}.gguf", architecture, pairs, rank)


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp threads (default 1: steady on a small shared machine)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--model", help="GGUF model (default: the starter model)")
    args = parser.parse_args()

    model_path = Path(args.model) if args.model else starter_model_path()
    assert model_path is not None, "the starter model is not installed"
    info = read_gguf(model_path)
    settings = LoadSettings(n_ctx=2048, n_threads=args.threads)
    runner = ModelRunner()
    with tempfile.TemporaryDirectory(prefix="nomoat-lora-bench-") as scratch:
        paths = [make_adapter(Path(scratch), seed, args.rank, info.architecture,
                              info.tensor_shapes, info.block_count or 0) for seed in (1, 2, 3)]
        model = runner.load("bench", model_path, settings)
        adapters = [runner.adapters.add(model, p.stem, p) for p in paths]
        short = runner.chat_prompt(SHORT)
        story = runner.chat_prompt(STORY)
        first_token = Sampling(max_tokens=1, temperature=0)

        def reload_with_adapter() -> None:
            runner.unload()
            loaded = runner.load("bench", model_path, settings)
            added = runner.adapters.add(loaded, paths[0].stem, paths[0])
            runner.adapters.apply(loaded, [(added, 1.0)])

        def reload_and_answer() -> None:
            reload_with_adapter()
            generate(runner, short, first_token, runner.adapters.active_now())

        # -- 1. stack change vs reload -----------------------------------------------------
        stacks = [[(adapters[0], 1.0)], [(adapters[0], 0.5), (adapters[1], 0.8)]]
        swap, swap_reply, reload, reload_reply = [], [], [], []
        for index in range(args.rounds * 2):
            stack = stacks[index % 2]
            swap.append(timed(lambda: runner.adapters.apply(runner.model, stack)))  # noqa: B023
            runner.adapters.apply(runner.model, stacks[(index + 1) % 2])
            swap_reply.append(timed(lambda: (
                runner.adapters.apply(runner.model, stack),  # noqa: B023
                generate(runner, short, first_token, stack))))  # noqa: B023
        for _ in range(args.rounds):
            reload.append(timed(reload_with_adapter))
            reload_reply.append(timed(reload_and_answer))

        # -- 2. decode speed with 0, 1 and 3 adapters ----------------------------------------
        loaded = runner.model
        assert loaded is not None
        adapters = [runner.adapters.add(loaded, p.stem, p) for p in paths]
        rates: dict[int, list[float]] = {0: [], 1: [], 3: []}
        counts: dict[int, list[int]] = {0: [], 1: [], 3: []}
        sampling = Sampling(max_tokens=args.tokens, temperature=0)
        for _ in range(args.rounds):
            for count in (0, 1, 3):
                stack = [(a, 1.0) for a in adapters[:count]]
                result = generate(runner, story, sampling, stack)
                assert result.tokens_per_second is not None
                rates[count].append(result.tokens_per_second)
                counts[count].append(result.completion_tokens)
        runner.unload()
    runner.stop()

    ms = 1000.0
    print(f"model {model_path.name}, {args.threads} thread(s), adapters of rank {args.rank} on "
          f"{len(TARGETS)} projections x {info.block_count} layers, {args.rounds} rounds "
          "(medians)")
    swap_ms, swap_reply_ms = statistics.median(swap) * ms, statistics.median(swap_reply) * ms
    reload_ms = statistics.median(reload) * ms
    reload_reply_ms = statistics.median(reload_reply) * ms
    print(f"  change the stack (apply only):           {swap_ms:9.3f} ms")
    print(f"  change the stack + first reply token:    {swap_reply_ms:9.1f} ms")
    print(f"  reload model with adapter:               {reload_ms:9.1f} ms")
    print(f"  reload with adapter + first reply token: {reload_reply_ms:9.1f} ms")
    print(f"  ratio change/reload (apply only):        {swap_ms / reload_ms:9.5f}")
    print(f"  ratio change/reload (to first token):    {swap_reply_ms / reload_reply_ms:9.3f}")
    for count in (0, 1, 3):
        print(f"  decode with {count} adapter(s): {statistics.median(rates[count]):7.1f} tokens/s "
              f"({min(counts[count])}-{max(counts[count])} tokens per reply)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
