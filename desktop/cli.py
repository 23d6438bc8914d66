"""The `nomoat` command: argument parsing only; the work is in desktop/terminal and desktop/ui."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from desktop import __version__
from desktop.core.memory import DEFAULT_PARALLEL, MAX_PARALLEL
from desktop.core.paths import set_home


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nomoat", description="Run open language models on your own computer.")
    parser.add_argument("--version", action="version", version=f"NoMoat {__version__}")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="keep models, chats, settings and logs under DIR "
                             "(also: NOMOAT_HOME)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    app = commands.add_parser("app", help="open the desktop window (the default)")
    app.add_argument("--model", metavar="ID|PATH", help="model to load at start")

    chat = commands.add_parser("chat", help="chat with a model in the terminal")
    chat.add_argument("--model", metavar="ID|PATH", help="model to chat with (default: starter)")
    chat.add_argument("--system", metavar="TEXT", help="system prompt")
    chat.add_argument("--max-tokens", type=int, default=None, metavar="N",
                      help="longest reply in tokens (default: until the model stops)")
    chat.add_argument("--mcp", action="append", metavar="NAME",
                      help="let the model call the tools of this MCP server from mcp.json "
                           "(asks y/N before each call; repeat for more servers)")
    chat.add_argument("--tool-choice", choices=("auto", "required"), default="auto",
                      help="with --mcp: 'required' makes the first round of every reply call "
                           "a tool (default: auto, the model decides)")
    chat.add_argument("--tool-rounds", type=int, default=8, metavar="N",
                      help="with --mcp: rounds of tool calls one reply may make (default 8)")
    chat.add_argument("--docs", action="append", metavar="NAME",
                      help="answer from this document collection (see 'nomoat docs'; "
                           "repeatable), citing the passages used")
    _add_load_options(chat)

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
    serve.add_argument("--lora", metavar="PATH[:SCALE]", action="append", default=[],
                       help="apply a GGUF LoRA adapter at SCALE (default 1); repeatable, "
                            "stacked in order")
    _add_load_options(serve)

    models = commands.add_parser("models", help="installed models and the catalog, with fit")
    models.add_argument("--offline", action="store_true",
                        help="do not fetch the remote catalog")

    download = commands.add_parser("download", help="download a model from the catalog or hub")
    download.add_argument("model", metavar="ID|REPO_ID/FILENAME")

    search = commands.add_parser("search", help="search the hub for GGUF models")
    search.add_argument("term")
    search.add_argument("--sort", choices=("downloads", "likes"), default="downloads")
    search.add_argument("--limit", type=int, default=20)

    files = commands.add_parser("files", help="list the GGUF files of a hub repo")
    files.add_argument("repo_id", metavar="REPO_ID")

    remove = commands.add_parser("rm", help="remove an installed model")
    remove.add_argument("model", metavar="ID")

    _add_docs_parsers(commands)
    _add_train_parser(commands)

    imported = commands.add_parser("import", help="add a local .gguf file to the library")
    imported.add_argument("path", metavar="PATH")
    imported.add_argument("--in-place", action="store_true",
                          help="register the file where it is instead of copying it")
    return parser


def _add_docs_parsers(commands: Any) -> None:
    docs = commands.add_parser("docs", help="collections of your documents, for the chat")
    sub = docs.add_subparsers(dest="docs_command", metavar="SUBCOMMAND", required=True)
    add = sub.add_parser("add", help="add folders or files to a collection and index them "
                                     "(made if new; waits until done)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("paths", metavar="PATH", nargs="+")
    sub.add_parser("list", help="the collections, their folders and what they hold")
    find = sub.add_parser("search", help="the passages of a collection that best match")
    find.add_argument("name", metavar="NAME")
    find.add_argument("question")
    find.add_argument("--top", type=int, default=5, metavar="K", help="how many (default 5)")
    find.add_argument("--json", action="store_true", help="print JSON")
    remove = sub.add_parser("rm", help="delete a collection's index (your files stay)")
    remove.add_argument("name", metavar="NAME")
    update = sub.add_parser("update", help="index a collection again: only what changed")
    update.add_argument("name", metavar="NAME")


def _add_train_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train", help="train a LoRA adapter on your examples (needs the train extra)",
        description="Train a LoRA adapter on a JSONL or CSV file of examples and add it to the "
                    "adapter library. Ctrl-C stops and keeps a checkpoint; --resume goes on.")
    train.add_argument("--base", metavar="MODEL", help="installed model id or GGUF path")
    train.add_argument("--data", metavar="FILE", help="examples: .jsonl (chat messages or "
                                                      "prompt/response) or .csv (two columns)")
    train.add_argument("--out", metavar="NAME", required=True,
                       help="the adapter's name in the library")
    train.add_argument("--preset", choices=("quick", "careful"), default="quick",
                       help="quick: rank 8 on q/v, 2 epochs; careful: rank 16 on every "
                            "projection, 3 epochs (default quick)")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, metavar="N", help="train this many steps")
    length.add_argument("--epochs", type=float, metavar="N", help="passes over the data")
    train.add_argument("--rank", type=int, metavar="R", help="LoRA rank")
    train.add_argument("--alpha", type=float, metavar="A", help="LoRA alpha")
    train.add_argument("--targets", metavar="LIST", help="modules to adapt, e.g. q_proj,v_proj")
    train.add_argument("--lr", type=float, metavar="RATE", help="learning rate")
    train.add_argument("--max-length", type=int, metavar="N",
                       help="longest example in tokens; longer ones are skipped")
    train.add_argument("--batch-size", type=int, metavar="N", help="examples per step")
    train.add_argument("--threads", type=int, metavar="T",
                       help="CPU threads (default: one per physical core)")
    train.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="save a checkpoint every N steps (default 10)")
    train.add_argument("--resume", action="store_true",
                       help="go on with the stopped training called NAME from its checkpoint")
    train.add_argument("--restart", action="store_true",
                       help="start over, replacing a stopped training called NAME")


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ctx", type=int, default=None, metavar="N",
                        help="context length in tokens (default: up to 4096)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="llama.cpp threads (default: one per physical core)")
    parser.add_argument("--gpu-layers", type=int, default=0, metavar="N")
    parser.add_argument("--parallel", type=_parallel, default=None, metavar="N",
                        help="replies written at once, each with a context of its own "
                             f"(default: {DEFAULT_PARALLEL}, or fewer if memory is short)")


def _parallel(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 1 <= value <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"give a number from 1 to {MAX_PARALLEL}")
    return value


def _has_display() -> bool:
    """Whether a window can be shown: a display, or a Qt platform chosen on purpose."""
    if os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _app(args: argparse.Namespace) -> int:
    if not _has_display():
        print("nomoat: no display found, so starting the terminal chat instead of the window.",
              file=sys.stderr)
        from desktop.terminal.engine import chat

        chat_args = ["chat"] + (["--model", args.model] if args.model else [])
        return chat(_parser().parse_args(chat_args))
    from desktop.ui.app import run

    return run(model=args.model)


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    if command == "docs":
        from desktop.terminal.docs import docs

        return docs
    if command == "train":
        from desktop.terminal.train import train

        return train
    from desktop.terminal import engine, models

    return {"app": _app, "chat": engine.chat, "serve": engine.serve, "models": models.models,
            "download": models.download, "search": models.search, "files": models.files,
            "rm": models.remove, "import": models.import_}[command]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--engine"]:  # the frozen app starts its engine this way
        from desktop.engine.__main__ import main as engine_main

        return engine_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.data_dir:
        set_home(args.data_dir)
    if args.command is None:
        args = _parser().parse_args([*argv, "app"])
    if args.command != "app":  # the window does this itself, to show what happened
        from desktop.core.datafolder import open_data_folder

        for message in open_data_folder():
            print(f"nomoat: {message}", file=sys.stderr)
    from desktop.client.api import EngineError
    from desktop.terminal import CommandError

    try:
        return _handler(args.command)(args)
    except (CommandError, EngineError) as exc:
        print(f"nomoat: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
