"""The document index's database: schema, collections and roots, files written whole, the
full-text index kept in step, vectors stored and cached."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from desktop.core.docs.chunking import Chunk
from desktop.core.docs.records import CollectionNotFound
from desktop.core.docs.schema import SCHEMA_VERSION, DocStoreError
from desktop.core.docs.store import DATABASE_NAME, DocStore

# These tests are about storage: the vectors are given numbers, not a model's output.
DIM = 4


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((count, DIM)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _chunks(*texts: str) -> list[Chunk]:
    return [Chunk(i, text, i + 1, f"Part {i}") for i, text in enumerate(texts)]


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with DocStore(tmp_path / "docs.sqlite3") as opened:
        yield opened


def _save(store: DocStore, collection_id: int, path: str, *texts: str, digest: str = "h",
          model: str = "m") -> int:
    record = store.save_file(collection_id, path, size=10, mtime_ns=1, hash=digest,
                             kind="text", chunks=_chunks(*texts), vectors=_vectors(len(texts)),
                             model_id=model)
    return record.id


def _fts_rows(store_path: Path) -> int:
    """How many chunks the full-text index holds, checked against the chunks themselves."""
    conn = sqlite3.connect(store_path)
    try:
        conn.execute("INSERT INTO chunk_text (chunk_text) VALUES ('integrity-check')")
        # The index's own list of rows (the table itself would read them from chunks).
        conn.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, chunk_text, "
                     "'instance')")
        indexed = {row[0] for row in conn.execute("SELECT DISTINCT doc FROM temp.terms")}
        assert indexed == {row[0] for row in conn.execute("SELECT id FROM chunks")}
        return len(indexed)
    finally:
        conn.close()


def test_the_database_lives_in_the_chats_folder_with_a_schema_version(data_home: Path) -> None:
    with DocStore() as store:
        assert store.path == data_home / "chats" / DATABASE_NAME
    conn = sqlite3.connect(data_home / "chats" / DATABASE_NAME)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(DocStoreError, match="newer version of NoMoat"):
        DocStore().open()


def test_a_damaged_database_is_reported_in_words(tmp_path: Path) -> None:
    path = tmp_path / "docs.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DocStoreError, match="cannot be opened"):
        DocStore(path).open()


def test_collections_are_made_renamed_listed_and_deleted(store: DocStore) -> None:
    papers = store.create_collection("  Papers  ")
    assert papers.name == "Papers" and papers.state == "new" and papers.files == 0
    store.create_collection("Notes")
    with pytest.raises(ValueError, match="already a collection"):
        store.create_collection("papers")
    with pytest.raises(ValueError):
        store.create_collection("   ")
    assert store.rename_collection(papers.id, "Articles").name == "Articles"
    assert [c.name for c in store.collections()] == ["Articles", "Notes"]
    _save(store, papers.id, "/docs/a.txt", "alpha")
    assert store.delete_collection(papers.id) is True
    assert store.delete_collection(papers.id) is False
    with pytest.raises(CollectionNotFound):
        store.collection(papers.id)
    assert _fts_rows(store.path) == 0


def test_roots_and_removing_one_drops_only_its_own_files(store: DocStore,
                                                         tmp_path: Path) -> None:
    collection = store.create_collection("Work")
    outer = store.add_root(collection.id, tmp_path / "docs")
    inner = store.add_root(collection.id, tmp_path / "docs" / "inner")
    other = store.add_root(collection.id, tmp_path / "other")
    store.add_root(collection.id, tmp_path / "other")  # twice: once
    assert store.roots(collection.id) == [outer, inner, other]
    _save(store, collection.id, f"{inner}/a.txt", "in inner")
    _save(store, collection.id, f"{outer}/b.txt", "in outer")
    _save(store, collection.id, f"{other}/c.txt", "in other")
    _save(store, collection.id, f"{outer}-sibling/d.txt", "beside, not under")
    assert store.remove_root(collection.id, outer) is True
    assert store.remove_root(collection.id, outer) is False
    # a.txt is still under a root (inner); b.txt is gone; a folder beside is not "under".
    assert sorted(Path(f.path).name for f in store.files(collection.id)) == ["a.txt", "c.txt",
                                                                              "d.txt"]


def test_a_file_is_saved_whole_and_replaced_whole(store: DocStore) -> None:
    collection = store.create_collection("C")
    file_id = _save(store, collection.id, "/d/a.txt", "apples grow", "pears fall")
    assert store.collection(collection.id).chunks == 2
    assert store.full_text_ranking(collection.id, '"apples"', 10)
    again = _save(store, collection.id, "/d/a.txt", "cherries ripen")
    assert again == file_id  # the same file, not a second row
    assert store.full_text_ranking(collection.id, '"apples"', 10) == []
    [chunk] = store.file_chunks(file_id)
    assert (chunk.text, chunk.ordinal, chunk.page, chunk.heading) == ("cherries ripen", 0, 1,
                                                                      "Part 0")
    assert _fts_rows(store.path) == 1
    with pytest.raises(ValueError):
        store.save_file(collection.id, "/d/b.txt", size=1, mtime_ns=1, hash="x", kind="text",
                        chunks=_chunks("one"), vectors=_vectors(2), model_id="m")


def test_unreadable_files_are_listed_with_their_reason(store: DocStore) -> None:
    collection = store.create_collection("C")
    _save(store, collection.id, "/d/a.pdf", "was readable")
    store.save_unreadable(collection.id, "/d/a.pdf", size=3, mtime_ns=2, hash="y",
                          reason="encrypted PDF (needs a password)", kind="pdf")
    [record] = store.unreadable_files(collection.id)
    assert (record.path, record.error, record.chunks) == ("/d/a.pdf",
                                                          "encrypted PDF (needs a password)", 0)
    listed = store.collection(collection.id)
    assert (listed.files, listed.unreadable, listed.chunks) == (0, 1, 0)
    assert _fts_rows(store.path) == 0


def test_a_moved_file_keeps_its_chunks_and_vectors(store: DocStore) -> None:
    collection = store.create_collection("C")
    file_id = _save(store, collection.id, "/d/old.txt", "one", "two")
    ids_before, vectors_before = store.vectors(collection.id, "m")
    moved = store.move_file(file_id, "/d/new.txt", size=10, mtime_ns=5)
    assert moved.id == file_id and moved.path == "/d/new.txt"
    ids_after, vectors_after = store.vectors(collection.id, "m")
    assert list(ids_after) == list(ids_before)
    assert np.array_equal(vectors_after, vectors_before)
    assert {c.path for c in store.chunks(list(ids_after)).values()} == {"/d/new.txt"}


def test_vectors_round_trip_and_the_cache_follows_changes(store: DocStore,
                                                          tmp_path: Path) -> None:
    collection = store.create_collection("C")
    _save(store, collection.id, "/d/a.txt", "one", "two", "three")
    ids, matrix = store.vectors(collection.id, "m")
    assert matrix.dtype == np.float32 and matrix.shape == (3, DIM)
    assert np.allclose(matrix, _vectors(3))
    assert store.vectors(collection.id, "m")[1] is matrix  # unchanged: the same array
    assert store.embedding_models(collection.id) == {"m": (DIM, 3)}
    # A change made through another connection (another process) is seen too.
    with DocStore(tmp_path / "docs.sqlite3") as other:
        _save(other, collection.id, "/d/b.txt", "four")
    assert len(store.vectors(collection.id, "m")[0]) == 4
    assert len(store.vectors(collection.id, "other-model")[0]) == 0


def test_scan_marks_give_the_collection_state(store: DocStore) -> None:
    collection = store.create_collection("C")
    store.mark_scan(collection.id, finished=False)
    assert store.collection(collection.id).state == "incomplete"
    store.mark_scan(collection.id, finished=True)
    assert store.collection(collection.id).state == "indexed"
    with pytest.raises(CollectionNotFound):
        store.mark_scan(999, finished=True)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = DocStore(tmp_path / "x.sqlite3").open()
    store.close()
    store.close()
    with pytest.raises(DocStoreError, match="closed"):
        store.collections()


def test_passage_counts_follow_the_index(store: DocStore, tmp_path: Path) -> None:
    first = store.create_collection("First")
    _save(store, first.id, "/d/a.txt", "Apples and pears.", "Apples again.")
    assert store.passage_counts(["apples", "pears", "plums"]) == (
        2, {"apples": 2, "pears": 1, "plums": 0})
    second = store.create_collection("Second")
    # Counted over the whole index, as BM25 counts them; changes made elsewhere are seen.
    with DocStore(tmp_path / "docs.sqlite3") as other:
        _save(other, second.id, "/e/b.txt", "Plums, apples.")
    assert store.passage_counts(["apples", "plums"]) == (3, {"apples": 3, "plums": 1})
    store.delete_collection(first.id)
    assert store.passage_counts(["apples", "pears"]) == (1, {"apples": 1, "pears": 0})
    # The list of terms is this connection's own: the file's schema is unchanged.
    conn = sqlite3.connect(store.path)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "chunk_terms" not in names and "chunk_text" in names
