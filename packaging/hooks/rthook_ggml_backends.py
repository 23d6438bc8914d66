"""Runtime hook: let the frozen engine find llama.cpp's CPU backends.

A release build of llama-cpp-python keeps its CPU code in one library per instruction-set level
(GGML_BACKEND_DL with GGML_CPU_ALL_VARIANTS), and llama.cpp picks the best one for the
processor it runs on when the program asks it to load its backends. llama-cpp-python does not
ask, so this hook does, in the engine process only (`nomoat --engine`): the window and the
command line never load a model. A build with the CPU backend linked in has no variant
libraries, and then this hook does nothing.
"""

import ctypes
import os
import sys
from pathlib import Path


def _ggml_file(lib_dir: Path) -> Path | None:
    """ggml's main library under the name other libraries link it by, so it is loaded once."""
    if sys.platform == "win32":
        names = ["ggml.dll"]
    elif sys.platform == "darwin":
        names = ["libggml.0.dylib", "libggml.dylib"]
    else:
        names = ["libggml.so.0", "libggml.so"]
    return next((lib_dir / name for name in names if (lib_dir / name).is_file()), None)


def _load_backends() -> None:
    lib_dir = Path(getattr(sys, "_MEIPASS", "")) / "llama_cpp" / "lib"
    if not any(lib_dir.glob("*ggml-cpu-*")):
        return
    ggml = _ggml_file(lib_dir)
    if ggml is None:
        return
    if sys.platform == "win32":
        os.add_dll_directory(str(lib_dir))
    library = ctypes.CDLL(str(ggml))
    library.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    library.ggml_backend_load_all_from_path.restype = None
    library.ggml_backend_load_all_from_path(os.fsencode(lib_dir))


if sys.argv[1:2] == ["--engine"]:
    _load_backends()
