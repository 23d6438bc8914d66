"""The document index's link to an engine: which embedding model indexes and searches, and
embedding functions that ask an engine's ``/v1/embeddings`` for it."""

from __future__ import annotations

from collections.abc import Sequence

from desktop.client.api import EngineClient, EngineError
from desktop.core.docs.records import Collection
from desktop.core.docs.search import Hit, fit_to_context, search
from desktop.core.docs.store import DocStore
from desktop.core.docs.vectors import Embed, EmbeddingError, text_prefix
from desktop.core.gguf_info import EMBEDDING
from desktop.core.library import InstalledModel

class NoEmbeddingModel(LookupError):
    """No embedding model is installed, or the one asked for is not; the message says what to
    do."""


def choose_embedding_model(installed: Sequence[InstalledModel], wanted: str | None = None,
                           indexed_with: str | None = None) -> str:
    """The id of the embedding model to use: the one a collection was indexed with, else the
    one the settings name, else the first installed."""
    ready = [m.id for m in installed if m.kind == EMBEDDING and m.problem is None]
    for choice in (indexed_with, wanted):
        if choice:
            if choice in ready:
                return choice
            raise NoEmbeddingModel(
                f"The embedding model {choice!r} is not installed. Install it again (nomoat "
                f"download {choice}), or choose another.")
    if not ready:
        raise NoEmbeddingModel(
            "Documents are searched with an embedding model, and none is installed. Download "
            "one (nomoat download nomic-embed-text-v1-5), or import a GGUF embedding model.")
    return ready[0]


def engine_embed(client: EngineClient, model_id: str, query: bool = False) -> Embed:
    """An embedding function for the document index: *model_id* through *client*'s engine.
    *query* marks the texts as questions (some models embed those differently)."""
    prefix = text_prefix(model_id, query)

    def embed(texts: list[str]) -> list[list[float]]:
        try:
            vectors, _ = client.embeddings([prefix + text for text in texts], model=model_id)
        except EngineError as exc:
            raise EmbeddingError(str(exc)) from exc
        return vectors

    return embed


class NoCollection(LookupError):
    """No collection has that name; the message names the ones there are."""


def find_collection(store: DocStore, name: str) -> Collection:
    """The collection called *name* (NoCollection, naming the others, if there is none)."""
    collections = store.collections()
    found = next((c for c in collections if c.name == name), None)
    if found is None:
        names = ", ".join(repr(c.name) for c in collections) or "none yet"
        raise NoCollection(f"There is no document collection called {name!r}. Collections: "
                           f"{names}.")
    return found


def estimate_tokens(text: str) -> int:
    """About how many tokens *text* takes: a cautious 3.5 characters a token (English prose
    runs nearer 4), so passages fitted by it leave the reply its room."""
    return int(len(text) / 3.5) + 1


def retrieve(client: EngineClient, store: DocStore, names: Sequence[str], question: str,
             budget: int, top_k: int = 16) -> list[Hit]:
    """The passages of the collections *names* that best answer *question*, best first, as
    many as fit in *budget* tokens (at least one, when anything matches). Each collection is
    searched with the embedding model it was indexed with, through *client*'s engine."""
    hits: list[Hit] = []
    for name in names:
        collection = find_collection(store, name)
        models = store.embedding_models(collection.id)
        model = list(models)[-1] if models else None
        embed = engine_embed(client, model, query=True) if model else None
        hits.extend(search(store, collection.id, question, embed, top_k, model_id=model))
    hits.sort(key=lambda hit: -hit.score)
    return fit_to_context(hits, estimate_tokens, budget)


def sources_budget(context_tokens: int) -> int:
    """The tokens of a reply's context that passages may take: half, so the conversation and
    the reply keep the rest."""
    return max(128, context_tokens // 2)
