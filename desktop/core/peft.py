"""Convert a Hugging Face PEFT LoRA adapter to a GGUF LoRA adapter, without torch.

A PEFT adapter is a folder with ``adapter_config.json`` and ``adapter_model.safetensors``.
Each adapted module ``M`` has ``M.lora_A.weight`` of ``(rank, n_in)`` and ``M.lora_B.weight``
of ``(n_out, rank)``; PEFT adds ``alpha / rank * B A`` to the module's weight (``alpha /
sqrt(rank)`` with rsLoRA). The conversion follows llama.cpp's ``convert_lora_to_gguf.py``:

- module names map to GGUF tensor names with the gguf package's table for the base model's
  architecture (``model.layers.3.self_attn.q_proj`` -> ``blk.3.attn_q.weight``);
- llama-family conversions permute the rows of ``q_proj`` and ``k_proj`` (Hugging Face and
  llama.cpp order the rotary halves differently), so ``B``, whose rows are the weight's output
  rows, gets the same permutation; ``A`` indexes input columns and is left alone;
- the global ``lora_alpha`` goes to ``adapter.lora.alpha``; llama.cpp then scales each tensor
  by ``alpha / rank``. Where PEFT scales a tensor differently (``alpha_pattern``, rsLoRA), the
  difference is folded into that tensor's ``B``.

The base model's GGUF header supplies the architecture, head counts and tensor shapes, so an
adapter is converted for one model and checked against it on the way.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from desktop.core.adapters import AdapterError, check_compatible, inspect_adapter, write_lora_gguf
from desktop.core.gguf_info import GGUFInfo

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"

# Architectures whose conversion NoMoat knows, and whether their q/k rows are permuted.
PERMUTES_QK = {"llama": True, "qwen2": False, "qwen3": False, "gemma": False,
               "gemma2": False, "gemma3": False}

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_PREFIXES = ("base_model.model.", "model.language_model.", "language_model.")


class PeftError(AdapterError):
    """A PEFT adapter cannot be read or converted; the message says why."""


# -- safetensors -----------------------------------------------------------------------------------
def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor in a safetensors file, as numpy arrays (bfloat16 becomes float32).

    The format: an 8-byte little-endian header length, a JSON header giving each tensor's
    dtype, shape and byte range, then the raw little-endian data.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PeftError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if len(raw) < 8:
        raise PeftError(f"{path.name} is not a safetensors file: it is too short.")
    (length,) = struct.unpack("<Q", raw[:8])
    if length > len(raw) - 8:
        raise PeftError(f"{path.name} is damaged or incomplete: its header runs past the end "
                        "of the file.")
    try:
        header = json.loads(raw[8:8 + length])
    except ValueError as exc:
        raise PeftError(f"{path.name} is not a safetensors file: its header is not JSON.") \
            from exc
    if not isinstance(header, dict):
        raise PeftError(f"{path.name} is not a safetensors file: its header is not an object.")
    data = memoryview(raw)[8 + length:]
    tensors: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = spec["dtype"], [int(d) for d in spec["shape"]]
            start, end = (int(o) for o in spec["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PeftError(f"{path.name} is damaged: tensor '{name}' has no valid "
                            "description.") from exc
        if not 0 <= start <= end <= len(data):
            raise PeftError(f"{path.name} is incomplete: tensor '{name}' runs past the end of "
                            "the file. Download it again.")
        chunk = data[start:end]
        count = math.prod(shape)
        if dtype == "BF16":
            if len(chunk) != 2 * count:
                raise PeftError(f"{path.name} is damaged: tensor '{name}' has the wrong size.")
            halves = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
            array = halves.view(np.float32)
        elif dtype in _DTYPES:
            item = np.dtype(_DTYPES[dtype])
            if len(chunk) != item.itemsize * count:
                raise PeftError(f"{path.name} is damaged: tensor '{name}' has the wrong size.")
            array = np.frombuffer(chunk, dtype=item).copy()
        else:
            raise PeftError(f"{path.name}: tensor '{name}' has type {dtype}, which NoMoat "
                            "cannot read.")
        tensors[name] = array.reshape(shape)
    return tensors


def write_safetensors(path: str | os.PathLike[str], tensors: dict[str, np.ndarray],
                      metadata: dict[str, str] | None = None) -> Path:
    """Write float32/float16 tensors as a safetensors file (what PEFT saves)."""
    names = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64"}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<")
        if dtype not in names:
            raise PeftError(f"Cannot write tensor '{name}' of type {array.dtype}.")
        blob = array.astype(dtype).tobytes()
        header[name] = {"dtype": names[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned, as the reference writer does
    path = Path(path)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(text)))
        handle.write(text)
        for blob in blobs:
            handle.write(blob)
    return path


# -- the adapter -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeftConfig:
    """The parts of ``adapter_config.json`` the conversion needs."""

    rank: int
    alpha: float
    use_rslora: bool = False
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    base_model: str | None = None

    def alpha_for(self, module: str) -> float:
        return float(_pattern_value(self.alpha_pattern, module, self.alpha))

    def scaling(self, module: str, rank: int) -> float:
        """PEFT's multiplier of ``B A`` for *module* with the given rank."""
        alpha = self.alpha_for(module)
        return alpha / math.sqrt(rank) if self.use_rslora else alpha / rank


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    # PEFT matches a pattern key as a suffix of the module path, at a dot boundary.
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def is_peft_source(path: str | os.PathLike[str]) -> bool:
    """Whether *path* is a PEFT adapter folder or one of its two files."""
    path = Path(path)
    if path.is_dir():
        return (path / CONFIG_FILE).is_file()
    return path.name in (CONFIG_FILE, WEIGHTS_FILE)


def _folder_of(source: Path) -> Path:
    folder = source if source.is_dir() else source.parent
    for needed in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / needed).is_file():
            extra = (" (adapter_model.bin files need torch to read; save the adapter with "
                     "safe_serialization=True)") if needed == WEIGHTS_FILE and (
                folder / "adapter_model.bin").is_file() else ""
            raise PeftError(f"The PEFT adapter in {folder} has no {needed}{extra}.")
    return folder


def read_peft_config(source: str | os.PathLike[str]) -> PeftConfig:
    """Read and check ``adapter_config.json``; only plain LoRA adapters convert."""
    path = _folder_of(Path(source)) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PeftError(f"{path} cannot be read as JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise PeftError(f"{path} does not hold an adapter configuration.")
    kind = str(data.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise PeftError(f"This PEFT adapter is of type {kind}; only LoRA adapters convert to "
                        "GGUF.")
    if data.get("use_dora"):
        raise PeftError("This is a DoRA adapter; llama.cpp applies plain LoRA only.")
    if data.get("fan_in_fan_out"):
        raise PeftError("This adapter stores its weights transposed (fan_in_fan_out), as "
                        "GPT-2 style models do; NoMoat converts llama, qwen2 and gemma "
                        "adapters.")
    try:
        rank = int(data.get("r", 8))
        alpha = float(data.get("lora_alpha", rank))
    except (TypeError, ValueError) as exc:
        raise PeftError(f"{path}: 'r' and 'lora_alpha' must be numbers.") from exc
    base = data.get("base_model_name_or_path")
    return PeftConfig(rank=rank, alpha=alpha, use_rslora=bool(data.get("use_rslora")),
                      alpha_pattern=dict(data.get("alpha_pattern") or {}),
                      base_model=str(base) if base else None)


def _module_name(tensor: str) -> tuple[str, str] | None:
    """``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` ->
    (``model.layers.0.self_attn.q_proj``, ``A``); None for a tensor that is not a LoRA half."""
    match = re.fullmatch(r"(.+)\.lora_([AB])(?:\.[^.]+)?\.weight", tensor)
    if match is None:
        return None
    module = match.group(1)
    for prefix in _PREFIXES:
        if module.startswith(prefix):
            module = module[len(prefix):]
            if prefix == "model.language_model.":
                module = "model." + module
    return module, match.group(2)


def permute_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row permutation: in each head, interleave the two rotary halves."""
    n_out = rows.shape[0]
    if n_head <= 0 or n_out % (2 * n_head):
        raise PeftError(f"Cannot permute {n_out} rows into {n_head} heads.")
    return (rows.reshape(n_head, 2, n_out // n_head // 2, *rows.shape[1:])
            .swapaxes(1, 2).reshape(rows.shape))


def gguf_tensor_name(module: str, base: GGUFInfo) -> str | None:
    """The GGUF weight a Hugging Face module becomes in *base*'s architecture, if any."""
    import gguf

    arch = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}.get(base.architecture)
    if arch is None:
        return None
    mapped = gguf.get_tensor_name_map(arch, base.block_count or 0).get_name(module)
    return None if mapped is None else f"{mapped}.weight"


def convert_peft(source: str | os.PathLike[str], base: GGUFInfo,
                 out_path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Convert the PEFT adapter at *source* into a GGUF LoRA adapter for *base*.

    Raises :class:`PeftError` (or :class:`~desktop.core.adapters.AdapterMismatch`) with a
    clear message when the adapter cannot be converted or does not fit *base*.
    """
    folder = _folder_of(Path(source))
    config = read_peft_config(folder)
    if base.architecture not in PERMUTES_QK:
        known = ", ".join(sorted(PERMUTES_QK))
        raise PeftError(f"NoMoat cannot convert PEFT adapters for '{base.architecture}' models "
                        f"yet (it can for {known}). Convert it with llama.cpp's "
                        "convert_lora_to_gguf.py and add the GGUF file.")
    tensors = read_safetensors(folder / WEIGHTS_FILE)
    halves: dict[str, dict[str, np.ndarray]] = {}
    for name, array in tensors.items():
        parsed = _module_name(name)
        if parsed is None:
            if "lora_embedding" in name or name.endswith(("embed_tokens.weight",
                                                          "lm_head.weight")):
                raise PeftError(f"This adapter changes the token embeddings ('{name}'), "
                                "usually because fine-tuning added tokens; GGUF LoRA cannot "
                                "carry that.")
            raise PeftError(f"This adapter holds '{name}', which is not a LoRA half (PEFT's "
                            "modules_to_save?); GGUF LoRA carries lora_A and lora_B only.")
        module, half = parsed
        if array.ndim != 2:
            raise PeftError(f"'{name}' has {array.ndim} dimensions; LoRA halves have 2.")
        halves.setdefault(module, {})[half] = array.astype(np.float32)
    if not halves:
        raise PeftError(f"{folder / WEIGHTS_FILE} holds no LoRA tensors.")

    permute = PERMUTES_QK[base.architecture]
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for module, parts in sorted(halves.items()):
        if set(parts) != {"A", "B"}:
            missing = ({"A", "B"} - set(parts)).pop()
            raise PeftError(f"Module '{module}' has no lora_{missing} tensor.")
        lora_a, lora_b = parts["A"], parts["B"]
        rank = lora_a.shape[0]
        if lora_b.shape[1] != rank:
            raise PeftError(f"Module '{module}': lora_A has rank {rank} but lora_B has "
                            f"{lora_b.shape[1]}.")
        target = gguf_tensor_name(module, base)
        if target is None:
            raise PeftError(f"Module '{module}' has no counterpart in a "
                            f"'{base.architecture}' GGUF model.")
        if permute and module.endswith(("q_proj", "k_proj")):
            heads = base.head_count or 0
            if module.endswith("k_proj") and base.head_count_kv:
                heads = base.head_count_kv
            lora_b = permute_rows(lora_b, heads)
        # llama.cpp scales by alpha / rank; fold PEFT's own scaling's difference into B.
        wanted = config.scaling(module, rank)
        given = config.alpha / rank if config.alpha else 1.0
        if not math.isclose(wanted, given, rel_tol=1e-6):
            lora_b = lora_b * np.float32(wanted / given)
        pairs[target] = (lora_a, lora_b)

    out_path = Path(out_path)
    url = None
    if config.base_model and "/" in config.base_model and not os.path.isabs(config.base_model):
        url = f"https://huggingface.co/{config.base_model}"
    write_lora_gguf(out_path, base.architecture, pairs, config.alpha,
                    title=title or folder.name, base_model=config.base_model,
                    base_model_url=url)
    try:
        check_compatible(inspect_adapter(out_path), base)
    except AdapterError:
        out_path.unlink(missing_ok=True)
        raise
    return out_path
