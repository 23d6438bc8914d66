"""Document collections from the terminal (`nomoat docs`, `nomoat chat --docs`) and over the
API (`POST /v1/nomoat/search`), with the real all-MiniLM-L6-v2 embedding model."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import start_serve, stop_serve
from test_fuzz_api import ODD_NUMBERS, ODD_TEXT

FACTS = {
    "cat.txt": "The lighthouse keeper's cat is named Biscuit. It sleeps on the warm lamp.",
    "bread.md": "# Recipes\n\n## Bread\n\nTo bake bread you need flour, water, salt and yeast.",
    "rocket.html": "<html><body><h1>Launch</h1><p>The rocket launch is set for Tuesday at "
                   "dawn.</p></body></html>",
}


def nomoat(home: Path, *args: str, stdin: str | None = None, timeout: float = 180
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOMOAT_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "desktop", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def home(minilm_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the embedding model installed and a collection 'notes' indexed."""
    home = tmp_path_factory.mktemp("docs-home")
    folder = home / "papers"
    folder.mkdir()
    for name, text in FACTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "blob.txt").write_bytes(bytes(range(256)) * 40)  # not text
    result = nomoat(home, "import", "--in-place", str(minilm_gguf))
    assert result.returncode == 0, result.stderr
    result = nomoat(home, "docs", "add", "notes", str(folder))
    assert result.returncode == 0, result.stderr
    assert "Indexed 'notes': 3 new, 1 not readable" in result.stdout
    assert "not readable: " in result.stdout and "blob.txt" in result.stdout
    return home


def test_without_an_embedding_model_it_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    result = nomoat(tmp_path, "docs", "add", "notes", str(tmp_path / "a.txt"))
    assert result.returncode == 1
    assert "none is installed" in result.stderr and "nomoat download" in result.stderr


def test_list_shows_each_collection_and_its_folders(home: Path) -> None:
    result = nomoat(home, "docs", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("notes: 3 files, ") and "1 not readable; indexed" in lines[0]
    assert lines[1].strip() == str(home / "papers")


@pytest.mark.parametrize(("question", "answer"), [
    ("What is the name of the cat?", "cat.txt"),
    ("What do I need to bake bread?", "bread.md"),
    ("When does the rocket launch?", "rocket.html")])
def test_search_ranks_the_file_that_holds_the_answer_first(home: Path, question: str,
                                                           answer: str) -> None:
    result = nomoat(home, "docs", "search", "notes", question, "--json", "--top", "3")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert Path(hits[0]["file"]).name == answer
    assert {"file", "page", "heading", "score", "text"} <= set(hits[0])


def test_search_as_text_and_bad_input(home: Path) -> None:
    result = nomoat(home, "docs", "search", "notes", "bread", "--top", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"[1] {home / 'papers' / 'bread.md'} — Recipes › Bread")
    missing = nomoat(home, "docs", "search", "nope", "bread")
    assert missing.returncode == 1 and "Collections: 'notes'" in missing.stderr
    bad = nomoat(home, "docs", "search", "notes", "bread", "--top", "0")
    assert bad.returncode == 1 and "--top" in bad.stderr


def test_the_chat_answers_from_the_collection_and_lists_its_sources(home: Path) -> None:
    result = nomoat(home, "chat", "--docs", "notes", "--ctx", "2048", "--max-tokens", "32",
                    stdin="What is the lighthouse keeper's cat called?\n/exit\n")
    assert result.returncode == 0, result.stderr
    sources = result.stdout.split("Sources:\n", 1)[1].splitlines()
    assert sources[0].strip() == f"[1] {home / 'papers' / 'cat.txt'}"


def test_other_programs_search_through_the_api(home: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.setenv("NOMOAT_HOME", str(home))
    served = start_serve("--ctx", "1024")
    try:
        url = f"http://127.0.0.1:{served.port}/v1/nomoat/search"
        with httpx.Client(timeout=60, trust_env=False) as http:
            found = http.post(url, json={"collection": "notes",
                                         "query": "When does the rocket launch?", "top_k": 2})
            assert found.status_code == 200, found.text
            body = found.json()
            assert Path(body["data"][0]["file"]).name == "rocket.html"
            assert len(body["data"]) == 2
            missing = http.post(url, json={"collection": "nope", "query": "x"})
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "collection_not_found"
            assert "'notes'" in missing.json()["error"]["message"]
            for bad in ({}, {"collection": "notes"}, {"collection": "notes", "query": ""},
                        {"collection": "notes", "query": "x", "top_k": 0},
                        {"collection": 3, "query": "x"}, [1, 2]):
                refused = http.post(url, json=bad)
                assert refused.status_code == 400, (bad, refused.text)
                assert refused.json()["error"]["message"]
            broken = http.post(url, content=b"{not json", headers={
                "content-type": "application/json"})
            assert broken.status_code == 400
            # Odd questions and bodies, seeded: an answer or a clear 4xx, never a 5xx.
            rng = random.Random(20261206)
            for _ in range(120):
                body: Any = {"collection": rng.choice(["notes", "nope", "", "n" * 300]),
                             "query": rng.choice(ODD_TEXT), "top_k": rng.choice(ODD_NUMBERS)}
                for key in rng.sample(sorted(body), rng.randint(0, 2)):
                    body[key] = rng.choice([*ODD_NUMBERS, *ODD_TEXT, [], {}])
                answer = http.post(url, content=json.dumps(body).encode(),  # \ud800 escaped
                                   headers={"content-type": "application/json"})
                assert answer.status_code < 500, (body, answer.text)
                if answer.status_code >= 400:
                    assert answer.json()["error"]["message"]
            assert http.post(url, json={"collection": "notes", "query": "cat"}).json()["data"]
    finally:
        stop_serve(served)


def test_a_changed_file_is_indexed_again_and_rm_deletes_the_collection(
        home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "boat.txt").write_text("The boat is painted blue.", encoding="utf-8")
    assert nomoat(home, "docs", "add", "extra", str(folder)).returncode == 0
    (folder / "boat.txt").write_text("The boat is painted bright orange now.", encoding="utf-8")
    update = nomoat(home, "docs", "update", "extra")
    assert update.returncode == 0 and "1 changed" in update.stdout, update.stdout
    hits = json.loads(nomoat(home, "docs", "search", "extra", "boat colour", "--json").stdout)
    assert "orange" in hits[0]["text"]
    removed = nomoat(home, "docs", "rm", "extra")
    assert removed.returncode == 0 and "not touched" in removed.stdout
    assert (folder / "boat.txt").exists()
    assert "extra" not in nomoat(home, "docs", "list").stdout
