"""The Responses API through the official openai client against `nomoat serve` and the starter
model: text, the typed stream and its helper, function calls and their round trip (by items and
by previous_response_id), structured output, log-probabilities, and clear errors."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel

MODEL = "smollm2-135m-instruct"
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"},
                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": WEATHER_PARAMS, "strict": True}
FORCED = {"type": "function", "name": "get_weather"}
ASK = "What is the weather in Paris right now?"


def test_a_text_answer_with_usage(served) -> None:
    response = served.client().responses.create(
        model=MODEL, input="Say hello to the world.", max_output_tokens=30, extra_body={"seed": 1},
        instructions="You are brief.")
    assert response.id.startswith("resp_")
    assert response.status in ("completed", "incomplete")
    assert response.output_text.strip()
    [item] = response.output
    assert item.type == "message" and item.role == "assistant"
    assert response.usage.input_tokens > 5
    assert 0 < response.usage.output_tokens <= 30
    assert response.usage.total_tokens == (response.usage.input_tokens
                                           + response.usage.output_tokens)
    assert response.instructions == "You are brief."


def test_max_output_tokens_reached_is_incomplete(served) -> None:
    response = served.client().responses.create(
        model=MODEL, input="Write a long story about a dragon.", max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 5


def test_the_typed_stream_builds_the_same_response(served) -> None:
    client = served.client()
    request = dict(model=MODEL, input="Name three colours.", max_output_tokens=24,
                   temperature=0)
    whole = client.responses.create(**request)
    events = list(client.responses.create(stream=True, **request))
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == ("response.incomplete" if whole.status == "incomplete"
                         else "response.completed")
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    first = types.index("response.output_text.delta")
    last = len(types) - 1 - types[::-1].index("response.output_text.delta")
    for opened, closed in (("response.output_item.added", "response.output_item.done"),
                           ("response.content_part.added", "response.content_part.done"),
                           (None, "response.output_text.done")):
        assert opened is None or types.index(opened) < first
        assert types.index(closed) > last
    final = events[-1].response
    assert len(deltas) > 3
    assert "".join(deltas) == final.output_text == whole.output_text
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_the_stream_helper_gives_the_final_response(served) -> None:
    with served.client().responses.stream(
            model=MODEL, input="Say yes or no.", max_output_tokens=200, tools=[WEATHER],
            tool_choice=FORCED) as stream:
        names = [event.type for event in stream]
        final = stream.get_final_response()
    assert names[-1] == "response.completed"
    assert final.status == "completed"
    [call] = final.output
    assert call.type == "function_call" and call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER_PARAMS)


def test_a_forced_function_call_is_an_item_with_valid_arguments(served) -> None:
    response = served.client().responses.create(
        model=MODEL, input=ASK, tools=[WEATHER], tool_choice=FORCED, max_output_tokens=80,
        extra_body={"seed": 2})
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), WEATHER_PARAMS)
    assert response.output_text == ""


def test_streamed_call_arguments_join_to_the_final_ones(served) -> None:
    client = served.client()
    pieces: list[str] = []
    done: list[str] = []
    with client.responses.stream(model=MODEL, input=ASK, tools=[WEATHER], tool_choice="required",
                                 parallel_tool_calls=False, max_output_tokens=80,
                                 extra_body={"seed": 4}) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                pieces.append(event.delta)
            elif event.type == "response.function_call_arguments.done":
                done.append(event.arguments)
        final = stream.get_final_response()
    [call] = [item for item in final.output if item.type == "function_call"]
    assert len(pieces) > 2
    assert done == ["".join(pieces)] == [call.arguments]
    jsonschema.validate(json.loads(call.arguments), WEATHER_PARAMS)


def _result_for(call) -> dict:  # type: ignore[no-untyped-def]
    return {"type": "function_call_output", "call_id": call.call_id,
            "output": "Sunny, 24 degrees"}


def test_round_trip_by_items(served) -> None:
    client = served.client()
    first = client.responses.create(model=MODEL, input=ASK, tools=[WEATHER], tool_choice=FORCED,
                                    max_output_tokens=80, extra_body={"seed": 1})
    [call] = [item for item in first.output if item.type == "function_call"]
    turn = [{"role": "user", "content": ASK}, call.model_dump(exclude_none=True)]
    answer = client.responses.create(model=MODEL, input=turn + [_result_for(call)],
                                     tools=[WEATHER], tool_choice="none", max_output_tokens=30,
                                     extra_body={"seed": 1})
    without = client.responses.create(model=MODEL, input=turn, tools=[WEATHER],
                                      tool_choice="none", max_output_tokens=1)
    assert answer.output_text.strip()
    assert answer.usage.input_tokens > without.usage.input_tokens  # the result was read


def test_round_trip_by_previous_response_id(served) -> None:
    client = served.client()
    first = client.responses.create(model=MODEL, input=ASK, tools=[WEATHER], tool_choice=FORCED,
                                    max_output_tokens=80, extra_body={"seed": 1})
    [call] = [item for item in first.output if item.type == "function_call"]
    answer = client.responses.create(model=MODEL, previous_response_id=first.id,
                                     input=[_result_for(call)], tools=[WEATHER],
                                     tool_choice="none", max_output_tokens=30,
                                     extra_body={"seed": 1})
    assert answer.previous_response_id == first.id
    assert answer.output_text.strip()
    # The earlier turn was read again: the prompt holds more than the tool result alone.
    alone = client.responses.create(model=MODEL, input="Sunny, 24 degrees", max_output_tokens=1)
    assert answer.usage.input_tokens > alone.usage.input_tokens + 20
    follow = client.responses.create(model=MODEL, previous_response_id=answer.id,
                                     input="Thanks!", max_output_tokens=8)
    assert follow.usage.input_tokens > answer.usage.input_tokens


def test_a_response_is_kept_then_deleted(served) -> None:
    client = served.client()
    made = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    kept = client.responses.retrieve(made.id)
    assert kept.id == made.id and kept.output_text == made.output_text
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(made.id)
    assert caught.value.body["code"] == "response_not_found"


def test_an_unknown_previous_response_is_a_404_naming_it(served) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        served.client().responses.create(model=MODEL, input="Hi", max_output_tokens=4,
                                         previous_response_id="resp_nothing")
    assert caught.value.body["param"] == "previous_response_id"
    assert "resp_nothing" in caught.value.body["message"]


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"},
                   "pets": {"type": "array", "items": {"type": "string", "maxLength": 20},
                            "maxItems": 3}},
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}


def test_text_format_json_schema_validates(served) -> None:
    response = served.client().responses.create(
        model=MODEL, input="Describe a person as JSON.", max_output_tokens=200,
        extra_body={"seed": 3},
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON,
                         "strict": True}})
    assert response.status == "completed"
    jsonschema.validate(json.loads(response.output_text), PERSON)
    assert response.text.format.type == "json_schema"


class City(BaseModel):
    name: str
    country: str
    population: int


def test_client_parse_with_a_pydantic_model(served) -> None:
    response = served.client().responses.parse(
        model=MODEL, input="Tell me about Paris as JSON.", text_format=City,
        max_output_tokens=100, extra_body={"seed": 1})
    assert isinstance(response.output_parsed, City)


def test_logprobs_when_included(served) -> None:
    response = served.client().responses.create(
        model=MODEL, input="Say hi.", max_output_tokens=6, top_logprobs=2,
        include=["message.output_text.logprobs"])
    part = response.output[0].content[0]
    assert len(part.logprobs) == response.usage.output_tokens
    # A token may hold part of a character (an emoji's first bytes): its text alone cannot show
    # it, its bytes do, and all the bytes together are the text.
    assert bytes(b for entry in part.logprobs for b in entry.bytes).decode() == part.text
    for entry in part.logprobs:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "web_search"}]}, "tools.0"),
    ({"input": [{"type": "image_generation_call", "id": "x"}]}, "input.0.type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input.0.content.0"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}]},
     "input.0.arguments"),
    ({"input": ""}, "input"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {
        "type": "object", "properties": {"n": {"type": "string", "format": "email"}}}}}},
     "text.format.schema"),
])
def test_bad_requests_are_a_400_naming_the_field(served, body: dict, param: str) -> None:
    request = {"model": MODEL, "input": "Hi", "max_output_tokens": 4, **body}
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().responses.create(**request)
    assert caught.value.body["param"].startswith(param), caught.value.body
    assert caught.value.body["message"]
