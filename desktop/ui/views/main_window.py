"""The main window: the navigation rail, the conversation list, the page, and a status bar.

Side panels (the model settings, the adapters) are docks beside the chat, closed at first and
opened from buttons in the chat's header; where they are, how wide and whether they are open
is kept with the window's state (QSettings), apart from the user's settings. A panel opened
while another is open goes beside it where the window has the room, under it where it has not:
opening a panel never makes the window wider than the user left it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (QDockWidget, QFrame, QHBoxLayout, QLabel, QMainWindow, QMenu,
                               QPushButton, QScrollArea, QSizePolicy, QSplitter, QStackedWidget,
                               QStyle, QVBoxLayout, QWidget)

from desktop.ui.chat_controller import ChatController
from desktop.ui.engine import EngineController
from desktop.ui.views.chat import ChatPage
from desktop.ui.views.rail import NavigationRail
from desktop.ui.views.sidebar import Sidebar

GiB = 1024**3
# The icon of each side panel's button in the chat's header (Lucide names).
PANEL_ICONS = {"Model settings": "sliders-horizontal", "Adapters": "layers"}


class EngineBanner(QFrame):
    """Says in plain words when the engine died, and offers to restart it."""

    restartRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("engineBanner")
        layout = QHBoxLayout(self)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        layout.addWidget(self.text, 1)
        self.restart = QPushButton("Restart engine")
        self.restart.clicked.connect(self.restartRequested)
        self.dismiss = QPushButton("Dismiss")
        self.dismiss.clicked.connect(self.hide)
        layout.addWidget(self.restart)
        layout.addWidget(self.dismiss)
        self.about_engine = False
        self.hide()

    def show_message(self, text: str, can_restart: bool, about_engine: bool = False) -> None:
        self.about_engine = about_engine
        self.text.setText(text)
        self.restart.setVisible(can_restart)
        self.show()


class MainWindow(QMainWindow):
    """Holds the pages; knows nothing of how they do their work."""

    def __init__(self, engine: EngineController, chat: ChatController,
                 window_state: QSettings, dark: bool = False) -> None:
        super().__init__()
        self.engine = engine
        self.chat = chat
        self.window_state = window_state
        self.setWindowTitle("NoMoat")
        self.resize(1180, 760)

        self.nav = NavigationRail()
        self.stack = QStackedWidget()
        self.pages: dict[str, QWidget] = {}
        self.docks: dict[str, QDockWidget] = {}
        self.panel_actions: dict[str, QAction] = {}  # open or close each dock, checked if open
        self._docks_away: set[QDockWidget] = set()  # open docks hidden while off the chat
        self.sidebar = Sidebar(chat)
        self.chat_page = ChatPage(chat, dark)

        self.banner = EngineBanner()
        self._crashed = False  # the engine died and has not been started again yet
        self.banner.restartRequested.connect(engine.restart)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.stack, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([240, 860])
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.add_page("Chat", self.chat_page)
        self.nav.currentRowChanged.connect(self._page_changed)

        self.engine_label = QLabel("Engine: starting")
        self.model_label = QLabel("No model")
        self.memory_label = QLabel("")
        self.speed_label = QLabel("")
        bar = self.statusBar()
        for label in (self.engine_label, self.model_label, self.memory_label, self.speed_label):
            bar.addPermanentWidget(label)

        QShortcut(QKeySequence.StandardKey.New, self, activated=self.new_chat)
        QShortcut(QKeySequence.StandardKey.Find, self, activated=self.find_chat)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=chat.stop)
        for row in range(9):  # Ctrl+1 … Ctrl+9: the pages in the rail's order
            QShortcut(QKeySequence(f"Ctrl+{row + 1}"), self,
                      activated=lambda row=row: self._show_row(row))

        engine.stateChanged.connect(self._engine_state)
        engine.statusChanged.connect(self._engine_status)
        # The model settings scroll in their panel rather than make the window taller.
        panel = self.chat_page.settings_panel
        settings = QScrollArea()
        settings.setWidgetResizable(True)
        settings.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        settings.setWidget(panel)
        settings.setMinimumWidth(panel.minimumSizeHint().width()
                                 + settings.verticalScrollBar().sizeHint().width())
        self.add_dock("Model settings", settings)
        self._restore()

    def add_page(self, name: str, widget: QWidget, icon: str | None = None) -> None:
        """Add a page, in the rail after those there; *icon* is a Lucide name (the rail's
        PAGE_ICONS has one for each page the app has)."""
        self.pages[name] = widget
        self.stack.addWidget(widget)
        item = self.nav.add_page(name, icon)
        row = len(self.pages)
        item.setToolTip(f"{name} (Ctrl+{row})" if row <= 9 else name)
        if self.nav.currentRow() < 0:
            self.nav.setCurrentRow(0)
        self._fit_pages()

    def _fit_pages(self) -> None:
        """Only the page shown sets how small the window can be, not the largest of them all."""
        for page in self.pages.values():
            policy = (QSizePolicy.Policy.Preferred if page is self.stack.currentWidget()
                      else QSizePolicy.Policy.Ignored)
            page.setSizePolicy(policy, policy)

    def add_dock(self, name: str, widget: QWidget, icon: str | None = None) -> QDockWidget:
        """Put *widget* in a side panel beside the chat, closed at first; a button in the chat's
        header (with *icon*, a Lucide name, or the one PANEL_ICONS has) opens and closes it.

        Docks belong to the chat: they step aside on other pages and come back with it. A
        second dock opens beside the first, not under it, so each has the window's height.
        """
        dock = QDockWidget(name, self)
        words = name.split()
        dock.setObjectName(words[0].lower() + "".join(w.title() for w in words[1:]) + "Dock")
        dock.setWidget(widget)
        dock.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea
                             | Qt.DockWidgetArea.RightDockWidgetArea)
        beside = next(iter(self.docks.values()), None)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        if beside is not None:
            self.splitDockWidget(beside, dock, Qt.Orientation.Horizontal)
        # As narrow as it can be: the chat and the conversation list need the room more.
        self.resizeDocks([dock], [widget.minimumSizeHint().width()], Qt.Orientation.Horizontal)
        dock.hide()
        self.docks[name] = dock
        docks = self.window_state.value("docks")
        if docks is not None:
            self.restoreState(docks)  # where the user left it, how wide, open or closed
        # The dock's own toggle action would show it before it could be placed: this one
        # places it first, and is checked while the dock is open.
        action = QAction(name, self)
        action.setCheckable(True)
        action.setChecked(dock.toggleViewAction().isChecked())
        dock.toggleViewAction().toggled.connect(action.setChecked)
        action.triggered.connect(lambda on: self.open_dock(dock) if on else dock.hide())
        self.panel_actions[name] = action
        self.chat_page.add_panel_button(name, action, icon or PANEL_ICONS.get(name, "columns-2"))
        return dock

    def open_dock(self, dock: QDockWidget) -> None:
        """Show *dock* beside the chat (going to the chat, where docks live, if need be)."""
        self._docks_away.discard(dock)
        if self.stack.currentWidget() is not self.chat_page:
            self.show_page("Chat")
        self._place_and_show(dock)

    def _place_and_show(self, dock: QDockWidget) -> None:
        """Beside the docks open on its side where the window has the room for it, under the
        last of them where it has not, so that the window stays as wide as it is."""
        if dock.isVisible():
            return
        area = self.dockWidgetArea(dock)
        shown = [d for d in self.docks.values() if d is not dock and d.isVisible()
                 and not d.isFloating() and self.dockWidgetArea(d) == area]
        if shown and not dock.isFloating():
            # What the page just shown needs is measured only once its layouts have heard of it.
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)
            self.centralWidget().updateGeometry()
            separator = self.style().pixelMetric(
                QStyle.PixelMetric.PM_DockWidgetSeparatorExtent, None, self)
            room = self.width() - self.minimumSizeHint().width()
            beside = dock.minimumSizeHint().width() + separator <= room
            self.splitDockWidget(shown[-1], dock, Qt.Orientation.Horizontal if beside
                                 else Qt.Orientation.Vertical)
        dock.show()

    def createPopupMenu(self) -> QMenu:  # noqa: N802 - Qt's name
        """The menu of the docks' title bars: the same actions as the header's buttons."""
        menu = QMenu(self)
        for action in self.panel_actions.values():
            menu.addAction(action)
        return menu

    def show_page(self, name: str) -> None:
        self.nav.setCurrentRow(list(self.pages).index(name))

    def _show_row(self, row: int) -> None:
        if row < self.nav.count():
            self.nav.setCurrentRow(row)

    def _page_changed(self, row: int) -> None:
        self.stack.setCurrentIndex(row)
        self._fit_pages()
        on_chat = list(self.pages)[row] == "Chat"
        self.sidebar.setVisible(on_chat)
        for dock in self.docks.values():
            if not on_chat and dock.isVisible():
                self._docks_away.add(dock)
                dock.hide()
            elif on_chat and dock in self._docks_away:
                self._docks_away.discard(dock)
                self._place_and_show(dock)  # the window may have been made narrower meanwhile

    def new_chat(self) -> None:
        self.show_page("Chat")
        self.chat.new_conversation()

    def find_chat(self) -> None:
        self.show_page("Chat")
        self.sidebar.search.setFocus()
        self.sidebar.search.selectAll()

    # -- engine ----------------------------------------------------------------------------------
    def _engine_state(self, state: str, message: str) -> None:
        names = {"starting": "starting", "ready": "ready", "crashed": "restarting",
                 "failed": "stopped", "stopped": "stopped"}
        self.engine_label.setText(f"Engine: {names.get(state, state)}")
        self.chat_page.set_engine_state(state)
        safe = " Your conversations and the text you were typing are safe."
        if state == "crashed":
            self._crashed = True
            self.banner.show_message(message + safe, can_restart=False, about_engine=True)
        elif state == "failed":
            self.banner.show_message(message, can_restart=True, about_engine=True)
        elif state == "ready" and self._crashed:
            # The restart's message says why the engine stopped: it replaces the crash's.
            self.banner.show_message(message + safe, can_restart=False, about_engine=True)
        elif state == "ready" and ((self.banner.isVisible() and self.banner.about_engine)
                                   or message != "The engine is ready."):
            self.banner.show_message(message, can_restart=False, about_engine=True)
        if state != "crashed":
            self._crashed = False

    def _engine_status(self, status: dict[str, Any]) -> None:
        model = status.get("model") if status else None
        self.model_label.setText(f"Model: {model['id']}" if model else "No model loaded")
        self.chat_page.set_model_thinks(bool(model and model.get("thinks")))
        self.chat_page.set_engine_status(status or {})
        memory = status.get("memory_bytes") if status else None
        self.memory_label.setText(f"Memory: {memory / GiB:.2f} GB" if memory else "")
        last = (status or {}).get("last_generation") or {}
        rate = last.get("tokens_per_second")
        self.speed_label.setText(f"{rate:.1f} tokens/s" if rate else "")

    # -- window state (kept apart from the user's settings) ----------------------------------------
    def _restore(self) -> None:
        geometry = self.window_state.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = self.window_state.value("splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.WindowStateChange and not self.isMinimized():
            self.chat_page.show_held()  # what a reply said while the window was minimized
        elif event.type() == QEvent.Type.FontChange:
            self.nav.fit()  # the rail may not have been told of the new font yet

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.window_state.setValue("geometry", self.saveGeometry())
        self.window_state.setValue("splitter", self.splitter.saveState())
        for dock in self._docks_away:
            dock.show()  # open beside the chat, where it was, though another page is shown
        self.window_state.setValue("docks", self.saveState())
        self.window_state.sync()
        super().closeEvent(event)
