"""A scrolling grid of cards, one per row of an item model, as many columns as the width holds.

Cards are made once per item (by its key) and kept: a filter or a new order only moves and
hides them, so a card keeps what it shows (a download's progress, the keyboard focus) and a
test's reference to it stays good. The Tab key goes through the cards in the order they are
shown.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QAbstractItemModel, QEvent, QModelIndex, QObject, Qt
from PySide6.QtWidgets import QApplication, QFrame, QGridLayout, QScrollArea, QWidget

from desktop.ui.style.tokens import SPACE_M, SPACE_XS


class CardGrid(QScrollArea):
    """The rows of *model* as cards: *key* names an item, *make* builds its card, *update*
    shows the item's data on it, *actions* lists a card's buttons for the Tab order."""

    def __init__(self, model: QAbstractItemModel, key: Callable[[QModelIndex], str],
                 make: Callable[[QModelIndex], QWidget],
                 update: Callable[[QWidget, QModelIndex], None],
                 actions: Callable[[QWidget], list[QWidget]], card_width: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._key = key
        self._make = make
        self._update = update
        self._actions = actions
        self.card_width = card_width
        self.cards: dict[str, QWidget] = {}  # every card made, by key, shown or not
        self.shown: list[str] = []  # the keys of the cards shown, in order
        self.columns = 1
        self.before: QWidget | None = None  # what Tab leaves for the first card
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QWidget()
        inner.setObjectName("cardGrid")
        self._grid = QGridLayout(inner)
        # In line with the filters above; a little room for the scroll bar on the right.
        self._grid.setContentsMargins(0, SPACE_XS, SPACE_XS, SPACE_M)
        self._grid.setSpacing(SPACE_M)
        self.setWidget(inner)
        self.viewport().installEventFilter(self)
        model.modelReset.connect(self._reset)
        for signal in (model.rowsInserted, model.rowsRemoved, model.rowsMoved,
                       model.layoutChanged):
            signal.connect(self.place)
        model.dataChanged.connect(self._changed)
        # A card's button that gets the keyboard from outside the grid (Tab from the filters)
        # is scrolled to, as QScrollArea does only for focus moving within it.
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_moved)
        self._reset()

    def card(self, key: str) -> QWidget | None:
        """The card of the item called *key*, shown or not; None if the model has no such
        item."""
        return self.cards.get(key)

    def _reset(self) -> None:
        for card in self.cards.values():
            self._grid.removeWidget(card)
            card.deleteLater()
        self.cards = {}
        self.shown = []
        self.place()

    def _fit_columns(self) -> int:
        margins = self._grid.contentsMargins()
        room = self.viewport().width() - margins.left() - margins.right()
        gap = self._grid.horizontalSpacing()
        return max(1, (room + gap) // (self.card_width + gap))

    def place(self, *_args: object) -> None:
        """Put the model's rows in the grid, in its order, as many to a row as fit."""
        keys: list[str] = []
        for row in range(self.model.rowCount()):
            index = self.model.index(row, 0)
            key = self._key(index)
            card = self.cards.get(key)
            if card is None:
                card = self.cards[key] = self._make(index)
            self._update(card, index)  # a hidden card was not told of changes
            keys.append(key)
        columns = self._fit_columns()
        if keys == self.shown and columns == self.columns:
            return
        self.shown, self.columns = keys, columns
        grid = self._grid
        for card in self.cards.values():
            grid.removeWidget(card)
        for place, key in enumerate(keys):
            grid.addWidget(self.cards[key], place // columns, place % columns)
        for key, card in self.cards.items():
            card.setVisible(key in keys)
        for column in range(grid.columnCount()):
            grid.setColumnStretch(column, 1 if column < columns else 0)
            grid.setColumnMinimumWidth(column, 0)
        rows = -(-len(keys) // columns)
        for row in range(grid.rowCount()):
            grid.setRowStretch(row, 0)
        grid.setRowStretch(rows, 1)  # the cards keep their height, at the top
        self._chain_tab_order()

    def _chain_tab_order(self) -> None:
        order = [button for key in self.shown for button in self._actions(self.cards[key])]
        if self.before is not None and order:
            order.insert(0, self.before)
        for first, second in zip(order, order[1:]):
            QWidget.setTabOrder(first, second)

    def _changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int]) -> None:
        for row in range(top.row(), bottom.row() + 1):
            index = self.model.index(row, 0)
            card = self.cards.get(self._key(index))
            if card is not None:
                self._update(card, index)

    def _focus_moved(self, _old: QWidget | None, new: QWidget | None) -> None:
        if new is not None and self.widget().isAncestorOf(new):
            self.ensureWidgetVisible(new)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.viewport() and event.type() == QEvent.Type.Resize:
            if self._fit_columns() != self.columns:
                self.place()
        return super().eventFilter(watched, event)
