"""The bar over the chat: the conversation's title, the adapters in use, the model picker, and
small buttons for the system prompt, export and the side panels.

Everything in it gives way before it widens the window: the title and the adapters end in "…"
(their tooltips have them whole), the buttons are icons with tooltips, and only the model
picker keeps the room its text needs.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QResizeEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMenu, QToolButton, QWidget

from desktop.ui.style import current, icon, icon_pixmap
from desktop.ui.style.tokens import ICON_S, SPACE_M, SPACE_S, SPACE_XS
from desktop.ui.views.labels import ElidedLabel, icon_button
from desktop.ui.views.model_picker import ModelPicker


class AdaptersLabel(ElidedLabel):
    """The adapters in use, in a chip: "Adapters (both): pirate 0.8 + sql 0.5" where it fits,
    cut short with "…" where it nearly does, "Adapters (both)" or "Adapters" where there is
    little room, and the adapters' icon alone where there is less (the tooltip always has it
    all)."""

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self.short_text = text.split(":")[0]
        super().setText(text)

    def shown_text(self, room: int) -> str | None:
        """What the chip shows in *room* pixels of text: None for the icon alone."""
        metrics = self.fontMetrics()
        if room < metrics.horizontalAdvance(self.short_text.split(" (")[0]):
            return None  # a word cut short says less than the icon
        short = metrics.horizontalAdvance(self.short_text)
        fits = metrics.horizontalAdvance(self.full_text) <= room
        text = self.short_text if room < 2 * short and not fits else self.full_text
        if metrics.horizontalAdvance(text) > room and text == self.short_text:
            text = self.short_text.split(" (")[0]  # "Adapters", without the preset's name
        return metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)

    def width_for(self, room: int) -> int:
        """How wide the chip needs to be for what it shows in a width of *room*: no wider
        than the short forms and the icon take, so that the title has the rest."""
        frame = self.width() - self.contentsRect().width()
        text = self.shown_text(room - frame)
        if text is None:
            return self.minimumWidth()
        if not self.short_text.startswith(text.removesuffix("…")):
            return min(room, self.sizeHint().width())  # the whole text, or as much as fits
        return max(self.minimumWidth(), self.fontMetrics().horizontalAdvance(text) + frame + 1)

    def _elide(self) -> None:
        text = self.shown_text(self.contentsRect().width())
        if text is None:
            theme = current()
            self.setPixmap(icon_pixmap("layers", ICON_S, theme.color("text"),
                                       self.devicePixelRatioF()))
        else:
            QLabel.setText(self, text)


def tool_button(icon_name: str, name: str, tip: str) -> QToolButton:
    """A flat icon button of the header (or of the message box)."""
    button = icon_button(icon_name, name, tip)
    button.setProperty("chatTool", True)
    return button


class ChatHeader(QFrame):
    """The chat's header; the chat page wires its buttons."""

    exportRequested = Signal(str)  # "md" or "json"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatHeader")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(SPACE_M, SPACE_S, SPACE_S, SPACE_S)
        layout.setSpacing(SPACE_XS)
        self.title = ElidedLabel("New chat", hug=True)
        self.title.setObjectName("chatTitle")
        self.title.setMinimumWidth(self.title.fontMetrics().averageCharWidth() * 6)
        # The title and the adapters take the room their text needs; where there is not that
        # much, they share what there is.
        layout.addWidget(self.title, 1)
        layout.addSpacing(SPACE_S)
        self.adapters_label = AdaptersLabel("", hug=True)
        self.adapters_label.setObjectName("chatAdapters")
        self.adapters_label.setIndent(0)  # the chip's padding is all the room its text needs
        self.adapters_label.setAccessibleName("Active adapters")
        self.adapters_label.setMinimumWidth(ICON_S + 2 * SPACE_S + 2)  # room for the icon
        self.adapters_label.hide()
        layout.addWidget(self.adapters_label, 1)
        layout.addStretch(0)
        self._gap = layout.itemAt(layout.count() - 1)  # what the title and chip leave over
        for label in (self.title, self.adapters_label):
            label.installEventFilter(self)
        self.model_picker = ModelPicker()
        layout.addWidget(self.model_picker)
        layout.addSpacing(SPACE_S)
        self.system_button = tool_button("scroll-text", "System prompt",
                                         "System prompt: how the assistant behaves in this chat")
        self.system_button.setCheckable(True)
        layout.addWidget(self.system_button)
        self.export_button = tool_button("download", "Export conversation",
                                         "Export the conversation")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        menu.addAction("As Markdown…", lambda: self.exportRequested.emit("md"))
        menu.addAction("As JSON…", lambda: self.exportRequested.emit("json"))
        self.export_button.setMenu(menu)
        layout.addWidget(self.export_button)
        self.panels = QHBoxLayout()  # the buttons that open the side panels
        self.panels.setContentsMargins(SPACE_S, 0, 0, 0)
        self.panels.setSpacing(SPACE_XS)
        layout.addLayout(self.panels)
        self.panel_buttons: dict[str, QToolButton] = {}

    def add_panel_button(self, name: str, action: QAction, icon_name: str) -> QToolButton:
        """A button that shows and hides the side panel *name* through its *action*
        (checkable, checked while the panel is open)."""
        action.setIcon(icon(icon_name, "text_muted"))
        action.setToolTip(f"{name}: show or hide the panel")
        button = tool_button(icon_name, f"Show or hide {name}", action.toolTip())
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.panels.addWidget(button)
        self.panel_buttons[name] = button
        return button

    def set_adapters_text(self, text: str) -> None:
        """Name the LoRA adapters that change the replies ("pirate 0.8 + sql 0.5"), or none."""
        self.adapters_label.setText(text)
        self.adapters_label.setVisible(bool(text))
        self._share()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Resize:
            self._share()
        return False

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._share()

    def _share(self) -> None:
        """Share the room between the title and the adapters: the chip takes no more than half
        of it while the title is cut short, and only as much as the form it shows needs (the
        short ones are narrower than the room), so the title has the rest."""
        chip, title = self.adapters_label, self.title
        if chip.isHidden():
            return
        room = title.width() + chip.width() + self._gap.geometry().width()
        wanted = max(room - title.sizeHint().width(), room // 2)
        wanted = max(chip.minimumWidth(), min(wanted, room - title.minimumWidth()))
        chip.setMaximumWidth(chip.width_for(wanted))
