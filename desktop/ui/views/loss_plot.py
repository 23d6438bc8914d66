"""The loss plot of a training run: the training loss of each step as a line, the held-out loss
as a second line with a dot where each was measured, painted with QPainter.

The page hands it the points on its repaint timer (:meth:`LossPlot.set_points`), never at every
event; the colours are the theme's, looked up at each paint.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.ui.style import current, type_font
from desktop.ui.style.tokens import RADIUS_L, SPACE_M, SPACE_S, SPACE_XS, TYPE_CAPTION

Points = list[tuple[int, float]]


def nice_step(span: float, lines: int = 4) -> float:
    """A round distance between grid lines (1, 2 or 5 times a power of ten) giving about
    *lines* lines over *span*."""
    if span <= 0:
        return 1.0
    raw = span / lines
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


class LossPlot(QWidget):
    """Training and held-out loss against the step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.train: Points = []
        self.held: Points = []
        self.total = 0
        self.setAccessibleName("Loss plot")
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(480, 200)

    def set_points(self, train: Points, held: Points, total: int | None) -> None:
        """Show these points (copied); *total* is the run's last step, the x axis' end."""
        self.train, self.held = list(train), list(held)
        self.total = max(total or 0, train[-1][0] if train else 0, held[-1][0] if held else 0)
        last = [f"training loss {train[-1][1]:.3f} at step {train[-1][0]}"] if train else []
        last += [f"held-out loss {held[-1][1]:.3f}"] if held else []
        self.setAccessibleDescription("; ".join(last) or "No steps yet")
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        theme = current()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        frame = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(theme.color("border"), 1))
        painter.setBrush(theme.color("base"))
        painter.drawRoundedRect(frame, RADIUS_L, RADIUS_L)
        font = type_font(TYPE_CAPTION, self.font())
        painter.setFont(font)
        metrics = QFontMetrics(font)
        if not self.train and not self.held:
            painter.setPen(theme.color("text_muted"))
            painter.drawText(frame, Qt.AlignmentFlag.AlignCenter,
                             "The loss shows here after the first step.")
            return
        values = [v for _, v in self.train + self.held if math.isfinite(v)]
        top = max(values) * 1.05 if values else 1.0
        step_y = nice_step(top)
        top = max(step_y, math.ceil(top / step_y) * step_y)
        label_width = max(metrics.horizontalAdvance(self._number(top)),
                          metrics.horizontalAdvance(self._number(step_y)))
        area = QRectF(frame.left() + SPACE_M + label_width + SPACE_XS,
                      frame.top() + SPACE_M + metrics.height(),
                      0, 0)
        area.setRight(frame.right() - SPACE_M)
        area.setBottom(frame.bottom() - SPACE_S - metrics.height() - SPACE_XS)
        if area.width() < 20 or area.height() < 20:
            return
        last = max(1, self.total)

        def point(step: int, value: float) -> QPointF:
            x = area.left() + area.width() * step / last
            y = area.bottom() - area.height() * min(max(value, 0.0), top) / top
            return QPointF(x, y)

        # Grid lines with their values, and the steps at each end of the x axis.
        grid = QPen(theme.color("border"), 1)
        muted = theme.color("text_muted")
        value = 0.0
        while value <= top + step_y / 2:
            y = point(0, value).y()
            painter.setPen(grid)
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            painter.setPen(muted)
            painter.drawText(QRectF(frame.left(), y - metrics.height() / 2,
                                    area.left() - SPACE_XS - frame.left(), metrics.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             self._number(value))
            value += step_y
        below = QRectF(area.left(), area.bottom() + SPACE_XS, area.width(), metrics.height())
        painter.drawText(below, Qt.AlignmentFlag.AlignLeft, "step 0")
        painter.drawText(below, Qt.AlignmentFlag.AlignRight, f"step {last}")

        # The lines: training in the accent, held-out in the warning colour with its dots.
        accent = theme.color("accent")
        held = theme.color("warning")
        if self.train:
            painter.setPen(QPen(accent, 2, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                                Qt.PenJoinStyle.RoundJoin))
            if len(self.train) == 1:
                painter.setBrush(accent)
                painter.drawEllipse(point(*self.train[0]), 2.5, 2.5)
            else:
                painter.drawPolyline(QPolygonF([point(s, v) for s, v in self.train]))
        if self.held:
            painter.setPen(QPen(held, 2, Qt.PenStyle.DashLine))
            dots = [point(s, v) for s, v in self.held]
            if len(dots) > 1:
                painter.drawPolyline(QPolygonF(dots))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(held)
            for dot in dots:
                painter.drawEllipse(dot, 3.5, 3.5)

        # The legend, over the top right corner.
        x = area.right()
        for text, colour in (("held-out", held), ("training", accent)):
            if text == "held-out" and not self.held:
                continue
            width = metrics.horizontalAdvance(text)
            x -= width
            painter.setPen(muted)
            painter.drawText(QPointF(x, frame.top() + SPACE_S + metrics.ascent()), text)
            x -= SPACE_XS + 12
            swatch_y = frame.top() + SPACE_S + metrics.height() / 2
            painter.setPen(QPen(colour, 2))
            painter.drawLine(QPointF(x, swatch_y), QPointF(x + 12, swatch_y))
            x -= SPACE_M

    @staticmethod
    def _number(value: float) -> str:
        return f"{value:.1f}" if value >= 1 or value == 0 else f"{value:.2f}"
