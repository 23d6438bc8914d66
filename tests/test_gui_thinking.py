"""A reasoning model's thinking in the window: live under "Thinking…", folded to "Thought for
N s" once the answer begins, opened with a click, saved with the reply and exported; and the
chat's switch that lets the model answer without thinking.

The starter model does not think by itself: it is loaded with a template in the shape of
Qwen3's (see test_reasoning_api), and a thinking budget makes every reply think for a known
number of tokens before it answers.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from test_gui import open_app, send
from test_reasoning_api import THINKING_TEMPLATE

from desktop.core.settings import ModelSettings, Settings, save_settings

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals")

MODEL = "smollm2-135m-instruct"
QUESTION = "What is two plus two?"
FOLDED = re.compile(r"^Thought for \d+ s$")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    settings = Settings()
    settings.models[MODEL] = ModelSettings(n_ctx=1024, chat_template=THINKING_TEMPLATE)
    save_settings(settings)
    return tmp_path / "home"


@pytest.fixture
def app(qtbot, home):  # type: ignore[no-untyped-def]
    desktop = open_app(qtbot, home)
    desktop.chat.sampling = {"max_tokens": 48, "temperature": 0.0, "thinking_budget": 12}
    yield desktop
    desktop.close()


def test_thinking_streams_then_folds_and_is_saved_apart_from_the_answer(qtbot, app) -> None:
    page = app.window.chat_page
    qtbot.waitUntil(page.thinking_button.isVisible, timeout=10_000)  # this model thinks
    assert page.thinking_button.isChecked()
    seen: list[tuple[str, str, bool]] = []  # (what came, the section's heading, text shown)

    def look(kind: str) -> None:
        section = page.reply.thinking if page.reply is not None else None
        if section is not None:
            seen.append((kind, section.header.text(), section.body.isVisible()))

    app.chat.replyThinking.connect(lambda _: look("thinking"))
    app.chat.replyText.connect(lambda _: look("answer"))
    message, pieces = send(qtbot, app, QUESTION)
    assert message.state == "complete", message.error
    assert message.thinking.strip() and message.content.strip()
    assert "<think>" not in message.content and "</think>" not in message.content
    assert "".join(pieces) == message.content  # only the answer streams as the reply's text
    assert message.thought_seconds is not None and message.thought_seconds >= 0
    kinds = [kind for kind, _, _ in seen]
    assert kinds[0] == "thinking" and "thinking" not in kinds[kinds.index("answer"):]
    assert all(title == "Thinking…" and shown for kind, title, shown in seen
               if kind == "thinking")
    assert all(FOLDED.match(title) and not shown for kind, title, shown in seen
               if kind == "answer"), seen

    widget = page.messages[-1]
    section = widget.thinking
    assert section.isVisible() and not section.body.isVisible()
    assert FOLDED.match(section.header.text())
    assert widget.text == message.content
    qtbot.mouseClick(section.header, Qt.MouseButton.LeftButton)
    assert section.body.isVisible() and section.body.text() == message.thinking.strip()
    qtbot.mouseClick(section.header, Qt.MouseButton.LeftButton)
    assert not section.body.isVisible()

    saved = app.store.messages(message.conversation_id)[-1]
    assert (saved.thinking, saved.content) == (message.thinking, message.content)
    markdown = app.store.export_markdown(message.conversation_id)
    assert "<details>" in markdown and message.thinking.strip() in markdown
    assert re.search(r"<summary>Thought for \d+ s</summary>", markdown)
    exported = json.loads(app.store.export_json(message.conversation_id))["messages"][-1]
    assert exported["thinking"] == message.thinking
    assert exported["content"] == message.content

    # Shown again from the store, the thinking is folded under its time.
    heading = section.header.text()
    app.chat.new_conversation()
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=10_000):
        app.chat.open_conversation(message.conversation_id)
    again = page.messages[-1].thinking
    qtbot.waitUntil(again.isVisible, timeout=5_000)
    assert not again.body.isVisible()
    assert again.header.text() == heading


def test_the_switch_turns_thinking_off_for_this_chat_and_is_remembered(qtbot, app) -> None:
    page = app.window.chat_page
    qtbot.waitUntil(page.thinking_button.isVisible, timeout=10_000)
    first, _ = send(qtbot, app, QUESTION)
    assert first.thinking.strip()
    page.thinking_button.click()  # off
    assert not page.thinking_button.isChecked()
    qtbot.waitUntil(lambda: app.store.conversation(first.conversation_id).settings
                    .get("thinking") is False, timeout=10_000)
    second, pieces = send(qtbot, app, "And three plus three?")
    assert second.state == "complete", second.error
    assert second.thinking == "" and second.content.strip()
    assert not page.messages[-1].thinking.isVisible()

    app.chat.new_conversation()  # a new chat thinks again
    assert page.thinking_button.isChecked()
    with qtbot.waitSignal(app.chat.conversationOpened, timeout=10_000):
        app.chat.open_conversation(first.conversation_id)
    assert not page.thinking_button.isChecked()  # the chat kept its switch


def test_the_switch_is_not_shown_for_a_model_that_does_not_think(qtbot, tmp_path,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "plain"))
    desktop = open_app(qtbot, tmp_path / "plain")
    try:
        assert desktop.engine.status["model"]["thinks"] is False
        assert not desktop.window.chat_page.thinking_button.isVisible()
    finally:
        desktop.close()
