"""A hub-shaped HTTP server on 127.0.0.1 for tests and benchmarks, used through huggingface_hub.

It serves real files with the URL layout and headers huggingface_hub 1.x relies on:

- ``HEAD/GET /{repo_id}/resolve/{revision}/{filename}``: for an LFS file (``.gguf`` and other
  large formats) a 302 to a CDN address on another host name (``localhost`` instead of
  ``127.0.0.1``), carrying ``X-Repo-Commit``, ``X-Linked-Etag`` (the LFS sha256) and
  ``X-Linked-Size``, which is what ``get_hf_file_metadata`` reads on the real hub; for a small
  file, 200 with ``ETag`` (its git blob id), ``X-Repo-Commit`` and the body.
- ``HEAD/GET /cdn/{sha256}``: the LFS blob, with Range requests (206 + ``Content-Range``).
- ``GET /api/models?search=&filter=&sort=&limit=``: ``HfApi.list_models``.
- ``GET /api/models/{repo_id}[/revision/{revision}][?blobs=true]``: ``HfApi.model_info``, with
  sizes and LFS sha256 of every file when ``files_metadata=True`` asks for blobs.

Errors carry the hub's ``X-Error-Code`` (RepoNotFound, GatedRepo, RevisionNotFound,
EntryNotFound), so ``hf_raise_for_status`` raises what it raises against huggingface.co.

:class:`Switches` change how file bodies go out: a rate limit, dropping the connection after N
bytes, stalling after N bytes, wrong bytes of the right size, ignoring Range, or refusing with
an HTTP status (403 like an expired CDN address, 503). The server counts every body byte it
sends, so tests can tell what was fetched twice. Gated repos want ``Authorization: Bearer
<token>``. :class:`ForwardProxy` is a plain HTTP proxy for checking that HTTP_PROXY is used.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO, Self
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".bin", ".safetensors", ".pt")
PIECE = 64 * 1024
FAST_PIECE = 1024 * 1024
# Every byte flipped: same size, different content.
_FLIP = bytes(255 - value for value in range(256))
_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The sha256 of a file, remembered per (path, size, mtime) because the starter is 98 MB."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(4 * 1024 * 1024):
                digest.update(block)
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob, which the hub sends as the ETag of a small file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubFile:
    """One file in a repo, backed by a real file on disk or by bytes."""

    name: str
    size: int
    sha256: str
    lfs: bool
    path: Path | None = None
    data: bytes | None = None

    @property
    def pointer(self) -> bytes:
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
                f"size {self.size}\n").encode()

    @property
    def git_oid(self) -> str:
        if self.lfs:
            return git_blob_id(self.pointer)
        return git_blob_id(self.read_all())

    def read_all(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")


@dataclass
class HubRepo:
    """A model repo: its files at one commit, and what the search API shows about it."""

    repo_id: str
    files: dict[str, HubFile]
    commit: str
    gated: bool = False
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=lambda: ["gguf"])
    last_modified: str = "2025-01-01T00:00:00.000Z"


@dataclass
class Switches:
    """How file bodies are sent. Counts of -1 mean every response, 0 means none (any more)."""

    rate: float | None = None  # bytes per second
    drop_after: int | None = None  # close the connection after this many body bytes...
    drop_count: int = 1  # ...in this many responses
    stall_after: int | None = None  # stop sending (keep the connection open) after N bytes...
    stall_count: int = 1  # ...in this many responses
    stall_seconds: float = 60.0
    wrong_bytes: bool = False  # same size, every byte flipped
    ignore_range: bool = False  # always 200 with the whole body
    refuse_status: int | None = None  # answer GETs of file bytes with this status instead...
    refuse_count: int = 1  # ...this many times (403: an expired CDN address; 503: overload)


@dataclass
class Request:
    """One request, logged when it arrives and updated as it is answered."""

    method: str
    path: str
    range: str | None
    authorization: str | None
    status: int = 0
    sent: int = 0  # body bytes written to the socket so far


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True

    def __init__(self, owner: _Serving, handler: type[BaseHTTPRequestHandler]) -> None:
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), handler)

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        if isinstance(sys.exc_info()[1], OSError):
            return  # clients hang up on purpose in these tests
        traceback.print_exc()


class _Serving:
    """Start and stop a threaded server that leaves no thread or socket behind."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._server = _Server(self, self.handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, wake stalled responses, hang up on every client and join every thread."""
        if self._server is None:
            return
        self.closing.set()
        self._server.shutdown()
        with self._server.sockets_lock:
            sockets = list(self._server.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(10)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the server first"
        return self._server.server_address[1]


class HubServer(_Serving):
    """The hub; start it with ``with HubServer() as hub:`` and add repos."""

    def __init__(self, *, token: str = "hf_nomoat_test_token", cdn_host: str = "localhost",
                 commit: str | None = None) -> None:
        super().__init__()
        self.handler = _Handler
        self.token = token
        self.cdn_host = cdn_host
        self.default_commit = commit or hashlib.sha1(b"nomoat-test-commit").hexdigest()
        self.repos: dict[str, HubRepo] = {}
        self.switches = Switches()
        self.requests: list[Request] = []
        self.bytes_sent = 0
        self.active_bodies = 0
        self.max_active_bodies = 0
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- content ----------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: Mapping[str, Path | bytes], *, gated: bool = False,
                 downloads: int = 0, likes: int = 0, tags: tuple[str, ...] = ("gguf",),
                 commit: str | None = None) -> HubRepo:
        """Publish *files* (name in the repo -> a real file or bytes) as repo *repo_id*."""
        made: dict[str, HubFile] = {}
        for name, source in files.items():
            lfs = name.lower().endswith(LFS_SUFFIXES)
            if isinstance(source, bytes):
                made[name] = HubFile(name, len(source), hashlib.sha256(source).hexdigest(), lfs,
                                     data=source)
            else:
                path = Path(source)
                made[name] = HubFile(name, path.stat().st_size, file_sha256(path), lfs,
                                     path=path)
        repo = HubRepo(repo_id, made, commit or self.default_commit, gated=gated,
                       downloads=downloads, likes=likes, tags=list(tags))
        self.repos[repo_id] = repo
        return repo

    # --- counters ---------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_sent = 0
            self.max_active_bodies = 0

    def body_requests(self) -> list[Request]:
        """The GET requests answered with file bytes (200 or 206), in order."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.status in (200, 206)
                    and not r.path.startswith("/api/")]

    def wait_until(self, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _take(self, value: str, count: str) -> int | None:
        """The switch *value* if it applies to this response, spending one of its *count*."""
        with self._lock:
            setting = getattr(self.switches, value)
            left = getattr(self.switches, count)
            if setting is None or left == 0:
                return None
            if left > 0:
                setattr(self.switches, count, left - 1)
            return setting

    def _body_started(self) -> None:
        with self._lock:
            self.active_bodies += 1
            self.max_active_bodies = max(self.max_active_bodies, self.active_bodies)

    def _body_ended(self) -> None:
        with self._lock:
            self.active_bodies -= 1

    def _count(self, sent: int) -> None:
        with self._lock:
            self.bytes_sent += sent


class _Hangup(Exception):
    """The response was cut on purpose (drop or stall switch)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hubserver/1"
    timeout = 30  # an idle keep-alive connection, or a client that stopped reading

    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def hub(self) -> HubServer:
        return self.server.owner  # type: ignore[return-value]

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    # --- routing ----------------------------------------------------------------------------

    def _route(self, head: bool) -> None:
        self._log = Request(self.command, self.path, self.headers.get("Range"),
                            self.headers.get("Authorization"))
        self.hub._record(self._log)
        try:
            parts = urlsplit(self.path)
            segments = [unquote(s) for s in parts.path.split("/")[1:]]
            query = parse_qs(parts.query)
            if segments[:2] == ["api", "models"]:
                self._api(segments[2:], query)
            elif segments[:1] == ["cdn"] and len(segments) == 2:
                self._cdn(segments[1], head)
            elif len(segments) >= 5 and segments[2] == "resolve":
                self._resolve("/".join(segments[:2]), segments[3], "/".join(segments[4:]), head)
            else:
                self._error(404, "", "Not found")
        except _Hangup:
            self.close_connection = True

    def _repo(self, repo_id: str) -> HubRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
        return repo

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _resolve(self, repo_id: str, revision: str, filename: str, head: bool) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        if repo.gated and not self._authorized():
            self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must "
                        "have access to it and be authenticated to access it. Please log in.")
            return
        if revision not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
            return
        file = repo.files.get(filename)
        if file is None:
            self._error(404, "EntryNotFound", "Entry not found",
                        {"X-Repo-Commit": repo.commit})
            return
        common = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
        if file.lfs:
            location = f"http://{self.hub.cdn_host}:{self.hub.port}/cdn/{file.sha256}"
            self._log.status = 302
            self.send_response(302)
            for name, value in {**common, "Location": location, "ETag": f'"{file.git_oid}"',
                                "X-Linked-Etag": f'"{file.sha256}"',
                                "X-Linked-Size": str(file.size),
                                "Content-Length": "0"}.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self._file(file, head, {**common, "ETag": f'"{file.git_oid}"'})

    def _cdn(self, sha256: str, head: bool) -> None:
        for repo in self.hub.repos.values():
            for file in repo.files.values():
                if file.sha256 == sha256 and file.lfs:
                    self._file(file, head, {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"})
                    return
        self._error(404, "", "No such blob")

    # --- file bodies ------------------------------------------------------------------------

    def _file(self, file: HubFile, head: bool, headers: dict[str, str]) -> None:
        switches = self.hub.switches
        refuse = None if head else self.hub._take("refuse_status", "refuse_count")
        if refuse is not None:
            self._error(refuse, "", "Refused by the refuse_status switch")
            return
        start, end = 0, file.size - 1
        status = 200
        wanted = self.headers.get("Range")
        if wanted and not switches.ignore_range:
            parsed = _parse_range(wanted, file.size)
            if parsed is None:
                self._error(416, "", "Range not satisfiable",
                            {"Content-Range": f"bytes */{file.size}"})
                return
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{file.size}"
        self._log.status = status
        self.send_response(status)
        headers.update({"Content-Length": str(end - start + 1),
                        "Content-Type": "application/octet-stream"})
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if head or end < start:
            return
        self.hub._body_started()
        try:
            self._send_range(file, start, end - start + 1, switches)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            self.hub._body_ended()

    def _send_range(self, file: HubFile, start: int, length: int, switches: Switches) -> None:
        drop_at = self.hub._take("drop_after", "drop_count")
        stall_at = self.hub._take("stall_after", "stall_count")
        plain = (drop_at is None and stall_at is None and switches.rate is None
                 and not switches.wrong_bytes)
        with file.open() as source:
            source.seek(start)
            if plain and file.path is not None:
                self._sendfile(source, start, length)
                return
            piece = PIECE if switches.rate else FAST_PIECE
            if switches.rate:
                piece = max(4096, min(PIECE, int(switches.rate / 50)))
            began = time.monotonic()
            done = 0
            while done < length:
                size = min(piece, length - done)
                for cut in (drop_at, stall_at):
                    if cut is not None and cut > done:
                        size = min(size, cut - done)
                if drop_at is not None and done >= drop_at:
                    self._hang_up()
                if stall_at is not None and done >= stall_at:
                    self.hub.closing.wait(switches.stall_seconds)
                    self._hang_up()
                chunk = source.read(size)
                if switches.wrong_bytes:
                    chunk = chunk.translate(_FLIP)
                self.wfile.write(chunk)
                done += len(chunk)
                self._log.sent += len(chunk)
                self.hub._count(len(chunk))
                if switches.rate:
                    ahead = done / switches.rate - (time.monotonic() - began)
                    if ahead > 0 and self.hub.closing.wait(ahead):
                        self._hang_up()

    def _sendfile(self, source: BinaryIO, start: int, length: int) -> None:
        offset, end = start, start + length
        while offset < end:
            sent = self.connection.sendfile(source, offset, min(FAST_PIECE, end - offset))
            if sent == 0:
                raise ConnectionError("client went away")
            offset += sent
            self._log.sent += sent
            self.hub._count(sent)

    def _hang_up(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Hangup

    # --- JSON API ---------------------------------------------------------------------------

    def _api(self, rest: list[str], query: dict[str, list[str]]) -> None:
        if not rest:
            self._json(self._search(query))
            return
        repo_id = "/".join(rest[:2])
        repo = self._repo(repo_id)
        if repo is None:
            return
        if len(rest) == 4 and rest[2] == "revision" and rest[3] not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + rest[3])
            return
        if len(rest) not in (2, 4):
            self._error(404, "", "Not found")
            return
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        info = _summary(repo)
        info["siblings"] = [_sibling(file, blobs) for file in repo.files.values()]
        info["sha"] = repo.commit
        self._json(info)

    def _search(self, query: dict[str, list[str]]) -> list[dict[str, object]]:
        terms = [t.lower() for t in query.get("search", []) if t]
        filters = query.get("filter", [])
        found = [repo for repo in self.hub.repos.values()
                 if all(t in repo.repo_id.lower() for t in terms)
                 and all(f in repo.tags for f in filters)]
        sort = query.get("sort", [""])[0]
        if sort in ("downloads", "likes"):
            found.sort(key=lambda repo: getattr(repo, sort), reverse=True)
        elif sort == "lastModified":
            found.sort(key=lambda repo: repo.last_modified, reverse=True)
        limit = int(query.get("limit", ["1000"])[0])
        return [_summary(repo) for repo in found[:limit]]

    # --- plumbing ---------------------------------------------------------------------------

    def _json(self, payload: object) -> None:
        body = json.dumps(payload).encode()
        self._log.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str,
               extra: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self._log.status = status
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class ForwardProxy(_Serving):
    """A plain-HTTP forward proxy, to show that downloads go through HTTP_PROXY when it is set.

    It understands absolute-URI requests (``GET http://host:port/path``), forwards them with
    http.client and relays the answer; ``seen`` lists the URLs it forwarded.
    """

    def __init__(self) -> None:
        super().__init__()
        self.handler = _ProxyHandler
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server
    _HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te",
                      "trailer", "transfer-encoding", "upgrade"})

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._forward()

    def do_GET(self) -> None:
        self._forward()

    def _forward(self) -> None:
        proxy: ForwardProxy = self.server.owner  # type: ignore[assignment]
        target = urlsplit(self.path)
        proxy.seen.append(self.path)
        upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80,
                                              timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in self._HOP}
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, headers=headers)
            answer = upstream.getresponse()
            body = b"" if self.command == "HEAD" else answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in self._HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            length = answer.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            upstream.close()


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range, or None when it cannot be served."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if not first:
        if not last or int(last) == 0:
            return None
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


def _summary(repo: HubRepo) -> dict[str, object]:
    owner = repo.repo_id.split("/")[0]
    return {"_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
            "modelId": repo.repo_id, "author": owner, "downloads": repo.downloads,
            "likes": repo.likes, "tags": repo.tags, "private": False,
            "gated": "manual" if repo.gated else False, "library_name": "gguf",
            "pipeline_tag": "text-generation", "lastModified": repo.last_modified,
            "createdAt": repo.last_modified}


def _sibling(file: HubFile, blobs: bool) -> dict[str, object]:
    entry: dict[str, object] = {"rfilename": file.name}
    if blobs:
        entry["size"] = file.size
        entry["blobId"] = file.git_oid
        if file.lfs:
            entry["lfs"] = {"size": file.size, "sha256": file.sha256,
                            "pointerSize": len(file.pointer)}
    return entry


def split_bytes(data: bytes, parts: int) -> Iterator[bytes]:
    """*data* cut into *parts* pieces of nearly equal size (for split-GGUF shards)."""
    step = -(-len(data) // parts)
    for index in range(parts):
        yield data[index * step:(index + 1) * step]

