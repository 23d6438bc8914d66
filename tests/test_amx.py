"""Models load without llama.cpp's extra weight buffers where the processor reports AMX (see
desktop.engine.amx), unless the user asks for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.engine import amx


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n",
                    encoding="utf-8")
    return path


def test_amx_is_read_from_the_processor_flags(tmp_path: Path) -> None:
    assert amx.reports_amx(_cpuinfo(tmp_path, "fpu avx2 avx512f amx_bf16 amx_tile amx_int8"))
    assert not amx.reports_amx(_cpuinfo(tmp_path, "fpu avx2 avx512f avx512_vnni"))
    assert not amx.reports_amx(tmp_path / "missing")


@pytest.mark.parametrize(("reported", "asked", "extra"), [
    (True, None, False), (True, "1", True), (False, None, True)])
def test_extra_buffers_are_off_only_where_amx_is_reported(
        monkeypatch: pytest.MonkeyPatch, reported: bool, asked: str | None, extra: bool) -> None:
    monkeypatch.setattr(amx, "reports_amx", lambda: reported)
    if asked is None:
        monkeypatch.delenv("NOMOAT_AMX", raising=False)
    else:
        monkeypatch.setenv("NOMOAT_AMX", asked)
    assert amx.use_extra_buffers() is extra
    assert bool(amx.model_params().use_extra_bufts) is extra


def test_every_way_of_loading_gets_the_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    # llama-cpp-python's Llama reads its defaults from the bindings module, the engine's own
    # loading from the package: both must give the parameters without the extra buffers.
    monkeypatch.setattr(llama_cpp, "llama_model_default_params",
                        llama_cpp.llama_model_default_params)
    monkeypatch.setattr(bindings, "llama_model_default_params",
                        bindings.llama_model_default_params)
    monkeypatch.setattr(amx, "reports_amx", lambda: True)
    monkeypatch.delenv("NOMOAT_AMX", raising=False)
    amx.keep_out.cache_clear()
    amx.keep_out()
    assert not llama_cpp.llama_model_default_params().use_extra_bufts
    assert not bindings.llama_model_default_params().use_extra_bufts
