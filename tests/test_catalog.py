"""The curated catalog: the bundled file, validation of every entry, and a remote catalog
served over real HTTP on 127.0.0.1 with its cache and fallbacks."""

from __future__ import annotations

import copy
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, free_port

import desktop
from desktop.core import catalog as catalog_module
from desktop.core.catalog import (
    SCHEMA_VERSION,
    CatalogError,
    bundled_catalog,
    load_catalog,
    parse_catalog,
)
from desktop.core.paths import get_paths

TOP_LEVEL = REPO / "catalog.json"


def bundled_data() -> dict[str, Any]:
    return json.loads(TOP_LEVEL.read_text(encoding="utf-8"))


# -- the bundled catalog -------------------------------------------------------------------------

def test_bundled_catalog_loads_every_entry() -> None:
    catalog = bundled_catalog()
    raw = bundled_data()
    assert raw["schema_version"] == SCHEMA_VERSION
    assert catalog.source == "bundled"
    assert catalog.warnings == []
    assert len(catalog.entries) == len(raw["models"]) >= 15
    assert len({e.id for e in catalog.entries}) == len(catalog.entries)
    starter = catalog.get("smollm2-135m-instruct")
    assert starter is not None and starter.bundled
    assert starter.filename == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert starter.sha256 is not None and len(starter.sha256) == 64
    split = next(e for e in catalog.entries if e.is_split)
    assert split.filename.endswith("-00001-of-00002.gguf") and len(split.files) == 2
    assert catalog.by_filename(split.files[1]) is split
    assert catalog.by_sha256(starter.sha256.upper()) is starter
    sizes = sorted(e.parameters_count or 0 for e in catalog.entries)
    assert sizes[0] < 200e6 and sizes[-1] > 10e9  # from ~135M to ~14B


def test_bundled_catalog_is_package_data() -> None:
    """The file the app reads through importlib.resources is the top-level catalog.json."""
    resource = resources.files("desktop").joinpath("data", "catalog.json")
    assert resource.read_bytes() == TOP_LEVEL.read_bytes()
    assert bundled_catalog().location == str(resource)


# -- validation ----------------------------------------------------------------------------------

def _break(entry: dict[str, Any], change: str) -> Any:
    broken = copy.deepcopy(entry)
    if change == "not an object":
        return ["a", "list"]
    key, _, value = change.partition("=")
    if value == "<delete>":
        broken.pop(key)
    else:
        broken[key] = json.loads(value)
    return broken


BAD_ENTRIES = [
    ("id=<delete>", "'id' is missing"),
    ('id="Has Spaces"', "'id'"),
    ('name=""', "'name' must be a non-empty text"),
    ('repo_id="no-slash"', "owner/name"),
    ("size_bytes=0", "'size_bytes' must be a whole number above 0"),
    ('size_bytes="98 MB"', "'size_bytes'"),
    ("size_bytes=true", "'size_bytes'"),
    ('sha256="abc123"', "'sha256' must be 64 hexadecimal digits"),
    ('sha256="' + "g" * 64 + '"', "'sha256'"),
    ('shards=["a-00001-of-00002.gguf", "a-00002-of-00002.gguf"]', "exactly one of"),
    ("filename=<delete>", "exactly one of"),
    ('filename="model.bin"', ".gguf"),
    ('filename="../../etc/passwd.gguf"', "not a plain path"),
    ("context_length=-5", "'context_length'"),
    ('tags="small"', "'tags' must be a list"),
    ('recommended_sampling={"temperature": "warm"}', "recommended_sampling 'temperature'"),
    ('recommended_sampling={"top_k": 1.5}', "recommended_sampling 'top_k'"),
    ("chat_template=42", "'chat_template'"),
    ('min_app_version="99.0.0"', "needs NoMoat 99.0.0 or newer"),
    ('min_app_version="soon"', "'min_app_version'"),
    ('bundled="yes"', "'bundled'"),
    ("not an object", "not a JSON object"),
]


@pytest.mark.parametrize(("change", "message"), BAD_ENTRIES)
def test_a_bad_entry_is_skipped_and_the_rest_load(change: str, message: str) -> None:
    data = bundled_data()
    victim = data["models"][3]
    data["models"][3] = _break(victim, change)
    catalog = parse_catalog(data, "bundled", "test")
    assert len(catalog.entries) == len(data["models"]) - 1
    assert victim["id"] not in {e.id for e in catalog.entries} or change.startswith("id=")
    assert len(catalog.warnings) == 1
    assert catalog.warnings[0].startswith("Catalog entry 4")
    assert message in catalog.warnings[0]


def test_split_entry_needs_two_distinct_shards() -> None:
    data = bundled_data()
    split = next(m for m in data["models"] if "shards" in m)
    one = dict(split, id="one-shard", shards=split["shards"][:1])
    twice = dict(split, id="twice", shards=[split["shards"][0]] * 2)
    data["models"] += [one, twice]
    catalog = parse_catalog(data, "bundled", "test")
    assert [w.split(":")[1].strip() for w in catalog.warnings] == [
        "'shards' must list at least two files.", "'shards' lists the same file twice."]


def test_duplicate_ids_keep_the_first() -> None:
    data = bundled_data()
    data["models"].append(dict(data["models"][1], name="Impostor"))
    catalog = parse_catalog(data, "bundled", "test")
    assert catalog.get(data["models"][1]["id"]).name == data["models"][1]["name"]
    assert "already has the id" in catalog.warnings[0]


def test_optional_fields_and_newer_sampling_keys() -> None:
    data = bundled_data()
    entry = data["models"][2]
    for key in ("sha256", "chat_template", "parameters_count", "bundled"):
        entry.pop(key)
    entry["recommended_sampling"]["mirostat"] = 2  # a setting a later version may use
    entry["future_field"] = {"anything": True}
    parsed = parse_catalog(data, "bundled", "test").get(entry["id"])
    assert parsed is not None and parsed.sha256 is None and not parsed.bundled
    assert "mirostat" not in parsed.recommended_sampling


def test_the_release_month_is_optional_and_checked() -> None:
    catalog = bundled_catalog()
    assert all(e.released is not None for e in catalog.entries)  # the bundled ones have it
    assert catalog.get("llama-3-1-8b-instruct").released == "2024-07"
    data = bundled_data()
    data["models"][0].pop("released")
    for row, bad in ((1, "2024-13"), (2, "July 2024"), (3, 202407)):
        data["models"][row]["released"] = bad
    parsed = parse_catalog(data, "bundled", "test")
    assert parsed.get(data["models"][0]["id"]).released is None
    assert len(parsed.entries) == len(data["models"]) - 3
    assert sum("'released' must be a month like 2024-09" in w for w in parsed.warnings) == 3


def test_min_app_version_is_compared_with_this_version() -> None:
    data = bundled_data()
    data["models"][0]["min_app_version"] = "0.2.0"
    assert len(parse_catalog(data, "bundled", "x", app_version="0.1.9").entries) == \
        len(data["models"]) - 1
    assert len(parse_catalog(data, "bundled", "x", app_version="0.10.0").entries) == \
        len(data["models"])
    assert desktop.__version__  # the default comparison uses the app's own version


@pytest.mark.parametrize(("data", "message"), [
    ([], "is not a JSON object"),
    ({"models": []}, "no valid schema_version"),
    ({"schema_version": "1", "models": []}, "no valid schema_version"),
    ({"schema_version": SCHEMA_VERSION + 1, "models": []}, "Update NoMoat"),
    ({"schema_version": 0, "models": []}, "unknown format version"),
    ({"schema_version": SCHEMA_VERSION, "models": {}}, "no 'models' list"),
])
def test_a_catalog_that_cannot_be_used(data: Any, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(data, "remote", "https://example.invalid/catalog.json")


# -- the remote catalog --------------------------------------------------------------------------

class CatalogServer:
    """Serves one catalog document on 127.0.0.1 and counts the requests."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.body = b""
        self.status = 200
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}/catalog.json"

    def serve(self, data: Any, status: int = 200) -> None:
        self.body = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.status = status

    def close(self) -> None:
        if not self.thread.is_alive():
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server(data_home: Path) -> Iterator[CatalogServer]:
    running = CatalogServer()
    yield running
    running.close()


def remote_data() -> dict[str, Any]:
    """Three entries (one broken), so a remote catalog is told apart from the bundled one."""
    data = bundled_data()
    data["models"] = data["models"][1:4]
    data["models"][2]["size_bytes"] = -1
    return data


def test_remote_catalog_is_fetched_validated_and_cached(server: CatalogServer) -> None:
    server.serve(remote_data())
    catalog = load_catalog(server.url)
    assert catalog.source == "remote" and catalog.location == server.url
    assert [e.id for e in catalog.entries] == [m["id"] for m in remote_data()["models"][:2]]
    assert len(catalog.warnings) == 1 and "'size_bytes'" in catalog.warnings[0]
    assert catalog.notice is None
    cached = get_paths().cache / catalog_module.CACHE_FILE
    assert json.loads(cached.read_text()) == remote_data()

    again = load_catalog(server.url)  # fresh enough: not fetched again
    assert server.requests == 1
    assert again.source == "cache" and [e.id for e in again.entries] == \
        [e.id for e in catalog.entries]
    load_catalog(server.url, refresh=True)
    assert server.requests == 2
    load_catalog(server.url, max_age=0)
    assert server.requests == 3


def test_a_dead_server_falls_back_to_the_cache(server: CatalogServer,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    server.serve(remote_data())
    url = server.url
    load_catalog(url)
    server.close()
    catalog = load_catalog(url, refresh=True)
    assert catalog.source == "cache"
    assert len(catalog.entries) == 2
    assert catalog.notice is not None and "could not be fetched" in catalog.notice
    assert capsys.readouterr() == ("", "")  # no noise


def test_a_dead_port_without_cache_falls_back_to_the_bundled_catalog(
        data_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/catalog.json"
    catalog = load_catalog(url)
    assert catalog.source == "bundled"
    assert len(catalog.entries) == len(bundled_data()["models"])
    assert catalog.notice is not None and url in catalog.notice
    assert capsys.readouterr() == ("", "")
    assert not (get_paths().cache / catalog_module.CACHE_FILE).exists()


@pytest.mark.parametrize(("body", "status", "notice"), [
    (b"{}", 500, "HTTP 500"),
    (b"<html>not json</html>", 200, "is not valid JSON"),
    (json.dumps({"schema_version": SCHEMA_VERSION + 1, "models": []}).encode(), 200,
     "Update NoMoat"),
    (json.dumps({"schema_version": SCHEMA_VERSION, "models": [{"id": "x"}]}).encode(), 200,
     "no usable entries"),
])
def test_a_bad_remote_catalog_is_not_used_or_cached(server: CatalogServer, body: bytes,
                                                    status: int, notice: str) -> None:
    server.serve(body, status)
    catalog = load_catalog(server.url)
    assert catalog.source == "bundled"
    assert catalog.notice is not None and notice in catalog.notice
    assert not (get_paths().cache / catalog_module.CACHE_FILE).exists()


def test_offline_never_fetches(server: CatalogServer) -> None:
    server.serve(remote_data())
    assert load_catalog(server.url, offline=True).source == "bundled"
    assert server.requests == 0
    load_catalog(server.url)
    offline = load_catalog(server.url, offline=True, max_age=0)
    assert offline.source == "cache" and server.requests == 1


def test_the_cache_belongs_to_its_url(server: CatalogServer) -> None:
    server.serve(remote_data())
    load_catalog(server.url)
    other = f"http://127.0.0.1:{free_port()}/other.json"
    catalog = load_catalog(other)
    assert catalog.source == "bundled"


def test_no_url_means_the_bundled_catalog(server: CatalogServer) -> None:
    assert load_catalog(None).source == "bundled"
    assert server.requests == 0


def test_tls_certificates_are_verified(data_home: Path, tmp_path: Path) -> None:
    """A server whose certificate is not trusted is refused, not used."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = CatalogServer(tls=context)
    try:
        server.serve(remote_data())
        catalog = load_catalog(server.url)
    finally:
        server.close()
    assert catalog.source == "bundled"
    assert catalog.notice is not None and "CERTIFICATE_VERIFY_FAILED" in catalog.notice
