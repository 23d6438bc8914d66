"""Structured output and log-probabilities through the official openai client against
`nomoat serve` and the starter model: JSON that parses, JSON that validates against a schema
(pydantic's included), a 400 for what a grammar cannot keep, and log-probabilities whole and
streamed."""

from __future__ import annotations

import json
import math
from enum import Enum

import jsonschema
import openai
import pytest
from pydantic import BaseModel

MODEL = "smollm2-135m-instruct"
FRESH = {"cache_prompt": False}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "pets": {"type": "array", "items": {"type": "string", "maxLength": 20},
                 "maxItems": 3},
        "home": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                 "required": ["city"], "additionalProperties": False},
        "mood": {"enum": ["happy", "sad"]},
        "nickname": {"anyOf": [{"type": "string", "maxLength": 20}, {"type": "null"}]},
    },
    "required": ["name", "age", "pets", "home", "mood", "nickname"],
    "additionalProperties": False,
}


def _person_format(schema: dict = PERSON) -> dict:
    return {"type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True}}


STOPPED: list[bool] = []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_object_always_parses(served, seed: int) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, max_tokens=200, seed=seed, temperature=0.7,
        messages=[{"role": "user", "content": "Describe a cat as a JSON object."}],
        response_format={"type": "json_object"})
    text = reply.choices[0].message.content
    # The grammar keeps every reply JSON; only max_tokens can cut one short (the 135M model
    # sometimes loops inside an open object), and then it says so.
    if reply.choices[0].finish_reason == "length":
        assert text.startswith("{")
        STOPPED.append(False)
    else:
        assert reply.choices[0].finish_reason == "stop", text
        assert isinstance(json.loads(text), dict)
        STOPPED.append(True)


def test_json_object_replies_mostly_end_on_their_own() -> None:
    assert len(STOPPED) == 3 and sum(STOPPED) >= 1, STOPPED


@pytest.mark.parametrize("seed", [4, 5])
def test_json_schema_output_validates(served, seed: int) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, max_tokens=300, seed=seed, temperature=0.7,
        messages=[{"role": "user", "content": "Make up a person."}],
        response_format=_person_format())
    text = reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop", text
    jsonschema.validate(json.loads(text), PERSON)


class Colour(str, Enum):
    red = "red"
    blue = "blue"


class Address(BaseModel):
    street: str
    number: int


class Card(BaseModel):
    title: str
    colour: Colour
    tags: list[str]
    address: Address
    note: str | None


def test_client_parse_with_a_pydantic_model(served) -> None:
    """pydantic writes $defs and $ref for the nested classes and anyOf for the optional."""
    schema = Card.model_json_schema()
    assert "$defs" in schema
    reply = served.client().chat.completions.parse(
        model=MODEL, max_tokens=300, seed=1, temperature=0.5,
        messages=[{"role": "user", "content": "Make a card for a red shop."}],
        response_format=Card)
    card = reply.choices[0].message.parsed
    assert isinstance(card, Card)
    assert isinstance(card.address, Address)


def test_text_completions_take_a_response_format(served) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "boolean"}},
              "required": ["answer"], "additionalProperties": False}
    reply = served.client().completions.create(
        model=MODEL, prompt="Is the sky blue? Answer in JSON: ", max_tokens=30, seed=1,
        extra_body={"response_format": {"type": "json_schema",
                                        "json_schema": {"name": "a", "schema": schema}}})
    jsonschema.validate(json.loads(reply.choices[0].text), schema)


def test_a_reply_cut_short_is_length_and_a_prefix_of_json(served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, max_tokens=6, seed=1,
        messages=[{"role": "user", "content": "Make up a person."}],
        response_format=_person_format())
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content.startswith("{")


@pytest.mark.parametrize(("schema", "keyword"), [
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}, "minimum"),
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "uniqueItems"),
    ({"type": "string", "format": "email"}, "email"),
    ({"type": "object", "not": {"required": ["a"]}}, "not"),
    ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}, "$ref"),
])
def test_what_a_grammar_cannot_keep_is_a_400_naming_it(served, schema, keyword) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hi"}],
            response_format=_person_format(schema))
    assert caught.value.code == "unsupported_schema"
    assert keyword in caught.value.body["message"]
    assert caught.value.param.startswith("response_format.json_schema.schema")


def test_json_schema_without_a_schema_is_a_400(served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    assert caught.value.param == "response_format.json_schema"


# -- log-probabilities ----------------------------------------------------------------------

ASK = [{"role": "user", "content": "Name three colours."}]


def test_chat_logprobs_cover_every_token(served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=16, temperature=0, logprobs=True,
        top_logprobs=3, extra_body=FRESH)
    entries = reply.choices[0].logprobs.content
    assert len(entries) == reply.usage.completion_tokens
    text = b"".join(bytes(e.bytes) for e in entries).decode()
    assert text.strip() == reply.choices[0].message.content.strip()
    for entry in entries:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-6
        # greedy: the token written is the likeliest one
        assert entry.top_logprobs[0].token == entry.token
        assert math.isclose(entry.top_logprobs[0].logprob, entry.logprob, abs_tol=1e-5)


def test_streamed_logprobs_equal_the_whole_ones(served) -> None:
    client = served.client()
    request = dict(model=MODEL, messages=ASK, max_tokens=16, temperature=0, logprobs=True,
                   top_logprobs=2, extra_body=FRESH)
    whole = client.chat.completions.create(**request).choices[0].logprobs.content
    streamed = [e for chunk in client.chat.completions.create(stream=True, **request)
                for e in (chunk.choices[0].logprobs.content if chunk.choices[0].logprobs
                          else None) or []]
    assert [e.token for e in streamed] == [e.token for e in whole]
    for a, b in zip(streamed, whole, strict=True):
        assert math.isclose(a.logprob, b.logprob, abs_tol=1e-4)


def test_no_logprobs_unless_asked(served) -> None:
    reply = served.client().chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
    assert reply.choices[0].logprobs is None


def test_completion_logprobs_in_the_legacy_shape(served) -> None:
    reply = served.client().completions.create(
        model=MODEL, prompt="The colours of the rainbow are", max_tokens=10, temperature=0,
        logprobs=2, extra_body=FRESH)
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert "".join(logprobs.tokens) == choice.text
    assert len(logprobs.token_logprobs) == len(logprobs.tokens) == reply.usage.completion_tokens
    assert all(v <= 0 for v in logprobs.token_logprobs)
    assert all(len(top) <= 2 and top for top in logprobs.top_logprobs)
    assert logprobs.text_offset == sorted(logprobs.text_offset)
    assert logprobs.text_offset[0] == 0


def test_logprobs_with_a_grammar_are_those_of_the_constrained_step(served) -> None:
    reply = served.client().chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=40, temperature=0, logprobs=True,
        top_logprobs=1, response_format={"type": "json_object"})
    entries = reply.choices[0].logprobs.content
    assert entries and all(e.logprob <= 0 for e in entries)
    assert "".join(e.token for e in entries).startswith("{")


@pytest.mark.parametrize(("body", "param"), [
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
])
def test_bad_logprob_requests_are_400(served, body, param) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(model=MODEL, messages=ASK, max_tokens=2,
                                                **body)
    assert caught.value.param == param


def test_completion_echo_is_refused_clearly(served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().completions.create(model=MODEL, prompt="Hi", max_tokens=2, echo=True,
                                           logprobs=1)
    assert caught.value.param == "echo"
