"""Malformed documents of every format and odd search queries, from a fixed seed: each bad
file is read or refused with a reason (nothing else raises, nothing hangs), and the rest of
the index stays as it was."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_docs_samples import MODEL_ID, Embedder, docx_paragraph, docx_table, make_docx, make_pdf

from desktop.core.docs.chunking import chunk_document
from desktop.core.docs.document import Document, Limits, Section
from desktop.core.docs.indexer import Indexer
from desktop.core.docs.parsing import UnreadableDocument, read_document_bytes
from desktop.core.docs.search import search
from desktop.core.docs.store import DocStore

SEED = 20261206
LIMITS = Limits(max_bytes=4 * 1024 * 1024, max_xml_bytes=4 * 1024 * 1024, max_seconds=10)
ODD_TEXT = ["\x00", "\ufeff", "\u202e", "\u0301", "🦀", "\U0010ffff", "\ud800", "\r", "\x1b[31m",
            "ﷺ", "𒐫", "\u200d", "\t", "\n\n", "　", "\\", '"', "<", "&", "#", "`", "*"]


def _odd_string(rng: random.Random, length: int) -> str:
    pieces = []
    for _ in range(length):
        roll = rng.random()
        if roll < 0.3:
            pieces.append(rng.choice(ODD_TEXT))
        elif roll < 0.6:
            pieces.append(chr(rng.randrange(0x20, 0x3000)))
        else:
            pieces.append(rng.choice("abcdefgh ijklmnop qrstu vwxyz.,!?"))
    return "".join(pieces)


def _encode(text: str, rng: random.Random) -> bytes:
    encoding = rng.choice(["utf-8", "utf-16", "cp1252", "latin-1", "utf-8-sig"])
    return text.encode(encoding, errors="surrogatepass" if encoding.startswith("utf") else
                       "replace")


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """Truncate, flip bytes, or splice random bytes into *data*."""
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        roll = rng.random()
        if roll < 0.35 and data:
            del data[rng.randrange(len(data)):]
        elif roll < 0.7 and data:
            for _ in range(rng.randrange(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randrange(1, 200))
    return bytes(data)


def _text(rng: random.Random) -> tuple[bytes, str]:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 3000)), rng.choice(["a.txt", "b.py", "README"])
    if kind == 1:  # one huge line
        return ("x" * rng.randrange(100_000, 400_000)).encode(), "line.log"
    return _encode(_odd_string(rng, rng.randrange(0, 2000)), rng), rng.choice(["c.txt", "d.rs"])


def _markdown(rng: random.Random) -> tuple[bytes, str]:
    parts = ["# ", "## ", "######## ", "```", "~~~", "---", "===", "\n", "\n\n", "    ",
             "- item", "[link](", "<div>", "front: matter", "Title\n====="]
    text = "".join(rng.choice(parts) + _odd_string(rng, rng.randrange(0, 30))
                   for _ in range(rng.randrange(1, 200)))
    return _encode(text, rng), "notes.md"


def _html(rng: random.Random) -> tuple[bytes, str]:
    parts = ["<", ">", "</", "<!", "<![", "<![CDATA[", "<!--", "-->", "<?", "<script>",
             "</script>", "<style>", "<h1>", "</h1>", "<h9>", "<p>", "<br/>", "<td>", "<pre>",
             "&#", "&#x110000;", "&#0;", "&amp", "&unknown;", "<div hidden>", "</div>",
             '<a href="', "'", '"', "=", "<meta charset=\"", "bogus-charset\">", "<head>",
             "<body>", "<title>", "<svg>", "<![if !IE]>", "<!DOCTYPE", "<html"]
    text = "".join(rng.choice(parts) + _odd_string(rng, rng.randrange(0, 20))
                   for _ in range(rng.randrange(1, 300)))
    if rng.random() < 0.3:
        text = "<div>" * rng.randrange(1000, 6000) + "deep" + "</div>" * 10
    return _encode(text, rng), rng.choice(["page.html", "page.htm"])


def _docx(rng: random.Random) -> tuple[bytes, str]:
    kind = rng.randrange(5)
    good = make_docx(docx_paragraph("Heading", "berschrift1") + docx_paragraph("Body text")
                     + docx_table([["a", "b"]]))
    if kind == 0:
        return _mutate(good, rng), "m.docx"
    if kind == 1:
        return rng.randbytes(rng.randrange(0, 2000)), "r.docx"
    if kind == 2:  # bad XML inside a good zip
        xml = _odd_string(rng, rng.randrange(0, 500)).encode("utf-8", "surrogatepass")
        return make_docx("", document_xml=b"<w:document>" + xml), "x.docx"
    if kind == 3:  # tables nested very deep
        depth = rng.randrange(30, 300)
        body = "<w:tbl><w:tr><w:tc>" * depth + docx_paragraph("deep") \
            + "</w:tc></w:tr></w:tbl>" * depth
        return make_docx(body), "deep.docx"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("word/document.xml", rng.randbytes(rng.randrange(0, 500)))
        archive.writestr("word/styles.xml", _mutate(b"<w:styles/>", rng))
    return buffer.getvalue(), "s.docx"


def _pdf(rng: random.Random) -> tuple[bytes, str]:
    good = make_pdf([_odd_string(rng, 40).encode("latin-1", "replace").decode("latin-1"),
                     "second page"], outline=[("Part", 1)] if rng.random() < 0.3 else ())
    kind = rng.randrange(3)
    if kind == 0:
        return _mutate(good, rng), "m.pdf"
    if kind == 1:
        return b"%PDF-1.7\n" + rng.randbytes(rng.randrange(0, 3000)), "r.pdf"
    # Objects that point at themselves, and a page tree that loops.
    looped = good.replace(b"/Kids [3 0 R", b"/Kids [2 0 R 3 0 R").replace(b"/Parent 2 0 R",
                                                                         b"/Parent 3 0 R")
    return _mutate(looped, rng) if rng.random() < 0.5 else looped, "loop.pdf"


MAKERS: list[Callable[[random.Random], tuple[bytes, str]]] = [_text, _markdown, _html, _docx,
                                                               _pdf]


def _inputs(count: int) -> Iterator[tuple[bytes, str]]:
    rng = random.Random(SEED)
    for index in range(count):
        yield MAKERS[index % len(MAKERS)](rng)


def _read(data: bytes, name: str) -> Document | str:
    try:
        document = read_document_bytes(data, name, LIMITS)
    except UnreadableDocument as exc:
        assert isinstance(exc.reason, str) and exc.reason.strip(), name
        return exc.reason
    assert all(isinstance(s, Section) and isinstance(s.text, str) for s in document.sections)
    # Whatever was read can be chunked and stored (no lone surrogates, no NUL).
    for chunk in chunk_document(document):
        chunk.text.encode("utf-8")
        assert "\x00" not in chunk.text
    return document


@pytest.mark.timeout(120)
def test_malformed_documents_are_read_or_refused_with_a_reason() -> None:
    outcomes = {"read": 0, "refused": 0}
    for data, name in _inputs(400):
        result = _read(data, name)
        outcomes["read" if isinstance(result, Document) else "refused"] += 1
    assert outcomes["read"] > 50 and outcomes["refused"] > 50


@pytest.fixture(scope="module")
def embedder(minilm_gguf: Path) -> Iterator[Embedder]:
    model = Embedder(minilm_gguf)
    yield model
    model.close()


@pytest.mark.timeout(240)
def test_bad_files_and_odd_queries_leave_the_rest_of_the_index_intact(
        tmp_path: Path, embedder: Embedder) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    (root / "good.md").write_text("# Lighthouses\n\nThe lighthouse keeper logs the fog horn "
                                  "every night at nine.")
    rng = random.Random(SEED + 1)
    names = []
    for index, (data, name) in enumerate(_inputs(40)):
        if len(data) > 5_000:
            data = data[:5_000]  # keeps the embedding of what is readable short
        path = root / f"{index:02}-{name}"
        path.write_bytes(data)
        names.append(path.name)
    with DocStore(tmp_path / "docs.sqlite3") as store:
        collection = store.create_collection("Fuzz")
        store.add_root(collection.id, root)
        Indexer(store, embedder, MODEL_ID, limits=LIMITS).run(collection.id)
        records = {Path(f.path).name: f for f in store.files(collection.id)}
        assert set(records) == {"good.md", *names}  # every file indexed or listed
        assert all(f.state == "indexed" or (f.error or "").strip() for f in records.values())
        good = store.file_chunks(records["good.md"].id)
        queries = [_odd_string(rng, rng.randrange(0, 60)) for _ in range(40)]
        queries += ['"unclosed', "NEAR(x y, 2)", "a AND", "OR OR", "title:x", "x*", "^", "-"]
        for query in queries:
            hits = search(store, collection.id, query, embedder, top_k=5)
            assert len(hits) <= 5
        top = search(store, collection.id, "When is the fog horn logged?", embedder, 3)
        assert top[0].path.endswith("good.md")
        assert store.file_chunks(records["good.md"].id) == good


def _raw_pdf(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


_STREAM = b"BT /F1 12 Tf 72 720 Td (hello) Tj ET"
_LOOPED = [
    b"<< /Type /Catalog /Pages 2 0 R /Outlines 6 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >>"
    b" >> /Contents 4 0 R >>",
    b"<< /Length %d >>\nstream\n" % len(_STREAM) + _STREAM + b"\nendstream",
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    b"<< /Type /Outlines /First 7 0 R /Last 8 0 R /Count 2 >>",
    b"<< /Title (A) /Parent 6 0 R /Next 8 0 R /Dest [3 0 R /Fit] >>",
    # A bookmark that is its own next, and the parent of the first.
    b"<< /Title (B) /Parent 6 0 R /Next 8 0 R /First 7 0 R /Dest [3 0 R /Fit] >>",
]
_KIDS_LOOP = [_LOOPED[0], b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>", *_LOOPED[2:]]


# Inputs that a careless pattern or parser would take minutes or hours over (time quadratic in
# their length); the timeout turns such a hang into a failure.
PATHOLOGICAL = [
    ("dots.txt", b"." * 300_000 + b"x"),
    ("heading.md", b"# a" + b" \t" * 150_000 + b"#x"),
    ("pre.html", b"<pre>" + b" " * 300_000 + b"x</pre>"),
    ("stray.html", b"<div>" * 4000 + b"</p>" * 200_000),
    ("deep.html", b"<div>" * 100_000 + b"x"),
    ("word.txt", b"x" * 2_000_000),
    ("spaces.txt", b" " * 1_000_000 + b"x"),
    ("outline-loop.pdf", _raw_pdf(_LOOPED)),
    ("pages-loop.pdf", _raw_pdf(_KIDS_LOOP)),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "data"), PATHOLOGICAL, ids=[n for n, _ in PATHOLOGICAL])
def test_pathological_inputs_do_not_hang(name: str, data: bytes) -> None:
    _read(data, name)
