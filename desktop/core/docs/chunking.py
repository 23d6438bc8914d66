"""Cutting a document into chunks: passages of about ``size`` characters that the search finds
and the chat model reads.

A chunk never crosses from one section to the next (so never from one page or heading to
another) and carries the section's page and heading. Cuts fall at the coarsest boundary that
keeps a chunk within size: a blank line, then a line end, a sentence end, a space, and only for
text with none of those a plain cut. Each chunk after the first of a section begins with the
last ``overlap`` characters of the one before (from a sentence or word start), so a sentence
cut in two is whole in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from desktop.core.docs.document import Document

DEFAULT_SIZE = 1000
DEFAULT_OVERLAP = 150

# Coarsest first; each keeps its separator at the end of the piece before it, so the pieces
# join back into the exact text.
# A sentence end starts where the run of end marks starts (the lookbehind): without it a long
# run of dots with no space after it would be scanned again from each of its dots.
_SENTENCE_END = r"(?<![.!?。！？…])[.!?。！？…]+[\"'”’)\]]*\s+"
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n"),
    re.compile(_SENTENCE_END),
    re.compile(r"\s+"),
)
# ASCII only: Chinese or Japanese text has no spaces and is meaning all the way.
_LONG_RUN = re.compile(r"[!-~]{65,}")
_LONG_RUN_KEPT = 64
_SENTENCE_START = re.compile(_SENTENCE_END)
_WORD_START = re.compile(r"\s+")


@dataclass(frozen=True)
class Chunk:
    """One passage of a document: its place in the file (``ordinal``, from 0), its page and
    the heading it falls under."""

    ordinal: int
    text: str
    page: int | None = None
    heading: str | None = None

    @property
    def embedding_text(self) -> str:
        """What is embedded: the heading trail, then the text (a passage means more with the
        headings above it). Runs of ASCII without a space (base64, minified code) are cut
        short: they carry no meaning a model can use, and tokenizers take time quadratic in a
        word's length."""
        text = _LONG_RUN.sub(lambda found: found.group()[:_LONG_RUN_KEPT], self.text)
        return f"{self.heading}\n\n{text}" if self.heading else text


def _pieces(text: str, size: int, level: int = 0) -> Iterator[str]:
    if len(text) <= size:
        yield text
        return
    if level == len(_BOUNDARIES):
        for start in range(0, len(text), size):
            yield text[start:start + size]
        return
    start = 0
    for found in _BOUNDARIES[level].finditer(text):
        if found.end() > start:
            yield from _pieces(text[start:found.end()], size, level + 1)
            start = found.end()
    if start < len(text):
        yield from _pieces(text[start:], size, level + 1)


def _tail(text: str, overlap: int) -> str:
    """The end of *text*, at most *overlap* characters, from a sentence start (or else a word
    start); empty if the end is one unbroken word."""
    if overlap <= 0 or not text:
        return ""
    window = text[-overlap:]
    if len(window) == len(text):
        return ""  # the whole previous chunk would repeat: no overlap needed
    for pattern in (_SENTENCE_START, _WORD_START):
        found = pattern.search(window)
        if found and found.end() < len(window):
            return window[found.end():]
    return ""


def split_text(text: str, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[str]:
    """Cut *text* into passages of at most about *size* characters (plus the overlap)."""
    if size < 1:
        raise ValueError("A chunk size must be at least one character.")
    overlap = max(0, min(overlap, size // 2))
    packed: list[str] = []
    current: list[str] = []
    length = 0
    for piece in _pieces(text, size):
        if current and length + len(piece) > size:
            packed.append("".join(current))
            current, length = [], 0
        current.append(piece)
        length += len(piece)
    if current:
        packed.append("".join(current))
    passages: list[str] = []
    previous = ""
    for raw in packed:
        if not raw.strip():
            continue
        tail = _tail(previous.rstrip(), overlap) if previous else ""
        passages.append((tail.strip() + " " if tail.strip() else "") + raw.strip())
        previous = raw
    return passages


def chunk_document(document: Document, size: int = DEFAULT_SIZE,
                   overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """The document's chunks in order, numbered from 0, each within one section."""
    chunks: list[Chunk] = []
    for section in document.sections:
        for text in split_text(section.text, size, overlap):
            chunks.append(Chunk(len(chunks), text, section.page, section.heading))
    return chunks
