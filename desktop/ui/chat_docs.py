"""Documents in the chat: which collections a conversation answers from, the passages found
for a turn's question, and where they go in the prompt.

The search runs on the turn's worker, against the local engine's embedding model (even while
replies come from a server elsewhere: the index was made with the engine on this computer).
A search that fails never stops the reply: it comes without passages, and the note says why.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.client.api import EngineClient, EngineError
from desktop.client.docs import (NoCollection, estimate_tokens, find_collection, retrieve,
                                 sources_budget)
from desktop.core.chat_records import SNIPPET_CHARS, Conversation, Source
from desktop.core.docs.schema import DocStoreError
from desktop.core.docs.search import (
    Hit,
    ask_with_sources,
    fit_to_context,
    prompt_with_sources,
    search,
)
from desktop.core.docs.store import DocStore
from desktop.core.docs.vectors import EmbeddingError


@dataclass(frozen=True)
class DocsFound:
    """What a turn's search found: the sources saved with the reply, the system message that
    carries them to the model ("" for none), and what the user should know ("" if nothing)."""

    sources: list[Source] = field(default_factory=list)
    prompt: str = ""
    note: str = ""


def docs_of(conversation: Conversation) -> list[str]:
    """The document collections the conversation answers from."""
    docs = conversation.settings.get("docs")
    return [d for d in docs if isinstance(d, str)] if isinstance(docs, list) else []


def question_of(history: Sequence[dict[str, Any]]) -> str:
    """The text of the last user message: what the passages must answer."""
    return next((str(m.get("content") or "") for m in reversed(history)
                 if m.get("role") == "user"), "")


def with_sources(messages: list[dict[str, Any]], prompt: str) -> list[dict[str, Any]]:
    """*messages* with the passages (*prompt*) in the last user message, before its question
    (see :func:`ask_with_sources`); the conversation's own system prompt stays first."""
    return ask_with_sources(messages, prompt)


def as_source(hit: Hit) -> Source:
    """A search hit as it is saved with the reply."""
    return Source(hit.path, hit.page, hit.heading, hit.text[:SNIPPET_CHARS], hit.score)


def search_documents(store: DocStore | None, client: Callable[[], EngineClient],
                     names: list[str], question: str, context: int) -> DocsFound:
    """The passages of the collections *names* for *question*, fitted to half of *context*.

    When the embedding model cannot be used (removed, or the engine is down), the words alone
    are searched and the note says so; when the collections cannot be searched at all, there
    are no passages and the note says why.
    """
    if store is None:
        return DocsFound(note="The document index is not open yet, so this reply does not use "
                              "your documents. Try again in a moment.")
    budget = sources_budget(context)
    note = ""
    try:
        try:
            hits = retrieve(client(), store, names, question, budget)
        except (EmbeddingError, EngineError) as exc:
            hits = _by_words(store, names, question, budget)
            note = (f"Your documents were searched by their words only: the embedding model "
                    f"could not be used ({exc}).")
    except NoCollection as exc:
        return DocsFound(note=f"{exc} Pick the collections again with the Documents button; "
                              "this reply does not use them.")
    except (DocStoreError, EmbeddingError, OSError, sqlite3.Error) as exc:
        return DocsFound(note=f"Your documents could not be searched ({exc}); this reply does "
                              "not use them.")
    if not hits and not note:
        note = "Nothing in the chosen documents matches this message."
    return DocsFound([as_source(hit) for hit in hits], prompt_with_sources(hits), note)


def _by_words(store: DocStore, names: list[str], question: str, budget: int) -> list[Hit]:
    hits: list[Hit] = []
    for name in names:
        hits.extend(search(store, find_collection(store, name).id, question, None, 16))
    hits.sort(key=lambda hit: -hit.score)
    return fit_to_context(hits, estimate_tokens, budget)
