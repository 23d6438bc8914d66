"""The Train page: teach a model from the user's own examples with LoRA, on this computer.

From top to bottom: the trainings that were stopped before they finished (Resume, Discard),
the form (base model, examples, name, preset, Advanced), the examples as the model will see
them (rows that cannot be used, by line, with the reason; the first examples laid out with
the chat template, the answers it learns marked, with token counts), the estimate and the
Train button, the run (progress, the loss plot, Pause and Cancel), and its result. Everything
slow is done by :class:`TrainController`; the run is painted from its state on a timer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QShowEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.core.chats import ConversationEntry
from desktop.train import TrainError
from desktop.train.data import DataSet
from desktop.train.events import Done, Event
from desktop.train.job import JobSummary, StartCheck
from desktop.train.preview import DataPreview
from desktop.ui.engine import EngineController
from desktop.ui.style import current
from desktop.ui.style.tokens import SPACE_M
from desktop.ui.train_controller import (RunView, TrainController, free_name,
                                         prompts_to_compare)
from desktop.ui.views.labels import WrappedLabel
from desktop.ui.views.page_column import page_column
from desktop.ui.views.train_form import ChatPicker, TrainForm
from desktop.ui.views.train_result import ResultView
from desktop.ui.views.train_run import RunPanel
from desktop.ui.workers import Workers

CHECK_DELAY_MS = 300  # the form settles before it is checked
COLUMN_WIDTH = 960  # pixels: the page's column, centred in a wider window
SHOWN_PROBLEMS = 500


def job_text(job: JobSummary) -> str:
    if job.step:
        where = f"stopped at step {job.step}" + (f" of {job.total_steps}" if job.total_steps
                                                  else "")
    else:
        where = "stopped before its first checkpoint (resuming starts it over)"
    examples = f"{job.examples} example{'s' * (job.examples != 1)}"
    return (f"{job.name}: {where} · {job.data_set} ({examples}) · "
            f"{Path(job.base_model).name}")


class TrainPage(QWidget):
    """Pick a model and examples, train an adapter, watch it learn, use it."""

    useRequested = Signal(str, str)  # the adapter's name, its base model's path

    def __init__(self, train: TrainController, engine: EngineController, workers: Workers,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.train = train
        self.engine = engine
        self.workers = workers
        self.ready: StartCheck | None = None  # the check of the settings shown, when it passed
        self._previewed: tuple[Any, ...] | None = None  # what the preview shown was made of
        self._data_read_count = 0  # data sets read so far: which one a preview was made of
        self._preview: DataPreview | None = None
        self._data: DataSet | None = None
        # One column, no wider than a form reads well, in the middle of a wide window.
        column = page_column(self, COLUMN_WIDTH)
        self.scroll_area, self.inner, layout = column.scroll, column.inner, column.layout
        intro = WrappedLabel("Teach a model from your own examples with LoRA, on this "
                             "computer. The adapter it makes goes to the adapter library, to "
                             "use in the chat, stacked with others.")
        intro.setProperty("muted", True)
        layout.addWidget(intro)
        self.missing = QLabel(train.missing or "")
        self.missing.setObjectName("chatNotice")
        self.missing.setWordWrap(True)
        self.missing.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.missing.setAccessibleName("Training is not installed")
        self.missing.setVisible(bool(train.missing))
        layout.addWidget(self.missing)

        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.body)
        layout.addStretch(1)
        self.jobs_box = QGroupBox("Unfinished trainings")
        self.jobs_list = QVBoxLayout(self.jobs_box)
        self.job_rows: dict[str, tuple[QPushButton, QPushButton]] = {}  # Resume, Discard
        self.job_labels: dict[str, QLabel] = {}
        self._job_widgets: list[QWidget] = []
        self.jobs_box.hide()
        body.addWidget(self.jobs_box)

        setup = QGroupBox("What to train")
        self.form = TrainForm()
        QVBoxLayout(setup).addWidget(self.form)
        body.addWidget(setup)
        body.addWidget(self._examples_box())

        start = QHBoxLayout()
        self.estimate = WrappedLabel()
        self.estimate.setAccessibleName("Estimate")
        self.reason = WrappedLabel("Choose the examples to learn from: a file, or chats.")
        self.reason.setProperty("problem", True)
        self.reason.setAccessibleName("Why training cannot start")
        words = QVBoxLayout()
        words.addWidget(self.estimate)
        words.addWidget(self.reason)
        start.addLayout(words, 1)
        self.train_button = QPushButton("Train")
        self.train_button.setProperty("primary", True)
        self.train_button.setEnabled(False)
        self.train_button.clicked.connect(self.start)
        start.addWidget(self.train_button, 0, Qt.AlignmentFlag.AlignTop)
        body.addLayout(start)
        self.run_panel = RunPanel(train)
        body.addWidget(self.run_panel)
        self.result_box = QGroupBox("Result")
        self.result = ResultView(workers)
        QVBoxLayout(self.result_box).addWidget(self.result)
        self.result_box.hide()
        body.addWidget(self.result_box)
        self.body.setVisible(not train.missing)

        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self._check)

        self.form.changed.connect(self._form_changed)
        self.form.fileChosen.connect(self._file_chosen)
        self.form.chatsRequested.connect(train.list_chats)
        self.result.useRequested.connect(self._use)
        self.result.compareRequested.connect(self.compare)
        train.modelsChanged.connect(self.form.set_models)
        train.dataChanged.connect(self._data_read)
        train.dataFailed.connect(self._data_failed)
        train.previewed.connect(self._show_preview)
        train.checked.connect(self._checked)
        train.runStarted.connect(self._run_started)
        train.runEnded.connect(self._run_ended)
        train.startFailed.connect(self._start_failed)
        train.jobsChanged.connect(self.show_jobs)
        train.chatsListed.connect(self.pick_chats)

    def _examples_box(self) -> QGroupBox:
        box = QGroupBox("The examples, as the model sees them")
        layout = QVBoxLayout(box)
        self.data_summary = WrappedLabel("No examples chosen yet.")
        self.data_summary.setAccessibleName("Examples summary")
        layout.addWidget(self.data_summary)
        self.problems_title = QLabel("")
        self.problems_title.setProperty("problem", True)
        layout.addWidget(self.problems_title)
        self.problems = QListWidget()
        self.problems.setAccessibleName("Rows that cannot be used")
        self.problems.setMaximumHeight(120)
        self.problems.setWordWrap(True)  # a reason can be long; it is read whole
        self.problems.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.problems.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout.addWidget(self.problems)
        self.preview_summary = WrappedLabel()
        self.preview_summary.setProperty("muted", True)
        self.preview_summary.setAccessibleName("Token counts")
        layout.addWidget(self.preview_summary)
        self.preview = QTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setAccessibleName("Examples laid out with the chat template")
        self.preview.setMinimumHeight(140)
        self.preview.setMaximumHeight(240)
        layout.addWidget(self.preview)
        for widget in (self.problems_title, self.problems, self.preview_summary, self.preview):
            widget.hide()
        return box

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.train.refresh()  # models may have come or gone since

    # -- the form and its checks -------------------------------------------------------------------
    def _form_changed(self) -> None:
        self.ready = None
        self.train_button.setEnabled(False)
        self._check_timer.start()

    def _check(self) -> None:
        if self.train.missing or self.train.busy:
            return
        try:
            settings = self.form.settings()
        except TrainError as exc:
            self._say(str(exc))
            return
        if self.train.data is None:
            return
        self._say("Checking…", problem=False)
        self.train.check(settings)
        key = (settings.base_model, self._data_read_count, settings.max_length)
        if key != self._previewed and self.train.preview(settings.base_model,
                                                         settings.max_length):
            self._previewed = key
            self.preview_summary.setText("Laying the examples out with the model's chat "
                                         "template…")
            self.preview_summary.show()

    def _checked(self, result: StartCheck | str) -> None:
        if isinstance(result, str):
            self._say(result)
            self.estimate.setText("")
            return
        self.ready = result
        self.estimate.setText(result.estimate.message())
        self._say("")
        self.train_button.setEnabled(not self.train.busy)

    def _say(self, text: str, problem: bool = True) -> None:
        """Why Train is not available now ("" when it is)."""
        self.reason.setProperty("problem", problem)
        self.reason.style().polish(self.reason)
        self.reason.setText(text)
        self.reason.setVisible(bool(text))

    # -- the examples ------------------------------------------------------------------------------
    def _file_chosen(self, path: str) -> None:
        self.data_summary.setText(f"Reading {Path(path).name}…")
        self.train.load_file(path)

    def pick_chats(self, entries: list[ConversationEntry]) -> None:
        """Ask which chats to learn from, and read them."""
        picker = ChatPicker(entries, self)
        if picker.exec() == QDialog.DialogCode.Accepted and picker.chosen():
            self.data_summary.setText("Reading the chats…")
            self.train.load_chats(picker.chosen())
        picker.deleteLater()

    def _data_read(self, data: DataSet, name: str) -> None:
        self._data = data
        self._data_read_count += 1
        self._preview = None
        self.data_summary.setText(f"{data.name}: {data.summary()}.")
        self.form.set_data(f"{data.name}: {data.summary()}", data.source, name)
        self._show_problems()
        self.preview.hide()
        self.preview_summary.hide()

    def _data_failed(self, why: str) -> None:
        self._data = None
        self._preview = None
        self.data_summary.setText(why)
        self.form.clear_data("No examples chosen yet")
        self._show_problems()
        self.preview.hide()
        self.preview_summary.hide()
        self._say(why)

    def _show_problems(self) -> None:
        problems = list(self._data.problems) if self._data is not None else []
        if self._preview is not None:
            known = {(p.unit, p.line) for p in problems}
            problems += [p for p in self._preview.too_long if (p.unit, p.line) not in known]
        self.problems.clear()
        for problem in problems[:SHOWN_PROBLEMS]:
            self.problems.addItem(str(problem))
        count = len(problems)
        self.problems_title.setText(f"{count} row{'s' * (count != 1)} cannot be used:")
        for widget in (self.problems_title, self.problems):
            widget.setVisible(bool(count))

    def _show_preview(self, preview: DataPreview | str) -> None:
        self.preview_summary.show()
        if isinstance(preview, str):
            self._preview = None
            self.preview_summary.setText(f"The examples cannot be laid out: {preview}")
            self.preview.hide()
            return
        self._preview = preview
        self.preview_summary.setText(f"{preview.summary()}. The first examples as the model "
                                     "sees them; the highlighted text is what it learns.")
        self._render_preview()
        self.preview.show()
        self._show_problems()

    def _render_preview(self) -> None:
        preview = self._preview
        if preview is None:
            return
        theme = current()
        self.preview.clear()
        cursor = self.preview.textCursor()
        heading, plain, learned = QTextCharFormat(), QTextCharFormat(), QTextCharFormat()
        heading.setForeground(theme.color("text_muted"))
        heading.setFontWeight(600)
        plain.setForeground(theme.color("text_muted"))
        learned.setForeground(theme.color("text"))
        learned.setBackground(QColor(theme.accent_soft))
        for number, example in enumerate(preview.examples):
            if number:
                cursor.insertText("\n\n", plain)
            cursor.insertText(f"Line {example.line} · {example.tokens} tokens, "
                              f"{example.learned} learned\n", heading)
            for piece, taught in example.segments:
                cursor.insertText(piece, learned if taught else plain)
        self.preview.moveCursor(QTextCursor.MoveOperation.Start)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._render_preview()  # the theme's colours

    # -- the run -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the run the form describes, once it passed its checks."""
        if self.ready is None or self.train.busy:
            return
        self.train.start(self.ready.settings)

    def resume(self, job: JobSummary) -> None:
        self.train.resume(job)

    def _run_started(self, run: RunView) -> None:
        self.form.set_enabled(False)
        self.train_button.setEnabled(False)
        for resume, _discard in self.job_rows.values():
            resume.setEnabled(False)
        self.result.stop()
        self.result_box.hide()
        self.run_panel.begin(run)

    def _run_ended(self, event: Event) -> None:
        self.run_panel.end(event)
        self.form.set_enabled(True)
        if isinstance(event, Done):
            self.result.show_done(event)
            self.result_box.show()
            self._auto_compare()
            # Its name is taken now: the next run gets a free one (the user may change it).
            self.workers.submit(free_name, event.adapter, on_done=self.form.suggest_name)
        self._form_changed()  # the name may be free again, or taken now

    def _start_failed(self, why: str) -> None:
        self.run_panel.hide()
        self.run_panel.close_panel()
        self.form.set_enabled(True)
        self._say(why)
        for resume, _discard in self.job_rows.values():
            resume.setEnabled(True)

    # -- after the run -----------------------------------------------------------------------------
    def _use(self, name: str) -> None:
        run = self.train.run
        if run is None:
            return
        if self.engine.remote is not None:
            self.result.set_note("Chats go to a server elsewhere now (see the Server page), "
                                 "which has its own adapters: this one is used once chats "
                                 "come back to this computer.")
        self.useRequested.emit(name, run.base_model)

    def _base_loaded(self) -> bool:
        run = self.train.run
        model = (self.engine.status or {}).get("model") or {}
        return run is not None and str(model.get("path") or "") == run.base_model

    def _auto_compare(self) -> None:
        """Answer the prompts before and after at once when the engine has the base model
        loaded; else say that comparing loads it (the chat's model would give way)."""
        if self.engine.state == "ready" and self._base_loaded():
            self.compare()
        else:
            self.result.set_note("Compare before and after answers a few of the examples' "
                                 "prompts without and with the adapter; the engine loads the "
                                 "base model for it.")

    def compare(self) -> None:
        """Answer the held-out prompts without and with the new adapter, side by side."""
        run, done = self.train.run, self.result.done
        if run is None or done is None:
            return
        if self.engine.state != "ready":
            self.result.set_note("The engine is not ready yet: compare once it is.")
            return
        model_id = self.train.model_id_for(run.base_model)
        if model_id is None:
            from desktop.core.library import model_id_for

            model_id = model_id_for(Path(run.base_model))
        client = self.engine.supervisor.client  # the new adapter is on this computer
        self.workers.submit(prompts_to_compare, done.adapter,
                            on_done=lambda found: self.result.compare(client, model_id, *found),
                            on_error=lambda exc: self.result.set_note(
                                f"The prompts to compare cannot be read: {exc}"))

    def scroll_to_run(self) -> None:
        """Scroll the run (its progress, plot and result) to the top of the page."""
        top = self.run_panel.mapTo(self.inner, self.run_panel.rect().topLeft()).y()
        self.scroll_area.verticalScrollBar().setValue(top - SPACE_M)

    # -- unfinished trainings ----------------------------------------------------------------------
    def show_jobs(self, jobs: list[JobSummary]) -> None:
        for widget in self._job_widgets:
            self.jobs_list.removeWidget(widget)
            widget.hide()
            widget.deleteLater()  # its button may be in the middle of its click
        self._job_widgets = []
        self.job_rows = {}
        self.job_labels = {}
        for job in jobs:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            text = WrappedLabel(job_text(job))
            line.addWidget(text, 1)
            resume = QPushButton("Resume")
            resume.setAccessibleName(f"Resume {job.name}")
            resume.clicked.connect(lambda _=False, j=job: self.resume(j))
            resume.setEnabled(not self.train.busy)
            discard = QPushButton("Discard…")
            discard.setAccessibleName(f"Discard {job.name}")
            discard.clicked.connect(lambda _=False, j=job: self.discard(j))
            line.addWidget(resume, 0, Qt.AlignmentFlag.AlignTop)
            line.addWidget(discard, 0, Qt.AlignmentFlag.AlignTop)
            self.jobs_list.addWidget(row)
            self._job_widgets.append(row)
            self.job_rows[job.name] = (resume, discard)
            self.job_labels[job.name] = text
        self.jobs_box.setVisible(bool(jobs))
        if not self.train.busy:
            self._form_changed()  # a name an unfinished training held may be free now

    def discard(self, job: JobSummary) -> None:
        answer = QMessageBox.question(
            self, "Discard training",
            f"Discard the training '{job.name}'? What it learned so far is deleted; the "
            "examples it learned from stay where they are.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self.train.discard(job.name)

    # -- quitting ----------------------------------------------------------------------------------
    def confirm_quit(self) -> bool:
        """Ask before quitting while a training runs; True to quit."""
        run = self.train.run
        name = f"'{run.name}'" if run is not None else "An adapter"
        where = f" (step {run.step} of {run.total})" if run and run.started and run.total else ""
        answer = QMessageBox.question(
            self, "Quit while training",
            f"{name} is training{where}. Quit anyway? The training stops after the step in "
            "progress and keeps what it learned; the Train page offers to resume it next "
            "time.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self.run_panel.stopping()
        return True

    def close_page(self) -> None:
        """Stop the timers and the comparison (the app is closing)."""
        self._check_timer.stop()
        self.run_panel.close_panel()
        self.result.stop()
