"""The Responses API (POST /v1/responses): a request in its shape becomes a chat request for
the same engine, and the reply comes back as output items, whole or as typed stream events.

A conversation goes on by ``previous_response_id``: the engine keeps the last responses it
made (in memory, a bounded number) with the conversation that led to them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field

from desktop.engine.errors import APIError, bad_request
from desktop.engine.generation import Generation
from desktop.engine.jobs import GenerationResult, Job
from desktop.engine.reply import Part, ReplyReader, chat_logprob
from desktop.engine.schemas import ChatRequest, _Body, parse
from desktop.engine.state import Engine

KEPT_RESPONSES = 256
LOGPROBS_INCLUDE = "message.output_text.logprobs"


class InputPart(_Body):
    type: str
    text: str | None = None


class InputItem(_Body):
    """One item of ``input``: a message, a function call the model made, or its output."""

    type: str | None = None
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: str | list[InputPart] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[InputPart] | None = None


class FunctionTool(_Body):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionChoice(_Body):
    type: Literal["function"]
    name: str


class TextFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    name: str = "response"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextOptions(_Body):
    format: TextFormat | None = None


class ReasoningOptions(_Body):
    effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    summary: str | None = None


class ResponsesRequest(_Body):
    model: str | None = None
    input: str | list[InputItem]
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    include: list[str] | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool = True
    text: TextOptions | None = None
    reasoning: ReasoningOptions | None = None
    stream: bool = False
    store: bool = True
    metadata: dict[str, str] | None = None
    seed: int | None = None
    thinking_budget: Annotated[int, Field(ge=0, le=1_000_000)] | None = None

    @property
    def logprobs(self) -> bool:
        return self.top_logprobs is not None or LOGPROBS_INCLUDE in (self.include or [])


class ResponseStore:
    """The last responses made, with the conversation each one ends (oldest forgotten first)."""

    def __init__(self, limit: int = KEPT_RESPONSES) -> None:
        self.limit = limit
        self._kept: OrderedDict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = OrderedDict()

    def keep(self, response: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        self._kept[response["id"]] = (response, conversation)
        self._kept.move_to_end(response["id"])
        while len(self._kept) > self.limit:
            self._kept.popitem(last=False)

    def get(self, response_id: str, param: str | None = None) -> tuple[dict[str, Any],
                                                                        list[dict[str, Any]]]:
        found = self._kept.get(response_id)
        if found is None:
            raise APIError(404, f"No response with id '{response_id}' is kept here (the "
                           f"engine keeps the last {self.limit}, until it restarts).",
                           param=param, code="response_not_found")
        self._kept.move_to_end(response_id)
        return found

    def forget(self, response_id: str) -> None:
        self.get(response_id)
        del self._kept[response_id]


def _text(content: str | list[InputPart] | None, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        if part.type not in ("input_text", "output_text", "text"):
            raise bad_request(f"'{where}.{index}' is of type '{part.type}'; this model reads "
                              "text only (input_text).", param=f"{where}.{index}")
        texts.append(part.text or "")
    return "".join(texts)


def conversation(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as chat messages (in the shape ChatRequest takes)."""
    if isinstance(body.input, str):
        if not body.input:
            raise bad_request("'input' is empty: send some text or items.", param="input")
        return [{"role": "user", "content": body.input}]
    if not body.input:
        raise bad_request("'input' is empty: send some text or items.", param="input")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(body.input):
        where = f"input.{index}"
        kind = item.type or ("message" if item.role else None)
        if kind == "message":
            if item.role is None:
                raise bad_request(f"'{where}.role' is required for a message.",
                                  param=f"{where}.role")
            out.append({"role": item.role, "content": _text(item.content, f"{where}.content")})
        elif kind == "function_call":
            if not item.call_id or not item.name:
                raise bad_request(f"'{where}': a function_call needs 'call_id' and 'name'.",
                                  param=where)
            try:
                json.loads(item.arguments or "{}")
            except json.JSONDecodeError as exc:
                raise bad_request(f"'{where}.arguments' is not valid JSON: {exc}.",
                                  param=f"{where}.arguments") from exc
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments or "{}"}}
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not item.call_id:
                raise bad_request(f"'{where}.call_id' is required for a function_call_output.",
                                  param=f"{where}.call_id")
            out.append({"role": "tool", "tool_call_id": item.call_id,
                        "content": _text(item.output, f"{where}.output")})
        elif kind == "reasoning":
            continue  # the model's earlier thinking is not read again
        else:
            raise bad_request(f"'{where}.type' must be 'message', 'function_call', "
                              f"'function_call_output' or 'reasoning', not {kind!r}.",
                              param=f"{where}.type")
    return out


def chat_request(body: ResponsesRequest, history: list[dict[str, Any]]) -> ChatRequest:
    """The chat request that answers *body*, after the *history* of earlier turns."""
    messages = history + conversation(body)
    if body.instructions:
        messages = [{"role": "system", "content": body.instructions}] + messages
    chat: dict[str, Any] = {"messages": messages, "model": body.model, "stream": body.stream,
                            "parallel_tool_calls": body.parallel_tool_calls}
    for name in ("temperature", "top_p", "seed", "thinking_budget"):
        if getattr(body, name) is not None:
            chat[name] = getattr(body, name)
    if body.max_output_tokens is not None:
        chat["max_tokens"] = body.max_output_tokens
    if body.logprobs:
        chat["logprobs"] = True
        chat["top_logprobs"] = body.top_logprobs or 0
    if body.tools:
        tools = []
        for index, tool in enumerate(body.tools):
            if tool.type != "function":
                raise bad_request(f"'tools.{index}': only tools of type 'function' are "
                                  f"supported here, not '{tool.type}'.", param=f"tools.{index}")
            if tool.name is None:
                raise bad_request(f"'tools.{index}.name' is required.",
                                  param=f"tools.{index}.name")
            function = {"name": tool.name, "parameters": tool.parameters}
            if tool.description:
                function["description"] = tool.description
            tools.append({"type": "function", "function": function})
        chat["tools"] = tools
    choice = body.tool_choice
    if isinstance(choice, FunctionChoice):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice is not None:
        chat["tool_choice"] = choice
    form = body.text.format if body.text else None
    if form is not None and form.type == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {
            "name": form.name, "schema": form.schema_, "strict": form.strict}}
    elif form is not None:
        chat["response_format"] = {"type": form.type}
    if body.reasoning is not None and body.reasoning.effort == "none":
        chat["enable_thinking"] = False
    try:
        return parse(ChatRequest, json.dumps(chat).encode())
    except APIError as exc:
        raise in_own_terms(exc) from exc


class _Item:
    """An output item while it is being written."""

    def __init__(self, kind: str, index: int, call: Any = None) -> None:
        self.kind = kind  # "reasoning", "message" or "function_call"
        self.index = index
        self.call = call
        self.text: list[str] = []
        self.logprobs: list[dict[str, Any]] = []
        prefix = {"reasoning": "rs_", "message": "msg_", "function_call": "fc_"}[kind]
        self.id = prefix + uuid.uuid4().hex[:24]

    def shape(self, status: str) -> dict[str, Any]:
        text = "".join(self.text)
        if self.kind == "reasoning":
            content = [{"type": "reasoning_text", "text": text}] if status != "in_progress" else []
            return {"type": "reasoning", "id": self.id, "summary": [], "content": content,
                    "status": status}
        if self.kind == "message":
            content = []
            if status != "in_progress":
                content = [_text_part(text, self.logprobs)]
            return {"type": "message", "id": self.id, "status": status, "role": "assistant",
                    "content": content}
        return {"type": "function_call", "id": self.id, "call_id": self.call.id,
                "name": self.call.name,
                "arguments": self.call.arguments if status != "in_progress" else "",
                "status": status}


def _text_part(text: str, logprobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


class ResponseWriter:
    """Turns a reply's parts into output items, and the typed events that build them."""

    def __init__(self, reader: ReplyReader, logprobs: bool) -> None:
        self.reader = reader
        self.logprobs = logprobs
        self.items: list[_Item] = []
        self.open: _Item | None = None

    def _fresh_logprobs(self) -> list[dict[str, Any]]:
        fresh = self.reader.take_logprobs() if self.logprobs else []
        return [chat_logprob(entry) for entry in fresh]

    def _start(self, kind: str, call: Any = None) -> list[dict[str, Any]]:
        events = self._close()
        item = _Item(kind, len(self.items), call)
        self.items.append(item)
        self.open = item
        events.append({"type": "response.output_item.added", "output_index": item.index,
                       "item": item.shape("in_progress")})
        if kind == "message":
            events.append({"type": "response.content_part.added", "item_id": item.id,
                           "output_index": item.index, "content_index": 0,
                           "part": _text_part("", [])})
        return events

    def _close(self) -> list[dict[str, Any]]:
        item, self.open = self.open, None
        if item is None:
            return []
        where = {"item_id": item.id, "output_index": item.index}
        text = "".join(item.text)
        events: list[dict[str, Any]] = []
        if item.kind == "message":
            events += [{"type": "response.output_text.done", **where, "content_index": 0,
                        "text": text, "logprobs": item.logprobs},
                       {"type": "response.content_part.done", **where, "content_index": 0,
                        "part": _text_part(text, item.logprobs)}]
        elif item.kind == "reasoning":
            events.append({"type": "response.reasoning_text.done", **where, "content_index": 0,
                           "text": text})
        else:
            events.append({"type": "response.function_call_arguments.done", **where,
                           "name": item.call.name, "arguments": item.call.arguments})
        events.append({"type": "response.output_item.done", "output_index": item.index,
                       "item": item.shape("completed")})
        return events

    def parts(self, parts: list[Part]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for part in parts:
            if part.kind == "reasoning":
                if self.open is None or self.open.kind != "reasoning":
                    events += self._start("reasoning")
                assert self.open is not None
                self.open.text.append(part.text)
                self._fresh_logprobs()  # the thinking's tokens are not the answer's
                events.append({"type": "response.reasoning_text.delta",
                               "item_id": self.open.id, "output_index": self.open.index,
                               "content_index": 0, "delta": part.text})
            elif part.kind == "content":
                if not part.text:
                    continue
                if self.open is None or self.open.kind != "message":
                    if not part.text.strip():
                        continue  # blank space between items is no message of its own
                    events += self._start("message")
                assert self.open is not None
                fresh = self._fresh_logprobs()
                self.open.text.append(part.text)
                self.open.logprobs += fresh
                events.append({"type": "response.output_text.delta", "item_id": self.open.id,
                               "output_index": self.open.index, "content_index": 0,
                               "delta": part.text, "logprobs": fresh})
            elif part.kind == "call":
                events += self._start("function_call", part.call)
            elif part.kind == "arguments" and self.open is not None:
                events.append({"type": "response.function_call_arguments.delta",
                               "item_id": self.open.id, "output_index": self.open.index,
                               "delta": part.text})
        return events

    def finish(self) -> list[dict[str, Any]]:
        return self._close()

    def output(self) -> list[dict[str, Any]]:
        whole = {id(call) for call in self.reader.whole_calls()}
        return [item.shape("completed") for item in self.items
                if item.kind != "function_call" or id(item.call) in whole]


class ResponseRun:
    """One /v1/responses request, from its body to the answer."""

    def __init__(self, engine: Engine, store: ResponseStore, request: Request,
                 body: ResponsesRequest) -> None:
        self.engine = engine
        self.store = store
        self.request = request
        self.body = body
        self.id = "resp_" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        history: list[dict[str, Any]] = []
        if body.previous_response_id:
            history = list(store.get(body.previous_response_id, "previous_response_id")[1])
        self.turn = conversation(body)
        self.history = history
        self.chat = chat_request(body, history)
        self.generation = Generation(engine, request, self.chat, chat=True)
        self.sequence = 0

    def snapshot(self, status: str, output: list[dict[str, Any]],
                 result: GenerationResult | None = None) -> dict[str, Any]:
        body = self.body
        form = body.text.format if body.text and body.text.format else None
        text_format: dict[str, Any] = {"type": "text"}
        if form is not None:
            text_format = {"type": form.type}
            if form.type == "json_schema":
                text_format.update(name=form.name, schema=form.schema_, strict=form.strict)
        choice = body.tool_choice
        usage = None
        if result is not None:
            usage = {"input_tokens": result.prompt_tokens,
                     "input_tokens_details": {"cached_tokens": result.cached_tokens},
                     "output_tokens": result.completion_tokens,
                     "output_tokens_details": {"reasoning_tokens": result.reasoning_tokens},
                     "total_tokens": result.prompt_tokens + result.completion_tokens}
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "error": None,
            "incomplete_details": ({"reason": "max_output_tokens"} if status == "incomplete"
                                   else None),
            "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
            "model": self.generation.model_id or body.model, "output": output,
            "parallel_tool_calls": body.parallel_tool_calls,
            "previous_response_id": body.previous_response_id,
            "reasoning": {"effort": body.reasoning.effort if body.reasoning else None,
                          "summary": None},
            "store": body.store, "temperature": body.temperature, "top_p": body.top_p,
            "text": {"format": text_format},
            "tool_choice": (choice.model_dump() if isinstance(choice, FunctionChoice)
                            else choice or "auto"),
            "tools": [t.model_dump(by_alias=True) for t in body.tools or []],
            "truncation": "disabled", "usage": usage, "metadata": body.metadata or {},
        }

    def _finished(self, writer: ResponseWriter, result: GenerationResult) -> dict[str, Any]:
        self.request.state.tokens = result.completion_tokens
        status = "incomplete" if result.finish_reason == "length" else "completed"
        output = writer.output()
        response = self.snapshot(status, output, result)
        if self.body.store:
            said: list[dict[str, Any]] = []
            text = "".join(self.generation.reader.content)
            calls = [{"id": item["call_id"], "type": "function",
                      "function": {"name": item["name"], "arguments": item["arguments"]}}
                     for item in output if item["type"] == "function_call"]
            said.append({"role": "assistant", "content": text if text.strip() or not calls
                         else None, **({"tool_calls": calls} if calls else {})})
            self.store.keep(response, self.history + self.turn + said)
        return response

    async def respond(self) -> Response:
        try:
            job = await self.generation.start()
        except APIError as exc:
            raise in_own_terms(exc) from exc
        writer = ResponseWriter(self.generation.reader, self.body.logprobs)
        if self.body.stream:
            return StreamingResponse(self._sse(job, writer), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache",
                                              "X-Accel-Buffering": "no"})
        reader = self.generation.reader
        watcher = _watch(self.generation, job)
        try:
            while True:
                kind, payload = await job.events.get()
                if kind == "text":
                    writer.parts(reader.text(payload))
                elif kind == "logprob":
                    reader.logprob(payload)
                elif kind == "error":
                    raise payload
                elif kind == "result":
                    writer.parts(reader.finish())
                    writer.finish()
                    return JSONResponse(self._finished(writer, payload))
        finally:
            watcher.cancel()
            job.cancel()

    def _event(self, data: dict[str, Any]) -> bytes:
        data = {**data, "sequence_number": self.sequence}
        self.sequence += 1
        return f"event: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    async def _sse(self, job: Job, writer: ResponseWriter) -> AsyncIterator[bytes]:
        reader = self.generation.reader
        try:
            start = self.snapshot("in_progress", [])
            yield self._event({"type": "response.created", "response": start})
            yield self._event({"type": "response.in_progress", "response": start})
            while True:
                kind, payload = await job.events.get()
                if kind == "text":
                    for event in writer.parts(reader.text(payload)):
                        yield self._event(event)
                elif kind == "logprob":
                    reader.logprob(payload)
                elif kind == "error":
                    error = payload.body()["error"]
                    yield self._event({"type": "error", "code": error.get("code"),
                                       "message": error.get("message"),
                                       "param": error.get("param")})
                    failed = self.snapshot("failed", writer.output())
                    failed["error"] = {"code": error.get("code") or "server_error",
                                       "message": error.get("message")}
                    yield self._event({"type": "response.failed", "response": failed})
                    break
                elif kind == "result":
                    for event in writer.parts(reader.finish()) + writer.finish():
                        yield self._event(event)
                    response = self._finished(writer, payload)
                    kind = ("response.incomplete" if response["status"] == "incomplete"
                            else "response.completed")
                    yield self._event({"type": kind, "response": response})
                    break
        finally:
            job.cancel()


def _watch(generation: Generation, job: Job) -> Any:
    return asyncio.create_task(generation.watch_disconnect(job))


# Where a chat request's field names differ from the Responses API's.
_RENAMED = ((re.compile(r"response_format(\.json_schema)?"), "text.format"),
            (re.compile(r"(tools\.\d+)\.function\."), r"\1."),
            (re.compile(r"\bmessages\b(\.\d+)?"), "input"),
            (re.compile(r"\bmax_tokens\b"), "max_output_tokens"))


def in_own_terms(exc: APIError) -> APIError:
    """*exc*, raised for the chat request made from a Responses request, in the latter's
    field names."""
    def rename(text: str) -> str:
        for pattern, replacement in _RENAMED:
            text = pattern.sub(replacement, text)
        return text

    renamed = APIError(exc.status, rename(exc.message), type=exc.type, code=exc.code,
                       param=rename(exc.param) if exc.param else None)
    return renamed


def add_routes(app: Any, engine: Engine, store: ResponseStore) -> None:
    @app.post("/v1/responses")
    async def create(request: Request) -> Response:
        body = parse(ResponsesRequest, await request.body())
        return await ResponseRun(engine, store, request, body).respond()

    @app.get("/v1/responses/{response_id}")
    async def retrieve(response_id: str) -> dict[str, Any]:
        return store.get(response_id)[0]

    @app.delete("/v1/responses/{response_id}")
    async def delete(response_id: str) -> dict[str, Any]:
        store.forget(response_id)
        return {"id": response_id, "object": "response.deleted", "deleted": True}
