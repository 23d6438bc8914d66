"""Start the desktop app: the window first, then the engine behind it."""

from __future__ import annotations

import sys
from typing import Any

from PySide6.QtCore import QEvent, QEventLoop, QObject, QSettings, Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QProgressDialog

from desktop import __version__
from desktop.client.api import EngineClient, context_length
from desktop.core.chats import ChatStore, ChatStoreError
from desktop.core.datafolder import move_waiting, open_data_folder
from desktop.core.downloads import DownloadOptions
from desktop.core.library import InstalledModel, installed_models, models_folder
from desktop.core.paths import get_paths
from desktop.core.settings import ModelSettings, load_settings, save_settings
from desktop.ui.adapters_controller import AdaptersController
from desktop.ui.chat_controller import ChatController
from desktop.ui.docs_controller import DocsController
from desktop.ui.downloads import DownloadsController
from desktop.ui.engine import EngineController
from desktop.ui.models.catalog_filter import Filters
from desktop.ui.style import app_icon, apply_font_size, apply_theme
from desktop.ui.tool_servers import ToolServers
from desktop.ui.train_controller import TrainController
from desktop.ui.views.adapters import AdaptersPanel
from desktop.ui.views.compare import ComparePage
from desktop.ui.views.docs_page import DocsPage
from desktop.ui.views.main_window import MainWindow
from desktop.ui.views.models import ModelsPage
from desktop.ui.views.server import ServerPage
from desktop.ui.views.settings import SettingsPage, save_changes
from desktop.ui.views.tools_page import ToolsPage
from desktop.ui.views.train_page import TrainPage
from desktop.ui.workers import Workers


class DesktopApp(QObject):
    """Everything the window needs, created in order and closed in reverse."""

    def __init__(self, app: QApplication, theme: str | None = None) -> None:
        super().__init__()
        self.app = app
        self.workers = Workers(self)
        # Before anything opens a file in the data folder: a move chosen last time is done now.
        self._start_notes = self._open_data_folder()
        paths = get_paths().ensure()
        self.settings = load_settings()
        app.setWindowIcon(app_icon())  # the window's and the task bar's
        dark = apply_theme(app, theme or self.settings.theme)
        apply_font_size(app, self.settings.font_size)
        self.store = ChatStore().open()
        self.engine = EngineController(self.workers, self)
        self.chat = ChatController(self.store, self.engine, self.workers, self)
        state = QSettings(str(paths.settings / "window.ini"), QSettings.Format.IniFormat)
        self.window = MainWindow(self.engine, self.chat, state, dark)
        self.downloads = DownloadsController(
            models_folder(self.settings), max_concurrent=self.settings.download_concurrency,
            options=DownloadOptions(endpoint=self.settings.hub_endpoint,
                                    token=self.settings.hub_token), parent=self)
        self.models_page = ModelsPage(self.engine, self.workers, self.downloads, self.settings)
        self.models_page.installedChanged.connect(self._library_changed)
        self.models_page.modelLoaded.connect(self._model_loaded)
        self.window.add_page("Models", self.models_page)
        self._add_adapters()
        self.server_page = ServerPage(self.engine)
        self.server_page.remoteChanged.connect(self._remote)
        self.server_page.set_options(self.settings.server_port, self.settings.server_api_key,
                                     self.settings.server_lan,
                                     self.settings.server_cors_origins)
        self.server_page.optionsChanged.connect(self._server_options)
        self.server_page.set_remote_options(self.settings.remote_url,
                                            self.settings.remote_api_key)
        self.window.add_page("Server", self.server_page)
        self._add_tools()
        self._add_docs()
        self.settings_page = SettingsPage(self.workers, self.settings)
        self.settings_page.themeChanged.connect(self._theme)
        app.styleHints().colorSchemeChanged.connect(self._system_scheme)
        self.settings_page.fontSizeChanged.connect(lambda size: apply_font_size(app, size))
        self.settings_page.concurrencyChanged.connect(self.downloads.set_concurrency)
        self.settings_page.hubChanged.connect(self.models_page.set_hub)
        self.settings_page.hubChanged.connect(self.adapters.set_hub)
        self.settings_page.catalogUrlChanged.connect(self.models_page.set_catalog_url)
        self.settings_page.catalogFetched.connect(self.models_page.show_catalog)
        self.window.add_page("Settings", self.settings_page)
        self.window.chat_page.modelChosen.connect(self.choose_model)
        self.window.chat_page.settings_panel.changed.connect(self._model_settings_changed)
        self.models_page.load_options = lambda model_id: self.settings.model(
            model_id).load_options()
        self.models: list[InstalledModel] = []
        self._local_model: str | None = None  # the chat's model here, while a remote is used

    def _open_data_folder(self) -> list[str]:
        """open_data_folder; while it moves the data (a copy that may take a while), a small
        window says so instead of nothing showing at all."""
        target = move_waiting()
        if target is None:
            return open_data_folder()
        dialog = QProgressDialog(f"Moving your conversations and adapters to {target}…", "", 0, 0)
        dialog.setWindowTitle("NoMoat")
        dialog.setCancelButton(None)  # a copy cut short is finished at the next start anyway
        dialog.show()
        outcome: list[Any] = []
        loop = QEventLoop()

        def ended(result: Any) -> None:  # the notes, or what went wrong
            outcome.append(result)
            loop.quit()

        # The answer is queued to this thread, so it cannot come before the loop runs.
        self.workers.submit(open_data_folder, on_done=ended, on_error=ended)
        loop.exec()
        dialog.close()
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    def _add_adapters(self) -> None:
        """LoRA adapters: a page, a dock beside the chat, the chat header, training, and
        Compare."""
        self.adapters = AdaptersController(
            self.engine, self.chat, self.workers,
            DownloadOptions(endpoint=self.settings.hub_endpoint, token=self.settings.hub_token),
            self)
        self.adapters_page = AdaptersPanel(self.adapters)
        self.window.add_page("Adapters", self.adapters_page)
        self.adapters_panel = AdaptersPanel(self.adapters, compact=True)
        self.adapters_dock = self.window.add_dock("Adapters", self.adapters_panel)
        self.adapters.summaryChanged.connect(self._show_adapters)
        self._add_train()
        self.compare_page = ComparePage(self.engine, self.chat, self.adapters, self.workers)
        self.window.add_page("Compare", self.compare_page)

    def _add_train(self) -> None:
        """The Train page: a trainer process of its own makes an adapter from the user's
        examples; the library and the chat's stack take it when it is done."""
        self.train = TrainController(self.workers, self.store, self)
        self.train_page = TrainPage(self.train, self.engine, self.workers)
        self.train_page.useRequested.connect(self._use_trained)
        self.train.runEnded.connect(lambda _event: self.adapters.refresh())
        self.window.add_page("Train", self.train_page)
        self._trained_waiting: tuple[str, str] | None = None  # (model id, adapter)
        self.adapters.modelChanged.connect(self._use_trained_on)
        # Quitting while a run goes on asks first, and stops the run cleanly.
        self.window.installEventFilter(self)

    def _use_trained(self, name: str, base_model: str) -> None:
        """Put a new adapter in the chat's stack, after those there; the chat first takes the
        adapter's base model when it has another."""
        self.window.show_page("Chat")
        model = next((m for m in self.models if str(m.path) == base_model), None)
        if (model is None or self.adapters.model_path == base_model
                or self.engine.remote is not None):  # the chat's model is a server's there
            self.adapters.use(name)
            return
        self._trained_waiting = (model.id, name)
        self.window.chat_page.set_models(self._local_choices(), model.id)
        self.choose_model(model.id)

    def _use_trained_on(self, model_id: object) -> None:
        waiting = self._trained_waiting
        if waiting is not None and model_id == waiting[0]:
            self._trained_waiting = None
            self.adapters.use(waiting[1])

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if (watched is self.window and event.type() == QEvent.Type.Close
                and self.train.busy):
            if not self.train_page.confirm_quit():
                event.ignore()
                return True
            self.train.stop()
        return super().eventFilter(watched, event)

    def _add_tools(self) -> None:
        """MCP servers: the chat calls their tools, the Tools page configures them."""
        self.tool_servers = ToolServers(self)
        self.chat.tool_servers = self.tool_servers
        self.chat.tool_rounds = self.settings.tool_rounds
        self.tools_page = ToolsPage(self.tool_servers, self.settings.tool_rounds)
        self.tools_page.toolRoundsChanged.connect(self._tool_rounds)
        self.window.add_page("Tools", self.tools_page)
        self.window.chat_page.manageToolsRequested.connect(
            lambda: self.window.show_page("Tools"))

    def _add_docs(self) -> None:
        """Document collections: the Documents page makes and indexes them, the chat answers
        from those it is given."""
        self.docs = DocsController(self.engine, self.workers,
                                   lambda: self.settings.docs_embedding_model, self)
        self.chat.search_documents = self.docs.search
        self.docs_page = DocsPage(self.docs)
        self.docs_page.modelsRequested.connect(self._models_for_docs)
        self.docs.renamed.connect(self._collection_renamed)
        self.window.add_page("Documents", self.docs_page)
        button = self.window.chat_page.docs_button
        button.names = self.docs.names
        button.manageRequested.connect(lambda: self.window.show_page("Documents"))

    def _collection_renamed(self, name: str, new_name: str) -> None:
        """Chats that answer from a renamed collection go on answering from it."""
        if name in self.chat.docs:
            self.chat.set_docs([new_name if n == name else n for n in self.chat.docs])
        # After the open chat's own change, in the same lane: every chat ends up with the name.
        self.workers.submit(self.store.rename_in_settings, "docs", name, new_name, serial=True)

    def _models_for_docs(self) -> None:
        """The catalog, showing the embedding models (whatever the filters were)."""
        self.window.show_page("Models")
        self.models_page.show_tab("Catalog")
        bar = self.models_page.catalog_tab.filter_bar
        bar.set_filters(Filters(kind="embedding", sort=bar.filters().sort))

    def _tool_rounds(self, rounds: int) -> None:
        self.chat.tool_rounds = rounds
        self._remember({"tool_rounds": rounds})

    def _show_adapters(self, summary: str) -> None:
        """The adapters the chat's replies come with: none while a server elsewhere answers."""
        self.window.chat_page.set_adapters_text("" if self.engine.remote is not None
                                                else summary)

    def start(self, model: str | None = None) -> None:
        """Show the window now; start the engine and read the model list in the background."""
        self.window.show()
        self.window.sidebar.refresh()
        self.adapters.refresh()
        self.train.refresh_jobs()
        self.docs.open()
        notes = list(self._start_notes)
        if self.store.recovered:
            notes.append(f"{self.store.recovered} reply was cut off when NoMoat last closed "
                         "unexpectedly; what had arrived is kept.")
        if notes:
            self.window.banner.show_message(" ".join(notes), can_restart=False)
        self.workers.submit(installed_models, on_done=lambda found: self._models(found, model))

    def _models(self, found: list[InstalledModel], wanted: str | None) -> None:
        self.models = found
        self.models_page.set_installed(found)
        self.settings_page.set_models(found)
        self.docs.set_models(found)
        default = self.settings.default_model
        if default is not None and not any(m.id == default and m.loadable for m in found):
            default = None  # removed since it was chosen: fall back to the first model
        model = wanted or default or next((i for i, _ in self._local_choices()), None)
        self.chat.model = model
        self.window.chat_page.set_models(self._local_choices(), model)
        if model is not None:
            self._use_model_settings(model)
        self.engine.start(model, self.settings.model(model).load_options() if model else None)

    def _local_choices(self) -> list[tuple[str, str]]:
        """The chat's model picker: installed chat models that can be loaded (embedding
        models make embeddings for documents; they cannot chat)."""
        return [(m.id, m.name) for m in self.models if m.loadable and m.kind == "chat"]

    def choose_model(self, model_id: str) -> None:
        """Load another model; the conversation stays as it is."""
        previous = self.chat.model
        self.chat.model = model_id
        self._use_model_settings(model_id)
        if self.engine.remote is not None:
            return  # the server elsewhere has it loaded; nothing to load here
        self.engine.load_model(model_id, self.settings.model(model_id).load_options(),
                               on_done=lambda _: self.engine.refresh_status(),
                               on_error=lambda exc: self._load_failed(model_id, previous, exc))

    def _switch_chat_model(self, model: str | None, choices: list[tuple[str, str]]) -> None:
        """Offer *choices* in the chat's picker and chat with *model*, with its settings."""
        changed = model != self.chat.model
        self.chat.model = model
        self.window.chat_page.set_models(choices, model)
        if changed and model is not None:
            self._use_model_settings(model)

    def _load_failed(self, model_id: str, previous: str | None, exc: Exception) -> None:
        """Say why, and let the chat go on with the model it had (the engine loads it again
        for the next reply)."""
        goes_on = f" The chat goes on with {previous}." if previous else ""
        self.window.banner.show_message(f"Could not load {model_id}: {exc}{goes_on}",
                                        can_restart=False)
        if self.chat.model == model_id and self.engine.remote is None:
            self._switch_chat_model(previous, self._local_choices())
        self.engine.refresh_status()

    def _library_changed(self, found: list[InstalledModel]) -> None:
        """A download, import or removal changed the library: the pickers follow."""
        self.models = found
        if self.engine.remote is None:  # else the chat's picker lists the remote models
            self.window.chat_page.set_models(self._local_choices(), self.chat.model)
        self.settings_page.set_models(found)
        self.docs.set_models(found)

    def _model_loaded(self, model_id: str) -> None:
        """A model was loaded from the Models page: the chat uses it from now on."""
        if self.engine.remote is not None:
            self._local_model = model_id  # once chats come back to this computer
            return
        self.chat.model = model_id
        self._use_model_settings(model_id)
        self.window.chat_page.set_models(self._local_choices(), model_id)
        self.engine.refresh_status()

    def _use_model_settings(self, model_id: str) -> None:
        """Show *model_id*'s settings beside the chat and sample its replies with them."""
        settings = self.settings.model(model_id)
        self.window.chat_page.settings_panel.set_model(model_id, settings)
        self.chat.sampling = settings.sampling_options()

    def _model_settings_changed(self, model_id: str, settings: ModelSettings,
                                reload: bool) -> None:
        self.settings.models[model_id] = settings
        if model_id == self.chat.model:
            self.chat.sampling = settings.sampling_options()

        def save() -> None:  # reread first: the Settings page saves its own fields
            current = load_settings()
            current.models[model_id] = settings
            save_settings(current)

        self.workers.submit(save, serial=True)
        if reload and self.engine.remote is None:
            self.engine.load_model(model_id, settings.load_options(),
                                   on_done=lambda _: self.engine.refresh_status(),
                                   on_error=lambda exc: self.window.banner.show_message(
                                       f"Could not reload {model_id}: {exc}",
                                       can_restart=False))

    def _theme(self, theme: str, scheme: Qt.ColorScheme | None = None) -> None:
        """Switch the theme; the code in replies takes the new colours too."""
        self.window.chat_page.set_dark(apply_theme(self.app, theme, scheme))

    def _system_scheme(self, scheme: Qt.ColorScheme) -> None:
        """The system went light or dark: follow it if the theme is the system's."""
        if self.settings.theme == "system":
            self._theme("system", scheme)

    def _server_options(self, options: dict[str, Any]) -> None:
        """Remember the server page's options (port, key, network, origins) for next time."""
        self._remember({"server_port": options["port"], "server_api_key": options["api_key"],
                        "server_lan": options["host"] == "0.0.0.0",
                        "server_cors_origins": list(options["cors_origins"])})

    def _remember(self, values: dict[str, Any]) -> None:
        """Keep these settings now and on disk (written in the serial worker lane, over the
        file as it is then, so what the Settings page saved meanwhile stays)."""
        for key, value in values.items():
            setattr(self.settings, key, value)
        self.workers.submit(save_changes, values, serial=True)

    # -- a server elsewhere ------------------------------------------------------------------------
    def _remote(self, url: str | None, key: str | None) -> None:
        """Send chats to another OpenAI-compatible server, or back to this computer's engine.

        The model picker lists what that server serves (a vLLM server only answers for the
        names it was started with), and goes back to the installed models afterwards.
        """
        was_remote = self.engine.remote is not None
        if url is not None:  # the address and key are there again at the next start
            self._remember({"remote_url": url, "remote_api_key": key})
        self.engine.set_remote(url, key)
        client = self.engine.remote
        self._show_adapters(self.adapters.summary())
        if client is None:
            self.server_page.show_remote_status("")
            if was_remote:
                self._switch_chat_model(self._local_model, self._local_choices())
            return
        if not was_remote:
            self._local_model = self.chat.model
        self.server_page.show_remote_status(f"Asking {client.base_url} for its models…")
        self.workers.submit(client.models, on_done=lambda found: self._remote_models(client, found),
                            on_error=lambda exc: self._remote_failed(client, exc))

    def _remote_models(self, client: EngineClient, found: list[dict[str, Any]]) -> None:
        if client is not self.engine.remote:
            return  # switched again meanwhile
        chat = [m for m in found if isinstance(m, dict) and m.get("id")
                and m.get("kind", "chat") == "chat"]  # another NoMoat lists its embedders too
        ids = [str(m["id"]) for m in chat]
        self.engine.remote_contexts = {str(m["id"]): n for m in chat
                                       if (n := context_length(m)) is not None}
        model = self.chat.model if self.chat.model in ids else (ids[0] if ids else None)
        self._switch_chat_model(model, [(i, f"{i} (remote)") for i in ids])
        if model is not None:
            count = f"{len(ids)} models" if len(ids) > 1 else "one model"
            self.server_page.show_remote_status(
                f"Chats go to {client.base_url}, which serves {count}; the model picker above "
                "the chat lists them.")
        else:
            self.server_page.show_remote_status(
                f"{client.base_url} answers but lists no models, so chats are sent without a "
                "model name.")

    def _remote_failed(self, client: EngineClient, exc: Exception) -> None:
        if client is not self.engine.remote:
            return
        self._switch_chat_model(None, [])
        self.server_page.show_remote_status(
            f"Could not list the models of {client.base_url}: {exc} Chats go there anyway; "
            "switch this off to chat on this computer again.")

    def close(self) -> None:
        self.app.styleHints().colorSchemeChanged.disconnect(self._system_scheme)
        self.train_page.close_page()
        self.train.close()  # a run still going stops at its step and keeps what it learned
        self.chat.stop()
        self.docs.stop()  # the indexing under way ends after its batch; the workers wait for it
        self.compare_page.close_page()
        self.adapters.close()
        self.settings_page.flush()
        self.downloads.close()
        self.window.close()
        self.tool_servers.close()  # before the workers: a tool call waiting in one ends now
        self.workers.close()
        self.docs.close()
        self.engine.shutdown()
        self.store.close()


def run(argv: list[str] | None = None, model: str | None = None) -> int:
    """The desktop app's main loop."""
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("NoMoat")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("nomoat")  # Wayland finds the icon through the launcher's name
    try:
        desktop = DesktopApp(app)  # type: ignore[arg-type]
    except ChatStoreError as exc:
        QMessageBox.critical(None, "NoMoat", str(exc))
        return 1
    desktop.start(model)
    code = app.exec()
    desktop.close()
    return int(code)


