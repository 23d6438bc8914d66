"""A page laid out as one column in the middle of the window, scrolling where the window is too
short for it: fields and cards stay a readable width in a wide window instead of stretching
across it."""

from __future__ import annotations

from typing import NamedTuple

from PySide6.QtWidgets import QFrame, QHBoxLayout, QScrollArea, QVBoxLayout, QWidget

from desktop.ui.style.tokens import FORM_WIDTH, SPACE_L, SPACE_M


class Column(NamedTuple):
    layout: QVBoxLayout  # where the page puts its parts, one under another
    scroll: QScrollArea
    inner: QWidget  # what scrolls: positions in it are scroll positions


def page_column(page: QWidget, width: int = FORM_WIDTH) -> Column:
    """Give *page* a scrolling column at most *width* pixels wide, centred."""
    outer = QVBoxLayout(page)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    outer.addWidget(scroll)
    inner = QWidget()
    scroll.setWidget(inner)
    row = QHBoxLayout(inner)
    row.setContentsMargins(SPACE_L, SPACE_M, SPACE_L, SPACE_L)
    column = QWidget()
    column.setMaximumWidth(width)
    row.addStretch(1)
    row.addWidget(column, 100)
    row.addStretch(1)
    layout = QVBoxLayout(column)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(SPACE_M)
    return Column(layout, scroll, inner)
