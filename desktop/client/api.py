"""A small synchronous client for the engine's HTTP API (and any OpenAI-compatible server)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


class EngineError(Exception):
    """Something went wrong talking to an engine; the message is meant for the user."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class Thought:
    """A piece of a reasoning model's thinking, apart from its answer."""

    text: str


@dataclass
class StreamEnd:
    """The last item of a streamed reply, with the tool calls it made (OpenAI's shape:
    ``{"id", "type": "function", "function": {"name", "arguments"}}``, arguments as text)."""

    finish_reason: str | None
    usage: dict[str, Any] | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _add_call_piece(calls: dict[int, dict[str, Any]], piece: dict[str, Any]) -> None:
    """Put one streamed piece of a tool call (by its index) into the call it belongs to."""
    index = piece.get("index", len(calls))
    if not isinstance(index, int):
        return
    call = calls.setdefault(index, {"id": "", "type": "function",
                                    "function": {"name": "", "arguments": ""}})
    if isinstance(piece.get("id"), str):
        call["id"] = piece["id"]
    function = piece.get("function") or {}
    if isinstance(function.get("name"), str):
        call["function"]["name"] += function["name"]
    if isinstance(function.get("arguments"), str):
        call["function"]["arguments"] += function["arguments"]


def _error_from(response: httpx.Response) -> EngineError:
    """The server's own words for a failed request, in the shapes OpenAI-compatible servers use:
    ``{"error": {"message", "code"}}`` (OpenAI, this engine, llama.cpp), ``{"message"}`` (vLLM),
    ``{"error": "..."}`` or ``{"detail": "..."}``; else the start of the body."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    message: Any = None
    code: Any = None
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict):
            message, code = error.get("message"), error.get("code")
        elif isinstance(error, str):
            message = error
        message = message or doc.get("message") or doc.get("detail")
    if not isinstance(message, str) or not message.strip():
        message = response.text.strip()[:300] or response.reason_phrase
    return EngineError(message, status=response.status_code,
                       code=code if isinstance(code, str) else None)


def _why(exc: httpx.TransportError) -> str:
    """What went wrong with the connection, without the errno ("Connection refused")."""
    text = re.sub(r"\[Errno -?\d+\]\s*", "", str(exc)).strip()
    return text or type(exc).__name__


class EngineClient:
    """Talks to one engine. With a token it can also use the private control routes."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 600.0,
                 name: str = "engine") -> None:
        # OpenAI clients are given a base URL ending in /v1; the routes here add it themselves.
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.name = name  # what messages call it: "engine", or "server" for another machine's
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=payload)
        except httpx.TransportError as exc:
            raise EngineError(f"The {self.name} at {self.base_url} does not answer "
                              f"({_why(exc)}).") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()

    # -- control -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/control/status")

    def load(self, model: str, **settings: Any) -> dict[str, Any]:
        return self._call("POST", "/control/load", {"model": model, **settings})

    def unload(self) -> dict[str, Any]:
        return self._call("POST", "/control/unload", {})

    def set_public(self, enabled: bool, **options: Any) -> dict[str, Any]:
        return self._call("POST", "/control/public", {"enabled": enabled, **options})

    def request_log(self) -> list[dict[str, Any]]:
        """The public API's recent requests (time, route, status, duration, tokens)."""
        return self._call("GET", "/control/requests")["requests"]

    # -- OpenAI routes ---------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/models")["data"]

    def embeddings(self, texts: list[str], model: str | None = None
                   ) -> tuple[list[list[float]], int]:
        """One unit-length vector per text, in order, and the tokens read (usage).

        *model* names an installed embedding model (by library id), which the engine loads
        beside the chat model; without it the chat model's own weights embed. A text longer
        than the embedding model's context is truncated to it.
        """
        payload: dict[str, Any] = {"input": list(texts)}
        if model:
            payload["model"] = model
        doc = self._call("POST", "/v1/embeddings", payload)
        try:
            rows = sorted(doc["data"], key=lambda row: row["index"])
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
            usage = doc.get("usage") or {}
            tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineError(f"The {self.name} at {self.base_url} answered embeddings in a "
                              "shape this app does not read.") from exc
        if len(vectors) != len(texts):
            raise EngineError(f"The {self.name} at {self.base_url} sent {len(vectors)} "
                              f"embeddings for {len(texts)} texts.")
        return vectors, tokens

    def chat_stream(self, messages: list[dict[str, Any]], model: str | None = None, *,
                    thoughts: bool = False, **params: Any) -> Iterator[str | Thought | StreamEnd]:
        """Yield the reply's text pieces as they come, then one :class:`StreamEnd`. With
        *thoughts*, a reasoning model's thinking comes too, as :class:`Thought` pieces."""
        payload = {"messages": messages, "stream": True,
                   "stream_options": {"include_usage": True}, **params}
        if model:
            payload["model"] = model
        finish: str | None = None
        usage: dict[str, Any] | None = None
        calls: dict[int, dict[str, Any]] = {}
        try:
            with self._http.stream("POST", "/v1/chat/completions", json=payload) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                for line in response.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        yield StreamEnd(finish, usage, [calls[i] for i in sorted(calls)])
                        return
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise EngineError(chunk["error"].get("message", "The engine failed."),
                                          code=chunk["error"].get("code"))
                    for choice in chunk.get("choices", []):
                        delta = choice.get("delta") or {}
                        thought = delta.get("reasoning_content")
                        if thoughts and thought:
                            yield Thought(thought)
                        text = delta.get("content")
                        if text:
                            yield text
                        for piece in delta.get("tool_calls") or []:
                            if isinstance(piece, dict):
                                _add_call_piece(calls, piece)
                        finish = choice.get("finish_reason") or finish
                    usage = chunk.get("usage") or usage
                raise EngineError(f"The {self.name} stopped while answering.")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise EngineError(f"The {self.name} at {self.base_url} does not answer "
                              f"({_why(exc)}).") from exc
        except httpx.TransportError as exc:
            # The connection broke mid-reply. The user needs to know that the engine went away
            # (the supervisor says why, from its exit status), not the transport's exception.
            raise EngineError(f"The {self.name} stopped while answering.") from exc


# Where OpenAI-compatible servers say, in a /v1/models entry, how many tokens a request may use:
# NoMoat's engine and OpenRouter ("context_length"), LM Studio ("loaded_context_length",
# "max_context_length"), vLLM ("max_model_len"), llama.cpp's server (meta.n_ctx_train, the
# model's trained length, used only when nothing else is said).
_CONTEXT_KEYS = ("context_length", "loaded_context_length", "max_model_len", "context_window",
                 "max_context_length")


def context_length(entry: dict[str, Any]) -> int | None:
    """The context a model of a server's /v1/models list has, in tokens, if the entry says."""
    meta = entry.get("meta")
    for value in (*(entry.get(key) for key in _CONTEXT_KEYS),
                  meta.get("n_ctx") if isinstance(meta, dict) else None,
                  meta.get("n_ctx_train") if isinstance(meta, dict) else None):
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 24:
            return value
    return None
