"""The engine through its private API: queueing, cancelling, caching, listeners, bad files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gguf
import httpx
import numpy as np
import openai
import pytest
from conftest import free_port

from desktop.client.api import EngineError, StreamEnd

MODEL = "smollm2-135m-instruct"
ESSAY = [{"role": "user", "content": "Write a very long essay about the history of bread."}]


def private(engine) -> httpx.Client:  # type: ignore[no-untyped-def]
    client = engine.client
    return httpx.Client(base_url=client.base_url, timeout=60,
                        headers=dict(client._http.headers))


def wait_idle(engine, timeout: float = 30) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = engine.client.status()
        if status["queue_length"] == 0:
            return status
        time.sleep(0.05)
    raise AssertionError("the engine stayed busy")


def test_control_routes_need_the_launch_token(engine) -> None:
    url = engine.client.base_url
    assert httpx.get(f"{url}/control/status").status_code == 401
    wrong = httpx.get(f"{url}/control/status", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    status = engine.client.status()
    assert status["model"]["id"] == MODEL
    assert status["model"]["settings"]["n_ctx"] == 4096
    assert status["memory_bytes"] > 50_000_000


def test_the_loaded_model_says_its_context_in_the_model_list(engine) -> None:
    # As OpenRouter and others do: a client fits its prompts to it (the window does, for a
    # server elsewhere).
    client = engine.client
    listed = {m["id"]: m for m in client.models()}
    context = client.status()["model"]["context_per_slot"]
    assert listed["smollm2-135m-instruct"]["context_length"] == context > 0
    assert all("context_length" not in m for m in listed.values() if not m["loaded"])


def test_disconnect_mid_stream_stops_generation(engine) -> None:
    with private(engine) as http:
        with http.stream("POST", "/v1/chat/completions",
                         json={"messages": ESSAY, "stream": True, "max_tokens": 2000,
                               "temperature": 0.7}) as response:
            seen = 0
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen += 1
                if seen >= 5:
                    break
        # leaving the block closed the connection mid-stream
        started = time.monotonic()
        reply = http.post("/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "Hi"}],
                                "max_tokens": 1}).json()
        waited = time.monotonic() - started
    assert reply["usage"]["completion_tokens"] == 1
    assert waited < 5, f"the next request waited {waited:.1f}s behind a cancelled one"
    status = wait_idle(engine)
    assert status["last_generation"]["completion_tokens"] == 1
    # the cancelled generation is not the one that ran to 2,000 tokens
    assert engine.client.status()["queue_length"] == 0


def test_cancelled_generation_stopped_early(engine) -> None:
    pieces = []
    stream = engine.client.chat_stream(ESSAY, max_tokens=2000, temperature=0.7)
    for piece in stream:
        pieces.append(piece)
        if len(pieces) >= 4:
            break
    stream.close()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    status = engine.client.status()
    while status["last_generation"]["finish_reason"] != "cancelled":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
        status = engine.client.status()
    assert status["last_generation"]["completion_tokens"] < 100


def test_two_concurrent_clients_get_complete_answers(engine) -> None:
    prompts = ["Name three fruits.", "Name three colours."]
    expected = {}
    for prompt in prompts:
        expected[prompt] = _ask(engine, prompt)
    results: dict[str, str] = {}

    def ask(prompt: str) -> None:
        results[prompt] = _ask(engine, prompt)

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == expected


def _ask(engine, prompt: str) -> str:  # type: ignore[no-untyped-def]
    text = []
    for piece in engine.client.chat_stream([{"role": "user", "content": prompt}],
                                           max_tokens=30, temperature=0):
        if isinstance(piece, str):
            text.append(piece)
        else:
            assert piece.finish_reason in ("stop", "length")
    return "".join(text)


def test_follow_up_turn_reuses_the_evaluated_prefix(engine) -> None:
    context = "Here are my notes. " + " ".join(f"Item {i} is a fact about rivers." for i in
                                                 range(150))
    conversation = [{"role": "system", "content": "You are helpful."},
                    {"role": "user", "content": context + " Summarise them."}]
    reply, first = _turn(engine, conversation)
    assert first["prompt_tokens"] > 1000
    conversation += [{"role": "assistant", "content": reply},
                     {"role": "user", "content": "Thanks. One more point?"}]
    _, second = _turn(engine, conversation)
    assert second["prompt_tokens"] > first["prompt_tokens"]
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert cached >= first["prompt_tokens"] - 2, (cached, first)


def _turn(engine, messages):  # type: ignore[no-untyped-def]
    text, end = [], None
    for piece in engine.client.chat_stream(messages, max_tokens=16, temperature=0):
        if isinstance(piece, StreamEnd):
            end = piece
        else:
            text.append(piece)
    assert end is not None and end.usage is not None
    return "".join(text), end.usage


def test_public_listener_opens_and_closes_without_reloading(engine) -> None:
    loaded_at = engine.client.status()["model"]["loaded_at"]
    port = free_port()
    public = engine.set_public(True, host="127.0.0.1", port=port)
    assert public["base_url"] == f"http://127.0.0.1:{port}/v1"
    with openai.OpenAI(base_url=public["base_url"], api_key="none", max_retries=0) as client:
        reply = client.chat.completions.create(model=MODEL, max_tokens=3,
                                               messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content is not None
    # control routes are never served on the public listener
    assert httpx.get(f"http://127.0.0.1:{port}/control/status").status_code == 404
    log = httpx.get(f"{engine.client.base_url}/control/requests",
                    headers=dict(engine.client._http.headers)).json()["requests"]
    chat = [entry for entry in log if entry["route"] == "/v1/chat/completions"]
    assert chat[-1]["status"] == 200
    assert chat[-1]["tokens"] == reply.usage.completion_tokens
    assert log[-1]["route"] == "/control/status" and log[-1]["status"] == 404
    engine.set_public(False)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")
    assert engine.client.status()["model"]["loaded_at"] == loaded_at


def test_api_key_and_cors_on_the_public_listener(engine) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    engine.set_public(True, host="127.0.0.1", port=port, api_key="s3cret",
                      cors_origins=["http://app.example"])
    try:
        with openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError):
                bad.models.list()
        assert httpx.get(f"{base}/v1/models").status_code == 401
        assert httpx.get(f"{base}/health").status_code == 401  # every route needs the key
        with openai.OpenAI(base_url=f"{base}/v1", api_key="s3cret", max_retries=0) as good:
            assert MODEL in [m.id for m in good.models.list()]
        preflight = httpx.options(f"{base}/v1/chat/completions", headers={
            "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        other = httpx.options(f"{base}/v1/chat/completions", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers
        simple = httpx.get(f"{base}/v1/models", headers={"Origin": "http://app.example",
                                                          "Authorization": "Bearer s3cret"})
        assert simple.headers["access-control-allow-origin"] == "http://app.example"
    finally:
        engine.set_public(False)


def test_a_port_in_use_is_a_clear_error(engine) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EngineError, match=f"Port {port} .* already in use"):
            engine.set_public(True, host="127.0.0.1", port=port)


def _one_tensor_model(path: Path, architecture: str) -> Path:
    """A GGUF with one tiny tensor: an unknown architecture, or a llama missing its layers."""
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _bad_files(tmp_path: Path, starter: Path) -> list[tuple[str, dict, str]]:
    text = tmp_path / "notes.gguf"
    text.write_text("these are my notes, not a model\n")
    truncated = tmp_path / "truncated.gguf"
    with starter.open("rb") as source:
        truncated.write_bytes(source.read(40_000_000))
    return [
        (str(tmp_path / "missing.gguf"), {}, "does not exist"),
        (str(text), {}, "is not a GGUF model file"),
        (str(truncated), {}, "is incomplete"),
        (str(_one_tensor_model(tmp_path / "alien.gguf", "nomoatnet")), {},
         "architecture 'nomoatnet'"),
        (str(_one_tensor_model(tmp_path / "hollow.gguf", "llama")), {},
         "llama.cpp could not load"),
        (str(starter), {"n_ctx": _context_beyond_memory(starter)}, "GB of memory"),
    ]


def _context_beyond_memory(starter: Path) -> int:
    """A context whose cache alone needs twice the memory free on this machine."""
    from desktop.core.gguf_info import read_gguf
    from desktop.core.memory import available_memory, kv_cache_bytes

    free = available_memory() or 64 * 1024**3
    return 2 * free // kv_cache_bytes(read_gguf(starter), 1) + 1


def test_bad_model_files_get_a_message_and_the_engine_keeps_serving(engine, tmp_path,
                                                                     starter) -> None:
    before = engine.client.status()["model"]
    for path, settings, message in _bad_files(tmp_path, starter):
        with pytest.raises(EngineError) as caught:
            engine.client.load(path, **settings)
        assert message in str(caught.value), (path, str(caught.value))
        assert caught.value.status == 400
        status = engine.client.status()
        assert status["model"]["id"] == MODEL, path
        # Loaded again as it was asked for: the threads it chose itself are still its choice.
        assert status["model"]["threads_auto"] == before["threads_auto"], path
        assert status["model"]["settings"] == before["settings"], path
        assert _ask(engine, "Say yes.")
    assert engine.client.health()["status"] == "ok"


def test_chat_template_override(engine) -> None:
    question = [{"role": "user", "content": "Hi"}]
    _, default = _turn(engine, question)
    engine.load(MODEL, chat_template="{% for m in messages %}Q: {{ m['content'] }}\n"
                                     "{% endfor %}A:")
    try:
        assert engine.client.status()["model"]["chat_template"] == "override"
        _, custom = _turn(engine, question)
        assert custom["prompt_tokens"] < default["prompt_tokens"]
    finally:
        engine.load(MODEL)
    assert engine.client.status()["model"]["chat_template"] == "model"


def test_broken_installed_model_is_503_and_others_still_work(tmp_path, monkeypatch) -> None:
    from desktop.client.process import EngineSupervisor

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setenv("NOMOAT_HOME", str(home))
    supervisor = EngineSupervisor()
    supervisor.start()
    try:
        base = supervisor.client.base_url + "/v1"
        with openai.OpenAI(base_url=base, api_key=supervisor._engine.token,
                           max_retries=0) as client:
            assert "broken" in [m.id for m in client.models.list()]
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(model="broken", messages=ESSAY, max_tokens=2)
            assert caught.value.status_code == 503
            assert caught.value.code == "model_not_loaded"
            assert "damaged or incomplete" in caught.value.message
            reply = client.chat.completions.create(model=MODEL, messages=ESSAY, max_tokens=2)
            assert reply.usage.completion_tokens == 2
    finally:
        supervisor.stop()
