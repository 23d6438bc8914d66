"""`nomoat serve` and `nomoat chat`: the engine from a terminal."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from desktop.client.api import EngineClient, EngineError, StreamEnd
from desktop.client.process import EngineEvent, EngineSupervisor
from desktop.terminal import CommandError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def load_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"n_gpu_layers": args.gpu_layers}
    if args.ctx:
        settings["n_ctx"] = args.ctx
    if args.threads:
        settings["n_threads"] = args.threads
    if args.parallel:
        settings["parallel"] = args.parallel
    return settings


def default_model(requested: str | None) -> str:
    from desktop.core.library import installed_models
    from desktop.core.settings import load_settings as user_settings

    if requested:
        return requested
    wanted = user_settings().default_model
    models = [m for m in installed_models() if m.loadable and m.kind == "chat"]
    if wanted and any(m.id == wanted for m in models):
        return wanted
    if not models:
        raise CommandError("No model is installed. Download one with 'nomoat download ID' "
                           "(see 'nomoat models'), or pass --model PATH.")
    return models[0].id


def start_engine(args: argparse.Namespace) -> EngineSupervisor:
    def report(event: EngineEvent) -> None:
        if event.kind in ("crashed", "restarted", "restart_failed"):
            print(f"nomoat: {event.message}", file=sys.stderr, flush=True)

    supervisor = EngineSupervisor(on_event=report)
    supervisor.start()
    try:
        supervisor.load(default_model(args.model), **load_settings(args))
    except BaseException:
        supervisor.stop()
        raise
    return supervisor


def serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    supervisor = start_engine(args)
    try:
        if args.lora:
            from desktop.client.adapters import apply_lora_args

            apply_lora_args(supervisor.client, args.lora)
        options = {"host": args.host, "port": args.port, "api_key": args.api_key,
                   "cors_origins": args.cors_origin}
        public = supervisor.set_public(True, **options)
        status = supervisor.client.status()
        print(f"NoMoat is serving {status['model']['id']} at {public['base_url']}"
              + (" (API key required)" if args.api_key else ""), flush=True)
        if args.host not in LOCAL_HOSTS:
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


def chat(args: argparse.Namespace) -> int:
    tools: Any = None
    sources: Any = None
    if getattr(args, "docs", None):
        from desktop.terminal.docs import ChatSources

        sources = ChatSources(args.docs)
    if getattr(args, "mcp", None):
        if args.tool_rounds < 1:
            raise CommandError("--tool-rounds must be 1 or more.")
        from desktop.terminal.tool_chat import TerminalTools

        tools = TerminalTools(args.mcp)
    try:
        supervisor = start_engine(args)
    except BaseException:
        for opened in (tools, sources):
            if opened is not None:
                opened.close()
        raise
    model = supervisor.client.status()["model"]["id"]
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict[str, Any]] = []
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
            prompt, hits = system + history, []
            if sources is not None:
                context = supervisor.client.status()["model"].get("context_per_slot", 2048)
                prompt, hits = sources.prompt(supervisor.client, prompt, text, context)
            if tools is not None and tools.session:
                from desktop.terminal.tool_chat import reply_with_tools

                limit = {"max_tokens": args.max_tokens} if args.max_tokens else {}
                added = reply_with_tools(supervisor.client, prompt, tools, limit,
                                         args.tool_rounds, args.tool_choice)
                if added:
                    history.extend(added)
                else:
                    history.pop()
                if sources is not None:
                    sources.show(hits)
                continue
            reply = _reply(supervisor, prompt, args.max_tokens)
            if sources is not None:
                sources.show(hits)
            if reply:
                history.append({"role": "assistant", "content": reply})
            else:
                history.pop()
    finally:
        supervisor.stop()
        for opened in (tools, sources):
            if opened is not None:
                opened.close()
    return 0


def _reply(supervisor: EngineSupervisor, messages: list[dict[str, str]],
           max_tokens: int | None) -> str:
    limit = {"max_tokens": max_tokens} if max_tokens else {}
    text, _ = print_reply(supervisor.client, messages, limit)
    print(flush=True)
    return text


def print_reply(client: EngineClient, messages: list[dict[str, Any]],
                params: dict[str, Any]) -> tuple[str, StreamEnd | None]:
    """Stream a reply to the terminal as it comes; return its text and how it ended. Ctrl+C
    stops it (the text so far is kept)."""
    pieces: list[str] = []
    end: StreamEnd | None = None
    stream = client.chat_stream(messages, **params)
    try:
        for piece in stream:
            if isinstance(piece, StreamEnd):
                end = piece
                continue
            pieces.append(piece)
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        print(" [stopped]", end="")
    except EngineError as exc:
        print(f"\nnomoat: {exc}", file=sys.stderr, flush=True)
    finally:
        stream.close()
    return "".join(pieces), end
