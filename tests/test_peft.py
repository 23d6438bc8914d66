"""PEFT adapters: reading safetensors without torch, and conversion to GGUF LoRA."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from desktop.core.adapters import AdapterError, AdapterLibrary, AdapterMismatch, inspect_adapter
from desktop.core.gguf_info import GGUFInfo, read_gguf
from desktop.core.library import starter_model_path
from desktop.core.peft import (
    PeftError,
    convert_peft,
    gguf_tensor_name,
    permute_rows,
    read_safetensors,
    write_safetensors,
)

HEADS, KV_HEADS, HEAD_DIM = 9, 3, 64  # SmolLM2-135M
PROJECTIONS = {"q_proj": (576, 576), "k_proj": (576, 192), "v_proj": (576, 192),
               "o_proj": (576, 576)}
MLP = {"gate_proj": (576, 1536), "up_proj": (576, 1536), "down_proj": (1536, 576)}


@pytest.fixture(scope="module")
def starter_info() -> GGUFInfo:
    path = starter_model_path()
    assert path is not None
    return read_gguf(path)


def peft_tensors(seed: int, rank: int = 8, layers: range = range(30), mlp: bool = False,
                 sigma: float = 0.1) -> dict[str, np.ndarray]:
    """lora_A / lora_B tensors as PEFT saves them for SmolLM2 (n_in, n_out per module)."""
    rng = np.random.default_rng(seed)
    modules = dict(PROJECTIONS, **(MLP if mlp else {}))
    tensors = {}
    for layer in layers:
        for module, (n_in, n_out) in modules.items():
            part = "mlp" if module in MLP else "self_attn"
            prefix = f"base_model.model.model.layers.{layer}.{part}.{module}"
            tensors[f"{prefix}.lora_A.weight"] = (
                rng.standard_normal((rank, n_in)) / np.sqrt(n_in)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = (
                rng.standard_normal((n_out, rank)) * sigma).astype(np.float32)
    return tensors


def write_peft(folder: Path, tensors: dict[str, np.ndarray], **config: object) -> Path:
    """A PEFT adapter folder: adapter_config.json + adapter_model.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {
        "peft_type": "LORA", "r": 8, "lora_alpha": 16,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "use_rslora": False, "use_dora": False, "fan_in_fan_out": False, "bias": "none"}
    settings.update(config)
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    write_safetensors(folder / "adapter_model.safetensors", tensors, {"format": "pt"})
    return folder


def gguf_tensors(path: Path) -> dict[str, np.ndarray]:
    reader = gguf.GGUFReader(path)
    return {t.name: np.array(t.data) for t in reader.tensors}


# -- safetensors -----------------------------------------------------------------------------------
def test_safetensors_round_trip_and_bfloat16(tmp_path: Path) -> None:
    values = {"a": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
              "b": np.array([[1.5, -2.0]], dtype=np.float16)}
    path = write_safetensors(tmp_path / "t.safetensors", values, {"format": "pt"})
    back = read_safetensors(path)
    assert set(back) == {"a", "b"}
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], values["a"])
    assert back["b"].dtype == np.float16 and np.array_equal(back["b"], values["b"])

    # bfloat16 is the top half of a float32: write one by hand and read it back as float32
    floats = np.array([1.0, -0.5, 3.140625], dtype=np.float32)
    raw = (floats.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, len(raw)]}})
    bf16 = tmp_path / "bf16.safetensors"
    bf16.write_bytes(struct.pack("<Q", len(header)) + header.encode() + raw)
    assert np.array_equal(read_safetensors(bf16)["x"], floats)


def test_damaged_safetensors_say_why(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "t.safetensors", {"a": np.ones((64, 64), np.float32)})
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-100])
    with pytest.raises(PeftError, match="incomplete"):
        read_safetensors(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 5) + b"nope!")
    with pytest.raises(PeftError, match="not JSON"):
        read_safetensors(junk)


# -- the conversion --------------------------------------------------------------------------------
def test_permute_rows_interleaves_the_rotary_halves() -> None:
    rows = np.arange(2 * 8, dtype=np.float32).reshape(2 * 8, 1)  # 2 heads of dimension 8
    permuted = permute_rows(rows, 2)[:, 0]
    # per head, llama.cpp order is (0, 4, 1, 5, 2, 6, 3, 7): pairs from the two halves
    expected = [h * 8 + k * 4 + j for h in range(2) for j in range(4) for k in range(2)]
    assert permuted.tolist() == expected


def test_llama_conversion_names_permutes_and_scales(tmp_path: Path, starter_info) -> None:
    tensors = peft_tensors(1, layers=range(2), mlp=True)
    source = write_peft(tmp_path / "pirate", tensors)
    out = convert_peft(source, starter_info, tmp_path / "pirate.gguf")
    info = inspect_adapter(out)
    assert info.alpha == 16 and info.rank == 8
    assert info.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert info.target_summary() == ("attn_k, attn_output, attn_q, attn_v, ffn_down, ffn_gate, "
                                     "ffn_up in 2 layers")
    written = gguf_tensors(out)
    hf = "base_model.model.model.layers.1.self_attn"
    # A is never permuted; B of v/o is copied; B of q/k gets the base weights' row permutation
    for module in ("q_proj", "k_proj", "v_proj"):
        target = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v"}[module]
        assert np.array_equal(written[f"blk.1.{target}.weight.lora_a"],
                              tensors[f"{hf}.{module}.lora_A.weight"])
    assert np.array_equal(written["blk.1.attn_v.weight.lora_b"],
                          tensors[f"{hf}.v_proj.lora_B.weight"])
    assert np.array_equal(written["blk.1.attn_q.weight.lora_b"],
                          permute_rows(tensors[f"{hf}.q_proj.lora_B.weight"], HEADS))
    assert np.array_equal(written["blk.1.attn_k.weight.lora_b"],
                          permute_rows(tensors[f"{hf}.k_proj.lora_B.weight"], KV_HEADS))
    assert not np.array_equal(written["blk.1.attn_q.weight.lora_b"],
                              tensors[f"{hf}.q_proj.lora_B.weight"])
    assert np.array_equal(written["blk.0.ffn_down.weight.lora_b"],
                          tensors["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"])


def test_rslora_and_alpha_pattern_are_folded_into_b(tmp_path: Path, starter_info) -> None:
    tensors = peft_tensors(2, layers=range(1))
    plain = gguf_tensors(convert_peft(write_peft(tmp_path / "plain", tensors), starter_info,
                                      tmp_path / "plain.gguf"))
    rs = gguf_tensors(convert_peft(write_peft(tmp_path / "rs", tensors, use_rslora=True),
                                   starter_info, tmp_path / "rs.gguf"))
    # PEFT scales by 16/sqrt(8) with rsLoRA; llama.cpp by 16/8, so B grows by sqrt(8)
    assert np.allclose(rs["blk.0.attn_v.weight.lora_b"],
                       plain["blk.0.attn_v.weight.lora_b"] * np.sqrt(8), rtol=1e-6)
    pattern = gguf_tensors(convert_peft(
        write_peft(tmp_path / "pat", tensors, alpha_pattern={"v_proj": 4}), starter_info,
        tmp_path / "pat.gguf"))
    assert np.allclose(pattern["blk.0.attn_v.weight.lora_b"],
                       plain["blk.0.attn_v.weight.lora_b"] / 4, rtol=1e-6)
    assert np.array_equal(pattern["blk.0.attn_q.weight.lora_b"],
                          plain["blk.0.attn_q.weight.lora_b"])


def test_qwen2_and_gemma_map_names_without_permuting(tmp_path: Path, starter_info) -> None:
    tensors = peft_tensors(3, layers=range(1))
    for arch in ("qwen2", "gemma", "gemma3"):
        base = dataclasses.replace(starter_info, architecture=arch)
        assert gguf_tensor_name("model.layers.4.mlp.down_proj", base) == "blk.4.ffn_down.weight"
        out = convert_peft(write_peft(tmp_path / arch, tensors), base, tmp_path / f"{arch}.gguf")
        written = gguf_tensors(out)
        assert inspect_adapter(out).architecture == arch
        assert np.array_equal(
            written["blk.0.attn_q.weight.lora_b"],
            tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"])


@pytest.mark.parametrize("change, message", [
    ({"config": {"use_dora": True}}, "DoRA"),
    ({"config": {"peft_type": "IA3"}}, "only LoRA adapters convert"),
    ({"extra": "base_model.model.model.embed_tokens.lora_embedding_A"}, "token embeddings"),
    ({"extra": "base_model.model.lm_head.weight"}, "token embeddings"),
    ({"extra": "base_model.model.model.norm.weight"}, "not a LoRA half"),
    ({"drop": "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"},
     "has no lora_B"),
    ({"arch": "phi3"}, "cannot convert PEFT adapters for 'phi3'"),
])
def test_unconvertible_adapters_say_why(tmp_path: Path, starter_info, change, message) -> None:
    tensors = peft_tensors(4, layers=range(1))
    if "extra" in change:
        tensors[change["extra"]] = np.ones((8, 8), dtype=np.float32)
    if "drop" in change:
        del tensors[change["drop"]]
    base = dataclasses.replace(starter_info, architecture=change.get("arch", "llama"))
    source = write_peft(tmp_path / "x", tensors, **change.get("config", {}))
    with pytest.raises(PeftError, match=message):
        convert_peft(source, base, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_an_adapter_for_another_size_is_refused(tmp_path: Path, starter_info) -> None:
    rng = np.random.default_rng(5)
    prefix = "base_model.model.model.layers.0.self_attn.v_proj"
    tensors = {f"{prefix}.lora_A.weight": rng.standard_normal((8, 512)).astype(np.float32),
               f"{prefix}.lora_B.weight": rng.standard_normal((128, 8)).astype(np.float32)}
    with pytest.raises(AdapterMismatch, match="to be 512×128, but in .* it is 576×192"):
        convert_peft(write_peft(tmp_path / "big", tensors), starter_info, tmp_path / "big.gguf")
    assert not (tmp_path / "big.gguf").exists()


def test_library_converts_a_peft_folder(tmp_path: Path, data_home: Path, starter: Path) -> None:
    source = write_peft(tmp_path / "sea-shanty", peft_tensors(6, layers=range(3)))
    library = AdapterLibrary()
    with pytest.raises(AdapterError, match="choose the model it is for"):
        library.add_file(source)
    added = library.add_file(source / "adapter_config.json", base_model=starter)
    assert added.name == "sea-shanty"
    assert added.info is not None and added.info.architecture == "llama"
    assert added.path.suffix == ".gguf" and added.path.parent == data_home / "adapters"
