"""Labels that fit the width they are given: cut short with "…", or wrapped to more lines; and
buttons that do: their icon alone where their text has no room."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import (QLabel, QSizePolicy, QStyle, QStyleOptionToolButton, QToolButton,
                               QWidget)

from desktop.ui.style import icon
from desktop.ui.style.tokens import ICON_S


class ElidedLabel(QLabel):
    """One line that never widens the window: a long text ends in "…", the tooltip has it all."""

    def __init__(self, text: str = "", parent: QWidget | None = None,
                 hug: bool = False) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 8)
        self.full_text = ""
        self.hug = hug  # never wider than the whole text, though the layout has more room
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self.full_text = text
        self.setToolTip(text)
        self._hug()
        self._elide()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._hug()
            self._elide()

    def _hug(self) -> None:
        if self.hug:
            self.setMaximumWidth(self.sizeHint().width())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """The whole text's width, so that a layout gives it back when there is room again."""
        margins = self.contentsMargins()
        width = (self.fontMetrics().horizontalAdvance(self.full_text) + 2 * self.margin()
                 + margins.left() + margins.right() + 1)
        return QSize(width, super().sizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        super().setText(self.fontMetrics().elidedText(self.full_text,
                                                      Qt.TextElideMode.ElideRight, self.width()))


class WrappedLabel(QLabel):
    """A word-wrapped label that takes the width it is given and the height its text needs.

    The message's layout only asks its widgets for their minimum sizes, which for a wrapped
    label is one line; so the label sets its own height whenever its width changes.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setTextFormat(Qt.TextFormat.PlainText)  # an error may come from another server
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if not self.text():
            return
        self.setMinimumHeight(0)  # QLabel never answers a height below its minimum
        self.setFixedHeight(self.heightForWidth(max(self.width(), 1)))


def icon_button(icon_name: str, name: str, tip: str) -> QToolButton:
    """A flat button that shows only an icon (in the muted text colour), with a name for screen
    readers and a tooltip."""
    button = QToolButton()
    button.setIcon(icon(icon_name, "text_muted"))
    button.setIconSize(QSize(ICON_S, ICON_S))
    button.setAccessibleName(name)
    button.setToolTip(tip)
    button.setAutoRaise(True)
    return button


def fold_button(name: str) -> QToolButton:
    """The header of a section that folds (a reply's thinking, a tool call): flat, checkable,
    as wide as its text."""
    button = QToolButton()
    button.setObjectName(name)
    button.setCheckable(True)
    button.setAutoRaise(True)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
    return button


def fit_to_width(button: QToolButton) -> None:
    """Show *button*'s text beside its icon where it has the room, its icon alone where not."""
    wanted = (Qt.ToolButtonStyle.ToolButtonTextBesideIcon
              if button.width() >= full_size(button).width()
              else Qt.ToolButtonStyle.ToolButtonIconOnly)
    if button.toolButtonStyle() != wanted:
        button.setToolButtonStyle(wanted)


def full_size(button: QToolButton, style: Qt.ToolButtonStyle =
              Qt.ToolButtonStyle.ToolButtonTextBesideIcon) -> QSize:
    """The size *button* asks for with its text beside its icon (or in *style*), whichever
    it shows now (as QToolButton.sizeHint works it out)."""
    option = QStyleOptionToolButton()
    button.initStyleOption(option)
    option.toolButtonStyle = style
    icon_size = button.iconSize()
    width, height = icon_size.width(), icon_size.height()
    if style != Qt.ToolButtonStyle.ToolButtonIconOnly:
        metrics = QFontMetrics(button.font())
        text = metrics.size(Qt.TextFlag.TextShowMnemonic, button.text())
        width += 4 + text.width() + 2 * metrics.horizontalAdvance(" ")
        height = max(height, text.height())
    return button.style().sizeFromContents(QStyle.ContentsType.CT_ToolButton, option,
                                           QSize(width, height), button)


class CompactButton(QToolButton):
    """A tool button of the box that gives up its text before it makes the window wider."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return full_size(self)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return full_size(self, Qt.ToolButtonStyle.ToolButtonIconOnly)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        fit_to_width(self)
