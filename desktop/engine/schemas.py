"""Request bodies of the OpenAI-compatible routes, validated strictly.

Unknown fields are ignored (clients send many); a known field of the wrong type is a 400 that
names the field.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from desktop.core.memory import MAX_PARALLEL
from desktop.core.presets import MAX_SCALE, PresetError, StackEntry
from desktop.engine.errors import APIError, bad_request
from desktop.engine.sampling import Sampling
from desktop.engine.state import AdapterRef


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(_Body):
    type: str
    text: str | None = None


class CalledFunction(_Body):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCall(_Body):
    id: str | None = None
    type: Literal["function"] = "function"
    function: CalledFunction


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.type != "text":
                raise bad_request(f"Message parts of type '{part.type}' are not supported; "
                                  "this model reads text only.", param="messages")
            parts.append(part.text or "")
        return "".join(parts)


class FunctionDefinition(_Body):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Body):
    type: str
    function: FunctionDefinition | None = None


class ChosenFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: ChosenFunction


class JSONSchemaFormat(_Body):
    name: str = "response"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(_Body):
    include_usage: bool = False


Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Scale = Annotated[float, Field(ge=-MAX_SCALE, le=MAX_SCALE)]


class LoraItem(_Body):
    """An adapter for this request, as llama-server takes it (by id) or by name."""

    id: int | None = None
    name: str | None = None
    scale: Scale = 1.0


class _Generation(_Body):
    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Probability | None = None
    top_k: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    min_p: Probability | None = None
    repeat_penalty: Annotated[float, Field(gt=0.0, le=10.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    lora: list[LoraItem] | None = None
    cache_prompt: bool = True  # llama-server's name: False evaluates the whole prompt anew
    response_format: ResponseFormat | None = None
    # Reasoning models: thinking on or off (None: the template's default), and a budget of
    # thinking tokens after which the engine ends the thinking for the model.
    chat_template_kwargs: dict[str, Any] | None = None
    enable_thinking: bool | None = None
    thinking_budget: Annotated[int, Field(ge=0, le=1_000_000)] | None = None

    def adapter_refs(self) -> list[AdapterRef] | None:
        """The request's own adapter stack, or None to use the model's (or preset's)."""
        if self.lora is None:
            return None
        return [AdapterRef(item.id, item.name, item.scale) for item in self.lora]

    def top_logprobs_wanted(self) -> int | None:
        return None

    def sampling(self) -> Sampling:
        if self.n != 1:
            raise bad_request("Only n=1 is supported: ask again for another answer.", param="n")
        base = Sampling()
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return Sampling(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=base.temperature if self.temperature is None else self.temperature,
            top_p=base.top_p if self.top_p is None else self.top_p,
            top_k=base.top_k if self.top_k is None else self.top_k,
            min_p=base.min_p if self.min_p is None else self.min_p,
            repeat_penalty=(base.repeat_penalty if self.repeat_penalty is None
                            else self.repeat_penalty),
            frequency_penalty=self.frequency_penalty or 0.0,
            presence_penalty=self.presence_penalty or 0.0,
            seed=self.seed,
            stop=stops,
            logprobs=self.top_logprobs_wanted(),
        )

    def thinking(self) -> bool | None:
        """Whether the request wants the model to think (None: as the template does)."""
        if self.enable_thinking is not None:
            return self.enable_thinking
        value = (self.chat_template_kwargs or {}).get("enable_thinking")
        if value is not None and not isinstance(value, bool):
            raise bad_request("'chat_template_kwargs.enable_thinking' must be true or false.",
                              param="chat_template_kwargs.enable_thinking")
        if self.thinking_budget == 0:
            return False
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Generation):
    messages: list[Message]
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None

    def top_logprobs_wanted(self) -> int | None:
        if self.top_logprobs is not None and not self.logprobs:
            raise bad_request("'top_logprobs' needs 'logprobs': true.", param="top_logprobs")
        return (self.top_logprobs or 0) if self.logprobs else None

    def plain_messages(self) -> list[dict[str, Any]]:
        """The conversation as dicts, tool calls and results included (arguments parsed)."""
        if not self.messages:
            raise bad_request("'messages' is empty: send at least one message.",
                              param="messages")
        out: list[dict[str, Any]] = []
        for index, m in enumerate(self.messages):
            item: dict[str, Any] = {"role": m.role if m.role != "developer" else "system",
                                    "content": m.text()}
            if m.tool_calls:
                if m.role != "assistant":
                    raise bad_request("Only assistant messages carry 'tool_calls'.",
                                      param=f"messages.{index}.tool_calls")
                item["tool_calls"] = [_called(call, f"messages.{index}.tool_calls.{n}")
                                      for n, call in enumerate(m.tool_calls)]
            if m.role == "tool":
                item["tool_call_id"] = m.tool_call_id or ""
                if m.name:
                    item["name"] = m.name
            if m.reasoning_content and m.role == "assistant":
                item["reasoning_content"] = m.reasoning_content
            out.append(item)
        return out


def _called(call: ToolCall, where: str) -> dict[str, Any]:
    arguments: Any = call.function.arguments
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise bad_request(f"'{where}.function.arguments' is not valid JSON: {exc}.",
                              param=f"{where}.function.arguments") from exc
    return {"id": call.id or "", "type": "function",
            "function": {"name": call.function.name, "arguments": arguments}}


class CompletionRequest(_Generation):
    prompt: str | list[str]
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: bool = False

    def top_logprobs_wanted(self) -> int | None:
        if self.echo:
            raise bad_request("'echo' is not supported.", param="echo")
        return self.logprobs

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise bad_request("Send exactly one prompt per request.", param="prompt")
        return self.prompt[0]


class EmbeddingRequest(_Body):
    model: str | None = None
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts:
            raise bad_request("'input' is empty: send at least one text.", param="input")
        for index, text in enumerate(texts):
            if not text:
                where = "input" if isinstance(self.input, str) else f"input.{index}"
                raise bad_request(f"'{where}' is an empty string: there is nothing to embed.",
                                  param=where)
        return texts


class LoadRequest(_Body):
    model: str
    n_ctx: Annotated[int, Field(ge=0)] | None = None
    n_threads: Annotated[int, Field(ge=1)] | None = None
    n_batch: Annotated[int, Field(ge=1)] = 512
    n_gpu_layers: int = 0
    chat_template: str | None = None
    parallel: Annotated[int, Field(ge=1, le=MAX_PARALLEL)] | None = None


class AdapterAddRequest(_Body):
    name: str | None = None
    path: str | None = None


class StackItem(_Body):
    name: str
    scale: Scale = 1.0
    enabled: bool = True


class StackRequest(_Body):
    stack: list[StackItem]

    def entries(self) -> list[StackEntry]:
        try:
            return [StackEntry(i.name, i.scale, i.enabled) for i in self.stack]
        except PresetError as exc:
            raise bad_request(str(exc), param="stack") from exc


class PublicRequest(_Body):
    enabled: bool
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4891
    api_key: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    # The app holds the port and hands the listening socket over (desktop.core.listening).
    socket: Literal["passed"] | None = None


Body = TypeVar("Body", bound=_Body)


def describe(error: ValidationError) -> APIError:
    """One clear sentence for the first problem pydantic found."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"] if not str(part).startswith("function"))
    kind = first["type"]
    if kind == "json_invalid":
        return bad_request(f"The request body is not valid JSON: {first['msg']}.")
    if kind == "model_type" and not where:
        return bad_request("The request body must be a JSON object.")
    if kind == "missing":
        return bad_request(f"'{where}' is required.", param=where)
    return bad_request(f"'{where}': {first['msg']}.", param=where or None)


def parse(model: type[Body], raw: bytes) -> Body:
    """Validate a raw JSON body as *model*, or raise a 400 that says what is wrong."""
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        raise describe(exc) from exc
