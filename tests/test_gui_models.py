"""The Models page with the real engine and the real huggingface_hub against the tests' hub.

The hub (tests/hubserver.py) serves the starter model under a new repo and file name, and a
catalog that points at it, so a download started from the page goes all the way: transfer,
sha256 check, the library, the chat's model picker, and loading it in the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, open_desktop
from hubserver import HubServer, file_sha256
from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester
from PySide6.QtWidgets import QFileDialog, QMessageBox

from desktop.core.downloads import NOTE, PART, State, destination
from desktop.core.library import STARTER_ID
from desktop.core.settings import Settings, save_settings

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the engine tests use POSIX signals")

REPO = "nomoat-test/TinyChat-GGUF"
FILE = "TinyChat-135M.Q4_1.gguf"
OTHER = "TinyChat-135M.Q8_0.gguf"  # the same bytes under a second name
MISSING = "TinyChat-135M.Q6_K.gguf"  # listed by the catalog, not in the repo
GATED = "nomoat-test/Gated-GGUF"
CATALOG_REPO = "nomoat-test/catalog"
TOKEN = "hf_nomoat_test_token"
KEY = f"{REPO}/{FILE}"
MB = 1024 * 1024
FATAL = QAbstractItemModelTester.FailureReportingMode.Fatal


def catalog_document(starter: Path) -> bytes:
    """A catalog with the starter model, a model on the tests' hub, and one that is missing."""
    bundled = json.loads((Path(__file__).resolve().parent.parent / "catalog.json").read_text())
    starter_entry = next(e for e in bundled["models"] if e["id"] == STARTER_ID)
    tiny = {**starter_entry, "id": "tiny-chat", "name": "TinyChat 135M", "repo_id": REPO,
            "filename": FILE, "sha256": file_sha256(starter), "bundled": False,
            "size_bytes": starter.stat().st_size,
            "description": "The starter model again, served by the tests' hub."}
    missing = {**tiny, "id": "missing-chat", "name": "Missing Chat", "filename": MISSING}
    return json.dumps({"schema_version": 1,
                       "models": [starter_entry, tiny, missing]}).encode()


def publish(hub: HubServer, starter: Path) -> None:
    """Put the test repos and the catalog on *hub*."""
    hub.add_repo(REPO, {FILE: starter, OTHER: starter, "README.md": b"# TinyChat\n"},
                 downloads=50, likes=3)
    hub.add_repo(GATED, {FILE: starter}, gated=True, downloads=5)
    hub.add_repo(CATALOG_REPO, {"catalog.json": catalog_document(starter)}, tags=("catalog",))


def catalog_url(hub: HubServer) -> str:
    """The address of the catalog that publish() put on *hub* (a small file in a repo)."""
    return f"{hub.endpoint}/{CATALOG_REPO}/resolve/main/catalog.json"


@pytest.fixture
def hub(starter: Path) -> Iterator[HubServer]:
    with HubServer(token=TOKEN) as server:
        publish(server, starter)
        yield server


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub: HubServer) -> Path:
    """A data folder whose settings point at the tests' hub and its catalog."""
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    save_settings(Settings(catalog_url=catalog_url(hub), hub_endpoint=hub.endpoint,
                           hub_token=TOKEN))
    return tmp_path / "home"


def open_app(qtbot: Any) -> Any:
    """The app as a user starts it (settings applied), once the engine has its model."""
    return open_desktop(qtbot, theme=None)


def check_models(page: Any) -> list[QAbstractItemModelTester]:
    """Watch every item model of the page for the rest of the test."""
    return [QAbstractItemModelTester(model, FATAL) for model in (
        page.catalog_tab.model, page.catalog_tab.shown, page.installed_tab.model,
        page.downloads_tab.model, page.explore_tab.results, page.explore_tab.files)]


def cells(page: Any, model_id: str) -> dict[str, str]:
    model = page.installed_tab.model
    row = model.row_of(model_id)
    return {model.headerData(c, Qt.Orientation.Horizontal): model.index(row, c).data()
            for c in range(model.columnCount())}


def card_of(qtbot: Any, page: Any, entry_id: str) -> Any:
    qtbot.waitUntil(lambda: page.catalog_tab.card(entry_id) is not None, timeout=15_000)
    return page.catalog_tab.card(entry_id)


def test_a_catalog_download_installs_and_loads(qtbot, hub, home, starter) -> None:
    app = open_app(qtbot)
    try:
        page = app.models_page
        testers = check_models(page)
        app.window.show_page("Models")
        card = card_of(qtbot, page, "tiny-chat")
        assert "98.4 MB" in card.facts.text() and "Q4_1" in card.facts.text()
        assert card.license_badge.text() == "Apache 2.0" and "135M parameters" in card.facts.text()
        assert card.license_badge.toolTip() == "License: apache-2.0"
        qtbot.waitUntil(lambda: card.badge.text() in ("fits", "tight", "won't fit",
                                                      "memory unknown"), timeout=10_000)
        assert "Needs" in card.badge.toolTip()
        starter_card = page.catalog_tab.card(STARTER_ID)
        qtbot.waitUntil(lambda: not starter_card.installed_row.isHidden(), timeout=10_000)
        assert starter_card.controls.isHidden()
        assert card.installed_row.isHidden() and not card.controls.download_button.isHidden()
        assert card.controls.download_button.accessibleName() == "Download TinyChat 135M"

        card.controls.download_button.click()
        qtbot.waitUntil(lambda: page.installed_tab.model.row_of("tiny-chat") >= 0,
                        timeout=30_000)
        picker = app.window.chat_page.model_picker
        qtbot.waitUntil(lambda: picker.findData("tiny-chat") >= 0)
        assert not card.installed_row.isHidden() and card.controls.isHidden()
        assert "was downloaded and checked" in page.status.text()
        done = page.downloads_tab.card(KEY)
        assert done is not None and done.controls.state is State.DONE
        assert "Installed" in done.controls.detail.text()
        path = destination(REPO, FILE, home / "models")
        assert path.is_file() and file_sha256(path) == file_sha256(starter)
        facts = cells(page, "tiny-chat")
        assert facts["Architecture"] == "llama" and facts["Quantization"] == "Q4_1"
        assert facts["Chat template"] == "yes" and facts["Parameters"] == "135M"
        assert facts["Context"] == "8,192" and facts["Size"] == "98.4 MB"
        assert facts["Status"] == "Ready"

        page.installed_tab.load_button("tiny-chat").click()
        qtbot.waitUntil(lambda: (app.engine.status.get("model") or {}).get("id")
                        == "tiny-chat", timeout=30_000)
        assert app.chat.model == "tiny-chat" and picker.currentData() == "tiny-chat"
        assert page.status.text() == "tiny-chat is loaded; the chat uses it now."
        qtbot.waitUntil(lambda: cells(page, "tiny-chat")["Status"] == "Loaded")
        assert cells(page, STARTER_ID)["Status"] == "Ready"
        assert len(testers) == 6
    finally:
        app.close()


def test_pause_resume_and_cancel_from_the_page(qtbot, hub, home) -> None:
    app = open_app(qtbot)
    part = destination(REPO, FILE, home / "models").with_name(FILE + PART)
    try:
        page = app.models_page
        check_models(page)
        card = card_of(qtbot, page, "tiny-chat")
        hub.switches.rate = 30 * MB  # about 3 s for the file: time to pause it
        shown: list[float] = []
        app.downloads.changed.connect(
            lambda event: event.state is State.DOWNLOADING and shown.append(time.monotonic()))
        card.controls.download_button.click()
        qtbot.waitUntil(lambda: card.controls.state is State.DOWNLOADING
                        and card.controls.progress.value() > 0 and len(shown) >= 3,
                        timeout=15_000)
        # Progress reaches the window about four times a second, not with every chunk: a
        # late delivery can bunch two, so the count is checked, not each gap.
        assert len(shown) <= (shown[-1] - shown[0]) / 0.25 + 2, shown
        assert "MB/s" in card.controls.detail.text() and "left" in card.controls.detail.text()
        card.controls.pause_button.click()
        qtbot.waitUntil(lambda: card.controls.state is State.PAUSED, timeout=10_000)
        assert card.controls.pause_button.text() == "Resume"
        assert "kept" in card.controls.detail.text()
        kept = part.stat().st_size
        assert kept > 0
        row = page.downloads_tab.card(KEY)
        assert row is not None and row.controls.state is State.PAUSED

        card.controls.pause_button.click()  # Resume, then close the app while it runs
        qtbot.waitUntil(lambda: card.controls.state is State.DOWNLOADING
                        and part.stat().st_size > kept, timeout=10_000)
    finally:
        app.close()
    kept = part.stat().st_size  # closing paused it: the bytes stay for next time
    assert kept > 0 and not destination(REPO, FILE, home / "models").exists()

    hub.switches.rate = None
    hub.reset_counters()
    app = open_app(qtbot)
    try:
        page = app.models_page
        check_models(page)
        qtbot.waitUntil(lambda: page.downloads_tab.card(KEY) is not None, timeout=10_000)
        row = page.downloads_tab.card(KEY)
        assert row.controls.state is State.PAUSED and "last closed" in row.controls.detail.text()
        assert card_of(qtbot, page, "tiny-chat").controls.pause_button.text() == "Resume"
        row.controls.pause_button.click()  # Resume, from the downloads tab this time
        qtbot.waitUntil(lambda: page.installed_tab.model.row_of("tiny-chat") >= 0,
                        timeout=30_000)
        ranges = [r.range for r in hub.body_requests()]
        assert ranges == [f"bytes={kept}-"]  # nothing fetched twice

        explore = page.explore_tab
        explore.query.setText("tinychat")
        explore.search_button.click()
        qtbot.waitUntil(lambda: explore.results.rowCount() == 1, timeout=10_000)
        assert explore.results.index(0, 0).data() == REPO
        explore.select_repo(0)
        qtbot.waitUntil(lambda: OTHER in explore.download_buttons, timeout=10_000)
        assert [explore.files.index(r, 1).data() for r in range(explore.files.rowCount())] \
            == ["Q4_1", "Q8_0"]
        assert explore.files.index(1, 2).data() == "98.4 MB"

        hub.switches.rate = 20 * MB
        explore.download_buttons[OTHER].click()
        other = f"{REPO}/{OTHER}"
        qtbot.waitUntil(lambda: page.downloads_tab.card(other) is not None
                        and page.downloads_tab.card(other).controls.progress.value() > 0,
                        timeout=15_000)
        controls = page.downloads_tab.card(other).controls
        controls.cancel_button.click()
        qtbot.waitUntil(lambda: controls.state is State.CANCELLED, timeout=10_000)
        assert "deleted" in controls.detail.text()
        assert controls.download_button.text() == "Download again"
        folder = destination(REPO, OTHER, home / "models").parent
        assert sorted(p.name for p in folder.iterdir()) == [FILE]
        page.downloads_tab.clear_button.click()  # both are finished: done and cancelled
        assert page.downloads_tab.model.rowCount() == 0 and page.downloads_tab.cards.cards == []
    finally:
        app.close()


def test_failed_downloads_and_hub_errors_say_why(qtbot, hub, home) -> None:
    app = open_app(qtbot)
    try:
        page = app.models_page
        check_models(page)
        card = card_of(qtbot, page, "tiny-chat")
        hub.switches.wrong_bytes = True
        card.controls.download_button.click()
        qtbot.waitUntil(lambda: card.controls.state is State.FAILED, timeout=30_000)
        text = card.controls.detail.text()
        assert "is damaged" in text and "was deleted" in text, text
        assert card.controls.pause_button.text() == "Try again"
        assert page.downloads_tab.card(KEY).controls.detail.text() == text
        folder = destination(REPO, FILE, home / "models").parent
        assert not [p for p in folder.iterdir() if p.name.endswith((PART, NOTE, ".gguf"))]
        assert page.installed_tab.model.row_of("tiny-chat") < 0

        missing = card_of(qtbot, page, "missing-chat")
        missing.controls.download_button.click()
        qtbot.waitUntil(lambda: missing.controls.state is State.FAILED, timeout=15_000)
        assert f"has no file '{MISSING}'" in missing.controls.detail.text()

        explore = page.explore_tab
        page.set_hub(hub.endpoint, "hf_not_the_right_token")
        explore.query.setText("gated")
        explore.search_button.click()
        qtbot.waitUntil(lambda: explore.results.rowCount() == 1, timeout=10_000)
        assert explore.results.index(0, 3).data() == "gated: needs a token"
        explore.select_repo(0)
        qtbot.waitUntil(lambda: FILE in explore.download_buttons, timeout=10_000)
        explore.download_buttons[FILE].click()
        gated = f"{GATED}/{FILE}"
        qtbot.waitUntil(lambda: page.downloads_tab.card(gated) is not None
                        and page.downloads_tab.card(gated).controls.state is State.FAILED,
                        timeout=15_000)
        assert "is a gated model" in page.downloads_tab.card(gated).controls.detail.text()

        page.set_hub(f"http://127.0.0.1:{free_port()}", TOKEN)
        explore.search_button.click()
        qtbot.waitUntil(lambda: "cannot be reached" in explore.status.text(), timeout=15_000)
        assert explore.results.rowCount() == 1  # what was found before stays
    finally:
        hub.switches.wrong_bytes = False
        app.close()


def test_import_and_remove_with_confirmation(qtbot, home, starter, tmp_path,
                                             monkeypatch) -> None:
    outside = tmp_path / "elsewhere" / "Imported-Tiny.Q4_1.gguf"
    outside.parent.mkdir()
    try:
        os.link(starter, outside)  # quick, and the same bytes
    except OSError:
        shutil.copyfile(starter, outside)
    broken = home / "models" / "Broken-Model.gguf"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)

    app = open_app(qtbot)
    try:
        page = app.models_page
        check_models(page)
        tab = page.installed_tab
        qtbot.waitUntil(lambda: tab.model.row_of("broken-model") >= 0, timeout=10_000)
        status = cells(page, "broken-model")["Status"]
        assert status.startswith("Cannot be loaded:") and len(status) > 20
        assert tab.load_button("broken-model") is None
        assert tab.remove_button("broken-model") is not None
        assert tab.load_button(STARTER_ID) is not None and tab.remove_button(STARTER_ID) is None
        assert "cannot be loaded" in tab.summary.text()

        monkeypatch.setattr(QFileDialog, "getOpenFileName",
                            staticmethod(lambda *args, **kwargs: (str(starter), "")))
        tab.import_button.click()
        qtbot.waitUntil(lambda: "Could not import" in tab.status.text(), timeout=10_000)
        assert "already in the library" in tab.status.text()

        monkeypatch.setattr(QFileDialog, "getOpenFileName",
                            staticmethod(lambda *args, **kwargs: (str(outside), "")))
        tab.copy_imports.setChecked(False)
        tab.import_button.click()
        qtbot.waitUntil(lambda: tab.model.row_of("imported-tiny.q4_1") >= 0, timeout=10_000)
        picker = app.window.chat_page.model_picker
        qtbot.waitUntil(lambda: picker.findData("imported-tiny.q4_1") >= 0)
        assert "Imported" in tab.status.text()

        questions: list[str] = []
        answer = QMessageBox.StandardButton.No

        def ask(*args: Any, **kwargs: Any) -> QMessageBox.StandardButton:
            questions.append(args[2])
            return answer

        monkeypatch.setattr(QMessageBox, "question", staticmethod(ask))
        tab.remove_button("imported-tiny.q4_1").click()
        assert len(questions) == 1 and "stays where it is" in questions[0]
        assert tab.model.row_of("imported-tiny.q4_1") >= 0

        answer = QMessageBox.StandardButton.Yes
        tab.remove_button("imported-tiny.q4_1").click()
        qtbot.waitUntil(lambda: tab.model.row_of("imported-tiny.q4_1") < 0, timeout=10_000)
        assert outside.is_file()  # registered where it was: only forgotten
        qtbot.waitUntil(lambda: picker.findData("imported-tiny.q4_1") < 0)

        tab.remove_button("broken-model").click()
        assert "is deleted" in questions[-1]
        qtbot.waitUntil(lambda: tab.model.row_of("broken-model") < 0, timeout=10_000)
        assert not broken.exists()
        assert len(questions) == 3
    finally:
        app.close()
