"""The layering the architecture promises: core has no Qt, only the engine has llama_cpp."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "desktop"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_and_tools_never_import_qt() -> None:
    # The MCP servers' code is shared by the window and the terminal chat.
    for path in [*(PACKAGE / "core").rglob("*.py"), *(PACKAGE / "tools").rglob("*.py")]:
        assert not _imports(path) & {"PySide6", "shiboken6"}, path


def test_only_the_engine_imports_llama_cpp() -> None:
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "engine") in path.parents:
            continue
        assert "llama_cpp" not in _imports(path), path


def test_importing_core_and_client_loads_neither_qt_nor_llama() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import desktop.core, desktop.client, desktop.cli\n"
        "for pkg in (desktop.core, desktop.client):\n"
        "    for mod in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(f'{pkg.__name__}.{mod.name}')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'llama_cpp')]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""
