"""Reading documents: every format's text, pages and headings, and every failure a reason."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from test_docs_samples import (
    OLE_HEADER,
    docx_paragraph,
    docx_table,
    make_docx,
    make_pdf,
    make_zip_bomb_docx,
)

from desktop.core.docs.document import Limits
from desktop.core.docs.parsing import UnreadableDocument, read_document, read_document_bytes


def _reason(data: bytes, name: str, limits: Limits = Limits()) -> str:
    with pytest.raises(UnreadableDocument) as caught:
        read_document_bytes(data, name, limits)
    return caught.value.reason


# -- text and code --------------------------------------------------------------------------------

def test_text_in_utf8_windows_1252_and_utf16(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Crème brûlée — 10 €\r\nsecond line", encoding="utf-8")
    document = read_document(path)
    assert document.kind == "text"
    assert document.sections[0].text == "Crème brûlée — 10 €\nsecond line"
    assert document.sections[0].page is None and document.sections[0].heading is None
    assert read_document_bytes("naïve – café".encode("cp1252"), "a.txt").text == "naïve – café"
    utf16 = codecs.BOM_UTF16_LE + "héllo wörld".encode("utf-16-le")
    assert read_document_bytes(utf16, "a.txt").text == "héllo wörld"


def test_code_and_files_without_a_known_suffix_are_read_as_text() -> None:
    assert "def main" in read_document_bytes(b"def main():\n    return 1\n", "tool.py").text
    assert read_document_bytes(b"all:\n\tmake it", "Makefile").kind == "text"


def test_binary_empty_and_known_formats_are_refused_with_reasons(tmp_path: Path) -> None:
    assert _reason(b"\x7fELF\x02\x01\x00\x00" + bytes(range(256)), "program") \
        == "binary file, not text"
    assert _reason(b"", "empty.txt") == "no text in it"
    assert _reason(b"  \n\n ", "blank.md") == "no text in it"
    assert "old Word format" in _reason(b"anything", "letter.doc")
    assert _reason(b"\x89PNG\r\n", "photo.png").startswith("not a document")
    assert "rename it" in _reason(make_pdf(["hi"]), "report.bin.txt")
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    with pytest.raises(UnreadableDocument, match="a folder"):
        read_document(folder)
    with pytest.raises(UnreadableDocument, match="not found"):
        read_document(tmp_path / "gone.txt")


def test_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"x" * (3 * 1024 * 1024))
    with pytest.raises(UnreadableDocument, match="larger than 2 MB"):
        read_document(path, Limits(max_bytes=2 * 1024 * 1024))
    with pytest.raises(UnreadableDocument, match="more than 1,000 characters"):
        read_document(path, Limits(max_chars=1000))


# -- Markdown --------------------------------------------------------------------------------------

def test_markdown_headings_become_a_trail_and_code_fences_are_not_headings() -> None:
    text = ("---\ntitle: front matter\n---\nIntro text.\n\n# Install\nGet it.\n\n## On Linux\n"
            "Use apt.\n```sh\n# not a heading\napt install x\n```\n\nUsage\n=====\nRun it.\n"
            "### Deep\nDeeper.\n")
    document = read_document_bytes(text.encode(), "README.md")
    headings = [section.heading for section in document.sections]
    assert headings == [None, "Install", "Install › On Linux", "Usage", "Usage › Deep"]
    linux = document.sections[2]
    assert "# not a heading" in linux.text and linux.text.startswith("## On Linux")
    assert "title: front matter" in document.sections[0].text


# -- HTML ---------------------------------------------------------------------------------------

def test_html_visible_text_headings_and_title() -> None:
    page = b"""<!DOCTYPE html><html><head><meta charset="windows-1252"><title>The Page</title>
    <style>body { color: red }</style><script>var secret = "no";</script></head>
    <body><nav>Menu</nav><h1>Caf\xe9 guide</h1><p>Open <b>daily</b> &amp; late.</p>
    <div hidden>hidden text</div><div style="display: none">also hidden</div>
    <h2>Prices</h2><table><tr><th>Item</th><th>Price</th></tr><tr><td>Tea</td><td>3</td></tr>
    </table><noscript>enable js</noscript><p>Line<br>break</p></body></html>"""
    document = read_document_bytes(page, "guide.html")
    assert document.title == "The Page"
    text = document.text
    for absent in ("secret", "color: red", "hidden text", "also hidden", "enable js"):
        assert absent not in text
    assert "Open daily & late." in text and "Café guide" in text
    assert "Item | Price" in text and "Tea | 3" in text
    assert "Line\nbreak" in text
    assert [s.heading for s in document.sections] == [None, "Café guide",
                                                      "Café guide › Prices"]


def test_html_with_head_left_open_and_broken_markup_is_still_read() -> None:
    page = b"<html><head><title>t</title><body><p>kept text<h1>Head<p>after <![if x]> ok"
    document = read_document_bytes(page, "x.htm")
    assert "kept text" in document.text and "after" in document.text


# -- DOCX -------------------------------------------------------------------------------------

def test_docx_paragraphs_headings_from_styles_and_tables() -> None:
    body = (docx_paragraph("Preface words.") + docx_paragraph("Budget", "berschrift1")
            + docx_paragraph("The budget is tight.")
            + docx_paragraph("Travel", "berschrift2")
            + docx_table([["City", "Cost"], ["Oslo", "1200"]])
            + '<w:sdt><w:sdtContent>' + docx_paragraph("Inside a content control.")
            + "</w:sdtContent></w:sdt>")
    document = read_document_bytes(make_docx(body), "plan.docx")
    assert document.kind == "docx"
    assert [(s.heading, s.page) for s in document.sections] == [
        (None, None), ("Budget", None), ("Budget › Travel", None)]
    travel = document.sections[2].text
    assert "City | Cost" in travel and "Oslo | 1200" in travel
    assert "Inside a content control." in travel


def test_docx_failures_have_reasons() -> None:
    assert _reason(b"plain text", "a.docx").startswith("not a DOCX (not a zip archive")
    assert _reason(make_docx("", document_xml=None, extra={})[:200], "a.docx").startswith(
        ("not a DOCX", "damaged DOCX"))
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/other.xml", "<x/>")
    assert _reason(buffer.getvalue(), "a.docx") == "not a DOCX (no word/document.xml)"
    assert _reason(OLE_HEADER, "secret.docx").startswith("encrypted DOCX")
    assert "zip bomb" in _reason(make_zip_bomb_docx(80), "bomb.docx")
    assert "zip bomb" in _reason(make_zip_bomb_docx(3), "bomb.docx",
                                 Limits(max_xml_bytes=2 * 1024 * 1024))
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
              b"<w:document>&lol;</w:document>")
    assert "DTD" in _reason(make_docx("", document_xml=laughs), "a.docx")
    assert "not valid XML" in _reason(make_docx("", document_xml=b"<w:document><w:body>"),
                                      "a.docx")


# -- PDF -----------------------------------------------------------------------------------------

def test_pdf_pages_are_numbered_and_bookmarks_give_headings() -> None:
    data = make_pdf(["Cover page", "Chapter one text\nmore of it", "Chapter two text"],
                    outline=[("One", 1), ("Two", 2)])
    document = read_document_bytes(data, "book.pdf")
    assert [(s.page, s.heading) for s in document.sections] == [(1, None), (2, "One"),
                                                                 (3, "Two")]
    assert "Chapter one text\nmore of it" in document.sections[1].text


def test_pdf_failures_have_reasons() -> None:
    data = make_pdf(["secret text"], password="pw")
    assert _reason(data, "locked.pdf") == "encrypted PDF (needs a password)"
    assert _reason(b"<html>", "fake.pdf") == "not a PDF (no %PDF header)"
    assert _reason(make_pdf(["one", "two", "three"]), "long.pdf", Limits(max_pages=2)) \
        == "has more than 2 pages (3)"
    truncated = make_pdf(["some words"])[:60]
    assert _reason(truncated, "cut.pdf").startswith("damaged PDF")
    assert _reason(make_pdf([""]), "scan.pdf").startswith("no text in this PDF")


def test_a_pdf_with_an_empty_user_password_opens() -> None:
    document = read_document_bytes(make_pdf(["open to all"], password=""), "open.pdf")
    assert "open to all" in document.text
