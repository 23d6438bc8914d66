"""What reading a file gives: a document made of sections, or the reason it cannot be read.

A section is a run of text that shares one page (PDF) and one heading (Markdown, HTML, DOCX);
the chunker never lets a chunk cross from one section to the next, so every chunk can say where
it came from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class UnreadableDocument(Exception):
    """A file that cannot be indexed; ``reason`` says why in plain words ("encrypted PDF")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Section:
    """Text from one place in a document: its page (1-based, or None) and heading (or None).

    A heading is the trail of headings above the text, outermost first, joined by " › ".
    """

    text: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class Document:
    """A file's readable text, in order; ``kind`` is the format it was read as, ``notes`` what
    could not be read of it (a damaged page) while the rest could."""

    path: str
    kind: str
    sections: tuple[Section, ...]
    title: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """All the text, sections separated by blank lines."""
        return "\n\n".join(section.text for section in self.sections)


MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds on what one file may cost to read; a file past one is unreadable, with the reason.

    They keep a hostile or broken file (a zip bomb, a PDF of a million pages, a 2 GB log) from
    taking the indexer's memory or time.
    """

    max_bytes: int = 64 * MB
    max_pages: int = 5000
    #: Uncompressed size allowed for each XML part of a DOCX (zip bombs).
    max_xml_bytes: int = 64 * MB
    #: Text kept from one file; a file that yields more is refused, not cut short in silence.
    max_chars: int = 16_000_000
    #: Seconds one file may take to read (checked between pages and parts, not inside one).
    max_seconds: float = 120.0


@dataclass
class Deadline:
    """The time a file's reading must end by; :meth:`check` raises once it has passed."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        """Raise UnreadableDocument if reading has taken longer than allowed."""
        if time.monotonic() - self.started > self.seconds:
            raise UnreadableDocument(f"took longer than {self.seconds:g} seconds to read")


class TextBudget:
    """Counts the characters a reader has kept and refuses a file that yields too many."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.used = 0

    def take(self, text: str) -> str:
        """Count *text* in; raise UnreadableDocument if the file has now given too much."""
        self.used += len(text)
        if self.used > self.max_chars:
            raise UnreadableDocument(
                f"has more than {self.max_chars:,} characters of text (too large to index)")
        return text


def heading_trail(levels: dict[int, str], level: int, text: str) -> str:
    """Record heading *text* at *level* in *levels* (dropping deeper ones); return the trail."""
    for deeper in [key for key in levels if key >= level]:
        del levels[deeper]
    levels[level] = " ".join(text.split())
    return " › ".join(levels[key] for key in sorted(levels) if levels[key])
