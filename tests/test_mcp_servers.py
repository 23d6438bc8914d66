"""MCP servers run for the chat: real servers written with the official SDK, over stdio and
streamable HTTP, started on demand, failing in ways a user can read, and cleaned up after.

The servers are in tests/mcp_servers/: notes.py (a real SDK server), broken.py (exits at once)
and garbage.py (answers with malformed or hostile JSON-RPC, for the fuzz test).
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from desktop.tools.config import McpConfig, ServerConfig
from desktop.tools.servers import CallResult, McpServers, ServerState, ServerStatus

SERVERS = Path(__file__).resolve().parent / "mcp_servers"
NOTES, BROKEN, GARBAGE = SERVERS / "notes.py", SERVERS / "broken.py", SERVERS / "garbage.py"
NOTE_TEXT = "Buy oat milk.\nCall the plumber on Tuesday.\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition was not met in time"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether *pid* is a process that has not been ended and reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_of(status: ServerStatus) -> int:
    found = re.findall(r"notes server pid (\d+)", status.log)
    assert found, status
    return int(found[-1])


def notes(notes_dir: Path, *extra: str, name: str = "notes") -> ServerConfig:
    return ServerConfig(name, command=sys.executable, args=(str(NOTES), *extra),
                        env={"NOTES_DIR": str(notes_dir)})


def config_of(*servers: ServerConfig) -> McpConfig:
    return McpConfig(servers={server.name: server for server in servers})


@pytest.fixture
def notes_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text(NOTE_TEXT, encoding="utf-8")
    (tmp_path / "secret.txt").write_text("not a note", encoding="utf-8")
    return folder


@pytest.fixture
def managers(tmp_path: Path) -> Iterator[Callable[..., McpServers]]:
    """Makes managers that log under tmp_path, and closes each when the test ends."""
    made: list[McpServers] = []

    def make(config: McpConfig, on_status: Callable[[ServerStatus], None] | None = None,
             **options: object) -> McpServers:
        manager = McpServers(config, on_status, log_dir=tmp_path / "logs",
                             **options)  # type: ignore[arg-type]
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


class HttpNotes:
    """notes.py serving streamable HTTP on a port of its own, stopped and started at will."""

    def __init__(self, notes_dir: Path, output: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._env = {**os.environ, "NOTES_DIR": str(notes_dir)}
        self._output_path = output
        self._output = open(output, "ab")  # noqa: SIM115 - closed by close()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(NOTES), "--http", str(self.port)], env=self._env,
            stdin=subprocess.DEVNULL, stdout=self._output, stderr=self._output)
        deadline = time.monotonic() + 30
        while True:
            assert self._process.poll() is None, self._output_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def close(self) -> None:
        self.stop()
        self._output.close()


@pytest.fixture
def http_notes(tmp_path: Path, notes_dir: Path) -> Iterator[HttpNotes]:
    server = HttpNotes(notes_dir, tmp_path / "http-server.log")
    try:
        server.start()
        yield server
    finally:
        server.close()


def test_a_stdio_server_lists_its_tools_and_runs_them(managers, notes_dir: Path) -> None:
    seen: list[tuple[ServerStatus, str]] = []
    manager = managers(config_of(notes(notes_dir)),
                       lambda status: seen.append((status, threading.current_thread().name)))
    assert [s.state for s in manager.statuses()] == [ServerState.IDLE]

    tools, problems = manager.tools(["notes"])
    assert problems == []
    assert {tool.name for tool in tools["notes"]} == {"todays_note", "read_note", "fail", "wait"}
    read_note = next(tool for tool in tools["notes"] if tool.name == "read_note")
    _, description, schema = read_note  # calls.offer() unpacks it so
    assert "note" in description and schema["properties"]["name"]["type"] == "string"
    assert [(s.state, thread) for s, thread in seen] == [
        (ServerState.STARTING, "mcp-servers"), (ServerState.READY, "mcp-servers")]
    status = manager.status("notes")
    assert status.state == ServerState.READY and len(status.tools) == 4
    assert "notes server pid" in status.log

    result = manager.call("notes", "read_note", {"name": "todo.txt"})
    assert result.ok and result.text == NOTE_TEXT
    failed = manager.call("notes", "fail", {"reason": "the disk is full"})
    assert not failed.ok and "the disk is full" in failed.text
    outside = manager.call("notes", "read_note", {"name": "../secret.txt"})
    assert not outside.ok and "not a note" in outside.text
    unknown = manager.call("notes", "no_such_tool", {})
    assert not unknown.ok and unknown.text
    with pytest.raises(KeyError):
        manager.status("nobody")


def test_env_and_cwd_reach_the_server(managers, notes_dir: Path) -> None:
    server = ServerConfig("notes", command=sys.executable, args=(str(NOTES),),
                          env={"NOTES_DIR": "."}, cwd=str(notes_dir))
    manager = managers(config_of(server))
    assert manager.call("notes", "read_note", {"name": "todo.txt"}).text == NOTE_TEXT


def test_an_http_server_lists_its_tools_and_runs_them(managers, http_notes: HttpNotes) -> None:
    remote = ServerConfig("remote", url=http_notes.url,
                          headers={"Authorization": "Bearer test"})
    manager = managers(config_of(remote))
    tools, problems = manager.tools(["remote"])
    assert problems == []
    assert {t.name for t in tools["remote"]} == {"todays_note", "read_note", "fail", "wait"}
    assert manager.status("remote").log == ""  # an HTTP server's output is its own
    result = manager.call("remote", "read_note", {"name": "todo.txt"})
    assert result.ok and result.text == NOTE_TEXT
    failed = manager.call("remote", "fail", {"reason": "no such folder"})
    assert not failed.ok and "no such folder" in failed.text


def test_an_http_server_that_cannot_be_used_says_why(managers, http_notes: HttpNotes) -> None:
    wrong_path = ServerConfig("wrong", url=http_notes.url.replace("/mcp", "/nothing"))
    nobody = ServerConfig("nobody", url=f"http://127.0.0.1:{free_port()}/mcp")
    manager = managers(config_of(wrong_path, nobody), start_timeout=10)
    tools, problems = manager.tools(["wrong", "nobody"])
    assert tools == {}
    assert manager.status("wrong").state == ServerState.FAILED
    assert "HTTP 404" in manager.status("wrong").error
    assert "could not be reached" in manager.status("nobody").error
    assert sorted(problems) == sorted([manager.status("wrong").error,
                                       manager.status("nobody").error])
    result = manager.call("nobody", "read_note", {"name": "todo.txt"})
    assert not result.ok and "could not be reached" in result.text


def test_an_http_server_that_went_away_is_reached_again(managers,
                                                        http_notes: HttpNotes) -> None:
    manager = managers(config_of(ServerConfig("remote", url=http_notes.url)))
    assert manager.call("remote", "read_note", {"name": "todo.txt"}).ok
    http_notes.stop()
    result = manager.call("remote", "read_note", {"name": "todo.txt"})
    assert not result.ok and "could not be reached" in result.text
    assert manager.status("remote").state == ServerState.FAILED
    http_notes.start()
    assert manager.call("remote", "read_note", {"name": "todo.txt"}).ok
    http_notes.stop()  # a new server process knows nothing of the session
    http_notes.start()
    result = manager.call("remote", "read_note", {"name": "todo.txt"})
    assert not result.ok and "ended the session" in result.text
    assert manager.call("remote", "read_note", {"name": "todo.txt"}).text == NOTE_TEXT


def test_a_server_that_cannot_start_fails_with_its_own_words(managers, tmp_path: Path) -> None:
    broken = ServerConfig("broken", command=sys.executable, args=(str(BROKEN),))
    missing = ServerConfig("missing", command="nomoat-no-such-program")
    no_folder = ServerConfig("nofolder", command=sys.executable, args=(str(BROKEN),),
                             cwd=str(tmp_path / "gone"))
    off = ServerConfig("off", command=sys.executable, args=(str(BROKEN),), enabled=False)
    manager = managers(config_of(broken, missing, no_folder, off))
    assert manager.status("off").state == ServerState.OFF

    tools, problems = manager.tools(["broken", "missing", "nofolder", "off", "unknown"])
    assert tools == {} and len(problems) == 5
    status = manager.status("broken")
    assert status.state == ServerState.FAILED
    assert status.error.startswith("The MCP server 'broken' ")
    assert status.error.endswith("broken server: cannot open its database, giving up")
    assert "cannot open its database" in status.log
    assert "'nomoat-no-such-program' was not found" in manager.status("missing").error
    assert "does not exist" in manager.status("nofolder").error
    joined = "\n".join(problems)
    assert "'off' is switched off" in joined and "no MCP server named 'unknown'" in joined
    result = manager.call("broken", "read_note", {"name": "x"})
    assert not result.ok and "cannot open its database" in result.text


def test_a_server_that_hangs_at_start_fails_in_time_and_others_go_on(
        managers, notes_dir: Path) -> None:
    hanging = notes(notes_dir, "--hang", name="hanging")
    manager = managers(config_of(notes(notes_dir), hanging), start_timeout=2)
    assert manager.call("notes", "read_note", {"name": "todo.txt"}).ok
    answers: list[bool] = []
    started = time.monotonic()
    waiting = threading.Thread(target=lambda: answers.append(bool(manager.tools(["hanging"])[1])))
    waiting.start()
    while waiting.is_alive():  # the other server answers all along
        assert manager.call("notes", "read_note", {"name": "todo.txt"}).ok
    waiting.join()
    assert answers == [True] and time.monotonic() - started < 2 + 2
    status = manager.status("hanging")
    assert status.state == ServerState.FAILED
    assert "did not answer within 2 s" in status.error
    assert "hangs before serving" in status.error


def test_a_start_held_up_by_a_busy_loop_is_failed_not_left_starting(
        managers, notes_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many servers spawned at once on a loaded machine keep the manager's loop busy past a
    start timeout: whoever asked is told it failed, and the list says the same."""
    import desktop.tools.connection as connection

    spawn = connection.stdio_client

    def slow_spawn(*args: object, **kwargs: object) -> object:
        time.sleep(2.2)  # holds the loop, as spawning two dozen processes under load does
        return spawn(*args, **kwargs)

    monkeypatch.setattr(connection, "stdio_client", slow_spawn)
    manager = managers(config_of(notes(notes_dir, "--hang", name="hanging")), start_timeout=1)
    tools, problems = manager.tools(["hanging"])
    status = manager.status("hanging")
    assert tools == {} and status.state == ServerState.FAILED, (problems, status)
    assert problems == [status.error] and "did not answer within 1 s" in status.error


def test_a_hung_call_times_out_and_a_cancel_returns_at_once(managers, notes_dir: Path) -> None:
    manager = managers(config_of(notes(notes_dir)))
    assert manager.tools(["notes"])[1] == []
    started = time.monotonic()
    result = manager.call("notes", "wait", {"seconds": 60}, timeout=1)
    assert not result.ok and "did not answer within 1 s" in result.text
    assert time.monotonic() - started < 3

    cancel, fired = threading.Event(), []
    timer = threading.Timer(0.3, lambda: (fired.append(time.monotonic()), cancel.set()))
    timer.start()
    result = manager.call("notes", "wait", {"seconds": 60}, cancelled=cancel)
    returned = time.monotonic()
    timer.join()
    assert not result.ok and "cancelled" in result.text
    assert returned - fired[0] < 0.5  # the event is looked at every 0.05 s
    assert manager.call("notes", "wait", {"seconds": 0}).text == "waited"


def test_a_killed_server_fails_and_works_again_when_next_used(managers, notes_dir: Path) -> None:
    seen: list[ServerStatus] = []
    manager = managers(config_of(notes(notes_dir)), seen.append)
    assert manager.call("notes", "read_note", {"name": "todo.txt"}).ok
    pid = pid_of(manager.status("notes"))
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: manager.status("notes").state == ServerState.FAILED)
    assert "stopped unexpectedly" in manager.status("notes").error
    assert seen[-1].state == ServerState.FAILED
    wait_until(lambda: not alive(pid))

    result = manager.call("notes", "read_note", {"name": "todo.txt"})
    assert result.ok and result.text == NOTE_TEXT
    assert manager.status("notes").state == ServerState.READY
    assert pid_of(manager.status("notes")) != pid


def test_stop_and_restart(managers, notes_dir: Path) -> None:
    manager = managers(config_of(notes(notes_dir)))
    manager.start("notes")
    wait_until(lambda: manager.status("notes").state == ServerState.READY)
    first = pid_of(manager.status("notes"))
    manager.restart("notes")
    wait_until(lambda: manager.status("notes").state == ServerState.READY
               and pid_of(manager.status("notes")) != first)
    wait_until(lambda: not alive(first))
    second = pid_of(manager.status("notes"))
    manager.stop("notes")
    wait_until(lambda: manager.status("notes").state == ServerState.IDLE)
    wait_until(lambda: not alive(second))
    assert manager.call("notes", "read_note", {"name": "todo.txt"}).ok  # started again
    manager.start("unknown")  # ignored, as is a server that is off


def test_configure_stops_what_was_removed_changed_or_switched_off(
        managers, notes_dir: Path, tmp_path: Path) -> None:
    kept, changed, off, gone = (notes(notes_dir, name=name)
                                for name in ("kept", "changed", "off", "gone"))
    manager = managers(config_of(kept, changed, off, gone))
    assert manager.tools(["kept", "changed", "off", "gone"])[1] == []
    pids = {name: pid_of(manager.status(name)) for name in ("kept", "changed", "off", "gone")}

    other = tmp_path / "other"
    other.mkdir()
    (other / "todo.txt").write_text("other", encoding="utf-8")
    changed = replace(changed, env={"NOTES_DIR": str(other)})
    off = replace(off, enabled=False)
    added = notes(notes_dir, name="added")
    manager.configure(config_of(added, kept, changed, off))
    assert [(s.name, s.state) for s in manager.statuses()] == [
        ("added", ServerState.IDLE), ("kept", ServerState.READY),
        ("changed", ServerState.IDLE), ("off", ServerState.OFF)]
    for name in ("changed", "off", "gone"):
        wait_until(lambda name=name: not alive(pids[name]))
    assert alive(pids["kept"])
    assert manager.call("changed", "read_note", {"name": "todo.txt"}).text == "other"
    assert manager.call("kept", "read_note", {"name": "todo.txt"}).ok


def test_close_leaves_no_process_behind(managers, notes_dir: Path) -> None:
    servers = [notes(notes_dir, name=f"n{i}") for i in range(3)]
    hanging = notes(notes_dir, "--hang", name="hanging")
    manager = managers(config_of(*servers, hanging), start_timeout=30)
    assert manager.tools([s.name for s in servers])[1] == []
    manager.start("hanging")  # still starting when closed
    wait_until(lambda: "hangs before serving" in manager.status("hanging").log)
    pids = [pid_of(manager.status(name)) for name in ("n0", "n1", "n2", "hanging")]
    assert any(thread.name == "mcp-servers" for thread in threading.enumerate())

    manager.close()
    assert all(not alive(pid) for pid in pids)
    assert not any(thread.name == "mcp-servers" for thread in threading.enumerate())
    manager.close()  # again: nothing to do
    assert not manager.call("n0", "read_note", {"name": "todo.txt"}).ok
    assert manager.tools(["n0"])[0] == {}
    try:
        import psutil
    except ImportError:
        return
    left = [p for p in psutil.Process().children(recursive=True)
            if str(SERVERS) in " ".join(p.cmdline())]
    assert left == []


def test_logs_go_to_the_data_folder_by_default(data_home: Path, notes_dir: Path) -> None:
    manager = McpServers(config_of(notes(notes_dir)))
    try:
        assert manager.tools(["notes"])[1] == []
    finally:
        manager.close()
    assert "notes server pid" in (data_home / "logs" / "mcp" / "notes.log").read_text()


# --- fuzz ---------------------------------------------------------------------------------------

STEPS = ("initialize", "tools/list", "tools/call")
MODES = ("not_json", "wrong_id", "wrong_types", "missing_fields", "huge", "odd_unicode",
         "raw_bytes", "close_mid", "error_code", "exit", "silent", "flood", "request_back",
         "deep", "twice", "no_newline")
FUZZ_TIMEOUT = 1.5


def clear(text: str, name: str) -> None:
    """A message a user can read: a sentence about the server, not a traceback."""
    assert isinstance(text, str) and text.startswith("The "), (name, text)
    assert f"'{name}'" in text or "tool" in text, (name, text)
    assert len(text) < 3000 and "Traceback" not in text, (name, text[:500])


def echo(manager: McpServers, name: str, case: tuple[str, str, int]) -> CallResult:
    """Call the garbage server's one tool: whatever happens, in time and told clearly."""
    began = time.monotonic()
    result = manager.call(name, "echo", {"text": "hi"})
    assert time.monotonic() - began < FUZZ_TIMEOUT + 1.5, (case, result)
    if not result.ok:
        clear(result.text, name)
    return result


def test_fuzz_hostile_servers_never_break_the_manager(managers, notes_dir: Path) -> None:
    rng = random.Random(20261206)
    cases = [(step, mode, rng.randrange(2**31)) for _ in range(4) for step in STEPS
             for mode in MODES]
    rng.shuffle(cases)
    good = notes(notes_dir)
    manager = managers(config_of(good), start_timeout=FUZZ_TIMEOUT, call_timeout=FUZZ_TIMEOUT)
    outcomes: dict[str, int] = {}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for first in range(0, len(cases), 24):
            batch = {f"g{first + i}": case for i, case in enumerate(cases[first:first + 24])}
            manager.configure(config_of(good, *(
                ServerConfig(name, command=sys.executable,
                             args=(str(GARBAGE), step, mode, str(seed)))
                for name, (step, mode, seed) in batch.items())))
            started = time.monotonic()
            tools, problems = manager.tools(batch)
            assert time.monotonic() - started < FUZZ_TIMEOUT + 2
            for name, case in batch.items():
                status = manager.status(name)
                if name in tools:
                    assert status.state == ServerState.READY, (case, status)
                else:
                    assert status.state == ServerState.FAILED, (case, status)
                    clear(status.error, name)
                    assert status.error in problems
                outcomes[status.state] = outcomes.get(status.state, 0) + 1

            for future in [pool.submit(echo, manager, name, batch[name]) for name in tools]:
                result = future.result()
                outcomes[f"call ok {result.ok}"] = outcomes.get(f"call ok {result.ok}", 0) + 1
            result = manager.call("notes", "read_note", {"name": "todo.txt"})
            assert result.ok and result.text == NOTE_TEXT
    # Every kind of ending was met: ready and failed servers, calls that worked and failed.
    assert all(outcomes.get(key) for key in (ServerState.READY, ServerState.FAILED,
                                             "call ok True", "call ok False")), outcomes


def test_the_window_opens_without_the_sdk_until_a_server_starts(notes_dir: Path,
                                                                 tmp_path: Path) -> None:
    """The SDK takes about half a second to import: the window's start does not pay for it."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import desktop.ui.app, desktop.ui.views.main_window, desktop.ui.tool_servers\n"
        "from desktop.tools.config import McpConfig, ServerConfig\n"
        "from desktop.tools.servers import McpServers\n"
        "before = 'mcp' in sys.modules\n"
        "server = ServerConfig('notes', command=sys.executable, args=(sys.argv[1],),\n"
        "                      env={'NOTES_DIR': sys.argv[2]})\n"
        "manager = McpServers(McpConfig(servers={'notes': server}), log_dir=Path(sys.argv[3]))\n"
        "tools, problems = manager.tools(['notes'])\n"
        "manager.close()\n"
        "print(before, 'mcp' in sys.modules, any(t.name == 'read_note' for t in tools['notes']))\n")
    done = subprocess.run([sys.executable, "-c", code, str(NOTES), str(notes_dir),
                           str(tmp_path / "logs")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "True"], done.stdout
