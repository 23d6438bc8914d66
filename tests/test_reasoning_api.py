"""Reasoning kept apart from the answer, through the official openai client.

The starter model does not think by itself, so the engine loads it with a chat template in
the shape of Qwen3's (it renders earlier thinking, and takes ``enable_thinking``). A thinking
budget makes the engine open the thinking and end it for the model, so every reply here
thinks for a known number of tokens, then answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import openai
import pytest

from desktop.client.process import EngineSupervisor

MODEL = "smollm2-135m-instruct"
FRESH = {"cache_prompt": False}
THINKING_TEMPLATE = (
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n"
    "{%- if m.role == 'assistant' and m.reasoning_content %}\n<think>\n{{ m.reasoning_content }}"
    "\n</think>\n{%- endif %}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% endif %}{%- endif %}")
ASK = [{"role": "user", "content": "What is two plus two?"}]


@pytest.fixture(scope="module")
def thinker() -> Iterator[openai.OpenAI]:
    supervisor = EngineSupervisor()
    supervisor.start()
    supervisor.load(MODEL, chat_template=THINKING_TEMPLATE)
    client = openai.OpenAI(base_url=supervisor.client.base_url + "/v1",
                           api_key=supervisor._engine.token, max_retries=0)
    yield client
    client.close()
    supervisor.stop()


def _ask(client: openai.OpenAI, **extra):  # type: ignore[no-untyped-def]
    request = dict(model=MODEL, messages=ASK, max_tokens=60, temperature=0,
                   extra_body={**FRESH, **extra.pop("extra_body", {})})
    request.update(extra)
    return client.chat.completions.create(**request)


def test_a_budget_ends_the_thinking_and_the_answer_follows(thinker) -> None:
    reply = _ask(thinker, extra_body={"thinking_budget": 12})
    message = reply.choices[0].message
    reasoning = message.model_extra["reasoning_content"]
    assert reasoning.strip()
    assert "<think>" not in message.content and "</think>" not in message.content
    assert "</think>" not in reasoning
    thought = reply.usage.completion_tokens_details.reasoning_tokens
    assert 12 <= thought <= 12 + 8, thought  # the budget, and the tokens that close it
    assert reply.usage.completion_tokens > thought  # and then it answered


def test_streamed_thinking_comes_first_in_its_own_field(thinker) -> None:
    whole = _ask(thinker, extra_body={"thinking_budget": 10}).choices[0].message
    chunks = list(_ask(thinker, stream=True, extra_body={"thinking_budget": 10}))
    kinds = []
    reasoning = content = ""
    for chunk in chunks:
        delta = chunk.choices[0].delta
        piece = (delta.model_extra or {}).get("reasoning_content")
        if piece:
            reasoning += piece
            kinds.append("r")
        if delta.content:
            content += delta.content
            kinds.append("c")
    assert kinds and kinds[0] == "r" and "r" not in kinds[kinds.index("c"):]
    assert reasoning.strip() == whole.model_extra["reasoning_content"]
    assert content == whole.content


def test_thinking_switched_off_gives_only_an_answer(thinker) -> None:
    reply = _ask(thinker, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    message = reply.choices[0].message
    assert not (message.model_extra or {}).get("reasoning_content")
    assert message.content.strip() and "<think>" not in message.content
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0


def test_a_schema_binds_the_answer_after_the_thinking(thinker) -> None:
    schema = {"type": "object", "properties": {"sum": {"type": "integer"}},
              "required": ["sum"], "additionalProperties": False}
    reply = _ask(thinker, max_tokens=80, extra_body={"thinking_budget": 10},
                 response_format={"type": "json_schema",
                                  "json_schema": {"name": "sum", "schema": schema}})
    message = reply.choices[0].message
    assert message.model_extra["reasoning_content"].strip()
    jsonschema.validate(json.loads(message.content), schema)


def test_a_forced_call_comes_after_the_thinking(thinker) -> None:
    tool = {"type": "function", "function": {
        "name": "add", "parameters": {"type": "object", "properties": {
            "a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
    reply = _ask(thinker, max_tokens=80, tools=[tool], extra_body={"thinking_budget": 8},
                 tool_choice={"type": "function", "function": {"name": "add"}})
    message = reply.choices[0].message
    assert message.model_extra["reasoning_content"].strip()
    assert reply.choices[0].finish_reason == "tool_calls"
    arguments = json.loads(message.tool_calls[0].function.arguments)
    assert set(arguments) == {"a", "b"}


def test_earlier_thinking_sent_back_is_accepted(thinker) -> None:
    first = _ask(thinker, extra_body={"thinking_budget": 6}).choices[0].message
    history = ASK + [first.model_dump(exclude_none=True),
                     {"role": "user", "content": "And three plus three?"}]
    reply = thinker.chat.completions.create(model=MODEL, messages=history, max_tokens=20,
                                            extra_body={"thinking_budget": 6})
    assert reply.choices[0].message.content is not None
