"""The adapter library, adapter checks, presets and compare votes (no engine).

The helpers at the top build LoRA adapters for the starter model with the gguf package; the
engine and PEFT tests import them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest
from hubserver import HubServer

from desktop.core.adapters import (
    AdapterError,
    AdapterLibrary,
    AdapterMismatch,
    UnknownAdapter,
    check_compatible,
    describe_stack,
    inspect_adapter,
    write_lora_gguf,
)
from desktop.core.compare import CompareError, VoteStore, blind_sides
from desktop.core.downloads import DownloadOptions
from desktop.core.gguf_info import read_gguf
from desktop.core.library import starter_model_path
from desktop.core.peft import write_safetensors
from desktop.core.presets import Preset, PresetError, PresetStore, StackEntry

RANK = 8
ATTENTION = ("attn_q", "attn_v")


def starter_shapes() -> dict[str, tuple[int, ...]]:
    path = starter_model_path()
    assert path is not None
    return read_gguf(path).tensor_shapes


def lora_pairs(seed: int, targets: tuple[str, ...] = ATTENTION, rank: int = RANK,
               sigma: float = 0.1, layers: range | None = None,
               shapes: dict[str, tuple[int, ...]] | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random (A, B) pairs in PEFT layout for the starter model's tensors, from a fixed seed.

    B is not zero as in a fresh fine-tune: the adapter must change the model's replies.
    """
    shapes = shapes or starter_shapes()
    rng = np.random.default_rng(seed)
    pairs = {}
    for layer in layers if layers is not None else range(30):
        for target in targets:
            name = f"blk.{layer}.{target}.weight"
            n_in, n_out = shapes[name]
            lora_a = (rng.standard_normal((rank, n_in)) / np.sqrt(n_in)).astype(np.float32)
            lora_b = (rng.standard_normal((n_out, rank)) * sigma).astype(np.float32)
            pairs[name] = (lora_a, lora_b)
    return pairs


def write_test_lora(path: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]], *,
                    arch: str = "llama", alpha: float = RANK, general_type: str = "adapter",
                    adapter_type: str = "lora") -> Path:
    """A GGUF LoRA written with the gguf package alone (independent of NoMoat's writer)."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_type(general_type)
    writer.add_string(gguf.Keys.Adapter.TYPE, adapter_type)
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name, (lora_a, lora_b) in pairs.items():
        writer.add_tensor(f"{name}.lora_a", lora_a)
        writer.add_tensor(f"{name}.lora_b", lora_b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def make_lora(path: Path, seed: int, **options: object) -> Path:
    """A rank-8 adapter on attn_q and attn_v of every layer of the starter model."""
    return write_test_lora(path, lora_pairs(seed, **options))  # type: ignore[arg-type]


def wrong_shape_lora(path: Path) -> Path:
    """An adapter for a llama model whose attention is 512 wide, not 576."""
    shapes = {f"blk.{i}.{t}.weight": (512, 512) for i in range(2) for t in ATTENTION}
    return write_test_lora(path, lora_pairs(3, layers=range(2), shapes=shapes))


def wrong_arch_lora(path: Path) -> Path:
    return write_test_lora(path, lora_pairs(4, layers=range(2)), arch="qwen2")


def truncated_copy(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.fixture(scope="module")
def starter_info():  # type: ignore[no-untyped-def]
    path = starter_model_path()
    assert path is not None
    return read_gguf(path)


# -- reading and checking --------------------------------------------------------------------------
def test_inspect_reads_rank_alpha_and_targets(tmp_path: Path, starter_info) -> None:
    path = write_test_lora(tmp_path / "pirate.gguf", lora_pairs(1), alpha=16)
    info = inspect_adapter(path)
    assert info.architecture == "llama"
    assert info.rank == RANK
    assert info.alpha == 16
    assert len(info.targets) == 60
    assert info.target_summary() == "attn_q, attn_v in 30 layers"
    assert info.pairs["blk.0.attn_v.weight"] == ((576, RANK), (RANK, 192))
    assert info.size_bytes == path.stat().st_size
    check_compatible(info, starter_info)  # fits: no exception


def test_nomoat_writer_matches_the_gguf_package(tmp_path: Path) -> None:
    pairs = lora_pairs(5, layers=range(3))
    ours = inspect_adapter(write_lora_gguf(tmp_path / "ours.gguf", "llama", pairs, RANK,
                                           title="ours", base_model="SmolLM2-135M-Instruct"))
    theirs = inspect_adapter(write_test_lora(tmp_path / "theirs.gguf", pairs))
    assert ours.pairs == theirs.pairs
    assert ours.alpha == theirs.alpha
    assert ours.base_model == "SmolLM2-135M-Instruct"
    reader = gguf.GGUFReader(tmp_path / "ours.gguf")
    tensor = next(t for t in reader.tensors if t.name == "blk.1.attn_q.weight.lora_b")
    assert np.array_equal(np.asarray(tensor.data), pairs["blk.1.attn_q.weight"][1])


@pytest.mark.parametrize("make, message", [
    (wrong_arch_lora, "was made for 'qwen2' models, but the loaded model"),
    (wrong_shape_lora, "expects tensor 'blk.0.attn_q.weight' to be 512×512, but in"),
])
def test_mismatched_adapters_are_refused(tmp_path: Path, starter_info, make, message) -> None:
    info = inspect_adapter(make(tmp_path / "other.gguf"))
    with pytest.raises(AdapterMismatch, match=message):
        check_compatible(info, starter_info)


def test_adapter_for_a_deeper_model_is_refused(tmp_path: Path, starter_info) -> None:
    shapes = dict(starter_shapes(), **{"blk.40.attn_q.weight": (576, 576)})
    pairs = lora_pairs(6, targets=("attn_q",), layers=range(40, 41), shapes=shapes)
    info = inspect_adapter(write_test_lora(tmp_path / "deep.gguf", pairs))
    with pytest.raises(AdapterMismatch, match="'blk.40.attn_q.weight', which .* does not have"):
        check_compatible(info, starter_info)


def test_unusable_files_say_why(tmp_path: Path, starter: Path) -> None:
    good = make_lora(tmp_path / "good.gguf", 1)
    notes = tmp_path / "notes.gguf"
    notes.write_text("not an adapter")
    lopsided = tmp_path / "lopsided.gguf"
    writer = gguf.GGUFWriter(str(lopsided), "llama")
    writer.add_type("adapter")
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.ones((8, 576), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    doubles = write_test_lora(tmp_path / "doubles.gguf", {
        name: (a.astype(np.float64), b) for name, (a, b) in lora_pairs(1, layers=range(1)).items()})
    cases = [
        (tmp_path / "missing.gguf", "does not exist"),
        (notes, "is not a GGUF LoRA adapter"),
        (truncated_copy(good, tmp_path / "cut.gguf"), "is incomplete"),
        (starter, "not a LoRA adapter"),
        (write_test_lora(tmp_path / "cvec.gguf", lora_pairs(1, layers=range(1)),
                         adapter_type="control_vector"), "'control_vector' adapter"),
        (lopsided, "has no lora_b half"),
        (doubles, "as F64"),
    ]
    for path, message in cases:
        with pytest.raises(AdapterError, match=message):
            inspect_adapter(path)


# -- the library -----------------------------------------------------------------------------------
def test_library_add_rename_remove(tmp_path: Path, data_home: Path, starter: Path) -> None:
    source = make_lora(tmp_path / "Pirate Talk.gguf", 1)
    library = AdapterLibrary()
    added = library.add_file(source, base_model=starter)
    assert added.name == "Pirate Talk"  # the file name without its extension
    assert added.path.parent == data_home / "adapters"
    assert added.info is not None and added.info.rank == RANK
    assert added.to_dict()["base_model"] == read_gguf(starter).name
    source.unlink()  # the library keeps its own copy
    assert [a.name for a in library.adapters()] == ["Pirate Talk"]

    with pytest.raises(AdapterError, match="already in the library"):
        library.add_file(make_lora(tmp_path / "Pirate Talk.gguf", 2))
    second = library.add_file(tmp_path / "Pirate Talk.gguf", name="pirate-2")
    assert second.path != added.path

    renamed = library.rename("Pirate Talk", "pirate")
    assert renamed.path == added.path
    assert AdapterLibrary().get("pirate").name == "pirate"  # kept on disk
    with pytest.raises(AdapterError, match="already in the library"):
        library.rename("pirate", "pirate-2")
    library.remove("pirate")
    assert not added.path.exists()
    with pytest.raises(UnknownAdapter, match="no adapter called 'pirate'.*pirate-2"):
        library.get("pirate")


def test_library_refuses_what_does_not_fit_and_keeps_nothing(tmp_path: Path, data_home: Path,
                                                            starter: Path) -> None:
    library = AdapterLibrary()
    with pytest.raises(AdapterMismatch):
        library.add_file(wrong_arch_lora(tmp_path / "qwen.gguf"), base_model=starter)
    with pytest.raises(AdapterError, match="is incomplete"):
        library.add_file(truncated_copy(make_lora(tmp_path / "a.gguf", 1), tmp_path / "b.gguf"))
    with pytest.raises(AdapterError, match="slashes"):
        library.add_file(make_lora(tmp_path / "c.gguf", 1), name="a/b")
    assert library.adapters() == []
    assert not any(p.suffix == ".gguf" or p.name.endswith(".part")
                   for p in (data_home / "adapters").iterdir())


def test_a_damaged_file_in_the_folder_is_listed_with_its_problem(data_home: Path) -> None:
    folder = data_home / "adapters"
    folder.mkdir(parents=True)
    (folder / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 10)
    [entry] = AdapterLibrary().adapters()
    assert entry.name == "broken" and entry.info is None
    assert "damaged or incomplete" in (entry.problem or "")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add_repo("someone/sea-lora", {
            "pirate.gguf": make_lora(tmp_path / "pirate.gguf", 1),
            "peft/adapter_config.json": json.dumps({
                "peft_type": "LORA", "r": 8, "lora_alpha": 16,
                "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}).encode(),
            "peft/adapter_model.safetensors": write_safetensors(
                tmp_path / "adapter_model.safetensors",
                {"base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight":
                    np.full((8, 576), 0.01, dtype=np.float32),
                 "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight":
                    np.full((192, 8), 0.01, dtype=np.float32)}),
        })
        yield server


def test_add_from_the_hub_checks_the_download(tmp_path: Path, data_home: Path, hub: HubServer,
                                              starter: Path) -> None:
    options = DownloadOptions(endpoint=hub.endpoint, token=False, retries=1, retry_wait=0.01,
                              space_margin=0)
    library = AdapterLibrary()
    added = library.add_from_hub("someone/sea-lora/pirate.gguf", options=options)
    assert added.name == "pirate"
    assert added.source == "hf://someone/sea-lora/pirate.gguf"
    assert added.path.read_bytes() == (tmp_path / "pirate.gguf").read_bytes()

    peft_added = library.add_from_hub("someone/sea-lora/peft/adapter_config.json",
                                      base_model=starter, options=options)
    assert peft_added.name == "sea-lora"
    assert peft_added.info is not None and peft_added.info.targets == ["blk.0.attn_v.weight"]

    hub.switches.wrong_bytes = True
    with pytest.raises(AdapterError, match="is damaged"):
        library.add_from_hub("someone/sea-lora/pirate.gguf", name="again", options=options)
    hub.switches.wrong_bytes = False
    with pytest.raises(AdapterError, match="has no file 'nothing.gguf'"):
        library.add_from_hub("someone/sea-lora/nothing.gguf", options=options)
    with pytest.raises(AdapterError, match="OWNER/REPO/FILE.gguf"):
        library.add_from_hub("someone/sea-lora", options=options)
    assert [a.name for a in library.adapters()] == ["pirate", "sea-lora"]


# -- presets ---------------------------------------------------------------------------------------
def test_presets_round_trip(data_home: Path) -> None:
    store = PresetStore()
    assert store.presets() == []
    preset = Preset("pirate sql", (StackEntry("pirate", 0.8), StackEntry("sql", 0.5),
                                   StackEntry("french", 1.0, enabled=False)))
    store.save(preset)
    assert PresetStore().get("pirate sql") == preset
    assert preset.describe() == "pirate 0.8 + sql 0.5"
    store.save(Preset("pirate sql", (StackEntry("pirate", -1.5),)))
    assert [p.entries for p in store.presets()] == [(StackEntry("pirate", -1.5),)]
    store.rename("pirate sql", "pirate")
    assert store.get("pirate") is not None and store.get("pirate sql") is None
    store.delete("pirate")
    assert store.presets() == []
    with pytest.raises(PresetError, match="cannot name a preset"):
        store.save(Preset("a+b"))
    with pytest.raises(PresetError, match="between -100 and 100"):
        StackEntry("x", float("nan"))


def test_describe_stack() -> None:
    assert describe_stack([("pirate", 0.8), ("sql", 0.5)]) == "pirate 0.8 + sql 0.5"


# -- compare votes ---------------------------------------------------------------------------------
def test_votes_are_stored_and_tallied_per_pair(data_home: Path) -> None:
    store = VoteStore()
    base, pirate, sql = "smollm2", "smollm2+pirate", "smollm2+sql"
    store.record(base, pirate, "right", blind=True, prompt="Ahoy?")
    store.record(pirate, base, "left")  # the same pair, sides swapped
    store.record(base, pirate, "tie")
    store.record(pirate, sql, "right")
    votes = VoteStore().votes()  # a new store reads what the first one wrote
    assert [v.preferred for v in votes] == [pirate, pirate, None, sql]
    assert votes[0].blind and votes[0].prompt == "Ahoy?"
    first = store.tally()[0]
    assert (first.first, first.second) == (base, pirate)
    assert (first.wins_of(pirate), first.wins_of(base), first.ties, first.total) == (2, 0, 1, 3)
    assert store.tally_for(sql, pirate).wins_of(sql) == 1
    assert store.tally_for("a", "b").total == 0
    with pytest.raises(CompareError):
        store.record(base, base, "left")
    with pytest.raises(CompareError):
        store.record(base, pirate, "both")  # type: ignore[arg-type]


def test_blind_sides_shuffle() -> None:
    rng = random.Random(7)
    seen = {blind_sides("a", "b", rng) for _ in range(50)}
    assert seen == {("a", "b"), ("b", "a")}
