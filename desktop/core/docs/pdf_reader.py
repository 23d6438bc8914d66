"""PDF: each page's text with pypdf (pure Python, page by page), and headings from the PDF's
outline (its bookmarks) where it has one."""

from __future__ import annotations

import logging
from io import BytesIO
from typing import Any

from desktop.core.docs.document import (
    Deadline,
    Limits,
    Section,
    TextBudget,
    UnreadableDocument,
    heading_trail,
)
from desktop.core.docs.text_reader import clean_text

# pypdf logs a warning for every odd but readable object; those are noise to someone indexing
# their folders, and real failures still raise.
logging.getLogger("pypdf").setLevel(logging.ERROR)

_MAX_OUTLINE_ENTRIES = 10_000
_MAX_OUTLINE_DEPTH = 16


def _outline_headings(reader: Any, pages: int) -> dict[int, str]:
    """Page index -> the heading trail in force from that page on (from the bookmarks)."""
    entries: list[tuple[int, int, str]] = []  # (page, level, title) in outline order

    def visit(items: Any, level: int) -> None:
        if level > _MAX_OUTLINE_DEPTH:
            return
        for item in items:
            if len(entries) >= _MAX_OUTLINE_ENTRIES:
                return
            if isinstance(item, list):
                visit(item, level + 1)
                continue
            page = reader.get_destination_page_number(item)
            title = str(getattr(item, "title", "") or "")
            if page is not None and 0 <= page < pages and title.strip():
                entries.append((page, level, title))

    visit(reader.outline, 1)
    levels: dict[int, str] = {}
    starts: dict[int, str] = {}
    for page, level, title in entries:
        starts[page] = heading_trail(levels, level, clean_text(title)[:200])
    return starts


def read_pdf(data: bytes, limits: Limits, budget: TextBudget,
             deadline: Deadline) -> tuple[tuple[Section, ...], tuple[str, ...]]:
    """A PDF's text, one section per page (numbered from 1), and notes on pages that could not
    be read. Raises UnreadableDocument for an encrypted, damaged or text-less PDF."""
    # Imported here: pypdf is only needed when a PDF is read.
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    if b"%PDF" not in data[:1024]:
        raise UnreadableDocument("not a PDF (no %PDF header)")
    try:
        reader = PdfReader(BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise UnreadableDocument(f"encrypted PDF ({exc})") from exc
            if opened == PasswordType.NOT_DECRYPTED:
                raise UnreadableDocument("encrypted PDF (needs a password)")
        count = len(reader.pages)
    except UnreadableDocument:
        raise
    except FileNotDecryptedError as exc:
        raise UnreadableDocument("encrypted PDF (needs a password)") from exc
    except RecursionError as exc:
        raise UnreadableDocument("damaged PDF (objects nested without end)") from exc
    except Exception as exc:
        # pypdf meets broken files with many kinds of exception (KeyError, TypeError,
        # ValueError...); every one means the same to the user.
        raise UnreadableDocument(f"damaged PDF ({type(exc).__name__}: {exc})") from exc
    if count > limits.max_pages:
        raise UnreadableDocument(f"has more than {limits.max_pages:,} pages ({count:,})")
    if count == 0:
        raise UnreadableDocument("damaged PDF (no pages)")
    try:
        headings = _outline_headings(reader, count)
    except Exception:
        # The bookmarks only add headings; a broken outline leaves the text as it is.
        headings = {}
    sections: list[Section] = []
    notes: list[str] = []
    heading: str | None = None
    for index in range(count):
        deadline.check()
        heading = headings.get(index, heading)
        try:
            text = reader.pages[index].extract_text()
        except RecursionError:
            notes.append(f"page {index + 1} could not be read (objects nested without end)")
            continue
        except Exception as exc:  # pypdf: any kind, as above; the other pages still count
            notes.append(f"page {index + 1} could not be read ({type(exc).__name__}: {exc})")
            continue
        text = budget.take(clean_text(text or "")).strip()
        if text:
            sections.append(Section(text, index + 1, heading))
    if not sections:
        if notes:
            raise UnreadableDocument(f"damaged PDF (no page could be read: {notes[0]})")
        raise UnreadableDocument("no text in this PDF (scanned pages? text in images is not "
                                 "read)")
    return tuple(sections), tuple(notes)
