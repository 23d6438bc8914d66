"""A hostile agent client, bounded: a few hundred requests with a fixed seed whose tools,
tool_choice, response_format, logprobs, tool-call history and Responses API input are broken
in every way a buggy framework breaks them, from several clients at once, streams dropped
halfway, against `nomoat serve` and the starter model.

Every bad request gets a 4xx in OpenAI's error shape that names the problem; nothing gets a
5xx; a grammar-constrained reply that does come back parses; the engine never restarts.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from conftest import Served, start_serve, stop_serve
from test_fuzz_api import ODD_TEXT, ODD_VALUES, encode

SEED = 41
REQUESTS = 240
MODEL = "smollm2-135m-instruct"

GOOD_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}},
               "required": ["city"]}
ODD_SCHEMAS: list[Any] = [
    GOOD_PARAMS, {}, {"type": "array"}, {"type": "object"}, {"$ref": "#/$defs/missing"},
    {"$ref": "http://example.com/schema.json"}, {"type": "object", "properties": []},
    {"type": "object", "properties": {"a": {"type": "nonsense"}}},
    {"type": "object", "properties": {"a": {"enum": []}}},
    {"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}},
    {"type": "object", "properties": {"a": {"type": "string", "format": "email"}}},
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": 3}}},
    {"anyOf": []}, {"allOf": [{"type": "string"}, {"type": "integer"}]},
    {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]},
    {"type": ["string", "null"]}, {"const": {"deep": [1, 2]}}, {"not": {}},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"$defs": {"x": {"$ref": "#/$defs/x"}}, "$ref": "#/$defs/x"},
    {"type": "string", "minLength": 10**9}, {"items": {"type": "string"}, "type": "array",
                                              "maxItems": 2},
    "not a schema", 7, None, [],
]


def _tool(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.5:
        function: dict[str, Any] = {"name": rng.choice(["get_city", "f", "look-up", "a.b",
                                                        "", "x" * 300, "名前", 5, None]),
                                    "parameters": rng.choice(ODD_SCHEMAS)}
        if rng.random() < 0.3:
            function["description"] = rng.choice(ODD_TEXT)
        return {"type": rng.choice(["function", "function", "retrieval", None]),
                "function": function}
    if roll < 0.7:
        return {"type": "function", "name": "flat_by_mistake", "parameters": GOOD_PARAMS}
    return rng.choice(ODD_VALUES)


def _choice(rng: random.Random) -> Any:
    return rng.choice(["auto", "none", "required", "any", "", None, 3,
                       {"type": "function", "function": {"name": "get_city"}},
                       {"type": "function", "function": {"name": "missing"}},
                       {"type": "function", "name": "get_city"}, {"type": "function"},
                       {"function": {"name": "get_city"}}])


def _response_format(rng: random.Random) -> Any:
    return rng.choice([
        {"type": "json_object"}, {"type": "text"}, {"type": "xml"}, {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "r", "schema": rng.choice(ODD_SCHEMAS),
                                                "strict": rng.choice([True, False, "yes"])}},
        {"type": "json_schema", "json_schema": {"schema": GOOD_PARAMS}},
        {"type": "json_schema", "json_schema": "schema"}, "json", None, [],
    ])


def _history(rng: random.Random) -> list[Any]:
    call = {"id": rng.choice(["call_1", "", None, 9]), "type": rng.choice(["function", "x"]),
            "function": {"name": rng.choice(["get_city", "", None]),
                         "arguments": rng.choice(['{"city": "Oslo"}', "{", "[]", "", 5,
                                                  {"city": "Oslo"}, None])}}
    said = {"role": "assistant", "content": rng.choice([None, "", "ok"]),
            "tool_calls": rng.choice([[call], [], "call", [call, call], None])}
    result = {"role": "tool", "tool_call_id": rng.choice(["call_1", None, "", 4]),
              "content": rng.choice(["4 degrees", "", None, [{"type": "text", "text": "4"}],
                                     {"a": 1}])}
    messages = [{"role": "user", "content": "Weather in Oslo?"}, said, result]
    rng.shuffle(messages) if rng.random() < 0.2 else None
    return messages


def chat_body(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": rng.randint(1, 24),
                            "messages": [{"role": "user", "content": "Weather in Oslo?"}]}
    if rng.random() < 0.6:
        body["tools"] = rng.choice([[_tool(rng)], [_tool(rng), _tool(rng)], [], "tools",
                                    [_tool(rng)] * 2])
    if rng.random() < 0.5:
        body["tool_choice"] = _choice(rng)
    if rng.random() < 0.4:
        body["response_format"] = _response_format(rng)
    if rng.random() < 0.3:
        body["logprobs"] = rng.choice([True, False, "yes", None])
        body["top_logprobs"] = rng.choice([0, 2, 20, 21, -1, 1.5, None])
    if rng.random() < 0.3:
        body["messages"] = _history(rng)
    if rng.random() < 0.15:
        body["parallel_tool_calls"] = rng.choice([True, False, "no", None])
    if rng.random() < 0.1:
        body["thinking_budget"] = rng.choice([0, 5, -1, 10**9, "x"])
    return body


GOOD_TOOL = {"type": "function", "function": {"name": "get_city", "parameters": GOOD_PARAMS}}


def sound_body(rng: random.Random, route: str) -> dict[str, Any]:
    """A well-formed request of the kinds the broken ones are made from."""
    if route == "/v1/responses":
        body: dict[str, Any] = {"model": MODEL, "max_output_tokens": rng.randint(1, 16),
                                "input": "Weather in Oslo?"}
        pick = rng.randrange(3)
        if pick == 0:
            body["tools"] = [{"type": "function", "name": "get_city",
                              "parameters": GOOD_PARAMS}]
            body["tool_choice"] = rng.choice(["auto", "required", "none"])
        elif pick == 1:
            body["text"] = {"format": {"type": "json_schema", "name": "r",
                                       "schema": GOOD_PARAMS}}
        return body
    body = {"model": MODEL, "max_tokens": rng.randint(1, 16),
            "messages": [{"role": "user", "content": "Weather in Oslo?"}]}
    pick = rng.randrange(4)
    if pick == 0:
        body["tools"] = [GOOD_TOOL]
        body["tool_choice"] = rng.choice(["auto", "required", "none",
                                          {"type": "function", "function": {"name": "get_city"}}])
    elif pick == 1:
        body["response_format"] = rng.choice([
            {"type": "json_object"},
            {"type": "json_schema", "json_schema": {"name": "r", "schema": GOOD_PARAMS}}])
    elif pick == 2:
        body["logprobs"] = True
        body["top_logprobs"] = rng.randint(0, 5)
    return body


def _input_item(rng: random.Random) -> Any:
    return rng.choice([
        {"role": "user", "content": "Hi"},
        {"role": rng.choice(["user", "robot", None]), "content": rng.choice(ODD_TEXT)},
        {"type": "message", "role": "user",
         "content": [{"type": rng.choice(["input_text", "input_image", "input_file", 3]),
                      "text": rng.choice(["Hi", None, 5])}]},
        {"type": "function_call", "call_id": rng.choice(["c1", "", None]),
         "name": rng.choice(["get_city", None]),
         "arguments": rng.choice(['{"city": "Oslo"}', "{", None, 5])},
        {"type": "function_call_output", "call_id": rng.choice(["c1", None]),
         "output": rng.choice(["4 degrees", None, [{"type": "input_text", "text": "4"}], 9])},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": rng.choice(["web_search_call", "", None, 1])},
        rng.choice(ODD_VALUES),
    ])


def responses_body(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "max_output_tokens": rng.randint(1, 24),
                            "input": rng.choice(["Weather in Oslo?", "Hi"])}
    if rng.random() < 0.5:
        body["input"] = [_input_item(rng) for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.5:
        body["tools"] = [rng.choice([
            {"type": "function", "name": "get_city", "parameters": rng.choice(ODD_SCHEMAS)},
            {"type": rng.choice(["web_search", "file_search", "mcp"])},
            {"type": "function", "function": {"name": "nested_by_mistake"}},
            rng.choice(ODD_VALUES)]) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.4:
        body["tool_choice"] = rng.choice(["auto", "none", "required", "always",
                                          {"type": "function", "name": "get_city"},
                                          {"type": "function", "name": "missing"},
                                          {"type": "web_search"}, 0])
    if rng.random() < 0.4:
        fmt = _response_format(rng)
        if isinstance(fmt, dict) and "json_schema" in fmt and isinstance(
                fmt["json_schema"], dict):
            fmt = {"type": "json_schema", **fmt["json_schema"]}
        body["text"] = rng.choice([{"format": fmt}, {"format": None}, "text", {"verbosity": 1}])
    if rng.random() < 0.2:
        body["previous_response_id"] = rng.choice(["resp_unknown", "", 5, None])
    if rng.random() < 0.2:
        body["include"] = rng.choice([["message.output_text.logprobs"], ["nothing"], "all"])
        body["top_logprobs"] = rng.choice([0, 3, 21, -2, None])
    if rng.random() < 0.15:
        body["reasoning"] = rng.choice([{"effort": "none"}, {"effort": "huge"}, "deep", None])
    if rng.random() < 0.1:
        body["instructions"] = rng.choice(ODD_TEXT)
    return body


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    served = start_serve("--parallel", "4", "--ctx", "1024")
    yield served
    stop_serve(served)


def _check(route: str, sent: dict[str, Any] | None, response: httpx.Response,
           statuses: list[int]) -> None:
    statuses.append(response.status_code)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and len(error["message"]) > 10, error
        return
    if sent is None or route != "/v1/chat/completions":
        return
    # A reply under a grammar that ran to its natural end is JSON that parses.
    reply = response.json()["choices"][0]
    form = sent.get("response_format")
    if (reply["finish_reason"] == "stop" and isinstance(form, dict)
            and form.get("type") == "json_object" and not reply["message"].get("tool_calls")):
        json.loads(reply["message"]["content"])
    for call in reply["message"].get("tool_calls") or []:
        if reply["finish_reason"] == "tool_calls":
            assert isinstance(json.loads(call["function"]["arguments"]), dict)


def test_broken_agent_requests_never_take_the_engine_down(server: Served) -> None:
    rng = random.Random(SEED)
    base = f"http://127.0.0.1:{server.port}"
    plans = []
    for _ in range(REQUESTS):
        route = rng.choice(["/v1/chat/completions", "/v1/responses"])
        if rng.random() < 0.35:
            body = sound_body(rng, route)
        else:
            body = chat_body(rng) if route == "/v1/chat/completions" else responses_body(rng)
        stream = rng.random() < 0.3
        if stream:
            body["stream"] = True
        raw = encode(body, rng) if rng.random() < 0.1 else json.dumps(body).encode()
        sent = body if raw == json.dumps(body).encode() and not stream else None
        plans.append((route, raw, sent, stream, stream and rng.random() < 0.5))
    statuses: list[int] = []

    def send(plan: tuple[str, bytes, dict[str, Any] | None, bool, bool]) -> None:
        route, raw, sent, stream, drop = plan
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=base, timeout=120) as http:
            if not stream:
                _check(route, sent, http.post(route, content=raw, headers=headers), statuses)
                return
            with http.stream("POST", route, content=raw, headers=headers) as response:
                if response.status_code != 200:
                    response.read()
                    _check(route, None, response, statuses)
                    return
                statuses.append(200)
                for index, line in enumerate(response.iter_lines()):
                    if drop and index == 2:
                        break
                    if line.startswith("data: {"):
                        json.loads(line[6:])  # every event is whole JSON

    with ThreadPoolExecutor(max_workers=6) as pool:
        for future in [pool.submit(send, plan) for plan in plans]:
            future.result()
    counts = Counter(statuses)
    print(sorted(counts.items()))
    assert sum(counts.values()) == REQUESTS
    assert counts[200] > REQUESTS // 6 and counts[400] > REQUESTS // 6, counts

    assert httpx.get(base + "/health", timeout=10).json()["status"] == "ok"
    reply = server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Oslo?"}], max_tokens=40,
        tools=[{"type": "function", "function": {"name": "get_city",
                                                 "parameters": GOOD_PARAMS}}],
        tool_choice="required", temperature=0)  # greedy: sampled, the small model may write ""
    assert json.loads(reply.choices[0].message.tool_calls[0].function.arguments)["city"]
    status = httpx.get(base + "/nomoat/status", timeout=10).json()
    assert status["busy"] == 0 and status["queued"] == 0
    assert not [line for line in server.stderr if "engine" in line.lower()], server.stderr
