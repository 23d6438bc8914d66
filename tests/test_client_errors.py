"""What the engine client says when a server refuses a request or cannot be reached."""

from __future__ import annotations

import httpx
import pytest

from conftest import free_port
from desktop.client.api import EngineClient, EngineError, _error_from


def refused(status: int, **body) -> EngineError:  # type: ignore[no-untyped-def]
    request = httpx.Request("POST", "http://far/v1/chat/completions")
    if "text" in body:
        return _error_from(httpx.Response(status, text=body["text"], request=request))
    return _error_from(httpx.Response(status, json=body["json"], request=request))


def test_a_refusal_is_given_in_the_servers_own_words_whatever_its_shape() -> None:
    openai_like = refused(400, json={"error": {"message": "Too long.",
                                               "code": "context_length_exceeded"}})
    assert (str(openai_like), openai_like.code, openai_like.status) == (
        "Too long.", "context_length_exceeded", 400)
    vllm_like = refused(404, json={"object": "error", "message": "The model `x` does not exist.",
                                   "type": "NotFoundError", "code": 404})
    assert str(vllm_like) == "The model `x` does not exist." and vllm_like.code is None
    assert str(refused(401, json={"error": "Invalid API key"})) == "Invalid API key"
    assert str(refused(403, json={"detail": "Not allowed"})) == "Not allowed"
    assert str(refused(502, text="<html>Bad gateway</html>\n")) == "<html>Bad gateway</html>"
    assert str(refused(500, text="")) == "Internal Server Error"
    assert len(str(refused(500, text="x" * 5000))) == 300  # a page of HTML is cut short


def test_a_server_that_is_not_there_is_named_in_plain_words() -> None:
    client = EngineClient(f"http://127.0.0.1:{free_port()}/v1", name="server")
    try:
        with pytest.raises(EngineError) as listing:
            client.models()
        with pytest.raises(EngineError) as chatting:
            list(client.chat_stream([{"role": "user", "content": "Hello"}]))
    finally:
        client.close()
    for error in (listing.value, chatting.value):
        assert str(error).startswith("The server at http://127.0.0.1:")
        assert str(error).endswith("does not answer (Connection refused).")
