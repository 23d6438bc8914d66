"""Render every page to PNG, light and dark, at two window sizes: `make screenshots`.

Runs offscreen in a fresh data folder with the starter model: the empty chat's welcome, a
conversation of real replies (a list, code, a long answer) with the pointer over the last, the
catalog, two small adapters in use and saved as a preset (and the chat again, with them named in
its header and the model settings' panel open), a comparison of the model with and without them,
the server page with the API switched on, the Tools page with an MCP server, a short training
run on the Train page (its loss plot and the held-out prompts answered without and with the new
adapter), and the other pages as they first look. Each page is saved as
``<page>-<theme>-<width>x<height>.png`` (e.g. ``chat-dark-1280x820.png``; ``chat-welcome-…`` and
``chat-panels-…`` for the two other views of the chat).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent.parent
SIZES = ((1280, 820), (1024, 700))
THEMES = ("light", "dark")
# Asked in turn, each reply streamed by the starter model (greedy, so the pictures only change
# when the model or the app does).
CONVERSATION = (
    ("Give me three tips for learning Python, as a list, then a short code example.", 200),
    ("Explain how a hash table works, step by step.", 360),
    ("Write a Python function that checks whether a word is a palindrome.", 200),
)


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or [str(ROOT / "docs" / "screenshots")])[0])
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="nomoat-shots-"))
    os.environ["NOMOAT_HOME"] = str(home)
    sys.path.insert(0, str(ROOT / "tests"))
    from PySide6.QtCore import QEvent, QPoint
    from PySide6.QtGui import QCursor
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from desktop.core.library import starter_model_path
    from desktop.core.paths import get_paths
    from desktop.ui.app import DesktopApp

    # An MCP server on the Tools page: the tests' small notes server.
    (home / "notes").mkdir()
    config = get_paths().ensure().settings / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"notes": {
        "command": "python3", "args": ["tests/mcp_servers/notes.py"], "cwd": str(ROOT),
        "env": {"NOTES_DIR": str(home / "notes")}}}}))

    app = QApplication(sys.argv[:1])
    desktop = DesktopApp(app, "light")
    window = desktop.window

    def pump(until: Callable[[], bool], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("the window did not get there in time")
            app.processEvents()
            time.sleep(0.01)

    def settle() -> None:
        for _ in range(30):
            app.processEvents()
            time.sleep(0.005)

    starter = starter_model_path()
    assert starter is not None, "the starter model is not installed"
    window.resize(*SIZES[0])
    desktop.start()
    pump(lambda: desktop.engine.state == "ready" and bool(desktop.engine.status.get("model")))
    chat_page = window.chat_page

    def shoot(pages: list[str], variant: str = "", panels: tuple[str, ...] = ()) -> None:
        """Each of *pages*, light and dark, at each size; the chat with the side *panels*
        open (the others closed, as they are at first), saved as chat<variant>-…"""
        for theme in THEMES:
            settings = desktop.settings_page.theme
            settings.setCurrentIndex(settings.findData(theme))
            for width, height in SIZES:
                if "Chat" in pages:
                    window.show_page("Chat")  # where the docks live
                    for name, dock in window.docks.items():
                        dock.setVisible(name in panels)
                for page in pages:
                    window.show_page(page)
                    settle()
                    window.resize(width, height)
                    settle()
                    # No page looks hovered: the pointer rests outside the window...
                    QCursor.setPos(window.mapToGlobal(QPoint(width + 200, height + 200)))
                    QApplication.sendEvent(window.nav.viewport(), QEvent(QEvent.Type.Leave))
                    if page == "Train":  # the run and its result, rather than the form
                        desktop.train_page.scroll_to_run()
                    if page == "Chat" and chat_page.messages:
                        # ...but for the chat's, which rests on the end of the conversation
                        # and shows the last reply's buttons.
                        bar = chat_page.scroll.verticalScrollBar()
                        bar.setValue(bar.maximum())
                        settle()
                        QTest.mouseMove(chat_page.messages[-1].body, QPoint(40, 8))
                    settle()
                    image = window.grab()
                    if (image.width(), image.height()) != (width, height):
                        raise RuntimeError(f"The {page} page needs a window of at least "
                                           f"{image.width()}x{image.height()}, not "
                                           f"{width}x{height}.")
                    name = page.lower() + (variant if page == "Chat" else "")
                    path = out / f"{name}-{theme}-{width}x{height}.png"
                    image.save(str(path))
                    print(path)

    shoot(["Chat"], "-welcome")  # before the conversation: the empty chat
    window.resize(*SIZES[0])
    finished: list[object] = []
    desktop.chat.replyFinished.connect(finished.append)
    for question, tokens in CONVERSATION:
        desktop.chat.sampling = {"max_tokens": tokens, "temperature": 0.0, "seed": 3}
        chat_page.composer.setPlainText(question)
        count = len(finished)
        chat_page.send()
        pump(lambda count=count: len(finished) > count)
    desktop.engine.refresh_status()
    pump(lambda: bool(desktop.engine.status.get("last_generation")))

    desktop.models_page.show_tab("Catalog")
    server = desktop.server_page
    server.switch.setChecked(True)
    pump(lambda: "Serving at" in server.status.text())
    pump(lambda: "notes" in desktop.tools_page.cards, timeout=30)

    # The chat header names the adapters in use, so the pages are shown before they are.
    shoot([page for page in window.pages if page not in ("Adapters", "Train", "Compare")])
    add_adapters(desktop, pump)
    compare(desktop, pump)
    shoot(["Adapters", "Compare"])
    train(desktop, pump)  # after the Adapters page: its adapter joins the library
    shoot(["Train"])
    window.show_page("Chat")
    shoot(["Chat"], "-panels", panels=("Model settings",))
    desktop.close()
    return 0


def add_adapters(desktop: Any, pump: Callable[..., None]) -> None:
    """Two small adapters made for the starter model (random weights, as in the tests), in
    use at different strengths and saved as a preset."""
    from test_adapters import make_lora

    folder = Path(tempfile.mkdtemp(prefix="nomoat-shots-lora-"))
    for seed, (name, weight) in enumerate((("pirate-voice", 0.8), ("sql-helper", 0.5)),
                                          start=1):
        applied: list[object] = []
        desktop.adapters.applied.connect(applied.append)
        desktop.adapters_panel.add_path(str(make_lora(folder / f"{name}.gguf", seed)))
        pump(lambda applied=applied, name=name: bool(applied)
             and name in desktop.adapters_panel.rows)
        desktop.adapters.applied.disconnect(applied.append)
        desktop.adapters_panel.rows[name].spin.setValue(weight)
    desktop.adapters.save_preset("both")
    pump(lambda: desktop.adapters.active_preset == "both")


def train(desktop: Any, pump: Callable[..., None]) -> None:
    """A short run on the Train page: the tests' 32 examples of a made-up fact, 12 steps, and
    the held-out prompts answered without and with the adapter (the page as it is without the
    train extra, which says how to add it, when that is not installed)."""
    page = desktop.train_page
    if desktop.train.missing:
        return
    desktop.window.show_page("Train")
    pump(lambda: page.form.model.count() > 0)
    desktop.train.load_file(str(ROOT / "tests" / "data" / "train" / "zorblax.jsonl"))
    pump(lambda: page.preview.isVisible())
    page.form.set_knobs(steps=12, threads=2, learning_rate=2e-3, checkpoint_every=4)
    pump(lambda: not page._check_timer.isActive() and page.ready is not None)
    page.start()
    pump(lambda: desktop.train.run is not None and desktop.train.run.final is not None,
         timeout=900)
    pump(lambda: bool(page.result.texts()) and page.result.again_button.isEnabled())


def compare(desktop: Any, pump: Callable[..., None]) -> None:
    """The model alone against the model with the preset, on one prompt."""
    page = desktop.compare_page
    desktop.window.show_page("Compare")
    pump(lambda: len(page.setups) >= 2)
    page.prompt.setPlainText("Describe the sea in two sentences.")
    desktop.chat.sampling = {"max_tokens": 60, "temperature": 0.0, "seed": 3}
    page.blind.setChecked(False)
    if page.compare():
        pump(lambda: not page.running)


if __name__ == "__main__":
    sys.exit(main())
