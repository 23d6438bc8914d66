"""How many threads llama.cpp gets: one per physical core this process may use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core import cpu


def fake_sysfs(root: Path, cores: list[list[int]], performance: str | None = None) -> Path:
    """A /sys/devices tree whose CPUs are grouped into *cores* (lists of sibling CPUs)."""
    base = root / "devices" / "system" / "cpu"
    for siblings in cores:
        text = ",".join(str(c) for c in siblings)
        for number in siblings:
            topology = base / f"cpu{number}" / "topology"
            topology.mkdir(parents=True)
            (topology / "core_cpus_list").write_text(text + "\n")
            (topology / "thread_siblings_list").write_text(text + "\n")
    if performance is not None:
        (root / "devices" / "cpu_core").mkdir(parents=True)
        (root / "devices" / "cpu_core" / "cpus").write_text(performance + "\n")
    return base


def test_two_hardware_threads_per_core_count_once(tmp_path: Path) -> None:
    # Four cores, each with two hardware threads, numbered as Linux does on most x86 chips.
    sysfs = fake_sysfs(tmp_path, [[0, 4], [1, 5], [2, 6], [3, 7]])
    assert cpu.linux_cores(sysfs, set(range(8))) == 4


def test_only_the_cpus_this_process_may_use_count(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, [[0, 4], [1, 5], [2, 6], [3, 7]])
    assert cpu.linux_cores(sysfs, {0, 4, 1}) == 2  # a container pinned to three CPUs


def test_efficiency_cores_are_left_out_on_hybrid_chips(tmp_path: Path) -> None:
    # Two performance cores with two threads each (CPUs 0-3), four efficiency cores (4-7).
    sysfs = fake_sysfs(tmp_path, [[0, 1], [2, 3], [4], [5], [6], [7]], performance="0-3")
    assert cpu.linux_cores(sysfs, set(range(8))) == 2
    # Pinned to efficiency cores only: those are what there is.
    assert cpu.linux_cores(sysfs, {5, 6, 7}) == 3


def test_unknown_topology_is_none(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, [[0], [1]])
    assert cpu.linux_cores(sysfs, {0, 1, 2}) is None  # cpu2 has no topology
    (sysfs / "cpu1" / "topology" / "core_cpus_list").write_text("1-x\n")
    (sysfs / "cpu1" / "topology" / "thread_siblings_list").write_text("")
    assert cpu.linux_cores(sysfs, {0, 1}) is None


def test_without_a_topology_larger_machines_get_half(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "physical_cores", lambda: None)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert cpu.default_threads() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert cpu.default_threads() == 2


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("lscpu") is None,
                    reason="compared with lscpu's count of this machine's cores")
def test_this_machine_agrees_with_lscpu() -> None:
    if not Path("/sys/devices/system/cpu/cpu0/topology").exists():
        pytest.skip("this kernel shows no CPU topology (some containers): the thread count "
                    "falls back to the number of CPUs, checked above")
    out = subprocess.run(["lscpu", "--parse=CPU,CORE,SOCKET"], capture_output=True, text=True,
                         check=True).stdout
    allowed = os.sched_getaffinity(0)
    cores = {(socket, core) for cpu_number, core, socket in
             (line.split(",") for line in out.splitlines() if not line.startswith("#"))
             if int(cpu_number) in allowed}
    hybrid = Path("/sys/devices/cpu_core/cpus").exists()
    found = cpu.physical_cores()
    assert found is not None
    assert found <= len(cores) if hybrid else found == len(cores)
    assert cpu.default_threads() == found


def test_the_engine_loads_with_one_thread_per_core(engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.client.status()["model"]["settings"]["n_threads"] == cpu.default_threads()


def test_llama_cpp_gets_the_cores_other_programs_leave(monkeypatch) -> None:
    from desktop.engine import threads

    clock = [0.0]
    busy = [0.0]  # all CPUs' busy seconds; this process uses none of them
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(threads, "_system_busy", lambda: (busy[0], 0.0))
    governor = threads.ThreadGovernor(4, adaptive=True)

    def second(others: float) -> int | None:
        clock[0] += 1.0
        busy[0] += others
        return governor.check()

    assert governor.check() is None  # not a second yet
    assert second(0.1) is None and governor.threads == 4
    assert second(2.0) == 2  # two busy programs: two cores left
    assert second(1.9) is None  # still about two: no change back and forth
    assert second(3.9) == 1  # never fewer than one
    assert second(0.05) == 4  # they are gone: every core again
    assert threads.ThreadGovernor(4, adaptive=False).check() is None  # the user's own number
