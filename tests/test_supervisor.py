"""The engine dies (SIGKILL included): clean errors, a restarted engine, nothing hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import free_port, start_serve, stop_serve

from desktop.client.api import EngineError
from desktop.client.process import EngineSupervisor
from desktop.core.paths import get_paths

MODEL = "smollm2-135m-instruct"
ESSAY = [{"role": "user", "content": "Write a very long essay about the history of bread."}]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")


def wait_for(predicate, timeout: float = 60, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigkill_mid_stream_gives_a_clean_error_and_the_engine_comes_back() -> None:
    events = []
    supervisor = EngineSupervisor(on_event=events.append)
    supervisor.start()
    try:
        supervisor.load(MODEL, n_ctx=2048)
        first_pid = supervisor.pid
        received = []
        with pytest.raises(EngineError, match="stopped while answering"):
            for piece in supervisor.client.chat_stream(ESSAY, max_tokens=2000):
                received.append(piece)
                if len(received) == 3:
                    os.kill(first_pid, signal.SIGKILL)
        wait_for(lambda: any(e.kind == "restarted" for e in events), what="a restart")
        crashed = next(e for e in events if e.kind == "crashed")
        assert "killed (SIGKILL)" in crashed.message
        assert supervisor.pid != first_pid
        status = supervisor.client.status()
        assert status["model"]["id"] == MODEL
        assert status["model"]["settings"]["n_ctx"] == 2048  # the same settings as before
        reply = [p for p in supervisor.client.chat_stream(ESSAY, max_tokens=4)
                 if isinstance(p, str)]
        assert reply
    finally:
        supervisor.stop()
    assert not Path(f"/proc/{supervisor.pid}").exists() if supervisor.pid else True


def _engine_pid_of(serve_pid: int) -> int:
    children = Path(f"/proc/{serve_pid}/task/{serve_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_survives_sigkill_of_its_engine() -> None:
    served = start_serve()
    try:
        client = served.client()
        engine_pid = _engine_pid_of(served.proc.pid)
        stream = client.chat.completions.create(model=MODEL, messages=ESSAY, max_tokens=2000,
                                                stream=True)
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            for count, _chunk in enumerate(stream, 1):
                if count == 3:
                    os.kill(engine_pid, signal.SIGKILL)
        wait_for(lambda: any("restarted" in line for line in served.stderr),
                 what="nomoat serve to restart its engine")
        assert any("killed (SIGKILL)" in line for line in served.stderr)
        assert _engine_pid_of(served.proc.pid) != engine_pid
        reply = client.chat.completions.create(model=MODEL, messages=ESSAY, max_tokens=3)
        assert reply.usage.completion_tokens == 3
    finally:
        stop_serve(served)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_native_abort_is_explained_and_the_port_answers_503_until_the_model_is_back(
        ) -> None:
    """The engine aborts in native code (ggml_abort, as a failed GGML_ASSERT does): its own
    words reach the log and the crash message, and the public port never refuses a
    connection: 503 with Retry-After while the engine restarts, then answers again."""
    events = []
    supervisor = EngineSupervisor(on_event=events.append)
    supervisor.start()
    try:
        supervisor.load(MODEL, n_ctx=1024)
        public = supervisor.set_public(True, host="127.0.0.1", port=free_port())
        base = public["base_url"]
        first_pid = supervisor.pid
        with pytest.raises(EngineError):
            supervisor.client._call("POST", "/control/debug/abort", {})
        seen: list[int] = []
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:  # every request is answered, none refused
                reply = http.get(base + "/models")
                seen.append(reply.status_code)
                if reply.status_code == 503:
                    assert reply.headers["retry-after"].isdigit()
                    assert reply.json()["error"]["code"] == "engine_restarting"
                elif seen.count(503) and reply.status_code == 200:
                    break
                time.sleep(0.02)
            assert 503 in seen and seen[-1] == 200, seen
            chat = http.post(base + "/chat/completions", json={
                "model": MODEL, "max_tokens": 3,
                "messages": [{"role": "user", "content": "Hi"}]})
            assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] >= 1
        crashed = next(e for e in events if e.kind == "crashed")
        assert "aborted in native code" in crashed.message
        assert "abort asked for through /control/debug/abort" in crashed.message
        wait_for(lambda: any(e.kind == "restarted" for e in events), what="a restart")
        restarted = next(e for e in events if e.kind == "restarted")
        assert "abort asked for through /control/debug/abort" in restarted.message
        assert supervisor.pid != first_pid
        log = (get_paths().logs / "engine.log").read_text(errors="replace")
        assert "abort asked for through /control/debug/abort" in log
    finally:
        supervisor.stop()
    with pytest.raises(httpx.ConnectError):  # closed with the app, not left behind
        httpx.get(base + "/models", timeout=5)


def test_where_a_socket_cannot_be_handed_over_the_engine_binds_the_port(monkeypatch) -> None:
    import socket

    monkeypatch.delattr(socket, "send_fds")  # as on Windows
    supervisor = EngineSupervisor()
    supervisor.start()
    try:
        supervisor.load(MODEL, n_ctx=512)
        public = supervisor.set_public(True, host="127.0.0.1", port=free_port())
        assert httpx.get(public["base_url"] + "/models", timeout=10).status_code == 200
        assert supervisor._port.sock is None  # the app holds nothing
        supervisor.set_public(False)
        with pytest.raises(httpx.ConnectError):
            httpx.get(public["base_url"] + "/models", timeout=5)
    finally:
        supervisor.stop()


def test_requests_to_a_stopped_engine_fail_at_once() -> None:
    from desktop.client.api import EngineClient

    supervisor = EngineSupervisor()
    supervisor.start()
    url, token = supervisor.client.base_url, supervisor._engine.token
    supervisor.stop()
    started = time.monotonic()
    with pytest.raises(EngineError, match="not running"):
        supervisor.client.status()
    dead = EngineClient(url, token)
    with pytest.raises(EngineError, match="does not answer|stopped while answering"):
        list(dead.chat_stream(ESSAY, max_tokens=2))
    dead.close()
    assert time.monotonic() - started < 10


def test_engine_exits_when_its_parent_goes_away(tmp_path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "from desktop.client.process import EngineProcess\n"
        "engine = EngineProcess.start()\n"
        "print(engine.proc.pid, flush=True)\n"
        "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        engine_pid = int(parent.stdout.readline())
        assert httpx.get  # the engine is up: its pid exists
        os.kill(engine_pid, 0)
        parent.kill()
        parent.wait()

        def gone() -> bool:
            try:
                os.kill(engine_pid, 0)
            except ProcessLookupError:
                return True
            stat = Path(f"/proc/{engine_pid}/stat")
            return stat.exists() and stat.read_text().split()[2] == "Z"

        wait_for(gone, timeout=15, what="the orphaned engine to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout:
            parent.stdout.close()


def test_a_port_is_reused_after_restart() -> None:
    events = []
    supervisor = EngineSupervisor(on_event=events.append)
    supervisor.start()
    port = free_port()
    try:
        supervisor.load(MODEL)
        supervisor.set_public(True, host="127.0.0.1", port=port)
        os.kill(supervisor.pid, signal.SIGKILL)
        wait_for(lambda: any(e.kind == "restarted" for e in events), what="a restart")
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x",
                           max_retries=0) as client:
            assert MODEL in [m.id for m in client.models.list()]
    finally:
        supervisor.stop()
