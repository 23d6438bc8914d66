"""A training run on the Train page: where it is (step, epoch, time spent and left, the loss),
the loss plot, Pause/Resume and Cancel, and how it ended.

Events change the controller's :class:`RunView` only; this panel paints it on a timer
(``PAINT_INTERVAL_MS``), and only when it changed, so a fast run never floods the window.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from desktop.train.events import Cancelled, Done, Event, Failed
from desktop.ui.train_controller import RunView, TrainController
from desktop.ui.views.labels import WrappedLabel
from desktop.ui.views.loss_plot import LossPlot

PAINT_INTERVAL_MS = 250  # the run's progress and plot are painted this often, at most


def clock(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:09``."""
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(run: RunView) -> str:
    """Where the run is, in words."""
    if not run.started:
        return run.stage
    where = f"step {run.step} of {run.total}" if run.total else f"step {run.step}"
    if run.paused:
        return f"Paused at {where}."
    parts = [where[0].upper() + where[1:], f"epoch {run.epoch:.2f}",
             f"{clock(run.elapsed)} elapsed"]
    if run.eta is not None and run.step:
        parts.append(f"about {clock(run.eta)} left")
    return " · ".join(parts)


def loss_text(run: RunView) -> str:
    """``Loss 0.412 · held-out loss 0.530 · saved at step 10``."""
    parts = []
    if run.loss is not None:
        parts.append(f"Loss {run.loss:.3f}")
    if run.held_out is not None:
        parts.append(f"held-out loss {run.held_out:.3f}")
    if run.checkpoint and run.running:
        parts.append(f"saved at step {run.checkpoint}")
    return " · ".join(parts)


def ended_text(event: Event, name: str) -> str:
    """How a run that did not finish ended, and what can be done."""
    if isinstance(event, Cancelled):
        kept = (f"what it learned is kept at step {event.step}" if event.step
                else "it had not begun its steps")
        return (f"Stopped: {kept}. '{name}' is listed under Unfinished trainings, to resume "
                "or discard.")
    if isinstance(event, Failed):
        more = (f" It can go on from step {event.step}: see Unfinished trainings."
                if event.resumable and event.step else "")
        return f"{event.message}{more}"
    return ""


class RunPanel(QGroupBox):
    """The run in progress, or the last one."""

    def __init__(self, train: TrainController, parent: QWidget | None = None) -> None:
        super().__init__("Training", parent)
        self.train = train
        self._painted = -1
        self._asked: str | None = None  # "pause" or "resume", until the trainer did it
        self._stopping = False  # Cancel was pressed
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.progress = WrappedLabel()
        self.progress.setAccessibleName("Training progress")
        top.addWidget(self.progress, 1)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self._pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the step in progress; what it learned is "
                                      "kept, to resume later.")
        self.cancel_button.clicked.connect(self._cancel)
        top.addWidget(self.pause_button, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.cancel_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setAccessibleName("Steps done")
        layout.addWidget(self.bar)
        self.losses = QLabel()
        self.losses.setProperty("muted", True)
        self.losses.setAccessibleName("Loss")
        layout.addWidget(self.losses)
        self.plot = LossPlot()
        layout.addWidget(self.plot)
        self.ended = WrappedLabel()
        self.ended.setAccessibleName("How the training ended")
        self.ended.hide()
        layout.addWidget(self.ended)
        self._timer = QTimer(self)
        self._timer.setInterval(PAINT_INTERVAL_MS)
        self._timer.timeout.connect(self.paint)
        self.hide()

    def begin(self, run: RunView) -> None:
        """A run starts (or goes on): show it, and paint it on the timer from now on."""
        self.ended.hide()
        self.setTitle(f"Training '{run.name}'")
        for button in (self.pause_button, self.cancel_button):
            button.setEnabled(True)
            button.show()
        self.pause_button.setText("Pause")
        self.cancel_button.setText("Cancel")
        self._asked = None
        self._stopping = False
        self._painted = -1
        self.show()
        self.paint()
        self._timer.start()

    def paint(self) -> None:
        """Show the run as it is now, if it changed since the last paint."""
        run = self.train.run
        if run is None or run.version == self._painted:
            return
        self._painted = run.version
        self.progress.setText(progress_text(run))
        if run.started and run.total:
            self.bar.setRange(0, run.total)
            self.bar.setValue(run.step)
        else:
            self.bar.setRange(0, 0)  # busy: the model is loading
        self.losses.setText(loss_text(run))
        self.plot.set_points(run.losses, run.held, run.total)
        if run.running and not self._stopping:
            if self._asked is not None and run.paused == (self._asked == "pause"):
                self._asked = None  # done as asked
            if self._asked is None:
                self.pause_button.setEnabled(run.started)
                self.pause_button.setText("Resume" if run.paused else "Pause")

    def end(self, event: Event) -> None:
        """The run ended with *event*: paint it one last time and say how it ended."""
        self._timer.stop()
        self._painted = -1
        self.paint()
        self.bar.setRange(0, max(1, self.bar.maximum()))
        for button in (self.pause_button, self.cancel_button):
            button.hide()
        run = self.train.run
        if isinstance(event, Done):
            self.progress.setText(f"Done: {event.steps} steps in {clock(event.elapsed_s)}.")
            self.bar.setValue(self.bar.maximum())
        else:
            self.ended.setText(ended_text(event, run.name if run is not None else ""))
            self.ended.show()

    def stopping(self) -> None:
        """The app is quitting and stops the run: say so, and paint nothing else."""
        self._timer.stop()
        self._stopping = True
        self.progress.setText("Stopping after the step in progress…")
        for button in (self.pause_button, self.cancel_button):
            button.setEnabled(False)

    def _pause(self) -> None:
        run = self.train.run
        if run is None:
            return
        if run.paused:
            self.train.go_on()
            self._asked = "resume"
            self.pause_button.setText("Resuming…")
        else:
            self.train.pause()
            self._asked = "pause"
            self.pause_button.setText("Pausing…")
        self.pause_button.setEnabled(False)

    def _cancel(self) -> None:
        self.train.cancel()
        self._stopping = True
        self.cancel_button.setText("Stopping…")
        for button in (self.pause_button, self.cancel_button):
            button.setEnabled(False)

    def close_panel(self) -> None:
        self._timer.stop()
