"""DOCX (Word): paragraphs, headings from the paragraph styles, and tables as text, read with
the standard library's zipfile and ElementTree (no lxml: it would add megabytes to the
installers for little)."""

from __future__ import annotations

import re
import zipfile
import zlib
from io import BytesIO
from xml.etree import ElementTree

from desktop.core.docs.document import (
    Deadline,
    Limits,
    Section,
    TextBudget,
    UnreadableDocument,
    heading_trail,
)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Word keeps the built-in styles' English names ("heading 1") in every language; the others
# are for files written by other programs in their own language.
_HEADING_NAME = re.compile(r"(?:heading|überschrift|titre|título|titolo|kop)\s*(\d)\b",
                           re.IGNORECASE)
_DTD = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# Past this nesting (tables in tables in tables...), the inner text is read flat.
_MAX_NESTING = 32


def _read_part(archive: zipfile.ZipFile, name: str, limits: Limits) -> bytes | None:
    """One XML part, decompressed no further than the limit; None if the part is missing."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.flag_bits & 0x1:
        raise UnreadableDocument("encrypted DOCX (password-protected)")
    if info.file_size > limits.max_xml_bytes:
        raise UnreadableDocument(
            f"DOCX part {name} unpacks to more than {limits.max_xml_bytes // 2**20} MB "
            "(a zip bomb?)")
    # The size in the header can lie: read one byte past the limit to catch that too.
    with archive.open(info) as handle:
        data = handle.read(limits.max_xml_bytes + 1)
    if len(data) > limits.max_xml_bytes:
        raise UnreadableDocument(
            f"DOCX part {name} unpacks to more than {limits.max_xml_bytes // 2**20} MB "
            "(a zip bomb?)")
    return data


def _parse_xml(data: bytes, name: str) -> ElementTree.Element:
    # Word never writes a DTD; refusing one keeps entity expansion (billion laughs) out.
    if _DTD.search(data):
        raise UnreadableDocument(f"DOCX part {name} declares a DTD (not allowed in Word files)")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise UnreadableDocument(f"damaged DOCX ({name} is not valid XML: {exc})") from exc


def _heading_styles(archive: zipfile.ZipFile, limits: Limits) -> dict[str, int]:
    """Style id -> heading level (1-9), from word/styles.xml (names and outline levels)."""
    data = _read_part(archive, "word/styles.xml", limits)
    if data is None:
        return {}
    levels: dict[str, int] = {}
    for style in _parse_xml(data, "word/styles.xml").iter(f"{_W}style"):
        style_id = style.get(f"{_W}styleId") or ""
        name_el = style.find(f"{_W}name")
        name = name_el.get(f"{_W}val", "") if name_el is not None else ""
        outline = style.find(f"{_W}pPr/{_W}outlineLvl")
        found = _HEADING_NAME.match(name) or _HEADING_NAME.match(style_id)
        if outline is not None and (outline.get(f"{_W}val") or "").isdigit():
            level = int(outline.get(f"{_W}val") or 0) + 1
            if level <= 9:
                levels[style_id] = level
        elif found:
            levels[style_id] = int(found.group(1)) or 1
        elif name.lower() == "title" or style_id.lower() == "title":
            levels[style_id] = 1
    return levels


def _paragraph_text(paragraph: ElementTree.Element) -> str:
    parts: list[str] = []
    for node in paragraph.iter():
        tag = node.tag
        if tag == f"{_W}t" and node.text:
            parts.append(node.text)
        elif tag == f"{_W}tab":
            parts.append("\t")
        elif tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
    return "".join(parts)


def _paragraph_level(paragraph: ElementTree.Element, styles: dict[str, int]) -> int | None:
    props = paragraph.find(f"{_W}pPr")
    if props is None:
        return None
    outline = props.find(f"{_W}outlineLvl")
    if outline is not None and (outline.get(f"{_W}val") or "").isdigit():
        level = int(outline.get(f"{_W}val") or 0) + 1
        return level if level <= 9 else None
    style = props.find(f"{_W}pStyle")
    return styles.get(style.get(f"{_W}val") or "") if style is not None else None


class _Body:
    """Walks the document body in order, building sections at each heading."""

    def __init__(self, styles: dict[str, int], budget: TextBudget, deadline: Deadline) -> None:
        self.styles = styles
        self.budget = budget
        self.deadline = deadline
        self.sections: list[Section] = []
        self._levels: dict[int, str] = {}
        self._heading: str | None = None
        self._lines: list[str] = []
        self._seen = 0

    def walk(self, element: ElementTree.Element, depth: int = 0) -> None:
        for child in element:
            self._seen += 1
            if self._seen % 2000 == 0:
                self.deadline.check()
            if child.tag == f"{_W}p":
                self.paragraph(child)
            elif child.tag == f"{_W}tbl":
                self.table(child, depth)
            elif depth < _MAX_NESTING:
                # Content controls, inserted runs and the like hold paragraphs of their own.
                self.walk(child, depth + 1)

    def paragraph(self, paragraph: ElementTree.Element) -> None:
        text = _paragraph_text(paragraph)
        level = _paragraph_level(paragraph, self.styles)
        if level is not None and text.strip():
            self.close()
            self._heading = heading_trail(self._levels, level, text[:200]) or None
        self._lines.append(self.budget.take(text))

    def table(self, table: ElementTree.Element, depth: int) -> None:
        for row in table.iter(f"{_W}tr") if depth >= _MAX_NESTING else table.findall(f"{_W}tr"):
            cells = []
            for cell in row.findall(f"{_W}tc"):
                if depth >= _MAX_NESTING:
                    cells.append(" ".join("".join(cell.itertext()).split()))
                    continue
                inner = _Body(self.styles, self.budget, self.deadline)
                inner._seen = self._seen
                inner.walk(cell, depth + 1)
                self._seen = inner._seen
                cells.append(" ".join(" ".join(s.text for s in inner.flush()).split()))
            self._lines.append(" | ".join(cells))
        self._lines.append("")

    def close(self) -> None:
        text = "\n".join(self._lines).strip()
        if text:
            self.sections.append(Section(text, None, self._heading))
        self._lines = []

    def flush(self) -> list[Section]:
        self.close()
        return self.sections


def read_docx(data: bytes, limits: Limits, budget: TextBudget,
              deadline: Deadline) -> tuple[Section, ...]:
    """A Word document's text in order, one section per heading."""
    if data.startswith(_OLE_MAGIC):
        raise UnreadableDocument("encrypted DOCX (password-protected) or an old .doc file")
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnreadableDocument(f"not a DOCX (not a zip archive: {exc})") from exc
    with archive:
        try:
            document = _read_part(archive, "word/document.xml", limits)
            if document is None:
                raise UnreadableDocument("not a DOCX (no word/document.xml)")
            styles = _heading_styles(archive, limits)
            root = _parse_xml(document, "word/document.xml")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
                NotImplementedError, ValueError, RuntimeError, zlib.error) as exc:
            # Broken or unusual archives fail inside zipfile (bad CRC, truncated data, an
            # unsupported compression method).
            raise UnreadableDocument(f"damaged DOCX ({exc})") from exc
    body = root.find(f"{_W}body")
    if body is None:
        raise UnreadableDocument("not a DOCX (word/document.xml has no body)")
    walker = _Body(styles, budget, deadline)
    walker.walk(body)
    return tuple(walker.flush())
