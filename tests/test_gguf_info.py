"""Reading GGUF headers: the real starter model, files written with gguf.GGUFWriter, and files
that are damaged in the ways downloads and users damage them."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from desktop.core.gguf_info import GGUFError, check_shard, read_gguf


def write_model(path: Path, arch: str = "llama", *, kind: str | None = None,
                kv_heads: int | list[int] = 2, vocab: int = 300, alignment: int | None = None,
                extra: dict[str, object] | None = None) -> Path:
    """A small but well-formed GGUF file: a model (or adapter) header and float16 tensors."""
    writer = gguf.GGUFWriter(str(path), arch)
    if kind is not None:
        writer.add_type(kind)
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    writer.add_name("Tiny Test Model")
    writer.add_license("mit")
    writer.add_block_count(2)
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(kv_heads)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"tok{i}" for i in range(vocab)])
    writer.add_chat_template("{{ messages[0]['content'] }}")
    for key, value in (extra or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, float):
            writer.add_float64(key, value)
        else:
            writer.add_uint64(key, int(value))
    writer.add_tensor("token_embd.weight", np.ones((vocab, 64), dtype=np.float16))
    writer.add_tensor("blk.0.attn_q.weight", np.ones((64, 64), dtype=np.float16))
    writer.add_tensor("output_norm.weight", np.ones((64,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_starter_model_facts(starter: Path) -> None:
    info = read_gguf(starter)
    assert info.architecture == "llama"
    assert info.file_type == "model"
    assert info.parameter_count == 134_515_008
    assert info.parameters_label == "135M"
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.has_chat_template and "<|im_start|>" in (info.chat_template or "")
    assert info.license == "apache-2.0"
    assert info.name and "Smollm2" in info.name
    assert (info.block_count, info.embedding_length, info.head_count, info.head_count_kv) == (
        30, 576, 9, 3)
    assert info.vocab_size == 49152
    assert info.size_bytes == starter.stat().st_size
    assert info.split_count is None
    assert info.metadata["general.languages"] == ["en"]  # a short array is kept
    assert info.metadata["tokenizer.ggml.merges"] == "<array of 48900>"  # a long one counted


def test_header_matches_the_reference_reader(tmp_path: Path) -> None:
    path = write_model(tmp_path / "tiny.gguf", kv_heads=[2, 1], vocab=1000, alignment=64,
                       extra={"test.big": 2**40, "test.ratio": 0.25,
                              "test.words": ["a", "b", "c"]})
    info = read_gguf(path)
    reference = gguf.GGUFReader(path)
    assert info.parameter_count == sum(int(t.n_elements) for t in reference.tensors)
    assert info.tensor_shapes == {t.name: tuple(int(d) for d in t.shape)
                                  for t in reference.tensors}
    for key in ("general.name", "llama.context_length", "test.big", "test.ratio"):
        assert info.metadata[key] == reference.fields[key].contents()
    assert info.metadata["test.words"] == ["a", "b", "c"]
    assert info.head_count_kv_per_layer == (2, 1)
    assert info.head_count_kv == 2  # the largest per-layer value
    assert info.vocab_size == 1000
    assert info.quantization == "F16"
    assert info.license == "mit"


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="does not exist"):
        read_gguf(tmp_path / "nothing.gguf")
    with pytest.raises(GGUFError, match="is not a file"):
        read_gguf(tmp_path)


@pytest.mark.parametrize("content", [b"", b"GG", b"these are my notes\n", b"PK\x03\x04zip"])
def test_not_gguf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match="is not a GGUF model file"):
        read_gguf(path)


def test_truncated_in_the_tensor_data(tmp_path: Path, starter: Path) -> None:
    path = tmp_path / "cut.gguf"
    with starter.open("rb") as source:
        path.write_bytes(source.read(40_000_000))
    with pytest.raises(GGUFError, match="is incomplete: it has 40,000,000 bytes but its "
                                        "tensors need 98,362,432"):
        read_gguf(path)


def test_truncated_in_the_header(tmp_path: Path, starter: Path) -> None:
    path = tmp_path / "cut.gguf"
    with starter.open("rb") as source:
        path.write_bytes(source.read(500_000))  # inside the vocabulary
    with pytest.raises(GGUFError, match="damaged or incomplete.*past the end of the file"):
        read_gguf(path)


def test_zeroed_header(tmp_path: Path) -> None:
    path = tmp_path / "zero.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(GGUFError, match="damaged or incomplete.*unsupported GGUF version 0"):
        read_gguf(path)


def test_garbage_counts(tmp_path: Path) -> None:
    path = tmp_path / "garbage.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\xff" * 16 + b"\0" * 64)
    with pytest.raises(GGUFError, match="damaged or incomplete"):
        read_gguf(path)


def test_unknown_architecture(tmp_path: Path) -> None:
    path = write_model(tmp_path / "alien.gguf", arch="nomoatnet")
    with pytest.raises(GGUFError, match="architecture 'nomoatnet'"):
        read_gguf(path)


def test_adapter_file(tmp_path: Path) -> None:
    path = write_model(tmp_path / "adapter.gguf", kind="adapter",
                       extra={"adapter.type": "lora", "adapter.lora.alpha": 16.0})
    info = read_gguf(path)
    assert info.file_type == "adapter"
    assert info.architecture == "llama"
    assert info.metadata["adapter.type"] == "lora"


def test_split_shard(tmp_path: Path) -> None:
    first = write_model(tmp_path / "m-00001-of-00002.gguf",
                        extra={"split.no": 0, "split.count": 2})
    info = read_gguf(first)
    assert info.split_count == 2
    second = write_model(tmp_path / "m-00002-of-00002.gguf",
                         extra={"split.no": 1, "split.count": 2})
    assert check_shard(second) == read_gguf(second).parameter_count
    second.write_bytes(second.read_bytes()[:-100])
    with pytest.raises(GGUFError, match="is incomplete"):
        check_shard(second)
