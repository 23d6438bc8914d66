"""Documents in the window, driven as a user drives them: the Documents page makes a collection
of a real folder, the real engine embeds it with the real all-MiniLM-L6-v2 model (installed in
the test's data folder), and the chat answers from it with the starter model.

Dialogs that would wait for the user (a name, a folder, a confirmation) are answered by
replacing Qt's static dialog functions; everything else is the window's own widgets.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import open_desktop
from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QTextCursor
from PySide6.QtTest import QAbstractItemModelTester
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QMessageBox
from pytestqt.exceptions import TimeoutError as WaitTimeout

from desktop.client.api import EngineClient
from desktop.core.chats import Source
from desktop.core.library_changes import import_model
from desktop.ui.docs_controller import NO_MODEL
from desktop.ui.models.installed import STATUS_COLUMN
from desktop.ui.views.catalog_page import EMBEDDING_LABEL
from desktop.ui.views.markdown import link_citations
from desktop.ui.views.message import MessageWidget

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the engine tests use POSIX signals")

FACT = ("The secret ingredient of Grandma Ada's sourdough bread is a spoon of buckwheat honey, "
        "stirred in before the second rise.")
QUESTION = "What is the secret ingredient of Grandma Ada's sourdough bread?"
INDEXED = 120_000  # ms: enough for the first load of the embedding model on a slow machine
FATAL = QAbstractItemModelTester.FailureReportingMode.Fatal


def write_notes(folder: Path) -> Path:
    """A folder of a few files; the fact is in exactly one, and two cannot be read."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bread.md").write_text(f"# Baking\n\n{FACT}\n", encoding="utf-8")
    (folder / "trains.txt").write_text(
        "Timetables\n\nThe morning train to the coast leaves at seven. Tickets are sold at the "
        "station and on board.\n", encoding="utf-8")
    (folder / "garden.md").write_text(
        "# Garden\n\nTomatoes want sun and water in the evening. Basil grows well beside "
        "them.\n", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a real PDF\n")
    (folder / "empty.md").write_text("   \n", encoding="utf-8")
    return folder


def write_many(folder: Path, count: int) -> Path:
    """A folder of *count* short notes, for an indexing that takes a while."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (folder / f"note{number:03d}.txt").write_text(
            f"Note {number}\n\n" + " ".join(f"Line {line} of note {number} says something "
                                            "about the weather and the harbour."
                                            for line in range(12)), encoding="utf-8")
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def minilm(home: Path, minilm_gguf: Path) -> str:
    """The MiniLM embedding model in the test's library (registered where it is)."""
    return import_model(minilm_gguf, copy=False).id


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """The messages of each reply asked of the engine (the real client still sends them)."""
    requests: list[list[dict[str, Any]]] = []
    original = EngineClient.chat_stream

    def chat_stream(self, messages, model=None, **params):  # type: ignore[no-untyped-def]
        requests.append(json.loads(json.dumps(messages)))
        return original(self, messages, model, **params)

    monkeypatch.setattr(EngineClient, "chat_stream", chat_stream)
    return requests


def start(qtbot):  # type: ignore[no-untyped-def]
    desktop = open_desktop(qtbot)
    desktop.chat.sampling = {"max_tokens": 24, "temperature": 0.0}
    qtbot.waitUntil(lambda: desktop.docs.store is not None and desktop.docs.models is not None,
                    timeout=30_000)
    return desktop


@pytest.fixture
def app(qtbot, home, minilm, sent):  # type: ignore[no-untyped-def]
    desktop = start(qtbot)
    yield desktop
    desktop.close()


def new_collection(qtbot, app, monkeypatch, name: str):  # type: ignore[no-untyped-def]
    page = app.docs_page
    app.window.show_page("Documents")
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: (name, True))
    qtbot.mouseClick(page.new_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.card(name) is not None, timeout=10_000)
    return page.card(name)


def add_folder(qtbot, monkeypatch, card, folder: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    qtbot.mouseClick(card.add_folder, Qt.MouseButton.LeftButton)


def wait_indexed(qtbot, app, card) -> None:  # type: ignore[no-untyped-def]
    try:
        # The cards show what was read after the pass, not before it.
        qtbot.waitUntil(lambda: app.docs.indexing is None and not app.docs.waiting
                        and not app.docs.reading and card.state.text() == "Up to date",
                        timeout=INDEXED)
    except WaitTimeout as exc:  # say what the page says
        raise AssertionError(f"{card.state.text()!r}, {card.progress.text()!r}, "
                             f"{app.docs_page.notice.text()!r}") from exc


def pick(app, *names: str) -> None:  # type: ignore[no-untyped-def]
    """Tick collections in the chat's documents menu, as the user does."""
    button = app.window.chat_page.docs_button
    button.docs_menu.aboutToShow.emit()
    for action in button.docs_menu.actions():
        if action.text() in names:
            action.trigger()
    assert app.chat.docs == list(names)
    assert button.text() == f"Documents ({len(names)})"


def ask(qtbot, app, text: str = QUESTION):  # type: ignore[no-untyped-def]
    page = app.window.chat_page
    app.window.show_page("Chat")
    page.composer.setPlainText(text)
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        qtbot.keyClick(page.composer, Qt.Key.Key_Return)
    return finished.args[0]


class UrlCatcher(QObject):
    """Stands in for the system's viewer of file URLs: it only notes what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:  # noqa: A003 - the name QDesktopServices calls
        self.urls.append(QUrl(url))


@pytest.fixture
def opened() -> Any:
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    yield catcher
    QDesktopServices.unsetUrlHandler("file")


def click_citation(qtbot, widget: MessageWidget, number: int) -> None:  # type: ignore[no-untyped-def]
    """Click the citation [number] in a reply's text where it is drawn."""
    for paragraph in widget.body.paragraphs():
        found = paragraph.document().find(f"[{number}]")
        if found.isNull():
            continue
        cursor = QTextCursor(paragraph.document())
        cursor.setPosition(found.selectionStart() + 1)
        point = paragraph.cursorRect(cursor).center()
        qtbot.mouseClick(paragraph.viewport(), Qt.MouseButton.LeftButton, pos=point)
        return
    raise AssertionError(f"no [{number}] in the reply")


def test_citations_become_links_to_their_sources() -> None:
    assert link_citations("Honey [1], bread [2][3].", 3) == (
        "Honey [\\[1\\]](source:1), bread [\\[2\\]](source:2)[\\[3\\]](source:3).")
    # Not a source there is, not a link already, not a reference, not code, not escaped.
    for text in ("See [4].", "[1](https://example.org)", "[1]: https://example.org",
                 "`items[1]`", "\\[1]"):
        assert link_citations(text, 3) == text
    assert link_citations("No sources [1].", 0) == "No sources [1]."


# -- the whole way: a folder, its index, a reply that cites it ------------------------------------

def test_a_collection_answers_in_the_chat_with_its_sources_saved_and_exported(
        qtbot, app, tmp_path, monkeypatch, sent, opened) -> None:
    notes = write_notes(tmp_path / "notes")
    card = new_collection(qtbot, app, monkeypatch, "Notes")
    assert card.state.text() == "Empty: add folders or files"
    seen: list[Any] = []
    app.docs.progressChanged.connect(seen.append)
    add_folder(qtbot, monkeypatch, card, notes)
    qtbot.waitUntil(lambda: app.docs.indexing is not None, timeout=10_000)
    wait_indexed(qtbot, app, card)
    last = seen[-1]
    assert (last.phase, last.files_done, last.files_total) == ("finished", 5, 5)
    assert any(p.phase == "indexing" for p in seen)
    assert card.facts.text().startswith("3 files · ") and "2 unreadable" in card.facts.text()
    assert "embedding model " in card.facts.text()
    assert list(card.remove_buttons) == [str(notes)]
    # The unreadable files, with their reasons, a click away.
    assert card.unreadable_header.text() == "Unreadable files (2)"
    assert not card.unreadable.isVisible()
    qtbot.mouseClick(card.unreadable_header, Qt.MouseButton.LeftButton)
    assert card.unreadable.isVisible()
    listed = card.unreadable.text()
    assert "broken.pdf" in listed and "damaged PDF" in listed
    assert "empty.md" in listed and "no text in it" in listed

    # The chat answers from it: the passages go in the question's message, before it (every
    # chat template takes that), under the chat's own system prompt.
    pick(app, "Notes")
    app.window.chat_page.system_prompt.setPlainText("Answer in one sentence.")
    # The question and the reply's row are shown before the search (a first search may wait
    # for the embedding model), then the sources are saved with the row before any text.
    events: list[Any] = []
    app.chat.replyStarted.connect(
        lambda conversation, messages: events.append(("started", messages[-2].content,
                                                      messages[-1])))
    app.chat.replySearching.connect(lambda names: events.append(("searching", names)))
    app.chat.replySources.connect(
        lambda reply_id, sources: events.append(
            ("sources", app.store.message(reply_id).sources,
             app.window.chat_page.reply.sources.header.text())))
    app.chat.replyText.connect(lambda text: events.append(("text",)))
    message = ask(qtbot, app)
    assert message.state == "complete", message.error
    assert message.sources and Path(message.sources[0].path) == notes / "bread.md"
    assert "buckwheat honey" in message.sources[0].snippet
    assert [e[0] for e in events[:3]] == ["started", "searching", "sources"]
    assert events[0][1] == QUESTION
    assert events[0][2].state == "streaming" and events[0][2].sources == ()
    assert events[1][1] == ["Notes"]
    assert events[2][1] == message.sources  # saved while streaming: a crash keeps them
    assert events[2][2] == f"Sources ({len(message.sources)})"
    assert all(e[0] == "text" for e in events[3:])
    prompt = sent[-1]
    assert prompt[0] == {"role": "system", "content": "Answer in one sentence."}
    assert prompt[-1]["role"] == "user" and prompt[-1]["content"].endswith(
        f"\n\nQuestion: {QUESTION}")
    assert "[1] bread.md" in prompt[-1]["content"] and FACT in prompt[-1]["content"]
    assert [m["role"] for m in prompt].count("system") == 1
    reply = app.window.chat_page.messages[-1]
    assert reply.sources.header.text() == f"Sources ({len(message.sources)})"
    assert reply.sources.entries[0].open_button.text() == "[1] bread.md — Baking"

    # Saved with the reply, shown again when the chat is reopened, and exported.
    cid = message.conversation_id
    saved = app.store.messages(cid)[-1]
    assert saved.sources == message.sources
    assert app.store.conversation(cid).settings["docs"] == ["Notes"]
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=10_000):
        app.chat.new_conversation()
    assert app.window.chat_page.docs_button.text() == "Documents"
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=10_000):
        app.chat.open_conversation(cid)
    assert app.chat.docs == ["Notes"]
    reopened = app.window.chat_page.messages[-1]
    assert [e.source for e in reopened.sources.entries] == list(message.sources)
    markdown = app.store.export_markdown(cid)
    assert "Sources:" in markdown and f"- [1] bread.md — Baking ({notes / 'bread.md'}" in markdown
    exported = json.loads(app.store.export_json(cid))
    assert exported["messages"][-1]["sources"][0]["path"] == str(notes / "bread.md")
    assert exported["messages"][-1]["sources"][0]["heading"] == "Baking"

    # Clicking a source opens its file with the system (a PDF at its page).
    entry = reopened.sources.entries[0]
    reopened.sources.set_open(True)
    qtbot.mouseClick(entry.open_button, Qt.MouseButton.LeftButton)
    assert opened.urls == [QUrl.fromLocalFile(str(notes / "bread.md"))]

    # A citation in the reply's text is a link to its source's entry.
    cited = replace(message, content="Buckwheat honey [2], as the notes say [1].",
                    sources=(*message.sources[:1],
                             Source(str(notes / "broken.pdf"), 3, None, "A page.", 0.01)))
    widget = MessageWidget.from_message(cited)
    qtbot.addWidget(widget)
    widget.show()
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow)
    assert not widget.sources.opened
    click_citation(qtbot, widget, 2)
    assert widget.sources.opened
    second = widget.sources.entries[1]
    assert second.open_button.hasFocus()
    assert second.frameShape() != widget.sources.entries[0].frameShape()
    qtbot.mouseClick(second.open_button, Qt.MouseButton.LeftButton)
    pdf = QUrl.fromLocalFile(str(notes / "broken.pdf"))
    pdf.setFragment("page=3")
    assert opened.urls[-1] == pdf


def test_edits_are_followed_and_a_failed_search_still_answers(
        qtbot, app, tmp_path, monkeypatch) -> None:
    notes = write_notes(tmp_path / "notes")
    card = new_collection(qtbot, app, monkeypatch, "Notes")
    add_folder(qtbot, monkeypatch, card, notes)
    qtbot.waitUntil(lambda: app.docs.indexing is not None, timeout=10_000)
    wait_indexed(qtbot, app, card)

    # An edited file: Index again reads that one file, and the chat finds what it says now.
    (notes / "trains.txt").write_text(
        "Timetables\n\nThe night train to Lisbon leaves at 23:15 from platform nine.\n",
        encoding="utf-8")
    seen: list[Any] = []
    app.docs.progressChanged.connect(seen.append)
    qtbot.mouseClick(card.index_again, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1].phase == "finished", timeout=INDEXED)
    wait_indexed(qtbot, app, card)
    assert (seen[-1].files_done, seen[-1].files_total) == (1, 1)
    pick(app, "Notes")
    message = ask(qtbot, app, "When does the night train to Lisbon leave?")
    assert Path(message.sources[0].path) == notes / "trains.txt"
    assert "platform nine" in message.sources[0].snippet

    # Renamed, the chats that answer from it follow; a folder taken out takes its passages.
    app.window.show_page("Documents")
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("Old notes", True))
    qtbot.mouseClick(card.rename, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.docs_page.card("Old notes") is card, timeout=10_000)
    cid = message.conversation_id
    qtbot.waitUntil(lambda: app.store.conversation(cid).settings["docs"] == ["Old notes"],
                    timeout=10_000)
    assert app.chat.docs == ["Old notes"]
    assert app.window.chat_page.docs_button.text() == "Documents (1)"
    qtbot.mouseClick(card.remove_buttons[str(notes)], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: card.facts.text().startswith("0 files · 0 passages"),
                    timeout=10_000)
    assert card.state.text() == "Empty: add folders or files" and not card.remove_buttons

    # Deleted (after asking), the collection is gone: the chat says so, and the reply still
    # comes.
    asked: list[str] = []

    def question(*args: Any, **kwargs: Any) -> QMessageBox.StandardButton:
        asked.append(args[2])
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    qtbot.mouseClick(card.delete, Qt.MouseButton.LeftButton)
    assert "Old notes" in asked[0] and "your files stay" in asked[0]
    qtbot.waitUntil(lambda: not app.docs_page.cards, timeout=10_000)
    assert app.docs_page.empty.isVisible()
    assert (notes / "bread.md").exists()
    message = ask(qtbot, app, "And the morning train?")
    assert message.state == "complete" and message.sources == ()
    notice = app.window.chat_page.notice
    assert notice.isVisible() and "no document collection called 'Old notes'" in notice.text()


def test_embedding_models_are_for_documents_not_for_chatting(qtbot, app, minilm) -> None:
    page = app.models_page
    testers = [QAbstractItemModelTester(model, FATAL)
               for model in (page.catalog_tab.model, page.installed_tab.model)]
    app.window.show_page("Models")
    installed = page.installed_tab
    qtbot.waitUntil(lambda: installed.model.row_of(minilm) >= 0, timeout=10_000)
    row = installed.model.row_of(minilm)
    assert installed.model.index(row, STATUS_COLUMN).data() == "Embedding model — for Documents"
    assert installed.load_button(minilm) is None and installed.remove_button(minilm) is not None
    assert installed.load_button("smollm2-135m-instruct") is not None
    picker = app.window.chat_page.model_picker
    assert picker.findData(minilm) < 0 and picker.findData("smollm2-135m-instruct") >= 0

    qtbot.waitUntil(lambda: page.catalog_tab.card("nomic-embed-text-v1-5") is not None,
                    timeout=10_000)
    card = page.catalog_tab.card("nomic-embed-text-v1-5")
    assert card.kind_label.isVisible() and card.kind_label.text() == EMBEDDING_LABEL
    assert not card.controls.download_button.isHidden()
    assert card.load_button.isHidden()
    chat_card = page.catalog_tab.card("smollm2-135m-instruct")
    assert chat_card.kind_label.isHidden()
    qtbot.waitUntil(lambda: card.badge.toolTip() != "", timeout=10_000)
    assert card.badge.toolTip().startswith("An embedding model for Documents, loaded beside "
                                           "the chat model")
    assert "context cache" not in card.badge.toolTip()
    assert "context cache" in chat_card.badge.toolTip()
    assert len(testers) == 2  # watched to the end


# -- indexing: pause, resume, quit, start again ----------------------------------------------------

def test_pause_resume_quit_and_the_next_start_carries_on(qtbot, home, minilm, tmp_path,
                                                         monkeypatch) -> None:
    many = write_many(tmp_path / "many", 60)
    app = start(qtbot)
    try:
        card = new_collection(qtbot, app, monkeypatch, "Harbour")
        add_folder(qtbot, monkeypatch, card, many)
        qtbot.waitUntil(lambda: app.docs.indexing is not None, timeout=10_000)
        assert card.pause.isVisible() and card.pause.text() == "Pause"
        qtbot.mouseClick(card.pause, Qt.MouseButton.LeftButton)
        assert card.pause.text() == "Resume" and card.state.text() == "Paused"
        # The indexing stops at its next batch and says so.
        qtbot.waitUntil(lambda: app.docs.progress is not None and app.docs.progress.paused,
                        timeout=INDEXED)
        done = app.docs.progress.files_done
        assert done < 60 and card.progress.text().startswith("Paused")
        qtbot.mouseClick(card.pause, Qt.MouseButton.LeftButton)
        assert card.pause.text() == "Pause"
        qtbot.waitUntil(lambda: app.docs.progress is not None
                        and app.docs.progress.files_done > done, timeout=INDEXED)
        # Paused again, the window closes: the indexing ends, nothing is left running.
        card.pause.click()
        qtbot.waitUntil(lambda: app.docs.progress is not None and app.docs.progress.paused,
                        timeout=INDEXED)
        left_at = app.docs.progress.files_done
    finally:
        app.close()
    assert left_at < 60

    # The next start brings it up to date by itself, going on from where it was.
    (many / "note000.txt").write_text("Changed while NoMoat was closed: the harbour "
                                      "master's boat is blue.", encoding="utf-8")
    restarted = time.time()
    app = start(qtbot)
    try:
        qtbot.waitUntil(lambda: app.docs_page.card("Harbour") is not None, timeout=10_000)
        card = app.docs_page.card("Harbour")
        wait_indexed(qtbot, app, card)
        assert card.facts.text().startswith("60 files")
        files = {Path(f.path).name: f for f in app.docs.store.files(card.info.id)}
        assert len(files) == 60
        kept = [f for f in files.values() if f.indexed < restarted]
        assert len(kept) == left_at - 1  # all it had indexed but the file changed meanwhile
        assert files["note000.txt"].indexed >= restarted
    finally:
        app.close()


def test_the_window_never_waits_while_a_collection_is_indexed(qtbot, app, tmp_path,
                                                              monkeypatch) -> None:
    many = write_many(tmp_path / "many", 40)
    card = new_collection(qtbot, app, monkeypatch, "Harbour")
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    add_folder(qtbot, monkeypatch, card, many)
    qtbot.waitUntil(lambda: app.docs.indexing is not None, timeout=10_000)
    last[0] = time.perf_counter()
    timer.start()
    try:
        wait_indexed(qtbot, app, card)
    finally:
        timer.stop()
    assert card.facts.text().startswith("40 files")
    assert len(gaps) > 10
    assert max(gaps) < 0.050, sorted(gaps)[-5:]


# -- without an embedding model; by keyboard ------------------------------------------------------

def test_without_an_embedding_model_the_page_says_what_to_do(qtbot, home, tmp_path,
                                                             monkeypatch, minilm_gguf) -> None:
    notes = write_notes(tmp_path / "notes")
    app = start(qtbot)
    try:
        page = app.docs_page
        app.window.show_page("Documents")
        assert page.model_notice.isVisible() and page.model_notice.text() == NO_MODEL
        assert "nomic-embed-text-v1-5" in NO_MODEL and "\n" not in NO_MODEL
        card = new_collection(qtbot, app, monkeypatch, "Notes")
        add_folder(qtbot, monkeypatch, card, notes)
        qtbot.waitUntil(lambda: list(card.remove_buttons) == [str(notes)], timeout=10_000)
        extra = tmp_path / "extra.txt"
        extra.write_text("One more note.", encoding="utf-8")
        monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                            lambda *args, **kwargs: ([str(extra)], ""))
        qtbot.mouseClick(card.add_files, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: list(card.remove_buttons) == [str(notes), str(extra)],
                        timeout=10_000)
        assert app.docs.indexing is None and not card.index_again.isEnabled()
        assert card.state.text() == "Waits for an embedding model"
        assert not card.progress_row.isVisible()
        assert card.info.collection.files == 0
        qtbot.mouseClick(page.models_button, Qt.MouseButton.LeftButton)
        assert app.window.stack.currentWidget() is app.models_page

        # Once one is installed, what waited is indexed.
        import_model(minilm_gguf, copy=False)
        app.models_page.refresh_library()
        wait_indexed(qtbot, app, card)
        assert page.model_notice.isHidden()
        assert card.facts.text().startswith("4 files")
    finally:
        app.close()


def test_the_documents_page_and_button_by_keyboard(qtbot, app, tmp_path, monkeypatch) -> None:
    card = new_collection(qtbot, app, monkeypatch, "Notes")
    window = app.window
    assert list(window.pages).index("Documents") == list(window.pages).index("Tools") + 1
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.nav.setFocus()
    while window.nav.currentItem().text() != "Documents":
        qtbot.keyClick(window.nav, Qt.Key.Key_Up)
    assert window.stack.currentWidget() is app.docs_page
    reached = []
    for _ in range(20):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        reached.append(QApplication.focusWidget())
    for widget in (app.docs_page.new_button, card.add_folder, card.add_files, card.rename,
                   card.delete):
        assert widget in reached, widget.accessibleName() or widget.text()
    assert card.add_folder.accessibleName() == "Add a folder to Notes"

    # In the chat, Tab goes from the tools button to the documents button.
    window.show_page("Chat")
    page = window.chat_page
    page.tools_button.setFocus()
    qtbot.keyClick(page.tools_button, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is page.docs_button


def test_the_embedding_model_for_new_collections_is_chosen_in_settings(
        qtbot, app, minilm, minilm_gguf, tmp_path, monkeypatch) -> None:
    import shutil

    from desktop.core.settings import load_settings

    # A second embedding model (the same weights under another name) to choose between.
    other = tmp_path / "minilm-twin.gguf"
    shutil.copyfile(minilm_gguf, other)
    twin = import_model(other, copy=False).id
    app.models_page.refresh_library()
    settings = app.settings_page
    box = settings.embedding_model
    qtbot.waitUntil(lambda: box.findData(twin) >= 0, timeout=10_000)
    assert box.itemData(0) is None and box.findData(minilm) >= 0
    assert box.findData("smollm2-135m-instruct") < 0
    # The default model is a chat model: the embedding models are not offered there.
    assert settings.default_model.findData(minilm) < 0
    assert settings.default_model.findData("smollm2-135m-instruct") >= 0
    box.setCurrentIndex(box.findData(twin))
    box.activated.emit(box.currentIndex())
    with qtbot.waitSignal(settings.saved, timeout=10_000):
        settings.flush()
    assert load_settings().docs_embedding_model == twin

    card = new_collection(qtbot, app, monkeypatch, "Twins")
    add_folder(qtbot, monkeypatch, card, write_notes(tmp_path / "notes"))
    wait_indexed(qtbot, app, card)
    assert card.facts.text().endswith(f"embedding model {twin}")
