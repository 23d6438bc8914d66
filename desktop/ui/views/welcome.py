"""What an empty chat shows: a short welcome and three example prompts; a click on one sends it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.ui.style import app_icon, icon, type_font
from desktop.ui.style.tokens import ICON_S, SPACE_L, SPACE_S, TYPE_TITLE

# (icon, prompt): things a small model does well, each a different kind of task.
EXAMPLES = (
    ("lightbulb", "Explain how a rainbow forms, in simple words."),
    ("feather", "Write a short poem about the sea."),
    ("code-xml", "Write a Python function that reverses a string."),
)


PROMPTS_WIDTH = 520  # pixels: the prompts' column, narrower than the chat's
LOGO = 48  # pixels: the app's icon over the welcome


class Welcome(QWidget):
    """A title, a line on privacy, and a button for each example prompt."""

    promptChosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, SPACE_L, 0, SPACE_L)
        layout.setSpacing(SPACE_S)
        layout.addStretch(1)
        self.logo = QLabel()
        self.logo.setPixmap(app_icon().pixmap(QSize(LOGO, LOGO), self.devicePixelRatioF()))
        self.logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.logo)
        layout.addSpacing(SPACE_S)
        self.title = QLabel("What shall we talk about?")
        self.title.setFont(type_font(TYPE_TITLE, self.font()))
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.note = QLabel("Type a message below, or start with one of these. Everything stays "
                           "on this computer.")
        self.note.setObjectName("welcomeNote")
        self.note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        layout.addSpacing(SPACE_L)
        # The prompts, one under another, all as wide as the widest (and at most PROMPTS_WIDTH).
        column = QWidget()
        column.setMaximumWidth(PROMPTS_WIDTH)
        prompts = QVBoxLayout(column)
        prompts.setContentsMargins(0, 0, 0, 0)
        prompts.setSpacing(SPACE_S)
        self.prompts: list[QPushButton] = []
        for name, prompt in EXAMPLES:
            button = QPushButton(icon(name, "accent"), prompt)
            button.setObjectName("welcomePrompt")
            button.setIconSize(QSize(ICON_S, ICON_S))
            button.setAccessibleName(f"Send: {prompt}")
            button.setToolTip("Send this to the model")
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _=False, p=prompt: self.promptChosen.emit(p))
            prompts.addWidget(button)
            self.prompts.append(button)
        layout.addWidget(column, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # the app's font size changed
            self.title.setFont(type_font(TYPE_TITLE, self.font()))
