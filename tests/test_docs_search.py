"""Search arithmetic and safety without a model: the full-text query built from any input, the
word ranking of a big index (common words, codes), reciprocal rank fusion and its weights,
fitting passages to a context, and the prompt they make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop.core.docs import search as search_module
from desktop.core.docs.chunking import Chunk
from desktop.core.docs.search import (
    Hit,
    fit_to_context,
    fts_query,
    plan_words,
    prompt_with_sources,
    reciprocal_rank_fusion,
    restricted_query,
    search,
    word_ranking,
)
from desktop.core.docs.store import DocStore

ODD_QUERIES = [
    'what is "the plan', "AND OR NOT", "NEAR(a b)", "col:umn", "*", "^start", "a - b + c",
    "(unbalanced", '""', "''", "\x00nul", "\ud800 lone surrogate", "emoji 🦀🧪", "e\u0301clair",
    "日本語の質問", "ﬁ ligature", "\u200b zero width", "-leading", "DROP TABLE chunks;--",
    "a" * 5000, " ".join(["word"] * 500), "text:alpha heading:beta", "{a b}", "'", "\\",
    "___", "snake_case 4.2.1-rc.1 HH-2318", "1,2,3,4,5,6,7,8,9,0" * 50,
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
    weighted = dict(reciprocal_rank_fusion([[10, 20], [20, 10]], k=60,
                                           weights=[{10: 0.5}, None]))
    assert weighted[10] == pytest.approx(0.5 / 61 + 1 / 62)
    assert weighted[20] == pytest.approx(1 / 62 + 1 / 61)  # no weight given: 1


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


# -- searching by words in a big index -----------------------------------------------------------

def _collection(store: DocStore, name: str, texts: list[str], dim: int = 4) -> int:
    collection = store.create_collection(name)
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    vectors[:, 0] = 1.0
    store.save_file(collection.id, f"/{name}/notes.txt", size=1, mtime_ns=1, hash=name,
                    kind="text", chunks=[Chunk(i, text) for i, text in enumerate(texts)],
                    vectors=vectors, model_id="m")
    return collection.id


def _texts(store: DocStore, ids: list[int]) -> list[str]:
    found = store.chunks(ids)
    return [found[item].text for item in ids]


def _bm25(store: DocStore, match: str) -> dict[int, float]:
    rows = store._read("SELECT rowid, bm25(chunk_text) AS score FROM chunk_text "
                       "WHERE chunk_text MATCH ?", (match,))
    return {row["rowid"]: row["score"] for row in rows}


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """40 passages that all say "report", two of them "zeppelin", some "budget"; words in more
    than a quarter of them are common here."""
    monkeypatch.setattr(search_module, "COMMON_FLOOR", 0)
    monkeypatch.setattr(search_module, "COMMON_SHARE", 0.25)
    texts = [f"Report {n} on the {'budget' if n % 3 == 0 else 'weather'} for week {n}."
             for n in range(38)]
    texts += ["A report on the zeppelin hangar budget.", "The zeppelin flew over the budget."]
    with DocStore(tmp_path / "docs.sqlite3") as opened:
        yield opened, _collection(opened, "Reports", texts)


def test_a_restricted_query_scores_each_passage_as_the_query_of_every_word(
        reports: tuple[DocStore, int]) -> None:
    store, _ = reports
    every = _bm25(store, '"report" OR "budget" OR "zeppelin"')
    restricted = _bm25(store, restricted_query(["zeppelin"], ["report", "budget"]))
    assert len(restricted) == 2 and len(every) == 40
    for item, score in restricted.items():
        assert score == pytest.approx(every[item], rel=1e-12)


def test_a_common_word_does_not_hide_rare_ones(reports: tuple[DocStore, int]) -> None:
    store, collection_id = reports
    plan = plan_words(store, "zeppelin report budget", depth=2)
    assert plan is not None and len(plan.matches) == 2  # the rare word's passages first
    ranked = word_ranking(store, collection_id, plan, depth=2)
    assert ranked == store.full_text_ranking(collection_id, plan.matches[-1], 2)
    assert all("zeppelin" in text for text in _texts(store, ranked))
    # Deeper than the rare word's passages: every word's ranking, as without the split.
    deep = word_ranking(store, collection_id, plan_words(store, "zeppelin report budget"), 10)
    assert deep == store.full_text_ranking(collection_id,
                                           '"zeppelin" OR "report" OR "budget"', 10)
    assert len(deep) == 10


def test_a_query_of_common_words_still_finds_passages(reports: tuple[DocStore, int]) -> None:
    store, collection_id = reports
    # "budget" (14 of 40) is common here but rarer than "report" (all 40): its passages rank.
    plan = plan_words(store, "budget report", depth=5)
    assert plan is not None and plan.matches[0] != plan.matches[-1]
    ranked = word_ranking(store, collection_id, plan, depth=5)
    assert len(ranked) == 5 and all("budget" in text for text in _texts(store, ranked))
    # A word in every passage weighs nothing in BM25: ranked when nothing else is, not beside
    # a ranking by meaning, which search() makes then.
    assert len(word_ranking(store, collection_id, plan_words(store, "report"), 5)) == 5
    assert plan_words(store, "report", alone=False) is None
    assert search(store, collection_id, "report", lambda texts: [[1.0, 0, 0, 0]], top_k=3)
    assert len(search(store, collection_id, "report", None, top_k=3)) == 3


def test_the_default_thresholds_in_an_index_of_thousands(tmp_path: Path) -> None:
    texts = [f"Week {n} report: {'zeppelin ' if n % 1000 == 0 else ''}weather notes."
             for n in range(4200)]
    with DocStore(tmp_path / "docs.sqlite3") as store:
        collection_id = _collection(store, "Weekly", texts)
        total, counts = store.passage_counts(["report", "zeppelin", "absent"])
        assert (total, counts) == (4200, {"report": 4200, "zeppelin": 5, "absent": 0})
        plan = plan_words(store, "zeppelin report", depth=5)
        assert plan is not None and plan.matches[0] == restricted_query(["zeppelin"],
                                                                        ["report"])
        assert len(set(_texts(store, word_ranking(store, collection_id, plan, 5)))) == 5
        assert plan_words(store, "weather report", alone=False) is None


def test_each_collection_is_searched_alone(reports: tuple[DocStore, int]) -> None:
    store, collection_id = reports
    other = _collection(store, "Other", ["Another zeppelin report."])
    ranked = store.full_text_ranking(collection_id, '"zeppelin"', 10)
    assert len(ranked) == 2 and "Another" not in " ".join(_texts(store, ranked))
    assert _texts(store, store.full_text_ranking(other, '"zeppelin"', 10)) == [
        "Another zeppelin report."]
    store.delete_collection(other)  # the collection is the whole index again
    assert store.full_text_ranking(collection_id, '"zeppelin"', 10) == ranked


def test_codes_and_numbers_are_searched_as_phrases(store: DocStore) -> None:
    assert fts_query("What changed in 4.2.1 (HH-2318, 31,225 SEK)?") == (
        '"changed" OR "4.2.1" OR "HH-2318" OR "31,225" OR "SEK"')
    assert fts_query("e-mail the plan") == '"e" OR "mail" OR "plan"'  # no digit: words
    collection = store.create_collection("Versions")
    texts = ["Version 4.2.1 fixes the crash.", "Version 1.2.4 adds 4 themes and 2 fonts."]
    store.save_file(collection.id, "/v/notes.txt", size=1, mtime_ns=1, hash="v", kind="text",
                    chunks=[Chunk(i, text) for i, text in enumerate(texts)],
                    vectors=np.eye(2, 4, dtype=np.float32), model_id="m")
    hits = search(store, collection.id, "what is in 4.2.1?", None)
    assert [hit.text for hit in hits] == ["Version 4.2.1 fixes the crash."]


def test_a_word_ranking_counts_as_much_as_the_share_of_the_question_it_holds(
        tmp_path: Path) -> None:
    # By meaning (the question's vector is the first passage's), the passages come in order.
    texts = ["Smoke alarms are replaced every ten years.",  # no word of the question
             *(f"Garden note {n}: roses." for n in range(8)),
             "Replace the kitchen tap washer.",  # one word, the question's least weighty
             "Invoice HH-2318 for the boiler valve."]
    angles = np.arange(len(texts)) * 0.1
    vectors = np.stack([np.cos(angles), np.sin(angles), 0 * angles, 0 * angles], axis=1)
    question = "when do fire detectors in the hallway need new batteries or a washer?"
    with DocStore(tmp_path / "docs.sqlite3") as store:
        collection = store.create_collection("Home")
        store.save_file(collection.id, "/h/notes.txt", size=1, mtime_ns=1, hash="h",
                        kind="text", chunks=[Chunk(i, t) for i, t in enumerate(texts)],
                        vectors=vectors.astype(np.float32), model_id="m")
        plan = plan_words(store, question)
        assert plan is not None
        [washer] = store.chunks(store.full_text_ranking(collection.id, plan.matches[-1],
                                                        5)).values()
        # "washer" holds the least of the question's weight: the words no passage holds weigh
        # the most, as in BM25.
        weights = plan.weights
        assert plan.share_held(washer) == pytest.approx(weights["washer"]
                                                        / sum(weights.values()))
        assert weights["washer"] < min(w for word, w in weights.items() if word != "washer")

        def near(texts: list[str]) -> list[list[float]]:
            return [[1.0, 0.0, 0.0, 0.0]]

        hits = search(store, collection.id, question, near, top_k=len(texts))
        # One word in common does not lift a passage over the one nearest in meaning
        # (unweighted, being in both rankings would have put it first).
        assert hits[0].text.startswith("Smoke")
        assert [(h.fts_rank, h.vector_rank) for h in hits if h.chunk_id == washer.id] == [
            (1, 10)]
        by_meaning = [h.chunk_id for h in sorted(hits, key=lambda h: h.vector_rank or 0)]
        unweighted = reciprocal_rank_fusion([[washer.id], by_meaning])
        assert unweighted[0][0] == washer.id
        # A question whose words a passage holds all of puts it first.
        assert search(store, collection.id, "invoice HH-2318", near)[0].text.startswith(
            "Invoice")
