"""A tool call in a reply: a compact block with the tool's name and how it went, which opens
to show the arguments and the result; while the call waits for the user's say, it is open and
offers Allow once / Always allow / Deny."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from desktop.core.chat_export import call_label
from desktop.core.tool_calls import CallState, Decision, ToolCall
from desktop.ui.views.labels import WrappedLabel, fold_button

MAX_SHOWN = 4000  # characters of arguments or result shown in the block (the chat keeps all)


def _pretty(arguments: str) -> str:
    """The arguments as the model wrote them, indented when they are JSON."""
    try:
        return json.dumps(json.loads(arguments or "{}"), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments


def _cut(text: str) -> str:
    if len(text) <= MAX_SHOWN:
        return text
    return text[:MAX_SHOWN] + f"\n[… {len(text) - MAX_SHOWN:,} more characters]"


class ToolCallBlock(QFrame):
    """One call. *decided* carries the call's id and the user's :class:`Decision`."""

    decided = Signal(str, str)

    def __init__(self, call: ToolCall, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolCall")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.call_id = call.id
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(4)
        self.header = fold_button("toolCallHeader")
        self.header.toggled.connect(self.set_open)
        layout.addWidget(self.header)
        self.details = QWidget()
        details = QVBoxLayout(self.details)
        details.setContentsMargins(16, 0, 0, 0)
        self.arguments = WrappedLabel()
        self.arguments.setObjectName("toolCallArguments")
        self.arguments.setAccessibleName("Tool call arguments")
        self.arguments.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result = WrappedLabel()
        self.result.setObjectName("toolCallResult")
        self.result.setAccessibleName("Tool call result")
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        details.addWidget(self.arguments)
        details.addWidget(self.result)
        layout.addWidget(self.details)
        self.asking = QWidget()
        row = QHBoxLayout(self.asking)
        row.setContentsMargins(16, 0, 0, 0)
        self.allow_once = QPushButton("Allow once")
        self.allow_always = QPushButton("Always allow")
        self.deny = QPushButton("Deny")
        self.allow_once.setProperty("primary", True)  # the answer most often given
        for button, decision in ((self.allow_once, Decision.ONCE),
                                 (self.allow_always, Decision.ALWAYS), (self.deny, Decision.DENY)):
            button.clicked.connect(lambda _=False, d=decision: self._decide(d))
            row.addWidget(button)
        row.addStretch(1)
        layout.addWidget(self.asking)
        self.state: CallState | None = None
        self.update_call(call)

    def update_call(self, call: ToolCall) -> None:
        """Show *call* as it is now."""
        state_changed = call.state != self.state
        self.state = call.state
        label = call_label(call)
        self.header.setText(f"Tool call: {label}")
        self.header.setAccessibleName(f"Tool call {label}")
        self.arguments.setText("Arguments:\n" + _cut(_pretty(call.arguments)))
        words = call.result or ("The user denied this call." if call.state == CallState.DENIED
                                else "")
        self.result.setText(("Error:\n" if call.state == CallState.FAILED else "Result:\n")
                            + _cut(words) if words else "")
        self.result.setVisible(bool(words) and self.details.isVisible())
        asking = call.state == CallState.ASKING
        self.asking.setVisible(asking)
        self.allow_always.setText(f"Always allow {call.tool}")
        self.allow_always.setToolTip(f"Run {call.tool} from {call.server} without asking from "
                                     "now on (revoke it on the Tools page)")
        if state_changed:
            self.set_open(asking)  # open while it asks: the user sees what would run

    def set_open(self, opened: bool) -> None:
        if self.header.isChecked() != opened:
            self.header.blockSignals(True)
            self.header.setChecked(opened)
            self.header.blockSignals(False)
        self.header.setArrowType(Qt.ArrowType.DownArrow if opened else Qt.ArrowType.RightArrow)
        self.details.setVisible(opened)
        self.result.setVisible(opened and bool(self.result.text()))

    def _decide(self, decision: Decision) -> None:
        for button in (self.allow_once, self.allow_always, self.deny):
            button.setEnabled(False)
        self.decided.emit(self.call_id, decision.value)
