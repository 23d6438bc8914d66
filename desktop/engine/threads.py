"""How many threads llama.cpp gets while other programs want the CPUs too.

llama.cpp's threads wait for each other at every step, so when another program takes a core
from one of them the others wait too: with two busy programs beside it on two cores, decoding
with a thread on each core fell to 0.28x its idle rate, while one thread kept 0.66x
(benchmarks/busy_neighbours.py, docs/performance.md). So unless the user chose a number, the
engine watches how much CPU the rest of the system uses, about once a second, and gives
llama.cpp the cores that are left (at least one, at most the default).

Linux only (it reads /proc/stat); elsewhere the number stays as it was set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CHECK_EVERY_S = 1.0
# Other programs' use, in cores, above which a core counts as taken (and below which, freed).
TAKEN = 0.6
FREED = 0.3


def _system_busy() -> tuple[float, float] | None:
    """(busy seconds of all CPUs, seconds of this process) since boot, or None."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    mine = int(own[11]) + int(own[12])  # utime stime
    return busy / ticks, mine / ticks


class ThreadGovernor:
    """Decides llama.cpp's thread count from the load of the other programs."""

    def __init__(self, most: int, adaptive: bool) -> None:
        self.most = max(1, most)
        self.threads = self.most
        self.adaptive = adaptive and _system_busy() is not None
        self.others = 0.0  # other programs' CPU use, in cores, at the last look
        self._last = _system_busy()
        self._at = time.monotonic()

    def check(self) -> int | None:
        """The new thread count when it should change now, else None (cheap between looks)."""
        if not self.adaptive:
            return None
        now = time.monotonic()
        if now - self._at < CHECK_EVERY_S:
            return None
        sample = _system_busy()
        if sample is None or self._last is None:
            return None
        elapsed = now - self._at
        busy = (sample[0] - self._last[0]) - (sample[1] - self._last[1])
        self._last, self._at = sample, now
        self.others = max(0.0, busy / elapsed)
        # Cores the others take: a core counts once its use passes TAKEN, and is given back
        # only when it falls below FREED, so the count does not flap at the edge.
        taken = self.most - self.threads
        while taken < self.most and self.others > taken + TAKEN:
            taken += 1
        while taken > 0 and self.others < taken - 1 + FREED:
            taken -= 1
        wanted = max(1, self.most - taken)
        if wanted == self.threads:
            return None
        self.threads = wanted
        return wanted
