"""Several replies at once: slots, continuous batching, per-slot caches, the queue, cancelling.

Real HTTP with the official openai client against `nomoat serve` and the starter model. Replies
that are compared are greedy (or seeded) and evaluated from an empty cache
(``cache_prompt: false``), so "equal" means the batch never changed a token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from conftest import Served, start_serve, stop_serve

PROMPTS = ["Tell me about the sea.", "What is a cat?", "Name three colours.",
           "Why is the sky blue?"]


@pytest.fixture(scope="module")
def four() -> Iterator[Served]:
    server = start_serve("--parallel", "4", "--ctx", "1024")
    yield server
    stop_serve(server)


def ask(client: openai.OpenAI, text: str, **extra: Any) -> Any:
    params: dict[str, Any] = {"max_tokens": 24, "temperature": 0}
    params.update(extra)
    body = {"cache_prompt": params.pop("cache_prompt", False)}
    return client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": text}],
        extra_body=body, **params)


def at_once(count: int, work: Any) -> list[Any]:
    """Run work(i) for i in range(count) on threads released together; results in order."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    gate = threading.Barrier(count)

    def run(i: int) -> None:
        gate.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return results


def long_story(client: openai.OpenAI, tokens: int = 3000) -> Any:
    """A long greedy story, streamed: once this returns, its first pieces have come."""
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct", stream=True, max_tokens=tokens, temperature=0,
        messages=[{"role": "user", "content": "Write a very long story about a dragon."}])
    pieces = iter(stream)
    next(pieces)
    next(pieces)
    return stream


def status(served: Served) -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{served.port}/nomoat/status", timeout=10).json()


def wait_idle(served: Served) -> None:
    deadline = time.monotonic() + 30
    while status(served)["busy"] or status(served)["queued"]:
        assert time.monotonic() < deadline, status(served)
        time.sleep(0.05)


def test_greedy_replies_are_the_same_alone_and_four_at_once(four: Served) -> None:
    client = four.client()
    alone = [ask(client, p).choices[0].message.content for p in PROMPTS]
    together = at_once(4, lambda i: ask(client, PROMPTS[i]).choices[0].message.content)
    assert together == alone
    assert len(set(alone)) == 4  # and no slot's text turned up in another's reply


def test_a_seed_gives_the_same_text_alone_and_beside_others(four: Served) -> None:
    client = four.client()
    seeded = {"temperature": 0.9, "seed": 1234, "max_tokens": 32}
    alone = ask(client, PROMPTS[0], **seeded).choices[0].message.content

    def work(i: int) -> str:
        if i == 0:
            return ask(client, PROMPTS[0], **seeded).choices[0].message.content
        return ask(client, PROMPTS[i], temperature=0.8, max_tokens=32).choices[0].message.content

    assert at_once(4, work)[0] == alone
    other_seed = ask(client, PROMPTS[0], **dict(seeded, seed=99)).choices[0].message.content
    assert other_seed != alone  # the seed is what made them equal


def test_short_replies_finish_while_a_long_one_streams(four: Served) -> None:
    client = four.client()
    long = long_story(client)
    try:
        seen = status(four)
        assert seen["total"] == 4 and seen["busy"] == 1
        replies = at_once(3, lambda i: ask(client, PROMPTS[i + 1]))
        assert all(r.choices[0].finish_reason == "length" for r in replies)
        assert status(four)["busy"] == 1  # the long reply still goes on
    finally:
        long.close()  # the client goes away: its slot is freed
    wait_idle(four)


def test_cancelling_one_of_four_lets_the_other_three_finish(four: Served) -> None:
    client = four.client()
    alone = [ask(client, p, max_tokens=48).choices[0].message.content for p in PROMPTS[1:]]

    def work(i: int) -> Any:
        if i == 0:
            stream = client.chat.completions.create(
                model="smollm2-135m-instruct", stream=True, max_tokens=2000, temperature=0,
                messages=[{"role": "user", "content": "Count from one to a thousand."}])
            for index, _ in enumerate(stream):
                if index == 3:
                    break
            stream.close()
            return None
        return ask(client, PROMPTS[i], max_tokens=48).choices[0].message.content

    results = at_once(4, work)
    assert results[1:] == alone
    wait_idle(four)  # the cancelled reply's slot is free again
    assert status(four)["busy"] == 0


def test_follow_up_turns_of_four_clients_each_reuse_their_cache(four: Served) -> None:
    client = four.client()
    questions = ["Tell me about rivers.", "Tell me about mountains.", "Tell me about bread.",
                 "Tell me about music."]
    histories = [[{"role": "user", "content": q}] for q in questions]

    def turn(i: int) -> Any:
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct", messages=histories[i], max_tokens=16,
            temperature=0)
        histories[i] = histories[i] + [
            {"role": "assistant", "content": reply.choices[0].message.content},
            {"role": "user", "content": "Say more."}]
        return reply

    first = at_once(4, turn)
    second = at_once(4, turn)
    for before, after in zip(first, second):
        assert after.usage.prompt_tokens_details.cached_tokens >= before.usage.prompt_tokens
    third = [turn(i) for i in (3, 2, 1, 0)]  # taking turns in another order
    for before, after in zip(reversed(second), third):
        assert after.usage.prompt_tokens_details.cached_tokens >= before.usage.prompt_tokens


def test_status_shows_the_slots_and_an_empty_prompt_starts_from_the_first_token(
        four: Served) -> None:
    shown = status(four)
    assert shown["model"] == "smollm2-135m-instruct" and shown["context_per_slot"] == 1024
    assert [s["id"] for s in shown["slots"]] == [0, 1, 2, 3]
    reply = four.client().completions.create(model="smollm2-135m-instruct", prompt="",
                                             max_tokens=8, temperature=0)
    assert reply.usage.prompt_tokens == 1 and reply.usage.completion_tokens >= 1


def test_embeddings_are_made_while_replies_stream(four: Served) -> None:
    client = four.client()
    stream = long_story(client, 2000)
    try:
        vectors = client.embeddings.create(model="smollm2-135m-instruct",
                                           input=["a cat", "a dog"])
        assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 100
        assert status(four)["busy"] == 1
        with pytest.raises(openai.BadRequestError, match="empty string"):
            client.embeddings.create(model="smollm2-135m-instruct", input="")
    finally:
        stream.close()
    wait_idle(four)


def test_a_full_engine_queues_requests_and_serves_them_in_order() -> None:
    served = start_serve("--parallel", "1", "--ctx", "1024")
    try:
        client = served.client()
        started: list[int] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            stream = client.chat.completions.create(
                model="smollm2-135m-instruct", stream=True, max_tokens=12, temperature=0,
                messages=[{"role": "user", "content": PROMPTS[i % 4]}])
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    with lock:
                        started.append(i)
                    break
            for _ in stream:
                pass

        blocker = long_story(client)
        threads = []
        for i in range(4):  # each joins the queue after the one before it
            thread = threading.Thread(target=one, args=(i,))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 20
            while status(served)["queued"] < i + 1:
                assert time.monotonic() < deadline, status(served)
                time.sleep(0.02)
        assert status(served)["busy"] == 1
        blocker.close()  # the slot frees; the queue drains first come, first served
        for thread in threads:
            thread.join(120)
        assert started == [0, 1, 2, 3]
        assert status(served)["queued"] == 0
    finally:
        stop_serve(served)
