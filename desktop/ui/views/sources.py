"""Documents in the chat's views: the button that picks a chat's collections, and a reply's
"Sources (n)" section, whose entries open their files with the system's viewer."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QMenu, QPushButton, QScrollArea,
                               QToolButton, QVBoxLayout, QWidget)

from desktop.core.chat_export import one_line, source_label
from desktop.core.chat_records import Source
from desktop.ui.chat_controller import ChatController
from desktop.ui.style import icon
from desktop.ui.views.labels import CompactButton, ElidedLabel, WrappedLabel, fold_button


def source_url(source: Source) -> QUrl:
    """The address that opens a source's file: a file URL, at its page for a PDF."""
    url = QUrl.fromLocalFile(source.path)
    if source.page is not None and source.path.lower().endswith(".pdf"):
        url.setFragment(f"page={source.page}")
    return url


class SourceEntry(QFrame):
    """One source: "[1] file, page, heading" (a button that opens the file), its score, and a
    line of the passage."""

    def __init__(self, number: int, source: Source, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.number = number
        self.source = source
        self.setObjectName("sourceEntry")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(0)
        top = QHBoxLayout()
        label = source_label(number, source)
        self.open_button = QPushButton(label)
        self.open_button.setFlat(True)
        self.open_button.setStyleSheet("text-align: left;")
        self.open_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.open_button.setToolTip(f"Open {source.path}")
        self.open_button.setAccessibleName(f"Open source {label}")
        top.addWidget(self.open_button, 1)
        self.score = QLabel(f"score {source.score:.3f}")
        self.score.setToolTip("How well the passage matched the question, by its words and "
                              "its meaning together (higher is better).")
        top.addWidget(self.score)
        layout.addLayout(top)
        self.snippet = ElidedLabel(one_line(source.snippet, 400))
        self.snippet.setToolTip(source.snippet)
        layout.addWidget(self.snippet)

    def set_current(self, current: bool) -> None:
        """Mark the entry a citation in the reply pointed to."""
        self.setFrameShape(QFrame.Shape.Box if current else QFrame.Shape.NoFrame)


class SourcesSection(QWidget):
    """A reply's sources under its text, folded under "Sources (n)"; a citation in the reply
    opens the section at its entry."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        self.header = fold_button("sourcesHeader")
        self.header.toggled.connect(self.set_open)
        layout.addWidget(self.header)
        self.body = QWidget()
        self.list = QVBoxLayout(self.body)
        self.list.setContentsMargins(12, 0, 0, 0)
        self.list.setSpacing(0)
        layout.addWidget(self.body)
        self.problem = WrappedLabel()
        self.problem.setObjectName("messageReason")
        self.problem.hide()
        layout.addWidget(self.problem)
        self.entries: list[SourceEntry] = []
        self.set_sources(())

    def set_sources(self, sources: Sequence[Source]) -> None:
        """Show these sources (the section hides when there are none)."""
        if [e.source for e in self.entries] == list(sources):
            return
        for entry in self.entries:
            self.list.removeWidget(entry)
            entry.deleteLater()
        self.entries = []
        for number, source in enumerate(sources, start=1):
            entry = SourceEntry(number, source, self.body)
            entry.open_button.clicked.connect(lambda _=False, e=entry: self.open_source(e))
            self.list.addWidget(entry)
            self.entries.append(entry)
        title = f"Sources ({len(self.entries)})"
        self.header.setText(title)
        self.header.setAccessibleName(title)
        self.setVisible(bool(self.entries))
        self.set_open(False)

    def set_open(self, opened: bool) -> None:
        if self.header.isChecked() != opened:
            self.header.blockSignals(True)
            self.header.setChecked(opened)
            self.header.blockSignals(False)
        self.header.setArrowType(Qt.ArrowType.DownArrow if opened else Qt.ArrowType.RightArrow)
        self.body.setVisible(opened)

    @property
    def opened(self) -> bool:
        return self.header.isChecked()

    def show_source(self, number: int) -> None:
        """A citation [number] was clicked: open the section at that entry, marked, with the
        keyboard focus on it, and scroll the chat to it."""
        if not 1 <= number <= len(self.entries):
            return
        self.set_open(True)
        entry = self.entries[number - 1]
        for other in self.entries:
            other.set_current(other is entry)
        entry.open_button.setFocus(Qt.FocusReason.OtherFocusReason)
        scroll = self.parent()
        while scroll is not None and not isinstance(scroll, QScrollArea):
            scroll = scroll.parent()
        if isinstance(scroll, QScrollArea):
            scroll.ensureWidgetVisible(entry)

    def open_source(self, entry: SourceEntry) -> None:
        """Open the entry's file with the system's viewer (at its page, for a PDF)."""
        path = entry.source.path
        if not os.path.exists(path):
            self.problem.setText(f"{path} is not there any more. It may have been moved or "
                                 "deleted since this reply.")
            self.problem.show()
            return
        self.problem.hide()
        if not QDesktopServices.openUrl(source_url(entry.source)):
            self.problem.setText(f"No program on this computer opens {path}.")
            self.problem.show()


class DocsButton(CompactButton):
    """In the message box: which document collections the chat answers from."""

    manageRequested = Signal()  # the user asked for the Documents page

    def __init__(self, chat: ChatController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chat = chat
        #: the collections there are, by name (set by the app)
        self.names: Callable[[], list[str]] = lambda: []
        self.setIcon(icon("file-text", "text_muted"))
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolTip("Pick the document collections this chat answers from; the passages "
                        "that match each message are given to the model with it")
        self.docs_menu = QMenu(self)
        self.docs_menu.aboutToShow.connect(self.fill_menu)
        self.setMenu(self.docs_menu)
        chat.docsChanged.connect(self._changed)
        self._changed([])

    def fill_menu(self) -> None:
        """The collections, each checkable, and the way to the Documents page."""
        self.docs_menu.clear()
        there = self.names()
        # A collection picked before it was deleted or renamed can still be unticked.
        for name in there + [n for n in self.chat.docs if n not in there]:
            label = name if name in there else f"{name} (not there now)"
            action = self.docs_menu.addAction(label)
            action.setCheckable(True)
            action.setChecked(name in self.chat.docs)
            action.toggled.connect(lambda on, n=name: self._pick(n, on))
        if not there:
            self.docs_menu.addAction("No collections yet").setEnabled(False)
        self.docs_menu.addSeparator()
        self.docs_menu.addAction("Manage collections…", lambda: self.manageRequested.emit())

    def _pick(self, name: str, on: bool) -> None:
        picked = [n for n in self.chat.docs if n != name] + ([name] if on else [])
        self.chat.set_docs(picked)

    def _changed(self, names: list[str]) -> None:
        self.setText(f"Documents ({len(names)})" if names else "Documents")
        self.setAccessibleName(f"Documents this chat answers from: {', '.join(names)}"
                               if names else "Documents this chat answers from")
