"""Memory figures: what the machine has free, what a process uses, what a model will need."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

from desktop.core.gguf_info import ENCODER_ARCHITECTURES, GGUFInfo

MiB = 1024 * 1024
_FIRST_SHARD = re.compile(r"^(?P<prefix>.+)-00001-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


def available_memory() -> int | None:
    """Bytes of memory that can be used now without swapping, or None if unknown."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/meminfo", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=2,
                                 check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        page = 4096
        free = 0
        for line in out.splitlines():
            if "page size of" in line:
                page = int(line.split("page size of")[1].split()[0])
            elif line.startswith(("Pages free", "Pages inactive", "Pages speculative")):
                free += int(line.split(":")[1].strip().rstrip("."))
        return free * page
    if sys.platform == "win32":
        class MemoryStatus(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong),
                        ("total_phys", ctypes.c_ulonglong), ("avail_phys", ctypes.c_ulonglong),
                        ("total_page", ctypes.c_ulonglong), ("avail_page", ctypes.c_ulonglong),
                        ("total_virtual", ctypes.c_ulonglong),
                        ("avail_virtual", ctypes.c_ulonglong),
                        ("avail_extended", ctypes.c_ulonglong)]

        status = MemoryStatus()
        status.length = ctypes.sizeof(MemoryStatus)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.avail_phys)
    return None


def process_rss(pid: int | None = None) -> int | None:
    """Resident memory of a process in bytes (this one by default), or None if unknown."""
    pid = os.getpid() if pid is None else pid
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None
    try:
        out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True,
                             text=True, timeout=2, check=False).stdout.strip()
        return int(out) * 1024 if out else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


# Calibrated against the engine's resident memory (VmRSS) after loading a model and answering
# one short chat, on Linux x86-64 with CPU inference: see docs/performance.md, "Memory
# estimate", and tests/test_memory.py, which measures it again.
ENGINE_RUNTIME = 68 * MiB  # the engine process with nothing loaded (Python, FastAPI, llama.cpp)
MODEL_BASE = 16 * MiB  # per loaded model: llama.cpp context, sampler, graph, small buffers
EMBEDDING_BASE = 8 * MiB  # the same for an embedding model, which has no sampler or slots
BYTES_PER_VOCAB_TOKEN = 217  # llama.cpp's in-memory vocabulary and tokenizer tables
DEFAULT_VOCAB = 150_000  # assumed when the vocabulary size is not known
N_UBATCH = 512  # the engine's batch size; sets the size of the attention scratch space
KV_BYTES_PER_ELEMENT = 2  # the engine keeps the KV cache in f16
# Rough KV cache per token when only a model's size is known (not its header): a floor for
# tiny models plus an amount per billion parameters; on the catalog's models it errs high.
ROUGH_KV_BASE = 16 * 1024
ROUGH_KV_PER_BILLION = 48 * 1024

DEFAULT_CONTEXT = 4096  # the engine's context length when none is chosen
# The longest text an embedding model reads at once (its own trained context when shorter);
# longer ones are cut. llama.cpp keeps an output row of the whole vocabulary for every token
# of a batch, so a longer context would cost ~120 KB a token for a BERT vocabulary and ~1 MB
# for a multilingual one.
EMBEDDING_CONTEXT = 512
DEFAULT_PARALLEL = 4  # replies written at once when their caches fit; each slot its own context
MAX_PARALLEL = 64

# Verdicts of check_fit().
FITS = "fits"
TIGHT = "tight"
WONT_FIT = "won't fit"
UNKNOWN = "unknown"
TIGHT_SHARE = 0.8  # using more than this share of the free memory leaves little for the rest


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs at a context length, split by what takes them.

    ``total`` is the engine's expected resident memory once the model has loaded and
    answered a short chat. ``overhead`` includes ``runtime``, the engine's own memory with no
    model, which unloading a model does not give back. ``compute_peak`` is the scratch space a
    long prompt can touch on top of ``total``. ``rough`` is True when the estimate comes from
    the file size alone, without the model's header.
    """

    weights: int
    kv_cache: int
    overhead: int
    runtime: int = 0
    compute_peak: int = 0
    rough: bool = False
    parallel: int = 1  # slots the context cache is for, each with the full context
    embedding: int = 0  # an embedding model loaded beside this one (its weights and context)

    @property
    def total(self) -> int:
        """Expected resident memory of the engine with this model (and the embedding model
        beside it, if any) loaded."""
        return self.weights + self.kv_cache + self.overhead + self.embedding

    @property
    def model_bytes(self) -> int:
        """What loading this model adds to a running engine (what unloading gives back)."""
        return self.total - self.runtime - self.embedding

    def with_embedding(self, embedding: MemoryEstimate) -> MemoryEstimate:
        """This estimate with the embedding model of *embedding* loaded beside the model."""
        return replace(self, embedding=self.embedding + embedding.model_bytes)


def default_context(info: GGUFInfo) -> int:
    """The context length the engine uses for *info* when none is chosen."""
    return min(DEFAULT_CONTEXT, info.context_length or DEFAULT_CONTEXT)


def kv_cache_bytes(info: GGUFInfo, n_ctx: int) -> int:
    """Bytes of the f16 KV cache of *info* for *n_ctx* tokens.

    llama.cpp sizes the cache of sliding-window layers for the full context too (llama-cpp-
    python keeps ``swa_full`` on), so every attention layer counts in full.
    """
    heads = info.head_count or 1
    head_dim = (info.embedding_length or 0) // heads if heads else 0
    key_len = info.key_length or head_dim
    value_len = info.value_length or head_dim
    if info.head_count_kv_per_layer:
        kv_heads_total = sum(info.head_count_kv_per_layer)  # 0 for layers without attention
    else:
        kv_heads_total = (info.block_count or 0) * (info.head_count_kv or heads)
    return kv_heads_total * n_ctx * (key_len + value_len) * KV_BYTES_PER_ELEMENT


def estimate_model_memory(info: GGUFInfo, n_ctx: int, *, parallel: int = 1,
                          weights_bytes: int | None = None) -> MemoryEstimate:
    """Estimate the engine's resident memory with *info* loaded at *n_ctx* tokens of context
    for each of *parallel* slots (each slot has a cache of its own).

    Weights count in full: llama.cpp maps the whole file and reads it all in while loading.
    For the first file of a split model, the other shards next to it count too;
    *weights_bytes* overrides the size of the weights.
    """
    weights = _weights_on_disk(info) if weights_bytes is None else weights_bytes
    vocab = info.vocab_size if info.vocab_size is not None else DEFAULT_VOCAB
    overhead = ENGINE_RUNTIME + MODEL_BASE + vocab * BYTES_PER_VOCAB_TOKEN
    heads = info.head_count or 1
    width = info.embedding_length or 0
    # Attention scores for one batch against the whole context (f32), plus activations.
    peak = N_UBATCH * n_ctx * heads * 4 + N_UBATCH * width * 4 * 8
    return MemoryEstimate(weights=weights, kv_cache=kv_cache_bytes(info, n_ctx * parallel),
                          overhead=overhead, runtime=ENGINE_RUNTIME, compute_peak=peak,
                          parallel=parallel)


def embedding_context(info: GGUFInfo) -> int:
    """The context the engine gives the embedding model *info*: the longest text it reads."""
    return min(EMBEDDING_CONTEXT, info.context_length or EMBEDDING_CONTEXT)


def estimate_embedding_memory(info: GGUFInfo, *, weights_bytes: int | None = None
                              ) -> MemoryEstimate:
    """Estimate the engine's resident memory with the embedding model *info* loaded in a
    context of its own (``model_bytes`` is what it adds beside the chat model).

    Its context reads a batch of up to :func:`embedding_context` tokens at once: llama.cpp
    keeps an output row (the vocabulary and the vector) for each of them, and the activations
    of one batch. Encoders keep no cache; a decoder made into an embedding model keeps one for
    the batch.
    """
    weights = _weights_on_disk(info) if weights_bytes is None else weights_bytes
    n_ctx = embedding_context(info)
    vocab = info.vocab_size if info.vocab_size is not None else DEFAULT_VOCAB
    width = info.embedding_length or 0
    outputs = n_ctx * (vocab + width) * 4
    activations = n_ctx * width * 4 * 8
    overhead = (ENGINE_RUNTIME + EMBEDDING_BASE + vocab * BYTES_PER_VOCAB_TOKEN + outputs
                + activations)
    cache = 0 if info.architecture in ENCODER_ARCHITECTURES else kv_cache_bytes(info, n_ctx)
    return MemoryEstimate(weights=weights, kv_cache=cache, overhead=overhead,
                          runtime=ENGINE_RUNTIME)


def _weights_on_disk(info: GGUFInfo) -> int:
    """The file size, plus the other shards' sizes when *info* is the first of a split model."""
    match = _FIRST_SHARD.match(info.path.name)
    if not info.split_count or match is None:
        return info.size_bytes
    total = info.size_bytes
    for index in range(2, info.split_count + 1):
        shard = info.path.with_name(f"{match['prefix']}-{index:05d}-of-{match['count']}.gguf")
        try:
            total += shard.stat().st_size
        except OSError:
            pass  # llama.cpp refuses to load a model with a missing shard anyway
    return total


def estimate_from_size(size_bytes: int, parameter_count: int | None,
                       n_ctx: int, parallel: int = 1) -> MemoryEstimate:
    """A rough estimate for a model that is not on disk yet (a catalog entry, a hub file), with
    a cache of *n_ctx* tokens for each of *parallel* slots."""
    billions = (parameter_count or size_bytes * 2) / 1e9  # ~4.5 bits a weight when unknown
    per_token = int(ROUGH_KV_BASE + ROUGH_KV_PER_BILLION * billions)
    overhead = ENGINE_RUNTIME + MODEL_BASE + DEFAULT_VOCAB * BYTES_PER_VOCAB_TOKEN
    peak = N_UBATCH * n_ctx * 32 * 4
    return MemoryEstimate(weights=size_bytes, kv_cache=per_token * n_ctx * parallel,
                          overhead=overhead, runtime=ENGINE_RUNTIME, compute_peak=peak,
                          rough=True, parallel=parallel)


@dataclass(frozen=True)
class MemoryFit:
    """An estimate compared with the memory available now."""

    verdict: str  # FITS, TIGHT, WONT_FIT, or UNKNOWN when free memory cannot be read
    estimate: MemoryEstimate
    available: int | None

    @property
    def message(self) -> str:
        """One plain sentence with the numbers, for the CLI and the window."""
        est = self.estimate
        about = "roughly" if est.rough else "about"
        slots = f" for {est.parallel} parallel replies" if est.parallel > 1 else ""
        beside = f", {_gb(est.embedding)} embedding model" if est.embedding else ""
        need = (f"Needs {about} {_gb(est.total)} ({_gb(est.weights)} weights, "
                f"{_gb(est.kv_cache)} context cache{slots}, {_gb(est.overhead)} engine and "
                f"buffers{beside})")
        if self.available is None:
            return need + "; the free memory of this computer is not known."
        free = f"{_gb(self.available)} is free now"
        if self.verdict == WONT_FIT:
            fewer = ", fewer parallel replies" if est.parallel > 1 else ""
            return (f"{need}, but only {free}: it won't fit. Choose a shorter context{fewer} "
                    "or a smaller model, or close other programs.")
        if self.verdict == TIGHT:
            return (f"{need} and {free}: it is tight, so long prompts or other programs may "
                    "slow the computer down.")
        return f"{need} and {free}: it fits."


def choose_parallel(estimate: Callable[[int], MemoryEstimate], wanted: int | None = None,
                    available: int | None = None, *, freed: int = 0,
                    engine_running: bool = False) -> int:
    """How many replies to write at once: *wanted* when the user chose a number; otherwise
    DEFAULT_PARALLEL when the memory free now holds that many slots' caches comfortably, else
    fewer, down to one. *estimate* gives the estimate for a number of slots."""
    if wanted:
        return wanted
    if available is None:
        available = available_memory()
    if available is None:
        return DEFAULT_PARALLEL
    for parallel in (DEFAULT_PARALLEL, 2):
        fit = check_fit(estimate(parallel), available, freed=freed,
                        engine_running=engine_running)
        if fit.verdict == FITS:
            return parallel
    return 1


def _gb(value: int) -> str:
    if value < 1024**3:
        return f"{value / MiB:,.0f} MB"
    return f"{value / 1024**3:.1f} GB"


def check_fit(estimate: MemoryEstimate, available: int | None = None, *, freed: int = 0,
              engine_running: bool = False) -> MemoryFit:
    """Compare *estimate* with the memory available now (or *available*, if given).

    *freed* is memory that loading gives back first (``model_bytes`` of the model the engine
    holds now). With *engine_running*, the engine's own runtime is already in use, so it is
    not counted again.
    """
    if available is None:
        available = available_memory()
    if available is None:
        return MemoryFit(UNKNOWN, estimate, None)
    free = available + freed
    need = estimate.total - (estimate.runtime if engine_running else 0)
    if need > free:
        verdict = WONT_FIT
    elif need + estimate.compute_peak > free or need > free * TIGHT_SHARE:
        verdict = TIGHT
    else:
        verdict = FITS
    return MemoryFit(verdict, estimate, free)
