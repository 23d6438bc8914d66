"""Facts about a GGUF file, read from its header without loading the weights.

The engine checks every file here before handing it to llama.cpp, because a truncated or
foreign file can abort native code; the library uses the same facts to describe models.

The header is parsed here rather than with ``gguf.GGUFReader``: that reader builds a numpy
view for every vocabulary entry, which takes seconds (and tens of MB) for a 256k-token
vocabulary, while only a handful of values are needed. The gguf package still supplies the
tables (tensor type sizes, file types, architectures) so they match llama.cpp's.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# Arrays up to this length are kept as lists in ``metadata`` (per-layer values, tags);
# longer ones (vocabularies, merges) are only counted.
SMALL_ARRAY = 256

# GGUF value types (gguf.GGUFValueType) -> struct format of one element.
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                   10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# What a model is for (GGUFInfo.kind).
CHAT = "chat"
EMBEDDING = "embedding"
# Architectures that only make embeddings: encoders, which keep no cache (BERT and its kin;
# XLM-RoBERTa models are written as "bert"), and a decoder made into an embedding model.
ENCODER_ARCHITECTURES = frozenset({
    "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert",
    "neo-bert", "eurobert", "gemma-embedding",
})
EMBEDDING_ARCHITECTURES = ENCODER_ARCHITECTURES | {"llama-embed"}
# llama.cpp's pooling types ({arch}.pooling_type); NONE means the model keeps one vector per
# token, as a chat model does.
POOLING_NONE, POOLING_MEAN, POOLING_CLS, POOLING_LAST, POOLING_RANK = range(5)


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
    vocab_size: int | None = None
    # Key/value heads of each layer when the file gives them per layer (0 = no attention).
    head_count_kv_per_layer: tuple[int, ...] | None = field(repr=False, default=None)
    split_count: int | None = None  # set when the file is one shard of a split model
    pooling_type: int | None = None  # how the file says to pool its vectors, if it says
    # How many tensors of each type ("Q4_K", "F32", ...) the file holds.
    tensor_types: dict[str, int] = field(repr=False, default_factory=dict)

    @property
    def kind(self) -> str:
        """``"embedding"`` for a model that makes embeddings (an encoder architecture, or a
        pooling type set in the file), else ``"chat"``."""
        if self.architecture in EMBEDDING_ARCHITECTURES:
            return EMBEDDING
        if self.pooling_type is not None and self.pooling_type != POOLING_NONE:
            return EMBEDDING
        return CHAT

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


class _Header:
    """A cursor over the mapped file that reads GGUF values and fails with a clear reason."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.pos = 0
        self.array_lengths: dict[str, int] = {}

    def _take(self, size: int) -> int:
        start = self.pos
        if size < 0 or start + size > len(self.data):
            raise EOFError("the header runs past the end of the file")
        self.pos = start + size
        return start

    def u32(self) -> int:
        return _U32.unpack_from(self.data, self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack_from(self.data, self._take(8))[0]

    def string(self) -> str:
        length = self.u64()
        start = self._take(length)
        return self.data[start:start + length].decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self._take(self.u64())

    def value(self, kind: int, key: str, *, nested: bool = False) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            return self.array(key, nested=nested)
        fmt = _SCALAR_FORMATS.get(kind)
        if fmt is None:
            raise ValueError(f"the value of '{key}' has an unknown type ({kind})")
        return struct.unpack_from(fmt, self.data, self._take(struct.calcsize(fmt)))[0]

    def array(self, key: str, *, nested: bool = False) -> Any:
        kind = self.u32()
        count = self.u64()
        if not nested:
            self.array_lengths[key] = count
        if count <= SMALL_ARRAY:
            return [self.value(kind, key, nested=True) for _ in range(count)]
        if kind == _STRING:
            for _ in range(count):
                self.skip_string()
        elif kind == _ARRAY:
            for _ in range(count):
                self.array(key, nested=True)
        else:
            fmt = _SCALAR_FORMATS.get(kind)
            if fmt is None:
                raise ValueError(f"the array '{key}' has an unknown element type ({kind})")
            self._take(count * struct.calcsize(fmt))
        return f"<array of {count}>"


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    elements: int
    offset: int
    n_bytes: int
    type_name: str


def _parse(path: Path, data: mmap.mmap) -> tuple[dict[str, Any], dict[str, int], list[_Tensor],
                                                  int]:
    """Metadata, array lengths, tensors and the offset where tensor data starts."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    head = _Header(data)
    head.pos = 4
    version = head.u32()
    if version & 0xFFFF == 0 and version:
        raise GGUFError(f"{path.name} is a big-endian GGUF file, which llama.cpp cannot load "
                        "on this computer.")
    if version not in SUPPORTED_VERSIONS:
        raise GGUFError(f"{path.name} is damaged or incomplete: its GGUF header cannot be "
                        f"read (unsupported GGUF version {version}).")
    n_tensors = head.u64()
    n_kv = head.u64()
    # Every entry takes at least this many bytes, so larger counts mean a damaged header.
    if n_kv * 13 > len(data) or n_tensors * 28 > len(data):
        raise ValueError(f"it claims {n_kv:,} values and {n_tensors:,} tensors")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = head.string()
        meta[key] = head.value(head.u32(), key)
    tensors: list[_Tensor] = []
    for _ in range(n_tensors):
        name = head.string()
        n_dims = head.u32()
        if n_dims > 8:
            raise ValueError(f"tensor '{name}' has {n_dims} dimensions")
        shape = tuple(head.u64() for _ in range(n_dims))
        raw_type = head.u32()
        offset = head.u64()
        try:
            tensor_type = GGMLQuantizationType(raw_type)
            block, type_size = GGML_QUANT_SIZES[tensor_type]
        except (ValueError, KeyError):
            raise ValueError(f"tensor '{name}' has a type this version does not know "
                             f"({raw_type})") from None
        elements = 1
        for dim in shape:
            elements *= dim
        tensors.append(_Tensor(name, shape, elements, offset, elements * type_size // block,
                               tensor_type.name))
    alignment = meta.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment % 8:
        alignment = DEFAULT_ALIGNMENT
    data_offset = -(-head.pos // alignment) * alignment
    return meta, head.array_lengths, tensors, data_offset


def _read(path: Path) -> tuple[int, dict[str, Any], dict[str, int], list[_Tensor], int]:
    """Size, metadata, array lengths, tensors and data offset; GGUFError when unreadable."""
    if not path.exists():
        raise GGUFError(f"The model file {path} does not exist.")
    if not path.is_file():
        raise GGUFError(f"{path} is not a file.")
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if handle.read(4) != GGUF_MAGIC:
                raise GGUFError(f"{path.name} is not a GGUF model file (it does not start "
                                "with 'GGUF').")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return (size, *_parse(path, data))
    except GGUFError:
        raise
    except OSError as exc:
        raise GGUFError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    except (EOFError, ValueError, struct.error, OverflowError) as exc:
        raise GGUFError(
            f"{path.name} is damaged or incomplete: its GGUF header cannot be read ({exc})."
        ) from exc


def _check_complete(path: Path, size: int, tensors: list[_Tensor], data_offset: int) -> None:
    data_end = data_offset
    for tensor in tensors:
        data_end = max(data_end, data_offset + tensor.offset + tensor.n_bytes)
    if data_end > size:
        raise GGUFError(
            f"{path.name} is incomplete: it has {size:,} bytes but its tensors need "
            f"{data_end:,}. The download may have been cut short; download it again."
        )


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read and check the header of *path*; raise :class:`GGUFError` when it is unusable.

    Checks: the file exists and is readable, starts with the GGUF magic, its header parses,
    every tensor's data lies inside the file (a truncated download fails here), and its
    architecture is one llama.cpp knows.
    """
    path = Path(path)
    size, meta, lengths, tensors, data_offset = _read(path)
    _check_complete(path, size, tensors, data_offset)
    return _describe(path, size, meta, lengths, tensors)


def check_shard(path: str | os.PathLike[str]) -> int:
    """Check one later shard of a split model (it holds tensors but no model description).

    Returns the number of parameters in it; raises :class:`GGUFError` when it is unusable.
    """
    path = Path(path)
    size, _, _, tensors, data_offset = _read(path)
    _check_complete(path, size, tensors, data_offset)
    return sum(tensor.elements for tensor in tensors)


def _describe(path: Path, size: int, meta: dict[str, Any], lengths: dict[str, int],
              tensors: list[_Tensor]) -> GGUFInfo:
    """Check what the parsed header says and turn it into a :class:`GGUFInfo`."""
    from gguf.constants import LlamaFileType

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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return int(value)

    file_type = meta.get("general.file_type")
    quant: str | None = None
    if isinstance(file_type, int):
        try:
            quant = LlamaFileType(file_type).name.removeprefix("MOSTLY_")
        except ValueError:
            quant = f"type {file_type}"

    per_layer = meta.get(f"{arch}.attention.head_count_kv")
    kv_layers = tuple(int(v) for v in per_layer) if isinstance(per_layer, list) else None
    template = meta.get("tokenizer.chat_template")
    template = template if isinstance(template, str) and template else None
    splits = meta.get("split.count")
    pooling = meta.get(f"{arch}.pooling_type")

    def text(key: str) -> str | None:
        value = meta.get(key)
        return value if isinstance(value, str) and value else None

    return GGUFInfo(
        path=path,
        size_bytes=size,
        file_type=kind,
        architecture=arch,
        name=text("general.name"),
        license=text("general.license"),
        parameter_count=sum(tensor.elements for tensor in tensors),
        quantization=quant,
        context_length=num("context_length"),
        has_chat_template=template is not None,
        chat_template=template,
        block_count=num("block_count"),
        embedding_length=num("embedding_length"),
        head_count=num("attention.head_count"),
        head_count_kv=num("attention.head_count_kv"),
        key_length=num("attention.key_length"),
        value_length=num("attention.value_length"),
        tensor_shapes={tensor.name: tensor.shape for tensor in tensors},
        metadata=meta,
        vocab_size=lengths.get("tokenizer.ggml.tokens"),
        head_count_kv_per_layer=kv_layers,
        split_count=splits if isinstance(splits, int) and splits > 1 else None,
        pooling_type=pooling if isinstance(pooling, int) and not isinstance(pooling, bool)
        else None,
        tensor_types=dict(Counter(tensor.type_name for tensor in tensors)),
    )
