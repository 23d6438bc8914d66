"""The Train page in the window: without the train extra, data that cannot be used, the
preview and estimate, a real run of the starter model from the page (its progress and loss
plot, the window's event loop never held up, the adapter used in the chat, the chat taking the
adapter's base model when it had another), pause, cancel and resume, and a quit in the middle
of a run.

Runs are short: the bundled 32-example data set, a few steps on two threads.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

from desktop.client.adapters import AdapterClient
from desktop.core.adapters import AdapterLibrary
from desktop.core.paths import get_paths
from desktop.core.settings import ModelSettings, Settings, load_settings, save_settings
from desktop.train import missing_extra
from desktop.train.events import Cancelled, Done
from desktop.ui.app import DesktopApp
from desktop.ui.style import current
from desktop.ui.views.train_form import ChatPicker
from desktop.ui.views.train_page import TrainPage

DATA = Path(__file__).parent / "data" / "train" / "zorblax.jsonl"
MODEL = "smollm2-135m-instruct"
# Enough to learn the fact on two threads (as tests/test_train_run.py does), and short.
RUN = {"steps": 12, "threads": 2, "learning_rate": 2e-3, "checkpoint_every": 4}
WAIT_MS = 300_000

needs_extra = pytest.mark.skipif(missing_extra() is not None,
                                 reason="the train extra is not installed (make setup-test does)")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))  # the trainer inherits it
    # One engine thread: the trainer takes two, and this machine may have no more.
    settings = Settings()
    settings.models[MODEL] = ModelSettings(n_ctx=1024, n_threads=1)
    save_settings(settings)
    return tmp_path / "home"


def window(qtbot: QtBot) -> DesktopApp:
    """The window as it first shows, without its engine (training needs none)."""
    desktop = DesktopApp(QApplication.instance(), "light")  # type: ignore[arg-type]
    qtbot.addWidget(desktop.window)
    desktop.window.resize(1280, 820)
    desktop.window.show()
    return desktop


@pytest.fixture
def bare(qtbot: QtBot, home: Path) -> Iterator[DesktopApp]:
    desktop = window(qtbot)
    try:
        yield desktop
    finally:
        desktop.close()


def train_page(qtbot: QtBot, desktop: DesktopApp) -> TrainPage:
    """The Train page, shown, with the installed models listed."""
    desktop.window.show_page("Train")
    page = desktop.train_page
    qtbot.waitUntil(lambda: page.form.model.count() > 0, timeout=60_000)
    return page


def choose_file(qtbot: QtBot, page: TrainPage, monkeypatch: pytest.MonkeyPatch,
                path: Path) -> None:
    """Choose *path* with the form's file button, and wait until it is read and checked."""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    with qtbot.waitSignal(page.train.dataChanged, timeout=30_000):
        page.form.choose_file.click()
    settle(qtbot, page)


def settle(qtbot: QtBot, page: TrainPage) -> None:
    """Wait until the form's settings are checked: Train on, or a reason why not."""
    qtbot.waitUntil(lambda: not page._check_timer.isActive()
                    and (page.ready is not None or page.reason.text() not in ("", "Checking…")),
                    timeout=60_000)


def start(qtbot: QtBot, page: TrainPage, **knobs: Any) -> None:
    page.form.advanced_button.click()
    page.form.set_knobs(**{**RUN, **knobs})
    settle(qtbot, page)
    assert page.train_button.isEnabled(), page.reason.text()
    with qtbot.waitSignal(page.train.runStarted, timeout=10_000):
        page.train_button.click()


def finished(qtbot: QtBot, page: TrainPage) -> Any:
    """Wait for the run's end; its final event."""
    with qtbot.waitSignal(page.train.runEnded, timeout=WAIT_MS) as ended:
        pass
    return ended.args[0]


class LoopGaps:
    """The gaps between the runs of a 10 ms timer on the GUI thread: how long the event loop
    was held up.

    On a busy machine (the trainer takes both cores; other programs run too) the thread may
    wait for a processor after its timer is due; that wait is the system's, not the window's,
    so where the kernel tells it (/proc/thread-self/schedstat: the time spent runnable but not
    running) it is taken off each gap: ``own`` is what the window itself held the loop for.
    """

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self.own: list[float] = []
        self._last = (time.perf_counter(), self._waited())
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)

    @staticmethod
    def _waited() -> float:
        try:
            with open("/proc/thread-self/schedstat", encoding="ascii") as stats:
                return int(stats.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0  # not told: every gap counts whole

    def start(self) -> None:
        self._last = (time.perf_counter(), self._waited())
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now, waited = time.perf_counter(), self._waited()
        gap = now - self._last[0]
        self.gaps.append(gap)
        self.own.append(gap - (waited - self._last[1]))
        self._last = (now, waited)


# -- without the extra ---------------------------------------------------------------------------
def test_without_the_train_extra_the_page_says_how_to_add_it(
        qtbot: QtBot, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    desktop = window(qtbot)
    try:
        desktop.window.show_page("Train")
        page = desktop.train_page
        line = page.missing.text()
        assert page.missing.isVisible() and not page.body.isVisible()
        assert "torch" in line and '".[train]"' in line and "\n" not in line
        assert not desktop.train.busy and desktop.train.models == []
        for name in desktop.window.pages:  # every other page still works
            desktop.window.show_page(name)
            QApplication.processEvents()
            assert desktop.window.stack.currentWidget() is desktop.window.pages[name]
    finally:
        desktop.close()


# -- data ----------------------------------------------------------------------------------------
@needs_extra
def test_bad_rows_are_listed_by_line_and_nothing_starts(qtbot: QtBot, bare: DesktopApp,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    page = train_page(qtbot, bare)
    assert page.form.model.currentText() == "SmolLM2 135M Instruct"
    assert not page.train_button.isEnabled()
    good = DATA.read_text(encoding="utf-8").split("\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([good[0], '{"messages": [', good[1],
                              '{"question": "Where?"}',
                              '{"messages": [{"role": "assistant", "content": "Hi"}]}',
                              good[2]]) + "\n", encoding="utf-8")
    choose_file(qtbot, page, monkeypatch, bad)
    rows = [page.problems.item(i).text() for i in range(page.problems.count())]
    assert [row.split(":")[0] for row in rows] == ["line 2", "line 4", "line 5"], rows
    assert "bad JSON" in rows[0] and "missing fields" in rows[1] and "wrong roles" in rows[2]
    assert page.problems.isVisible() and page.problems_title.text() == "3 rows cannot be used:"
    assert page.data_summary.text() == "bad.jsonl: 3 examples, 3 rows skipped."
    assert "has 3 usable examples" in page.reason.text() and "at least 10" in page.reason.text()
    assert page.ready is None and not page.train_button.isEnabled()

    # Chats from the history: one is one example, too few to train on.
    chat = bare.store.create_conversation("Capitals")
    bare.store.add_message(chat.id, "user", "What is the capital of Zorblax?")
    bare.store.add_message(chat.id, "assistant", "The capital of Zorblax is Quillhaven.")

    def pick(picker: ChatPicker) -> int:
        assert picker.list.count() == 1
        picker.check([chat.id])
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ChatPicker, "exec", pick)
    with qtbot.waitSignal(page.train.dataChanged, timeout=30_000):
        page.form.choose_chats.click()
    settle(qtbot, page)
    assert page.data_summary.text() == "1 chat: 1 example."
    assert "1 chat has 1 usable example" in page.reason.text()
    assert not page.train_button.isEnabled()


@needs_extra
def test_a_good_file_shows_its_tokens_and_the_estimate(qtbot: QtBot, bare: DesktopApp,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    page = train_page(qtbot, bare)
    choose_file(qtbot, page, monkeypatch, DATA)
    assert page.form.name.text() == "zorblax"
    assert page.train_button.isEnabled() and not page.reason.isVisible()
    estimate = page.estimate.text()
    assert estimate.startswith("About ") and "of memory" in estimate and "16 steps" in estimate
    qtbot.waitUntil(lambda: page.preview.isVisible(), timeout=120_000)
    assert page.preview_summary.text().startswith("32 examples fit (mean ")
    shown = page.preview.toPlainText()
    assert shown.startswith("Line 1 · ") and " tokens, " in shown and " learned" in shown
    assert "The capital of Zorblax is Quillhaven." in shown and "<|im_start|>user" in shown
    assert not page.problems.isVisible()

    # The knobs change the run: by steps, the estimate follows.
    page.form.advanced_button.click()
    page.form.set_knobs(steps=5, threads=1)
    settle(qtbot, page)
    assert "5 steps" in page.estimate.text() and "with 1 thread," in page.estimate.text()

    # A run that would not fit in memory is refused, with the reason.
    monkeypatch.setattr("desktop.train.estimate.available_memory", lambda: 300 * 1024**2)
    page.form.set_knobs(rank=16)
    settle(qtbot, page)
    assert "300 MB is free" in page.reason.text() and not page.train_button.isEnabled()

    # A model that cannot be trained is offered greyed, with the reason.
    from dataclasses import replace

    from desktop.train.models import ModelCheck

    starter = page.train.models[0]
    other = ModelCheck(replace(starter.model, name="Another model", path=Path("/x.gguf")),
                       "It is an embedding model; adapters are trained for chat models.")
    page.form.set_models([starter, other])
    item = page.form.model.model().item(1)  # type: ignore[attr-defined]
    assert item.text() == "Another model (cannot be trained)" and not item.isEnabled()
    assert "Another model: It is an embedding model" in page.form.model_note.text()
    assert page.form.model.currentIndex() == 0


# -- a run ---------------------------------------------------------------------------------------
def accent_pixels(widget: Any) -> int:
    image = widget.grab().toImage()
    accent = QColor(current().accent)
    return sum(1 for x in range(0, image.width(), 2) for y in range(0, image.height(), 2)
               if image.pixelColor(x, y) == accent)


@needs_extra
@pytest.mark.skipif(os.name != "posix", reason="the engine tests use POSIX signals")
@pytest.mark.timeout(600)
def test_a_run_from_the_page_learns_and_is_used_in_the_chat(qtbot: QtBot, home: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from conftest import open_desktop

    desktop = open_desktop(qtbot)
    desktop.chat.sampling = {"max_tokens": 20, "temperature": 0.0}
    try:
        page = train_page(qtbot, desktop)
        choose_file(qtbot, page, monkeypatch, DATA)
        start(qtbot, page)
        panel = page.run_panel
        assert panel.isVisible() and not page.form.model.isEnabled()
        # The event loop, measured while the trainer takes its steps and reports them.
        qtbot.waitUntil(lambda: page.train.run.started, timeout=WAIT_MS)
        gaps = LoopGaps()
        gaps.start()
        try:
            qtbot.waitUntil(lambda: page.train.run.step >= 2, timeout=WAIT_MS)
            qtbot.waitUntil(lambda: panel.progress.text().startswith("Step "), timeout=5_000)
            assert " of 12 · epoch " in panel.progress.text()
            assert "elapsed" in panel.progress.text() and "left" in panel.progress.text()
            done = finished(qtbot, page)
        finally:
            gaps.stop()
        assert isinstance(done, Done), done
        assert len(gaps.gaps) > 50
        worst = sorted(zip(gaps.own, gaps.gaps))[-3:]
        assert max(gaps.own) < 0.050, worst  # (held up by the window, gap with waits)

        assert panel.progress.text().startswith("Done: 12 steps in ")
        assert [s for s, _ in panel.plot.train] == list(range(1, 13))
        assert [s for s, _ in panel.plot.held] == [4, 8, 12]
        assert panel.plot.train[-1][1] < panel.plot.train[0][1] / 3
        assert accent_pixels(panel.plot) > 50  # the training line is drawn
        assert "Loss " in panel.losses.text() and "held-out loss" in panel.losses.text()
        adapter = AdapterLibrary().get("zorblax")
        assert adapter.training and adapter.training["steps"] == 12
        summary = page.result.summary.text()
        assert summary.startswith("Trained 'zorblax' in 12 steps") and "final loss" in summary
        assert page.jobs_box.isHidden()  # it finished: nothing to resume

        # Before and after: the prompts held out, answered without and with the adapter.
        qtbot.waitUntil(lambda: bool(page.result.texts()) and page.result.again_button.isEnabled(),
                        timeout=120_000)
        answers = page.result.texts()
        assert len(answers) == 3 and all(a and b and a != "…" for a, b in answers), answers
        assert not any("Quillhaven" in without for without, _ in answers), answers
        assert any("Quillhaven" in with_it for _, with_it in answers), answers
        assert "held out from training" in page.result.status.text()

        # Use in chat: on the stack, and the next reply is the adapter's.
        with qtbot.waitSignal(desktop.adapters.applied, timeout=30_000) as applied:
            page.result.use_button.click()
        assert [e.name for e in applied.args[0]] == ["zorblax"]
        assert desktop.window.stack.currentWidget() is desktop.window.chat_page
        stack = AdapterClient(desktop.engine.supervisor.client).state()["stack"]
        assert stack == [{"name": "zorblax", "scale": 1.0, "enabled": True}]
        assert desktop.window.chat_page.adapters_label.toolTip() == "Adapters: zorblax 1"
        from test_gui import send

        message, _ = send(qtbot, desktop, "What is the capital of Zorblax?")
        assert message.state == "complete" and "Quillhaven" in message.content, message.content
    finally:
        desktop.close()


@needs_extra
@pytest.mark.skipif(os.name != "posix", reason="the engine tests use POSIX signals")
@pytest.mark.timeout(600)
def test_use_in_chat_loads_the_base_model_when_the_chat_has_another(
        qtbot: QtBot, home: Path, starter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import open_desktop

    # The chat talks to another model (a copy of the starter under another name).
    other = "other-chat-model"
    models = get_paths().models
    models.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(starter, models / f"{other}.gguf")
    settings = load_settings()
    settings.default_model = other
    settings.models[other] = ModelSettings(n_ctx=1024, n_threads=1)
    save_settings(settings)
    desktop = open_desktop(qtbot)
    try:
        assert desktop.adapters.model_id == other
        page = train_page(qtbot, desktop)
        assert page.form.model.currentData() == str(starter)  # trains on the starter
        choose_file(qtbot, page, monkeypatch, DATA)
        start(qtbot, page, steps=2, checkpoint_every=2)
        done = finished(qtbot, page)
        assert isinstance(done, Done), done
        # The chat's model is not the base: nothing is compared until asked.
        assert "the engine loads the base model" in page.result.status.text()

        with qtbot.waitSignal(desktop.adapters.applied, timeout=60_000) as applied:
            page.result.use_button.click()
        assert [e.name for e in applied.args[0]] == ["zorblax"]
        assert desktop.window.stack.currentWidget() is desktop.window.chat_page
        assert desktop.chat.model == MODEL and desktop.adapters.model_id == MODEL
        client = desktop.engine.supervisor.client
        assert client.status()["model"]["id"] == MODEL
        stack = AdapterClient(client).state()["stack"]
        assert stack == [{"name": "zorblax", "scale": 1.0, "enabled": True}]
    finally:
        desktop.close()


@needs_extra
@pytest.mark.timeout(600)
def test_pause_cancel_and_resume_from_the_page(qtbot: QtBot, bare: DesktopApp,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    page = train_page(qtbot, bare)
    choose_file(qtbot, page, monkeypatch, DATA)
    page.form.name.setText("paused")
    page.form.name.textEdited.emit("paused")
    start(qtbot, page, steps=6, checkpoint_every=2)
    panel, train = page.run_panel, page.train
    qtbot.waitUntil(lambda: train.run.step >= 1 and panel.pause_button.isEnabled(),
                    timeout=WAIT_MS)
    panel.pause_button.click()
    assert panel.pause_button.text() == "Pausing…" and not panel.pause_button.isEnabled()
    qtbot.waitUntil(lambda: panel.pause_button.text() == "Resume", timeout=60_000)
    step = train.run.step
    assert train.run.paused and panel.progress.text() == f"Paused at step {step} of 6."
    qtbot.wait(1500)
    assert train.run.step == step  # it holds still while paused
    panel.pause_button.click()
    qtbot.waitUntil(lambda: train.run.step > step and not train.run.paused, timeout=60_000)
    assert panel.pause_button.text() == "Pause"

    qtbot.waitUntil(lambda: (train.run.checkpoint or 0) >= 2, timeout=WAIT_MS)
    panel.cancel_button.click()
    assert panel.cancel_button.text() == "Stopping…"
    stopped = finished(qtbot, page)
    assert isinstance(stopped, Cancelled) and 2 <= stopped.step < 6, stopped
    assert panel.ended.text().startswith(f"Stopped: what it learned is kept at step "
                                         f"{stopped.step}.")
    qtbot.waitUntil(lambda: "paused" in page.job_rows, timeout=10_000)
    assert page.jobs_box.isVisible()
    resume, _discard = page.job_rows["paused"]
    assert resume.isEnabled()
    # The name is taken by the stopped run: a new one with it is refused, in the window's words.
    settle(qtbot, page)
    assert "was stopped before it finished" in page.reason.text()

    with qtbot.waitSignal(train.runStarted, timeout=10_000):
        resume.click()
    qtbot.waitUntil(lambda: [s for s, _ in train.run.losses][:stopped.step]
                    == list(range(1, stopped.step + 1)), timeout=10_000)  # its history
    done = finished(qtbot, page)
    assert isinstance(done, Done) and done.steps == 6, done
    assert [s for s, _ in panel.plot.train] == list(range(1, 7))
    assert AdapterLibrary().find("paused") is not None
    qtbot.waitUntil(lambda: page.jobs_box.isHidden(), timeout=10_000)


@needs_extra
@pytest.mark.timeout(600)
def test_quitting_mid_run_asks_and_keeps_the_run_to_resume(qtbot: QtBot, home: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    desktop = window(qtbot)
    asked: list[str] = []
    answer = [QMessageBox.StandardButton.Cancel]

    def question(_parent: Any, _title: str, text: str, *_: Any) -> Any:
        asked.append(text)
        return answer[0]

    monkeypatch.setattr(QMessageBox, "question", question)
    try:
        page = train_page(qtbot, desktop)
        choose_file(qtbot, page, monkeypatch, DATA)
        start(qtbot, page, steps=30, checkpoint_every=2)
        train = page.train
        qtbot.waitUntil(lambda: (train.run.checkpoint or 0) >= 2, timeout=WAIT_MS)
        desktop.window.close()  # "Cancel": the window stays and the run goes on
        assert desktop.window.isVisible() and train.busy
        assert "'zorblax' is training (step " in asked[0] and "Quit anyway?" in asked[0]
        answer[0] = QMessageBox.StandardButton.Yes
        job = train.job
        desktop.window.close()
        assert not desktop.window.isVisible() and not train.busy
        assert isinstance(train.run.final, Cancelled), train.run.final
        assert job is not None and job.process.poll() == 0  # ended by itself, not killed
        kept = train.run.final.step
        assert kept >= 2
    finally:
        desktop.close()

    again = window(qtbot)
    try:
        page = train_page(qtbot, again)
        qtbot.waitUntil(lambda: "zorblax" in page.job_rows, timeout=30_000)
        row = page.job_labels["zorblax"].text()
        assert row.startswith(f"zorblax: stopped at step {kept} of 30 · zorblax.jsonl (32 "
                              "examples)"), row
        answer[0] = QMessageBox.StandardButton.Yes
        page.job_rows["zorblax"][1].click()  # Discard…, and yes
        qtbot.waitUntil(lambda: page.jobs_box.isHidden(), timeout=10_000)
        assert "Discard the training 'zorblax'?" in asked[-1]
        from desktop.train.store import jobs_folder

        assert not any(jobs_folder().iterdir())
    finally:
        again.close()
