"""Render the main pages to PNG with the starter model: `make screenshots`.

Runs offscreen in a fresh data folder: a real reply in the chat, the catalog, a download in
progress from a local hub-shaped server (the tests' own), the adapters panel, and the server
page with the API switched on.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent.parent


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or [str(ROOT / "docs" / "screenshots")])[0])
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NOMOAT_HOME"] = tempfile.mkdtemp(prefix="nomoat-shots-")
    sys.path.insert(0, str(ROOT / "tests"))
    from hubserver import HubServer  # the tests' local hub, so nothing leaves this machine
    from PySide6.QtWidgets import QApplication

    from desktop.core.downloads import DownloadRequest
    from desktop.core.library import starter_model_path
    from desktop.ui.app import DesktopApp

    app = QApplication(sys.argv[:1])
    desktop = DesktopApp(app, "light")
    desktop.window.resize(1280, 820)

    def pump(until: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("the window did not get there in time")
            app.processEvents()
            time.sleep(0.01)

    def shot(page: str, name: str) -> None:
        desktop.window.show_page(page)
        pump(lambda: True)
        for _ in range(20):
            app.processEvents()
        desktop.window.grab().save(str(out / f"{name}.png"))
        print(out / f"{name}.png")

    starter = starter_model_path()
    assert starter is not None, "the starter model is not installed"
    with HubServer() as hub:
        hub.add_repo("NoMoatDemo/SmolLM2-135M-Instruct-GGUF", {starter.name: starter})
        hub.switches.rate = 4 * 1024 * 1024
        desktop.start()
        pump(lambda: desktop.engine.state == "ready" and bool(desktop.engine.status.get("model")))
        desktop.chat.sampling = {"max_tokens": 160, "temperature": 0.2, "seed": 3}
        page = desktop.window.chat_page
        page.composer.setPlainText("Give me three tips for learning Python, as a list, then a "
                                   "short code example.")
        finished: list[object] = []
        desktop.chat.replyFinished.connect(finished.append)
        page.send()
        pump(lambda: bool(finished))
        desktop.engine.refresh_status()
        pump(lambda: bool(desktop.engine.status.get("last_generation")))
        shot("Chat", "chat")

        models = desktop.models_page
        pump(lambda: models.catalog_tab.isVisible() or True)
        models.show_tab("Catalog")
        time.sleep(1.0)
        shot("Models", "catalog")

        models.set_hub(hub.endpoint, None)
        desktop.downloads.set_hub(hub.endpoint, None)
        desktop.downloads.start(DownloadRequest.of("NoMoatDemo/SmolLM2-135M-Instruct-GGUF",
                                                   starter.name))
        models.show_tab("Downloads")
        pump(lambda: any(e.done_bytes > 10_000_000 for e in desktop.downloads.events()))
        shot("Models", "downloads")

        # Two small adapters made for the starter model (random weights, as in the tests), in
        # use at different strengths and saved as a preset.
        from test_adapters import make_lora
        folder = Path(tempfile.mkdtemp(prefix="nomoat-shots-lora-"))
        for seed, (name, weight) in enumerate((("test-adapter-a", 0.8),
                                               ("test-adapter-b", 0.5)), start=1):
            applied: list[object] = []
            desktop.adapters.applied.connect(applied.append)
            desktop.adapters_panel.add_path(str(make_lora(folder / f"{name}.gguf", seed)))
            pump(lambda applied=applied, name=name: bool(applied)
                 and name in desktop.adapters_panel.rows)
            desktop.adapters.applied.disconnect(applied.append)
            desktop.adapters_panel.rows[name].spin.setValue(weight)
        desktop.adapters.save_preset("both")
        pump(lambda: desktop.adapters.active_preset == "both")
        shot("Adapters", "adapters")

        server = desktop.server_page
        server.switch.setChecked(True)
        pump(lambda: "Serving at" in server.status.text())
        shot("Server", "server")
        shot("Settings", "settings")
    desktop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
