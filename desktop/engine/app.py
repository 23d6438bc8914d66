"""HTTP routes: the OpenAI-compatible API on both listeners, control routes on the private one."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from desktop import __version__
from desktop.core.listening import ListenError, receive
from desktop.engine.docs_search import add_routes as add_docs_routes
from desktop.engine.errors import APIError
from desktop.engine.gate import Gate
from desktop.engine.generation import Generation
from desktop.engine.jobs import Job, Steps
from desktop.engine.responses import ResponseStore
from desktop.engine.responses import add_routes as add_responses_routes
from desktop.engine.runner import LoadSettings, native_abort
from desktop.engine.schemas import (
    AdapterAddRequest,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    LoadRequest,
    PublicRequest,
    StackRequest,
    parse,
)
from desktop.engine.state import Engine


def _error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _error_response(APIError(exc.status_code, str(exc.detail), code=code))


async def _run(engine: Engine, work: Callable[[Job], Any], exclusive: bool = True) -> Any:
    """Run *work* on the model thread and return its result (or raise its error).

    *exclusive* work (loading, adapters) waits until no reply is being written.
    """
    job = engine.runner.submit(work, asyncio.get_running_loop(), exclusive=exclusive)
    try:
        while True:
            kind, payload = await job.events.get()
            if kind == "result":
                return payload
            if kind == "error":
                raise payload
    finally:
        job.cancel()


def _add_openai_routes(app: FastAPI, engine: Engine) -> None:
    @app.get("/health")
    async def health() -> dict[str, Any]:
        model = engine.runner.model
        return {"status": "ok", "version": __version__,
                "model": None if model is None else model.id}

    @app.get("/nomoat/status")
    async def nomoat_status() -> dict[str, Any]:
        """What other programs may know: the model, its slots and the queue."""
        model = engine.runner.model
        return {"model": None if model is None else model.id,
                "context_per_slot": None if model is None else model.n_ctx,
                **engine.runner.scheduler.describe()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": engine.model_list()}

    @app.get("/lora-adapters")
    async def lora_adapters() -> list[dict[str, Any]]:
        return engine.lora_adapters()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = parse(ChatRequest, await request.body())
        return await Generation(engine, request, body, chat=True).respond()

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = parse(CompletionRequest, await request.body())
        return await Generation(engine, request, body, chat=False).respond()

    if engine.responses is None:
        engine.responses = ResponseStore()
    add_responses_routes(app, engine, engine.responses)
    add_docs_routes(app, engine, _run)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = parse(EmbeddingRequest, await request.body())
        texts = body.texts()

        def work(job: Job) -> tuple[str, list[list[float]], int] | Steps:
            embedder = engine.embedding_model(body.model)
            if embedder is not None:  # its own context: a batch at a time between chat steps
                return Steps(embedder.embed_steps(texts))
            model = engine.use(body.model)
            vectors, count = engine.runner.embed(texts)
            return model.id, vectors, count

        model_id, vectors, count = await _run(engine, work, exclusive=False)
        data = []
        for index, vector in enumerate(vectors):
            value: Any = vector
            if body.encoding_format == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        request.state.tokens = count
        return {"object": "list", "data": data, "model": model_id,
                "usage": {"prompt_tokens": count, "total_tokens": count}}


def _add_control_routes(app: FastAPI, engine: Engine) -> None:
    @app.get("/control/status")
    async def status() -> dict[str, Any]:
        return engine.status()

    @app.post("/control/load")
    async def load(request: Request) -> dict[str, Any]:
        body = parse(LoadRequest, await request.body())
        settings = LoadSettings(n_ctx=body.n_ctx or None, n_threads=body.n_threads,
                                n_batch=body.n_batch, n_gpu_layers=body.n_gpu_layers,
                                chat_template=body.chat_template, parallel=body.parallel)
        await _run(engine, lambda job: engine.load(body.model, settings))
        return engine.status()

    @app.post("/control/unload")
    async def unload() -> dict[str, Any]:
        await _run(engine, lambda job: engine.runner.unload())
        return engine.status()

    @app.get("/control/adapters")
    async def adapters() -> dict[str, Any]:
        return engine.adapter_state()

    @app.post("/control/adapters")
    async def add_adapter(request: Request) -> dict[str, Any]:
        body = parse(AdapterAddRequest, await request.body())
        await _run(engine, lambda job: engine.add_adapter(body.name, body.path))
        return engine.adapter_state()

    @app.delete("/control/adapters/{name}")
    async def remove_adapter(name: str) -> dict[str, Any]:
        await _run(engine, lambda job: engine.remove_adapter(name))
        return engine.adapter_state()

    @app.post("/control/adapters/stack")
    async def set_stack(request: Request) -> dict[str, Any]:
        entries = parse(StackRequest, await request.body()).entries()
        await _run(engine, lambda job: engine.set_stack(entries))
        return engine.adapter_state()

    @app.post("/control/public")
    async def public(request: Request) -> dict[str, Any]:
        body = parse(PublicRequest, await request.body())
        if body.enabled:
            sock = None
            if body.socket is not None:
                try:
                    sock = receive(engine.handover)
                except (OSError, ListenError) as exc:
                    raise APIError(409, f"The engine could not take over the port: {exc}",
                                   code="listen_failed", param="port") from exc
            await engine.public.open(body.host, body.port, body.api_key, body.cors_origins,
                                     sock=sock)
        else:
            await engine.public.close()
        return engine.public.describe()

    @app.post("/control/debug/abort")
    async def debug_abort() -> None:
        """Abort the engine in native code, as a failed assertion in llama.cpp does."""
        native_abort("abort asked for through /control/debug/abort")

    @app.get("/control/requests")
    async def requests_log() -> dict[str, Any]:
        return {"requests": list(engine.public.log)}


def create_private_app(engine: Engine) -> Gate:
    """The app's own listener: OpenAI routes and control routes, all behind the launch token."""
    app = FastAPI(title="NoMoat engine", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    _install_error_handlers(app)
    _add_openai_routes(app, engine)
    _add_control_routes(app, engine)
    return Gate(app, api_key=engine.token, open_paths={"/health"})


def create_public_app(engine: Engine, api_key: str | None, cors_origins: list[str],
                      log: Any) -> Any:
    """The listener other programs use: OpenAI routes only, optional key, CORS."""
    from starlette.middleware.cors import CORSMiddleware

    app = FastAPI(title="NoMoat", version=__version__, docs_url=None, redoc_url=None)
    _install_error_handlers(app)
    _add_openai_routes(app, engine)
    gated = Gate(app, api_key=api_key or None, log=log)
    if not cors_origins:
        return gated
    return CORSMiddleware(gated, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                          allow_headers=["Authorization", "Content-Type"], max_age=600)
