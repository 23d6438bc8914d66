"""The desktop window with the real engine and starter model, offscreen."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import httpx
import openai
import pytest
from conftest import free_port, open_desktop, start_serve, stop_serve
from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester
from PySide6.QtWidgets import QApplication
from test_parallel import long_story

from desktop.core.chats import ChatStore
from desktop.core.settings import load_settings

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def open_app(qtbot, home: Path):  # type: ignore[no-untyped-def]
    """The window with the starter model loaded and short greedy replies."""
    desktop = open_desktop(qtbot)
    desktop.chat.sampling = {"max_tokens": 24, "temperature": 0.0}
    return desktop


@pytest.fixture
def app(qtbot, home):  # type: ignore[no-untyped-def]
    desktop = open_app(qtbot, home)
    yield desktop
    desktop.close()


def send(qtbot, app, text: str):  # type: ignore[no-untyped-def]
    pieces: list[str] = []
    app.chat.replyText.connect(pieces.append)
    page = app.window.chat_page
    page.composer.setPlainText(text)
    with qtbot.waitSignal(app.chat.replyFinished, timeout=60_000) as finished:
        qtbot.keyClick(page.composer, Qt.Key.Key_Return)
    app.chat.replyText.disconnect(pieces.append)
    return finished.args[0], pieces


def test_send_shows_a_streamed_reply_and_saves_it(qtbot, app) -> None:
    message, pieces = send(qtbot, app, "What is the capital of France?")
    assert message.state == "complete" and message.content
    assert len(pieces) >= 1 and "".join(pieces) == message.content
    shown = app.window.chat_page.state()["messages"]
    assert shown == [("user", "What is the capital of France?"), ("assistant", message.content)]
    assert app.window.chat_page.composer.toPlainText() == ""
    saved = app.store.messages(message.conversation_id)
    assert [m.content for m in saved] == ["What is the capital of France?", message.content]
    assert saved[1].completion_tokens and saved[1].prompt_tokens
    qtbot.waitUntil(lambda: app.window.sidebar.model.rowCount() == 2)  # "Today" + the chat
    QAbstractItemModelTester(app.window.sidebar.model,
                             QAbstractItemModelTester.FailureReportingMode.Fatal)


def test_a_long_reply_keeps_its_end_in_view_without_repainting_what_is_shown(qtbot,
                                                                            app) -> None:
    # Each new line scrolls the chat: the text already shown is moved, not painted again, and
    # the scroll bar repaints itself, not the page beneath it.
    from PySide6.QtCore import QEvent, QObject, QPoint, QRect

    from desktop.ui.views.markdown import MarkdownText

    app.window.resize(900, 420)
    app.chat.sampling = {"max_tokens": 400, "temperature": 0.0}
    page = app.window.chat_page
    bar = page.scroll.verticalScrollBar()
    paints: dict[int, int] = {}  # paints of each paragraph's text, while it is not the last
    page_paints: list[QRect] = []
    scrolls: list[int] = []

    class Counter(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint and page.reply is not None:
                parent = watched.parent()
                if (isinstance(parent, MarkdownText) and parent.isVisible()
                        and parent not in page.reply.body.paragraphs()[-1:]):
                    paints[id(parent)] = paints.get(id(parent), 0) + 1
                elif watched is page:
                    page_paints.append(event.rect())
            return False

    counter = Counter()
    bar.valueChanged.connect(scrolls.append)
    page.composer.setPlainText("Write a long essay about the history of bread, in many paragraphs.")
    with qtbot.waitSignal(app.chat.replyStarted, timeout=60_000):
        qtbot.keyClick(page.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=60_000)  # the reply fills the view
    scrolls.clear()
    QApplication.instance().installEventFilter(counter)
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000):
        pass
    QApplication.instance().removeEventFilter(counter)
    assert len(scrolls) >= 10  # it followed the reply down, line by line
    assert bar.value() == bar.maximum()
    # What the window holds after all that moving of pixels is what painting it afresh shows,
    # the scroll bar included.
    for _ in range(3):
        QApplication.processEvents()
    area = QRect(page.scroll.mapTo(app.window, QPoint(0, 0)), page.scroll.size())
    shown = QApplication.primaryScreen().grabWindow(app.window.winId(), area.x(), area.y(),
                                                     area.width(), area.height())
    assert shown.toImage() == app.window.grab(area).toImage()
    # A paragraph is painted when it is done (parsed a last time) or scrolls out of the way,
    # not once for every line the reply grows by.
    assert sum(paints.values()) < len(scrolls), (paints, len(scrolls))
    # The page beneath the scroll bar is not painted for every line (the Stop button giving
    # way to Send at the end paints a little of it).
    assert len(page_paints) < len(scrolls) / 4, (len(page_paints), len(scrolls))


def start_long_reply(qtbot, app) -> list[str]:  # type: ignore[no-untyped-def]
    """Send for a reply of a few hundred tokens; return the list its streamed pieces go to,
    once the first of them is shown."""
    app.chat.sampling = {"max_tokens": 300, "temperature": 0.0}
    page = app.window.chat_page
    pieces: list[str] = []
    app.chat.replyText.connect(pieces.append)
    page.composer.setPlainText("Write a long essay about the history of bread.")
    qtbot.keyClick(page.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.reply is not None and page.reply.text != "", timeout=60_000)
    return pieces


def test_a_reply_waits_while_the_chat_cannot_be_seen(qtbot, app) -> None:
    # While another page is shown or the window is minimized the streaming reply is not laid
    # out; what it said in the meantime is there as soon as the chat is seen again.
    page = app.window.chat_page
    pieces = start_long_reply(qtbot, app)
    reply = page.reply
    for hide, show in ((lambda: app.window.show_page("Models"),
                        lambda: app.window.show_page("Chat")),
                       (app.window.showMinimized, app.window.showNormal)):
        hide()
        qtbot.waitUntil(lambda: not page.isVisible() or app.window.isMinimized())
        seen, count = reply.text, len(pieces)
        qtbot.waitUntil(lambda: len(pieces) >= count + 3, timeout=60_000)  # it goes on
        assert reply.text == seen  # but nothing was laid out for nobody to see
        show()
        assert page.isVisible() and not app.window.isMinimized()
        assert reply.text == "".join(pieces)  # all of it, at once
    # Restored from minimized onto another page: still nothing to show it on.
    app.window.show_page("Models")
    app.window.showMinimized()
    seen, count = reply.text, len(pieces)
    qtbot.waitUntil(lambda: len(pieces) >= count + 3, timeout=60_000)
    app.window.showNormal()
    assert reply.text == seen
    app.window.show_page("Chat")
    assert reply.text == "".join(pieces)
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        pass
    app.chat.replyText.disconnect(pieces.append)
    assert reply.text == finished.args[0].content == "".join(pieces)


def test_another_chat_can_be_read_while_a_reply_is_written(qtbot, app) -> None:
    first, _ = send(qtbot, app, "Say hello.")
    app.chat.new_conversation()
    page = app.window.chat_page
    pieces = start_long_reply(qtbot, app)
    writing = app.chat.turn.conversation_id
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=10_000):
        app.chat.open_conversation(first.conversation_id)
    assert page.state()["messages"] == [("user", "Say hello."), ("assistant", first.content)]
    assert page.reply is None and app.chat.busy
    assert "still being written in another chat" in page.notice.text()
    assert not any(w.action_button.isEnabled() for w in page.messages)  # one reply at a time
    assert not app.chat.delete(writing)  # not while its reply is written
    count = len(pieces)
    qtbot.waitUntil(lambda: len(pieces) >= count + 3, timeout=60_000)  # it goes on meanwhile
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=10_000):
        app.chat.open_conversation(writing)
    assert page.reply is not None and page.reply.text == "".join(pieces)  # all of it, live
    assert not page.notice.isVisible()
    with qtbot.waitSignal(app.chat.replyFinished, timeout=120_000) as finished:
        pass
    app.chat.replyText.disconnect(pieces.append)
    assert finished.args[0].content == "".join(pieces)
    assert page.state()["messages"][-1] == ("assistant", finished.args[0].content)
    assert all(w.action_button.isEnabled() for w in page.messages)
    assert app.store.conversation(writing).id == writing
    assert app.chat.delete(writing)  # done: now it can go
    qtbot.waitUntil(lambda: page.state()["messages"] == [], timeout=10_000)


def test_shift_enter_is_a_new_line(qtbot, app) -> None:
    composer = app.window.chat_page.composer
    qtbot.keyClicks(composer, "line one")
    qtbot.keyClick(composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(composer, "line two")
    assert composer.toPlainText() == "line one\nline two"
    assert not app.chat.busy


def test_escape_stops_a_reply(qtbot, app) -> None:
    app.chat.sampling = {"max_tokens": 2000, "temperature": 0.7}
    page = app.window.chat_page
    page.composer.setPlainText("Write a very long essay about the history of bread.")
    with qtbot.waitSignal(app.chat.replyText, timeout=60_000):
        page.send()
    with qtbot.waitSignal(app.chat.replyFinished, timeout=30_000) as finished:
        qtbot.keyClick(app.window, Qt.Key.Key_Escape)
    message = finished.args[0]
    assert message.state == "stopped"
    assert app.store.message(message.id).state == "stopped"
    assert 0 < (message.content.count(" ") + 1) < 1500


def test_regenerate_and_edit_replace_the_turns_after(qtbot, app) -> None:
    first, _ = send(qtbot, app, "Name a fruit.")
    page = app.window.chat_page
    reply_widget = page.messages[-1]
    assert reply_widget.answers_id is not None
    app.chat.sampling = {"max_tokens": 24, "temperature": 1.0, "seed": 99}
    with qtbot.waitSignal(app.chat.replyFinished, timeout=60_000) as again:
        reply_widget.action_button.click()
    assert again.args[0].id != first.id
    saved = app.store.messages(first.conversation_id)
    assert len(saved) == 2 and saved[1].id == again.args[0].id

    user_widget = page.messages[0]
    user_widget.action_button.click()  # Edit
    assert user_widget.editor is not None
    user_widget.editor.setPlainText("Name a vegetable.")
    with qtbot.waitSignal(app.chat.replyFinished, timeout=60_000):
        user_widget._submit_edit()
    saved = app.store.messages(first.conversation_id)
    assert [m.role for m in saved] == ["user", "assistant"]
    assert saved[0].content == "Name a vegetable."
    assert page.state()["messages"][0] == ("user", "Name a vegetable.")


def test_conversations_survive_a_restart_of_the_app(qtbot, home) -> None:
    first = open_app(qtbot, home)
    message, _ = send(qtbot, first, "Remember the word banana.")
    first.close()
    second = open_app(qtbot, home)
    try:
        qtbot.waitUntil(lambda: second.window.sidebar.model.rowCount() == 2)
        index = second.window.sidebar.model.index(1)
        with qtbot.waitSignal(second.chat.conversationOpened, timeout=10_000):
            second.window.sidebar.view.clicked.emit(index)
        assert second.window.chat_page.state()["messages"] == [
            ("user", "Remember the word banana."), ("assistant", message.content)]
    finally:
        second.close()


def test_engine_killed_mid_reply_shows_a_banner_and_comes_back(qtbot, app) -> None:
    app.chat.sampling = {"max_tokens": 2000, "temperature": 0.7}
    page = app.window.chat_page
    page.composer.setPlainText("Write a very long essay about the history of bread.")
    with qtbot.waitSignal(app.chat.replyText, timeout=60_000):
        page.send()
    qtbot.keyClicks(page.composer, "half-typed thought")
    pid = app.engine.pid
    with qtbot.waitSignal(app.chat.replyFailed, timeout=30_000) as failed:
        os.kill(pid, signal.SIGKILL)
    assert failed.args[0] == "The engine stopped while answering."  # plain words
    qtbot.waitUntil(lambda: app.window.banner.isVisible(), timeout=10_000)
    assert "SIGKILL" in app.window.banner.text.text() or "restarted" in \
        app.window.banner.text.text()
    qtbot.waitUntil(lambda: app.engine.state == "ready" and app.engine.pid != pid,
                    timeout=60_000)
    # Once it is back, the banner still says why it stopped, and that nothing was lost.
    banner = app.window.banner.text.text()
    assert "was killed (SIGKILL)" in banner and "It was restarted with" in banner, banner
    assert "text you were typing are safe" in banner
    assert page.composer.toPlainText() == "half-typed thought"
    saved = app.store.messages(app.chat.conversation.id)
    assert saved[0].content.startswith("Write a very long essay")
    assert saved[1].state == "error" and saved[1].content  # what arrived is kept
    page.composer.clear()
    app.chat.sampling = {"max_tokens": 8, "temperature": 0.0}
    message, _ = send(qtbot, app, "Hello again")
    assert message.state == "complete"


def switch_server_on(qtbot, app):  # type: ignore[no-untyped-def]
    """The server page with the API switched on at a free port; returns the page and port."""
    server = app.window.pages["Server"]
    port = free_port()
    server.port.setValue(port)
    server.switch.setChecked(True)
    qtbot.waitUntil(lambda: "Serving at" in server.status.text(), timeout=20_000)
    return server, port


def test_server_switch_opens_and_closes_the_api(qtbot, app) -> None:
    server, port = switch_server_on(qtbot, app)
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                       max_retries=0) as client:
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=4,
            messages=[{"role": "user", "content": "Hi"}])
    assert reply.usage.completion_tokens > 0
    qtbot.waitUntil(lambda: server.log_model.rowCount() >= 1, timeout=10_000)
    QAbstractItemModelTester(server.log_model,
                             QAbstractItemModelTester.FailureReportingMode.Fatal)
    server.switch.setChecked(False)
    qtbot.waitUntil(lambda: server.status.text() == "The API is off.", timeout=20_000)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models")


def test_the_window_replies_while_a_server_client_streams(qtbot, app) -> None:
    # The chat in the window is one more client: it does not wait behind a program's reply.
    server, port = switch_server_on(qtbot, app)
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                       max_retries=0) as client:
        stream = long_story(client)
        try:
            pieces = iter(stream)
            message, _ = send(qtbot, app, "What is the capital of France?")
            assert message.state == "complete" and message.content
            assert next(pieces).choices  # the program's reply still goes on
            qtbot.waitUntil(lambda: server.slots.text().startswith("Writing 1 of up to"),
                            timeout=10_000)
        finally:
            stream.close()
    server.switch.setChecked(False)
    qtbot.waitUntil(lambda: server.status.text() == "The API is off.", timeout=20_000)


def test_reply_cut_off_by_a_crash_is_kept_and_marked(qtbot, home) -> None:
    home.mkdir(parents=True, exist_ok=True)
    store = ChatStore(home / "chats" / "conversations.sqlite3").open()
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Tell me a story")
    reply = store.begin_reply(conversation.id)
    store.update_reply(reply.id, "Once upon a time")
    store._conn.close()  # the app was killed: nothing closes the store properly
    store._conn = None
    desktop = open_app(qtbot, home)
    try:
        assert desktop.window.banner.isVisible()
        assert "cut off" in desktop.window.banner.text.text()
        with qtbot.waitSignal(desktop.chat.conversationOpened, timeout=10_000):
            desktop.chat.open_conversation(conversation.id)
        widget = desktop.window.chat_page.messages[-1]
        assert widget.text == "Once upon a time" and widget.note.text() == "stopped"
    finally:
        desktop.close()


def test_a_long_conversation_leaves_out_the_oldest_turns_and_says_so(qtbot, app) -> None:
    with qtbot.waitSignal(app.engine.statusChanged, timeout=60_000,
                          check_params_cb=lambda s: (s.get("model") or {}).get(
                              "settings", {}).get("n_ctx") == 256):
        app.engine.load_model("smollm2-135m-instruct", {"n_ctx": 256},
                              on_done=lambda _: app.engine.refresh_status())
    app.chat.sampling = {"max_tokens": 8, "temperature": 0.0}
    trimmed: list[int] = []
    app.chat.contextTrimmed.connect(trimmed.append)
    for n in range(4):
        message, _ = send(qtbot, app, f"Note {n}: " + "the river flows to the sea " * 12)
        assert message.state == "complete"
    assert trimmed and trimmed[-1] > 0
    notice = app.window.chat_page.notice
    assert notice.isVisible() and "left out" in notice.text() and "system prompt" in notice.text()
    assert len(app.store.messages(message.conversation_id)) == 8  # nothing is deleted


def test_export_as_markdown_and_json(qtbot, app, tmp_path) -> None:
    import json

    message, _ = send(qtbot, app, "Say hello.")
    page = app.window.chat_page
    page.export_to(str(tmp_path / "chat.md"), "md")
    page.export_to(str(tmp_path / "chat.json"), "json")
    qtbot.waitUntil(lambda: (tmp_path / "chat.json").exists()
                    and (tmp_path / "chat.json").stat().st_size > 0, timeout=10_000)
    markdown = (tmp_path / "chat.md").read_text()
    assert "Say hello." in markdown and message.content.strip()[:20] in markdown
    exported = json.loads((tmp_path / "chat.json").read_text())
    assert exported["messages"][1]["model"] == "smollm2-135m-instruct"
    assert exported["messages"][1]["seconds_to_first_token"] > 0
    assert exported["messages"][1]["completion_tokens"] == message.completion_tokens


def test_chat_can_use_a_remote_openai_compatible_server(qtbot, app, starter, tmp_path) -> None:
    # The server elsewhere serves a model under a name of its own (as vLLM does): the picker
    # lists what it serves, the reply is asked of the model chosen there, and this computer's
    # engine does nothing (it loads nothing either); switched off, the chat is back on the
    # installed models.
    far_model = tmp_path / "far-bread.gguf"  # not a symbolic link: that is the starter model
    try:
        os.link(starter, far_model)
    except OSError:  # another file system
        shutil.copyfile(starter, far_model)
    far = start_serve("--model", str(far_model))
    try:
        before = app.engine.supervisor.client.status()["last_generation"]
        server = app.window.pages["Server"]
        picker = app.window.chat_page.model_picker
        server.remote_url.setText(far.base_url)
        server.use_remote.setChecked(True)
        qtbot.waitUntil(lambda: "serves 2 models" in server.remote_status.text(),
                        timeout=10_000)
        # It serves far-bread, loaded, and lists the models installed there too.
        served = [picker.itemData(i) for i in range(picker.count())]
        assert sorted(served) == ["far-bread", "smollm2-135m-instruct"]
        assert picker.itemText(served.index("far-bread")) == "far-bread (remote)"
        # The context it says its loaded model has is what documents' passages are fitted to.
        listed = {m["id"]: m for m in httpx.get(f"{far.base_url}/models").json()["data"]}
        assert app.engine.context_for("far-bread") == listed["far-bread"]["context_length"] > 0
        assert app.engine.context_for("smollm2-135m-instruct") is None  # not loaded there
        picker.setCurrentIndex(served.index("far-bread"))
        picker.activated.emit(served.index("far-bread"))
        assert app.chat.model == "far-bread"
        app.chat.sampling = {"max_tokens": 24, "temperature": 0.0}  # it took far-bread's defaults
        message, _ = send(qtbot, app, "Hello from far away")
        assert message.state == "complete" and message.content
        assert message.model_id == "far-bread"
        assert app.window.chat_page.messages[-1].who.toolTip() == "Assistant · far-bread"
        assert app.engine.supervisor.client.status()["last_generation"] == before
        server.use_remote.setChecked(False)
        assert app.engine.remote is None and app.chat.model == "smollm2-135m-instruct"
        assert picker.currentData() == "smollm2-135m-instruct"
        assert not server.remote_status.isVisible()
    finally:
        stop_serve(far)
    # A server that is not there: said in plain words, and chats say so too.
    server.remote_url.setText(f"http://127.0.0.1:{free_port()}/v1")
    server.use_remote.setChecked(True)
    qtbot.waitUntil(lambda: "Could not list" in server.remote_status.text(), timeout=10_000)
    status = server.remote_status.text()
    assert "does not answer (Connection refused)" in status and "Errno" not in status
    with qtbot.waitSignal(app.chat.replyFailed, timeout=30_000) as failed:
        app.window.chat_page.composer.setPlainText("Anyone there?")
        app.window.chat_page.send()
    assert failed.args[0].startswith("The server at http://127.0.0.1:"), failed.args[0]
    server.use_remote.setChecked(False)
    # Switched on with no address: nothing changes, and the page says what is missing.
    server.remote_url.clear()
    server.use_remote.setChecked(True)
    assert not server.use_remote.isChecked() and app.engine.remote is None
    assert "base URL first" in server.remote_status.text()


def test_the_server_elsewhere_is_remembered_with_its_switch_off(qtbot, home) -> None:
    first = open_app(qtbot, home)
    try:
        server = first.window.pages["Server"]
        server.remote_url.setText("bigmachine:8000/v1")  # no scheme: said, and not kept
        server.use_remote.setChecked(True)
        assert not server.use_remote.isChecked() and first.engine.remote is None
        assert "https://" in server.remote_status.text()
        url = f"http://127.0.0.1:{free_port()}/v1"
        server.remote_url.setText(url)
        server.remote_key.setText("far-key")
        server.use_remote.setChecked(True)
        assert first.engine.remote is not None
        qtbot.waitUntil(lambda: (load_settings().remote_url, load_settings().remote_api_key)
                        == (url, "far-key"), timeout=5_000)
    finally:
        first.close()
    second = open_app(qtbot, home)
    try:
        server = second.window.pages["Server"]
        assert (server.remote_url.text(), server.remote_key.text()) == (url, "far-key")
        assert not server.use_remote.isChecked() and second.engine.remote is None
    finally:
        second.close()


def test_a_model_that_fails_to_load_leaves_the_chat_on_the_one_it_had(qtbot, app, home,
                                                                        starter) -> None:
    import gguf

    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "half-downloaded.gguf").write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    # A header NoMoat accepts, with a tensor llama.cpp refuses: its two sides swapped.
    bent = models / "bent.gguf"
    shutil.copyfile(starter, bent)
    reader = gguf.GGUFReader(bent, "r+")
    embeddings = next(t for t in reader.tensors if t.name == "token_embd.weight")
    embeddings.field.parts[3][:] = embeddings.field.parts[3][::-1].copy()
    del reader
    picker = app.window.chat_page.model_picker
    app.models_page.refresh_library()
    qtbot.waitUntil(lambda: picker.findData("bent") >= 0, timeout=10_000)
    assert picker.findData("half-downloaded") < 0  # cannot be loaded: not offered
    picker.setCurrentIndex(picker.findData("bent"))
    picker.activated.emit(picker.findData("bent"))
    qtbot.waitUntil(lambda: "Could not load bent" in app.window.banner.text.text(),
                    timeout=60_000)
    assert "wrong shape" in app.window.banner.text.text()
    assert "The chat goes on with smollm2-135m-instruct." in app.window.banner.text.text()
    assert app.chat.model == "smollm2-135m-instruct"
    assert picker.currentData() == "smollm2-135m-instruct"
    # The chat took the model's own sampling settings back with it (no limit on the length):
    # short greedy replies again, as the test set them.
    app.chat.sampling = {"max_tokens": 24, "temperature": 0.0}
    message, _ = send(qtbot, app, "Are you still there?")
    assert message.state == "complete" and message.model_id == "smollm2-135m-instruct"


def test_model_settings_apply_to_replies_and_survive_a_restart(qtbot, home) -> None:
    first = open_app(qtbot, home)
    try:
        panel = first.window.chat_page.settings_panel
        first.window.chat_page.settings_button.click()
        assert panel.isVisible() and panel.model_id == "smollm2-135m-instruct"
        panel.fields["temperature"].setValue(0.3)
        panel.fields["max_tokens"].setValue(16)
        assert first.chat.sampling["temperature"] == 0.3
        assert first.chat.sampling["max_tokens"] == 16
        message, _ = send(qtbot, first, "Tell me about rivers.")
        assert message.completion_tokens <= 16 and message.settings["temperature"] == 0.3
        panel.fields["n_ctx"].setValue(1024)
        with qtbot.waitSignal(first.engine.statusChanged, timeout=60_000,
                              check_params_cb=lambda s: (s.get("model") or {}).get(
                                  "settings", {}).get("n_ctx") == 1024):
            panel.reload_button.click()
        first.workers.shutdown()  # let the settings file be written
    finally:
        first.close()
    second = open_app(qtbot, home)
    try:
        assert second.engine.supervisor.client.status()["model"]["settings"]["n_ctx"] == 1024
        assert second.window.chat_page.settings_panel.fields["temperature"].value() == 0.3
    finally:
        second.close()


def test_parallel_replies_reload_the_model_with_that_many_slots(qtbot, app) -> None:
    page = app.window.chat_page
    page.settings_button.click()
    panel = page.settings_panel
    assert panel.fields["parallel"].value() == 0  # as memory allows
    qtbot.waitUntil(lambda: "replies at once" in app.server_page.slots.text(), timeout=10_000)
    panel.fields["parallel"].setValue(2)
    with qtbot.waitSignal(app.engine.statusChanged, timeout=60_000,
                          check_params_cb=lambda s: (s.get("slots") or {}).get("total") == 2):
        panel.reload_button.click()
    assert app.settings.model("smollm2-135m-instruct").parallel == 2
    assert app.server_page.slots.text() == "Ready to write up to 2 replies at once."
    message, _ = send(qtbot, app, "Hello again.")
    assert message.state == "complete"


def test_server_options_are_remembered(qtbot, home) -> None:
    first = open_app(qtbot, home)
    try:
        server = first.window.pages["Server"]
        server.port.setValue(5123)
        server.api_key.setText("k3y")
        server.cors.setText("http://a.example, http://b.example")
        server._apply()
        first.workers.shutdown()
    finally:
        first.close()
    second = open_app(qtbot, home)
    try:
        server = second.window.pages["Server"]
        assert server.port.value() == 5123 and server.api_key.text() == "k3y"
        assert server.options()["cors_origins"] == ["http://a.example", "http://b.example"]
        assert not server.switch.isChecked()
    finally:
        second.close()
