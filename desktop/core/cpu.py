"""How many threads llama.cpp should get on this machine.

One per physical core that this process may run on, the performance cores only where a chip has
two kinds, as llama.cpp's own tools choose. Decoding is bound by memory bandwidth and by the
threads waiting for each other at every step: a second hardware thread on a core usually adds
little, and a core's spare hardware thread keeps the window, and whatever else the user runs,
from stalling every step of a reply.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

SYSFS_CPU = Path("/sys/devices/system/cpu")


def default_threads() -> int:
    """Threads for llama.cpp when the user has not chosen a number."""
    cores = physical_cores()
    if cores:
        return cores
    # The topology is unknown: assume two hardware threads per core on larger machines.
    logical = os.cpu_count() or 4
    return logical if logical <= 4 else logical // 2


def physical_cores() -> int | None:
    """Physical (performance) cores this process may use, or None if the system does not say."""
    if sys.platform.startswith("linux"):
        try:
            allowed = os.sched_getaffinity(0)
        except OSError:
            allowed = set(range(os.cpu_count() or 1))
        return linux_cores(SYSFS_CPU, allowed)
    if sys.platform == "darwin":
        # Apple Silicon: perflevel0 is the performance cores; Intel Macs have one level.
        for name in ("hw.perflevel0.physicalcpu", "hw.physicalcpu"):
            value = _sysctl_int(name)
            if value:
                return value
    return None


def linux_cores(sysfs: Path, allowed: set[int]) -> int | None:
    """Count the cores behind the CPUs in *allowed*, from the kernel's topology in *sysfs*.

    Hybrid Intel chips list their performance cores in ``/sys/devices/cpu_core/cpus``; when
    some allowed CPUs are among them, the efficiency cores are left out.
    """
    performance = _cpu_list(sysfs.parent.parent / "cpu_core" / "cpus")
    if performance and performance & allowed:
        allowed = performance & allowed
    cores = set()
    for cpu in allowed:
        topology = sysfs / f"cpu{cpu}" / "topology"
        siblings = (_cpu_list(topology / "core_cpus_list")
                    or _cpu_list(topology / "thread_siblings_list"))
        if not siblings:
            return None
        cores.add(frozenset(siblings))
    return len(cores) or None


def _cpu_list(path: Path) -> set[int]:
    """Parse a kernel CPU list such as ``0-3,8,10-11``; empty if the file is missing."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError:
        return set()
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        try:
            cpus.update(range(int(first), int(last or first) + 1))
        except ValueError:
            return set()
    return cpus


def _sysctl_int(name: str) -> int | None:
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        sysctlbyname = ctypes.CDLL(library).sysctlbyname
    except (OSError, AttributeError):
        return None
    value = ctypes.c_int(0)
    size = ctypes.c_size_t(ctypes.sizeof(value))
    if sysctlbyname(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0) != 0:
        return None
    return value.value
