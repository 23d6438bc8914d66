"""Memory figures: what the machine has free, what a process uses, what a model will need."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from dataclasses import dataclass

from desktop.core.gguf_info import GGUFInfo

MiB = 1024 * 1024


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
            out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=2).stdout
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
                             text=True, timeout=2).stdout.strip()
        return int(out) * 1024 if out else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs at a context length, split by what takes them."""

    weights: int
    kv_cache: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


def estimate_model_memory(info: GGUFInfo, n_ctx: int) -> MemoryEstimate:
    """Estimate the resident memory of *info* loaded with an f16 KV cache of *n_ctx* tokens."""
    layers = info.block_count or 0
    heads = info.head_count or 1
    kv_heads = info.head_count_kv or heads
    head_dim = (info.embedding_length or 0) // heads if heads else 0
    key_len = info.key_length or head_dim
    value_len = info.value_length or head_dim
    kv = layers * n_ctx * kv_heads * (key_len + value_len) * 2
    overhead = 48 * MiB + info.size_bytes // 20
    return MemoryEstimate(weights=info.size_bytes, kv_cache=kv, overhead=overhead)
