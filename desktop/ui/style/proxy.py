"""Fusion, with the icon set's chevrons where it would draw its small triangles.

The style sheet draws the arrows of combo boxes, spin boxes and menu buttons itself (from the
same SVGs); the arrows it leaves to the style beneath it, such as those of the buttons that
fold a reply's thinking, its tool calls and its sources open and shut
(``QToolButton.setArrowType``), are drawn here, in the theme's muted text colour.
"""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QProxyStyle, QStyle, QStyleOption, QStyleFactory, QWidget

from desktop.ui.style import tokens
from desktop.ui.style.icons import icon_pixmap

_CHEVRONS = {
    QStyle.PrimitiveElement.PE_IndicatorArrowDown: "chevron-down",
    QStyle.PrimitiveElement.PE_IndicatorSpinDown: "chevron-down",
    QStyle.PrimitiveElement.PE_IndicatorArrowUp: "chevron-up",
    QStyle.PrimitiveElement.PE_IndicatorSpinUp: "chevron-up",
    QStyle.PrimitiveElement.PE_IndicatorArrowLeft: "chevron-left",
    QStyle.PrimitiveElement.PE_IndicatorArrowRight: "chevron-right",
}


class NoMoatStyle(QProxyStyle):
    """Fusion, with chevrons from the icon set for its arrows."""

    def __init__(self) -> None:
        super().__init__(QStyleFactory.create("Fusion"))
        self.setObjectName("nomoat")

    def drawPrimitive(self, element: QStyle.PrimitiveElement,  # noqa: N802 - Qt's name
                      option: QStyleOption, painter: QPainter,
                      widget: QWidget | None = None) -> None:
        name = _CHEVRONS.get(element)
        if name is None:
            super().drawPrimitive(element, option, painter, widget)
            return
        rect: QRect = option.rect  # type: ignore[attr-defined]
        side = max(8, min(rect.width(), rect.height(), 16))
        enabled = bool(option.state & QStyle.StateFlag.State_Enabled)  # type: ignore[attr-defined]
        theme = tokens.current()
        colour = theme.color("text_muted" if enabled else "text_faint")
        ratio = painter.device().devicePixelRatioF() if painter.device() else 1.0
        pixmap = icon_pixmap(name, side, colour, ratio)
        painter.drawPixmap(rect.left() + (rect.width() - side) // 2,
                           rect.top() + (rect.height() - side) // 2, pixmap)
