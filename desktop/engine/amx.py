"""Intel AMX (the matrix tiles of Xeon Sapphire Rapids and later) kept out of llama.cpp's way
where the processor reports it.

llama.cpp moves a model's weights into an AMX buffer when the CPU reports AMX and then
multiplies prompts with tile instructions. On a virtual machine of a Sapphire Rapids host
(Linux 6.18, Firecracker), the CPU reports AMX and the kernel grants it, a lone tile load in a
small C program works, yet llama.cpp's first prompt of a few hundred tokens ends the process with
an illegal instruction at ``tileloadd``; with those buffers off, the same prompt decodes. A crash
at every prompt costs more than AMX gains (it only speeds up reading long prompts on server
chips; no laptop chip has it), so where AMX is reported, models load without llama.cpp's extra
weight buffers. ``NOMOAT_AMX=1`` lets llama.cpp use them anyway.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as bindings

CPUINFO = Path("/proc/cpuinfo")


def reports_amx(cpuinfo: Path = CPUINFO) -> bool:
    """Whether this processor says it has AMX (Linux; elsewhere False)."""
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return "amx_tile" in line.split()
    except OSError:
        return False
    return False


def use_extra_buffers() -> bool:
    """Whether llama.cpp may move weights into its extra buffers (AMX and repacked layouts)."""
    return os.environ.get("NOMOAT_AMX") == "1" or not reports_amx()


def model_params() -> Any:
    """llama.cpp's default model parameters, without the extra buffers where AMX is reported."""
    params = _default_params()
    if not use_extra_buffers():
        params.use_extra_bufts = False
    return params


_default_params = bindings.llama_model_default_params


@functools.cache
def keep_out() -> None:
    """Make every model this process loads (llama-cpp-python's own ``Llama`` too, which has no
    option for it and reads the defaults from its bindings module) use :func:`model_params`."""
    llama_cpp.llama_model_default_params = model_params
    bindings.llama_model_default_params = model_params
