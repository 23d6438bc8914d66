"""The chat's model picker: the model's whole name, and under it whether it is loaded and the
memory it takes ("Loaded · 0.54 GB in memory"), from what the window hears of the engine.

It is a QComboBox (its list, its keyboard and its accessibility are Qt's) that paints its two
lines itself, and asks for the room they need: the name is never cut short, unless it is longer
than MAX_NAME_WIDTH, where it ends in "…" and the tooltip has it whole.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPaintEvent
from PySide6.QtWidgets import (QComboBox, QSizePolicy, QStyle, QStyleOptionComboBox,
                               QStylePainter, QWidget)

from desktop.ui.style import current, type_font
from desktop.ui.style.tokens import TYPE_BODY, TYPE_CAPTION

GiB = 1024**3
MAX_NAME_WIDTH = 260  # pixels: a name longer than this ends in "…"
EXTRA = 4  # pixels of slack beside the text, so rounding never cuts a letter


def model_state(model: str | None, status: dict[str, Any], engine_state: str,
                loading: bool, remote: bool) -> str:
    """The picker's second line for *model*, from the engine's status and state."""
    if model is None:
        return "No model installed" if not remote else "The server lists no models"
    if remote:
        return "On the server elsewhere"
    if engine_state == "starting":
        return "Starting the engine…"
    if engine_state == "crashed":
        return "Engine restarting…"
    if engine_state in ("failed", "stopped"):
        return "Engine stopped"
    loaded = (status.get("model") or {}).get("id") == model
    if loaded:
        memory = status.get("memory_bytes")
        return f"Loaded · {memory / GiB:.2f} GB in memory" if memory else "Loaded"
    return "Loading…" if loading else "Not loaded"


class ModelPicker(QComboBox):
    """A combo box of the installed chat models that shows the current one's state too."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.setAccessibleName("Model")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.state = ""  # the second line, as shown
        self.status: dict[str, Any] = {}  # the engine's latest
        self.engine_state = "stopped"
        self.remote = False  # the models are a server's elsewhere
        self.loading: str | None = None  # the model the user picked, until it is loaded
        self.currentIndexChanged.connect(self._changed)

    # -- what it knows of the engine ---------------------------------------------------------------
    def set_models(self, models: list[tuple[str, str]], current: str | None) -> None:
        """Offer *models* ((id, name) pairs), with *current* chosen."""
        self.clear()
        for model_id, label in models:
            self.addItem(label, model_id)
        if current is not None and (index := self.findData(current)) >= 0:
            self.setCurrentIndex(index)
        if current != self.loading:
            self.loading = None  # another model is the chat's now (its load failed)
        self._show_state()

    def picked(self, index: int) -> None:
        """The user chose the model at *index*: it loads, unless it is loaded already."""
        model = self.itemData(index)
        self.loading = model if model != (self.status.get("model") or {}).get("id") else None
        self._show_state()

    def set_engine_state(self, state: str) -> None:
        self.engine_state = state
        self._show_state()

    def set_status(self, status: dict[str, Any]) -> None:
        self.status = status or {}
        if (self.status.get("model") or {}).get("id") == self.loading:
            self.loading = None
        self._show_state()

    def set_remote(self, remote: bool) -> None:
        self.remote = remote
        self._show_state()

    def _show_state(self) -> None:
        model = self.currentData()
        self.set_state(model_state(model, self.status, self.engine_state,
                                   loading=model is not None and model == self.loading,
                                   remote=self.remote))

    def name_font(self) -> QFont:
        font = type_font(TYPE_BODY, self.font())
        font.setWeight(QFont.Weight.DemiBold)
        return font

    def state_font(self) -> QFont:
        return type_font(TYPE_CAPTION, self.font())

    def set_state(self, state: str) -> None:
        """The second line: loaded or not, and the memory taken."""
        if state != self.state:
            self.state = state
            self.setAccessibleDescription(state)
            self._changed()

    def _changed(self, *_: object) -> None:
        self.setToolTip(f"{self.currentText()}\n{self.state}".strip() if self.count() else
                        "No model to chat with: get one on the Models page")
        self.updateGeometry()
        self.update()

    def text_width(self) -> int:
        """The room the two lines need, side by side in pixels."""
        name = QFontMetrics(self.name_font()).horizontalAdvance(self.currentText())
        state = QFontMetrics(self.state_font()).horizontalAdvance(self.state)
        return min(MAX_NAME_WIDTH, max(name, state, 80)) + EXTRA

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        lines = (QFontMetrics(self.name_font()).height()
                 + QFontMetrics(self.state_font()).height())
        size = self.style().sizeFromContents(QStyle.ContentsType.CT_ComboBox, option,
                                             QSize(self.text_width(), lines), self)
        # The style makes room for the arrow from its own metrics; the sheet's drop-down is
        # what is really there, so the field is measured and widened if it falls short.
        field = self.field_rect(QRect(0, 0, size.width(), size.height()))
        return QSize(size.width() + max(0, self.text_width() - field.width()), size.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return self.sizeHint()

    def field_rect(self, rect: QRect | None = None) -> QRect:
        """Where the text goes: the box less its frame, padding and arrow."""
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        if rect is not None:
            option.rect = rect
        return self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                           QStyle.SubControl.SC_ComboBoxEditField, self)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        option.currentText = ""
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = self.field_rect()
        theme = current()
        name_font, state_font = self.name_font(), self.state_font()
        name_metrics, state_metrics = QFontMetrics(name_font), QFontMetrics(state_font)
        height = name_metrics.height() + state_metrics.height()
        top = field.top() + (field.height() - height) // 2
        enabled = self.isEnabled()
        painter.setFont(name_font)
        painter.setPen(theme.color("text" if enabled else "text_faint"))
        name = self.currentText() or "No model"
        painter.drawText(QRect(field.left(), top, field.width(), name_metrics.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         name_metrics.elidedText(name, Qt.TextElideMode.ElideRight,
                                                 field.width()))
        painter.setFont(state_font)
        painter.setPen(theme.color("text_muted" if enabled else "text_faint"))
        painter.drawText(QRect(field.left(), top + name_metrics.height(), field.width(),
                               state_metrics.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         state_metrics.elidedText(self.state, Qt.TextElideMode.ElideRight,
                                                  field.width()))
