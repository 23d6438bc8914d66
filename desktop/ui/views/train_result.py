"""The end of a training run: what it came to, one click to use the adapter in the chat, and a
before/after view that answers the held-out prompts with and without the new adapter.

The before/after view runs on the Compare page's machinery (views/compare.py): each prompt is a
:class:`CompareRun` of two set-ups, the base model with no adapters and the base model with
the new one, answered one after the other by :func:`run_comparison` on a worker, greedy, so the
two answers differ by the adapter alone.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.client.api import EngineClient
from desktop.train.events import Done
from desktop.ui.views.compare import CompareRun, CompareSignals, Setup, run_comparison
from desktop.ui.views.labels import WrappedLabel
from desktop.ui.workers import Workers

#: Greedy and short: the answers differ by the adapter only, and come quickly.
SAMPLING = {"temperature": 0.0, "max_tokens": 80, "seed": 0}


def answer_all(client: EngineClient, runs: list[CompareRun], signals: CompareSignals) -> None:
    """Worker side: each prompt without the adapter, then with it."""
    for run in runs:
        run_comparison(client, run, signals)


def setups(model_id: str, adapter: str) -> tuple[Setup, Setup]:
    """The base model alone, and the base model with the adapter *adapter* at scale 1."""
    return (Setup(model_id, f"{model_id} (no adapters)", model_id, ()),
            Setup(f"{model_id} with {adapter} 1", f"{model_id} with {adapter}", model_id,
                  ({"name": adapter, "scale": 1.0},)))


def summary_text(done: Done) -> str:
    """What the run came to, in a sentence or two."""
    losses = []
    if done.final_loss is not None:
        losses.append(f"final loss {done.final_loss:.3f}")
    if done.held_out_loss is not None:
        losses.append(f"held-out loss {done.held_out_loss:.3f}")
    took = f"{done.elapsed_s:.0f} s" if done.elapsed_s < 90 else f"{done.elapsed_s / 60:.0f} min"
    return (f"Trained '{done.adapter}' in {done.steps} steps ({took} of training"
            f"{'; ' + ', '.join(losses) if losses else ''}). It is in the adapter library.")


class ResultView(QWidget):
    """A finished run: its losses, Use in chat, and the held-out prompts before and after."""

    useRequested = Signal(str)  # the adapter's name
    compareRequested = Signal()  # answer the prompts again

    def __init__(self, workers: Workers, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.done: Done | None = None
        self.runs: list[CompareRun] = []
        self._left = 0  # comparisons not finished yet
        self.answers: list[tuple[WrappedLabel, WrappedLabel]] = []
        self._signals = CompareSignals(self)
        self._signals.sideStarted.connect(self._side_started)
        self._signals.sideFinished.connect(self._side_finished)
        self._signals.finished.connect(self._finished)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.summary = WrappedLabel()
        self.summary.setAccessibleName("Training result")
        layout.addWidget(self.summary)
        buttons = QHBoxLayout()
        self.use_button = QPushButton("Use in chat")
        self.use_button.setProperty("primary", True)
        self.use_button.setToolTip("Put the adapter in the chat's adapter stack, with those "
                                   "already there")
        self.use_button.clicked.connect(self._use)
        self.again_button = QPushButton("Compare before and after")
        self.again_button.setToolTip("Answer the prompts below again, without and with the "
                                     "adapter")
        self.again_button.clicked.connect(self.compareRequested)
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.again_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.status = WrappedLabel()
        self.status.setProperty("muted", True)
        self.status.setAccessibleName("Before and after")
        layout.addWidget(self.status)
        self.grid = QGridLayout()
        self.grid.setColumnStretch(0, 1)
        self.grid.setColumnStretch(1, 1)
        layout.addLayout(self.grid)
        self._grid_widgets: list[QWidget] = []

    def show_done(self, done: Done) -> None:
        """Show the run *done* came from; the comparison follows with :meth:`compare`."""
        self.stop()
        self.done = done
        self.summary.setText(summary_text(done))
        self.use_button.setEnabled(True)
        self.status.setText("")
        self._clear_grid()

    def set_note(self, text: str) -> None:
        self.status.setText(text)

    def compare(self, client: EngineClient, model_id: str, prompts: list[str],
                held_out: bool) -> None:
        """Answer *prompts* with the base model *model_id*, without and with the adapter."""
        if self.done is None or self.running:
            return
        without, with_it = setups(model_id, self.done.adapter)
        self.runs = [CompareRun(prompt, (without, with_it), False, dict(SAMPLING))
                     for prompt in prompts]
        self._left = len(self.runs)
        self._clear_grid()
        self.answers = []
        for column, title in enumerate(("Without the adapter", f"With {self.done.adapter}")):
            label = QLabel(title)
            label.setObjectName("chatTitle")
            self._place(label, 0, column)
        for row, prompt in enumerate(prompts, start=1):
            asked = WrappedLabel(prompt)
            asked.setProperty("muted", True)
            asked.setAccessibleName(f"Prompt {row}")
            self._place(asked, 2 * row - 1, 0, 2)
            pair = (WrappedLabel("…"), WrappedLabel("…"))
            for column, answer in enumerate(pair):
                answer.setAccessibleName(f"Answer {row} {'with' if column else 'without'} "
                                         "the adapter")
                self._place(answer, 2 * row, column)
            self.answers.append(pair)
        which = ("prompts held out from training (it never learned from them)" if held_out
                 else "first examples' prompts (none were held out: it learned from these)")
        self.status.setText(f"The {which}, answered by {model_id} without and with the "
                            "adapter, greedy:")
        self.again_button.setEnabled(False)
        self.workers.submit(answer_all, client, self.runs, self._signals)

    def _place(self, widget: QWidget, row: int, column: int, span: int = 1) -> None:
        self.grid.addWidget(widget, row, column, 1, span)
        self._grid_widgets.append(widget)

    def _clear_grid(self) -> None:
        for widget in self._grid_widgets:
            self.grid.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        self._grid_widgets = []
        self.answers = []

    @property
    def running(self) -> bool:
        return self._left > 0

    def _cell(self, run: CompareRun, side: int) -> WrappedLabel | None:
        if run not in self.runs:
            return None
        index = self.runs.index(run)
        return self.answers[index][side] if index < len(self.answers) else None

    def _side_started(self, run: CompareRun, side: int) -> None:
        cell = self._cell(run, side)
        if cell is not None:
            cell.setText("Answering…")

    def _side_finished(self, run: CompareRun, side: int) -> None:
        cell = self._cell(run, side)
        if cell is not None:
            error = run.errors[side]
            cell.setText(run.texts[side] + (f"\n[{error}]" if error else ""))

    def _finished(self, run: CompareRun) -> None:
        if run in self.runs:
            self._left -= 1
            self.again_button.setEnabled(not self.running)

    def texts(self) -> list[tuple[str, str]]:
        """The answers shown, (without, with) for each prompt, for tests."""
        return [(a.text(), b.text()) for a, b in self.answers]

    def _use(self) -> None:
        if self.done is not None:
            self.useRequested.emit(self.done.adapter)

    def stop(self) -> None:
        """Stop the comparison under way (the page is closing, or a new run begins)."""
        for run in self.runs:
            run.cancelled.set()
        self.runs = []  # what they still report is not shown
        self._left = 0
        self.again_button.setEnabled(self.done is not None)
