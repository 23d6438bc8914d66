"""Indexing real folders with a real embedding model (all-MiniLM-L6-v2 through llama.cpp) and
searching them: the right file first, changes followed, unreadable files listed, pause and
cancel, and a kill -9 in the middle that costs nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_docs_samples import (
    MODEL_ID,
    OLE_HEADER,
    Embedder,
    docx_paragraph,
    make_docx,
    make_pdf,
    make_zip_bomb_docx,
)

from desktop.core.docs.document import Limits
from desktop.core.docs.indexer import Indexer, IndexProgress
from desktop.core.docs.search import fit_to_context, prompt_with_sources, search
from desktop.core.docs.store import DocStore

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def embedder(minilm_gguf: Path) -> Iterator[Embedder]:
    model = Embedder(minilm_gguf)
    yield model
    model.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DocStore]:
    with DocStore(tmp_path / "docs.sqlite3") as opened:
        yield opened


FILLER = ("This paragraph is here to give the file some body, about nothing in particular: "
          "weather, schedules, and the ordinary business of a week. ")


def write_mixed_folder(root: Path) -> dict[str, Path]:
    """Six files of six formats, each holding one fact no other file has."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "txt": root / "notes.txt",
        "md": root / "guide.md",
        "py": root / "billing.py",
        "html": root / "recipes.html",
        "docx": root / "plan.docx",
        "pdf": root / "observatory.pdf",
    }
    files["txt"].write_text(FILLER * 3 + "\n\nThe spare key to the garden shed is hidden under "
                            "the blue flowerpot by the gate.\n\n" + FILLER * 2)
    files["md"].write_text("# Travel\n\n" + FILLER + "\n\n## Passport\n\nRenewing a passport "
                           "takes six weeks at the embassy in Lisbon.\n\n## Luggage\n\n"
                           + FILLER)
    files["py"].write_text('"""Invoices."""\n\n\ndef compute_invoice_total(items):\n'
                           '    """Sum the line items and add the 7.5 percent VAT surcharge."""'
                           '\n    return sum(items) * 1.075\n')
    files["html"].write_text("<html><head><title>Kitchen</title><script>var x = 1;</script>"
                             "</head><body><h1>Recipes</h1><h2>Bread</h2><p>Knead the "
                             "sourdough for twelve minutes before the dough proofs overnight."
                             f"</p><h2>Soup</h2><p>{FILLER}</p></body></html>")
    files["docx"].write_bytes(make_docx(
        docx_paragraph("Budget", "berschrift1") + docx_paragraph(FILLER)
        + docx_paragraph("The marketing budget for next year is 48,000 euros.")))
    files["pdf"].write_bytes(make_pdf(
        ["Annual report of the astronomy club.\n" + FILLER[:80],
         "The telescope at the observatory recorded a bright comet",
         "Closing remarks and thanks to members."],
        outline=[("Observations", 1)]))
    return files


QUESTIONS = [
    ("Where is the key for the shed?", "txt"),
    ("How long does it take to renew my passport?", "md"),
    ("Which function adds VAT to an invoice?", "py"),
    ("How long should sourdough be kneaded?", "html"),
    ("How much money is planned for marketing?", "docx"),
    ("Did the telescope see a comet?", "pdf"),
]


def _index(store: DocStore, embed: Embedder, root: Path, **options: object) -> int:
    collection = store.create_collection(root.name)
    store.add_root(collection.id, root)
    Indexer(store, embed, MODEL_ID, **options).run(collection.id)  # type: ignore[arg-type]
    return collection.id


def test_each_question_finds_the_one_file_that_answers_it(store: DocStore, embedder: Embedder,
                                                          tmp_path: Path) -> None:
    files = write_mixed_folder(tmp_path / "mixed")
    collection_id = _index(store, embedder, tmp_path / "mixed")
    collection = store.collection(collection_id)
    assert (collection.files, collection.unreadable, collection.state) == (6, 0, "indexed")
    by_meaning_first = 0
    for question, kind in QUESTIONS:
        hits = search(store, collection_id, question, embedder, top_k=5)
        assert hits[0].path == str(files[kind]), (question, [h.path for h in hits])
        by_meaning_first += hits[0].vector_rank == 1
    # The embeddings alone put the right passage first for nearly every question.
    assert by_meaning_first >= 5
    [pdf_hit] = [h for h in search(store, collection_id, "comet telescope", embedder, 3)
                 if h.path.endswith(".pdf")][:1]
    assert (pdf_hit.page, pdf_hit.heading) == (2, "Observations")
    md_hit = search(store, collection_id, "passport renewal Lisbon", embedder, 1)[0]
    assert md_hit.heading == "Travel › Passport" and md_hit.fts_rank == 1
    prompt = prompt_with_sources(fit_to_context(
        search(store, collection_id, "comet", embedder, 8), lambda t: len(t) // 4, 300))
    assert prompt.count("[1] observatory.pdf, page 2 — Observations") == 1


def test_edits_deletions_and_renames_are_followed(store: DocStore, embedder: Embedder,
                                                  tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    files = write_mixed_folder(root)
    collection_id = _index(store, embedder, root)
    before = {f.path: f for f in store.files(collection_id)}
    renamed_to = root / "budget-2026.docx"
    docx_chunks = store.file_chunks(before[str(files["docx"])].id)
    conn = sqlite3.connect(store.path)
    try:
        vectors_before = conn.execute(
            "SELECT chunk_id, vector FROM vectors WHERE chunk_id IN (%s) ORDER BY chunk_id"
            % ",".join(str(c.id) for c in docx_chunks)).fetchall()
    finally:
        conn.close()

    files["txt"].write_text("The spare key to the garden shed now hangs on the hook behind the "
                            "red kitchen door.")
    files["html"].unlink()
    files["docx"].rename(renamed_to)
    os.utime(files["md"])  # saved again, same content
    embedded = embedder.texts
    report = Indexer(store, embedder, MODEL_ID).run(collection_id)
    assert (report.new, report.changed, report.deleted, report.renamed, report.unchanged) == \
        (0, 1, 1, 1, 3)
    assert embedder.texts - embedded == 1  # only the edited file's one chunk
    moved = {f.path: f for f in store.files(collection_id)}[str(renamed_to)]
    assert moved.id == before[str(files["docx"])].id
    conn = sqlite3.connect(store.path)
    try:
        vectors_after = conn.execute(
            "SELECT chunk_id, vector FROM vectors WHERE chunk_id IN (%s) ORDER BY chunk_id"
            % ",".join(str(c.id) for c in docx_chunks)).fetchall()
    finally:
        conn.close()
    assert vectors_after == vectors_before and len(vectors_after) == len(docx_chunks)

    assert search(store, collection_id, "Where is the shed key?", embedder, 1)[0].text \
        .endswith("red kitchen door.")
    assert all("flowerpot" not in h.text for h in search(store, collection_id, "flowerpot",
                                                         embedder, 10))
    assert all(not h.path.endswith(".html") for h in search(store, collection_id,
                                                            "sourdough", embedder, 10))
    assert search(store, collection_id, "marketing budget", embedder, 1)[0].path \
        == str(renamed_to)
    again = Indexer(store, embedder, MODEL_ID).run(collection_id)
    assert (again.new, again.changed, again.deleted, again.renamed, again.unchanged) == \
        (0, 0, 0, 0, 5)
    assert len(_check_consistent(store.path)) == 5


def test_unreadable_files_are_listed_with_their_reasons(store: DocStore, embedder: Embedder,
                                                        tmp_path: Path) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    (root / "fine.txt").write_text("A readable note about lighthouses.")
    (root / "blob.dat").write_bytes(bytes(range(256)) * 8)
    (root / "broken.pdf").write_bytes(make_pdf(["cut short"])[:70])
    (root / "locked.docx").write_bytes(OLE_HEADER)
    (root / "bomb.docx").write_bytes(make_zip_bomb_docx(3))
    (root / "empty.md").write_text("")
    collection = store.create_collection("Odd")
    store.add_root(collection.id, root)
    indexer = Indexer(store, embedder, MODEL_ID, limits=Limits(max_xml_bytes=2 * 1024 * 1024))
    report = indexer.run(collection.id)
    assert (report.new, report.unreadable) == (1, 5)
    reasons = {Path(f.path).name: f.error for f in store.unreadable_files(collection.id)}
    assert reasons["blob.dat"] == "binary file, not text"
    assert (reasons["broken.pdf"] or "").startswith("damaged PDF")
    assert (reasons["locked.docx"] or "").startswith("encrypted DOCX")
    assert "zip bomb" in (reasons["bomb.docx"] or "")
    assert reasons["empty.md"] == "no text in it"
    assert store.collection(collection.id).unreadable == 5
    assert indexer.run(collection.id).unreadable == 0  # not tried again until they change


def test_another_embedding_model_means_embedding_again(store: DocStore, embedder: Embedder,
                                                       tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    write_mixed_folder(root)
    collection_id = _index(store, embedder, root)
    report = Indexer(store, embedder, "another-model").run(collection_id)
    assert report.changed == 6
    assert set(store.embedding_models(collection_id)) == {"another-model"}


def _many_files(root: Path, count: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (root / f"file{n:03}.txt").write_text(
            "\n\n".join(f"File {n}, paragraph {p}: " + FILLER * 4 for p in range(2)))


def test_pause_resume_and_cancel(store: DocStore, embedder: Embedder, tmp_path: Path) -> None:
    root = tmp_path / "many"
    _many_files(root, 12)
    collection = store.create_collection("Many")
    store.add_root(collection.id, root)
    indexer = Indexer(store, embedder, MODEL_ID, batch_size=1)
    seen: list[IndexProgress] = []
    paused = threading.Event()

    def progress(state: IndexProgress) -> None:
        seen.append(state)
        if state.phase == "indexing" and state.files_done == 2 and not seen[-2].paused \
                and not paused.is_set():
            indexer.pause()
        if state.paused:
            paused.set()

    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(indexer.run(collection.id,
                                                                       progress)))
    worker.start()
    assert paused.wait(60)
    texts = embedder.texts
    worker.join(0.5)
    assert worker.is_alive() and embedder.texts == texts  # nothing embedded while paused
    indexer.resume()
    worker.join(120)
    assert not worker.is_alive()
    report = result[0]
    assert getattr(report, "new") == 12 and not getattr(report, "cancelled")
    indexing = [s for s in seen if s.phase == "indexing"]
    assert indexing[-1].files_total == 12 and indexing[-1].files_done == 12
    assert any(s.seconds_left is not None for s in indexing)
    assert seen[-1].phase == "finished"

    # Cancel a run over the same folder after three more files changed.
    for n in range(3):
        (root / f"file{n:03}.txt").write_text(f"Changed file {n}. " + FILLER * 20)
    cancelling = Indexer(store, embedder, MODEL_ID, batch_size=1)

    def cancel_after_one(state: IndexProgress) -> None:
        if state.phase == "indexing" and state.files_done == 1:
            cancelling.cancel()

    report = cancelling.run(collection.id, cancel_after_one)
    assert report.cancelled and report.changed == 1
    assert store.collection(collection.id).state == "incomplete"
    report = Indexer(store, embedder, MODEL_ID).run(collection.id)
    assert (report.changed, report.unchanged, report.cancelled) == (2, 10, False)
    assert store.collection(collection.id).state == "indexed"


_CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_docs_samples import MODEL_ID, Embedder
from desktop.core.docs.indexer import Indexer
from desktop.core.docs.store import DocStore

store = DocStore(sys.argv[2]).open()
embed = Embedder(Path(sys.argv[3]))
def progress(state):
    print(json.dumps({"phase": state.phase, "done": state.files_done}), flush=True)
Indexer(store, embed, MODEL_ID, batch_size=2).run(int(sys.argv[4]), progress)
print(json.dumps({"phase": "exit"}), flush=True)
"""


def _check_consistent(path: Path) -> dict[str, int]:
    """Every file's chunks are whole (ordinals 0..n-1, one vector each) and the full-text
    index matches the chunks; returns chunks per file."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO chunk_text (chunk_text) VALUES ('integrity-check')")
        per_file = {}
        for file_id, name, count in conn.execute("SELECT id, path, chunks FROM files"):
            ordinals = [row[0] for row in conn.execute(
                "SELECT ordinal FROM chunks WHERE file_id = ? ORDER BY ordinal", (file_id,))]
            assert ordinals == list(range(count)), name
            vectors = conn.execute("SELECT COUNT(*) FROM vectors v JOIN chunks c ON "
                                   "c.id = v.chunk_id WHERE c.file_id = ?",
                                   (file_id,)).fetchone()[0]
            assert vectors == count, name
            per_file[Path(name).name] = count
        # The full-text index lists exactly the chunks there are (its own list of rows).
        conn.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, chunk_text, "
                     "'instance')")
        indexed = {row[0] for row in conn.execute("SELECT DISTINCT doc FROM temp.terms")}
        chunk_ids = {row[0] for row in conn.execute("SELECT id FROM chunks")}
        assert indexed == chunk_ids and len(chunk_ids) == sum(per_file.values())
        return per_file
    finally:
        conn.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no kill -9 on this system")
def test_a_kill_9_mid_indexing_loses_nothing_and_duplicates_nothing(
        embedder: Embedder, tmp_path: Path, minilm_gguf: Path) -> None:
    root = tmp_path / "many"
    _many_files(root, 40)
    database = tmp_path / "docs.sqlite3"
    with DocStore(database) as store:
        collection = store.create_collection("Many")
        store.add_root(collection.id, root)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(TESTS), str(database), str(minilm_gguf),
         str(collection.id)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    try:
        for line in child.stdout:
            state = json.loads(line)
            if state["phase"] == "indexing" and state["done"] >= 5:
                break
        else:
            pytest.fail("the child ended before it indexed five files")
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    done_before = _check_consistent(database)
    assert 5 <= len(done_before) < 40
    with DocStore(database) as store:
        assert store.collection(collection.id).state == "incomplete"
        report = Indexer(store, embedder, MODEL_ID).run(collection.id)
        assert report.new == 40 - len(done_before) and report.unchanged == len(done_before)
        assert store.collection(collection.id).state == "indexed"
    per_file = _check_consistent(database)
    assert sorted(per_file) == [f"file{n:03}.txt" for n in range(40)]
    for name, count in done_before.items():
        assert per_file[name] == count
