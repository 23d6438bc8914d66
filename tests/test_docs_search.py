"""Search arithmetic and safety without a model: the full-text query built from any input,
reciprocal rank fusion, fitting passages to a context, and the prompt they make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop.core.docs.chunking import Chunk
from desktop.core.docs.search import (
    Hit,
    fit_to_context,
    fts_query,
    prompt_with_sources,
    reciprocal_rank_fusion,
    search,
)
from desktop.core.docs.store import DocStore

ODD_QUERIES = [
    'what is "the plan', "AND OR NOT", "NEAR(a b)", "col:umn", "*", "^start", "a - b + c",
    "(unbalanced", '""', "''", "\x00nul", "\ud800 lone surrogate", "emoji 🦀🧪", "e\u0301clair",
    "日本語の質問", "ﬁ ligature", "\u200b zero width", "-leading", "DROP TABLE chunks;--",
    "a" * 5000, " ".join(["word"] * 500), "text:alpha heading:beta", "{a b}", "'", "\\",
]


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with DocStore(tmp_path / "docs.sqlite3") as opened:
        collection = opened.create_collection("C")
        texts = ["The plan for the bridge is approved.", "Column widths and table layout.",
                 "日本語の質問にはこちら。", "Éclair recipes with choux pastry."]
        chunks = [Chunk(i, text) for i, text in enumerate(texts)]
        # Storage only: these vectors are given numbers, not a model's output.
        opened.save_file(collection.id, "/d/a.txt", size=1, mtime_ns=1, hash="h", kind="text",
                         chunks=chunks, vectors=np.eye(len(texts), dtype=np.float32),
                         model_id="m")
        yield opened


def test_queries_are_quoted_words_joined_by_or() -> None:
    assert fts_query('bridge "plan" AND NOT x*') == '"bridge" OR "plan" OR "NOT" OR "x"'
    assert fts_query("what is the plan?") == '"plan"'  # common words go when others remain
    assert fts_query("what is the") == '"what" OR "is" OR "the"'
    assert fts_query("?!* -- ()") is None
    assert fts_query("Plan plan PLAN") == '"Plan"'


@pytest.mark.parametrize("query", ODD_QUERIES)
def test_any_query_searches_without_raising(store: DocStore, query: str) -> None:
    collection = store.collections()[0]
    hits = search(store, collection.id, query, None, top_k=3)
    assert all(hit.vector_rank is None for hit in hits)


def test_words_find_their_chunk(store: DocStore) -> None:
    collection = store.collections()[0]
    assert search(store, collection.id, "bridge plan", None)[0].text.startswith("The plan")
    assert search(store, collection.id, "eclair", None)[0].text.startswith("Éclair")
    assert search(store, collection.id, "bridge", None, top_k=0) == []


def test_reciprocal_rank_fusion_sums_one_over_k_plus_rank() -> None:
    fused = reciprocal_rank_fusion([[10, 20, 30], [30, 40]], k=60)
    scores = dict(fused)
    assert scores[10] == pytest.approx(1 / 61)
    assert scores[30] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[40] == pytest.approx(1 / 62)
    assert scores[20] == pytest.approx(1 / 62)
    assert [item for item, _ in fused] == [30, 10, 20, 40]  # 20 and 40 tie: first seen first
    assert reciprocal_rank_fusion([[], []]) == []
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2], [2, 1]])] == [1, 2]  # a tie: as seen


def _hit(n: int, text: str, page: int | None = None, heading: str | None = None) -> Hit:
    return Hit(f"/docs/file{n}.pdf", page, heading, text, 1.0 / n, n, None, n, 0)


def _words(text: str) -> int:
    return len(text.split())  # a budget in words: the arithmetic is what is tested here


def test_fit_to_context_takes_hits_in_order_while_they_fit() -> None:
    hits = [_hit(n, " ".join(["w"] * 50)) for n in range(1, 11)]
    fitted = fit_to_context(hits, _words, budget=250)
    assert fitted == hits[:len(fitted)] and 2 <= len(fitted) <= 4
    assert _words(prompt_with_sources(fitted)) <= 250
    assert len(fit_to_context(hits, _words, budget=100_000)) == 10
    assert fit_to_context([], _words, 100) == []


def test_fit_to_context_keeps_one_hit_cut_to_fit() -> None:
    long_hit = _hit(1, " ".join(f"w{i}" for i in range(1000)))
    [only] = fit_to_context([long_hit], _words, budget=100)
    assert only.text and long_hit.text.startswith(only.text) and len(only.text) < 1000
    assert _words(prompt_with_sources([only])) <= 100
    [tiny] = fit_to_context([long_hit], _words, budget=0)
    assert tiny.chunk_id == long_hit.chunk_id


def test_prompt_numbers_the_passages_with_file_and_page() -> None:
    prompt = prompt_with_sources([_hit(1, "First text.", page=3, heading="Intro"),
                                  _hit(2, "Second text.")])
    assert "[1] file1.pdf, page 3 — Intro\nFirst text." in prompt
    assert "[2] file2.pdf\nSecond text." in prompt
    assert prompt.index("[1]") < prompt.index("[2]")
    assert "cite" in prompt
    assert prompt_with_sources([]) == ""


def test_passages_go_into_the_question_so_every_template_takes_them() -> None:
    from desktop.core.docs.search import ask_with_sources

    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "What is in the notes?"}]
    asked = ask_with_sources(messages, "Passages…\n\n[1] a.txt\nBread.")
    assert [m["role"] for m in asked] == ["system", "user", "assistant", "user"]
    assert asked[-1]["content"] == ("Passages…\n\n[1] a.txt\nBread.\n\n"
                                    "Question: What is in the notes?")
    assert asked[:3] == messages[:3] and messages[-1]["content"] == "What is in the notes?"
    assert ask_with_sources(messages, "") is messages
