"""Reading one file into a :class:`Document`, whatever its format, or saying why it cannot be.

The format comes from the file's name and is checked against its content. Every failure is an
:class:`UnreadableDocument` whose reason is shown to the user beside the file; nothing else
escapes, so one bad file never stops the indexing of the others.
"""

from __future__ import annotations

import os
from pathlib import Path

from desktop.core.docs.document import (
    MB,
    Deadline,
    Document,
    Limits,
    Section,
    TextBudget,
    UnreadableDocument,
)
from desktop.core.docs.docx_reader import read_docx
from desktop.core.docs.html_reader import read_html
from desktop.core.docs.pdf_reader import read_pdf
from desktop.core.docs.text_reader import looks_binary, read_markdown, read_plain

__all__ = ["Document", "Limits", "Section", "UnreadableDocument", "document_kind",
           "read_document", "read_document_bytes"]

MARKDOWN = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})
HTML = frozenset({".html", ".htm", ".xhtml"})
DOCX = frozenset({".docx", ".docm", ".dotx"})
PDF = frozenset({".pdf"})
# Formats people keep documents in that are not read (yet): said so by name, not as "binary".
_NOT_READ = {
    ".doc": "old Word format (.doc): save it as .docx to index it",
    ".rtf": "RTF is not read yet: save it as .docx or text to index it",
    ".odt": "OpenDocument text is not read yet: save it as .docx to index it",
    ".pages": "Pages documents are not read: export it as .docx or PDF to index it",
    ".xlsx": "spreadsheets are not read yet", ".xls": "spreadsheets are not read yet",
    ".ods": "spreadsheets are not read yet",
    ".pptx": "presentations are not read yet", ".ppt": "presentations are not read yet",
    ".odp": "presentations are not read yet",
    ".epub": "e-books are not read yet",
}
_MEDIA = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".ico",
    ".mp3", ".wav", ".flac", ".ogg", ".m4a", ".mp4", ".mkv", ".mov", ".avi", ".webm",
    ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".iso", ".dmg",
    ".exe", ".dll", ".so", ".dylib", ".bin", ".o", ".a", ".class", ".pyc", ".wasm",
    ".gguf", ".safetensors", ".pt", ".onnx", ".sqlite", ".sqlite3", ".db",
    ".ttf", ".otf", ".woff", ".woff2",
})


def document_kind(path: str | os.PathLike[str]) -> str:
    """The format a file is read as, from its name: "pdf", "docx", "html", "markdown" or
    "text" (any other file, read as text if its content is text)."""
    suffix = Path(path).suffix.lower()
    if suffix in PDF:
        return "pdf"
    if suffix in DOCX:
        return "docx"
    if suffix in HTML:
        return "html"
    if suffix in MARKDOWN:
        return "markdown"
    return "text"


def _refuse_by_name(name: str) -> None:
    suffix = Path(name).suffix.lower()
    if suffix in _NOT_READ:
        raise UnreadableDocument(_NOT_READ[suffix])
    if suffix in _MEDIA:
        raise UnreadableDocument(f"not a document ({suffix} files hold no text to index)")


def read_document(path: str | os.PathLike[str], limits: Limits = Limits()) -> Document:
    """Read the file at *path*; raises UnreadableDocument (with the reason) if it cannot be."""
    path = Path(path)
    _refuse_by_name(path.name)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limits.max_bytes:
                raise UnreadableDocument(f"larger than {limits.max_bytes // MB} MB "
                                         f"({size / MB:,.0f} MB)")
            # One byte past the limit: a file that grew since it was measured is caught too.
            data = handle.read(limits.max_bytes + 1)
    except IsADirectoryError as exc:
        raise UnreadableDocument("a folder, not a file") from exc
    except PermissionError as exc:
        raise UnreadableDocument("cannot be opened (permission denied)") from exc
    except FileNotFoundError as exc:
        raise UnreadableDocument("not found (moved or deleted?)") from exc
    except OSError as exc:
        raise UnreadableDocument(f"cannot be read ({exc.strerror or exc})") from exc
    if len(data) > limits.max_bytes:
        raise UnreadableDocument(f"larger than {limits.max_bytes // MB} MB")
    return read_document_bytes(data, str(path), limits)


def read_document_bytes(data: bytes, name: str, limits: Limits = Limits()) -> Document:
    """Read a file's *data*, its format taken from *name*; as :func:`read_document`."""
    _refuse_by_name(name)
    kind = document_kind(name)
    budget = TextBudget(limits.max_chars)
    deadline = Deadline(limits.max_seconds)
    title: str | None = None
    notes: tuple[str, ...] = ()
    if len(data) > limits.max_bytes:
        raise UnreadableDocument(f"larger than {limits.max_bytes // MB} MB")
    try:
        if kind == "pdf":
            sections, notes = read_pdf(data, limits, budget, deadline)
        elif kind == "docx":
            sections = read_docx(data, limits, budget, deadline)
        elif kind == "html":
            sections, title = read_html(data, budget)
        elif kind == "markdown":
            sections = read_markdown(data, budget)
        else:
            if data.startswith(b"%PDF"):
                raise UnreadableDocument("a PDF without the .pdf extension: rename it to index "
                                         "it")
            if looks_binary(data):
                raise UnreadableDocument("binary file, not text")
            sections = read_plain(data, budget)
    except RecursionError as exc:
        # A reader's recursion is bounded, but the parsers under it may still go too deep.
        raise UnreadableDocument("nested too deeply to read") from exc
    except MemoryError as exc:
        raise UnreadableDocument("too large to read in the memory available") from exc
    if not sections:
        raise UnreadableDocument("no text in it")
    return Document(name, kind, sections, title, notes)
