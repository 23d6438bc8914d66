"""`nomoat download | models | search | files | import | rm` against the local hub-shaped server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from hubserver import HubServer

REPO = "NoMoatTest/Tiny-Chat-GGUF"
FILE = "Tiny-Chat.Q4_1.gguf"
MB = 1024 * 1024


@pytest.fixture
def hub(starter: Path) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add_repo(REPO, {FILE: starter, "README.md": b"# Tiny\n"}, downloads=42, likes=7)
        yield server


def nomoat(home: Path, *args: str, hub: HubServer | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NOMOAT_HOME=str(home), HF_TOKEN="")
    if hub is not None:
        env["HF_ENDPOINT"] = hub.endpoint
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_download_shows_progress_and_installs(hub: HubServer, tmp_path: Path) -> None:
    hub.switches.rate = 40 * MB  # slow enough for a few progress lines
    result = nomoat(tmp_path, "download", f"{REPO}/{FILE}", hub=hub)
    assert result.returncode == 0, result.stderr
    assert "%" in result.stderr and "MB/s" in result.stderr
    assert "Downloaded 98.4 MB; verifying the checksum" in result.stderr
    assert result.stdout.startswith("Installed ")
    hub.switches.rate = None
    listed = nomoat(tmp_path, "models", "--offline")
    assert "tiny-chat.q4_1" in listed.stdout.lower()
    again = nomoat(tmp_path, "download", f"{REPO}/{FILE}", hub=hub)
    assert again.returncode == 0  # already there: nothing is fetched again
    assert "already" in (again.stdout + again.stderr).lower() or "Installed" in again.stdout


def test_the_bundled_starter_is_already_installed(tmp_path: Path) -> None:
    result = nomoat(tmp_path, "download", "smollm2-135m-instruct")
    assert result.returncode == 0
    assert "already installed" in result.stdout


def test_wrong_bytes_exit_non_zero_with_the_reason(hub: HubServer, tmp_path: Path) -> None:
    hub.switches.wrong_bytes = True
    result = nomoat(tmp_path, "download", f"{REPO}/{FILE}", hub=hub)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("nomoat: ") and "sha256" in last and "deleted" in last
    assert not list((tmp_path / "models").rglob("*.gguf"))


def test_unknown_file_and_bad_reference_fail_clearly(hub: HubServer, tmp_path: Path) -> None:
    missing = nomoat(tmp_path, "download", f"{REPO}/Nope.gguf", hub=hub)
    assert missing.returncode == 1 and "Nope.gguf" in missing.stderr
    bad = nomoat(tmp_path, "download", "not a model", hub=hub)
    assert bad.returncode == 1
    assert "neither a catalog model id" in bad.stderr


def test_ctrl_c_leaves_a_resumable_download(hub: HubServer, starter: Path,
                                            tmp_path: Path) -> None:
    size = starter.stat().st_size
    hub.switches.rate = 8 * MB
    env = dict(os.environ, NOMOAT_HOME=str(tmp_path), HF_ENDPOINT=hub.endpoint, HF_TOKEN="")
    child = subprocess.Popen([sys.executable, "-m", "desktop", "download", f"{REPO}/{FILE}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    parts = lambda: list((tmp_path / "models").rglob("*.part"))  # noqa: E731
    deadline = time.monotonic() + 60
    while not (parts() and parts()[0].stat().st_size > 10 * MB):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert "Run the same command again to resume" in err
    kept = parts()[0].stat().st_size
    assert kept > 10 * MB
    hub.switches.rate = None
    hub.reset_counters()
    result = nomoat(tmp_path, "download", f"{REPO}/{FILE}", hub=hub)
    assert result.returncode == 0, result.stderr
    assert hub.bytes_sent <= size - kept + 64 * 1024  # only the rest was fetched


def test_search_and_files(hub: HubServer, tmp_path: Path) -> None:
    found = nomoat(tmp_path, "search", "tiny", hub=hub)
    assert found.returncode == 0, found.stderr
    assert REPO in found.stdout and "42 downloads" in found.stdout
    files = nomoat(tmp_path, "files", REPO, hub=hub)
    assert files.returncode == 0, files.stderr
    assert "Q4_1" in files.stdout and f"{REPO}/{FILE}" in files.stdout


def test_import_and_remove(starter: Path, tmp_path: Path) -> None:
    source = tmp_path / "outside" / "My-Model.Q4_1.gguf"
    source.parent.mkdir()
    source.write_bytes(starter.read_bytes())
    imported = nomoat(tmp_path / "home", "import", str(source))
    assert imported.returncode == 0, imported.stderr
    assert "copied into the library" in imported.stdout
    listed = nomoat(tmp_path / "home", "models", "--offline")
    assert "my-model.q4_1" in listed.stdout
    removed = nomoat(tmp_path / "home", "rm", "my-model.q4_1")
    assert removed.returncode == 0, removed.stderr
    assert "my-model.q4_1" not in nomoat(tmp_path / "home", "models", "--offline").stdout
    assert source.exists()  # the original is never touched
    starter_rm = nomoat(tmp_path / "home", "rm", "smollm2-135m-instruct")
    assert starter_rm.returncode == 1 and starter_rm.stderr.startswith("nomoat: ")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    refused = nomoat(tmp_path / "home", "import", str(broken))
    assert refused.returncode == 1 and "GGUF" in refused.stderr
