"""Finding the passages that answer a question, and handing them to the chat model.

Two rankings of a collection's chunks are made: by words (SQLite FTS5's BM25, good at names,
numbers and rare terms) and by meaning (cosine similarity of embeddings, good at paraphrase).
Reciprocal rank fusion merges them: each chunk scores the sum of 1 / (k + rank) over the
rankings it is in, so what both agree on comes first and neither's raw scores need scaling.
How many passages go to the model is decided by its context, not fixed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from desktop.core.docs.store import DocStore
from desktop.core.docs.text_reader import clean_text
from desktop.core.docs.vectors import Embed, EmbeddingError, embed_texts, nearest

RRF_K = 60
#: How deep each ranking goes before fusion.
CANDIDATES = 50
#: Words kept from a query for the full-text search (a pasted page is not a query).
MAX_QUERY_WORDS = 32
MAX_QUERY_CHARS = 2000
_WORD = re.compile(r"\w+")
# Words too common to help find anything; left out of the full-text query when it has others.
_COMMON = frozenset("""a an and are as at be by can do does for from had has have how i in is
it its me my of on or that the their there this to was what when where which who why will with
you your""".split())


@dataclass(frozen=True)
class Hit:
    """A passage found for a query: where it is (file, page, heading), its text, its fused
    score and its place in each ranking (1-based; None where it was not ranked)."""

    path: str
    page: int | None
    heading: str | None
    text: str
    score: float
    fts_rank: int | None
    vector_rank: int | None
    chunk_id: int
    ordinal: int

    def as_json(self) -> dict[str, Any]:
        """The passage as ``nomoat docs search --json`` and ``/v1/nomoat/search`` give it."""
        return {"file": self.path, "page": self.page, "heading": self.heading,
                "score": self.score, "text": self.text, "word_rank": self.fts_rank,
                "meaning_rank": self.vector_rank}


def fts_query(text: str) -> str | None:
    """An FTS5 query for the user's *text*: its words, each quoted (so no character of the
    input is read as FTS5 syntax), joined by OR so a passage needs only some of them (BM25
    ranks those with more and rarer ones first). None if the text has no words."""
    words: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFC", text)):
        # Lone surrogates cannot be stored or searched; other characters are the tokenizer's.
        word = word.encode("utf-8", "ignore").decode("utf-8")
        if word and word.casefold() not in (w.casefold() for w in words):
            words.append(word)
    if not words:
        return None
    rare = [word for word in words if word.casefold() not in _COMMON]
    chosen = (rare or words)[:MAX_QUERY_WORDS]
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in chosen)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]],
                           k: int = RRF_K) -> list[tuple[int, float]]:
    """Merge rankings of ids (best first) into one: each id scores the sum of 1 / (k + rank)
    over the rankings it appears in (rank from 1). Best first; ties keep first-seen order."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _model_for(store: DocStore, collection_id: int, model_id: str | None) -> str | None:
    if model_id is not None:
        return model_id
    models = store.embedding_models(collection_id)
    # The model most of the collection was embedded with (the dict is ordered by count).
    return list(models)[-1] if models else None


def search(store: DocStore, collection_id: int, query: str, embed: Embed | None,
           top_k: int = 8, *, model_id: str | None = None,
           candidates: int = CANDIDATES) -> list[Hit]:
    """The *top_k* passages of a collection best matching *query*, best first.

    *embed* embeds the query with the model the collection was indexed with (*model_id*; by
    default the one most of its chunks were embedded by). Without *embed* (no embedding model
    at hand) only the words are searched. Raises EmbeddingError if the model fails or its
    vectors are not the size of the collection's.
    """
    if top_k <= 0:
        return []
    # What cannot be encoded (lone surrogates, NUL) goes; a pasted page is cut to a question's
    # length.
    query = clean_text(query)[:MAX_QUERY_CHARS]
    depth = max(candidates, top_k)
    match = fts_query(query)
    by_words = store.full_text_ranking(collection_id, match, depth) if match else []
    by_meaning: list[int] = []
    model = _model_for(store, collection_id, model_id)
    if embed is not None and model is not None and query.strip():
        ids, matrix = store.vectors(collection_id, model)
        if len(ids):
            vector = embed_texts(embed, [query])
            if vector.shape[1] != matrix.shape[1]:
                raise EmbeddingError(
                    f"The collection was indexed with {model} ({matrix.shape[1]} numbers per "
                    f"passage) but the question was embedded with {vector.shape[1]}: search "
                    "with the model it was indexed with, or index it again.")
            by_meaning = [int(ids[row]) for row, _ in nearest(matrix, vector[0], depth)]
    fused = reciprocal_rank_fusion([by_words, by_meaning])
    word_rank = {item: rank for rank, item in enumerate(by_words, start=1)}
    meaning_rank = {item: rank for rank, item in enumerate(by_meaning, start=1)}
    chosen = fused[:top_k * 2]  # a few spare, for chunks deleted since they were ranked
    found = store.chunks([item for item, _ in chosen])
    hits = []
    for item, score in chosen:
        chunk = found.get(item)
        if chunk is None:
            continue
        hits.append(Hit(chunk.path, chunk.page, chunk.heading, chunk.text, score,
                        word_rank.get(item), meaning_rank.get(item), chunk.id, chunk.ordinal))
    return hits[:top_k]


def format_source(number: int, hit: Hit) -> str:
    """One passage as the chat model reads it: "[n] file, page p — heading", then the text."""
    where = Path(hit.path).name
    if hit.page is not None:
        where += f", page {hit.page}"
    if hit.heading:
        where += f" — {hit.heading}"
    return f"[{number}] {where}\n{hit.text}"


def fit_to_context(hits: Sequence[Hit], count_tokens: Callable[[str], int],
                   budget: int) -> list[Hit]:
    """As many of *hits*, best first, as fit in *budget* tokens once formatted for the prompt
    (see :func:`prompt_with_sources`), and always at least the first: cut short to fit if it
    alone is too long."""
    chosen: list[Hit] = []
    used = count_tokens(_PREAMBLE)
    for number, hit in enumerate(hits, start=1):
        cost = count_tokens(format_source(number, hit) + "\n\n")
        if used + cost > budget:
            break
        chosen.append(hit)
        used += cost
    if not chosen and hits:
        chosen.append(_shortened(hits[0], count_tokens, max(0, budget - used)))
    return chosen


def _shortened(hit: Hit, count_tokens: Callable[[str], int], budget: int) -> Hit:
    # The longest start of the text that fits, found by halving (a dozen counts at most).
    low, high = 0, len(hit.text)
    while low < high:
        middle = (low + high + 1) // 2
        trial = replace(hit, text=hit.text[:middle])
        if count_tokens(format_source(1, trial) + "\n\n") <= budget:
            low = middle
        else:
            high = middle - 1
    return replace(hit, text=hit.text[:low])


_PREAMBLE = ("Passages from the user's documents follow. Answer from them where they help, and "
             "cite each passage you use by its number, like [1]. If they do not hold the "
             "answer, say so.")


def prompt_with_sources(hits: Sequence[Hit]) -> str:
    """The passages for the chat model's prompt, numbered [1], [2]… each with its file and
    page, after a line saying how to use them. Empty if there are none."""
    if not hits:
        return ""
    passages = "\n\n".join(format_source(number, hit) for number, hit in enumerate(hits, 1))
    return f"{_PREAMBLE}\n\n{passages}"


def ask_with_sources(messages: list[dict[str, Any]], sources: str) -> list[dict[str, Any]]:
    """*messages* with the passages (*sources*, from :func:`prompt_with_sources`) put before the
    text of the last user message, in the same message: every chat template takes that, where
    some (Gemma's, strict Mistral ones) refuse a system message anywhere but first. Unchanged
    without passages."""
    if not sources:
        return messages
    last = next((i for i in range(len(messages) - 1, -1, -1)
                 if messages[i].get("role") == "user"), None)
    if last is None or not isinstance(messages[last].get("content"), str):
        return messages
    question = messages[last]["content"]
    asked = {**messages[last], "content": f"{sources}\n\nQuestion: {question}"}
    return [*messages[:last], asked, *messages[last + 1:]]
