"""HTTP routes: the OpenAI-compatible API on both listeners, control routes on the private one."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from desktop import __version__
from desktop.core.listening import ListenError, receive
from desktop.engine.adapters import AdapterSet
from desktop.engine.errors import APIError
from desktop.engine.gate import Gate
from desktop.engine.jobs import GenerationResult, Job, Prepared
from desktop.engine.runner import LoadSettings, native_abort
from desktop.engine.sampling import Sampling
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


def _usage(result: GenerationResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": result.cached_tokens},
    }


def _finish(result: GenerationResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


class _Generation:
    """One chat or text completion: starts the job, then answers whole or as SSE."""

    def __init__(self, engine: Engine, request: Request, body: ChatRequest | CompletionRequest,
                 chat: bool) -> None:
        self.engine = engine
        self.request = request
        self.body = body
        self.chat = chat
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model_id = ""

    def _prepare(self, sampling: Sampling) -> Callable[[Job], Prepared]:
        body = self.body

        def prepare(job: Job) -> Prepared:
            model, adapters, shown = self.engine.use_with_adapters(body.model,
                                                                   body.adapter_refs())
            runner = self.engine.runner
            if isinstance(body, ChatRequest):
                tokens = runner.chat_prompt(body.plain_messages())
            else:
                tokens = runner.text_prompt(body.prompt_text())
            runner.check_fits(tokens)
            active = runner.adapters.stack_active() if adapters is None else adapters
            return Prepared(tokens, sampling, AdapterSet.key(active),
                            lambda: runner.adapters.apply(model, active), shown,
                            reuse_cache=body.cache_prompt, model=model)

        return prepare

    async def respond(self) -> Response:
        sampling = self.body.sampling()
        if self.chat:
            assert isinstance(self.body, ChatRequest)
            self.body.plain_messages()  # reject an empty list before queueing
        job = self.engine.runner.submit_generation(self._prepare(sampling),
                                                   asyncio.get_running_loop())
        # A client that gives up while its request waits for a slot leaves the queue.
        watcher = asyncio.create_task(self._watch_disconnect(job))
        try:
            kind, payload = await job.events.get()
            if kind == "error":
                raise payload
            if kind != "started":
                raise APIError(499, "The request was cancelled before it started.",
                               code="cancelled")
            self.model_id = payload
        except BaseException:
            job.cancel()
            raise
        finally:
            watcher.cancel()
        if self.body.stream:
            return StreamingResponse(self._sse(job), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache",
                                              "X-Accel-Buffering": "no"})
        return await self._whole(job)

    async def _whole(self, job: Job) -> JSONResponse:
        parts: list[str] = []
        watcher = asyncio.create_task(self._watch_disconnect(job))
        try:
            while True:
                kind, payload = await job.events.get()
                if kind == "text":
                    parts.append(payload)
                elif kind == "error":
                    raise payload
                elif kind == "result":
                    result: GenerationResult = payload
                    break
        finally:
            watcher.cancel()
            job.cancel()
        text = "".join(parts)
        self.request.state.tokens = result.completion_tokens
        if self.chat:
            choice: dict[str, Any] = {"index": 0,
                                      "message": {"role": "assistant", "content": text},
                                      "logprobs": None, "finish_reason": _finish(result)}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None,
                      "finish_reason": _finish(result)}
            obj = "text_completion"
        return JSONResponse({"id": self.id, "object": obj, "created": self.created,
                             "model": self.model_id, "choices": [choice],
                             "usage": _usage(result)})

    async def _watch_disconnect(self, job: Job) -> None:
        while not job.cancelled.is_set():
            if await self.request.is_disconnected():
                job.cancel()
                return
            await asyncio.sleep(0.25)

    def _chunk(self, delta: dict[str, Any] | None, text: str | None,
               finish: str | None) -> dict[str, Any]:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "logprobs": None,
                                      "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None,
                      "finish_reason": finish}
            obj = "text_completion"
        chunk: dict[str, Any] = {"id": self.id, "object": obj, "created": self.created,
                                 "model": self.model_id, "choices": [choice]}
        if self.body.include_usage:
            chunk["usage"] = None
        return chunk

    async def _sse(self, job: Job) -> AsyncIterator[bytes]:
        def event(data: Any) -> bytes:
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

        # A text chunk differs from the next only in its text: build the rest once, so each
        # token costs the event loop (which shares the cores with llama.cpp) one json.dumps.
        marker = "\u0000text\u0000"
        template = event(self._chunk({"content": marker}, marker, None)).decode()
        head, _, tail = template.partition(json.dumps(marker))
        try:
            if self.chat:
                yield event(self._chunk({"role": "assistant", "content": ""}, None, None))
            pending: tuple[str, Any] | None = None
            while True:
                kind, payload = pending or await job.events.get()
                pending = None
                if kind == "text":
                    # Text that queued up while the client was slow goes out as one chunk.
                    while not job.events.empty():
                        pending = job.events.get_nowait()
                        if pending[0] != "text":
                            break
                        payload += pending[1]
                        pending = None
                    yield (head + json.dumps(payload, ensure_ascii=False) + tail).encode()
                elif kind == "error":
                    yield event(payload.body())
                    break
                elif kind == "result":
                    result: GenerationResult = payload
                    self.request.state.tokens = result.completion_tokens
                    yield event(self._chunk({}, "", _finish(result)))
                    if self.body.include_usage:
                        yield event({"id": self.id, "object": self._chunk(None, None, None)
                                     ["object"], "created": self.created,
                                     "model": self.model_id, "choices": [],
                                     "usage": _usage(result)})
                    break
            yield b"data: [DONE]\n\n"
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
        return await _Generation(engine, request, body, chat=True).respond()

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = parse(CompletionRequest, await request.body())
        return await _Generation(engine, request, body, chat=False).respond()

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = parse(EmbeddingRequest, await request.body())
        texts = body.texts()

        def work(job: Job) -> tuple[str, list[list[float]], int]:
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
