"""The curated catalog: models that NoMoat recommends, where to get them and how to run them.

The catalog ships with the app (``desktop/data/catalog.json``, the repository's top-level
``catalog.json``). A remote catalog URL can be set; it is fetched with a short timeout and
cached, and any failure quietly falls back to the cached copy, then to the bundled file.
Loading validates every entry: a bad entry is skipped with a message, never fatal.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import desktop
from desktop.core.paths import get_paths

SCHEMA_VERSION = 1
FETCH_TIMEOUT = 3.0  # seconds; the catalog is small and the bundled copy is always there
CACHE_MAX_AGE = 24 * 3600.0  # a cached remote catalog is used without fetching for this long
CACHE_FILE = "catalog.json"
CACHE_META_FILE = "catalog-source.json"
SAMPLING_KEYS = {"temperature": float, "top_p": float, "top_k": int, "min_p": float,
                 "repeat_penalty": float}
KINDS = ("chat", "embedding")  # what a model is for: chatting, or making embeddings

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d+(\.\d+)*")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class CatalogError(ValueError):
    """A whole catalog cannot be used (not JSON, wrong shape, unsupported schema)."""


@dataclass(frozen=True)
class CatalogEntry:
    """One recommended model."""

    id: str
    name: str
    repo_id: str
    files: tuple[str, ...]  # one file name, or every shard of a split GGUF in order
    size_bytes: int  # all files together
    sha256: str | None
    parameters: str
    parameters_count: int | None
    quantization: str
    context_length: int
    license: str
    description: str
    tags: tuple[str, ...]
    recommended_sampling: dict[str, float] = field(compare=False)
    chat_template: str | None
    min_app_version: str
    bundled: bool = False
    kind: str = "chat"  # one of KINDS
    released: str | None = None  # the month its maker released the model, "YYYY-MM"

    @property
    def filename(self) -> str:
        """The file to load: the only file, or the first shard of a split model."""
        return self.files[0]

    @property
    def is_split(self) -> bool:
        return len(self.files) > 1


@dataclass
class Catalog:
    """The entries that passed validation, where they came from, and what was skipped."""

    entries: list[CatalogEntry]
    source: str  # "bundled", "remote" or "cache"
    location: str  # the file or URL that was read
    warnings: list[str] = field(default_factory=list)
    notice: str | None = None  # why a remote catalog was not used, when it was not

    def get(self, model_id: str) -> CatalogEntry | None:
        """The entry with this id, or None."""
        return next((e for e in self.entries if e.id == model_id), None)

    def by_filename(self, name: str) -> CatalogEntry | None:
        """The entry that downloads a file of this name (any shard of a split model)."""
        return next((e for e in self.entries if name in e.files), None)

    def by_sha256(self, digest: str) -> CatalogEntry | None:
        digest = digest.lower()
        return next((e for e in self.entries if e.sha256 == digest), None)


def _version_tuple(text: str) -> tuple[int, ...]:
    match = _VERSION.match(text)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def _check_file_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.lower().endswith(".gguf"):
        raise ValueError(f"{what} must be the name of a .gguf file")
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{what} '{name}' is not a plain path inside the repository")
    return name


def parse_entry(raw: Any, app_version: str | None = None) -> CatalogEntry:
    """Check one catalog entry and build it; raise ValueError or TypeError saying what is
    wrong."""
    if not isinstance(raw, dict):
        raise TypeError("it is not a JSON object")

    def text(key: str, *, optional: bool = False) -> Any:
        value = raw.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"'{key}' must be a non-empty text" if key in raw
                             else f"'{key}' is missing")
        return value

    def integer(key: str, *, optional: bool = False) -> Any:
        value = raw.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"'{key}' must be a whole number above 0" if key in raw
                             else f"'{key}' is missing")
        return value

    model_id = text("id")
    if not _ID.match(model_id):
        raise ValueError(f"'id' {model_id!r} may only use a-z, 0-9, '.', '_' and '-'")
    repo_id = text("repo_id")
    if not _REPO_ID.match(repo_id):
        raise ValueError(f"'repo_id' {repo_id!r} is not of the form owner/name")

    filename, shards = raw.get("filename"), raw.get("shards")
    if (filename is None) == (shards is None):
        raise ValueError("it needs exactly one of 'filename' and 'shards'")
    if filename is not None:
        files: tuple[str, ...] = (_check_file_name(filename, "'filename'"),)
    else:
        if not isinstance(shards, list) or len(shards) < 2:
            raise ValueError("'shards' must list at least two files")
        files = tuple(_check_file_name(s, "each shard") for s in shards)
        if len(set(files)) != len(files):
            raise ValueError("'shards' lists the same file twice")

    sha256 = raw.get("sha256")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256.match(sha256.lower()):
            raise ValueError("'sha256' must be 64 hexadecimal digits, or null")
        sha256 = sha256.lower()

    tags = raw.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ValueError("'tags' must be a list of texts")

    sampling_raw = raw.get("recommended_sampling")
    if not isinstance(sampling_raw, dict):
        raise TypeError("'recommended_sampling' must be an object")
    sampling: dict[str, float] = {}
    for key, value in sampling_raw.items():
        kind = SAMPLING_KEYS.get(key)
        if kind is None:
            continue  # a setting this version does not use
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                kind is int and not isinstance(value, int)):
            raise ValueError(f"recommended_sampling '{key}' must be a number of 0 or more")
        sampling[key] = value

    template = raw.get("chat_template")
    if template is not None and (not isinstance(template, str) or not template.strip()):
        raise ValueError("'chat_template' must be a non-empty text, or null")

    min_version = text("min_app_version")
    if not _VERSION.fullmatch(min_version):
        raise ValueError(f"'min_app_version' {min_version!r} is not a version like 0.1.0")
    current = app_version or desktop.__version__
    if _version_tuple(min_version) > _version_tuple(current):
        raise ValueError(f"it needs NoMoat {min_version} or newer (this is {current})")

    bundled = raw.get("bundled", False)
    if not isinstance(bundled, bool):
        raise TypeError("'bundled' must be true or false")

    kind = raw.get("kind", "chat")
    if kind not in KINDS:
        raise ValueError(f"'kind' must be one of {', '.join(repr(k) for k in KINDS)}")

    released = raw.get("released")
    if released is not None and (not isinstance(released, str) or not _MONTH.match(released)):
        raise ValueError("'released' must be a month like 2024-09, or null")

    return CatalogEntry(
        id=model_id, name=text("name"), repo_id=repo_id, files=files,
        size_bytes=integer("size_bytes"), sha256=sha256, parameters=text("parameters"),
        parameters_count=integer("parameters_count", optional=True),
        quantization=text("quantization"), context_length=integer("context_length"),
        license=text("license"), description=text("description"), tags=tuple(tags),
        recommended_sampling=sampling, chat_template=template, min_app_version=min_version,
        bundled=bundled, kind=kind, released=released)


def parse_catalog(data: Any, source: str, location: str,
                  app_version: str | None = None) -> Catalog:
    """Validate a decoded catalog; bad entries are skipped and described in ``warnings``.

    Raises :class:`CatalogError` when the catalog as a whole cannot be used.
    """
    if not isinstance(data, dict):
        raise CatalogError(f"The catalog {location} is not a JSON object.")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CatalogError(f"The catalog {location} has no valid schema_version.")
    if version > SCHEMA_VERSION:
        raise CatalogError(f"The catalog {location} uses format version {version}; this "
                           f"version of NoMoat reads version {SCHEMA_VERSION}. Update NoMoat "
                           "to use it.")
    if version < 1:
        raise CatalogError(f"The catalog {location} has an unknown format version {version}.")
    models = data.get("models")
    if not isinstance(models, list):
        raise CatalogError(f"The catalog {location} has no 'models' list.")
    entries: list[CatalogEntry] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(models):
        label = f"entry {index + 1}"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            label += f" ({raw['id']})"
        try:
            entry = parse_entry(raw, app_version)
        except (TypeError, ValueError) as exc:
            warnings.append(f"Catalog {label} was skipped: {exc}.")
            continue
        if entry.id in seen:
            warnings.append(f"Catalog {label} was skipped: another entry already has the id "
                            f"'{entry.id}'.")
            continue
        seen.add(entry.id)
        entries.append(entry)
    return Catalog(entries, source, location, warnings)


def _decode(raw: bytes, location: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CatalogError(f"The catalog {location} is not valid JSON ({exc}).") from exc


def _bundled_bytes() -> tuple[bytes, str]:
    """The catalog shipped with the app.

    In a source checkout ``desktop/data/catalog.json`` is a link to the top-level
    ``catalog.json``; where links are not supported (a checkout on Windows without symlinks
    holds the link's target as text) the top-level file is read directly.
    """
    resource = resources.files("desktop").joinpath("data", "catalog.json")
    try:
        raw = resource.read_bytes()
    except OSError:
        raw = b""
    if raw.lstrip()[:1] != b"{":
        top = Path(__file__).resolve().parents[2] / "catalog.json"
        if top.is_file():
            return top.read_bytes(), str(top)
    return raw, str(resource)


def bundled_catalog() -> Catalog:
    """The catalog that ships with the app; it always works offline."""
    raw, location = _bundled_bytes()
    return parse_catalog(_decode(raw, location), "bundled", location)


def _cache_paths() -> tuple[Path, Path]:
    cache = get_paths().cache
    return cache / CACHE_FILE, cache / CACHE_META_FILE


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(url: str) -> tuple[Catalog | None, float | None]:
    """The cached copy of *url*'s catalog and when it was fetched, if there is a usable one."""
    data_path, meta_path = _cache_paths()
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("url") != url:
            return None, None
        catalog = parse_catalog(_decode(data_path.read_bytes(), str(data_path)), "cache",
                                str(data_path))
    except (OSError, ValueError, AttributeError):
        return None, None
    fetched = meta.get("fetched_at")
    return catalog, fetched if isinstance(fetched, (int, float)) else None


def fetch_remote(url: str, timeout: float = FETCH_TIMEOUT) -> Catalog:
    """Download, validate and cache the catalog at *url*; raise CatalogError on any failure."""
    import httpx

    if not url.startswith(("https://", "http://")):
        raise CatalogError(f"The catalog address {url} must start with https:// (or http://).")
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, verify=True,
                          trust_env=True) as client:
            response = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise CatalogError(f"The catalog at {url} could not be fetched ({exc}).") from exc
    if response.status_code != 200:
        raise CatalogError(f"The catalog at {url} could not be fetched (HTTP "
                           f"{response.status_code}).")
    catalog = parse_catalog(_decode(response.content, url), "remote", url)
    if not catalog.entries:
        raise CatalogError(f"The catalog at {url} has no usable entries.")
    data_path, meta_path = _cache_paths()
    try:
        _write_atomic(data_path, response.content)
        _write_atomic(meta_path, json.dumps({"url": url, "fetched_at": time.time()}).encode())
    except OSError:
        pass  # the cache only saves a fetch next time; the catalog itself is fine
    return catalog


def load_catalog(url: str | None = None, *, refresh: bool = False, offline: bool = False,
                 max_age: float = CACHE_MAX_AGE) -> Catalog:
    """The catalog to show: the remote one when *url* is set, else the bundled one.

    A cached copy younger than *max_age* seconds is used without fetching, unless *refresh*.
    With *offline*, nothing is fetched. Any failure falls back, without raising, to the cached
    copy and then to the bundled catalog; ``notice`` then says why.
    """
    if not url:
        return bundled_catalog()
    cached, fetched_at = _cached(url)
    fresh = cached is not None and fetched_at is not None and time.time() - fetched_at < max_age
    if cached is not None and (offline or (fresh and not refresh)):
        return cached
    notice = None
    if not offline:
        try:
            return fetch_remote(url)
        except CatalogError as exc:
            notice = str(exc)
    if cached is not None:
        cached.notice = notice
        return cached
    catalog = bundled_catalog()
    catalog.notice = notice
    return catalog
