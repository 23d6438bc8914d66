"""The ASGI layer in front of every listener: body size limit, API key, request log.

A plain ASGI wrapper rather than a Starlette middleware, so streamed replies pass through
untouched and a client's disconnect still reaches the route.
"""

from __future__ import annotations

import collections
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 16 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


def _error(status: int, message: str, code: str, type_: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None,
                                 "code": code}}).encode()


class Gate:
    def __init__(self, app: Any, api_key: str | None, open_paths: set[str] | None = None,
                 log: collections.deque[dict[str, Any]] | None = None,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.open_paths = open_paths or set()
        self.log = log
        self.max_body = max_body

    async def _reply(self, send: Send, status: int, body: bytes,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())] + (extra or [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: Scope) -> bool:
        if self.api_key is None or scope["path"] in self.open_paths:
            return True
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(),
                                                                           self.api_key)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_seen: list[int] = []

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
            await send(message)

        try:
            await self._handle(scope, receive, tracking_send)
        finally:
            if self.log is not None and scope["path"] != "/health":
                self.log.append({
                    "time": time.time(),
                    "method": scope["method"],
                    "route": scope["path"],
                    "status": status_seen[0] if status_seen else 499,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "tokens": scope.get("state", {}).get("tokens"),
                })

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope):
            await self._reply(
                send, 401,
                _error(401, "Missing or wrong API key: send 'Authorization: Bearer KEY'.",
                       "invalid_api_key"),
                [(b"www-authenticate", b"Bearer")])
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        too_large = _error(413, f"The request body is larger than {self.max_body:,} bytes.",
                           "request_too_large")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._reply(send, 413, too_large)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        scope.setdefault("state", {})
        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await self._reply(send, 413, too_large)
