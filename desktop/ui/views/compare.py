"""The compare page: one prompt answered by two set-ups side by side, and the user's votes.

A set-up is a model with adapters: a model alone (no adapters), a saved preset
(``<model>+<preset>``, as the API names it) or the model with the adapters panel's stack. The
engine has one model thread, so the two answers are computed one after the other, left first,
each streamed into its own column; both get the same prompt, sampling and seed. In blind mode
the sides are shuffled and named only once the vote is in.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, cast

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QShowEvent, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.client.api import EngineClient, EngineError, StreamEnd
from desktop.core.adapters import describe_stack
from desktop.core.compare import VoteStore, Winner, blind_sides
from desktop.ui.adapters_controller import AdaptersController
from desktop.ui.chat_controller import PAINT_INTERVAL_MS, SAMPLING_KEYS, ChatController
from desktop.ui.engine import EngineController
from desktop.ui.models.adapters import TallyTableModel
from desktop.ui.views.labels import ElidedLabel
from desktop.ui.workers import Workers

SIDES = ("Left", "Right")


@dataclass(frozen=True)
class Setup:
    """What answers one side: votes name it by ``name``."""

    name: str
    label: str
    model: str
    lora: tuple[dict[str, Any], ...] | None = None  # None: what the model name says

    def request(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": self.model}
        if self.lora is not None:
            fields["lora"] = [dict(item) for item in self.lora]
        return fields


def setups_from(models: list[dict[str, Any]], adapters: AdaptersController) -> list[Setup]:
    """The set-ups to choose from: each model bare, each preset, and the panel's stack."""
    found = []
    for entry in models:
        model_id = str(entry.get("id", ""))
        if not model_id:
            continue
        if "+" in model_id:  # a preset, applied by the engine
            description = entry.get("description") or "adapters"
            found.append(Setup(model_id, f"{model_id} ({description})", model_id))
        else:
            found.append(Setup(model_id, f"{model_id} (no adapters)", model_id, ()))
    active = adapters.active_entries()
    if active and adapters.model_id:
        text = describe_stack((e.name, e.scale) for e in active)
        found.append(Setup(f"{adapters.model_id} with {text}",
                           f"{adapters.model_id} with the panel's adapters ({text})",
                           adapters.model_id,
                           tuple({"name": e.name, "scale": e.scale} for e in active)))
    return found


@dataclass
class CompareRun:
    """One comparison, shared between the page and its worker."""

    prompt: str
    sides: tuple[Setup, Setup]  # as shown: left, right
    blind: bool
    sampling: dict[str, Any]
    cancelled: threading.Event = field(default_factory=threading.Event)
    texts: list[str] = field(default_factory=lambda: ["", ""])
    errors: list[str] = field(default_factory=lambda: ["", ""])
    _pieces: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, side: int, piece: str) -> None:
        with self._lock:
            self._pieces[side].append(piece)

    def take(self, side: int) -> str:
        with self._lock:
            text = "".join(self._pieces[side])
            self._pieces[side].clear()
        return text


class CompareSignals(QObject):
    """What :func:`run_comparison` reports, queued to the GUI thread."""

    sideStarted = Signal(object, int)
    sideFinished = Signal(object, int)
    finished = Signal(object)


def run_comparison(client: EngineClient, run: CompareRun, signals: CompareSignals) -> None:
    """Worker side: stream the left set-up's answer, then the right one's."""
    messages = [{"role": "user", "content": run.prompt}]
    for side, setup in enumerate(run.sides):
        if run.cancelled.is_set():
            run.errors[side] = "Stopped before it began."
            signals.sideFinished.emit(run, side)
            continue
        signals.sideStarted.emit(run, side)
        try:
            # A generator: closing it disconnects, so a stopped answer stops the engine too.
            stream = cast(Generator[str | StreamEnd, None, None],
                          client.chat_stream(messages, **setup.request(), **run.sampling))
            try:
                for piece in stream:
                    if run.cancelled.is_set():
                        break
                    if not isinstance(piece, StreamEnd):
                        run.texts[side] += piece
                        run.push(side, piece)
            finally:
                stream.close()
        except EngineError as exc:
            run.errors[side] = str(exc)
        signals.sideFinished.emit(run, side)
    signals.finished.emit(run)


class ComparePage(QWidget):
    """Two set-ups, one prompt, two streamed answers, a vote, and the tally."""

    #: emitted when a comparison has both answers (or has stopped)
    compared = Signal(object)
    #: emitted when a vote is stored, with the Vote
    voted = Signal(object)

    def __init__(self, engine: EngineController, chat: ChatController,
                 adapters: AdaptersController, workers: Workers,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.chat = chat
        self.adapters = adapters
        self.workers = workers
        self.votes = VoteStore()
        self.setups: dict[str, Setup] = {}
        self.run: CompareRun | None = None  # the running or last finished comparison
        self.running = False
        self.revealed = True
        self._signals = CompareSignals(self)
        self._signals.sideStarted.connect(self._side_started)
        self._signals.sideFinished.connect(self._side_finished)
        self._signals.finished.connect(self._finished)
        self._timer = QTimer(self)
        self._timer.setInterval(PAINT_INTERVAL_MS)
        self._timer.timeout.connect(self._paint)

        layout = QVBoxLayout(self)
        about = QLabel("Both set-ups answer the same prompt with the same sampling and seed. The "
                       "engine runs one model at a time, so the left side answers first and "
                       "then the right, each into its own column. Blind mode shuffles the "
                       "sides and hides their names until you vote.")
        about.setWordWrap(True)
        layout.addWidget(about)
        choose = QGridLayout()
        self.pickers = (QComboBox(), QComboBox())
        for row, (picker, label) in enumerate(zip(self.pickers, ("Set-up A", "Set-up B"))):
            picker.setAccessibleName(label)
            # As wide as the page, not as the longest set-up's name (it may be long).
            picker.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            picker.setMinimumContentsLength(24)
            choose.addWidget(QLabel(label), row, 0)
            choose.addWidget(picker, row, 1)
        choose.setColumnStretch(1, 1)
        self.blind = QCheckBox("Blind: shuffle the sides and hide the names until I vote")
        self.blind.setChecked(True)
        choose.addWidget(self.blind, 2, 0, 1, 2)
        layout.addLayout(choose)

        self.prompt = QPlainTextEdit()
        self.prompt.setAccessibleName("Prompt to compare")
        self.prompt.setPlaceholderText("A prompt both set-ups answer")
        self.prompt.setMaximumHeight(90)
        layout.addWidget(self.prompt)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Compare")
        self.run_button.setAccessibleName("Run the comparison")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.status, 1)
        layout.addLayout(buttons)

        answers = QHBoxLayout()
        self.titles: list[ElidedLabel] = []
        self.views: list[QPlainTextEdit] = []
        for name in SIDES:
            column = QVBoxLayout()
            title = ElidedLabel(name)  # a long set-up's name never makes its side the wider
            title.setObjectName("chatTitle")
            view = QPlainTextEdit()
            view.setReadOnly(True)
            view.setAccessibleName(f"{name} answer")
            column.addWidget(title)
            column.addWidget(view, 1)
            answers.addLayout(column, 1)
            self.titles.append(title)
            self.views.append(view)
        layout.addLayout(answers, 1)

        vote_row = QHBoxLayout()
        self.vote_buttons: dict[Winner, QPushButton] = {
            "left": QPushButton("Left is better"), "tie": QPushButton("Tie"),
            "right": QPushButton("Right is better")}
        for winner, button in self.vote_buttons.items():
            button.setEnabled(False)
            button.clicked.connect(lambda _=False, w=winner: self.vote(w))
            vote_row.addWidget(button)
        layout.addLayout(vote_row)

        tally_box = QGroupBox("Votes per pair of set-ups")
        tally_layout = QVBoxLayout(tally_box)
        self.tally_model = TallyTableModel(self)
        self.tally = QTableView()
        self.tally.setAccessibleName("Votes per pair of set-ups")
        self.tally.setModel(self.tally_model)
        self.tally.verticalHeader().hide()
        self.tally.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        # A few pairs show without scrolling; the answers above keep the room.
        self.tally.setMaximumHeight(self.tally.horizontalHeader().sizeHint().height()
                                    + 3 * self.tally.verticalHeader().defaultSectionSize()
                                    + 2 * self.tally.frameWidth())
        tally_layout.addWidget(self.tally)
        layout.addWidget(tally_box)

        self.run_button.clicked.connect(self.compare)
        self.stop_button.clicked.connect(self.stop)
        # Bound methods, not lambdas: Qt drops them with the page, so nothing outlives it.
        adapters.presetsChanged.connect(self.refresh_setups)
        adapters.summaryChanged.connect(self._adapters_changed)
        adapters.modelChanged.connect(self._adapters_changed)
        self.refresh_tally()

    # -- set-ups ---------------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh_setups()

    def _adapters_changed(self, _what: object) -> None:
        self.refresh_setups()

    def refresh_setups(self) -> None:
        """Ask the engine for its models and presets, and offer them as set-ups."""
        if self.engine.state != "ready":
            return
        engine = self.engine
        self.workers.submit(lambda: engine.chat_client().models(), on_done=self._got_models,
                            on_error=self._no_setups)

    def _no_setups(self, exc: Exception) -> None:
        self.status.setText(f"The set-ups cannot be listed: {exc}")

    def _got_models(self, models: list[dict[str, Any]]) -> None:
        self.set_setups(setups_from(models, self.adapters))

    def set_setups(self, setups: list[Setup]) -> None:
        self.setups = {s.name: s for s in setups}
        names = [s.name for s in setups]
        chosen = [picker.currentData() for picker in self.pickers]
        # A keeps its choice or starts on the first set-up; B keeps a different one or takes
        # the last one unlike A (often one with adapters).
        a = chosen[0] if chosen[0] in names else (names[0] if names else None)
        others = [n for n in names if n != a]
        b = chosen[1] if chosen[1] in others else (others[-1] if others else a)
        for picker, wanted in zip(self.pickers, (a, b)):
            picker.blockSignals(True)
            picker.clear()
            for setup in setups:
                picker.addItem(setup.label, setup.name)
            picker.setCurrentIndex(max(0, picker.findData(wanted)))
            picker.blockSignals(False)

    def choose(self, a: str, b: str) -> None:
        """Pick set-ups A and B by name."""
        for picker, name in zip(self.pickers, (a, b)):
            index = picker.findData(name)
            if index < 0:
                raise KeyError(f"There is no set-up called '{name}'.")
            picker.setCurrentIndex(index)

    # -- a comparison ----------------------------------------------------------------------------
    def compare(self) -> bool:
        """Start answering the prompt with both set-ups; False if it cannot start."""
        if self.running:
            return False
        prompt = self.prompt.toPlainText().strip()
        a, b = (self.setups.get(picker.currentData()) for picker in self.pickers)
        if not prompt:
            self.status.setText("Type a prompt for both set-ups to answer.")
            return False
        if a is None or b is None:
            self.status.setText("Choose two set-ups; they are listed once the engine is ready.")
            return False
        if a.name == b.name:
            self.status.setText("Both sides have the same set-up: choose two different ones.")
            return False
        blind = self.blind.isChecked()
        if blind:
            left, _ = blind_sides(a.name, b.name)
            sides = (a, b) if left == a.name else (b, a)
        else:
            sides = (a, b)
        sampling = {k: v for k, v in self.chat.sampling.items() if k in SAMPLING_KEYS}
        sampling["seed"] = random.randrange(2**31)  # one seed: the sides differ by set-up only
        self.run = CompareRun(prompt, sides, blind, sampling)
        self.running = True
        self.revealed = not blind
        for side, view in enumerate(self.views):
            view.clear()
            self._title(side)
        for button in self.vote_buttons.values():
            button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("The left side answers first, then the right.")
        client = self.engine.chat_client()
        self.workers.submit(run_comparison, client, self.run, self._signals)
        self._timer.start()
        return True

    def stop(self) -> None:
        if self.run is not None and self.running:
            self.run.cancelled.set()

    def _title(self, side: int, state: str = "") -> None:
        run = self.run
        name = SIDES[side]
        if run is not None and self.revealed:
            name = f"{name}: {run.sides[side].name}"
        self.titles[side].setText(f"{name} {state}".strip())

    def _side_started(self, run: CompareRun, side: int) -> None:
        if run is self.run:
            self._title(side, "(answering…)")

    def _side_finished(self, run: CompareRun, side: int) -> None:
        if run is not self.run:
            return
        self._paint()
        error = run.errors[side]
        self._title(side, "(stopped)" if run.cancelled.is_set() else "")
        if error:
            self.views[side].appendPlainText(f"\n[{error}]")

    def _finished(self, run: CompareRun) -> None:
        if run is not self.run:
            return
        self.running = False
        self._timer.stop()
        self._paint()
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        answered = all(run.texts) and not any(run.errors)
        for button in self.vote_buttons.values():
            button.setEnabled(answered)
        self.status.setText("Which answer is better?" if answered else
                            "Both sides need an answer before you can vote.")
        self.compared.emit(run)

    def _paint(self) -> None:
        run = self.run
        if run is None:
            return
        for side, view in enumerate(self.views):
            text = run.take(side)
            if text:
                cursor = view.textCursor()
                cursor.movePosition(QTextCursor.MoveOperation.End)
                cursor.insertText(text)

    # -- votes -----------------------------------------------------------------------------------
    def vote(self, winner: Winner) -> None:
        """Store the vote on the finished comparison, name the sides, and update the tally."""
        run = self.run
        if run is None or not self.vote_buttons[winner].isEnabled():
            return
        for button in self.vote_buttons.values():
            button.setEnabled(False)
        left, right = (s.name for s in run.sides)
        self.workers.submit(lambda: self.votes.record(left, right, winner, blind=run.blind,
                                                      prompt=run.prompt),
                            on_done=self._voted, on_error=self._vote_failed, serial=True)

    def _voted(self, vote: Any) -> None:
        self.revealed = True
        for side in range(2):
            self._title(side)
        preferred = vote.preferred
        self.status.setText(f"Vote stored: {preferred} was better." if preferred
                            else "Vote stored: a tie.")
        self.run = None
        self.refresh_tally()
        self.voted.emit(vote)

    def _vote_failed(self, exc: Exception) -> None:
        self.status.setText(f"The vote was not stored: {exc}")
        for button in self.vote_buttons.values():
            button.setEnabled(True)

    def refresh_tally(self) -> None:
        self.workers.submit(self.votes.tally, on_done=self.tally_model.set_tallies,
                            on_error=self._no_tally, serial=True)

    def _no_tally(self, exc: Exception) -> None:
        self.status.setText(f"The votes cannot be read: {exc}")

    def state(self) -> dict[str, Any]:
        """What the page shows, for tests."""
        return {"titles": [t.full_text for t in self.titles],
                "answers": [v.toPlainText() for v in self.views],
                "status": self.status.text()}

    def close_page(self) -> None:
        """Stop a running comparison and the paint timer (the app is closing)."""
        self.stop()
        self._timer.stop()
