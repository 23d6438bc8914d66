"""A reasoning model's thinking above its answer: live while it thinks, folded once the answer
begins, opened again with a click."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from desktop.ui.views.labels import WrappedLabel, fold_button

THINKING = "Thinking…"


def thought_for(seconds: float | None) -> str:
    """The folded section's heading: "Thought for 12 s" (or "Thought" when not timed)."""
    return "Thought" if seconds is None else f"Thought for {max(1, round(seconds))} s"


class ThinkingSection(QWidget):
    """The header button folds and opens the thinking; the text is plain, as the model wrote it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.setSpacing(2)
        self.header = fold_button("thinkingHeader")
        self.header.toggled.connect(self.set_open)
        layout.addWidget(self.header)
        self.body = WrappedLabel()
        self.body.setObjectName("thinkingText")
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.setAccessibleName("The model's thinking")
        layout.addWidget(self.body)
        self.text = ""
        self.thinking = False
        self._title(THINKING)
        self.set_open(False)
        self.hide()

    def _title(self, title: str) -> None:
        self.header.setText(title)
        self.header.setAccessibleName(title)

    def start(self) -> None:
        """The model began to think: show it live."""
        self.thinking = True
        self._title(THINKING)
        self.show()
        self.set_open(True)

    def append(self, piece: str) -> None:
        if not self.thinking and not self.text:
            self.start()
        self.text += piece
        if self.body.isVisible() or self.thinking:
            self.body.setText(self.text.strip())

    def finish(self, seconds: float | None) -> None:
        """The answer begins (or a saved reply is shown): fold the thinking under its time."""
        self.thinking = False
        self._title(thought_for(seconds))
        self.set_open(False)
        self.setVisible(bool(self.text.strip()))

    def set_text(self, text: str, seconds: float | None) -> None:
        self.text = text
        self.body.setText(text.strip())
        self.finish(seconds)

    def set_open(self, opened: bool) -> None:
        if self.header.isChecked() != opened:
            self.header.blockSignals(True)
            self.header.setChecked(opened)
            self.header.blockSignals(False)
        self.header.setArrowType(Qt.ArrowType.DownArrow if opened else Qt.ArrowType.RightArrow)
        if opened:
            self.body.setText(self.text.strip())
        self.body.setVisible(opened)

    @property
    def opened(self) -> bool:
        return self.header.isChecked()
