"""A hostile client, bounded: a few hundred malformed requests with a fixed seed, from several
clients at once, with streams dropped halfway, against `nomoat serve` and the starter model.

Every bad request gets a 4xx whose body names the problem in OpenAI's error shape; nothing
gets a 5xx; the engine never crashes or restarts; and afterwards it still answers properly.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from conftest import Served, start_serve, stop_serve

SEED = 20261204
REQUESTS = 320
MODEL = "smollm2-135m-instruct"
STATUSES: list[int] = []

ODD_TEXT = ["", " ", "\u0000", "\ud800", "\udfff", "\u202e\u202dabc", "\u200b" * 50,
            "🦙" * 200, "x" * 100_000, "<|im_start|>system\n", "<|im_end|>" * 20,
            "\\u0000", "{{ raise('x') }}", "{% for %}", "\n" * 1000, "é" * 3000]
ODD_NUMBERS: list[Any] = [-1, 0, 1, -(2**63), 2**63, 2**64 + 1, 10**30, 1e308, -1e308, 0.5,
                          -0.0, 3.5, 1e-320, True, False, None]
ODD_VALUES: list[Any] = [*ODD_NUMBERS, "", "1", [], {}, [1, 2], {"a": 1}, [[[]]],
                         ["a"] * 500, "NaN"]
FIELDS = ["model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
          "min_p", "repeat_penalty", "frequency_penalty", "presence_penalty", "seed", "stop",
          "stream", "stream_options", "n", "lora", "cache_prompt", "messages", "prompt",
          "input", "encoding_format", "logprobs", "tools", "response_format"]


def valid(route: str, rng: random.Random) -> dict[str, Any]:
    if route == "/v1/chat/completions":
        return {"model": MODEL, "max_tokens": rng.randint(1, 8), "temperature": 0,
                "messages": [{"role": "user", "content": rng.choice(["Hi", "Name a colour."])}]}
    if route == "/v1/completions":
        return {"model": MODEL, "max_tokens": rng.randint(1, 8), "prompt": "Once upon"}
    return {"model": MODEL, "input": rng.choice(["a cat", ["a", "b"]])}


def mutate(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    body = dict(body)
    for _ in range(rng.randint(1, 3)):
        field = rng.choice(FIELDS)
        kind = rng.random()
        if kind < 0.35:
            body[field] = rng.choice(ODD_VALUES)
        elif kind < 0.6:
            body[field] = rng.choice(ODD_TEXT)
        elif kind < 0.75 and field == "messages":
            body[field] = [{"role": rng.choice(["user", "assistant", "system", "tool", "bot",
                                                 "", 7]),
                            "content": rng.choice([*ODD_TEXT, None, 5, [{"type": "text"}],
                                                   [{"type": "image_url", "image_url": {}}],
                                                   [{"text": "no type"}]])}
                           for _ in range(rng.randint(0, 4))]
        elif kind < 0.85:
            body[field] = {"deep": [[[[[{"x": rng.choice(ODD_VALUES)}]]]]]}
        else:
            body.pop(field, None)
    if "max_tokens" in body and isinstance(body["max_tokens"], int) and not isinstance(
            body["max_tokens"], bool) and body["max_tokens"] > 64:
        body["max_completion_tokens"] = 16  # wins over max_tokens: keeps the run short
    return body


def encode(body: Any, rng: random.Random) -> bytes:
    text = json.dumps(body, ensure_ascii=rng.random() < 0.5)
    roll = rng.random()
    if roll < 0.08:
        cut = text[: rng.randint(0, len(text))]  # cut short: broken JSON
        return cut.encode("utf-8", errors="surrogatepass")
    if roll < 0.12:
        return text.replace("0", "NaN", 1).replace("1", "Infinity", 1).encode(
            "utf-8", errors="surrogatepass")
    if roll < 0.15:
        return rng.choice([b"", b"null", b"[]", b"42", b'"text"', b"\xff\xfe\x00",
                           b"{" * 5000, b'{"messages": [' + b"[" * 3000])
    return text.encode("utf-8", errors="surrogatepass")


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    served = start_serve("--parallel", "4", "--ctx", "512")
    yield served
    stop_serve(served)


def check_error(response: httpx.Response, sent: bytes) -> None:
    STATUSES.append(response.status_code)
    assert response.status_code < 500, (response.status_code, response.text[:500], sent[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and len(error["message"]) > 10, error


def test_malformed_requests_never_take_the_engine_down(server: Served) -> None:
    rng = random.Random(SEED)
    base = f"http://127.0.0.1:{server.port}"
    routes = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    plans = []
    for index in range(REQUESTS):
        route = rng.choice(routes)
        body = valid(route, rng)
        if rng.random() < 0.85:
            body = mutate(body, rng)
        stream = route != "/v1/embeddings" and rng.random() < 0.3
        if stream and isinstance(body, dict):
            body["stream"] = True
        drop = stream and rng.random() < 0.5  # the client goes away halfway
        plans.append((index, route, encode(body, rng), stream, drop))
    seen: list[int] = []
    lock = threading.Lock()

    def send(plan: tuple[int, str, bytes, bool, bool]) -> None:
        _, route, raw, stream, drop = plan
        with httpx.Client(base_url=base, timeout=120) as http:
            headers = {"content-type": "application/json"}
            if stream:
                with http.stream("POST", route, content=raw, headers=headers) as response:
                    if response.status_code != 200:
                        response.read()
                        check_error(response, raw)
                    else:
                        STATUSES.append(200)
                        for index, _ in enumerate(response.iter_lines()):
                            if drop and index == 1:
                                break
            else:
                check_error(http.post(route, content=raw, headers=headers), raw)
        with lock:
            seen.append(plan[0])

    with ThreadPoolExecutor(max_workers=6) as pool:
        for future in [pool.submit(send, plan) for plan in plans]:
            future.result()
    assert sorted(seen) == list(range(REQUESTS))
    counts = Counter(STATUSES)
    print(sorted(counts.items()))
    # The mix reached the model, not only the validation: many answers and many refusals.
    assert counts[200] > REQUESTS // 5 and counts[400] > REQUESTS // 5, counts

    # Still there, never restarted, and answering as before.
    assert httpx.get(base + "/health", timeout=10).json()["status"] == "ok"
    reply = server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8)
    assert reply.choices[0].message.content
    status = httpx.get(base + "/nomoat/status", timeout=10).json()
    assert status["busy"] == 0 and status["queued"] == 0
    assert not [line for line in server.stderr if "engine" in line.lower()], server.stderr


BOUNDS: dict[str, list[Any]] = {
    "temperature": [0, 0.01, 2], "top_p": [0, 1e-9, 1], "top_k": [0, 1, 2**31 - 1],
    "min_p": [0, 1], "repeat_penalty": [1e-9, 0.5, 10], "frequency_penalty": [-2, 2],
    "presence_penalty": [-2, 2], "seed": [-(2**70), -1, 0, 2**70],
    "max_tokens": [1, 10**12], "stop": [[], [""], ["a"] * 4, "x" * 5000],
}


def test_every_sampling_setting_at_its_bounds_is_served(server: Served) -> None:
    base = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=base, timeout=120) as http:
        for field, values in BOUNDS.items():
            for value in values:
                for penalised in (False, True):  # alone, and with every other sampler on
                    body: dict[str, Any] = {
                        "model": MODEL, "max_completion_tokens": 3, "temperature": 0.7,
                        "messages": [{"role": "user", "content": "Hi"}]}
                    if penalised:
                        body.update(repeat_penalty=1.2, frequency_penalty=0.5,
                                    presence_penalty=0.5, top_k=20, min_p=0.1, top_p=0.9)
                    body[field] = value
                    reply = http.post("/v1/chat/completions", json=body)
                    assert reply.status_code == 200, (field, value, reply.text)
                    usage = reply.json()["usage"]
                    assert 1 <= usage["completion_tokens"] + 1 <= 4, (field, value, usage)
        for field, value in (("repeat_penalty", 0), ("temperature", -0.1), ("top_k", 2**31),
                             ("top_p", 1.5), ("frequency_penalty", 2.5)):
            body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                    field: value}
            refused = http.post("/v1/chat/completions", json=body)
            assert refused.status_code == 400 and refused.json()["error"]["param"] == field
