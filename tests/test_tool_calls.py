"""Tool calls through the official openai client against `nomoat serve` and the starter model:
each tool_choice does what it says, calls are valid JSON that match their schema, streamed
calls accumulate in the client's helpers, and the round trip with tool results works."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel

MODEL = "smollm2-135m-instruct"
FRESH = {"cache_prompt": False}
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city's name"},
                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather now in a city.",
    "parameters": WEATHER_PARAMS}}
TIME_PARAMS = {"type": "object", "properties": {"timezone": {"type": "string"}},
               "required": ["timezone"]}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The time now in a timezone.", "parameters": TIME_PARAMS}}
SCHEMAS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]
MARKUP = ("<tool_call>", "</tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "<|tool_call|>")


def _check_call(call) -> dict:  # type: ignore[no-untyped-def]
    assert call.type == "function"
    assert call.id and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMAS[call.function.name])
    return arguments


def test_named_call_is_made_and_matches_its_schema(served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, TIME], max_tokens=80, seed=3,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert [c.function.name for c in choice.message.tool_calls] == ["get_time"]
    _check_call(choice.message.tool_calls[0])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_required_gives_a_call_of_one_of_the_tools(served, seed: int) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, TIME], tool_choice="required",
        parallel_tool_calls=False, max_tokens=80, seed=seed, temperature=0.8)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert len(choice.message.tool_calls) == 1
    _check_call(choice.message.tool_calls[0])


def test_parallel_calls_are_each_whole_and_valid(served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris and in Rome?"}],
        tools=[WEATHER], tool_choice="required", max_tokens=120, seed=5)
    calls = reply.choices[0].message.tool_calls
    assert calls, reply
    for call in calls:
        assert call.function.name == "get_weather"
        _check_call(call)
    assert len({c.id for c in calls}) == len(calls)


def test_tool_choice_none_answers_in_words(served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=40, seed=1)
    message = reply.choices[0].message
    assert not message.tool_calls
    assert message.content.strip()
    assert not any(mark in message.content for mark in MARKUP)
    assert reply.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_auto_never_leaks_call_markup_into_content(served, seed: int) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, TIME], max_tokens=100, seed=seed,
        temperature=0.9)
    message = reply.choices[0].message
    assert not any(mark in (message.content or "") for mark in MARKUP), message.content
    for call in message.tool_calls or []:
        _check_call(call)
    if message.tool_calls:
        assert reply.choices[0].finish_reason == "tool_calls"


def test_a_call_the_model_writes_itself_is_parsed_out_of_the_text(served) -> None:
    """History teaches the model to call in Hermes syntax (two calls before; after one, the
    starter model copies the tool's reply instead); whatever it writes, no markup is left in
    the content and any call it makes comes back as a tool call."""
    history: list[dict] = []
    for number, city in enumerate(["Oslo", "Rome"]):
        history += [
            {"role": "user", "content": f"What is the weather in {city}?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{number}", "type": "function", "function": {
                    "name": "get_weather",
                    "arguments": json.dumps({"city": city, "unit": "celsius"})}}]},
            {"role": "tool", "tool_call_id": f"call_{number}", "content": "4 degrees, rain"},
            {"role": "assistant", "content": f"It is 4 degrees and raining in {city}."}]
    history += ASK
    client = served.client()
    made = 0
    for seed in range(6):
        stream = client.chat.completions.create(
            model=MODEL, messages=history, tools=[WEATHER], max_tokens=60, seed=seed,
            stream=True)
        content, names = "", []
        for chunk in stream:
            delta = chunk.choices[0].delta
            content += delta.content or ""
            names += [c.function.name for c in delta.tool_calls or [] if c.function.name]
        assert not any(mark in content for mark in MARKUP), content
        made += bool(names)
    assert made >= 1, "the model never called the tool in the taught syntax"


def test_streamed_call_arrives_in_pieces_the_client_accumulates(served) -> None:
    client = served.client()
    request = dict(model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=80, temperature=0,
                   tool_choice={"type": "function", "function": {"name": "get_weather"}},
                   extra_body=FRESH)
    whole = client.chat.completions.create(**request)
    chunks = list(client.chat.completions.create(stream=True, **request))
    pieces = [c for ch in chunks for c in ch.choices[0].delta.tool_calls or []]
    assert len(pieces) > 2, "the arguments came in one piece"
    first = pieces[0]
    assert first.index == 0 and first.id and first.function.name == "get_weather"
    assert all(p.id is None and p.function.name is None for p in pieces[1:])
    arguments = "".join(p.function.arguments or "" for p in pieces)
    expected = whole.choices[0].message.tool_calls[0]
    assert arguments == expected.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert not any(ch.choices[0].delta.content for ch in chunks)


class Lookup(BaseModel):
    city: str
    days: int


def test_stream_helper_parses_arguments_into_the_model_class(served) -> None:
    client = served.client()
    with client.chat.completions.stream(
            model=MODEL, messages=[{"role": "user", "content": "Forecast for Lyon, 3 days"}],
            tools=[openai.pydantic_function_tool(Lookup)], max_tokens=60,
            tool_choice={"type": "function", "function": {"name": "Lookup"}}) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert isinstance(call.function.parsed_arguments, Lookup)


def test_round_trip_with_the_tool_result(served) -> None:
    client = served.client()
    first = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=80, seed=1,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]
    said = first.choices[0].message.model_dump(exclude_none=True)
    result = {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees"}
    answer = client.chat.completions.create(
        model=MODEL, messages=ASK + [said, result], tools=[WEATHER], max_tokens=40, seed=1)
    without = client.chat.completions.create(
        model=MODEL, messages=ASK + [said], tools=[WEATHER], tool_choice="none",
        max_tokens=1, seed=1)
    assert answer.choices[0].message.content or answer.choices[0].message.tool_calls
    assert answer.usage.prompt_tokens > without.usage.prompt_tokens  # the result was read


@pytest.mark.parametrize(("tools", "choice", "param", "words"), [
    ([{"type": "function", "function": {"name": "get weather"}}], None,
     "tools.0.function.name", "letters, digits"),
    ([WEATHER, WEATHER], None, "tools.1.function.name", "two tools"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}],
     None, "tools.0.function.parameters", "object"),
    ([{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}}],
     "required", "tools.0.function.parameters", "minimum"),
    ([{"type": "retrieval"}], None, "tools.0", "function"),
    ([WEATHER], {"type": "function", "function": {"name": "nope"}}, "tool_choice", "nope"),
    (None, "required", "tool_choice", "no 'tools'"),
])
def test_bad_tool_definitions_are_a_400_naming_the_problem(served, tools, choice, param,
                                                           words) -> None:
    body: dict = {"model": MODEL, "messages": ASK, "max_tokens": 4}
    if tools is not None:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(**body)
    error = caught.value.body
    assert error["param"] == param
    assert words in error["message"]
