"""`python -m desktop.engine`: start the inference process.

The first line on stdout is a JSON object with the private listener's URL and the launch
token; the parent reads it and talks to the engine over HTTP from then on.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import os
import signal
import sys
import threading
import time

from desktop.core.paths import set_home


def _watch_parent(parent_pid: int) -> None:
    """Exit when the process that started the engine is gone."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        if sys.platform != "win32" and os.getppid() != parent_pid:
            os._exit(0)


async def _serve(host: str, port: int, handover_fd: int | None) -> None:
    from desktop.engine.app import create_private_app
    from desktop.engine.server import PublicListener, bind, make_server
    from desktop.engine.state import Engine

    engine = Engine()
    engine.public = PublicListener(engine)
    if handover_fd is not None:  # where the app passes the public listening socket
        import socket

        engine.handover = socket.socket(fileno=handover_fd)
    sock = bind(host, port)
    server = make_server(create_private_app(engine))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        except (NotImplementedError, RuntimeError):  # Windows
            pass
    bound = sock.getsockname()
    print(json.dumps({"event": "listening", "url": f"http://{host}:{bound[1]}",
                      "token": engine.token, "pid": os.getpid()}), flush=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        await engine.public.close()
        engine.runner.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.engine",
                                     description="NoMoat's inference process.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process ends")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--handover-fd", type=int, default=None,
                        help="a Unix socket the app passes listening sockets on")
    args = parser.parse_args(argv)
    if args.data_dir:
        set_home(args.data_dir)
    faulthandler.enable()  # a native crash leaves the Python stack in the engine log
    from desktop.engine import amx

    amx.keep_out()  # before any model loads (see desktop.engine.amx)
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), name="parent-watch",
                         daemon=True).start()
    try:
        asyncio.run(_serve(args.host, args.port, args.handover_fd))
    except OSError as exc:
        print(f"nomoat engine: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
