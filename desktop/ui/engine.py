"""The window's handle on the engine: start it, follow its health, report in plain words."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.client.api import EngineClient, EngineError
from desktop.client.process import EngineEvent, EngineSupervisor
from desktop.ui.workers import Workers


class EngineController(QObject):
    """Owns the supervised engine process; everything else asks it for a client."""

    #: state ("starting", "ready", "crashed", "failed", "stopped"), message in plain words
    stateChanged = Signal(str, str)
    #: the engine's /control/status, or {} when it cannot be read
    statusChanged = Signal(dict)
    _event = Signal(object)

    def __init__(self, workers: Workers, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.state = "stopped"
        self.message = ""
        self.status: dict[str, Any] = {}
        self.remote: EngineClient | None = None
        self.remote_contexts: dict[str, int] = {}  # model id → context, as the server says
        self._supervisor = EngineSupervisor(on_event=self._event.emit)
        self._event.connect(self._on_event)
        self._poll = QTimer(self)
        self._poll.setInterval(2000)
        self._poll.timeout.connect(self.refresh_status)
        self._polling = False

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        """Start the engine (and load *model*) off the GUI thread."""
        self._set_state("starting", "Starting the engine…")

        def work() -> None:
            self._supervisor.start()
            if model:
                self._supervisor.load(model, **(settings or {}))

        self.workers.submit(work, on_done=lambda _: self._started(),
                            on_error=self._start_failed)

    def _started(self) -> None:
        self._set_state("ready", "The engine is ready.")
        self._poll.start()
        self.refresh_status()

    def _start_failed(self, exc: Exception) -> None:
        if isinstance(exc, EngineError) and self._supervisor.pid is not None:
            # The engine runs, but the model did not load: say so and keep the engine.
            self._set_state("ready", str(exc))
            self._poll.start()
            self.refresh_status()
            return
        self._set_state("failed", f"The engine could not start: {exc}")

    def restart(self) -> None:
        """Stop and start the engine again, then load the model it had."""
        model = self._supervisor.model
        self._set_state("starting", "Restarting the engine…")

        def work() -> None:
            self._supervisor.stop()
            self._supervisor.start()
            if model is not None:
                self._supervisor.load(model[0], **model[1])

        self.workers.submit(work, on_done=lambda _: self._started(),
                            on_error=self._start_failed)

    def shutdown(self) -> None:
        self._poll.stop()
        if self.remote is not None:
            self.remote.close()
            self.remote = None
        self._supervisor.stop()

    @property
    def pid(self) -> int | None:
        return self._supervisor.pid

    @property
    def supervisor(self) -> EngineSupervisor:
        return self._supervisor

    # -- requests --------------------------------------------------------------------------------
    def chat_client(self) -> EngineClient:
        """The client replies come from: a remote server if one is set, else the local engine."""
        return self.remote if self.remote is not None else self._supervisor.client

    def set_remote(self, base_url: str | None, api_key: str | None = None) -> None:
        if self.remote is not None:
            self.remote.close()
        self.remote = EngineClient(base_url, api_key, name="server") if base_url else None
        self.remote_contexts = {}

    def context_for(self, model: str | None) -> int | None:
        """The context a reply with *model* has, in tokens, where it is known: the loaded
        model's here, or what the server elsewhere said of it."""
        if self.remote is not None:
            return self.remote_contexts.get(model or "")
        loaded = self.status.get("model") or {}
        return loaded.get("context_per_slot")

    def load_model(self, model: str, settings: dict[str, Any],
                   on_done: Callable[[Any], None] | None = None,
                   on_error: Callable[[Exception], None] | None = None) -> None:
        settings = dict(settings)
        self.workers.submit(lambda: self._supervisor.load(model, **settings), on_done=on_done,
                            on_error=on_error)

    def set_public(self, enabled: bool, options: dict[str, Any],
                   on_done: Callable[[Any], None] | None = None,
                   on_error: Callable[[Exception], None] | None = None) -> None:
        options = dict(options)
        self.workers.submit(lambda: self._supervisor.set_public(enabled, **options),
                            on_done=on_done, on_error=on_error)

    def refresh_status(self) -> None:
        if self._polling or self.state not in ("ready",):
            return
        self._polling = True
        self.workers.submit(lambda: self._supervisor.client.status(),
                            on_done=self._got_status, on_error=self._no_status)

    def _got_status(self, status: dict[str, Any]) -> None:
        self._polling = False
        self.status = status
        self.statusChanged.emit(status)

    def _no_status(self, _exc: Exception) -> None:
        self._polling = False
        self.status = {}
        self.statusChanged.emit({})

    # -- events from the supervisor's watch thread -------------------------------------------------
    def _on_event(self, event: EngineEvent) -> None:
        if event.kind == "crashed":
            self._set_state("crashed", event.message)
        elif event.kind == "restarted":
            self._set_state("ready", event.message)
            self.refresh_status()
        elif event.kind == "restart_failed":
            self._set_state("failed", event.message)

    def _set_state(self, state: str, message: str) -> None:
        self.state = state
        self.message = message
        self.stateChanged.emit(state, message)
