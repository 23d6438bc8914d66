"""Finding a collection's files and deciding what changed, before anything is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from desktop.core.docs.records import FileRecord
from desktop.core.docs.scanning import FoundFile, Scan, file_hash, plan_changes, scan_roots


def _write(path: Path, text: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_walk_skips_hidden_and_tool_folders_and_reports_missing_roots(
        tmp_path: Path) -> None:
    root = tmp_path / "docs"
    kept = [_write(root / "a.txt"), _write(root / "sub" / "b.md"), _write(root / "Makefile")]
    for skipped in (".git/config", "node_modules/x/readme.md", ".env", "sub/.hidden.txt",
                    "__pycache__/m.pyc", "~$lock.docx", "notes.txt~", "db.sqlite3-wal"):
        _write(root / skipped)
    single = _write(tmp_path / "elsewhere" / "single.txt")
    scan = scan_roots([str(root), str(root / "sub"), str(single), str(tmp_path / "unplugged")])
    assert sorted(scan.files) == sorted(str(p) for p in [*kept, single])
    assert scan.missing_roots == [str(tmp_path / "unplugged")]
    assert not scan.truncated and not scan.errors
    found = scan.files[str(kept[0])]
    assert (found.size, found.mtime_ns) == (4, os.stat(kept[0]).st_mtime_ns)


def test_the_walk_stops_at_the_file_limit(tmp_path: Path) -> None:
    for n in range(10):
        _write(tmp_path / f"{n}.txt")
    scan = scan_roots([str(tmp_path)], max_files=4)
    assert len(scan.files) == 4 and scan.truncated


def test_the_walk_can_be_stopped_from_its_checkpoint(tmp_path: Path) -> None:
    for n in range(1200):
        (tmp_path / f"{n}.txt").write_bytes(b"")
    calls = []

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        scan_roots([str(tmp_path)], checkpoint=checkpoint)
    assert len(calls) == 2


def test_file_hash_is_of_the_content(tmp_path: Path) -> None:
    one, two = _write(tmp_path / "1.txt", "same"), _write(tmp_path / "2.txt", "same")
    assert file_hash(str(one)) == file_hash(str(two)) and len(file_hash(str(one)) or "") == 32
    assert file_hash(str(tmp_path / "missing")) is None


def _record(file_id: int, path: str, size: int = 10, mtime: int = 1, digest: str = "h",
            state: str = "indexed", model: str | None = "m") -> FileRecord:
    return FileRecord(file_id, 1, path, size, mtime, digest, state,  # type: ignore[arg-type]
                      None, "text", 1, model if state == "indexed" else None, 0.0)


def test_each_kind_of_change_is_told_apart() -> None:
    known = {r.path: r for r in [
        _record(1, "/d/same.txt"),
        _record(2, "/d/touched.txt", digest="t"),
        _record(3, "/d/edited.txt", digest="e"),
        _record(4, "/d/old-name.txt", digest="r"),
        _record(5, "/d/deleted.txt", digest="x"),
        _record(6, "/d/other-model.txt", model="old"),
        _record(7, "/d/broken.pdf", digest="b", state="unreadable"),
        _record(8, "/usb/kept.txt"),
    ]}
    scan = Scan(files={f.path: f for f in [
        FoundFile("/d/same.txt", 10, 1),
        FoundFile("/d/touched.txt", 10, 2),
        FoundFile("/d/edited.txt", 11, 2),
        FoundFile("/d/new-name.txt", 10, 3),
        FoundFile("/d/brand-new.txt", 10, 3),
        FoundFile("/d/other-model.txt", 10, 1),
        FoundFile("/d/broken-moved.pdf", 10, 3),
    ]}, missing_roots=["/usb"])
    hashes = {"/d/touched.txt": "t", "/d/edited.txt": "E", "/d/new-name.txt": "r",
              "/d/brand-new.txt": "n", "/d/broken-moved.pdf": "b"}
    asked: list[str] = []

    def hash_of(found: FoundFile) -> str | None:
        asked.append(found.path)
        return hashes[found.path]

    plan = plan_changes(known, scan, "m", hash_of)
    assert sorted(r.path for r in plan.unchanged) == ["/d/same.txt", "/usb/kept.txt"]
    assert [(r.path, f.path) for r, f in plan.touched] == [("/d/touched.txt", "/d/touched.txt")]
    assert sorted((r.path, f.path) for r, f in plan.renamed) == [
        ("/d/broken.pdf", "/d/broken-moved.pdf"), ("/d/old-name.txt", "/d/new-name.txt")]
    assert [r.path for r in plan.deleted] == ["/d/deleted.txt"]
    assert sorted((w.file.path, w.why, w.hash) for w in plan.work) == [
        ("/d/brand-new.txt", "new", "n"), ("/d/edited.txt", "changed", "E"),
        ("/d/other-model.txt", "model", "h")]
    assert "/d/same.txt" not in asked  # size and time settle it


def test_new_files_are_not_hashed_when_nothing_is_gone() -> None:
    scan = Scan(files={"/d/new.txt": FoundFile("/d/new.txt", 1, 1)})

    def hash_of(found: FoundFile) -> str | None:
        raise AssertionError("no rename is possible, so no hash is needed")

    plan = plan_changes({}, scan, "m", hash_of)
    assert [(w.file.path, w.hash) for w in plan.work] == [("/d/new.txt", None)]


def test_a_rename_to_content_embedded_by_another_model_is_indexed_again() -> None:
    known = {"/d/a.txt": _record(1, "/d/a.txt", digest="h", model="old")}
    scan = Scan(files={"/d/b.txt": FoundFile("/d/b.txt", 10, 1)})
    plan = plan_changes(known, scan, "new", lambda found: "h")
    assert [r.path for r in plan.deleted] == ["/d/a.txt"] and not plan.renamed
    assert [w.file.path for w in plan.work] == ["/d/b.txt"]


def test_files_in_a_folder_that_cannot_be_listed_are_kept() -> None:
    known = {"/d/locked/a.txt": _record(1, "/d/locked/a.txt")}
    scan = Scan(errors={"/d/locked": "folder cannot be read (Permission denied)"})
    plan = plan_changes(known, scan, "m", lambda found: None)
    assert [r.path for r in plan.unchanged] == ["/d/locked/a.txt"] and not plan.deleted
