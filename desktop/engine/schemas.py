"""Request bodies of the OpenAI-compatible routes, validated strictly.

Unknown fields are ignored (clients send many); a known field of the wrong type is a 400 that
names the field.
"""

from __future__ import annotations

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


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

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

    def adapter_refs(self) -> list[AdapterRef] | None:
        """The request's own adapter stack, or None to use the model's (or preset's)."""
        if self.lora is None:
            return None
        return [AdapterRef(item.id, item.name, item.scale) for item in self.lora]

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
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Generation):
    messages: list[Message]

    def plain_messages(self) -> list[dict[str, Any]]:
        if not self.messages:
            raise bad_request("'messages' is empty: send at least one message.",
                              param="messages")
        return [{"role": m.role if m.role != "developer" else "system", "content": m.text()}
                for m in self.messages]


class CompletionRequest(_Generation):
    prompt: str | list[str]

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
