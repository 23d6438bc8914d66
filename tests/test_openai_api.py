"""The official openai client against `nomoat serve` with the starter model."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

MODEL = "smollm2-135m-instruct"
FRESH = {"cache_prompt": False}  # evaluate the whole prompt, as the first time
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def test_models_list_has_the_starter(served) -> None:
    ids = [m.id for m in served.client().models.list()]
    assert MODEL in ids


@pytest.mark.parametrize(("entry", "expected"), [
    ({"id": "a", "context_length": 8192}, 8192),  # NoMoat, OpenRouter
    ({"id": "a", "max_model_len": 32768}, 32768),  # vLLM
    ({"id": "a", "loaded_context_length": 4096, "max_context_length": 131072}, 4096),  # LM Studio
    ({"id": "a", "meta": {"n_ctx_train": 2048}}, 2048),  # llama.cpp's server
    ({"id": "a"}, None),
    ({"id": "a", "context_length": "8k"}, None),
    ({"id": "a", "context_length": True}, None),
    ({"id": "a", "context_length": -1, "max_model_len": 1024}, 1024),
    ({"id": "a", "meta": "n_ctx"}, None),
])
def test_the_context_servers_state_for_their_models(entry, expected) -> None:
    from desktop.client.api import context_length

    assert context_length(entry) == expected


def test_chat_not_streamed(served) -> None:
    reply = served.client().chat.completions.create(model=MODEL, messages=HELLO, max_tokens=24,
                                                    seed=7, temperature=0)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == MODEL
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_streamed_matches_not_streamed(served) -> None:
    client = served.client()
    # Compared replies are evaluated from an empty cache both times: reusing a cached prefix
    # evaluates the prompt in other batch sizes, and rounding alone can then part greedy texts.
    whole = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=20,
                                           temperature=0, extra_body=FRESH)
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=20,
                                            temperature=0, stream=True, extra_body=FRESH,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason
    assert all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_max_tokens_gives_length(served) -> None:
    client = served.client()
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Write a long story about a cat."}],
        max_completion_tokens=5, temperature=0)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5


def test_seed_makes_replies_repeatable(served) -> None:
    client = served.client()
    ask = dict(model=MODEL, messages=[{"role": "user", "content": "Tell me a fun fact."}],
               max_tokens=24, temperature=1.0, seed=1234, extra_body=FRESH)
    first = client.chat.completions.create(**ask).choices[0].message.content
    second = client.chat.completions.create(**ask).choices[0].message.content
    assert first == second


def test_stop_string_ends_the_reply(served) -> None:
    client = served.client()
    free = client.completions.create(model=MODEL, prompt="1, 2, 3, 4, 5,", max_tokens=16,
                                     temperature=0, extra_body=FRESH).choices[0].text
    assert "7" in free  # counting on, so a stop at "7" must cut it
    stopped = client.completions.create(model=MODEL, prompt="1, 2, 3, 4, 5,", max_tokens=16,
                                        temperature=0, stop=["7"], extra_body=FRESH)
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == free[: free.index("7")]


def test_text_completion(served) -> None:
    reply = served.client().completions.create(model=MODEL, prompt="The sky is", max_tokens=8,
                                               temperature=0, extra_body=FRESH)
    assert reply.object == "text_completion"
    assert reply.choices[0].text
    assert reply.usage.completion_tokens == 8
    streamed = served.client().completions.create(model=MODEL, prompt="The sky is",
                                                  max_tokens=8, temperature=0, stream=True,
                                                  extra_body=FRESH)
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_embeddings(served) -> None:
    client = served.client()
    result = client.embeddings.create(model=MODEL, input=["a cat sat", "a cat sat", "tax law"])
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert len(vectors[0]) == 576  # SmolLM2-135M's embedding width
    assert vectors[0] == pytest.approx(vectors[1])
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0, rel=1e-3)
    assert vectors[0] != pytest.approx(vectors[2])
    assert result.usage.prompt_tokens > 0
    raw = httpx.post(f"{served.base_url}/embeddings",
                     json={"input": "a cat sat", "encoding_format": "float"}, timeout=60).json()
    assert raw["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-6)


def test_unknown_model_is_404(served) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        served.client().chat.completions.create(model="no-such-model", messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert "no-such-model" in caught.value.message


def test_a_request_cannot_load_a_file_by_path(served, starter, tmp_path) -> None:
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(starter.read_bytes())
    with pytest.raises(openai.NotFoundError):
        served.client().chat.completions.create(model=str(copy), messages=HELLO)


@pytest.mark.parametrize("body, expected", [
    ({"messages": []}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ({"messages": HELLO, "temperature": "hot"}, "temperature"),
    ({"messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ({"messages": HELLO, "n": 2}, "n"),
])
def test_bad_requests_are_400_and_say_what(served, body, expected) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(model=MODEL, **body)  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    assert expected in caught.value.message or caught.value.param == expected


def test_unknown_fields_are_ignored(served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=3, extra_body={"mirostat": 2, "foo": [1]})
    assert reply.choices[0].message.content is not None


def test_missing_messages_is_400(served) -> None:
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": MODEL})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "'messages' is required."


def test_malformed_json_is_400(served) -> None:
    response = httpx.post(f"{served.base_url}/chat/completions", content=b"{not json",
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "JSON" in error["message"]


def test_oversized_body_is_413(served) -> None:
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * (17 * 1024 * 1024)}]})
    response = httpx.post(f"{served.base_url}/chat/completions", content=huge,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_prompt_longer_than_context_is_context_length_exceeded(served) -> None:
    long = "word " * 6000  # more than the default 4096-token context
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long}], stream=True)
    assert caught.value.code == "context_length_exceeded"
    # and the server keeps answering
    reply = served.client().chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)
    assert reply.choices[0].message.content is not None
