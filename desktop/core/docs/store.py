"""The document index: collections, their folders and files, the files' chunks with a
full-text index, and the chunks' embeddings, in one SQLite database (WAL) beside the chats.

Every change to a file is one transaction: its chunks, their full-text entries and their
vectors go in (or out) together, so a crash or a kill at any moment leaves each file fully
indexed or not at all. Any thread may call a store; another process (or another store on the
same file) may read while one writes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from desktop.core.docs.chunking import Chunk
from desktop.core.docs.records import Collection, CollectionNotFound, FileRecord, StoredChunk
from desktop.core.docs.database import DATABASE_NAME, Database
from desktop.core.docs.schema import DocStoreError
from desktop.core.docs.vectors import Matrix, from_blobs, to_blob

Ids = npt.NDArray[np.int64]
_MAX_TERM_COUNTS = 50_000  # terms whose counts are remembered, at most

__all__ = ["DATABASE_NAME", "DocStore", "DocStoreError", "CollectionNotFound"]


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("A collection needs a name.")
    return cleaned


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class DocStore(Database):
    """The document index in one SQLite database; safe to call from any thread.

    Use ``with DocStore() as store:`` or ``store = DocStore().open()`` … ``store.close()``.
    *path* defaults to ``docs.sqlite3`` in the chats folder.
    """

    def __init__(self, path: str | Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(path, clock)
        # (collection, model) -> (generation, chunk ids, unit vectors): reloaded when the
        # collection's generation moves on.
        self._vector_cache: dict[tuple[int, str], tuple[int, Ids, Matrix]] = {}
        # How many passages hold each term, and in all: kept while the index is in one state.
        self._counts_state: tuple[int, int, int] | None = None
        self._passages = 0
        self._term_counts: dict[str, int] = {}

    def _prepare(self, conn: sqlite3.Connection) -> None:
        super()._prepare(conn)
        # The full-text index's own list of terms with the number of passages holding each;
        # in temp, so it is this connection's and the file's schema does not change.
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunk_terms "
                     "USING fts5vocab(main, chunk_text, 'row')")

    def close(self) -> None:
        """Close the database (and forget the vectors and counts held in memory)."""
        with self._lock:
            self._vector_cache.clear()
            self._counts_state = None
            self._term_counts.clear()
            super().close()

    @staticmethod
    def _bump(conn: sqlite3.Connection, collection_id: int) -> None:
        conn.execute("UPDATE collections SET generation = generation + 1 WHERE id = ?",
                     (collection_id,))

    # -- collections -------------------------------------------------------------------------
    def create_collection(self, name: str) -> Collection:
        """Make an empty collection; ValueError if the name is blank or taken."""
        name = _clean_name(name)
        with self._write() as conn:
            self._check_free(conn, name, None)
            cursor = conn.execute("INSERT INTO collections (name, created) VALUES (?, ?)",
                                  (name, self._clock()))
            return self._collection(conn, int(cursor.lastrowid or 0))

    def rename_collection(self, collection_id: int, name: str) -> Collection:
        """Give a collection a new name; ValueError if it is blank or taken."""
        name = _clean_name(name)
        with self._write() as conn:
            self._check_free(conn, name, collection_id)
            if not conn.execute("UPDATE collections SET name = ? WHERE id = ?",
                                (name, collection_id)).rowcount:
                raise CollectionNotFound(f"There is no collection {collection_id}.")
            return self._collection(conn, collection_id)

    @staticmethod
    def _check_free(conn: sqlite3.Connection, name: str, own_id: int | None) -> None:
        for row in conn.execute("SELECT id, name FROM collections"):
            if row["id"] != own_id and row["name"].casefold() == name.casefold():
                raise ValueError(f"There is already a collection called {row['name']!r}.")

    def delete_collection(self, collection_id: int) -> bool:
        """Delete a collection and its index (never the documents); False if already gone."""
        with self._write() as conn:
            deleted = bool(conn.execute("DELETE FROM collections WHERE id = ?",
                                        (collection_id,)).rowcount)
        self._forget_vectors(collection_id)
        return deleted

    def collection(self, collection_id: int) -> Collection:
        """One collection with its counts; CollectionNotFound if it does not exist."""
        with self._lock:
            return self._collection(self._require(), collection_id)

    def collections(self) -> list[Collection]:
        """Every collection with its counts, by name."""
        with self._lock:
            conn = self._require()
            ids = [row["id"] for row in conn.execute("SELECT id FROM collections")]
            listed = [self._collection(conn, collection_id) for collection_id in ids]
        return sorted(listed, key=lambda c: (c.name.casefold(), c.id))

    def _collection(self, conn: sqlite3.Connection, collection_id: int) -> Collection:
        row = conn.execute(
            "SELECT c.*, "
            " (SELECT COUNT(*) FROM files f WHERE f.collection_id = c.id "
            "    AND f.state = 'indexed') AS indexed_files, "
            " (SELECT COUNT(*) FROM files f WHERE f.collection_id = c.id "
            "    AND f.state = 'unreadable') AS unreadable_files, "
            " (SELECT COALESCE(SUM(f.chunks), 0) FROM files f "
            "    WHERE f.collection_id = c.id) AS chunk_count "
            "FROM collections c WHERE c.id = ?", (collection_id,)).fetchone()
        if row is None:
            raise CollectionNotFound(f"There is no collection {collection_id}.")
        roots = tuple(r["path"] for r in conn.execute(
            "SELECT path FROM roots WHERE collection_id = ? ORDER BY id", (collection_id,)))
        return Collection(row["id"], row["name"], row["created"], roots, row["indexed_files"],
                          row["chunk_count"], row["unreadable_files"], row["scan_started"],
                          row["scan_finished"])

    # -- roots -------------------------------------------------------------------------------
    def add_root(self, collection_id: int, path: str | os.PathLike[str]) -> str:
        """Add a folder or file to a collection (indexed at the next run); returns the path as
        kept (absolute). Adding one already there changes nothing."""
        root = os.path.abspath(os.fspath(path))
        with self._write() as conn:
            self._collection(conn, collection_id)
            conn.execute("INSERT OR IGNORE INTO roots (collection_id, path, added) "
                         "VALUES (?, ?, ?)", (collection_id, root, self._clock()))
        return root

    def remove_root(self, collection_id: int, path: str | os.PathLike[str]) -> bool:
        """Take a folder or file out of a collection, and its files out of the index at once
        (those also under another of its roots stay). False if it was not a root."""
        root = os.path.abspath(os.fspath(path))
        with self._write() as conn:
            if not conn.execute("DELETE FROM roots WHERE collection_id = ? AND path = ?",
                                (collection_id, root)).rowcount:
                return False
            others = [r["path"] for r in conn.execute(
                "SELECT path FROM roots WHERE collection_id = ?", (collection_id,))]
            gone = [row["id"] for row in conn.execute(
                        "SELECT id, path FROM files WHERE collection_id = ?", (collection_id,))
                    if _under(row["path"], root)
                    and not any(_under(row["path"], other) for other in others)]
            self._delete_ids(conn, gone)
            self._bump(conn, collection_id)
            return True

    def roots(self, collection_id: int) -> list[str]:
        """The folders and files of a collection, in the order they were added."""
        return [row["path"] for row in self._read(
            "SELECT path FROM roots WHERE collection_id = ? ORDER BY id", (collection_id,))]

    # -- files ------------------------------------------------------------------------------
    def files(self, collection_id: int) -> list[FileRecord]:
        """Every file of a collection, indexed or unreadable, by path."""
        rows = self._read("SELECT * FROM files WHERE collection_id = ? ORDER BY path",
                          (collection_id,))
        return [FileRecord._from_row(row) for row in rows]

    def unreadable_files(self, collection_id: int) -> list[FileRecord]:
        """The files of a collection that could not be read, each with the reason (``error``)."""
        rows = self._read("SELECT * FROM files WHERE collection_id = ? AND state = 'unreadable' "
                          "ORDER BY path", (collection_id,))
        return [FileRecord._from_row(row) for row in rows]

    def mark_scan(self, collection_id: int, *, finished: bool) -> None:
        """Record that an indexing run began (or ended) now; it shows as the collection's
        state (an unfinished one is "incomplete")."""
        column = "scan_finished" if finished else "scan_started"
        with self._write() as conn:
            if not conn.execute(f"UPDATE collections SET {column} = ? WHERE id = ?",
                                (self._clock(), collection_id)).rowcount:
                raise CollectionNotFound(f"There is no collection {collection_id}.")

    def save_file(self, collection_id: int, path: str, *, size: int, mtime_ns: int, hash: str,
                  kind: str, chunks: Sequence[Chunk], vectors: Matrix, model_id: str,
                  notes: Iterable[str] = ()) -> FileRecord:
        """Index one file: its chunks and their vectors replace whatever it had, all in one
        transaction (a crash leaves the old index of the file or the new, never a mix)."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors.")
        note = "; ".join(notes) or None
        with self._write() as conn:
            file_id = self._upsert(conn, collection_id, path, size, mtime_ns, hash, "indexed",
                                   note, kind, len(chunks), model_id)
            conn.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
            dim = int(vectors.shape[1]) if len(vectors) else 0
            for chunk, vector in zip(chunks, vectors):
                cursor = conn.execute(
                    "INSERT INTO chunks (file_id, ordinal, page, heading, text) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (file_id, chunk.ordinal, chunk.page, chunk.heading, chunk.text))
                conn.execute("INSERT INTO vectors (chunk_id, model_id, dim, vector) "
                             "VALUES (?, ?, ?, ?)", (cursor.lastrowid, model_id, dim,
                                                     to_blob(vector)))
            self._bump(conn, collection_id)
            return self._file(conn, file_id)

    def save_unreadable(self, collection_id: int, path: str, *, size: int, mtime_ns: int,
                        hash: str, reason: str, kind: str | None = None) -> FileRecord:
        """Record that a file cannot be read, and why (its old chunks, if any, go)."""
        with self._write() as conn:
            file_id = self._upsert(conn, collection_id, path, size, mtime_ns, hash,
                                   "unreadable", reason, kind, 0, None)
            conn.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
            self._bump(conn, collection_id)
            return self._file(conn, file_id)

    def _upsert(self, conn: sqlite3.Connection, collection_id: int, path: str, size: int,
                mtime_ns: int, hash: str, state: str, error: str | None, kind: str | None,
                chunks: int, model_id: str | None) -> int:
        self._collection(conn, collection_id)  # a collection deleted meanwhile: stop here
        conn.execute(
            "INSERT INTO files (collection_id, path, size, mtime_ns, hash, state, error, kind, "
            "chunks, model_id, indexed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (collection_id, path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, hash = excluded.hash, state = excluded.state, "
            "error = excluded.error, kind = excluded.kind, chunks = excluded.chunks, "
            "model_id = excluded.model_id, indexed = excluded.indexed",
            (collection_id, path, size, mtime_ns, hash, state, error, kind, chunks, model_id,
             self._clock()))
        return int(conn.execute("SELECT id FROM files WHERE collection_id = ? AND path = ?",
                                (collection_id, path)).fetchone()[0])

    @staticmethod
    def _file(conn: sqlite3.Connection, file_id: int) -> FileRecord:
        row = conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise LookupError(f"There is no file {file_id} in the index.")
        return FileRecord._from_row(row)

    def move_file(self, file_id: int, path: str, *, size: int, mtime_ns: int) -> FileRecord:
        """A file renamed or moved: same content at *path*, chunks and vectors kept."""
        with self._write() as conn:
            record = self._file(conn, file_id)
            # Whatever was recorded at the new path is replaced by the file now there.
            conn.execute("DELETE FROM files WHERE collection_id = ? AND path = ? AND id != ?",
                         (record.collection_id, path, file_id))
            conn.execute("UPDATE files SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                         (path, size, mtime_ns, file_id))
            record = self._file(conn, file_id)
            self._bump(conn, record.collection_id)
            return record

    def touch_file(self, file_id: int, *, size: int, mtime_ns: int) -> None:
        """A file saved again with the same content: only its size and time change."""
        with self._write() as conn:
            conn.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                         (size, mtime_ns, file_id))

    def delete_files(self, file_ids: Sequence[int]) -> int:
        """Take files out of the index (with their chunks and vectors); returns how many."""
        with self._write() as conn:
            collections = set()
            for file_id in file_ids:
                row = conn.execute("SELECT collection_id FROM files WHERE id = ?",
                                   (file_id,)).fetchone()
                if row is not None:
                    collections.add(row[0])
            deleted = self._delete_ids(conn, file_ids)
            for collection_id in collections:
                self._bump(conn, collection_id)
            return deleted

    @staticmethod
    def _delete_ids(conn: sqlite3.Connection, file_ids: Sequence[int]) -> int:
        return sum(conn.execute("DELETE FROM files WHERE id = ?", (file_id,)).rowcount
                   for file_id in file_ids)

    # -- what the search reads -------------------------------------------------------------
    def full_text_ranking(self, collection_id: int, match: str, limit: int) -> list[int]:
        """Chunk ids of a collection matching the FTS5 expression *match*, best BM25 first."""
        with self._snapshot() as conn:
            shared = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM files WHERE collection_id != ? AND chunks > 0)",
                (collection_id,)).fetchone()[0]
            if shared:
                # Other collections' passages are in the index too: each match is looked up
                # to keep this collection's.
                rows = conn.execute(
                    "SELECT chunk_text.rowid AS id FROM chunk_text "
                    "JOIN chunks c ON c.id = chunk_text.rowid JOIN files f ON f.id = c.file_id "
                    "WHERE chunk_text MATCH ? AND f.collection_id = ? "
                    "ORDER BY bm25(chunk_text) LIMIT ?", (match, collection_id, limit))
            else:
                # The collection is the whole index: no lookups, the full-text table alone.
                rows = conn.execute(
                    "SELECT rowid AS id FROM chunk_text WHERE chunk_text MATCH ? "
                    "ORDER BY bm25(chunk_text) LIMIT ?", (match, limit))
            return [row["id"] for row in rows]

    def passage_counts(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """How many passages the whole index holds (all collections, as BM25 counts them), and
        how many hold each of *terms* (tokens as the full-text index keeps them: lower case,
        no diacritics; 0 for one it does not hold). Remembered until the index changes."""
        with self._snapshot() as conn:
            # Any change to a collection's files moves its generation on; a deleted collection
            # lowers the count, a new one raises the highest id.
            state = tuple(conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(generation), 0) "
                "FROM collections").fetchone())
            if state != self._counts_state or len(self._term_counts) > _MAX_TERM_COUNTS:
                self._term_counts.clear()
                self._passages = int(conn.execute(
                    "SELECT COALESCE(SUM(chunks), 0) FROM files").fetchone()[0])
                self._counts_state = (state[0], state[1], state[2])
            counts = {}
            for term in terms:
                if term not in self._term_counts:
                    row = conn.execute("SELECT doc FROM temp.chunk_terms WHERE term = ?",
                                       (term,)).fetchone()
                    self._term_counts[term] = int(row[0]) if row else 0
                counts[term] = self._term_counts[term]
            return self._passages, counts

    def embedding_models(self, collection_id: int) -> dict[str, tuple[int, int]]:
        """The models whose vectors a collection holds: model id -> (dimension, chunks), the
        model with the most chunks last."""
        # Counted from the files, not the vectors: this is asked at every search.
        rows = self._read(
            "SELECT f.model_id AS model, SUM(f.chunks) AS n, "
            " (SELECT v.dim FROM files g JOIN chunks c ON c.file_id = g.id "
            "  JOIN vectors v ON v.chunk_id = c.id WHERE g.collection_id = f.collection_id "
            "  AND g.model_id = f.model_id LIMIT 1) AS dim "
            "FROM files f WHERE f.collection_id = ? AND f.state = 'indexed' AND f.chunks > 0 "
            "GROUP BY f.model_id ORDER BY n", (collection_id,))
        return {row["model"]: (row["dim"], row["n"]) for row in rows if row["dim"]}

    def vectors(self, collection_id: int, model_id: str) -> tuple[Ids, Matrix]:
        """Chunk ids and unit vectors of a collection's chunks embedded by *model_id*; kept in
        memory until the collection changes."""
        with self._snapshot() as conn:
            row = conn.execute("SELECT generation FROM collections WHERE id = ?",
                               (collection_id,)).fetchone()
            if row is None:
                raise CollectionNotFound(f"There is no collection {collection_id}.")
            cached = self._vector_cache.get((collection_id, model_id))
            if cached is not None and cached[0] == row["generation"]:
                return cached[1], cached[2]
            rows = conn.execute(
                "SELECT v.chunk_id, v.dim, v.vector FROM vectors v "
                "JOIN chunks c ON c.id = v.chunk_id JOIN files f ON f.id = c.file_id "
                "WHERE f.collection_id = ? AND v.model_id = ? ORDER BY v.chunk_id",
                (collection_id, model_id)).fetchall()
        # One model id with vectors of two sizes (a model file swapped under the same name):
        # only the size of the newest is usable.
        dim = max(rows, key=lambda r: r["chunk_id"])["dim"] if rows else 0
        rows = [r for r in rows if r["dim"] == dim]
        ids = np.fromiter((r["chunk_id"] for r in rows), dtype=np.int64, count=len(rows))
        matrix = from_blobs([r["vector"] for r in rows], dim)
        with self._lock:
            self._forget_vectors(collection_id)
            self._vector_cache[(collection_id, model_id)] = (row["generation"], ids, matrix)
        return ids, matrix

    def _forget_vectors(self, collection_id: int) -> None:
        with self._lock:
            for key in [key for key in self._vector_cache if key[0] == collection_id]:
                del self._vector_cache[key]

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, StoredChunk]:
        """The chunks with these ids (those that still exist), by id."""
        found: dict[int, StoredChunk] = {}
        for start in range(0, len(chunk_ids), 500):  # SQLite's limit on parameters
            part = [int(i) for i in chunk_ids[start:start + 500]]
            rows = self._read(
                "SELECT c.id, c.file_id, f.path, c.ordinal, c.page, c.heading, c.text "
                "FROM chunks c JOIN files f ON f.id = c.file_id "
                f"WHERE c.id IN ({','.join('?' * len(part))})", part)
            for row in rows:
                found[row["id"]] = StoredChunk(row["id"], row["file_id"], row["path"],
                                               row["ordinal"], row["page"], row["heading"],
                                               row["text"])
        return found

    def file_chunks(self, file_id: int) -> list[StoredChunk]:
        """A file's chunks in order."""
        rows = self._read(
            "SELECT c.id, c.file_id, f.path, c.ordinal, c.page, c.heading, c.text "
            "FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.file_id = ? "
            "ORDER BY c.ordinal", (file_id,))
        return [StoredChunk(row["id"], row["file_id"], row["path"], row["ordinal"],
                            row["page"], row["heading"], row["text"]) for row in rows]
