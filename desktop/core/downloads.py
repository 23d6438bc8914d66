"""Download GGUF models from the Hugging Face hub, or a mirror of it, into the models folder.

huggingface_hub does the HTTP work: ``get_hf_file_metadata`` asks the hub where a file lives and
what it is (commit, LFS sha256, size, CDN address), ``build_hf_headers`` adds the token, and the
body streams through ``get_session()``, the library's shared client (which honours proxies from
the environment, a custom client factory, HF_HUB_OFFLINE). ``hf_hub_download`` is not used for
the transfer itself because in huggingface_hub 1.x it writes into a temporary name unique to
each call and deletes it on any error (and a killed process leaves it orphaned), so an
interrupted download always starts again from byte 0. Here a file is fetched into
``<models>/<owner>/<repo>/<filename>.part`` next to a ``.part.json`` note of what the bytes
belong to (commit, ETag, size); bytes are written as they arrive, so after a pause, a crash or
SIGKILL the next run asks for the rest with an HTTP Range request and fetches nothing twice.

A file counts as installed only once it is complete, its sha256 matches (the caller's value,
else the hub's LFS sha256) and it has been renamed to its final name; the sha256 is computed
while the bytes arrive, so verifying costs no second pass over the file (a resumed download
reads the bytes it already had once). The shards of a split model are renamed into place only
when all of them are verified, the first shard (the one llama.cpp opens) last.

:func:`download` does one request in the calling thread (what the CLI uses); a
:class:`~desktop.core.download_manager.DownloadManager` runs several in worker threads with a
limit and a queue (the GUI). What a download is, its events and its errors are in
:mod:`desktop.core.download_types`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

from desktop.core.download_types import (
    NOTE,
    PART,
    AlreadyDownloading,
    ChecksumMismatch,
    ConnectionLost,
    DiskFull,
    DownloadCancelled,
    DownloadControl,
    DownloadError,
    DownloadEvent,
    DownloadInterrupted,
    DownloadOptions,
    DownloadPaused,
    DownloadRequest,
    EventCallback,
    HubAccessError,
    NotEnoughSpace,
    RemoteFile,
    RemoteFileNotFound,
    State,
    destination,
    discard_partial,
    format_bytes,
    partial_files,
    shard_names,
    shard_position,
)
from desktop.core.part_files import continues_at, hash_prefix, locked_part, raise_for_status
from desktop.core.paths import get_paths

__all__ = [
    "EventCallback",
    "RemoteFile",
    "DownloadRequest",
    "destination",
    "shard_position",
    "shard_names",
    "partial_files",
    "discard_partial",
    "DownloadOptions",
    "State",
    "DownloadEvent",
    "DownloadError",
    "HubAccessError",
    "RemoteFileNotFound",
    "NotEnoughSpace",
    "DiskFull",
    "ChecksumMismatch",
    "ConnectionLost",
    "AlreadyDownloading",
    "DownloadInterrupted",
    "DownloadPaused",
    "DownloadCancelled",
    "DownloadControl",
    "format_bytes",
    "PART",
    "NOTE",
    "download",
]

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_T = TypeVar("_T")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")


# --- the download -------------------------------------------------------------------------

@dataclass
class _Remote:
    """What the hub says about one file, and where its download stands on disk."""

    spec: RemoteFile
    target: Path
    url: str
    etag: str
    commit: str
    size: int | None
    checksum: tuple[str, str]  # ("sha256" | "git-sha1", hex digest)
    checksum_source: str  # "the catalog" / "the hub", for messages
    hub_url: str  # the /resolve/ address the hub answers for this file
    done: int = 0
    finished: bool = False

    @property
    def part(self) -> Path:
        return self.target.with_name(self.target.name + PART)

    @property
    def note(self) -> Path:
        return self.target.with_name(self.target.name + NOTE)


class _Retry(Exception):
    """A transient failure: wait and try again from where the file stands."""

    def __init__(self, message: str, refresh: bool = False) -> None:
        super().__init__(message)
        self.refresh = refresh  # ask the hub again for the file's address (it may have expired)


class _Meter:
    """Turns bytes into events: speed over a sliding window, ETA, at most a few per second."""

    def __init__(self, key: str, total: int | None, emit: EventCallback, interval: float) -> None:
        self.key, self.total, self.emit, self.interval = key, total, emit, interval
        self.done = 0
        self.filename = ""
        self._samples: deque[tuple[float, int]] = deque()
        self._last = 0.0

    def speed(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def event(self, state: State, message: str = "", path: Path | None = None) -> DownloadEvent:
        speed = self.speed()
        eta = (self.total - self.done) / speed if self.total is not None and speed > 0 else None
        return DownloadEvent(self.key, state, self.done, self.total, speed, eta, self.filename,
                             message, path)

    def state(self, state: State, message: str = "", path: Path | None = None) -> None:
        self.emit(self.event(state, message, path))

    def reset_speed(self) -> None:
        self._samples.clear()

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if not self._samples or now - self._samples[-1][0] >= 0.05:
            self._samples.append((now, self.done))
            while len(self._samples) > 2 and now - self._samples[0][0] > 5.0:
                self._samples.popleft()
        if now - self._last >= self.interval:
            self._last = now
            self.emit(self.event(State.DOWNLOADING))


def download(request: DownloadRequest, models_dir: Path | None = None, *,
             options: DownloadOptions | None = None, on_event: EventCallback | None = None,
             control: DownloadControl | None = None) -> Path:
    """Download *request* into *models_dir* (default: the models folder); return the model path.

    Blocks until done. Resumes what an earlier, interrupted download left. Events go to
    *on_event* from this thread. Raises a DownloadError (its text is the message for the user),
    DownloadPaused (bytes kept) or DownloadCancelled (unfinished files deleted). On
    KeyboardInterrupt the bytes fetched so far stay on disk for a later resume.
    """
    options = options or DownloadOptions()
    control = control or DownloadControl()
    folder = Path(models_dir) if models_dir is not None else get_paths().models
    meter = _Meter(request.key, request.size_bytes, on_event or (lambda event: None),
                   options.progress_interval)
    try:
        meter.state(State.STARTING)
        path = _Download(request, folder, options, control, meter).run()
    except DownloadPaused:
        meter.state(State.PAUSED, "Paused; the bytes fetched so far are kept.")
        raise
    except DownloadCancelled:
        discard_partial(request, folder)
        meter.state(State.CANCELLED, "Cancelled; the unfinished download was deleted.")
        raise
    except DownloadError as error:
        meter.state(State.FAILED, str(error))
        raise
    except OSError as error:
        if error.errno is None:  # not a file system error (huggingface_hub's HTTP errors are)
            raise
        failure: DownloadError
        if error.errno in _NO_SPACE:
            failure = _disk_full(error, folder, f"{request.key} could not be saved")
        else:
            failure = DownloadError(f"Could not save {request.key} in {folder}: "
                                    f"{error.strerror or error}. Check that the models folder "
                                    "exists and can be written to.")
        meter.state(State.FAILED, str(failure))
        raise failure from error
    meter.state(State.DONE, path=path)
    return path


class _Download:
    """One run of :func:`download`."""

    def __init__(self, request: DownloadRequest, folder: Path, options: DownloadOptions,
                 control: DownloadControl, meter: _Meter) -> None:
        self.request, self.folder, self.options = request, folder, options
        self.control, self.meter = control, meter
        self.endpoint = options.resolved_endpoint()
        self.host = urlsplit(self.endpoint).netloc or self.endpoint
        self._hub_sha256: dict[str, str] | None = None

    def run(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        remotes: list[_Remote] = []
        revision = self.request.revision
        for spec in self.request.files:
            remote = self._with_retries(partial(self._describe, spec, revision), None)
            revision = remote.commit  # every shard from the same commit
            remotes.append(remote)
        sizes = [r.size for r in remotes]
        self.meter.total = None if None in sizes else sum(s or 0 for s in sizes)
        expected = self.request.total_bytes
        if expected is not None and self.meter.total not in (None, expected):
            raise DownloadError(
                f"{self.request.key} on the hub is {format_bytes(self.meter.total or 0)}, not "
                f"the {format_bytes(expected)} the catalog expects, so it is not the model the "
                "catalog describes. Update the catalog, or download it by name from Explore.")
        self.meter.done = sum(r.done for r in remotes)
        self._check_space(remotes)
        for remote in remotes:
            if not remote.finished:
                self._with_retries(partial(self._fetch, remote), remote)
        # The entry point (first shard) goes last: the model appears only when all of it is in.
        for remote in reversed(remotes):
            if remote.part.exists():
                os.replace(remote.part, remote.target)
            remote.note.unlink(missing_ok=True)
        return remotes[0].target

    # --- asking the hub -----------------------------------------------------------------

    def _describe(self, spec: RemoteFile, revision: str) -> _Remote:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        try:
            url = hf_hub_url(self.request.repo_id, spec.filename, revision=revision,
                             endpoint=self.endpoint)
            meta = get_hf_file_metadata(url, token=self.options.token,
                                        timeout=self.options.connect_timeout,
                                        endpoint=self.endpoint)
        except Exception as error:
            raise self._explain(error, spec.filename) from error
        if not meta.commit_hash or not meta.etag:
            raise DownloadError(f"{self.host} did not answer like a Hugging Face hub (no commit "
                                "or ETag for the file). Check the hub address (mirror) setting.")
        if spec.size_bytes is not None and meta.size is not None \
                and meta.size != spec.size_bytes:
            raise DownloadError(
                f"{spec.filename} on the hub is {format_bytes(meta.size)}, not the "
                f"{format_bytes(spec.size_bytes)} the catalog expects, so it is not the file the "
                "catalog describes. Update the catalog, or download it by name from Explore.")
        checksum, source = self._checksum(spec, meta.etag, revision)
        target = destination(self.request.repo_id, spec.filename, self.folder)
        remote = _Remote(spec, target, meta.location, meta.etag, meta.commit_hash, meta.size,
                         checksum, source, url)
        self._load_progress(remote)
        return remote

    def _checksum(self, spec: RemoteFile, etag: str, revision: str) -> tuple[tuple[str, str], str]:
        if spec.sha256:
            return ("sha256", spec.sha256.lower()), "the catalog"
        if _SHA256.match(etag):  # an LFS file: the hub's ETag is its sha256
            return ("sha256", etag), "the hub"
        listed = self._listed_sha256(revision).get(spec.filename)
        if listed:
            return ("sha256", listed), "the hub"
        if _GIT_SHA1.match(etag):  # a small file kept in git: the ETag is its git blob id
            return ("git-sha1", etag), "the hub"
        raise DownloadError(f"The hub gives no checksum for {spec.filename}, so it cannot be "
                            "verified and was not downloaded.")

    def _listed_sha256(self, revision: str) -> dict[str, str]:
        if self._hub_sha256 is None:
            from huggingface_hub import HfApi

            try:
                info = HfApi(endpoint=self.endpoint, token=self.options.token).model_info(
                    self.request.repo_id, revision=revision, files_metadata=True,
                    timeout=self.options.connect_timeout)
            except Exception as error:
                raise self._explain(error, self.request.files[0].filename) from error
            self._hub_sha256 = {s.rfilename: s.lfs.sha256 for s in info.siblings or [] if s.lfs}
        return self._hub_sha256

    def _explain(self, error: BaseException, filename: str) -> Exception:
        """A huggingface_hub or httpx error as a retry or a message in plain words."""
        import httpx
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        repo = self.request.repo_id
        if isinstance(error, GatedRepoError):
            return HubAccessError(
                f"{repo} is a gated model: open {self.endpoint}/{repo}, sign in and accept its "
                "terms, then set your Hugging Face token (the hub token setting or HF_TOKEN) and "
                "try again.")
        if isinstance(error, RemoteEntryNotFoundError):
            return RemoteFileNotFound(f"The repo {repo} has no file '{filename}'. Check the "
                                      "name; Explore lists the GGUF files of a repo.")
        if isinstance(error, RevisionNotFoundError):
            return HubAccessError(f"The repo {repo} has no revision "
                                  f"'{self.request.revision}'.")
        if isinstance(error, RepositoryNotFoundError):
            return HubAccessError(f"{self.host} has no model repo '{repo}', or it is private and "
                                  "your token (if any) has no access to it. Check the name.")
        if isinstance(error, OfflineModeIsEnabled):
            return DownloadError("Hub access is switched off because HF_HUB_OFFLINE is set; "
                                 "unset it to download.")
        if isinstance(error, HfHubHTTPError):
            status = error.response.status_code
            if status in _RETRY_STATUS:
                return _Retry(f"the hub answered {status}", refresh=True)
            if status in (401, 403):
                return HubAccessError(f"{self.host} refused access to {repo} ({status}): check "
                                      "your Hugging Face token (the hub token setting or "
                                      "HF_TOKEN).")
            return DownloadError(f"{self.host} refused {filename} ({status}).")
        if isinstance(error, httpx.ProxyError):
            return DownloadError(f"The proxy refused the connection to {self.host}: {error}. "
                                 "Check the HTTPS_PROXY / HTTP_PROXY settings.")
        if isinstance(error, httpx.ConnectTimeout):
            return _Retry(f"{self.host} did not answer within "
                          f"{self.options.connect_timeout:g} s")
        if isinstance(error, httpx.TimeoutException):
            return _Retry(f"no data from {self.host} for {self.options.stall_timeout:g} s")
        if isinstance(error, httpx.TransportError):
            return _Retry(f"the connection to {self.host} failed ({error or type(error).__name__})")
        if isinstance(error, (DownloadError, DownloadInterrupted, _Retry)):
            return error
        return DownloadError(f"Downloading {filename} failed: {error}")

    # --- progress on disk ---------------------------------------------------------------

    def _load_progress(self, remote: _Remote) -> None:
        """Pick up where an earlier run stopped, if its bytes belong to this very file."""
        if remote.target.is_file() and remote.size == remote.target.stat().st_size \
                and not remote.part.exists():
            remote.done, remote.finished = remote.target.stat().st_size, True  # installed
            return
        try:
            note = json.loads(remote.note.read_text(encoding="utf-8"))
            size = remote.part.stat().st_size
        except (OSError, ValueError):
            note, size = {}, 0
        same = (note.get("etag") == remote.etag and note.get("checksum") == list(remote.checksum)
                and (remote.size is None or size <= remote.size))
        if not same:
            remote.part.unlink(missing_ok=True)
            remote.note.unlink(missing_ok=True)
            return
        remote.done = size
        remote.finished = bool(note.get("verified")) and size == remote.size

    def _write_note(self, remote: _Remote, verified: bool = False) -> None:
        note = {"repo_id": self.request.repo_id, "filename": remote.spec.filename,
                "commit": remote.commit, "etag": remote.etag, "size": remote.size,
                "checksum": list(remote.checksum), "verified": verified}
        remote.note.write_text(json.dumps(note), encoding="utf-8")

    def _check_space(self, remotes: list[_Remote]) -> None:
        needed = sum((r.size or 0) - r.done for r in remotes if not r.finished)
        free = shutil.disk_usage(self.folder).free
        if needed + self.options.space_margin > free:
            name = self.request.files[0].filename
            raise NotEnoughSpace(
                f"Not enough free space for {name}: it needs {format_bytes(needed)} more, plus "
                f"{format_bytes(self.options.space_margin)} to spare, but {self.folder} has only "
                f"{format_bytes(free)} free. Free some space or choose another models folder.")

    # --- retries ------------------------------------------------------------------------

    def _with_retries(self, attempt: Callable[[], _T], remote: _Remote | None) -> _T:
        failures = 0
        while True:
            self.control.check()
            before = remote.done if remote is not None else 0
            try:
                return attempt()
            except _Retry as retry:
                progressed = remote is not None and remote.done > before
                failures = 1 if progressed else failures + 1
                if failures > self.options.retries:
                    where = (f" after {format_bytes(remote.done)} of "
                             f"{format_bytes(remote.size or 0)}" if remote and remote.done else "")
                    raise ConnectionLost(
                        f"Gave up on {self.request.key}{where}: {retry} ({failures} tries in a "
                        "row). Check your internet connection or proxy, then download again; "
                        "the bytes fetched so far are kept.") from None
                if retry.refresh and remote is not None:
                    self._refresh(remote)
                wait = min(self.options.max_retry_wait,
                           self.options.retry_wait * 2 ** (failures - 1))
                self.meter.reset_speed()
                self.meter.state(State.RETRYING, f"Retrying in {wait:.3g} s ({failures} of "
                                 f"{self.options.retries}): {retry}.")
                self.control.sleep(wait)

    def _refresh(self, remote: _Remote) -> None:
        """Ask the hub again for the file's address; a signed CDN address can expire."""
        try:
            fresh = self._describe(remote.spec, remote.commit)
        except _Retry:
            return
        if fresh.etag != remote.etag:
            raise DownloadError(f"{remote.spec.filename} changed on the hub during the download; "
                                "start it again.")
        remote.url = fresh.url

    # --- the transfer -------------------------------------------------------------------

    def _fetch(self, remote: _Remote) -> None:
        import httpx
        from huggingface_hub import get_session
        from huggingface_hub.utils import build_hf_headers

        self.meter.filename = remote.spec.filename
        remote.target.parent.mkdir(parents=True, exist_ok=True)
        headers = build_hf_headers(token=self.options.token)
        headers["Accept-Encoding"] = "identity"  # the bytes on disk must be the file itself
        if urlsplit(remote.url).hostname != urlsplit(self.endpoint).hostname:
            headers.pop("authorization", None)  # a CDN address is signed; keep the token home
        timeout = httpx.Timeout(self.options.stall_timeout, connect=self.options.connect_timeout)
        with locked_part(remote.part) as part:
            if not remote.note.exists():
                self._write_note(remote)
            hasher = _hasher(remote)
            offset = hash_prefix(part, hasher, remote.done)
            if offset and remote.size is not None and offset >= remote.size:
                self._verify(remote, hasher)  # complete before, but stopped before the check
                return
            if offset:
                headers["Range"] = f"bytes={offset}-"
            self.meter.state(State.DOWNLOADING)
            try:
                with get_session().stream("GET", remote.url, headers=headers, timeout=timeout,
                                          follow_redirects=True) as response:
                    if response.status_code >= 400:
                        response.read()
                        if remote.url != remote.hub_url and response.status_code < 500:
                            # A signed CDN address may have expired: ask the hub for a new one.
                            raise _Retry(f"the download address was refused "
                                         f"({response.status_code})", refresh=True)
                        raise_for_status(response)
                    if offset and not continues_at(response, offset):
                        # The server sent the whole file (it ignored Range) or the wrong part:
                        # start the file over rather than splice mismatched bytes.
                        part.seek(0)
                        part.truncate()
                        self.meter.done -= offset
                        remote.done = offset = 0
                        hasher = _hasher(remote)
                        if response.status_code != 200:
                            raise _Retry("the server sent the wrong part of the file")
                    for chunk in response.iter_bytes():
                        self.control.check()
                        _write_all(part, chunk, self, remote)
                        hasher.update(chunk)
                        remote.done += len(chunk)
                        self.meter.add(len(chunk))
            except (DownloadError, DownloadInterrupted, _Retry):
                raise
            except Exception as error:
                raise self._explain(error, remote.spec.filename) from error
            if remote.size is not None and remote.done < remote.size:
                raise _Retry(f"the connection closed after {format_bytes(remote.done)} of "
                             f"{format_bytes(remote.size)}")
            self._verify(remote, hasher)

    def _verify(self, remote: _Remote, hasher: Any) -> None:
        self.meter.state(State.VERIFYING)
        kind, expected = remote.checksum
        got = hasher.hexdigest()
        size_ok = remote.size is None or remote.done == remote.size
        if got != expected or not size_ok:
            remote.part.unlink(missing_ok=True)
            remote.note.unlink(missing_ok=True)
            self.meter.done -= remote.done
            remote.done = 0
            raise ChecksumMismatch(
                f"{remote.spec.filename} is damaged: its {kind} is {got[:16]}…, but "
                f"{remote.checksum_source} lists {expected[:16]}…. The bad download was deleted; "
                "try again, and if it happens again try another hub mirror.")
        self._write_note(remote, verified=True)
        remote.finished = True


def _hasher(remote: _Remote) -> Any:
    kind, _ = remote.checksum
    if kind == "git-sha1":
        return hashlib.sha1(b"blob %d\0" % (remote.size or 0))
    return hashlib.sha256()


def _write_all(part: BinaryIO, chunk: bytes, run: _Download, remote: _Remote) -> None:
    view = memoryview(chunk)
    try:
        while view:
            written = part.write(view)
            view = view[written or 0:]
    except OSError as error:
        if error.errno not in _NO_SPACE:
            raise DownloadError(f"Could not write {remote.part}: {error.strerror or error}. "
                                "Check that the models folder can be written to.") from error
        part.close()
        remote.part.unlink(missing_ok=True)
        remote.note.unlink(missing_ok=True)
        raise _disk_full(error, run.folder, f"{remote.spec.filename} stopped after "
                         f"{format_bytes(remote.done)} of {format_bytes(remote.size or 0)}. The "
                         "unfinished file was deleted to give the space back") from None


def _disk_full(error: OSError, folder: Path, what: str) -> DiskFull:
    reason = "cannot hold a file this large" if error.errno == errno.EFBIG else "is full"
    return DiskFull(f"The disk holding {folder} {reason}: {what}; free some space (or choose "
                    "another models folder) and download again.")
