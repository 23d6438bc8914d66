"""The model library: listing with header facts and catalog entries, broken and partial files,
split models, import (copy or in place) and removal, on real files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from desktop.core.catalog import bundled_catalog
from desktop.core.library import (
    STARTER_ID,
    BrokenModel,
    LibraryError,
    UnknownModel,
    find_model,
    installed_models,
    memory_fit,
    model_id_for,
    models_folder,
    record_checksum,
    resolve_model,
)
from desktop.core.library_changes import import_model, remove_model
from desktop.core.memory import FITS, WONT_FIT
from desktop.core.paths import get_paths
from desktop.core.settings import Settings, save_settings

MB = 1024 * 1024


def write_model(path: Path, *, kind: str | None = None, extra: dict[str, int] | None = None,
                rows: int = 256) -> Path:
    """A small, well-formed llama GGUF file (float16 tensors)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    if kind:
        writer.add_type(kind)
    writer.add_name("Tiny")
    writer.add_block_count(1)
    writer.add_context_length(1024)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    for key, value in (extra or {}).items():
        writer.add_uint16(key, value)
    writer.add_tensor("token_embd.weight", np.ones((rows, 64), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def folder(data_home: Path) -> Path:
    """The models folder of this test's own data home."""
    path = get_paths().models
    path.mkdir(parents=True)
    return path


def by_id() -> dict[str, object]:
    return {m.id: m for m in installed_models()}


# -- listing --------------------------------------------------------------------------------------

def test_the_starter_model_is_always_listed_first(data_home: Path, starter: Path) -> None:
    models = installed_models()
    first = models[0]
    assert first.id == STARTER_ID and first.bundled and first.loadable
    assert first.path == starter and first.size_bytes == starter.stat().st_size
    assert first.architecture == "llama" and first.quantization == "Q4_1"
    assert first.context_length == 8192 and first.has_chat_template
    assert first.license == "apache-2.0"
    assert first.parameter_count == 134_515_008
    assert first.catalog is not None and first.catalog.id == STARTER_ID


def test_models_folder_listing_with_facts_and_catalog_entries(folder: Path,
                                                               starter: Path) -> None:
    # Where downloads put a catalog file: <owner>/<repo>/<file>.
    entry = bundled_catalog().get("gemma-3-1b-it")
    assert entry is not None
    placed = folder / entry.repo_id / entry.filename
    placed.parent.mkdir(parents=True)
    placed.symlink_to(starter)
    mine = write_model(folder / "My Model.gguf")
    models = by_id()
    assert list(models) == [STARTER_ID, "gemma-3-1b-it", "my-model"]
    matched = models["gemma-3-1b-it"]
    assert matched.catalog is entry or matched.catalog == entry
    assert matched.name == entry.name and matched.architecture == "llama"
    local = models["my-model"]
    assert local.catalog is None and local.name == "Tiny"
    assert local.size_bytes == mine.stat().st_size
    assert local.context_length == 1024 and not local.has_chat_template
    assert resolve_model("my-model") == ("my-model", mine)
    assert resolve_model("My Model.gguf") == ("my-model", mine)
    assert resolve_model(str(mine)) == ("my-model", mine)
    assert resolve_model(entry.filename) == ("gemma-3-1b-it", placed)


def test_a_known_checksum_finds_the_catalog_entry(folder: Path, starter: Path) -> None:
    renamed = folder / "renamed.gguf"
    renamed.symlink_to(starter)
    assert find_model("renamed").catalog is None
    entry = bundled_catalog().get(STARTER_ID)
    record_checksum(renamed, entry.sha256)
    found = find_model("renamed")
    assert found.catalog is not None and found.catalog.id == STARTER_ID
    assert found.id == "renamed"  # the starter already has the catalog id


def test_files_still_downloading_are_not_models(folder: Path) -> None:
    write_model(folder / "owner" / "repo" / "model.gguf.part")
    (folder / "owner" / "repo" / "model.gguf.part.json").write_text("{}")
    write_model(folder / "x.gguf.incomplete")
    write_model(folder / ".hidden.gguf")
    write_model(folder / ".cache" / "huggingface" / "download" / "tmp.gguf")
    write_model(folder / ".nomoat-import.gguf.importing")
    assert [m.id for m in installed_models()] == [STARTER_ID]


def test_broken_files_are_listed_with_the_reason_but_never_loaded(folder: Path,
                                                                   starter: Path) -> None:
    (folder / "notes.gguf").write_text("these are notes")
    with starter.open("rb") as source:
        (folder / "cut.gguf").write_bytes(source.read(30 * MB))
    write_model(folder / "adapter.gguf", kind="adapter")
    models = by_id()
    assert "is not a GGUF model file" in models["notes"].problem
    assert "is incomplete" in models["cut"].problem
    assert "not a model" in models["adapter"].problem
    assert not any(models[i].loadable for i in ("notes", "cut", "adapter"))
    assert models["cut"].info is None and memory_fit(models["cut"]) is None
    with pytest.raises(BrokenModel) as caught:
        resolve_model("cut")
    assert "is incomplete" in str(caught.value) and "is incomplete" in caught.value.reason
    assert isinstance(caught.value, UnknownModel)  # callers that catch UnknownModel refuse too
    assert [m.id for m in installed_models(include_broken=False)] == [STARTER_ID]


def test_a_file_is_checked_again_when_it_changes(folder: Path) -> None:
    path = write_model(folder / "grow.gguf")
    data = path.read_bytes()
    path.write_bytes(data[:-50])
    assert not find_model("grow").loadable
    path.write_bytes(data)
    assert find_model("grow").loadable


def test_split_models_are_one_model(folder: Path) -> None:
    first = write_model(folder / "big-00001-of-00002.gguf", extra={"split.count": 2})
    second = write_model(folder / "big-00002-of-00002.gguf", rows=512,
                         extra={"split.count": 2, "split.no": 1})
    models = installed_models()
    assert [m.id for m in models] == [STARTER_ID, "big"]
    big = models[1]
    assert big.path == first and big.files == (first, second)
    assert big.size_bytes == first.stat().st_size + second.stat().st_size
    assert big.parameter_count == 256 * 64 + 512 * 64
    assert big.loadable
    second.unlink()
    missing = find_model("big")
    assert "Part 2 of 2 (big-00002-of-00002.gguf) is missing" in missing.problem


def test_the_models_dir_setting_moves_the_folder(data_home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write_model(elsewhere / "far.gguf")
    assert find_model("far") is None
    save_settings(Settings(models_dir=str(elsewhere)))
    assert models_folder() == elsewhere
    assert find_model("far").path == elsewhere / "far.gguf"


def test_same_file_name_in_two_repos_gets_two_ids(folder: Path) -> None:
    write_model(folder / "a" / "repo" / "model.gguf")
    write_model(folder / "b" / "repo" / "model.gguf")
    assert [m.id for m in installed_models()] == [STARTER_ID, "model", "model-2"]


def test_unknown_references(data_home: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="No installed model is called 'nope'. Installed: "
                                           "smollm2-135m-instruct"):
        resolve_model("nope")
    # A path is passed on for the engine to check.
    path = tmp_path / "Some.File.gguf"
    assert resolve_model(path) == ("some.file", path)
    assert model_id_for(Path("Qwen-00001-of-00003.gguf")) == "qwen"


def test_memory_fit_of_an_installed_model(data_home: Path) -> None:
    starter = installed_models()[0]
    fit = memory_fit(starter, n_ctx=2048, available=8 * 1024**3, parallel=1)
    assert fit.verdict == FITS
    assert fit.estimate.kv_cache == 30 * 3 * 128 * 2 * 2048
    assert "it fits" in fit.message and "parallel" not in fit.message
    assert memory_fit(starter, n_ctx=2048, available=100 * MB).verdict == WONT_FIT
    # The engine's default: 4,096 tokens for each of 4 parallel replies.
    default = memory_fit(starter, available=8 * 1024**3)
    assert default.estimate.kv_cache == 30 * 3 * 128 * 2 * 4096 * 4
    assert "context cache for 4 parallel replies" in default.message
    two = memory_fit(starter, n_ctx=2048, available=8 * 1024**3, parallel=2)
    assert two.estimate.kv_cache == 2 * fit.estimate.kv_cache


# -- import and remove --------------------------------------------------------------------------

@pytest.fixture
def starter_copy(starter: Path, tmp_path: Path) -> Path:
    """The starter model under another path (the bundled file itself is already listed)."""
    source = tmp_path / "Downloads" / starter.name
    source.parent.mkdir()
    if starter.stat().st_dev == tmp_path.stat().st_dev:
        os.link(starter, source)  # a second name for the same bytes: quick
    else:
        shutil.copyfile(starter, source)
    return source


def test_import_by_copy(folder: Path, starter: Path, starter_copy: Path) -> None:
    source = starter_copy
    progress: list[tuple[int, int]] = []
    model = import_model(source, on_progress=lambda done, total: progress.append((done, total)))
    target = folder / source.name
    assert model.path == target and not model.registered and model.loadable
    assert target.read_bytes()[:4] == b"GGUF" and target.stat().st_size == starter.stat().st_size
    assert progress[-1] == (starter.stat().st_size, starter.stat().st_size)
    assert [p.name for p in folder.iterdir()] == [source.name]  # no temporary file left
    # The checksum was taken while copying, and matches the catalog's.
    registry = json.loads((data_home_of(folder) / "library.json").read_text())
    digest = registry["checksums"][str(target)]["sha256"]
    assert digest == bundled_catalog().get(STARTER_ID).sha256
    assert model.catalog is not None and model.catalog.id == STARTER_ID
    with pytest.raises(LibraryError, match="already in the library"):
        import_model(target)
    with pytest.raises(LibraryError, match="already has a file called"):
        import_model(source)

    removed = remove_model(model.id)
    assert removed.path == target and not target.exists()
    assert source.exists()
    assert str(target) not in json.loads(
        (data_home_of(folder) / "library.json").read_text())["checksums"]
    assert [m.id for m in installed_models()] == [STARTER_ID]


def data_home_of(folder: Path) -> Path:
    return folder.parent


def test_import_in_place_and_forget(folder: Path, tmp_path: Path) -> None:
    source = write_model(tmp_path / "outside" / "Local Model.gguf")
    model = import_model(source, copy=False)
    assert model.registered and model.path == source and model.id == "local-model"
    assert list(folder.iterdir()) == []
    assert resolve_model("local-model") == ("local-model", source)
    with pytest.raises(LibraryError, match="already in the library as 'local-model'"):
        import_model(source, copy=False)
    removed = remove_model("local-model")
    assert removed.registered and source.exists()  # the user's file stays
    assert find_model("local-model") is None


def test_a_registered_file_that_disappears_is_broken(folder: Path, tmp_path: Path) -> None:
    source = write_model(tmp_path / "usb" / "gone.gguf")
    import_model(source, copy=False)
    source.unlink()
    gone = find_model("gone")
    assert gone.registered and "is no longer there" in gone.problem
    remove_model("gone")
    assert find_model("gone") is None


def test_import_of_a_split_model_copies_every_part(folder: Path, tmp_path: Path) -> None:
    first = write_model(tmp_path / "in" / "two-00001-of-00002.gguf", extra={"split.count": 2})
    with pytest.raises(LibraryError, match="two-00002-of-00002.gguf is not next to it"):
        import_model(first)
    write_model(tmp_path / "in" / "two-00002-of-00002.gguf", extra={"split.count": 2})
    model = import_model(tmp_path / "in" / "two-00002-of-00002.gguf")  # any part will do
    assert model.id == "two" and [f.name for f in model.files] == [
        "two-00001-of-00002.gguf", "two-00002-of-00002.gguf"]
    assert all(f.parent == folder for f in model.files)
    remove_model("two")
    assert list(folder.iterdir()) == []


def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing.gguf", "does not exist"),
    (lambda p: p, "is not a file"),
    (lambda p: _file(p / "model.bin", b"GGUF"), "is not a .gguf file"),
    (lambda p: _file(p / "t.gguf", b"GGUF\x03\0\0\0"), "damaged or incomplete"),
    (lambda p: write_model(p / "lora.gguf", kind="adapter"), "LoRA adapter"),
])
def test_import_refuses_what_is_not_a_usable_model(folder: Path, tmp_path: Path,
                                                   make: Callable[[Path], Path],
                                                   message: str) -> None:
    with pytest.raises(LibraryError, match=message):
        import_model(make(tmp_path))
    assert list(folder.iterdir()) == []


def test_remove_refusals_and_cleanup(folder: Path) -> None:
    with pytest.raises(LibraryError, match="starter model that comes with NoMoat"):
        remove_model(STARTER_ID)
    with pytest.raises(UnknownModel, match="No installed model is called 'ghost'"):
        remove_model("ghost")
    (folder / "owner" / "repo").mkdir(parents=True)
    (folder / "owner" / "repo" / "broken.gguf").write_text("not a model")
    removed = remove_model("broken")  # a broken model can be removed
    assert removed.problem is not None
    assert list(folder.iterdir()) == []  # the empty owner/repo folders went too


# -- a small disk ---------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs as the models folder; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)],
            check=False, capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_import_checks_free_space_first(data_home: Path, small_disk: Path,
                                        starter_copy: Path) -> None:
    save_settings(Settings(models_dir=str(small_disk)))
    with pytest.raises(LibraryError, match=r"Copying needs 158 MB of free space in .*, but "
                                           r"only 24 MB is free"):
        import_model(starter_copy)
    assert list(small_disk.iterdir()) == []


def test_a_disk_that_fills_up_while_copying(data_home: Path, small_disk: Path,
                                            tmp_path: Path) -> None:
    save_settings(Settings(models_dir=str(small_disk)))
    source = write_model(tmp_path / "mid.gguf", rows=96 * 1024)  # 12 MB
    filled: list[Path] = []

    def another_program_fills_the_disk(done: int, total: int) -> None:
        if not filled:
            filler = small_disk / ".someone-else"
            filler.write_bytes(b"\0" * (small_disk_free(small_disk) - 1024 * 1024))
            filled.append(filler)

    with pytest.raises(LibraryError, match="the disk is full. Nothing was added."):
        import_model(source, on_progress=another_program_fills_the_disk, space_margin=0)
    filled[0].unlink()
    assert list(small_disk.iterdir()) == []
    assert find_model("mid") is None


def small_disk_free(disk: Path) -> int:
    stats = os.statvfs(disk)
    return stats.f_bavail * stats.f_frsize


def test_hashing_while_copying_matches_hashlib(folder: Path, tmp_path: Path) -> None:
    source = write_model(tmp_path / "h.gguf", rows=40_000)  # spans several copy chunks
    model = import_model(source)
    registry = json.loads((folder.parent / "library.json").read_text())
    assert registry["checksums"][str(model.path)]["sha256"] == hashlib.sha256(
        source.read_bytes()).hexdigest()


def test_layering_library_needs_no_engine() -> None:
    """The library runs without llama_cpp or Qt (checked in a fresh interpreter)."""
    code = textwrap.dedent("""
        import sys
        from desktop.core import library, catalog, memory, settings, gguf_info
        library.installed_models()
        assert "llama_cpp" not in sys.modules and "PySide6" not in sys.modules
        assert "huggingface_hub" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
