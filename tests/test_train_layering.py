"""Training's layering: torch, transformers and peft are imported by name (never by an import
statement the installers' module scan would follow) and only by the processes desktop/train
starts, so the app imports, runs and packs without the train extra."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "desktop"
HEAVY = {"torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors"}


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_import_statement_names_the_train_extra() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert not _imports(ast.parse(path.read_text(encoding="utf-8"))) & HEAVY, path
    by_name = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
               if "import_extra(" in p.read_text(encoding="utf-8")]
    assert all(name.startswith("train/") for name in by_name), by_name


def test_the_parent_side_loads_no_torch() -> None:
    code = (
        "import sys\n"
        "import desktop.cli, desktop.terminal.train\n"
        "from desktop.train import job, data, readers, settings, estimate, models, events, "
        "store, preview, tokens\n"
        "from desktop.core.gguf_info import read_gguf\n"
        "from desktop.core.library import starter_model_path\n"
        "path = starter_model_path()\n"
        "if path is not None:\n"
        "    models.info_problem(read_gguf(path))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'peft', "
        "'accelerate', 'PySide6', 'llama_cpp'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""
