"""The downloads tab, and the pieces the catalog tab shares with it: the download controls (a
Download button that becomes a progress bar with speed, ETA, Pause/Resume and Cancel) and a
scrolling list of cards that follows an item model."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QAbstractItemModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.downloads import DownloadEvent, State, format_bytes
from desktop.ui.downloads import DownloadsController
from desktop.ui.models.downloads import DownloadListModel, EventRole, download_label

STATE_WORDS = {
    State.QUEUED: "Waiting for a free slot",
    State.STARTING: "Asking the hub about the file",
    State.DOWNLOADING: "Downloading",
    State.RETRYING: "Connection trouble",
    State.VERIFYING: "Checking the download",
    State.PAUSED: "Paused",
    State.DONE: "Installed",
    State.FAILED: "Failed",
    State.CANCELLED: "Cancelled",
}
ACTIVE = (State.QUEUED, State.STARTING, State.DOWNLOADING, State.RETRYING, State.VERIFYING)


def format_eta(seconds: float | None) -> str:
    """12 -> '12 s left', 135 -> '2 min 15 s left', 7300 -> '2 h 1 min left'."""
    if seconds is None:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s left"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s left"
    return f"{whole // 3600} h {whole % 3600 // 60} min left"


def describe(event: DownloadEvent) -> str:
    """One line for the user: where the download stands, in words and numbers."""
    words = STATE_WORDS[event.state]
    if event.state is State.FAILED and event.message:
        return f"{words}: {event.message}"
    if event.state in (State.CANCELLED, State.RETRYING) and event.message:
        return event.message  # it says so itself ("Cancelled; …", "Retrying in 2 s …")
    if event.state is State.DONE:
        return words + (f" at {event.path}" if event.path else "")
    parts = [words]
    if event.total_bytes:
        parts.append(f"{format_bytes(event.done_bytes)} of {format_bytes(event.total_bytes)}")
    elif event.done_bytes:
        parts.append(format_bytes(event.done_bytes))
    if event.state is State.DOWNLOADING and event.speed > 0:
        parts.append(f"{format_bytes(event.speed)}/s")
        eta = format_eta(event.eta)
        if eta:
            parts.append(eta)
    if event.state is State.PAUSED and event.message:
        parts[0] = event.message  # why it is paused, and that its bytes are kept
        parts.append(parts.pop(0))
    return " · ".join(parts)


class DownloadControls(QWidget):
    """A Download button; once a download runs, its progress, speed, ETA, Pause/Resume and
    Cancel; after a failure, the reason and Try again."""

    downloadClicked = Signal()
    pauseClicked = Signal()
    resumeClicked = Signal()
    cancelClicked = Signal()

    def __init__(self, name: str, can_start: bool = True, primary: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.can_start = can_start
        self.state: State | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.download_button = QPushButton("Download")
        self.download_button.setAccessibleName(f"Download {name}")
        self.download_button.clicked.connect(self.downloadClicked)
        self.download_button.setSizePolicy(QSizePolicy.Policy.Maximum,
                                           QSizePolicy.Policy.Fixed)
        # The one action of a catalog card; in the downloads tab, one among many rows.
        self.download_button.setProperty("primary", primary)
        self.progress = QProgressBar()
        self.progress.setAccessibleName(f"Download progress of {name}")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setAccessibleName(f"Pause download of {name}")
        self.pause_button.clicked.connect(self._pause_or_resume)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName(f"Cancel download of {name}")
        self.cancel_button.clicked.connect(self.cancelClicked)
        for button in (self.pause_button, self.cancel_button):
            button.setProperty("subtle", True)  # beside the bar, quieter than it
        row.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignRight)
        row.addWidget(self.progress, 1)
        row.addWidget(self.pause_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail.setAccessibleName(f"Download status of {name}")
        layout.addWidget(self.detail)
        self.show_event(None)

    def buttons(self) -> list[QPushButton]:
        """The buttons, in the order Tab goes through them."""
        return [self.download_button, self.pause_button, self.cancel_button]

    def show_event(self, event: DownloadEvent | None) -> None:
        """Show where a download stands (None: it never started)."""
        self.state = event.state if event is not None else None
        running = event is not None and event.state in ACTIVE
        paused = event is not None and event.state is State.PAUSED
        failed = event is not None and event.state is State.FAILED
        startable = event is None or event.state in (State.CANCELLED, State.DONE)
        self.download_button.setVisible(startable and self.can_start)
        self.download_button.setText("Download" if event is None else "Download again")
        self.progress.setVisible(running or paused)
        self.pause_button.setVisible(running or paused or failed)
        self.cancel_button.setVisible(running or paused or failed)
        if paused:
            self.pause_button.setText("Resume")
            self.pause_button.setAccessibleName(f"Resume download of {self.name}")
        elif failed:
            self.pause_button.setText("Try again")
            self.pause_button.setAccessibleName(f"Try the download of {self.name} again")
        else:
            self.pause_button.setText("Pause")
            self.pause_button.setAccessibleName(f"Pause download of {self.name}")
        self.pause_button.setEnabled(event is None or event.state is not State.VERIFYING)
        # A failed download keeps its bytes when they are good; Cancel deletes them.
        self.cancel_button.setText("Discard" if failed else "Cancel")
        if event is not None and (running or paused):
            fraction = event.fraction
            if fraction is None and event.state in (State.QUEUED, State.STARTING):
                self.progress.setRange(0, 0)  # busy: the size is not known yet
            else:
                self.progress.setRange(0, 1000)
                self.progress.setValue(int((fraction or 0.0) * 1000))
        self.detail.setText(describe(event) if event is not None else "")
        self.detail.setVisible(event is not None)

    def _pause_or_resume(self) -> None:
        if self.state in (State.PAUSED, State.FAILED):
            self.resumeClicked.emit()
        else:
            self.pauseClicked.emit()


class CardList(QScrollArea):
    """A column of widgets, one per row of a list model, kept in step with the model."""

    def __init__(self, model: QAbstractItemModel, make: Callable[[QModelIndex], QWidget],
                 update: Callable[[QWidget, QModelIndex], None], empty_text: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._make = make
        self._update = update
        self.cards: list[QWidget] = []
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        inner = QWidget()
        self._layout = QVBoxLayout(inner)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self.empty = QLabel(empty_text)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._layout.addWidget(self.empty)
        self._layout.addStretch(1)
        self.setWidget(inner)
        model.modelReset.connect(self._rebuild)
        model.rowsInserted.connect(self._inserted)
        model.rowsRemoved.connect(self._removed)
        model.dataChanged.connect(self._changed)
        self._rebuild()

    def _rebuild(self) -> None:
        for card in self.cards:
            self._layout.removeWidget(card)
            card.deleteLater()
        self.cards = []
        self._inserted(QModelIndex(), 0, self.model.rowCount() - 1)

    def _inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        for row in range(first, last + 1):
            index = self.model.index(row, 0)
            card = self._make(index)
            self._update(card, index)
            self.cards.insert(row, card)
            self._layout.insertWidget(row + 1, card)  # after the "empty" label
        self.empty.setVisible(not self.cards)

    def _removed(self, parent: QModelIndex, first: int, last: int) -> None:
        for row in reversed(range(first, last + 1)):
            card = self.cards.pop(row)
            self._layout.removeWidget(card)
            card.deleteLater()
        self.empty.setVisible(not self.cards)

    def _changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int]) -> None:
        for row in range(top.row(), bottom.row() + 1):
            if 0 <= row < len(self.cards):
                self._update(self.cards[row], self.model.index(row, 0))


class DownloadCard(QFrame):
    """One download in the downloads tab."""

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        self.title = QLabel(download_label(key))
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        layout.addWidget(self.title)
        self.controls = DownloadControls(download_label(key), can_start=True)
        layout.addWidget(self.controls)
        self.setAccessibleName(f"Download {download_label(key)}")


class DownloadsTab(QWidget):
    """Every download since NoMoat started, with its state, progress and controls."""

    def __init__(self, downloads: DownloadsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.downloads = downloads
        self.model = DownloadListModel(self)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        top.addWidget(self.summary, 1)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setAccessibleName("Clear finished downloads")
        self.clear_button.clicked.connect(self.model.remove_finished)
        top.addWidget(self.clear_button)
        layout.addLayout(top)
        self.cards = CardList(self.model, self._make, self._update,
                              "No downloads yet. Download a model from the catalog or from "
                              "Explore the hub.")
        self.cards.setAccessibleName("Downloads")
        layout.addWidget(self.cards, 1)
        downloads.changed.connect(self._changed)
        for event in downloads.events():
            self.model.update(event)
        self._summarize()

    def card(self, key: str) -> DownloadCard | None:
        row = self.model.row_of(key)
        return self.cards.cards[row] if row >= 0 else None  # type: ignore[return-value]

    def _changed(self, event: DownloadEvent) -> None:
        self.model.update(event)
        self._summarize()

    def _summarize(self) -> None:
        events = [self.model.event_at(row) for row in range(self.model.rowCount())]
        running = sum(1 for e in events if e is not None and e.state in ACTIVE)
        self.summary.setText(f"{running} running or waiting; at most "
                             f"{self.downloads.manager.max_concurrent} at a time."
                             if events else "")

    def _make(self, index: QModelIndex) -> QWidget:
        event: DownloadEvent = index.data(EventRole)
        card = DownloadCard(event.key)
        key = event.key
        card.controls.downloadClicked.connect(lambda: self.downloads.restart(key))
        card.controls.pauseClicked.connect(lambda: self.downloads.pause(key))
        card.controls.resumeClicked.connect(lambda: self.downloads.resume(key))
        card.controls.cancelClicked.connect(lambda: self.downloads.cancel(key))
        return card

    def _update(self, card: QWidget, index: QModelIndex) -> None:
        assert isinstance(card, DownloadCard)
        card.controls.show_event(index.data(EventRole))
