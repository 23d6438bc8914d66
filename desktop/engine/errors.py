"""Errors with OpenAI's error body, raised anywhere in the engine and sent as they are."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error a client should see, with its HTTP status and OpenAI-shaped body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


class LoadError(APIError):
    """A model could not be loaded; the message says why and what to do."""

    def __init__(self, message: str, *, status: int = 400, code: str = "model_load_failed"):
        super().__init__(status, message, type="invalid_request_error", code=code, param="model")


class ContextLengthExceeded(APIError):
    def __init__(self, prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(
            400,
            f"This model's context is {n_ctx} tokens, but the prompt is {prompt_tokens} "
            "tokens. Shorten the conversation or load the model with a longer context.",
            code="context_length_exceeded", param="messages")
