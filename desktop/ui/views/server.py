"""The server page: open the local OpenAI-compatible API to other programs, or use a remote one."""

from __future__ import annotations

import math
import secrets
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QPlainTextEdit, QPushButton, QSizePolicy,
                               QSpinBox, QTableView, QVBoxLayout, QWidget)

from desktop.ui.engine import EngineController
from desktop.ui.models.requests import RequestLogModel
from desktop.ui.views.fonts import code_font
from desktop.ui.views.page_column import page_column
from desktop.ui.views.settings import check_url


class CodeBox(QPlainTextEdit):
    """Code to copy, in the fixed-width face, its lines unwrapped and all of them shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(code_font())  # the family only: the size is the app's setting
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().blockCountChanged.connect(lambda _count: self.updateGeometry())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        lines = self.document().blockCount()
        height = (lines * self.fontMetrics().lineSpacing() + 2 * self.frameWidth()
                  + 2 * math.ceil(self.document().documentMargin())
                  + self.horizontalScrollBar().sizeHint().height())
        return QSize(super().sizeHint().width(), height)


def right_aligned(button: QPushButton) -> QHBoxLayout:
    """A row with *button* at its right end, as wide as its text."""
    row = QHBoxLayout()
    row.addStretch(1)
    row.addWidget(button)
    return row


class ServerPage(QWidget):
    """The switch, its options, how to call the API, and what called it."""

    remoteChanged = Signal(object, object)  # base URL or None, API key or None
    optionsChanged = Signal(dict)

    def __init__(self, engine: EngineController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        layout = page_column(self).layout  # it scrolls in a window too short for all of it

        self.switch = QCheckBox("Serve the OpenAI-compatible API to other programs")
        self.switch.setAccessibleName("Server switch")
        self.switch.toggled.connect(self._switched)
        layout.addWidget(self.switch)
        self.status = QLabel("The API is off.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.slots = QLabel("")
        self.slots.setWordWrap(True)
        self.slots.setAccessibleName("Replies being written")
        self.slots.hide()  # until the engine says how many it writes at once
        layout.addWidget(self.slots)
        engine.statusChanged.connect(self.show_slots)

        options = QGroupBox("Options")
        form = QFormLayout(options)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(4891)
        self.port.setAccessibleName("Port")
        self.port.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        form.addRow("Port", self.port)
        key_row = QHBoxLayout()
        self.api_key = QLineEdit()
        self.api_key.setPlaceholderText("none: any program on this computer may call it")
        self.api_key.setAccessibleName("API key")
        generate = QPushButton("Generate")
        generate.clicked.connect(lambda: self.api_key.setText(secrets.token_urlsafe(24)))
        copy_key = QPushButton("Copy")
        copy_key.setAccessibleName("Copy API key")
        copy_key.clicked.connect(lambda: QGuiApplication.clipboard().setText(
            self.api_key.text()))
        key_row.addWidget(self.api_key, 1)
        key_row.addWidget(generate)
        key_row.addWidget(copy_key)
        form.addRow("API key", key_row)
        self.lan = QCheckBox("Let other devices on my network connect")
        self.lan.setAccessibleName("Allow network connections")
        self.lan_warning = QLabel("Anyone on your network can then use this model. Set an API "
                                  "key.")
        self.lan_warning.setWordWrap(True)
        self.lan_warning.setVisible(False)
        self.lan.toggled.connect(self.lan_warning.setVisible)
        form.addRow(self.lan)
        form.addRow(self.lan_warning)
        self.cors = QLineEdit()
        self.cors.setPlaceholderText("e.g. http://localhost:3000, https://app.example")
        self.cors.setAccessibleName("Allowed web origins")
        form.addRow("Web origins (CORS)", self.cors)
        apply = QPushButton("Apply")
        apply.setAccessibleName("Apply server options")
        apply.clicked.connect(self._apply)
        form.addRow(right_aligned(apply))
        layout.addWidget(options)

        examples = QGroupBox("Use it from other programs")
        ex_layout = QVBoxLayout(examples)
        self.examples = CodeBox()
        self.examples.setAccessibleName("Examples")
        ex_layout.addWidget(self.examples)
        copy_ex = QPushButton("Copy examples")
        copy_ex.clicked.connect(lambda: QGuiApplication.clipboard().setText(
            self.examples.toPlainText()))
        ex_layout.addLayout(right_aligned(copy_ex))
        layout.addWidget(examples)

        log_box = QGroupBox("Recent requests")
        log_layout = QVBoxLayout(log_box)
        self.log_model = RequestLogModel(self)
        self.log = QTableView()
        self.log.setAccessibleName("Recent requests")
        self.log.setModel(self.log_model)
        self.log.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.log.verticalHeader().hide()
        log_layout.addWidget(self.log)
        layout.addWidget(log_box, 1)

        remote = QGroupBox("Chat with a server elsewhere (a llama.cpp server, vLLM, …)")
        remote_form = QFormLayout(remote)
        self.remote_url = QLineEdit()
        self.remote_url.setPlaceholderText("http://bigmachine:8000/v1")
        self.remote_url.setAccessibleName("Remote server URL")
        self.remote_key = QLineEdit()
        self.remote_key.setAccessibleName("Remote server API key")
        self.remote_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.use_remote = QCheckBox("Send chats to this server instead of this computer")
        self.use_remote.setAccessibleName("Use remote server")
        self.use_remote.toggled.connect(self._remote)
        remote_form.addRow("Base URL", self.remote_url)
        remote_form.addRow("API key", self.remote_key)
        remote_form.addRow(self.use_remote)
        self.remote_status = QLabel("")
        self.remote_status.setWordWrap(True)
        self.remote_status.setAccessibleName("Remote server status")
        self.remote_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.remote_status.hide()
        remote_form.addRow(self.remote_status)
        layout.addWidget(remote)

        self._poll = QTimer(self, interval=2000)
        self._poll.timeout.connect(self._refresh_log)
        self._update_examples(None)

    def set_options(self, port: int, api_key: str | None, lan: bool,
                    cors_origins: list[str]) -> None:
        """Fill the fields from saved settings (the switch itself always starts off)."""
        self.port.setValue(port)
        self.api_key.setText(api_key or "")
        self.lan.setChecked(lan)
        self.cors.setText(", ".join(cors_origins))
        self._update_examples(None)

    def set_remote_options(self, url: str | None, api_key: str | None) -> None:
        """The server elsewhere used last time (its switch starts off, like the one above)."""
        self.remote_url.setText(url or "")
        self.remote_key.setText(api_key or "")

    def options(self) -> dict[str, Any]:
        origins = [o.strip() for o in self.cors.text().split(",") if o.strip()]
        return {"host": "0.0.0.0" if self.lan.isChecked() else "127.0.0.1",
                "port": self.port.value(), "api_key": self.api_key.text().strip() or None,
                "cors_origins": origins}

    def _switched(self, on: bool) -> None:
        if on:
            self._apply()
        else:
            self.status.setText("Closing…")
            self.engine.set_public(False, {}, on_done=lambda _: self._closed(),
                                   on_error=self._failed)

    def _apply(self) -> None:
        self.optionsChanged.emit(self.options())
        if not self.switch.isChecked():
            return
        self.status.setText("Opening…")
        self.engine.set_public(True, self.options(), on_done=self._opened,
                               on_error=self._failed)

    def _opened(self, public: dict[str, Any]) -> None:
        where = ("this computer and your network" if public.get("host") == "0.0.0.0"
                 else "this computer")
        self.status.setText(f"Serving at {public['base_url']} for programs on {where}"
                            + (" (API key required)." if public.get("api_key_required")
                               else "."))
        self._update_examples(public)
        self._poll.start()
        self._refresh_log()

    def _closed(self) -> None:
        self.status.setText("The API is off.")
        self._poll.stop()
        self._update_examples(None)

    def _failed(self, exc: Exception) -> None:
        self.status.setText(f"Could not change the server: {exc}")
        self.switch.blockSignals(True)
        self.switch.setChecked(False)
        self.switch.blockSignals(False)
        self._poll.stop()

    def _update_examples(self, public: dict[str, Any] | None) -> None:
        base = public["base_url"] if public else f"http://127.0.0.1:{self.port.value()}/v1"
        base = base.replace("0.0.0.0", "127.0.0.1")
        key = self.api_key.text().strip() or "none"
        model = (self.engine.status.get("model") or {}).get("id", "smollm2-135m-instruct")
        self.examples.setPlainText(
            f"curl {base}/chat/completions \\\n"
            f"  -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
            f"  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", "
            f"\"content\": \"Hello\"}}]}}'\n\n"
            "from openai import OpenAI\n"
            f"client = OpenAI(base_url=\"{base}\", api_key=\"{key}\")\n"
            f"reply = client.chat.completions.create(model=\"{model}\", "
            "messages=[{\"role\": \"user\", \"content\": \"Hello\"}])\n"
            "print(reply.choices[0].message.content)\n")

    def show_slots(self, status: dict[str, Any]) -> None:
        """How many replies the engine writes now, of how many at once, and how many wait."""
        slots = status.get("slots") or {}
        total = slots.get("total") or 0
        self.slots.setVisible(bool(total))
        if not total:
            self.slots.setText("")
            return
        busy, queued = slots.get("busy", 0), slots.get("queued", 0)
        text = (f"Writing {busy} of up to {total} replies at once" if busy
                else f"Ready to write up to {total} replies at once")
        if queued:
            text += f"; {queued} waiting for a free slot"
        self.slots.setText(text + ".")

    def _refresh_log(self) -> None:
        if self.engine.state != "ready":
            return
        client = self.engine.supervisor.client
        self.engine.workers.submit(client.request_log, on_done=self.log_model.set_requests)

    def show_remote_status(self, text: str) -> None:
        """Whether the server elsewhere answers, and with which models."""
        self.remote_status.setText(text)
        self.remote_status.setVisible(bool(text))

    def _remote(self, on: bool) -> None:
        url = self.remote_url.text().strip()
        problem = ("Enter the server's base URL first, for example http://bigmachine:8000/v1."
                   if not url else check_url(url))
        if on and problem:
            self.use_remote.blockSignals(True)
            self.use_remote.setChecked(False)
            self.use_remote.blockSignals(False)
            self.show_remote_status(problem)
            return
        if on:
            self.remoteChanged.emit(url, self.remote_key.text().strip() or None)
        else:
            self.remoteChanged.emit(None, None)
