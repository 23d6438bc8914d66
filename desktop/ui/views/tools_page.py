"""The Tools page: the MCP servers of mcp.json, whose tools the chat's model may call.

Each server is a card: its name, what it runs, a switch, its state in words (with its own error
output a click away when it failed), and, once it runs, its tools. Every change is saved to
mcp.json at once through :class:`ToolServers`; starting a server never waits on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFrame, QHBoxLayout, QLabel, QMessageBox,
                               QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from desktop.tools.config import McpConfigError, ServerConfig, config_path, load_config
from desktop.tools.servers import ServerState, ServerStatus, ToolInfo
from desktop.ui.tool_servers import ToolServers
from desktop.ui.views.page_column import page_column
from desktop.ui.views.tool_server_dialog import ServerDialog

MAX_DESCRIPTION = 140  # characters of a tool's description on its one line


def state_text(status: ServerStatus) -> str:
    """A server's state in words."""
    if status.state == ServerState.READY:
        count = len(status.tools)
        return f"Ready — {count} tool{'' if count == 1 else 's'}"
    if status.state == ServerState.FAILED:
        return f"Failed: {status.error or 'the server stopped.'}"
    return {ServerState.OFF: "Off", ServerState.IDLE: "Starts when a chat needs it",
            ServerState.STARTING: "Starting…"}.get(status.state, str(status.state))


def one_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= MAX_DESCRIPTION else line[:MAX_DESCRIPTION - 1] + "…"


def _selectable(label: QLabel) -> QLabel:
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ServerCard(QFrame):
    """One server: what it is, its switch and state, its buttons, and its tools."""

    def __init__(self, servers: ToolServers, server: ServerConfig,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.servers = servers
        self.server = server
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("chatTitle")
        top.addWidget(self.title)
        self.switch = QCheckBox("On")
        self.switch.toggled.connect(lambda on: self.servers.set_enabled(self.server.name, on))
        top.addWidget(self.switch)
        top.addStretch(1)
        self.restart = QPushButton("Start")
        self.restart.clicked.connect(self._restart)
        self.edit = QPushButton("Edit…")
        self.remove = QPushButton("Remove…")
        for button in (self.restart, self.edit, self.remove):
            top.addWidget(button)
        layout.addLayout(top)
        self.describe = _selectable(QLabel())
        layout.addWidget(self.describe)
        self.state = _selectable(QLabel())
        layout.addWidget(self.state)
        self.show_output = QPushButton("Show output")
        self.show_output.setCheckable(True)
        self.show_output.toggled.connect(self._output_shown)
        self.show_output.hide()
        output_row = QHBoxLayout()
        output_row.addWidget(self.show_output)
        output_row.addStretch(1)
        layout.addLayout(output_row)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setMaximumHeight(160)
        self.output.hide()
        layout.addWidget(self.output)
        self.tools = QVBoxLayout()
        layout.addLayout(self.tools)
        self._tool_rows: list[QWidget] = []
        self.revoke: dict[str, QPushButton] = {}  # by tool, for the tools allowed always
        self._tools_shown: tuple[list[tuple[str, str]], frozenset[str]] = ([], frozenset())
        self.set_server(server)

    def set_server(self, server: ServerConfig) -> None:
        """Show *server* as mcp.json has it now (its state is shown by show_status)."""
        self.server = server
        name = server.name
        self.title.setText(name)
        self.describe.setText(server.describe())
        self.describe.setAccessibleName(f"What {name} runs")
        self.switch.blockSignals(True)
        self.switch.setChecked(server.enabled)
        self.switch.blockSignals(False)
        self.switch.setAccessibleName(f"Use {name}")
        self.restart.setAccessibleName(f"Start or restart {name}")
        self.edit.setAccessibleName(f"Edit {name}")
        self.remove.setAccessibleName(f"Remove {name}")
        self.state.setAccessibleName(f"State of {name}")
        self.show_output.setAccessibleName(f"Output of {name}")
        self.output.setAccessibleName(f"Output of {name}")
        self.show_status(self.servers.status(name))

    def show_status(self, status: ServerStatus) -> None:
        """The server's state, its output when it has some, and its tools when it runs."""
        self.status = status
        self.state.setText(state_text(status))
        self.state.setProperty("problem", status.state == ServerState.FAILED)
        self.state.style().polish(self.state)
        self.restart.setText("Restart" if status.state in (ServerState.READY,
                                                           ServerState.STARTING) else "Start")
        self.restart.setEnabled(self.server.enabled)
        log = status.log or (status.error if status.state == ServerState.FAILED else "")
        self.output.setPlainText(log)
        self.show_output.setVisible(bool(log))
        self.output.setVisible(bool(log) and self.show_output.isChecked())
        self._show_tools(status.tools if status.state == ServerState.READY else ())

    def _output_shown(self, shown: bool) -> None:
        self.show_output.setText("Hide output" if shown else "Show output")
        self.output.setVisible(shown and bool(self.output.toPlainText()))

    def _show_tools(self, tools: tuple[ToolInfo, ...]) -> None:
        listed = {tool.name for tool in tools}
        rows = [(tool.name, one_line(tool.description)) for tool in tools]
        # A tool allowed "always" can be revoked while its server is not running too.
        rows += [(name, "") for name in sorted(self.server.always_allow)
                 if name not in listed]
        shown = (rows, self.server.always_allow)
        if shown == self._tools_shown:
            return  # the same rows: the keyboard focus stays where it is
        self._tools_shown = shown
        for row in self._tool_rows:
            row.hide()
            row.deleteLater()  # a Revoke button may be in the middle of its click
        self._tool_rows = []
        self.revoke = {}
        for tool, description in rows:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            name = QLabel(tool)
            name.setObjectName("toolName")
            name.setMinimumWidth(120)
            line.addWidget(name)
            text = QLabel(description)
            text.setWordWrap(True)
            line.addWidget(text, 1)
            if tool in self.server.always_allow:
                line.addWidget(QLabel("Runs without asking"))
                revoke = QPushButton("Revoke")
                revoke.setToolTip("Ask before each call of this tool again.")
                revoke.setAccessibleName(f"Revoke always allowing {tool} of {self.server.name}")
                revoke.clicked.connect(lambda _=False, t=tool: self.servers.set_always_allowed(
                    self.server.name, t, False))
                line.addWidget(revoke)
                self.revoke[tool] = revoke
            self.tools.addWidget(row)
            self._tool_rows.append(row)

    def tool_names(self) -> list[str]:
        """The tools listed on the card, in order."""
        return [name for name, _ in self._tools_shown[0]]

    def _restart(self) -> None:
        if self.status.state in (ServerState.READY, ServerState.STARTING):
            self.servers.manager.restart(self.server.name)
        else:
            self.servers.manager.start(self.server.name)


class ToolsPage(QWidget):
    """The MCP servers, their tools, and how many tool calls one reply may make."""

    toolRoundsChanged = Signal(int)

    def __init__(self, servers: ToolServers, tool_rounds: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.servers = servers
        self.cards: dict[str, ServerCard] = {}
        self.dialog: ServerDialog | None = None
        layout = page_column(self).layout

        intro = QLabel("MCP servers give the chat's model tools it may call, such as reading "
                       "files or searching. NoMoat asks you before each call unless you allowed "
                       "a tool always. They are kept in mcp.json, in the format Claude Desktop "
                       "and Cursor use.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        buttons = QHBoxLayout()
        self.add = QPushButton("Add server…")
        self.add.clicked.connect(self.add_server)
        self.import_button = QPushButton("Import mcp.json…")
        self.import_button.clicked.connect(self._choose_import)
        self.reload = QPushButton("Reload")
        self.reload.setAccessibleName("Reload mcp.json")
        self.reload.setToolTip("Read mcp.json again after editing it by hand.")
        self.reload.clicked.connect(self.servers.reload)
        folder = QPushButton("Open mcp.json folder")
        folder.clicked.connect(lambda: QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(config_path().parent))))
        for button in (self.add, self.import_button, self.reload, folder):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        rounds = QHBoxLayout()
        rounds_label = QLabel("Tool calls per reply")
        self.tool_rounds = QSpinBox()
        self.tool_rounds.setAccessibleName("Tool calls per reply")
        self.tool_rounds.setRange(1, 100)
        self.tool_rounds.setValue(tool_rounds)
        self.tool_rounds.setKeyboardTracking(False)  # one change once a number is typed
        self.tool_rounds.setToolTip("How many rounds of tool calls one reply may make before "
                                    "the model must answer.")
        self.tool_rounds.valueChanged.connect(self.toolRoundsChanged)
        rounds_label.setBuddy(self.tool_rounds)
        rounds.addWidget(rounds_label)
        rounds.addWidget(self.tool_rounds)
        rounds.addStretch(1)
        layout.addLayout(rounds)
        self.notice = _selectable(QLabel(""))
        self.notice.setObjectName("chatNotice")
        self.notice.setAccessibleName("Tools status")
        layout.addWidget(self.notice)
        self.empty = QLabel("No MCP servers yet. Add one, or import the mcp.json of another "
                            "app.")
        self.empty.setWordWrap(True)
        layout.addWidget(self.empty)
        self.list = QVBoxLayout()
        layout.addLayout(self.list)

        layout.addStretch(1)

        self._imported = ""  # what the last import did, until the next change
        servers.configChanged.connect(self.refresh)
        servers.statusChanged.connect(self._status)
        self.refresh()

    def refresh(self) -> None:
        """Show the servers of mcp.json as it is now, keeping the cards that are still there
        (and so the keyboard focus on them)."""
        config = self.servers.config
        for name in [n for n in self.cards if n not in config.servers]:
            card = self.cards.pop(name)
            self.list.removeWidget(card)
            card.hide()
            card.deleteLater()  # it may be in the middle of its own signal
        cards, self.cards = self.cards, {}
        for position, (name, server) in enumerate(config.servers.items()):
            card = self.cards[name] = cards.get(name)
            if card is None:
                card = self.cards[name] = ServerCard(self.servers, server)
                card.edit.clicked.connect(lambda _=False, n=name: self.edit_server(n))
                card.remove.clicked.connect(lambda _=False, n=name: self.remove_server(n))
            else:
                card.set_server(server)
            if self.list.indexOf(card) != position:
                self.list.removeWidget(card)
                self.list.insertWidget(position, card)
        self.empty.setVisible(not config.servers and self.servers.readable)
        for button in (self.add, self.import_button):
            button.setEnabled(self.servers.readable)
        lines = [self.servers.error] if self.servers.error else []
        lines += config.problems
        if self._imported:
            lines.append(self._imported)
        self.notice.setText("\n".join(lines))
        self.notice.setVisible(bool(lines))

    def _status(self, status: ServerStatus) -> None:
        card = self.cards.get(status.name)
        if card is not None:
            # The manager's state now, not the report's: reports may arrive late.
            card.show_status(self.servers.status(status.name))

    # -- adding, editing, removing ---------------------------------------------------------------
    def add_server(self) -> None:
        """Open the dialog for a new server (it adds the server once it is saved)."""
        self._open_dialog(ServerDialog(set(self.servers.config.servers), None, self))

    def edit_server(self, name: str) -> None:
        server = self.servers.config.servers.get(name)
        if server is not None:
            self._open_dialog(ServerDialog(set(self.servers.config.servers) - {name}, server,
                                           self))

    def _open_dialog(self, dialog: ServerDialog) -> None:
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = dialog
        dialog.accepted.connect(lambda: self._dialog_saved(dialog))
        dialog.finished.connect(lambda _: self._dialog_closed(dialog))
        dialog.open()  # window-modal, without an event loop of its own

    def _dialog_saved(self, dialog: ServerDialog) -> None:
        if dialog.server is not None:
            self._imported = ""
            self.servers.put(dialog.server, dialog.original.name if dialog.original else None)

    def _dialog_closed(self, dialog: ServerDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def remove_server(self, name: str) -> None:
        answer = QMessageBox.question(
            self, "Remove MCP server",
            f"Remove {name} from mcp.json? The chat can no longer use its tools.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self._imported = ""
            self.servers.remove(name)

    # -- importing -------------------------------------------------------------------------------
    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import the MCP servers of an mcp.json",
                                              str(Path.home()),
                                              "JSON files (*.json);;All files (*)")
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> None:
        """Add the servers of the mcp.json at *path*, and say what was added and what was not."""
        try:
            other = load_config(path)
        except McpConfigError as exc:
            self._imported = f"Nothing was imported: {exc}"
        else:
            added = self.servers.add_servers(other) if other.servers else []
            said = [f"Imported {', '.join(added)} from {path.name}." if added
                    else f"{path.name} has no MCP servers to import."]
            self._imported = " ".join(said + other.problems)
        self.refresh()
