"""The dialog that adds an MCP server to mcp.json or edits one: a program to start, or the
address of a server that runs already.

What the user typed is checked when they choose Save; a problem is shown in the dialog, which
stays open with everything as it was typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                               QVBoxLayout, QWidget)

from desktop.tools.config import ServerConfig, check_name, check_url, parse_server

PROGRAM, ADDRESS = "stdio", "http"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_pairs(text: str, separator: str, what: str, example: str) -> dict[str, str]:
    """``NAME<separator>value`` on each line; ValueError names the line that is not."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, found, value = line.partition(separator)
        if not found or not key.strip():
            raise ValueError(f"Line {number} of the {what} is not like {example}.")
        pairs[key.strip()] = value.strip()
    return pairs


class ServerDialog(QDialog):
    """Name, kind and details of one MCP server; :attr:`server` holds it once accepted."""

    def __init__(self, taken: set[str], server: ServerConfig | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.taken = taken  # names of the other servers
        self.original = server
        self.server: ServerConfig | None = None
        self.setWindowTitle("Edit MCP server" if server else "Add MCP server")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setAccessibleName("Server name")
        self.name.setPlaceholderText("e.g. files")
        form.addRow("Name", self.name)
        self.kind = QComboBox()
        self.kind.setAccessibleName("Kind of server")
        self.kind.addItem("A program on this computer (stdio)", PROGRAM)
        self.kind.addItem("An address of a running server (HTTP)", ADDRESS)
        form.addRow("Kind", self.kind)
        layout.addLayout(form)

        # A program's rows, then an address's; only the kind chosen shows its rows.
        self.form = form
        self.command = QLineEdit()
        self.command.setAccessibleName("Command")
        self.command.setPlaceholderText("e.g. npx, uvx, or the path of a program")
        form.addRow("Command", self.command)
        self.args = QPlainTextEdit()
        self.args.setAccessibleName("Arguments")
        self.args.setPlaceholderText("one per line")
        self.args.setTabChangesFocus(True)
        self.args.setMaximumHeight(90)
        form.addRow("Arguments", self.args)
        self.env = QPlainTextEdit()
        self.env.setAccessibleName("Environment")
        self.env.setPlaceholderText("NAME=value, one per line")
        self.env.setTabChangesFocus(True)
        self.env.setMaximumHeight(70)
        form.addRow("Environment", self.env)
        folder_row = QHBoxLayout()
        self.cwd = QLineEdit()
        self.cwd.setAccessibleName("Working folder")
        self.cwd.setPlaceholderText("optional")
        folder_row.addWidget(self.cwd, 1)
        choose = QPushButton("Choose…")
        choose.setAccessibleName("Choose the working folder")
        choose.clicked.connect(self._choose_folder)
        folder_row.addWidget(choose)
        form.addRow("Working folder", folder_row)
        self._program_rows = (self.command, self.args, self.env, folder_row)
        self.url = QLineEdit()
        self.url.setAccessibleName("Address")
        self.url.setPlaceholderText("http://127.0.0.1:8000/mcp")
        form.addRow("Address", self.url)
        self.headers = QPlainTextEdit()
        self.headers.setAccessibleName("Headers")
        self.headers.setPlaceholderText("Name: value, one per line (e.g. Authorization: Bearer …)")
        self.headers.setTabChangesFocus(True)
        self.headers.setMaximumHeight(70)
        form.addRow("Headers", self.headers)
        self._address_rows = (self.url, self.headers)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self._kind_changed()

        self.error = QLabel("")
        self.error.setObjectName("fieldError")
        self.error.setAccessibleName("Problem with the server")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        if server is not None:
            self._fill(server)

    def _kind_changed(self, _index: int = 0) -> None:
        program = self.kind.currentData() == PROGRAM
        for row in self._program_rows:
            self.form.setRowVisible(row, program)
        for row in self._address_rows:
            self.form.setRowVisible(row, not program)

    def _fill(self, server: ServerConfig) -> None:
        self.name.setText(server.name)
        if server.transport == PROGRAM:
            self.command.setText(server.command or "")
            self.args.setPlainText("\n".join(server.args))
            self.env.setPlainText("\n".join(f"{k}={v}" for k, v in server.env.items()))
            self.cwd.setText(server.cwd or "")
        else:
            self.kind.setCurrentIndex(self.kind.findData(ADDRESS))
            self.url.setText(server.url or "")
            self.headers.setPlainText("\n".join(f"{k}: {v}" for k, v in server.headers.items()))

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Working folder",
                                                  self.cwd.text() or str(Path.home()))
        if folder:
            self.cwd.setText(folder)

    def entry(self) -> dict[str, Any]:
        """The mcp.json entry the fields describe; ValueError says what is wrong with them."""
        entry: dict[str, Any] = dict(self.original.extra) if self.original else {}
        if self.original is not None:  # switched off, and the tools always allowed, stay so
            if not self.original.enabled:
                entry["disabled"] = True
            if self.original.always_allow:
                entry["alwaysAllow"] = sorted(self.original.always_allow)
        if self.kind.currentData() == PROGRAM:
            if not self.command.text().strip():
                raise ValueError("Write the program to start, such as npx or the path of a "
                                 "program.")
            entry["command"] = self.command.text().strip()
            entry["args"] = _lines(self.args.toPlainText())
            entry["env"] = parse_pairs(self.env.toPlainText(), "=", "environment",
                                       "NAME=value")
            if self.cwd.text().strip():
                entry["cwd"] = self.cwd.text().strip()
        else:
            try:
                entry["url"] = check_url(self.url.text())
            except ValueError:
                raise ValueError("Write the server's address, starting with http:// or "
                                 "https://, such as http://127.0.0.1:8000/mcp.") from None
            entry["headers"] = parse_pairs(self.headers.toPlainText(), ":", "headers",
                                           "Name: value")
        return entry

    def accept(self) -> None:
        """Check the fields; close with :attr:`server` set, or stay open and say what is wrong."""
        try:
            name = check_name(self.name.text())
            if name in self.taken:
                raise ValueError(f"There is a server named {name} already. Choose another "
                                 "name.")
            server = parse_server(name, self.entry())
        except ValueError as exc:
            text = str(exc)
            self.error.setText(text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."))
            self.error.show()
            return
        self.server = server
        super().accept()
