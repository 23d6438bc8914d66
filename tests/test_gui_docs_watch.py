"""Changes to a collection's folders while the window runs are indexed by themselves: new files
and folders, edits, renames and deletions, with the real engine and the real all-MiniLM-L6-v2
embedding model, as in test_gui_docs. The watcher's waits are made short here; nothing else
is changed."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer, Qt
from PySide6.QtWidgets import QMessageBox
from test_gui_docs import INDEXED, add_folder, new_collection, start, wait_indexed, write_notes

from desktop.core.docs.records import FileRecord
from desktop.core.docs.scanning import looks_changed, scan_roots
from desktop.core.library_changes import import_model
from desktop.ui import docs_watcher
from desktop.ui.docs_watcher import WatchTiming

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the engine tests use POSIX signals")

# Short waits; the safety look never comes during a test, so only what is watched is seen.
FAST = WatchTiming(debounce=0.3, longest=5.0, partial=0.5, safety=3600.0)
SEEN = 30_000  # ms: a change noticed and indexed


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm_gguf: Path) -> Path:
    """A data folder with the MiniLM embedding model, and the watcher's short timing."""
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(docs_watcher, "TIMING", FAST)
    import_model(minilm_gguf, copy=False)
    return tmp_path / "home"


@pytest.fixture
def app(qtbot, home):  # type: ignore[no-untyped-def]
    desktop = start(qtbot)
    yield desktop
    desktop.close()


class Passes:
    """The indexings that start, by collection, and the last progress of each that ended."""

    def __init__(self, docs: Any) -> None:
        self.docs = docs
        self.started: list[int] = []
        self.finished: list[Any] = []
        self._was = docs.indexing
        self._last: Any = None
        docs.indexingChanged.connect(self._changed)
        docs.progressChanged.connect(self._progress)

    def _progress(self, progress: Any) -> None:
        self._last = progress

    def _changed(self) -> None:
        now = self.docs.indexing
        if now != self._was:
            if self._was is not None:
                self.finished.append(self._last)
            if now is not None:
                self.started.append(now)
        self._was = now


def indexed_notes(qtbot, app, tmp_path, monkeypatch, name="Notes"):  # type: ignore[no-untyped-def]
    """A collection of the notes folder, indexed, with its folder and files watched."""
    notes = write_notes(tmp_path / "notes")
    card = new_collection(qtbot, app, monkeypatch, name)
    add_folder(qtbot, monkeypatch, card, notes)
    qtbot.waitUntil(lambda: app.docs.indexing is not None, timeout=10_000)
    wait_indexed(qtbot, app, card)
    watching(qtbot, app, notes, notes / "trains.txt")
    return notes, card


def watching(qtbot, app, *paths: Path) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: {str(p) for p in paths} <= set(app.docs.watcher.watched()),
                    timeout=SEEN)


def files(app, card) -> dict[str, FileRecord]:  # type: ignore[no-untyped-def]
    return {Path(f.path).name: f for f in app.docs.store.files(card.info.id)}


def found(app, question: str) -> list[Any]:  # type: ignore[no-untyped-def]
    """The passages the chat would be given for *question*, searched as it searches."""
    result = app.docs.search(["Notes"], question, 4096)
    assert result.note == "", result.note
    return result.sources


def test_a_look_counts_only_what_indexing_would_change(tmp_path: Path) -> None:
    notes = write_notes(tmp_path / "notes")
    logs = notes / "logs"  # NoMoat's own folder, inside a collection
    logs.mkdir()
    (logs / "engine.log").write_text("started\n", encoding="utf-8")
    known = {path: FileRecord(0, 1, path, found.size, found.mtime_ns, "", "indexed", None,
                              None, 1, "model", 0.0)
             for path, found in scan_roots([str(notes)]).files.items()}

    def changed() -> bool:
        scan = scan_roots([str(notes)], skip=[str(logs)])
        assert str(logs) not in scan.folders and str(notes) in scan.folders
        return looks_changed(known, scan, [str(logs)])

    assert not changed()
    # What NoMoat writes, and what indexing skips (an editor's swap file), change nothing.
    (logs / "engine.log").write_text("started\nserving\n", encoding="utf-8")
    (notes / ".garden.md.swp").write_bytes(b"swap")
    assert not changed()
    os.utime(notes / "garden.md", ns=(1, 1))
    assert changed()
    os.utime(notes / "garden.md", ns=(known[str(notes / "garden.md")].mtime_ns,) * 2)
    (notes / "trains.txt").unlink()
    assert changed()
    # A root that is not there now (an unplugged drive) keeps its files: nothing to do.
    away = str(tmp_path / "unplugged" / "bread.md")
    record = replace(known[str(notes / "bread.md")], path=away)
    assert not looks_changed({away: record}, scan_roots([str(tmp_path / "unplugged")]))


def test_new_files_and_folders_are_indexed_by_themselves(qtbot, app, tmp_path,
                                                         monkeypatch) -> None:
    notes, card = indexed_notes(qtbot, app, tmp_path, monkeypatch)
    passes = Passes(app.docs)
    (notes / "boats.md").write_text("# Boats\n\nThe harbour master's boat is painted "
                                    "bright yellow with a green stripe.\n", encoding="utf-8")
    qtbot.waitUntil(lambda: "boats.md" in files(app, card), timeout=SEEN)
    wait_indexed(qtbot, app, card)
    assert Path(found(app, "What colour is the harbour master's boat?")[0].path) \
        == notes / "boats.md"
    assert card.facts.text().startswith("4 files")

    # A new folder is watched from then on (looking at it indexes nothing: it is empty), so a
    # file written in it later is seen too.
    recipes = notes / "recipes"
    recipes.mkdir()
    watching(qtbot, app, recipes)
    (recipes / "soup.md").write_text("# Soup\n\nThe pumpkin soup needs a pinch of nutmeg and "
                                     "a spoon of cream.\n", encoding="utf-8")
    qtbot.waitUntil(lambda: "soup.md" in files(app, card), timeout=SEEN)
    wait_indexed(qtbot, app, card)
    assert Path(found(app, "What does the pumpkin soup need?")[0].path) == recipes / "soup.md"
    assert passes.started == [card.info.id] * 2
    assert [(p.files_done, p.files_total) for p in passes.finished] == [(1, 1), (1, 1)]


def test_edits_renames_and_deletions_are_followed_by_themselves(qtbot, app, tmp_path,
                                                                monkeypatch) -> None:
    notes, card = indexed_notes(qtbot, app, tmp_path, monkeypatch)
    passes = Passes(app.docs)

    # Written in place (no new entry in the folder: only the file's own watch sees it).
    before = files(app, card)["trains.txt"]
    (notes / "trains.txt").write_text(
        "Timetables\n\nThe night train to Lisbon leaves at 23:15 from platform nine.\n",
        encoding="utf-8")
    qtbot.waitUntil(lambda: files(app, card)["trains.txt"].size != before.size, timeout=SEEN)
    wait_indexed(qtbot, app, card)
    assert "platform nine" in found(app, "When does the night train to Lisbon leave?")[0].snippet
    assert all("coast" not in s.snippet for s in found(app, "the morning train to the coast"))

    # Renamed: the same passages under the new name, nothing read or embedded again.
    garden = files(app, card)["garden.md"]
    chunks = [c.id for c in app.docs.store.file_chunks(garden.id)]
    (notes / "garden.md").rename(notes / "kitchen-garden.md")
    qtbot.waitUntil(lambda: "kitchen-garden.md" in files(app, card), timeout=SEEN)
    wait_indexed(qtbot, app, card)
    moved = files(app, card)["kitchen-garden.md"]
    assert "garden.md" not in files(app, card)
    assert (moved.id, moved.indexed) == (garden.id, garden.indexed)
    assert [c.id for c in app.docs.store.file_chunks(moved.id)] == chunks
    assert passes.finished[-1].files_total == 0

    # Deleted: its passages go with it.
    (notes / "bread.md").unlink()
    qtbot.waitUntil(lambda: "bread.md" not in files(app, card), timeout=SEEN)
    wait_indexed(qtbot, app, card)
    assert all(Path(s.path).name != "bread.md"
               for s in found(app, "the secret ingredient of the sourdough bread"))
    assert len(passes.started) == 3

    # A deleted collection is watched no more.
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(card.delete, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not app.docs_page.cards, timeout=10_000)
    assert app.docs.watcher.watched() == []


def test_a_burst_of_writes_is_a_few_passes_and_a_paused_pass_stays_paused(
        qtbot, app, tmp_path, monkeypatch) -> None:
    notes, card = indexed_notes(qtbot, app, tmp_path, monkeypatch)
    passes = Passes(app.docs)
    for number in range(40):
        (notes / f"log{number:02d}.txt").write_text(
            f"Harbour log {number}\n\n" + " ".join(
                f"Line {line}: the ferry number {number} came in on time." for line in range(12)),
            encoding="utf-8")
        qtbot.wait(10)  # the events come while the files are written, not all at the end
    # Paused once its folder is walked, so what comes next is for another pass.
    qtbot.waitUntil(lambda: app.docs.progress is not None
                    and app.docs.progress.phase == "indexing", timeout=SEEN)
    qtbot.mouseClick(card.pause, Qt.MouseButton.LeftButton)
    assert card.state.text() == "Paused"
    qtbot.waitUntil(lambda: app.docs.progress is not None and app.docs.progress.paused,
                    timeout=INDEXED)

    # A change while it is paused: noticed, but the pass stays paused and nothing else starts.
    started = len(passes.started)
    (notes / "late.md").write_text("The last ferry of the day leaves at midnight.",
                                   encoding="utf-8")
    qtbot.wait(round(FAST.debounce * 4000))
    assert app.docs.paused and card.state.text() == "Paused"
    assert len(passes.started) == started and not app.docs.waiting

    # Resumed, it ends, and what changed meanwhile is indexed by a pass after it.
    qtbot.mouseClick(card.pause, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "late.md" in files(app, card), timeout=INDEXED)
    wait_indexed(qtbot, app, card)
    assert len(files(app, card)) == 46
    assert 2 <= len(passes.started) <= 3, passes.started  # 41 writes, one or two passes
    assert passes.finished[-1].files_total < 40


def test_past_the_watch_limit_a_timer_looks_and_quitting_stops_it_all(
        qtbot, home, tmp_path, monkeypatch) -> None:
    app = start(qtbot)
    try:
        app.docs.watcher.limit = 1  # the folder only, none of its files
        notes = write_notes(tmp_path / "notes")
        card = new_collection(qtbot, app, monkeypatch, "Notes")
        add_folder(qtbot, monkeypatch, card, notes)
        qtbot.waitUntil(lambda: app.docs.indexing is not None, timeout=10_000)
        wait_indexed(qtbot, app, card)
        watching(qtbot, app, notes)
        assert app.docs.watcher.watched() == [str(notes)]
        # Written in place, unwatched: the timer for collections not wholly watched finds it.
        before = files(app, card)["trains.txt"]
        (notes / "trains.txt").write_text("Timetables\n\nNo trains on Sundays.\n",
                                          encoding="utf-8")
        qtbot.waitUntil(lambda: files(app, card)["trains.txt"].size != before.size,
                        timeout=SEEN)
        wait_indexed(qtbot, app, card)

        # A folder taken out is watched no more.
        qtbot.mouseClick(card.remove_buttons[str(notes)], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: app.docs.watcher.watched() == [], timeout=10_000)
        add_folder(qtbot, monkeypatch, card, notes)
        wait_indexed(qtbot, app, card)
        watching(qtbot, app, notes)
        assert [t for t in app.docs.findChildren(QTimer) if t.isActive()]
    finally:
        app.close()
    assert app.docs.watcher.watched() == []
    assert not [t for t in app.docs.findChildren(QTimer) if t.isActive()]
