"""Small parts of the Models page's cards: a row of badges that wraps, text clamped to a few
lines, and the badges themselves."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QResizeEvent, QTextLayout, QTextOption
from PySide6.QtWidgets import QLabel, QLayout, QLayoutItem, QSizePolicy, QWidget, QWidgetItem

from desktop.ui.style import type_font
from desktop.ui.style.tokens import SPACE_XS, TYPE_CAPTION

#: a badge's tones, styled by the application's style sheet (QLabel#badge[tone=…])
TONES = ("neutral", "success", "warning", "error", "accent", "outline")


def make_badge(text: str = "", tone: str = "neutral") -> QLabel:
    """A small rounded label in one of TONES."""
    label = QLabel(text)
    label.setObjectName("badge")
    label.setFont(type_font(TYPE_CAPTION, label.font()))
    label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    set_tone(label, tone)
    return label


def set_tone(label: QLabel, tone: str) -> None:
    """Give *label* the colours of *tone* (one of TONES), at once."""
    if label.property("tone") == tone:
        return
    label.setProperty("tone", tone)
    label.style().unpolish(label)
    label.style().polish(label)


class FlowLayout(QLayout):
    """Widgets side by side, going on to the next line when the width runs out."""

    def __init__(self, parent: QWidget | None = None, spacing: int = SPACE_XS) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._gap = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 - Qt's name
        self._items.append(item)

    def add(self, widget: QWidget) -> None:
        self.addChildWidget(widget)
        self.addItem(QWidgetItem(widget))

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802 - Qt's name
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802 - Qt's name
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802 - Qt's name
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt's name
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt's name
        return self._arrange(QRect(0, 0, width, 0), place=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802 - Qt's name
        super().setGeometry(rect)
        self._arrange(rect, place=True)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return self.minimumSize()

    def minimumSize(self) -> QSize:  # noqa: N802 - Qt's name
        """As wide as the widest badge: the rest can go on other lines."""
        size = QSize()
        for item in self._shown():
            size = size.expandedTo(item.minimumSize())
        margins = self.contentsMargins()
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def _shown(self) -> list[QLayoutItem]:
        return [item for item in self._items if not item.isEmpty()]

    def _arrange(self, rect: QRect, place: bool) -> int:
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        x, y, line = area.x(), area.y(), 0
        for item in self._shown():
            hint = item.sizeHint()
            if x > area.x() and x + hint.width() > area.right() + 1:
                x, y, line = area.x(), y + line + self._gap, 0
            if place:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._gap
            line = max(line, hint.height())
        return y + line - rect.y() + margins.bottom()


class ClampedText(QWidget):
    """Wrapped text shown in at most *lines* lines, the last ending in "…" when there is more;
    the tooltip then has it all. Its height is always *lines* lines, so cards side by side
    line up."""

    def __init__(self, text: str = "", lines: int = 3, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lines = lines
        self._text = ""
        self.clamped = False
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._text = text
        self.setAccessibleName(text)
        self._laid_out()
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.fontMetrics().averageCharWidth() * 30,
                     self.fontMetrics().lineSpacing() * self.lines)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.fontMetrics().averageCharWidth() * 8,
                     self.fontMetrics().lineSpacing() * self.lines)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self.updateGeometry()
            self._laid_out()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._laid_out()

    def _layout(self, width: int) -> list[str]:
        """The lines to draw at *width*."""
        if not self._text or width <= 0:
            return []
        layout = QTextLayout(self._text, self.font())
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        layout.setTextOption(option)
        layout.beginLayout()
        shown: list[str] = []
        while len(shown) < self.lines:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            start, length = line.textStart(), line.textLength()
            if len(shown) == self.lines - 1 and start + length < len(self._text):
                rest = " ".join(self._text[start:].split())
                shown.append(self.fontMetrics().elidedText(rest, Qt.TextElideMode.ElideRight,
                                                           width))
            else:
                shown.append(self._text[start:start + length].rstrip())
        layout.endLayout()
        return shown

    def _laid_out(self) -> None:
        shown = self._layout(self.width())
        self.clamped = bool(shown) and shown[-1].endswith("…") and not self._text.endswith("…")
        self.setToolTip(self._text if self.clamped else "")

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        metrics = self.fontMetrics()
        for row, text in enumerate(self._layout(self.width())):
            painter.drawText(0, row * metrics.lineSpacing() + metrics.ascent(), text)
        painter.end()
