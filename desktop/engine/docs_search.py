"""``POST /v1/nomoat/search``: other programs search the user's document collections through
the engine, with the index the window and ``nomoat docs`` keep (desktop/core/docs).

The question is embedded by the collection's own embedding model on the model thread, like any
embeddings request; reading the index and ranking run on a worker thread, so a search never
holds up the replies being written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Request
from pydantic import Field

from desktop.core.docs.records import CollectionNotFound
from desktop.core.docs.search import Hit, search
from desktop.core.docs.store import DocStore
from desktop.core.docs.vectors import EmbeddingError, text_prefix
from desktop.engine.errors import APIError, bad_request
from desktop.engine.jobs import Job, Steps
from desktop.engine.schemas import _Body, parse
from desktop.engine.state import Engine

Run = Callable[[Engine, Callable[[Job], Any], bool], Awaitable[Any]]
EMBED_TIMEOUT_S = 120.0


class SearchRequest(_Body):
    collection: Annotated[str, Field(min_length=1, max_length=200)]
    query: Annotated[str, Field(min_length=1, max_length=4000)]
    top_k: Annotated[int, Field(ge=1, le=50)] = 8


def add_routes(app: Any, engine: Engine, run: Run) -> None:
    @app.post("/v1/nomoat/search")
    async def search_documents(request: Request) -> dict[str, Any]:
        body = parse(SearchRequest, await request.body())
        loop = asyncio.get_running_loop()

        def embedder(model_id: str) -> Callable[[list[str]], list[list[float]]]:
            def embed(texts: list[str]) -> list[list[float]]:
                prefixed = [text_prefix(model_id, True) + text for text in texts]

                def work(job: Job) -> Steps:
                    model = engine.embedding_model(model_id)
                    if model is None:
                        raise APIError(409, f"The collection {body.collection!r} was indexed "
                                            f"with {model_id}, which is not installed now. "
                                            "Install it again, or index the collection anew.",
                                       code="embedding_model_missing")
                    return Steps(model.embed_steps(prefixed))

                future = asyncio.run_coroutine_threadsafe(run(engine, work, False), loop)
                _, vectors, _ = future.result(EMBED_TIMEOUT_S)
                return vectors

            return embed

        def find() -> list[Hit]:
            with DocStore() as store:
                found = next((c for c in store.collections() if c.name == body.collection),
                             None)
                if found is None:
                    names = ", ".join(repr(c.name) for c in store.collections()) or "none yet"
                    raise APIError(404, f"There is no document collection called "
                                        f"{body.collection!r}. Collections: {names}.",
                                   param="collection", code="collection_not_found")
                models = store.embedding_models(found.id)
                model = list(models)[-1] if models else None
                embed = embedder(model) if model is not None else None
                try:
                    return search(store, found.id, body.query, embed, body.top_k,
                                  model_id=model)
                except CollectionNotFound as exc:
                    raise APIError(404, f"The collection {body.collection!r} was deleted.",
                                   param="collection", code="collection_not_found") from exc
                except EmbeddingError as exc:
                    raise bad_request(str(exc), param="collection") from exc

        hits = await asyncio.to_thread(find)
        return {"object": "list", "collection": body.collection, "query": body.query,
                "data": [hit.as_json() for hit in hits]}
