"""Start the engine process, watch it, and bring it back when it dies.

The supervisor remembers what the engine should be doing (which model with which settings,
whether the public API is open), so a restarted engine is put back in the same state. It
reports what happened in plain words through a callback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from desktop.client.adapters import AdapterClient
from desktop.client.api import EngineClient, EngineError
from desktop.client.public_port import PublicPort
from desktop.core.listening import HandOver
from desktop.core.paths import get_paths
from desktop.core.presets import PresetError, StackEntry

START_TIMEOUT = 60.0
ENGINE_SPINCOUNT = "10000"
MAX_RESTARTS = 5
RESTART_WINDOW = 120.0


@dataclass(frozen=True)
class EngineEvent:
    kind: str  # "started", "crashed", "restarted", "restart_failed", "stopped"
    message: str


def engine_command() -> list[str]:
    """How to start the engine: the same executable with a flag when frozen."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--engine"]
    return [sys.executable, "-m", "desktop.engine"]


def describe_exit(code: int) -> str:
    """Plain words for how a process ended."""
    if code < 0:
        sig = -code
        if sig == signal.SIGKILL:
            return ("was killed (SIGKILL); the system may have run out of memory, or another "
                    "program stopped it")
        if sig == getattr(signal, "SIGSEGV", None):
            return "crashed in native code (segmentation fault)"
        if sig == getattr(signal, "SIGABRT", None):
            return "aborted in native code"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"was stopped by {name}"
    return f"exited with code {code}"


class EngineProcess:
    """One running engine process and its private address."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, token: str,
                 handover: HandOver | None = None, log: Path | None = None,
                 log_from: int = 0) -> None:
        self.proc = proc
        self.url = url
        self.token = token
        self.handover = handover or HandOver()
        self._log = log
        self._log_from = log_from  # where this process's part of the engine log begins
        self._drainer = threading.Thread(target=_drain, args=(proc,), name="engine-stdout",
                                         daemon=True)
        self._drainer.start()

    @classmethod
    def start(cls, timeout: float = START_TIMEOUT) -> "EngineProcess":
        paths = get_paths().ensure()
        log_path = paths.logs / "engine.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        log_from = log.tell()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # OpenMP's idle threads spin for a long while before they sleep, taking CPU from the
        # engine's own event loop and from other programs; a short spin costs decoding nothing
        # here (benchmarks/busy_neighbours.py, docs/performance.md).
        env.setdefault("GOMP_SPINCOUNT", ENGINE_SPINCOUNT)
        handover = HandOver()
        command = engine_command() + ["--parent-pid", str(os.getpid())]
        channel = handover.child_fd()
        if channel is not None:
            command += ["--handover-fd", str(channel)]
        try:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
                pass_fds=() if channel is None else (channel,))
        except BaseException:
            handover.close()
            raise
        finally:
            log.close()
            handover.after_spawn()
        first: list[bytes] = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        line = first[0] if first else b""
        try:
            hello = json.loads(line)
            url, token = hello["url"], hello["token"]
        except (ValueError, KeyError, TypeError):
            proc.kill()
            proc.wait()
            handover.close()
            tail = _tail(paths.logs / "engine.log")
            raise EngineError("The engine did not start" + (f": {tail}" if tail else ".")) \
                from None
        return cls(proc, url, token, handover, log_path, log_from)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.close_pipe()

    def close_pipe(self) -> None:
        """Wait for the stdout reader, which closes the pipe when the engine has exited."""
        self._drainer.join(5)
        self.handover.close()

    def native_reason(self) -> str:
        """What native code said before this engine died (GGML_ASSERT and the like), if
        anything: the last such line it wrote to the engine log."""
        if self._log is None:
            return ""
        try:
            with open(self._log, "rb") as log:
                log.seek(max(self._log_from, log.seek(0, os.SEEK_END) - 256 * 1024))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        found = [line.strip() for line in text.splitlines() if _NATIVE_LINE.search(line)]
        # Native code's own words win over Python's note that the process was aborted.
        own = [line for line in found if not line.startswith("Fatal Python error")]
        return (own or found or [""])[-1][:400]


def _drain(proc: subprocess.Popen[bytes]) -> None:
    """Keep reading the engine's stdout so it can never block on a full pipe."""
    assert proc.stdout is not None
    with proc.stdout:
        for _ in proc.stdout:
            pass


# How native code says why it stops: ggml's "file:line: message" (GGML_ASSERT, GGML_ABORT),
# C++'s "terminate called", assert(3)'s "Assertion ... failed", Python's faulthandler.
_NATIVE_LINE = re.compile(r"^\S+:\d+: \S|GGML_ASSERT|GGML_ABORT|terminate called|Assertion .* "
                          r"failed|Fatal Python error")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " ".join(line.strip() for line in text[-lines:])


class EngineSupervisor:
    """Keeps one engine running in the state the app asked for."""

    def __init__(self, on_event: Callable[[EngineEvent], None] | None = None) -> None:
        self._on_event = on_event or (lambda event: None)
        self._lock = threading.RLock()
        self._engine: EngineProcess | None = None
        self._client: EngineClient | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._restarts: deque[float] = deque()
        self.model: tuple[str, dict[str, Any]] | None = None
        self.public: dict[str, Any] | None = None
        self._port = PublicPort()
        # LoRA adapters loaded on the model (name -> GGUF path, None for library adapters) and
        # the adapter stack, put back after a restart.
        self.adapters: dict[str, str | None] = {}
        self.adapter_stack: list[StackEntry] = []
        self.events: list[EngineEvent] = []

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._stopping = False
            self._launch()
        self._emit("started", "The engine is running.")

    def _launch(self) -> None:
        engine = EngineProcess.start()
        self._engine = engine
        if self._client is not None:
            self._client.close()
        self._client = EngineClient(engine.url, engine.token)
        self._ready.set()
        threading.Thread(target=self._watch, args=(engine,), name="engine-watch",
                         daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            engine, self._engine = self._engine, None
            self._ready.clear()
        if engine is not None:
            engine.stop()
        self._port.close()
        if self._client is not None:
            self._client.close()
        self._emit("stopped", "The engine has stopped.")

    @property
    def pid(self) -> int | None:
        engine = self._engine
        return engine.proc.pid if engine is not None else None

    @property
    def client(self) -> EngineClient:
        """The client of the running engine; waits while the engine is being restarted."""
        if self._stopping or not self._ready.wait(START_TIMEOUT) or self._client is None:
            raise EngineError("The engine is not running.")
        return self._client

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    # -- desired state ---------------------------------------------------------------------------
    def load(self, model: str, **settings: Any) -> dict[str, Any]:
        status = self.client.load(model, **settings)
        self.model = (model, settings)
        self._follow_adapters(status.get("adapters"))
        return status

    def unload(self) -> dict[str, Any]:
        self.model = None
        self.adapters, self.adapter_stack = {}, []  # the engine frees them with the model
        return self.client.unload()

    def add_adapter(self, *, name: str | None = None, path: str | None = None) -> dict[str, Any]:
        """Load a LoRA adapter on the model (a library adapter by name, or a GGUF file)."""
        state = AdapterClient(self.client).add(name=name, path=path)
        if path is None:
            self.adapters[str(name)] = None
        else:
            found = [a["name"] for a in state.get("loaded", []) if a.get("path") == path]
            self.adapters[name or (found[-1] if found else Path(path).stem)] = path
        return state

    def remove_adapter(self, name: str) -> dict[str, Any]:
        """Take a LoRA adapter off the model (and out of the stack)."""
        state = AdapterClient(self.client).remove(name)
        self.adapters.pop(name, None)
        self.adapter_stack = [e for e in self.adapter_stack if e.name != name]
        return state

    def set_adapter_stack(self, stack: list[StackEntry]) -> dict[str, Any]:
        """Replace the engine's adapter stack; the next reply uses it."""
        state = AdapterClient(self.client).set_stack(stack)
        self.adapter_stack = list(stack)
        return state

    def _follow_adapters(self, adapters: dict[str, Any] | None) -> None:
        """After a load the engine keeps only the adapters that fit the model: so does this."""
        if adapters is None:
            return
        kept = {a.get("name") for a in adapters.get("loaded", [])}
        self.adapters = {n: p for n, p in self.adapters.items() if n in kept}
        try:
            self.adapter_stack = [StackEntry.from_dict(e) for e in adapters.get("stack", [])]
        except PresetError:
            self.adapter_stack = []

    def set_public(self, enabled: bool, **options: Any) -> dict[str, Any]:
        """Open (or change) or close the public API. The port is bound here and handed to
        the engine, so it stays open while the engine restarts."""
        client = self.client
        if not enabled:
            result = client.set_public(False)
            self._port.close()
            self.public = None
            return result
        engine = self._engine
        if engine is None:
            raise EngineError("The engine is not running.")
        result = self._port.open(client, engine, options)
        self.public = dict(options, port=result.get("port", options.get("port")))
        return result

    # -- watching ------------------------------------------------------------------------------
    def _emit(self, kind: str, message: str) -> None:
        event = EngineEvent(kind, message)
        self.events.append(event)
        self._on_event(event)

    def _watch(self, engine: EngineProcess) -> None:
        code = engine.proc.wait()
        engine.close_pipe()
        with self._lock:
            if self._stopping or engine is not self._engine:
                return
            self._ready.clear()
        how = describe_exit(code)
        # A process that ended itself (an abort, a fault) may have said why; a kill did not.
        killed = code in (0, -getattr(signal, "SIGKILL", 9), -signal.SIGTERM)
        reason = "" if killed else engine.native_reason()
        if reason:
            how += f": {reason}"
        self._port.stand_in("The engine stopped and is being restarted; try again in a few "
                            "seconds.")
        self._emit("crashed", f"The engine {how}. Restarting it…")
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW:
            self._restarts.popleft()
        if len(self._restarts) > MAX_RESTARTS:
            self._port.close()
            self._emit("restart_failed", f"The engine stopped {len(self._restarts)} times in "
                       "two minutes, so it was not restarted again. Restart it by hand.")
            return
        try:
            with self._lock:
                if self._stopping:
                    return
                self._launch()
                self._ready.clear()
                note = self._restore()
                self._ready.set()
        except EngineError as exc:
            self._ready.set()
            self._port.close()
            self._emit("restart_failed", f"The engine restarted but could not be set up "
                       f"again: {exc}")
            return
        finally:
            self._port.end_stand_in()
        what = f" with {self.model[0]}" if self.model else ""
        self._emit("restarted", f"The engine {how}. It was restarted{what}.{note}")

    def _restore(self) -> str:
        """Put the new engine in the old one's state; return a note on what could not be."""
        assert self._client is not None
        if self.model is not None:
            self._client.load(self.model[0], **self.model[1])
        if self.public is not None and self._engine is not None:
            self._port.open(self._client, self._engine, self.public)
        if self.model is None or not (self.adapters or self.adapter_stack):
            return ""
        adapters = AdapterClient(self._client)
        try:
            for name, path in self.adapters.items():
                adapters.add(name=name, path=path)
            if self.adapter_stack:
                adapters.set_stack(self.adapter_stack)
        except EngineError as exc:
            # The model works without them: say so rather than call the restart failed.
            self.adapters, self.adapter_stack = {}, []
            return f" Its LoRA adapters could not be put back: {exc}"
        return ""
