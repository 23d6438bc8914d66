"""The public port, held by the app so it stays open while the engine restarts.

The app binds the public listening socket itself and hands a copy to the engine, which serves
the API on it. If the engine dies, the app's copy keeps the port open: new connections are not
refused, and until the restarted engine has its model back and serves the socket again, a
stand-in answers each request with 503 and Retry-After, in OpenAI's error shape.

Handing a socket to another process: the descriptor travels over a Unix socket pair made when
the engine starts (SCM_RIGHTS). Where that is not to be had (Windows), the engine binds the
port itself, as it did before, and the port closes while the engine restarts.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import select
import socket
import sys
import threading

RETRY_AFTER_S = 2
HEAD_LIMIT = 64 * 1024  # bytes of a request the stand-in reads before answering
READ_TIMEOUT_S = 2.0


class ListenError(Exception):
    """The port cannot be opened; the message says why, for the user."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (an IPv6 host takes IPv4 too); OSError if it cannot."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # that say they are TCP, and with it on, every small answer waited ~40 ms for the
    # client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if sys.platform != "win32":  # on Windows it would let another program share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def bind_public(host: str, port: int) -> socket.socket:
    """The public API's listening socket, or ListenError with the reason in words."""
    try:
        return listening_socket(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(f"Port {port} on {host} is already in use by another "
                              "program.") from exc
        raise ListenError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc


def _reply(message: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": "server_error", "param": None,
                                 "code": "engine_restarting"}}).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\n"
            "Connection: close\r\n\r\n").encode()
    return head + body


class StandIn:
    """Answers 503 on the held socket while no engine serves it."""

    def __init__(self, sock: socket.socket, message: str) -> None:
        self._sock = sock
        self._answer = _reply(message)
        self._stop = threading.Event()
        self.answered = 0
        self._thread = threading.Thread(target=self._run, name="public-stand-in", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.1)
            except (OSError, ValueError):  # the socket was closed
                return
            if not ready or self._stop.is_set():
                continue
            try:
                self._sock.setblocking(False)
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # the engine took it first
            except OSError:
                return
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        """Read the request head (so the client has sent it), answer 503, close."""
        with conn:
            conn.setblocking(True)
            conn.settimeout(READ_TIMEOUT_S)
            seen = b""
            try:
                while b"\r\n\r\n" not in seen and len(seen) < HEAD_LIMIT:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    seen += chunk
                conn.sendall(self._answer)
                self.answered += 1
            except OSError:
                pass  # the client went away or was too slow: nothing to answer


class HandOver:
    """The app's end of the channel a listening socket travels to the engine on (POSIX)."""

    def __init__(self) -> None:
        self._ours: socket.socket | None = None
        self.engine_end: socket.socket | None = None
        if hasattr(socket, "send_fds"):
            self._ours, self.engine_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self.engine_end.set_inheritable(True)

    @property
    def available(self) -> bool:
        return self._ours is not None

    def child_fd(self) -> int | None:
        """The descriptor the engine inherits, to name on its command line."""
        return None if self.engine_end is None else self.engine_end.fileno()

    def after_spawn(self) -> None:
        """The engine has its copy: close ours of its end."""
        if self.engine_end is not None:
            self.engine_end.close()
            self.engine_end = None

    def send(self, sock: socket.socket) -> dict[str, str]:
        """Pass *sock* to the engine; returns what the open request carries to name it."""
        assert self._ours is not None
        socket.send_fds(self._ours, [b"S"], [sock.fileno()])
        return {"socket": "passed"}

    def close(self) -> None:
        for end in (self._ours, self.engine_end):
            if end is not None:
                end.close()
        self._ours = self.engine_end = None


def receive(channel: socket.socket | None) -> socket.socket:
    """The engine's side: the listening socket the app passed.

    Should an earlier hand-over have been left unread (its request refused before the engine
    took it), only the newest socket is kept.
    """
    if channel is None:
        raise ListenError("No channel to receive the listening socket on.")
    channel.settimeout(10)
    _, fds, _, _ = socket.recv_fds(channel, 16, 1)
    if not fds:
        raise ListenError("The app did not pass the listening socket.")
    channel.setblocking(False)
    try:
        while True:
            _, more, _, _ = socket.recv_fds(channel, 16, 1)
            if not more:
                break
            os.close(fds[0])
            fds = more
    except (BlockingIOError, InterruptedError):
        pass
    return socket.socket(fileno=fds[0])
