"""`nomoat docs`: document collections from a terminal (add, list, search, rm), indexed and
searched with an embedding model run by an engine of the command's own."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from desktop.client.api import EngineClient, EngineError
from desktop.client.docs import (
    NoCollection,
    NoEmbeddingModel,
    choose_embedding_model,
    engine_embed,
    find_collection,
)
from desktop.client.process import EngineSupervisor
from desktop.core.docs.indexer import Indexer, IndexProgress, IndexReport
from desktop.core.docs.search import Hit, search
from desktop.core.docs.store import DocStore
from desktop.core.docs.vectors import EmbeddingError
from desktop.terminal import CommandError


def docs(args: argparse.Namespace) -> int:
    """Run the `docs` subcommand *args* names."""
    with DocStore() as store:
        try:
            return {"add": _add, "list": _list, "search": _search, "rm": _remove,
                    "update": _update}[args.docs_command](args, store)
        except (NoCollection, NoEmbeddingModel, EmbeddingError, ValueError) as exc:
            raise CommandError(str(exc)) from exc


@contextmanager
def embedding_engine() -> Iterator[EngineClient]:
    """An engine of this command's own, for embeddings only (no chat model is loaded)."""
    supervisor = EngineSupervisor()
    supervisor.start()
    try:
        yield supervisor.client
    finally:
        supervisor.stop()


def _model(store: DocStore, collection_id: int | None) -> str:
    from desktop.core.library import installed_models
    from desktop.core.settings import load_settings

    indexed = None
    if collection_id is not None:
        models = store.embedding_models(collection_id)
        indexed = list(models)[-1] if models else None
    return choose_embedding_model(installed_models(), load_settings().docs_embedding_model,
                                  indexed)


def _add(args: argparse.Namespace, store: DocStore) -> int:
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise CommandError(f"Not found: {', '.join(missing)}.")
    try:
        collection = find_collection(store, args.name)
    except NoCollection:
        collection = store.create_collection(args.name)
    for path in args.paths:
        store.add_root(collection.id, Path(path).resolve())
    return _index(store, collection.id, args.name)


def _update(args: argparse.Namespace, store: DocStore) -> int:
    return _index(store, find_collection(store, args.name).id, args.name)


def _index(store: DocStore, collection_id: int, name: str) -> int:
    model = _model(store, collection_id)
    with embedding_engine() as client:
        indexer = Indexer(store, engine_embed(client, model), model)
        bar = ProgressLine(name)
        try:
            report = indexer.run(collection_id, bar)
        except KeyboardInterrupt:
            indexer.cancel()
            bar.close()
            print("Stopped; what was indexed is kept. 'nomoat docs update NAME' goes on.",
                  file=sys.stderr)
            return 130
        finally:
            bar.close()
    print(_summary(name, report))
    for record in store.unreadable_files(collection_id):
        print(f"  not readable: {record.path}: {record.error}")
    return 0


def _summary(name: str, report: IndexReport) -> str:
    parts = [f"{count} {what}" for count, what in (
        (report.new, "new"), (report.changed, "changed"), (report.renamed, "renamed"),
        (report.deleted, "removed"), (report.unchanged, "unchanged"),
        (report.unreadable, "not readable")) if count]
    return (f"Indexed {name!r}: {', '.join(parts) or 'no files'}; {report.chunks} passages "
            f"read in {report.seconds:.1f} s.")


class ProgressLine:
    """Indexing progress on one line of the terminal (stderr), redrawn at most 10 times a
    second; plain lines when stderr is not a terminal."""

    def __init__(self, name: str, stream: TextIO = sys.stderr) -> None:
        self.name = name
        self.stream = stream
        self.tty = stream.isatty()
        self._shown = 0.0
        self._width = 0

    def __call__(self, progress: IndexProgress) -> None:
        now = time.monotonic()
        if now - self._shown < (0.1 if self.tty else 2.0) and progress.phase != "done":
            return
        self._shown = now
        left = ("" if progress.seconds_left is None
                else f", about {max(1, round(progress.seconds_left))} s left")
        text = (f"Indexing {self.name}: {progress.files_done}/{progress.files_total} files, "
                f"{progress.chunks} passages{left}")
        if progress.phase == "scanning":
            text = f"Indexing {self.name}: looking through its folders…"
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _list(args: argparse.Namespace, store: DocStore) -> int:
    collections = store.collections()
    if not collections:
        print("No collections yet. Make one with: nomoat docs add NAME FOLDER")
        return 0
    for collection in collections:
        models = ", ".join(store.embedding_models(collection.id)) or "none yet"
        print(f"{collection.name}: {collection.files} files, {collection.chunks} passages, "
              f"{collection.unreadable} not readable; {collection.state}; model {models}")
        for root in collection.roots:
            print(f"  {root}")
    return 0


def _search(args: argparse.Namespace, store: DocStore) -> int:
    if not 1 <= args.top <= 100:
        raise CommandError("--top must be from 1 to 100.")
    collection = find_collection(store, args.name)
    models = store.embedding_models(collection.id)
    model = list(models)[-1] if models else None
    if model is None:
        hits = search(store, collection.id, args.question, None, args.top)
    else:
        with embedding_engine() as client:
            try:
                hits = search(store, collection.id, args.question,
                              engine_embed(client, model, query=True), args.top, model_id=model)
            except EngineError as exc:
                raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps([hit.as_json() for hit in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("Nothing matches.")
    for number, hit in enumerate(hits, start=1):
        where = hit.path + (f", page {hit.page}" if hit.page is not None else "")
        heading = f" — {hit.heading}" if hit.heading else ""
        print(f"[{number}] {where}{heading} (score {hit.score:.4f})")
        snippet = " ".join(hit.text.split())
        print(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
    return 0


class ChatSources:
    """`nomoat chat --docs NAME`: each question gets the passages of the collections that best
    answer it, and the reply is followed by the list of them."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.store = DocStore().open()
        try:
            for name in names:
                find_collection(self.store, name)
        except NoCollection as exc:
            self.store.close()
            raise CommandError(str(exc)) from exc

    def close(self) -> None:
        self.store.close()

    def prompt(self, client: EngineClient, messages: list[dict[str, Any]], question: str,
               context: int) -> tuple[list[dict[str, Any]], list[Hit]]:
        """*messages* with the passages for *question* put before its last message, and the
        passages; on failure, *messages* as they were and a line on stderr saying why."""
        from desktop.client.docs import retrieve, sources_budget
        from desktop.core.docs.search import ask_with_sources, prompt_with_sources

        try:
            hits = retrieve(client, self.store, self.names, question, sources_budget(context))
        except (NoCollection, EmbeddingError, EngineError) as exc:
            print(f"nomoat: the documents were not searched: {exc}", file=sys.stderr)
            return messages, []
        if not hits:
            return messages, []
        return ask_with_sources(messages, prompt_with_sources(hits)), hits

    @staticmethod
    def show(hits: list[Hit]) -> None:
        if hits:
            print("Sources:")
        for number, hit in enumerate(hits, start=1):
            where = hit.path + (f", page {hit.page}" if hit.page is not None else "")
            print(f"  [{number}] {where}" + (f" — {hit.heading}" if hit.heading else ""))


def _remove(args: argparse.Namespace, store: DocStore) -> int:
    collection = find_collection(store, args.name)
    store.delete_collection(collection.id)
    print(f"Deleted the collection {args.name!r} (its files were not touched).")
    return 0
