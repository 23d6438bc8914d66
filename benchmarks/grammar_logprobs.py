"""What a JSON-schema grammar and log-probabilities cost: the engine against llama-cpp-python's
own high-level path, side by side, on the same prompt and schema.

For each mode (plain, json_schema, logprobs with 5 alternatives), interleaved round by round:
  (a) bare: llama_cpp.Llama.create_completion in this process, greedy, with
      LlamaGrammar.from_json_schema for the schema and logprobs=5 for the log-probabilities;
  (b) engine: the same prompt through the official openai client against the engine's public
      listener (real HTTP), with response_format json_schema or logprobs=5.
Printed per mode: tokens/s of each (completion tokens over the request's wall time), the
ratio b/a, and each one's rate against its own plain mode (what the grammar costs there).

Run: .venv/bin/python benchmarks/grammar_logprobs.py [--rounds 5] [--tokens 96] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))

import llama_cpp  # noqa: E402
from desktop.engine import amx  # noqa: E402
amx.keep_out()  # the engine's loading (see desktop/engine/amx.py)

from desktop.client.process import EngineSupervisor  # noqa: E402
from desktop.core.cpu import default_threads  # noqa: E402
from desktop.core.library import starter_model_path  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
        "hobbies": {"type": "array", "items": {"type": "string"}},
        "pet": {"type": "object", "properties": {"kind": {"enum": ["cat", "dog", "fish"]},
                                                  "name": {"type": "string"}},
                "required": ["kind", "name"]},
    },
    "required": ["name", "age", "city", "hobbies", "pet"],
}
PROMPT = ("<|im_start|>user\nDescribe a made-up person as JSON with their name, age, city, "
          "hobbies and pet.<|im_end|>\n<|im_start|>assistant\n")
MODES = ("plain", "json_schema", "logprobs")


def bare_run(llm: llama_cpp.Llama, grammar: llama_cpp.LlamaGrammar, mode: str,
             tokens: int) -> tuple[float, int]:
    extra: dict[str, object] = {}
    if mode == "json_schema":
        extra["grammar"] = grammar
    elif mode == "logprobs":
        extra["logprobs"] = 5
    llm.reset()  # no prompt cache: each request reads its prompt, as the engine's do here
    began = time.perf_counter()
    out = llm.create_completion(PROMPT, max_tokens=tokens, temperature=0, **extra)
    return time.perf_counter() - began, out["usage"]["completion_tokens"]


def engine_run(client: object, model: str, mode: str, tokens: int) -> tuple[float, int]:
    extra: dict[str, object] = {"extra_body": {"cache_prompt": False}}
    if mode == "json_schema":
        extra["extra_body"]["response_format"] = {  # type: ignore[index]
            "type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    elif mode == "logprobs":
        extra["logprobs"] = 5
    began = time.perf_counter()
    out = client.completions.create(  # type: ignore[attr-defined]
        model=model, prompt=PROMPT, max_tokens=tokens, temperature=0, **extra)
    return time.perf_counter() - began, out.usage.completion_tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--ctx", type=int, default=1024)
    args = parser.parse_args()
    path = starter_model_path()
    print(f"model {path.name}, {args.threads} threads, up to {args.tokens} tokens, "
          f"{args.rounds} rounds, {os.cpu_count()} CPUs")

    import openai

    supervisor = EngineSupervisor()
    supervisor.start()
    status = supervisor.client.load(str(path), n_ctx=args.ctx, n_threads=args.threads,
                                    parallel=1)
    model = status["model"]["id"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    public = supervisor.set_public(True, port=port)
    client = openai.OpenAI(base_url=public["base_url"], api_key="none", max_retries=0)
    llm = llama_cpp.Llama(str(path), n_ctx=args.ctx, n_threads=args.threads,
                          n_threads_batch=args.threads, verbose=False, logits_all=True)
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(SCHEMA), verbose=False)
    results: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], list[int]] = {}
    try:
        for _ in range(args.rounds):
            for mode in MODES:
                for kind, run in (("bare", lambda m: bare_run(llm, grammar, m, args.tokens)),
                                  ("engine", lambda m: engine_run(client, model, m,
                                                                  args.tokens))):
                    seconds, made = run(mode)
                    results.setdefault((kind, mode), []).append(made / seconds)
                    counts.setdefault((kind, mode), []).append(made)
    finally:
        client.close()
        supervisor.stop()

    def rate(kind: str, mode: str) -> float:
        return statistics.median(results[(kind, mode)])

    print(f"{'mode':>12} {'bare tok/s':>10} {'engine tok/s':>12} {'engine/bare':>11} "
          f"{'bare vs plain':>13} {'engine vs plain':>15} {'tokens b/e':>10}")
    for mode in MODES:
        b, e = rate("bare", mode), rate("engine", mode)
        print(f"{mode:>12} {b:10.1f} {e:12.1f} {e / b:11.2f} "
              f"{b / rate('bare', 'plain'):13.2f} {e / rate('engine', 'plain'):15.2f} "
              f"{statistics.median(counts[('bare', mode)]):>4.0f}/"
              f"{statistics.median(counts[('engine', mode)]):<4.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
