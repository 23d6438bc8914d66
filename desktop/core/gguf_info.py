"""Facts about a GGUF file, read from its header without loading the weights.

The engine checks every file here before handing it to llama.cpp, because a truncated or
foreign file can abort native code; the library uses the same facts to describe models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"


class GGUFError(ValueError):
    """The file is not a usable GGUF file; the message says why in plain words."""


@dataclass(frozen=True)
class GGUFInfo:
    """What the header says about a model (or adapter) file."""

    path: Path
    size_bytes: int
    file_type: str  # "model" or "adapter" (general.type)
    architecture: str
    name: str | None
    license: str | None
    parameter_count: int
    quantization: str | None
    context_length: int | None
    has_chat_template: bool
    chat_template: str | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    tensor_shapes: dict[str, tuple[int, ...]] = field(repr=False, default_factory=dict)
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def parameters_label(self) -> str:
        """A short human label such as "135M" or "7.2B"."""
        count = self.parameter_count
        if count >= 1_000_000_000:
            return f"{count / 1e9:.1f}B"
        if count >= 1_000_000:
            return f"{count / 1e6:.0f}M"
        return str(count)


def _known_architectures() -> set[str]:
    from gguf.constants import MODEL_ARCH_NAMES

    return set(MODEL_ARCH_NAMES.values())


def _scalar_metadata(reader: Any) -> dict[str, Any]:
    """Every key/value field except the big arrays (token lists, merges)."""
    from gguf import GGUFValueType

    values: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if key.startswith("GGUF.") or not fld.types:
            continue
        if fld.types[0] == GGUFValueType.ARRAY:
            values[key] = f"<array of {len(fld.data)}>"
            continue
        values[key] = fld.contents()
    return values


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read and check the header of *path*; raise :class:`GGUFError` when it is unusable.

    Checks: the file exists and is readable, starts with the GGUF magic, its header parses,
    every tensor's data lies inside the file (a truncated download fails here), and its
    architecture is one llama.cpp knows.
    """
    path = Path(path)
    if not path.exists():
        raise GGUFError(f"The model file {path} does not exist.")
    if not path.is_file():
        raise GGUFError(f"{path} is not a file.")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise GGUFError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if magic != GGUF_MAGIC:
        raise GGUFError(f"{path.name} is not a GGUF model file (it does not start with 'GGUF').")

    from gguf import GGUFReader, LlamaFileType

    try:
        reader = GGUFReader(path, "r")
    except Exception as exc:  # the reader raises many kinds on a damaged header
        if "reshape" in str(exc):  # a tensor's data runs past the end of the file
            raise GGUFError(
                f"{path.name} is incomplete: the file ends before its last tensor does. The "
                "download may have been cut short; download it again.") from exc
        raise GGUFError(
            f"{path.name} is damaged or incomplete: its GGUF header cannot be read ({exc})."
        ) from exc

    shapes: dict[str, tuple[int, ...]] = {}
    params = 0
    data_end = reader.data_offset
    for tensor in reader.tensors:
        shapes[tensor.name] = tuple(int(d) for d in tensor.shape)
        params += int(tensor.n_elements)
        data_end = max(data_end, int(tensor.data_offset) + int(tensor.n_bytes))
    if data_end > size:
        raise GGUFError(
            f"{path.name} is incomplete: it has {size:,} bytes but its tensors need "
            f"{data_end:,}. The download may have been cut short; download it again."
        )

    meta = _scalar_metadata(reader)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GGUFError(f"{path.name} does not say which model architecture it holds.")
    kind = str(meta.get("general.type") or "model")
    if kind == "model" and arch not in _known_architectures():
        raise GGUFError(
            f"{path.name} holds a model of architecture '{arch}', which this version of "
            "NoMoat's llama.cpp does not know."
        )

    def num(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}")
        if isinstance(value, list):  # per-layer values: take the largest
            value = max(value) if value else None
        return int(value) if isinstance(value, (int, float)) else None

    file_type = meta.get("general.file_type")
    quant: str | None = None
    if isinstance(file_type, int):
        try:
            quant = LlamaFileType(file_type).name.removeprefix("MOSTLY_")
        except ValueError:
            quant = f"type {file_type}"

    template_field = reader.fields.get("tokenizer.chat_template")
    template = template_field.contents() if template_field is not None else None
    return GGUFInfo(
        path=path,
        size_bytes=size,
        file_type=kind,
        architecture=arch,
        name=meta.get("general.name") if isinstance(meta.get("general.name"), str) else None,
        license=meta.get("general.license") if isinstance(meta.get("general.license"),
                                                          str) else None,
        parameter_count=params,
        quantization=quant,
        context_length=num("context_length"),
        has_chat_template=bool(template),
        chat_template=template or None,
        block_count=num("block_count"),
        embedding_length=num("embedding_length"),
        head_count=num("attention.head_count"),
        head_count_kv=num("attention.head_count_kv"),
        key_length=num("attention.key_length"),
        value_length=num("attention.value_length"),
        tensor_shapes=shapes,
        metadata=meta,
    )
