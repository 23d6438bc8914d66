"""Documents of every format the index reads, built in the tests (a PDF written by hand, a DOCX
zipped from its XML), and the real embedding model the index and search tests use."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

# -- PDF ------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    return b"(" + text.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(") \
        .replace(b")", b"\\)") + b")"


def make_pdf(pages: Sequence[str], *, outline: Sequence[tuple[str, int]] = (),
             password: str | None = None) -> bytes:
    """A text PDF, one page per string (lines at 14 points), written object by object.

    *outline* adds bookmarks (title, page index) and *password* encrypts it, both with pypdf.
    """
    objects: list[bytes] = []
    count = len(pages)
    font = 3 + 2 * count
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode())
    for index, text in enumerate(pages):
        lines = [b"BT /F1 12 Tf 14 TL 72 720 Td"]
        lines += [_pdf_string(line) + b" Tj T*" for line in text.split("\n")]
        lines.append(b"ET")
        stream = b"\n".join(lines)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                       f"<< /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * index} 0 R >>"
                       .encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    if not outline and password is None:
        return bytes(out)
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(out))))
    for title, page in outline:
        writer.add_outline_item(title=title, page_number=page)
    if password is not None:
        writer.encrypt(user_password=password, owner_password=password + "-owner",
                       algorithm="RC4-128")
    result = io.BytesIO()
    writer.write(result)
    return result.getvalue()


# -- DOCX ----------------------------------------------------------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships'
    '+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
# Style ids as a German Word writes them: the heading is known by its name and outline level.
_STYLES = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles xmlns:w="{_W}">'
    '<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/>'
    '<w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>'
    '<w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/>'
    '<w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>'
    '<w:style w:type="paragraph" w:styleId="Normal"><w:name w:val="Normal"/></w:style>'
    '</w:styles>')


def docx_paragraph(text: str, style: str | None = None) -> str:
    """One w:p element (*style*: "berschrift1", "berschrift2" or None)."""
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{props}<w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'


def docx_table(rows: Sequence[Sequence[str]]) -> str:
    """One w:tbl element."""
    cells = "".join("<w:tr>" + "".join(f"<w:tc>{docx_paragraph(cell)}</w:tc>" for cell in row)
                    + "</w:tr>" for row in rows)
    return f"<w:tbl>{cells}</w:tbl>"


def make_docx(body: str, *, extra: dict[str, bytes] | None = None,
              document_xml: bytes | None = None) -> bytes:
    """A DOCX whose body is *body* (w:p and w:tbl elements), zipped as Word does."""
    xml = document_xml if document_xml is not None else (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}">'
        f"<w:body>{body}</w:body></w:document>").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("word/document.xml", xml)
        archive.writestr("word/styles.xml", _STYLES)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_zip_bomb_docx(megabytes: int = 80) -> bytes:
    """A DOCX whose document.xml unpacks to *megabytes* of XML from a few hundred KB."""
    filler = b"<w:p><w:r><w:t>" + b"a" * (megabytes * 2**20) + b"</w:t></w:r></w:p>"
    xml = (f'<w:document xmlns:w="{_W}"><w:body>'.encode() + filler
           + b"</w:body></w:document>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", xml)
    return buffer.getvalue()


OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504  # an encrypted Office file


# -- the embedding model -----------------------------------------------------------------------

class Embedder:
    """all-MiniLM-L6-v2 run by llama.cpp, called as the index's embedding function; counts the
    texts it embeds so a test can tell what was embedded again."""

    def __init__(self, path: Path) -> None:
        from desktop.engine import amx

        amx.keep_out()  # as the engine does (see desktop.engine.amx)
        import llama_cpp

        self.model: Any = llama_cpp.Llama(
            model_path=str(path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, n_threads=1, verbose=False)
        self.texts = 0

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return [list(v) for v in self.model.embed(texts, normalize=True, truncate=True)]

    def close(self) -> None:
        self.model.close()


MODEL_ID = "all-MiniLM-L6-v2"


# -- the builders are right ------------------------------------------------------------------

def test_the_handmade_pdf_is_a_pdf_pypdf_reads() -> None:
    from pypdf import PdfReader

    data = make_pdf(["first page\nsecond line (with parens)", "page two"],
                    outline=[("Intro", 0)])
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 2
    assert "second line (with parens)" in reader.pages[0].extract_text()
    assert reader.outline[0].title == "Intro"


def test_the_docx_is_a_zip_with_word_xml() -> None:
    data = make_docx(docx_paragraph("Hello", "berschrift1") + docx_table([["a", "b"]]))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {"word/document.xml", "word/styles.xml"} <= set(archive.namelist())


def test_the_embedding_model_tells_near_from_far(minilm_gguf: Path) -> None:
    embed = Embedder(minilm_gguf)
    try:
        cat, feline, revenue = np.asarray(embed(["The cat sits on the mat.",
                                                 "A feline rests on a rug.",
                                                 "Quarterly revenue grew by ten percent."]))
    finally:
        embed.close()
    assert cat.shape == (384,)
    assert cat @ feline > cat @ revenue + 0.3
