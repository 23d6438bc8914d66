"""The fixed-width face for code, chosen by what its letters measure, not by a database flag.

Qt's font database calls a family fixed-pitch only when fontconfig (or the platform) says so,
and some monospaced faces are not marked: Noto Sans Mono is reported proportional on Debian.
So a family counts as fixed-width here when a narrow and a wide letter take the same room.
The system's own fixed font is used when it measures fixed; otherwise well-known monospaced
families are tried, then any family the database calls fixed-pitch; the first that measures
fixed wins.
"""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtGui import QFont, QFontDatabase, QFontInfo, QFontMetricsF

# Tried after the system's fixed font, in order: common on Linux, Windows and macOS.
KNOWN_MONOSPACED = (
    "DejaVu Sans Mono", "Noto Sans Mono", "Liberation Mono", "Ubuntu Mono", "Cascadia Mono",
    "Consolas", "Menlo", "SF Mono", "Courier New", "Noto Mono", "Nimbus Mono PS", "FreeMono",
)


def measures_fixed(font: QFont) -> bool:
    """Whether *font*, as Qt resolves it, gives a narrow and a wide letter the same width."""
    metrics = QFontMetricsF(font)
    narrow, wide = metrics.horizontalAdvance("iiii"), metrics.horizontalAdvance("MMMM")
    return narrow > 0 and abs(narrow - wide) < 0.5


def _resolves_to(family: str) -> QFont | None:
    """A font of *family*, or None when Qt would put another family in its place."""
    font = QFont()
    font.setFamilies([family])
    font.setStyleHint(QFont.StyleHint.Monospace)
    if QFontInfo(font).family().casefold() != family.casefold():
        return None
    return font


@lru_cache(maxsize=1)
def code_families() -> tuple[str, ...]:
    """The families to set on code: the chosen fixed-width one first, then Qt's fallbacks."""
    system = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    if measures_fixed(system):  # the system's choice (often an alias such as "monospace")
        return tuple(system.families())
    candidates = [*system.families(), *KNOWN_MONOSPACED]
    installed = QFontDatabase.families()
    candidates += [f for f in installed if QFontDatabase.isFixedPitch(f)]
    seen: set[str] = set()
    for family in candidates:
        if family.casefold() in seen:
            continue
        seen.add(family.casefold())
        font = _resolves_to(family)
        if font is not None and measures_fixed(font):
            return (family, *[f for f in system.families() if f != family])
    # Nothing measures fixed: every installed family is proportional. Take the one Qt picks
    # for the monospace hint, which is the best this machine has.
    return tuple(system.families()) or ("monospace",)


def code_font() -> QFont:
    """A font that sets only the family, so its size follows the app's font size setting."""
    font = QFont()
    font.setFamilies(list(code_families()))
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font
