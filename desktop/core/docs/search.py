"""Finding the passages that answer a question, and handing them to the chat model.

Two rankings of a collection's chunks are made: by words (SQLite FTS5's BM25, good at names,
numbers and rare terms) and by meaning (cosine similarity of embeddings, good at paraphrase).
Reciprocal rank fusion merges them: each chunk scores the sum of 1 / (k + rank) over the
rankings it is in, so what both agree on comes first and neither's raw scores need scaling. A
place in the ranking by words counts as much as the share of the question's words (weighed as
BM25 weighs them) that the passage holds: one word of a long question in common is a weak
match however high it ranks. How many passages go to the model is decided by its context.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from desktop.core.docs.records import StoredChunk
from desktop.core.docs.store import DocStore
from desktop.core.docs.text_reader import clean_text
from desktop.core.docs.vectors import Embed, EmbeddingError, embed_texts, nearest

RRF_K = 60
#: How deep each ranking goes before fusion.
CANDIDATES = 50
#: Words kept from a query for the full-text search (a pasted page is not a query).
MAX_QUERY_WORDS = 32
MAX_QUERY_CHARS = 2000
#: A query word held by more than this share of the index's passages, and by more than
#: COMMON_FLOOR of them, is common (see :func:`plan_words`). Below the floor, scoring every
#: passage that holds a word takes a millisecond or two, and nothing is left out.
COMMON_SHARE = 0.05
COMMON_FLOOR = 2000
_WORD = re.compile(r"\w+")
# Letters and digits joined by punctuation: "HH-2318", "4.2.1", "31,225", "192.168.178.20".
_RUN = re.compile(r"\w+(?:[-./:,]\w+)*")
_TOKEN = re.compile(r"[^\W_]+")
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")  # the same, for lower-case ASCII text, faster
_ACCENTS = re.compile("[\u0300-\u036f]")
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


def _query_words(text: str) -> list[str]:
    """The words of *text* that the full-text search looks for: each once, the common English
    ones left out when others remain, at most MAX_QUERY_WORDS."""
    words: list[str] = []
    for run in _RUN.findall(unicodedata.normalize("NFC", text)):
        # A code, a version, a number or a date (joined parts, a digit among them) is looked
        # for as one phrase, its parts in order: "4.2.1" is not any passage with a 4, 2 or 1.
        parts = _WORD.findall(run)
        for word in [run] if len(parts) > 1 and any(c.isdigit() for c in run) else parts:
            # Lone surrogates cannot be stored or searched; other characters are the
            # tokenizer's.
            word = word.encode("utf-8", "ignore").decode("utf-8")
            if word and word.casefold() not in (w.casefold() for w in words):
                words.append(word)
    rare = [word for word in words if word.casefold() not in _COMMON]
    return (rare or words)[:MAX_QUERY_WORDS]


def _any_of(words: Sequence[str]) -> str:
    # Each word quoted, so no character of the input is read as FTS5 syntax.
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words)


def fts_query(text: str) -> str | None:
    """An FTS5 query for the user's *text*: its words, each quoted (so no character of the
    input is read as FTS5 syntax), joined by OR so a passage needs only some of them (BM25
    ranks those with more and rarer ones first). None if the text has no words."""
    words = _query_words(text)
    return _any_of(words) if words else None


def restricted_query(rare: Sequence[str], common: Sequence[str]) -> str:
    """An FTS5 query matching the passages that hold at least one of the *rare* words, which
    BM25 scores exactly as it would the query of all the words (each passage's score counts the
    *common* words it holds too): the passages that hold only common words are not scored."""
    if not common:
        return _any_of(rare)
    either, other = _any_of(rare), _any_of(common)
    # Every passage matches one side only, and only the phrases of the side it matches are
    # counted in its score: the rare words and, where it holds them, the common ones.
    return f"(({either}) AND ({other})) OR (({either}) NOT ({other}))"


def tokens(text: str) -> list[str]:
    """*text* cut into the tokens the full-text index keeps: its tokenizer (unicode61, with
    diacritics removed) folds case, drops accents and splits at what is not a letter or
    digit."""
    text = text.lower()
    if text.isascii():
        return _ASCII_TOKEN.findall(text)
    return _TOKEN.findall(_ACCENTS.sub("", unicodedata.normalize("NFD", text)))


@dataclass(frozen=True)
class WordQuery:
    """How a question is searched by its words: each word's tokens (a code or a number is a
    phrase of several) and the weight BM25 gives it (its idf over the whole index), and the
    FTS5 queries to try in order: the ranking is the first that finds enough passages, or the
    last."""

    phrases: Mapping[str, list[str]]
    weights: Mapping[str, float]
    matches: tuple[str, ...]

    def share_held(self, chunk: StoredChunk) -> float:
        """The share of the words' weight that *chunk* (its text and heading) holds, 0 to 1."""
        held = tokens(f"{chunk.heading or ''} {chunk.text}")
        found = set(held)
        weight = 0.0
        for word, phrase in self.phrases.items():
            if not found.issuperset(phrase):
                continue
            if len(phrase) == 1 or any(held[at:at + len(phrase)] == phrase
                                       for at in range(len(held) - len(phrase) + 1)):
                weight += self.weights[word]
        total = sum(self.weights.values())
        return weight / total if total > 0 else 0.0


def plan_words(store: DocStore, query: str, depth: int = CANDIDATES, *,
               alone: bool = True) -> WordQuery | None:
    """How to rank passages by the words of *query* (None if there is nothing to rank).

    A word held by more than COMMON_SHARE of the index's passages (and more than COMMON_FLOOR)
    weighs little in BM25, and scoring every passage that holds it is most of a search's time
    in a big index. So the first query scores only the passages holding one of the query's
    rarer words, with all its words (their scores do not change): the rare words, or the
    rarest word of a query of common ones, joined by the next rarest while together they are
    held by fewer than *depth* passages. The last scores every passage holding any word.
    Unless the ranking is *alone* (a ranking by meaning is made beside it), a query whose
    every word is in at least half the passages is not ranked: BM25 gives such words no weight
    (FTS5 floors their idf), so it would sort by length alone.
    """
    # A word the tokenizer keeps nothing of ("_") cannot match.
    parts = {word: found for word in _query_words(query) if (found := tokens(word))}
    words = list(parts)
    if not words:
        return None
    total, counts = store.passage_counts({t for found in parts.values() for t in found})
    # A word the tokenizer splits is a phrase: no more passages hold it than its rarest part.
    held = {word: min(counts[t] for t in parts[word]) for word in words}
    # BM25's idf as FTS5 computes it, floored as FTS5 floors it.
    weights = {word: max(math.log((total - n + 0.5) / (n + 0.5)), 1e-6)
               for word, n in held.items()}
    by_rarity = sorted(words, key=held.__getitem__)
    common_above = max(COMMON_SHARE * total, COMMON_FLOOR)
    chosen = sum(1 for word in words if held[word] <= common_above)
    if not chosen and not alone and 2 * held[by_rarity[0]] >= total:
        return None
    chosen = max(chosen, 1)
    while chosen < len(words) and sum(held[word] for word in by_rarity[:chosen]) < depth:
        chosen += 1
    every = _any_of(words)
    matches = (every,) if chosen == len(words) else (
        restricted_query(by_rarity[:chosen], by_rarity[chosen:]), every)
    return WordQuery(parts, weights, matches)


def word_ranking(store: DocStore, collection_id: int, plan: WordQuery | None,
                 depth: int = CANDIDATES) -> list[int]:
    """Chunk ids of a collection best matching a question's words (*plan*, from
    :func:`plan_words`) by BM25, best first, at most *depth*."""
    ranked: list[int] = []
    for match in plan.matches if plan is not None else ():
        ranked = store.full_text_ranking(collection_id, match, depth)
        if len(ranked) >= depth:
            break
    return ranked


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K,
                           weights: Sequence[Mapping[int, float] | None] = ()
                           ) -> list[tuple[int, float]]:
    """Merge rankings of ids (best first) into one: each id scores the sum of w / (k + rank)
    over the rankings it appears in (rank from 1), w being its weight in that ranking
    (``weights[i][id]``; 1 where none is given). Best first; ties keep first-seen order."""
    scores: dict[int, float] = {}
    for number, ranking in enumerate(rankings):
        weight = weights[number] if number < len(weights) else None
        for rank, item in enumerate(ranking, start=1):
            share = 1.0 if weight is None else weight.get(item, 1.0)
            scores[item] = scores.get(item, 0.0) + share / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _model_for(store: DocStore, collection_id: int, model_id: str | None) -> str | None:
    if model_id is not None:
        return model_id
    models = store.embedding_models(collection_id)
    # The model most of the collection was embedded with (the dict is ordered by count).
    return list(models)[-1] if models else None


def meaning_ranking(store: DocStore, collection_id: int, query: str, embed: Embed | None,
                    depth: int = CANDIDATES, model_id: str | None = None) -> list[int]:
    """Chunk ids of a collection nearest *query* in meaning, best first, at most *depth*;
    empty without *embed* or vectors (see :func:`search`)."""
    model = _model_for(store, collection_id, model_id)
    if embed is None or model is None or not query.strip():
        return []
    ids, matrix = store.vectors(collection_id, model)
    if not len(ids):
        return []
    vector = embed_texts(embed, [query])
    if vector.shape[1] != matrix.shape[1]:
        raise EmbeddingError(
            f"The collection was indexed with {model} ({matrix.shape[1]} numbers per "
            f"passage) but the question was embedded with {vector.shape[1]}: search "
            "with the model it was indexed with, or index it again.")
    return [int(ids[row]) for row, _ in nearest(matrix, vector[0], depth)]


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
    by_meaning = meaning_ranking(store, collection_id, query, embed, depth, model_id)
    plan = plan_words(store, query, depth, alone=not by_meaning)
    by_words = word_ranking(store, collection_id, plan, depth)
    found = store.chunks(by_words)
    # Weighed only against another ranking: alone, the words keep BM25's order.
    held = {item: plan.share_held(chunk) for item, chunk in found.items()} \
        if plan and by_meaning else None
    fused = reciprocal_rank_fusion([by_words, by_meaning], weights=[held, None])
    word_rank = {item: rank for rank, item in enumerate(by_words, start=1)}
    meaning_rank = {item: rank for rank, item in enumerate(by_meaning, start=1)}
    chosen = fused[:top_k * 2]  # a few spare, for chunks deleted since they were ranked
    found.update(store.chunks([item for item, _ in chosen if item not in found]))
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
