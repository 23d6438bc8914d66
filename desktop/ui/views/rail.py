"""The navigation rail: a narrow column with an icon and a short label for each page.

The current page is marked (the accent's soft fill, a bar at its edge, the icon in the
accent). It is one stop of the Tab chain: the arrow keys, Home and End move between pages, and
a ring shows which page has the keyboard. The main window also gives each of the first nine
pages Ctrl+1…Ctrl+9. A page's icon comes from PAGE_ICONS unless add_page is given one, so a
new page is one line: ``window.add_page("Train", train_page)``.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (QFocusEvent, QFont, QFontMetrics, QKeyEvent, QMouseEvent, QPainter,
                           QPen)
from PySide6.QtWidgets import (QAbstractItemView, QListWidget, QListWidgetItem,
                               QStyledItemDelegate, QStyleOptionViewItem, QWidget)

from desktop.ui.style import current, icon_pixmap, type_font
from desktop.ui.style.tokens import (FOCUS_WIDTH, ICON_M, RADIUS_M, SPACE_S, SPACE_XS,
                                     TYPE_CAPTION)

# The icon of each page, by the page's name: Lucide names (resources/icons/lucide/).
PAGE_ICONS = {
    "Chat": "messages-square",
    "Models": "box",
    "Adapters": "layers",
    "Train": "graduation-cap",
    "Compare": "columns-2",
    "Server": "server",
    "Tools": "wrench",
    "Documents": "file-text",
    "Settings": "settings",
}

IconRole = Qt.ItemDataRole.UserRole + 1
MARGIN = SPACE_XS  # between the rail's edge and its items
PAD_X = SPACE_XS  # inside an item, beside its label
PAD_Y = SPACE_S  # inside an item, above its icon and below its label
GAP = SPACE_XS  # between the icon and the label
MARK = 3  # the width of the bar beside the current page


class RailDelegate(QStyledItemDelegate):
    """Paints one page of the rail: its icon over its label."""

    def __init__(self, rail: NavigationRail) -> None:
        super().__init__(rail)
        self.rail = rail

    def sizeHint(self, option: QStyleOptionViewItem,  # noqa: N802 - Qt's name
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        caption = QFontMetrics(self.rail.caption_font())
        return QSize(self.rail.item_width() + 2 * MARGIN,
                     MARGIN + PAD_Y + ICON_M + GAP + caption.height() + PAD_Y)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        theme = current()
        cell: QRect = option.rect  # type: ignore[attr-defined]
        rect = cell.adjusted(MARGIN, MARGIN, -MARGIN, 0)  # the item, inside the rail's margins
        state = option.state  # type: ignore[attr-defined]
        chosen = index.row() == self.rail.currentRow()
        hovered = bool(state & state.State_MouseOver)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5)
        if chosen or hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(theme.color("accent_soft" if chosen else "hover"))
            painter.drawRoundedRect(box, RADIUS_M, RADIUS_M)
        if chosen:
            painter.setBrush(theme.color("accent"))
            mark = QRectF(cell.left(), rect.top() + rect.height() * 0.25, MARK,
                          rect.height() * 0.5)
            painter.drawRoundedRect(mark, MARK / 2, MARK / 2)
        if self.rail.shows_focus() and index.row() == self.rail.currentRow():
            pen = QPen(theme.color("focus"), FOCUS_WIDTH)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            inset = FOCUS_WIDTH / 2
            painter.drawRoundedRect(box.adjusted(inset, inset, -inset, -inset),
                                    RADIUS_M, RADIUS_M)
        colour = theme.color("accent" if chosen else "text_muted")
        if hovered and not chosen:
            colour = theme.color("text")
        ratio = painter.device().devicePixelRatioF()
        name = index.data(IconRole)
        if name:
            pixmap = icon_pixmap(name, ICON_M, colour, ratio)
            painter.drawPixmap(rect.left() + (rect.width() - ICON_M) // 2, rect.top() + PAD_Y,
                               pixmap)
        font = self.rail.caption_font()
        painter.setFont(font)
        painter.setPen(theme.color("text" if chosen or hovered else "text_muted"))
        label = QRect(rect.left(), rect.top() + PAD_Y + ICON_M + GAP, rect.width(),
                      QFontMetrics(font).height())
        painter.drawText(label, Qt.AlignmentFlag.AlignCenter, index.data() or "")
        painter.restore()


class NavigationRail(QListWidget):
    """The pages of the window, one icon and label each; the current row is the page shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("navigationRail")
        self.setAccessibleName("Pages")
        self.setItemDelegate(RailDelegate(self))
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # In a very short window it scrolls (wheel, keys) without a bar that would cut labels.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformItemSizes(True)
        self.setSpacing(0)
        self.setMouseTracking(True)
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_Hover)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._keyboard = False  # whether the focus came, or was used, by the keyboard
        self.currentRowChanged.connect(lambda _: self.viewport().update())

    def add_page(self, name: str, icon_name: str | None = None) -> QListWidgetItem:
        """Add a page called *name*, with *icon_name* (a Lucide name) or its PAGE_ICONS one."""
        icon_name = icon_name or PAGE_ICONS.get(name)
        if icon_name is None:
            raise ValueError(f"No icon for the page {name!r}: add it to PAGE_ICONS or name one.")
        item = QListWidgetItem(name)
        item.setData(IconRole, icon_name)
        item.setData(Qt.ItemDataRole.AccessibleTextRole, name)
        item.setToolTip(name)
        self.addItem(item)
        self.fit()
        return item

    def names(self) -> list[str]:
        return [self.item(row).text() for row in range(self.count())]

    def caption_font(self) -> QFont:
        """The labels' font: a step below the rail's own."""
        return type_font(TYPE_CAPTION, self.font())

    def label_width(self) -> int:
        """How wide the widest label is, in the labels' font."""
        metrics = QFontMetrics(self.caption_font())
        return max((metrics.horizontalAdvance(name) for name in self.names()), default=0)

    def item_width(self) -> int:
        return max(ICON_M + 2 * PAD_Y, self.label_width() + 2 * PAD_X)

    def fit(self) -> None:
        """As wide as the widest label needs, in the font of the moment."""
        self.setFixedWidth(self.item_width() + 2 * MARGIN + 2 * self.frameWidth())
        self.scheduleDelayedItemsLayout()

    def shows_focus(self) -> bool:
        return self.hasFocus() and self._keyboard

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self.fit()

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt's name
        self._keyboard = event.reason() in (Qt.FocusReason.TabFocusReason,
                                            Qt.FocusReason.BacktabFocusReason,
                                            Qt.FocusReason.ShortcutFocusReason)
        super().focusInEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self._keyboard = False
        super().mousePressEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        self._keyboard = True
        super().keyPressEvent(event)
        self.viewport().update()
