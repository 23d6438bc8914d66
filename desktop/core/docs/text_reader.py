"""Plain text, code and Markdown: decoding bytes into text, refusing binary files, and
following Markdown's headings."""

from __future__ import annotations

import codecs
import re

from desktop.core.docs.document import Section, TextBudget, UnreadableDocument, heading_trail

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
         (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
# Control characters that never appear in text (tab, newlines, form feed and escape do).
_CONTROL = bytes(set(range(32)) - {9, 10, 12, 13, 27})
_SNIFF = 8192
_SURROGATE = re.compile("[\ud800-\udfff]")


def looks_binary(data: bytes) -> bool:
    """Whether *data* looks like a binary file rather than text (a NUL byte, or many control
    characters, in its first 8 KB). Text with a UTF-16/32 byte-order mark is text."""
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return False
    head = data[:_SNIFF]
    if b"\x00" in head:
        return True
    if not head:
        return False
    controls = len(head) - len(head.translate(None, _CONTROL))
    return controls / len(head) > 0.05


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode a text file: its byte-order mark, else *declared* (an HTML charset), else UTF-8,
    else Windows-1252, else Latin-1 (which never fails). Raises UnreadableDocument for binary."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise UnreadableDocument(f"not valid {encoding.upper()} text ({exc.reason})") \
                    from exc
    if looks_binary(data):
        raise UnreadableDocument("binary file, not text")
    candidates = [declared] if declared else []
    for encoding in [*candidates, "utf-8", "cp1252"]:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")


def clean_text(text: str) -> str:
    """Unify line ends and drop characters that cannot be stored (NUL, lone surrogates)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if _SURROGATE.search(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def read_plain(data: bytes, budget: TextBudget) -> tuple[Section, ...]:
    """A text or code file as one section."""
    text = budget.take(clean_text(decode_text(data)))
    return (Section(text),) if text.strip() else ()


# The closing #s of a heading are taken off in _atx_text: in the pattern they made matching a
# line of many spaces take time quadratic in its length.
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def _atx_text(raw: str | None) -> str:
    text = (raw or "").strip(" \t")
    unclosed = text.rstrip("#")
    if unclosed != text and (not unclosed or unclosed[-1] in " \t"):
        text = unclosed.rstrip(" \t")  # "## Title ##": the closing #s are not the title
    return text


def _front_matter_end(lines: list[str]) -> int:
    # YAML front matter (between two "---" lines at the top) is kept as text; its closing
    # line must not turn the line above it into a heading.
    if lines and lines[0].strip() == "---":
        for number, line in enumerate(lines[1:200], start=1):
            if line.strip() in ("---", "..."):
                return number + 1
    return 0


def read_markdown(data: bytes, budget: TextBudget) -> tuple[Section, ...]:
    """A Markdown file, one section per heading; headings inside code fences are code."""
    text = budget.take(clean_text(decode_text(data)))
    sections: list[Section] = []
    levels: dict[int, str] = {}
    heading: str | None = None
    lines: list[str] = []
    fence: str | None = None

    def close() -> None:
        body = "\n".join(lines).strip("\n")
        if body.strip():
            sections.append(Section(body, None, heading))
        lines.clear()

    all_lines = text.split("\n")
    front = _front_matter_end(all_lines)
    lines.extend(all_lines[:front])
    for line in all_lines[front:]:
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            lines.append(line)
            continue
        if opened:
            fence = opened.group(1)
            lines.append(line)
            continue
        atx = _ATX.match(line)
        setext = _SETEXT.match(line) if lines and lines[-1].strip() else None
        # A heading's own line opens its section: the passage shows it, and a heading with
        # nothing under it is still found.
        if atx:
            close()
            heading = heading_trail(levels, len(atx.group(1)), _atx_text(atx.group(2))) or None
            lines.append(line)
        elif setext:
            title = lines.pop()
            close()
            level = 1 if setext.group(1)[0] == "=" else 2
            heading = heading_trail(levels, level, title) or None
            lines.extend((title, line))
        else:
            lines.append(line)
    close()
    return tuple(sections)
