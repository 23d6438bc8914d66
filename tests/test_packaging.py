"""The installer build's parts that can be checked without building: the spec, what goes into
the app, the launcher and package files, the icons, the smoke test's allow-list, and the
window's smoke-test mode (run for real from source)."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import os
import plistlib
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO, free_port

PACKAGING = REPO / "packaging"


def load(name: str) -> ModuleType:
    """A module from packaging/ (a folder of scripts, not a package)."""
    if str(PACKAGING) not in sys.path:
        sys.path.insert(0, str(PACKAGING))
    spec = importlib.util.spec_from_file_location(f"packaging_{name}", PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


bundle = load("bundle")
build = load("build")
smoke = load("smoke_test")
icons = load("make_icons")


# -- the spec and what goes into the app ----------------------------------------------------------

def test_spec_parses_and_names_files_that_exist() -> None:
    tree = ast.parse((PACKAGING / "nomoat.spec").read_text(encoding="utf-8"))
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"} <= called
    text = (PACKAGING / "nomoat.spec").read_text(encoding="utf-8")
    paths = [REPO.joinpath(*re.findall(r'"([^"]+)"', chain))
             for chain in re.findall(r'REPO((?: / "[^"]+")+)', text)]
    assert REPO / "packaging" / "hooks" / "rthook_ggml_backends.py" in paths
    assert all(path.exists() for path in paths), [p for p in paths if not p.exists()]
    for script in ("nomoat_entry.py", "hooks/rthook_ggml_backends.py"):
        compile((PACKAGING / script).read_text(encoding="utf-8"), script, "exec")


def test_data_files_put_the_catalog_where_importlib_resources_reads_it() -> None:
    pairs = bundle.data_files()
    assert (str(REPO / "catalog.json"), "desktop/data") in pairs
    assert json.loads((REPO / "catalog.json").read_text(encoding="utf-8"))["models"]
    assert (str(REPO / "resources" / "nomoat.svg"), "resources") in pairs
    assert (str(REPO / "resources" / "icons" / "nomoat-256.png"), "resources/icons") in pairs
    assert all(Path(source).is_file() for source, _ in pairs)
    assert not any(folder == bundle.STARTER_PACKAGE for _, folder in pairs)


def test_the_starter_option_bundles_the_model_where_the_frozen_app_looks(
        starter: Path) -> None:
    source, folder = bundle.data_files(starter=True)[-1]
    assert Path(source) == starter
    assert folder == bundle.STARTER_PACKAGE
    library = (REPO / "desktop" / "core" / "library.py").read_text(encoding="utf-8")
    assert f'STARTER_PACKAGE = "{bundle.STARTER_PACKAGE}"' in library
    assert f'STARTER_FILE = "{starter.name}"' in library


def test_starter_model_is_found_in_a_frozen_app(tmp_path: Path, starter: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop.core.library import starter_model_path

    bundled = tmp_path / "_internal" / bundle.STARTER_PACKAGE / starter.name
    bundled.parent.mkdir(parents=True)
    bundled.symlink_to(starter)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "_internal"), raising=False)
    assert starter_model_path() == bundled
    bundled.unlink()  # not bundled: the installed package is still found
    assert starter_model_path() == starter


def test_heavy_and_unused_parts_are_excluded() -> None:
    for name in ("tkinter", "PySide6.QtWebEngineCore", "PySide6.QtQml", "torch", "openai",
                 "PyInstaller", "llama_cpp.server"):
        assert name in bundle.EXCLUDES
    keep = bundle.keep_binary
    assert keep("PySide6/Qt/plugins/platforms/libqxcb.so")
    assert keep("PySide6/Qt/plugins/platforms/libqoffscreen.so")
    assert keep("PySide6/Qt/plugins/imageformats/libqsvg.so")
    assert keep("PySide6/Qt/plugins/iconengines/libqsvgicon.so")
    assert keep("PySide6/Qt/lib/libQt6Core.so.6")
    assert keep("PySide6\\Qt6\\plugins\\platforms\\qwindows.dll")
    assert keep("llama_cpp/lib/libggml-cpu-haswell.so")
    assert not keep("PySide6/Qt/plugins/platforms/libqeglfs.so")
    assert not keep("PySide6/Qt/plugins/imageformats/libqpdf.so")
    assert not keep("PySide6/Qt/plugins/platformthemes/libqgtk3.so")
    assert not keep("PySide6/Qt/plugins/sqldrivers/libqsqlite.so")
    assert not keep("PySide6/Qt/lib/libQt6Pdf.so.6")
    assert not keep("PySide6/Qt/lib/libQt6Quick.so.6")
    assert not keep("libstdc++.so.6")
    assert not keep("libvulkan.so.1")
    assert bundle.keep_data("PySide6/Qt/plugins/imageformats/libqsvg.so")
    assert not bundle.keep_data("PySide6/Qt/translations/qtbase_de.qm")


def test_libraries_only_unused_plugins_need_are_pruned() -> None:
    links = {
        "/x/QtWidgets.abi3.so": ["libQt6Widgets.so.6"],
        "/x/libQt6Widgets.so.6": ["libQt6Gui.so.6", "libc.so.6"],
        "/x/libQt6Gui.so.6": ["libQt6Core.so.6"],
        "/x/libQt6Core.so.6": ["libicuuc.so.73"],
        "/x/libicuuc.so.73": [],
        "/x/libQt6Network.so.6": ["libQt6Core.so.6", "libgssapi_krb5.so.2"],
        "/x/libgssapi_krb5.so.2": [],
        "/x/libqxcb.so": ["libQt6XcbQpa.so.6"],
        "/x/libQt6XcbQpa.so.6": ["libQt6Gui.so.6"],
        "/x/libpython3.11.so.1.0": [],
    }
    binaries = [
        ("PySide6/QtWidgets.abi3.so", "/x/QtWidgets.abi3.so", "EXTENSION"),
        ("PySide6/Qt/lib/libQt6Widgets.so.6", "/x/libQt6Widgets.so.6", "BINARY"),
        ("PySide6/Qt/lib/libQt6Gui.so.6", "/x/libQt6Gui.so.6", "BINARY"),
        ("PySide6/Qt/lib/libQt6Core.so.6", "/x/libQt6Core.so.6", "BINARY"),
        ("PySide6/Qt/lib/libicuuc.so.73", "/x/libicuuc.so.73", "BINARY"),
        ("PySide6/Qt/lib/libQt6Network.so.6", "/x/libQt6Network.so.6", "BINARY"),
        ("libgssapi_krb5.so.2", "/x/libgssapi_krb5.so.2", "BINARY"),
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/x/libqxcb.so", "BINARY"),
        ("PySide6/Qt/lib/libQt6XcbQpa.so.6", "/x/libQt6XcbQpa.so.6", "BINARY"),
        ("libpython3.11.so.1.0", "/x/libpython3.11.so.1.0", "BINARY"),
        ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK"),
        ("libQt6Network.so.6", "PySide6/Qt/lib/libQt6Network.so.6", "SYMLINK"),
        ("PySide6/Qt/plugins/libQt6Gui.so.6", "../lib/libQt6Gui.so.6", "SYMLINK"),
    ]
    kept, dropped = bundle.prune_libraries(binaries, lambda path: links[path])
    assert dropped == ["libQt6Network.so.6", "libgssapi_krb5.so.2"]
    assert len(kept) == len(binaries) - 3
    assert ("libpython3.11.so.1.0", "/x/libpython3.11.so.1.0", "BINARY") in kept
    assert ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK") in kept
    assert ("PySide6/Qt/plugins/libQt6Gui.so.6", "../lib/libQt6Gui.so.6", "SYMLINK") in kept
    assert not any(dest == "libQt6Network.so.6" for dest, _, _ in kept)


def test_license_files_keep_their_folders_and_skip_build_tools() -> None:
    pairs = bundle.license_files()
    folders = {folder for _, folder in pairs}
    assert "licenses/numpy" in folders
    assert "licenses/llama-cpp-python" in folders
    assert not any(folder.split("/")[1] in bundle.BUILD_TOOLS for folder in folders)
    destinations = [(folder, Path(source).name) for source, folder in pairs]
    assert len(destinations) == len(set(destinations)), "two files would land on one name"


def test_release_build_settings() -> None:
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    llama = next(d for d in project["dependencies"] if d.startswith("llama-cpp-python"))
    assert build.LLAMA_VERSION in SpecifierSet(llama.removeprefix("llama-cpp-python"))
    for flag in ("-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"):
        assert flag in build.RELEASE_CMAKE_ARGS
    assert build.wheel_folder(build.RELEASE_CMAKE_ARGS).name == "cpu"
    assert build.wheel_folder("-DGGML_CUDA=ON").name.startswith("custom-")
    requirements = build.app_requirements()
    assert not any("llama" in r for r in requirements)
    assert any(r.startswith("PySide6-Essentials") for r in requirements)
    assert str(build.VENV).endswith("release-venv") and ".venv" not in str(build.VENV)


def test_duplicate_library_copies_become_links(tmp_path: Path) -> None:
    for name in ("libggml.so", "libggml.so.0", "libggml.so.0.25.3"):
        (tmp_path / name).write_bytes(b"\x7fELF same bytes")
    (tmp_path / "libllama.so").write_bytes(b"\x7fELF only one")
    (tmp_path / "libggml-cpu-haswell.so").write_bytes(b"\x7fELF a variant")
    saved = build.link_duplicate_libraries(tmp_path)
    assert saved == 2 * len(b"\x7fELF same bytes")
    assert not (tmp_path / "libggml.so.0").is_symlink()
    assert os.readlink(tmp_path / "libggml.so") == "libggml.so.0"
    assert os.readlink(tmp_path / "libggml.so.0.25.3") == "libggml.so.0"
    assert (tmp_path / "libggml.so").read_bytes() == b"\x7fELF same bytes"
    assert not (tmp_path / "libllama.so").is_symlink()


def test_size_report_names_the_biggest_parts(tmp_path: Path) -> None:
    app = tmp_path / "nomoat"
    (app / "_internal" / "PySide6").mkdir(parents=True)
    (app / "_internal" / "PySide6" / "big.so").write_bytes(b"x" * 3_000_000)
    (app / "_internal" / "small.so").write_bytes(b"x" * 1_000_000)
    (app / "nomoat").write_bytes(b"x" * 10)
    lines = build.size_report(app).splitlines()
    assert lines[0].split() == ["4.0", "MB", "nomoat/", "in", "all"]
    assert lines[1].endswith("_internal/PySide6/") and lines[2].endswith("_internal/small.so")


# -- launcher, package files, icons, CI -----------------------------------------------------------

def test_desktop_file_is_valid() -> None:
    path = PACKAGING / "linux" / "nomoat.desktop"
    tool = shutil.which("desktop-file-validate")
    if tool:
        result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Name"] == "NoMoat"
    assert entry["Exec"] == "/opt/nomoat/nomoat"
    assert entry["Icon"] == "nomoat" and entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";")


def test_deb_templates() -> None:
    linux = PACKAGING / "linux"
    control = (linux / "control").read_text(encoding="utf-8")
    for field in ("Package: nomoat", "Version: @VERSION@", "Architecture: amd64",
                  "Maintainer: @MAINTAINER@", "Depends: @DEPENDS@",
                  "Installed-Size: @INSTALLED_SIZE@", "Description: "):
        assert field in control
    assert control.endswith("\n") and "\n\n" not in control
    for script in ("postinst", "postrm"):
        path = linux / script
        assert path.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
        assert path.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
        subprocess.run(["sh", "-n", str(path)], check=True)
    assert "Apache-2.0" in (linux / "copyright").read_text(encoding="utf-8")


def test_icons_are_rendered_from_the_svg(qapp) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QImage
    from PySide6.QtSvg import QSvgRenderer

    assert QSvgRenderer(str(icons.SVG)).isValid()
    pngs = {}
    for size in icons.PNG_SIZES:
        data = icons.png_path(size).read_bytes()
        assert icons.png_size(data) == (size, size)
        image = QImage(str(icons.png_path(size)))
        assert image.hasAlphaChannel() and image.pixelColor(0, 0).alpha() == 0  # round corner
        assert image.pixelColor(size // 2, size // 8).alpha() == 255
        pngs[size] = data
    rendered = icons.render_png(icons.SVG, 48)
    assert icons.png_size(rendered) == (48, 48)
    ico = icons.read_ico(icons.ICO.read_bytes())
    assert sorted(ico) == list(icons.ICO_SIZES)
    assert all(ico[size] == pngs[size] for size in icons.ICO_SIZES)
    icns = icons.read_icns(icons.ICNS.read_bytes())
    assert set(icns) == set(icons.ICNS_TYPES.values())
    assert icns[b"ic08"] == pngs[256] and icons.png_size(icns[b"ic10"]) == (1024, 1024)


def test_macos_info_plist_template() -> None:
    template = (PACKAGING / "macos" / "Info.plist").read_text(encoding="utf-8")
    info = plistlib.loads(template.replace("@VERSION@", "1.2.3").encode("utf-8"))
    assert info["CFBundleShortVersionString"] == "1.2.3"
    assert info["CFBundleDisplayName"] == "NoMoat"
    assert info["NSHighResolutionCapable"] is True
    assert info["NSLocalNetworkUsageDescription"]


def test_windows_installer_script_installs_the_build() -> None:
    iss = (PACKAGING / "windows" / "nomoat.iss").read_text(encoding="utf-8")
    assert 'Source: "..\\..\\dist\\nomoat\\*"' in iss
    assert "recursesubdirs" in iss and "{app}\\NoMoat.exe" in iss
    assert "PrivilegesRequired=lowest" in iss
    assert (REPO / "resources" / "nomoat.ico").is_file()


def test_ci_workflow_builds_and_smoke_tests_on_every_system() -> None:
    import yaml

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "installers.yml").read_text(
        encoding="utf-8"))
    jobs = workflow["jobs"]
    runners = " ".join(str(job["runs-on"]) for job in jobs.values())
    for system in ("ubuntu", "windows", "macos"):
        assert system in runners
    for job in jobs.values():
        steps = " ".join(str(step.get("run", "")) for step in job["steps"])
        assert "build.py" in steps or "make package" in steps
        assert "smoke_test.py" in steps or "make smoke" in steps
        uses = [step.get("uses", "") for step in job["steps"]]
        assert any(u.startswith("actions/cache") for u in uses), "the llama wheel is cached"


# -- the smoke test's allow-list ------------------------------------------------------------------

def test_allow_list_accepts_the_expected_output() -> None:
    lines = [
        "NoMoat 0.1.0",
        "Imported smollm2-135m-instruct.q4_1 (0.1 GB, registered where it is).",
        "NoMoat is serving smollm2-135m-instruct at http://127.0.0.1:40123/v1",
        'nomoat-smoke {"event": "reply", "text": "Hi"}',
        "This plugin does not support propagateSizeHints()",
        "",
        "   ",
    ]
    assert smoke.unexpected_lines("\n".join(lines)) == []


def test_allow_list_rejects_anything_else() -> None:
    lines = [
        "NoMoat 0.1.0",
        "Traceback (most recent call last):",
        'qt.qpa.plugin: Could not load the Qt platform plugin "xcb"',
        "NoMoat 0.1.0 and more",
        "NoMoat is serving x at http://0.0.0.0:1/v1",
        "DeprecationWarning: something",
    ]
    assert smoke.unexpected_lines("\n".join(lines)) == lines[1:]
    log = "load_backend: loaded CPU backend from /opt/nomoat/_internal/llama_cpp/lib/x.so\n"
    assert smoke.unexpected_lines(log, smoke.ALLOWED_ENGINE_LOG) == []
    assert smoke.unexpected_lines(log + "llama_model_load: error\n",
                                  smoke.ALLOWED_ENGINE_LOG) == ["llama_model_load: error"]


def test_artefact_names() -> None:
    assert bundle.tarball_name("1.2.3") == "nomoat-1.2.3-linux-x86_64.tar.gz"
    assert bundle.deb_name("1.2.3") == "nomoat_1.2.3_amd64.deb"
    assert bundle.portable_name("1.2.3", "linux") == "nomoat-1.2.3-linux-x86_64-portable"
    assert bundle.portable_name("1.2.3", "win32").endswith("-portable.exe")
    import desktop

    assert bundle.app_version() == desktop.__version__


# -- the window's smoke-test mode, from source ----------------------------------------------------

def test_smoke_test_mode_chats_serves_and_quits(tmp_path: Path, starter: Path) -> None:
    """What the frozen app does under `make smoke`, here from source: one real chat turn in the
    window, the public API switch, one request from the openai client, a clean quit."""
    import openai

    port = free_port()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("NOMOAT_HOME", None)
    proc = subprocess.Popen(
        [sys.executable, str(PACKAGING / "nomoat_entry.py"), "--smoke-test", "--data-dir",
         str(tmp_path / "data"), "--port", str(port), "--model", str(starter)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, cwd=tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    events = []
    try:
        for line in proc.stdout:
            events.append(line.rstrip("\n"))
            if '"event": "public"' in line:
                public = json.loads(line.split(" ", 1)[1])
                with openai.OpenAI(base_url=public["base_url"], api_key="none",
                                   max_retries=0) as client:
                    reply = client.chat.completions.create(
                        model=public["model"], max_tokens=8,
                        messages=[{"role": "user", "content": "Hi"}])
                assert reply.choices[0].message.content
                proc.stdin.write("sent\n")
                proc.stdin.close()
            if line.startswith(("nomoat-smoke-failed", "Traceback")):
                break
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if not proc.stdin.closed:
            proc.stdin.close()
    assert code == 0, "\n".join(events)
    assert smoke.unexpected_lines("\n".join(events)) == []
    kinds = [json.loads(e.split(" ", 1)[1])["event"] for e in events
             if e.startswith("nomoat-smoke {")]
    assert kinds == ["engine", "reply", "public", "requests", "closed"]
    engine = json.loads(next(e for e in events if '"event": "engine"' in e).split(" ", 1)[1])
    assert engine["command"][1:] == ["-m", "desktop.engine"]  # frozen: [nomoat, "--engine"]
    assert (tmp_path / "data" / "chats").is_dir()
