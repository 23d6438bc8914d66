"""The public API's port as the app holds it: bound here, served by the engine.

Binding in the app rather than in the engine means the port outlives an engine crash: while
the engine restarts, :class:`desktop.core.listening.StandIn` answers 503 with Retry-After on
it, and the restarted engine is handed the same socket (see desktop.core.listening). Where a
socket cannot be handed over (Windows), the engine binds the port itself.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from desktop.client.api import EngineClient, EngineError
from desktop.core.listening import ListenError, StandIn, bind_public

if TYPE_CHECKING:
    from desktop.client.process import EngineProcess


class PublicPort:
    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        self._stand_in: StandIn | None = None

    def open(self, client: EngineClient, engine: EngineProcess,
             options: dict[str, Any]) -> dict[str, Any]:
        """Bind host:port (or keep the socket bound there) and have *engine* serve it."""
        if not engine.handover.available:  # no way to pass a socket: the engine binds it
            return client.set_public(True, **options)
        host = str(options.get("host", "127.0.0.1"))
        port = int(options.get("port", 4891))
        if self.sock is not None and self.address != (host, port):
            client.set_public(False)  # the engine lets go of the old port first
            self.close()
        fresh = self.sock is None
        if self.sock is None:
            try:
                self.sock = bind_public(host, port)
            except ListenError as exc:
                raise EngineError(str(exc), status=409, code="listen_failed") from None
            self.address = (host, self.sock.getsockname()[1])
        assert self.address is not None
        try:
            passed = engine.handover.send(self.sock)
            return client.set_public(True, **dict(options, port=self.address[1]), **passed)
        except (EngineError, OSError) as exc:
            if fresh:
                self.close()
            if isinstance(exc, OSError):
                raise EngineError(f"The port could not be handed to the engine: {exc}") from exc
            raise

    def stand_in(self, message: str) -> None:
        """Answer 503 on the port until :meth:`end_stand_in` (the engine is down)."""
        if self.sock is not None and self._stand_in is None:
            self._stand_in = StandIn(self.sock, message)

    def end_stand_in(self) -> None:
        if self._stand_in is not None:
            self._stand_in.stop()
            self._stand_in = None

    def close(self) -> None:
        self.end_stand_in()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.address = None
