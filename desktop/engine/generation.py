"""Chat and text completions: a request queued for a slot, then answered whole or as SSE,
with tool calls, thinking and log-probabilities in OpenAI's shapes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from desktop.engine.adapters import AdapterSet
from desktop.engine.errors import APIError
from desktop.engine.grammar import Constraint
from desktop.engine.jobs import GenerationResult, Job, Prepared
from desktop.engine.plan import ChatPlan, output_grammar, plan_chat, tool_setup
from desktop.engine.reply import (
    ReplyReader,
    chat_delta,
    chat_logprob,
    chat_message,
    completion_logprobs,
)
from desktop.engine.sampling import Sampling
from desktop.engine.schemas import ChatRequest, CompletionRequest
from desktop.engine.state import Engine
from desktop.engine.steering import Steer


def usage(result: GenerationResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": result.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": result.reasoning_tokens},
    }


class Generation:
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
        self.reader = ReplyReader(None)
        self.logprobs = body.top_logprobs_wanted() is not None

    def check(self) -> Callable[[Job], Prepared]:
        """Everything about the request that can be refused before it queues; what then
        makes its prompt once it reaches a slot."""
        body = self.body
        sampling = body.sampling()
        grammar = output_grammar(body.response_format)
        if isinstance(body, ChatRequest):
            messages = body.plain_messages()
            setup = tool_setup(body.tools, body.tool_choice, body.parallel_tool_calls)
            thinking, budget = body.thinking(), body.thinking_budget

            def chat(job: Job) -> Prepared:
                return self._prepare(sampling, grammar, messages, setup, thinking, budget)

            return chat
        prompt = body.prompt_text()
        return lambda job: self._prepare_text(sampling, grammar, prompt)

    def _stack(self) -> tuple[Any, Any, str]:
        return self.engine.use_with_adapters(self.body.model, self.body.adapter_refs())

    def _prepared(self, tokens: list[int], sampling: Sampling, steer: Steer,
                  visible: frozenset[int], plan: ChatPlan | None) -> Prepared:
        model, adapters, shown = self._stack()
        runner = self.engine.runner
        runner.check_fits(tokens)
        active = runner.adapters.stack_active() if adapters is None else adapters
        return Prepared(tokens, sampling, AdapterSet.key(active),
                        lambda: runner.adapters.apply(model, active), shown,
                        reuse_cache=self.body.cache_prompt, model=model, steer=steer,
                        visible=visible, plan=plan)

    def _prepare(self, sampling: Sampling, grammar: str | None,
                 messages: list[dict[str, Any]], setup: Any, thinking: bool | None,
                 budget: int | None) -> Prepared:
        self._stack()  # the model first: the plan needs its template
        model = self.engine.runner.require_model()
        plan = plan_chat(model, messages, setup, grammar, thinking, budget)
        return self._prepared(self.engine.runner.nonempty(plan.tokens), sampling, plan.steer,
                              plan.visible, plan)

    def _prepare_text(self, sampling: Sampling, grammar: str | None, prompt: str) -> Prepared:
        self._stack()
        tokens = self.engine.runner.text_prompt(prompt)
        steer = Steer(Constraint(grammar) if grammar is not None else None)
        return self._prepared(tokens, sampling, steer, frozenset(), None)

    async def start(self) -> Job:
        """Check the request, queue it, and wait until a slot takes it (or raise its error)."""
        prepare = self.check()
        job = self.engine.runner.submit_generation(prepare, asyncio.get_running_loop())
        # A client that gives up while its request waits for a slot leaves the queue.
        watcher = asyncio.create_task(self.watch_disconnect(job))
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
        assert job.prepared is not None
        self.reader = ReplyReader(job.prepared.plan)
        return job

    async def respond(self) -> Response:
        job = await self.start()
        if self.body.stream:
            return StreamingResponse(self._sse(job), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache",
                                              "X-Accel-Buffering": "no"})
        return await self._whole(job)

    async def _whole(self, job: Job) -> JSONResponse:
        reader = self.reader
        watcher = asyncio.create_task(self.watch_disconnect(job))
        try:
            while True:
                kind, payload = await job.events.get()
                if kind == "text":
                    reader.text(payload)
                elif kind == "logprob":
                    reader.logprob(payload)
                elif kind == "error":
                    raise payload
                elif kind == "result":
                    result: GenerationResult = payload
                    break
        finally:
            watcher.cancel()
            job.cancel()
        reader.finish()
        self.request.state.tokens = result.completion_tokens
        finish = reader.finish_reason(result.finish_reason)
        if self.chat:
            logprobs = None
            if self.logprobs:
                logprobs = {"content": [chat_logprob(e) for e in reader.logprobs],
                            "refusal": None}
            choice: dict[str, Any] = {"index": 0, "message": chat_message(reader),
                                      "logprobs": logprobs, "finish_reason": finish}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": "".join(reader.content),
                      "logprobs": (completion_logprobs(reader.logprobs) if self.logprobs
                                   else None),
                      "finish_reason": finish}
            obj = "text_completion"
        return JSONResponse({"id": self.id, "object": obj, "created": self.created,
                             "model": self.model_id, "choices": [choice],
                             "usage": usage(result)})

    async def watch_disconnect(self, job: Job) -> None:
        while not job.cancelled.is_set():
            if await self.request.is_disconnected():
                job.cancel()
                return
            await asyncio.sleep(0.25)

    def _chunk(self, delta: dict[str, Any] | None, text: str | None, finish: str | None,
               logprobs: Any = None) -> dict[str, Any]:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "logprobs": logprobs,
                                      "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text or "", "logprobs": logprobs,
                      "finish_reason": finish}
            obj = "text_completion"
        chunk: dict[str, Any] = {"id": self.id, "object": obj, "created": self.created,
                                 "model": self.model_id, "choices": [choice]}
        if self.body.include_usage:
            chunk["usage"] = None
        return chunk

    def _logprobs_now(self) -> Any:
        if not self.logprobs:
            return None
        fresh = self.reader.take_logprobs()
        if self.chat:
            return {"content": [chat_logprob(e) for e in fresh], "refusal": None}
        offset = sum(len(t) for t in self.reader.content) - sum(
            len(raw.decode("utf-8", errors="replace")) for raw, _, _ in fresh)
        return completion_logprobs(fresh, max(offset, 0))

    def _events(self, parts: list[Any]) -> list[bytes]:
        out = []
        for part in parts:
            if self.chat:
                out.append(_event(self._chunk(chat_delta(part), None, None,
                                              self._logprobs_now())))
            elif part.kind == "content":
                out.append(_event(self._chunk(None, part.text, None, self._logprobs_now())))
        return out

    async def _sse(self, job: Job) -> AsyncIterator[bytes]:
        # A plain text chunk differs from the next only in its text: build the rest once, so
        # each token costs the event loop (which shares the cores with llama.cpp) one
        # json.dumps. Replies with parts (thinking, calls) or log-probabilities take the
        # longer way.
        plain = self.reader.splitter is None and self.reader.parser is None
        plain = plain and not self.logprobs
        marker = "\u0000text\u0000"
        template = _event(self._chunk({"content": marker}, marker, None)).decode()
        head, _, tail = template.partition(json.dumps(marker))
        try:
            if self.chat:
                yield _event(self._chunk({"role": "assistant", "content": ""}, None, None))
            pending: tuple[str, Any] | None = None
            while True:
                kind, payload = pending or await job.events.get()
                pending = None
                if kind == "text":
                    # Text that queued up while the client was slow goes out as one chunk.
                    while not job.events.empty():
                        pending = job.events.get_nowait()
                        if pending[0] == "logprob" and self.logprobs:
                            self.reader.logprob(pending[1])
                            pending = None
                            continue
                        if pending[0] != "text":
                            break
                        payload += pending[1]
                        pending = None
                    if plain:
                        self.reader.content.append(payload)
                        yield (head + json.dumps(payload, ensure_ascii=False) + tail).encode()
                    else:
                        for data in self._events(self.reader.text(payload)):
                            yield data
                elif kind == "logprob":
                    self.reader.logprob(payload)
                elif kind == "error":
                    yield _event(payload.body())
                    break
                elif kind == "result":
                    result: GenerationResult = payload
                    for data in self._events(self.reader.finish()):
                        yield data
                    self.request.state.tokens = result.completion_tokens
                    finish = self.reader.finish_reason(result.finish_reason)
                    yield _event(self._chunk({}, "", finish, self._logprobs_now()))
                    if self.body.include_usage:
                        yield _event({"id": self.id, "object": self._chunk(None, None, None)
                                      ["object"], "created": self.created,
                                      "model": self.model_id, "choices": [],
                                      "usage": usage(result)})
                    break
            yield b"data: [DONE]\n\n"
        finally:
            job.cancel()


def _event(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
