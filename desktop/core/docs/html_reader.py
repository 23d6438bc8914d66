"""HTML: the text a reader would see, with the page's headings, read with the standard
library's forgiving parser (scripts, styles and hidden elements left out)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from desktop.core.docs.document import Section, TextBudget, UnreadableDocument, heading_trail
from desktop.core.docs.text_reader import clean_text, decode_text

_INVISIBLE = {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object",
              "head"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article",
           "header", "footer", "nav", "aside", "main", "blockquote", "pre", "figure",
           "figcaption", "hr", "form", "fieldset", "details", "summary", "address", "caption"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}
_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""",
                      re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_ROW_START = re.compile(r"^[ \t]*\|[ \t]*")
# From the start of a run of spaces only (the lookbehind), so a long run in a <pre> with no
# line end after it is not scanned again from each of its spaces.
_BLANKS = re.compile(r"(?<![ \t])[ \t]*\n[ \t\n]*\n[ \t]*")
# Past this depth of unclosed elements, nesting is no longer tracked (a page can open tags
# without end; the text is still read).
_MAX_DEPTH = 4096


def _hidden(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    if tag in _INVISIBLE:
        return True
    for name, value in attrs:
        if name == "hidden" or (name == "aria-hidden" and value == "true"):
            return True
        if name == "style" and value and re.search(r"display\s*:\s*none", value, re.I):
            return True
    return False


class _VisibleText(HTMLParser):
    def __init__(self, budget: TextBudget) -> None:
        super().__init__(convert_charrefs=True)
        self.budget = budget
        self.sections: list[Section] = []
        self.title: str | None = None
        self._stack: list[str] = []
        self._open: dict[str, int] = {}  # how many of each tag the stack holds
        self._hidden_at: int | None = None  # stack depth where a hidden element opened
        self._levels: dict[int, str] = {}
        self._heading: str | None = None
        self._heading_level: int | None = None
        self._heading_parts: list[str] = []
        self._parts: list[str] = []
        self._pre = 0
        self._in_title = False
        self._title_parts: list[str] = []

    # -- element tracking -----------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.title is None and not self._title_parts:
            self._in_title = True
        if tag == "body" and self._open.get("head"):
            self.handle_endtag("head")  # HTML lets a page leave </head> out
        if tag in _VOID:
            if tag == "br":
                self._add("\n")
            elif tag == "hr":
                self._add("\n\n")
            return
        if len(self._stack) < _MAX_DEPTH:
            self._stack.append(tag)
            self._open[tag] = self._open.get(tag, 0) + 1
            if tag == "pre":
                self._pre += 1
            if self._hidden_at is None and _hidden(tag, attrs):
                self._hidden_at = len(self._stack) - 1
        if self._hidden_at is not None:
            return
        if self._heading_level is not None and (tag in _HEADINGS or tag in _BLOCKS):
            self._end_heading()  # a heading left open ends where the next block begins
        if tag in _HEADINGS:
            self._close_section()
            self._heading_level = _HEADINGS[tag]
            self._heading_parts = []
        elif tag in _BLOCKS:
            self._add("\n\n")
        elif tag in ("td", "th"):
            self._add(" | ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if not self._open.get(tag):
            return  # a stray end tag closes nothing
        while self._stack:
            opened = self._stack.pop()
            self._open[opened] -= 1
            if self._hidden_at is not None and len(self._stack) <= self._hidden_at:
                self._hidden_at = None
            if opened == "pre" and self._pre:
                self._pre -= 1
            if opened in _HEADINGS and self._heading_level is not None:
                self._end_heading()
            elif opened in _BLOCKS:
                self._add("\n\n")
            if opened == tag:
                break

    # -- text -----------------------------------------------------------------------------------
    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        if self._hidden_at is not None:
            return
        if self._heading_level is not None:
            self._heading_parts.append(data)
        else:
            self._add(data if self._pre else _SPACES.sub(" ", data))

    def _add(self, text: str) -> None:
        if self._heading_level is not None:
            self._heading_parts.append(" ")
            return
        self._parts.append(self.budget.take(text))

    def _end_heading(self) -> None:
        text = " ".join("".join(self._heading_parts).split())
        level = self._heading_level or 1
        self._heading_level = None
        self._heading = heading_trail(self._levels, level, text[:200]) or None
        # The heading's own words belong to its section too, so a search for them finds it.
        if text:
            self._parts.append(self.budget.take(text + "\n\n"))

    def _close_section(self) -> None:
        text = _BLANKS.sub("\n\n", "".join(self._parts)).strip()
        # Table rows begin with a cell separator; drop it.
        text = "\n".join(_ROW_START.sub("", line).rstrip() for line in text.split("\n"))
        if text:
            self.sections.append(Section(text, None, self._heading))
        self._parts = []

    def finish(self) -> None:
        if self._heading_level is not None:
            self._end_heading()
        self._close_section()
        title = " ".join("".join(self._title_parts).split())
        self.title = title or None


def read_html(data: bytes, budget: TextBudget) -> tuple[tuple[Section, ...], str | None]:
    """An HTML page's visible text, one section per heading, and its title."""
    declared = _CHARSET.search(data[:4096])
    charset = declared.group(1).decode("ascii") if declared else None
    text = clean_text(decode_text(data, charset))
    parser = _VisibleText(budget)
    try:
        parser.feed(text)
        parser.close()
        parser.finish()
    except UnreadableDocument:
        raise
    except (AssertionError, ValueError, IndexError, TypeError) as exc:
        # The standard parser forgives nearly everything, but a few malformed declarations
        # still make it raise.
        raise UnreadableDocument(f"damaged HTML ({exc})") from exc
    return tuple(parser.sections), parser.title
