"""Embedding models: a real one (all-MiniLM-L6-v2, converted to GGUF) installed in the library,
run by the engine in a context of its own beside the chat model, and checked against an
independent numpy computation of the same weights.

One engine serves the module: the starter chat model loaded, the public API open for the
official openai client, the private one for the app's own client.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from conftest import free_port
from embedding_model import reference_embeddings
from pytestqt.qtbot import QtBot

from desktop.client.api import EngineError
from desktop.client.process import EngineSupervisor
from desktop.core.catalog import bundled_catalog, parse_entry
from desktop.core.gguf_info import read_gguf
from desktop.core.library import InstalledModel, installed_models, memory_fit
from desktop.core.library_changes import import_model
from desktop.core.memory import EMBEDDING_CONTEXT, estimate_embedding_memory

CHAT = "smollm2-135m-instruct"
MiB = 1024 * 1024
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.",
             "The new movie is awesome, isn't it?"]


@pytest.fixture(scope="module")
def minilm(minilm_gguf: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[InstalledModel]:
    """The MiniLM GGUF imported (copied) into a data folder of this module's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOMOAT_HOME", str(tmp_path_factory.mktemp("embedding-home")))
        yield import_model(minilm_gguf)


@pytest.fixture(scope="module")
def engine(minilm: InstalledModel) -> Iterator[EngineSupervisor]:
    """An engine that sees that data folder, with the starter chat model loaded."""
    supervisor = EngineSupervisor()
    supervisor.start()
    try:
        supervisor.load(CHAT)
        supervisor.set_public(True, host="127.0.0.1", port=free_port())
        yield supervisor
    finally:
        supervisor.stop()


@pytest.fixture(scope="module")
def api(engine: EngineSupervisor) -> Iterator[openai.OpenAI]:
    """The official openai client on the engine's public API."""
    assert engine.public is not None
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{engine.public['port']}/v1",
                           api_key="none", max_retries=0)
    yield client
    client.close()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# -- the model file and the library ----------------------------------------------------------

def test_the_header_says_embedding_model(minilm_gguf: Path, starter: Path) -> None:
    info = read_gguf(minilm_gguf)
    assert (info.architecture, info.kind, info.pooling_type) == ("bert", "embedding", 1)
    assert (info.context_length, info.embedding_length, info.block_count) == (512, 384, 6)
    assert info.vocab_size == 30522 and info.quantization == "F16"
    assert read_gguf(starter).kind == "chat"


def test_the_library_lists_the_kind(minilm: InstalledModel) -> None:
    kinds = {m.id: m.kind for m in installed_models()}
    assert kinds[minilm.id] == "embedding" and kinds[CHAT] == "chat"
    listed = subprocess.run([sys.executable, "-m", "desktop", "models", "--offline"],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ))
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line.split() for line in listed.stdout.splitlines()
             if line.startswith("  ")}
    assert "embedding" in lines[minilm.id] and "chat" in lines[CHAT]
    assert "embedding" in lines["nomic-embed-text-v1-5"]  # the catalog's embedding model


def test_catalog_entries_have_a_kind() -> None:
    catalog = bundled_catalog()
    assert catalog.warnings == []
    assert catalog.get("nomic-embed-text-v1-5").kind == "embedding"
    assert catalog.get(CHAT).kind == "chat"  # the default
    raw = {"id": "x", "name": "X", "repo_id": "o/r", "filename": "x.gguf", "size_bytes": 1,
           "parameters": "1M", "quantization": "F16", "context_length": 512,
           "license": "mit", "description": "d", "tags": [], "recommended_sampling": {},
           "min_app_version": "0.1.0"}
    assert parse_entry(raw).kind == "chat"
    assert parse_entry(dict(raw, kind="embedding")).kind == "embedding"
    with pytest.raises(ValueError, match="'kind' must be one of 'chat', 'embedding'"):
        parse_entry(dict(raw, kind="reranker"))


# -- memory --------------------------------------------------------------------------------------

def test_the_memory_estimate_grows_by_the_embedding_model(minilm: InstalledModel) -> None:
    chat = next(m for m in installed_models() if m.id == CHAT)
    alone = memory_fit(chat, 2048, parallel=2)
    beside = memory_fit(chat, 2048, parallel=2, embedding=minilm)
    assert alone is not None and beside is not None
    embedding = estimate_embedding_memory(minilm.info)
    # Its weights and its context: the output rows of a whole batch, the activations.
    assert embedding.model_bytes > minilm.size_bytes + EMBEDDING_CONTEXT * 30522 * 4
    assert beside.estimate.total == alone.estimate.total + embedding.model_bytes
    assert beside.estimate.model_bytes == alone.estimate.model_bytes  # not the chat model's
    assert "embedding model" in beside.message
    own = memory_fit(minilm)  # the embedding model itself: as the engine runs it
    assert own is not None and own.estimate.total == embedding.total
    assert own.estimate.kv_cache == 0 and own.estimate.parallel == 1


def test_loading_it_adds_what_the_estimate_says(engine: EngineSupervisor,
                                                minilm: InstalledModel) -> None:
    client = engine.client
    assert not client.status()["embedding_models"]  # the first test to use it
    before = client.status()["memory_bytes"]
    # A text as long as its context: the largest batch, so every buffer is in use.
    _, tokens = client.embeddings(["word " * 600], model=minilm.id)
    assert tokens == EMBEDDING_CONTEXT
    status = client.status()
    grown = status["memory_bytes"] - before
    estimated = estimate_embedding_memory(minilm.info).model_bytes
    print(f"\nMiniLM beside the chat model: measured +{grown / MiB:.0f} MiB, estimated "
          f"+{estimated / MiB:.0f} MiB")
    assert abs(grown - estimated) <= 0.2 * estimated
    [loaded] = status["embedding_models"]
    assert loaded["id"] == minilm.id and loaded["memory_bytes"] == estimated
    assert (loaded["dimensions"], loaded["context"], loaded["pooling"]) == (384, 512, "mean")
    assert status["model"]["id"] == CHAT  # the chat model stays


# -- the API -------------------------------------------------------------------------------------

def test_embeddings_match_the_numpy_reference(api: openai.OpenAI,
                                              minilm: InstalledModel) -> None:
    result = api.embeddings.create(model=minilm.id, input=SENTENCES)
    assert result.model == minilm.id
    got = np.array([d.embedding for d in result.data])
    expected, counts = reference_embeddings(SENTENCES)
    assert got.shape == (3, 384)
    assert np.all(_cosines(got, expected) > 0.999)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert result.usage.prompt_tokens == result.usage.total_tokens == sum(counts)
    # The meaning: a sentence is closer to its paraphrase than to an unrelated one.
    similar, unrelated = got[0] @ got[1], got[0] @ got[2]
    assert similar > 0.6 > 0.2 > unrelated


def test_the_app_client_gets_the_same_vectors(engine: EngineSupervisor,
                                              minilm: InstalledModel) -> None:
    vectors, tokens = engine.client.embeddings(SENTENCES, model=minilm.id)
    expected, counts = reference_embeddings(SENTENCES)
    assert np.all(_cosines(np.array(vectors), expected) > 0.999)
    assert tokens == sum(counts)
    # Without a model, the chat model's own weights embed, as before.
    own, _ = engine.client.embeddings(["a cat sat"])
    named, _ = engine.client.embeddings(["a cat sat"], model=CHAT)
    assert len(own[0]) == len(named[0]) == 576


def test_a_long_text_is_truncated_to_the_context(engine: EngineSupervisor,
                                                 minilm: InstalledModel) -> None:
    words = "river " * 1000
    [long], tokens = engine.client.embeddings([words], model=minilm.id)
    assert tokens == EMBEDDING_CONTEXT
    # The first 510 words, between [CLS] and [SEP]: exactly what the model read.
    expected, counts = reference_embeddings(["river " * (EMBEDDING_CONTEXT - 2)])
    assert counts == [EMBEDDING_CONTEXT]
    assert _cosines(np.array([long]), expected)[0] > 0.999


def test_base64_and_many_texts_in_order(api: openai.OpenAI, minilm: InstalledModel) -> None:
    texts = [f"Sentence number {i} is about {'cats' if i % 2 else 'tax law'}." for i in range(70)]
    floats = api.embeddings.create(model=minilm.id, input=texts)
    packed = api.embeddings.create(model=minilm.id, input=texts, encoding_format="base64")
    assert [d.index for d in floats.data] == list(range(70))
    a = np.array([d.embedding for d in floats.data])
    b = np.array([np.frombuffer(base64.b64decode(d.embedding), "<f4") for d in packed.data])
    assert np.allclose(a, b, atol=1e-6)
    alone = np.array(api.embeddings.create(model=minilm.id, input=texts[41]).data[0].embedding)
    assert _cosines(a[41:42], alone[None])[0] > 0.9999  # batched with others or alone


def test_a_chat_naming_the_embedding_model_is_refused(api: openai.OpenAI,
                                                      minilm: InstalledModel) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model=minilm.id,
                                    messages=[{"role": "user", "content": "Hello"}])
    assert f"{minilm.id} is an embedding model; it cannot chat" in caught.value.message
    assert caught.value.code == "not_a_chat_model"
    body = caught.value.body
    assert isinstance(body, dict) and body.get("param") == "model"
    with pytest.raises(openai.BadRequestError, match="is an embedding model"):
        api.completions.create(model=minilm.id, prompt="Hello")


def test_an_embedding_model_is_not_loaded_as_the_chat_model(engine: EngineSupervisor,
                                                            minilm: InstalledModel) -> None:
    with pytest.raises(EngineError) as caught:
        engine.client.load(minilm.id)
    assert caught.value.status == 400 and "cannot chat" in str(caught.value)
    assert engine.client.status()["model"]["id"] == CHAT


def test_a_model_that_is_not_installed_is_404(api: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        api.embeddings.create(model="no-such-embedder", input="hello")
    assert caught.value.code == "model_not_found"
    assert "no-such-embedder" in caught.value.message


def test_models_list_says_which_is_which(api: openai.OpenAI, minilm: InstalledModel) -> None:
    listed = {m.id: m for m in api.models.list()}
    assert listed[minilm.id].kind == "embedding"  # type: ignore[attr-defined]
    assert listed[CHAT].kind == "chat"  # type: ignore[attr-defined]
    assert listed[minilm.id].loaded and listed[CHAT].loaded  # type: ignore[attr-defined]


def test_chat_streams_while_embeddings_are_made(api: openai.OpenAI, engine: EngineSupervisor,
                                               minilm: InstalledModel) -> None:
    arrived: list[float] = []
    pieces: list[str] = []
    finish: list[str | None] = []
    first = threading.Event()

    def chat() -> None:
        stream = api.chat.completions.create(
            model=CHAT, max_tokens=300, temperature=0, stream=True,
            messages=[{"role": "user", "content": "Write a long story about a lighthouse."}])
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    arrived.append(time.monotonic())
                    pieces.append(chunk.choices[0].delta.content)
                    first.set()
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish.append(chunk.choices[0].finish_reason)
        first.set()

    worker = threading.Thread(target=chat)
    worker.start()
    try:
        assert first.wait(120)
        texts = [f"Paragraph {i}: " + "the keeper climbs the stairs at dusk " * 12
                 for i in range(60)]
        began = time.monotonic()
        result = api.embeddings.create(model=minilm.id, input=texts)
        ended = time.monotonic()
    finally:
        worker.join(300)
    assert not worker.is_alive()
    assert len(result.data) == 60 and result.model == minilm.id
    # The reply went on while the texts were embedded (the engine decodes a step of it between
    # two batches of texts, and these make about a dozen batches), and ended as replies do.
    during = sum(began < t < ended for t in arrived)
    assert during >= 3, (during, len(arrived))
    assert finish and finish[-1] in ("stop", "length") and "".join(pieces).strip()
    assert engine.client.health()["model"] == CHAT


def test_the_chat_picker_offers_no_embedding_model(qtbot: QtBot,
                                                   minilm: InstalledModel) -> None:
    from PySide6.QtWidgets import QApplication

    from desktop.ui.app import DesktopApp

    desktop = DesktopApp(QApplication.instance(), "light")
    qtbot.addWidget(desktop.window)
    try:
        desktop._library_changed(installed_models())  # as after an import or a download
        picker = desktop.window.chat_page.model_picker
        offered = [picker.itemData(i) for i in range(picker.count())]
        assert CHAT in offered and minilm.id not in offered
    finally:
        desktop.close()
