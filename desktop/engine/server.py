"""Listeners: the private one the app talks to, and the public one opened at runtime."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from desktop.core.listening import listening_socket
from desktop.engine.app import create_public_app
from desktop.engine.errors import APIError


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the engine (several run in one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases
        pass


def bind(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on host:port; raises OSError with the system's reason."""
    sock = listening_socket(host, port)
    sock.setblocking(False)
    return sock


def make_server(app: Any) -> QuietServer:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2, ws="none")
    return QuietServer(config)


class PublicListener:
    """The OpenAI API for other programs, opened and closed without touching the model."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        self._server: QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._settings: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        if self._server is None:
            return {"enabled": False}
        host, port = self._settings["host"], self._settings["port"]
        shown = f"[{host}]" if ":" in host else host
        return {"enabled": True, "host": host, "port": port,
                "base_url": f"http://{shown}:{port}/v1",
                "api_key_required": bool(self._settings["api_key"]),
                "cors_origins": self._settings["cors_origins"]}

    async def open(self, host: str, port: int, api_key: str | None,
                   cors_origins: list[str], sock: socket.socket | None = None) -> None:
        """Serve on host:port, or on *sock* when the app holds the port and passed it."""
        await self.close()
        if sock is None:
            try:
                sock = bind(host, port)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    message = f"Port {port} on {host} is already in use by another program."
                else:
                    message = f"Cannot listen on {host}:{port}: {exc.strerror or exc}."
                raise APIError(409, message, code="listen_failed", param="port") from exc
        sock.setblocking(False)
        port = sock.getsockname()[1]
        app = create_public_app(self.engine, api_key, cors_origins, self.log)
        self._server = make_server(app)
        self._settings = {"host": host, "port": port, "api_key": api_key,
                          "cors_origins": list(cors_origins)}
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
