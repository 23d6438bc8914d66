"""The listening sockets the app and the engine serve on: connections to them send small
answers at once (TCP_NODELAY), instead of waiting for the client's delayed acknowledgement."""

from __future__ import annotations

import asyncio
import socket

from desktop.core.listening import listening_socket


def test_connections_accepted_by_asyncio_have_nagle_off() -> None:
    seen: list[int] = []

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            await writer.wait_closed()

        listener = listening_socket("127.0.0.1", 0)
        server = await asyncio.start_server(handle, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.read()
            writer.close()
            await writer.wait_closed()

    asyncio.run(main())
    assert seen and seen[0] != 0
