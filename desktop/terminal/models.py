"""`nomoat models | download | search | files | rm | import`: the model library from a terminal."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from desktop.terminal import CommandError


def _gb(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


def models(args: argparse.Namespace) -> int:
    """Installed models with their kind (chat or embedding), facts and memory fit, then the
    catalog's other models."""
    from desktop.core.catalog import load_catalog
    from desktop.core.library import installed_models, memory_fit
    from desktop.core.memory import (
        DEFAULT_CONTEXT,
        EMBEDDING_CONTEXT,
        available_memory,
        check_fit,
        choose_parallel,
        estimate_from_size,
    )
    from desktop.core.settings import load_settings

    settings = load_settings()
    for message in settings.messages:
        print(f"nomoat: {message}", file=sys.stderr)
    free = available_memory()
    installed = installed_models()
    print("Installed:")
    for model in installed:
        if not model.loadable:
            print(f"  {model.id:<34} {_gb(model.size_bytes):>8}  broken: {model.problem}")
            continue
        chosen = settings.model(model.id)
        fit = memory_fit(model, chosen.n_ctx, available=free, parallel=chosen.parallel)
        facts = " ".join(part for part in (model.info.parameters_label if model.info else "",
                                           model.quantization or "") if part)
        note = " (bundled)" if model.bundled else ""
        print(f"  {model.id:<34} {_gb(model.size_bytes):>8}  {model.kind:<9} {facts:<14} "
              f"{fit.verdict if fit else '':<10}{note}")
    catalog = load_catalog(settings.catalog_url, offline=args.offline)
    for warning in catalog.warnings:
        print(f"nomoat: {warning}", file=sys.stderr)
    have = {m.catalog.id for m in installed if m.catalog is not None}
    have |= {m.id for m in installed}
    rest = [entry for entry in catalog.entries if entry.id not in have]
    if rest:
        print("\nCatalog (nomoat download ID):")
    for entry in rest:
        # An embedding model reads one text at a time in a short context of its own.
        embeds = entry.kind == "embedding"
        n_ctx = min(EMBEDDING_CONTEXT if embeds else DEFAULT_CONTEXT, entry.context_length)

        def estimate(slots: int, entry: Any = entry, n_ctx: int = n_ctx) -> Any:
            return estimate_from_size(entry.size_bytes, entry.parameters_count, n_ctx, slots)

        slots = 1 if embeds else choose_parallel(estimate, None, free)
        verdict = check_fit(estimate(slots), free).verdict
        print(f"  {entry.id:<34} {_gb(entry.size_bytes):>8}  {entry.kind:<9} "
              f"{entry.parameters + ' ' + entry.quantization:<14} {verdict:<10} {entry.name}")
    return 0


class ProgressBar:
    """One line that redraws itself on a terminal; a line every 10% elsewhere."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_tenth = -1
        self._shown = False

    def __call__(self, event: Any) -> None:
        from desktop.core.downloads import State, format_bytes

        if event.state in (State.RETRYING, State.PAUSED) and event.message:
            self._line(f"{event.message}", final=True)
            return
        if event.state == State.VERIFYING:
            size = format_bytes(event.total_bytes or event.done_bytes)
            self._line(f"Downloaded {size}; verifying the checksum…", final=True)
            return
        if event.state != State.DOWNLOADING:
            return
        fraction = event.fraction or 0.0
        total = format_bytes(event.total_bytes) if event.total_bytes else "?"
        eta = time.strftime("%M:%S", time.gmtime(event.eta)) if event.eta is not None else "--:--"
        text = (f"[{'#' * int(fraction * 30):<30}] {fraction * 100:5.1f}%  "
                f"{format_bytes(event.done_bytes)} / {total}  "
                f"{format_bytes(event.speed)}/s  ETA {eta}")
        if self.tty:
            self._line(text)
        elif int(fraction * 10) != self._last_tenth:
            self._last_tenth = int(fraction * 10)
            self._line(text, final=True)

    def _line(self, text: str, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            self._shown = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def download(args: argparse.Namespace) -> int:
    from desktop.core.catalog import load_catalog
    from desktop.core.downloads import (
        DownloadError,
        DownloadInterrupted,
        DownloadOptions,
        DownloadRequest,
    )
    from desktop.core.downloads import download as fetch
    from desktop.core.library import installed_models, models_folder
    from desktop.core.settings import load_settings

    settings = load_settings()
    entry = load_catalog(settings.catalog_url, offline=True).get(args.model)
    if entry is not None:
        if any(m.catalog is not None and m.catalog.id == entry.id and m.loadable
               for m in installed_models()):
            print(f"{entry.name} is already installed.")
            return 0
        request = DownloadRequest.of_files(entry.repo_id, entry.files, entry.size_bytes,
                                           entry.sha256)
        label = entry.name
    else:
        try:
            request = DownloadRequest.parse(args.model)
        except ValueError as exc:
            raise CommandError(f"'{args.model}' is neither a catalog model id (see 'nomoat "
                               f"models') nor REPO_ID/FILENAME.gguf: {exc}") from exc
        label = request.key
    options = DownloadOptions(endpoint=settings.hub_endpoint, token=settings.hub_token)
    bar = ProgressBar()
    print(f"Downloading {label}…", file=sys.stderr, flush=True)
    try:
        path = fetch(request, models_folder(settings), options=options, on_event=bar)
    except KeyboardInterrupt:
        bar.close()
        print("nomoat: download interrupted; the bytes fetched so far are kept. Run the same "
              "command again to resume.", file=sys.stderr)
        return 130
    except DownloadInterrupted as exc:
        bar.close()
        raise CommandError(str(exc)) from exc
    except DownloadError as exc:
        bar.close()
        raise CommandError(str(exc)) from exc
    bar.close()
    print(f"Installed {label}: {path}")
    return 0


def search(args: argparse.Namespace) -> int:
    from desktop.core.hub import HubError, search_models
    from desktop.core.settings import load_settings

    settings = load_settings()
    try:
        found = search_models(args.term, sort=args.sort, limit=args.limit,
                              endpoint=settings.hub_endpoint, token=settings.hub_token)
    except HubError as exc:
        raise CommandError(str(exc)) from exc
    if not found:
        print(f"No GGUF models found for '{args.term}'.")
        return 0
    for model in found:
        gated = "  (gated: needs a token)" if model.gated else ""
        print(f"{model.repo_id:<60} {model.downloads:>10,} downloads {model.likes:>7,} likes"
              f"{gated}")
    print("\nList a repo's files with 'nomoat files REPO_ID'.")
    return 0


def files(args: argparse.Namespace) -> int:
    from desktop.core.downloads import format_bytes
    from desktop.core.hub import HubError, list_gguf_files
    from desktop.core.settings import load_settings

    settings = load_settings()
    try:
        found = list_gguf_files(args.repo_id, endpoint=settings.hub_endpoint,
                                token=settings.hub_token)
    except HubError as exc:
        raise CommandError(str(exc)) from exc
    if not found:
        print(f"{args.repo_id} has no GGUF files.")
        return 0
    for item in found:
        shards = f" ({item.shards} parts)" if item.shards > 1 else ""
        size = format_bytes(item.size_bytes) if item.size_bytes else "?"
        print(f"{item.quantization or '?':<10} {size:>10}  {args.repo_id}/{item.filename}"
              f"{shards}")
    print("\nDownload one with 'nomoat download REPO_ID/FILENAME'.")
    return 0


def remove(args: argparse.Namespace) -> int:
    from desktop.core.library import LibraryError, UnknownModel
    from desktop.core.library_changes import remove_model

    try:
        model = remove_model(args.model)
    except (LibraryError, UnknownModel) as exc:
        raise CommandError(str(exc)) from exc
    what = "forgot" if model.registered else "removed"
    print(f"{what.capitalize()} {model.id} ({_gb(model.size_bytes)}).")
    return 0


def import_(args: argparse.Namespace) -> int:
    from desktop.core.library import LibraryError
    from desktop.core.library_changes import import_model

    try:
        model = import_model(args.path, copy=not args.in_place)
    except LibraryError as exc:
        raise CommandError(str(exc)) from exc
    how = "registered where it is" if args.in_place else "copied into the library"
    print(f"Imported {model.id} ({_gb(model.size_bytes)}, {how}).")
    return 0
