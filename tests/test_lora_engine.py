"""LoRA adapters in a running engine: stacking, scales, hot-swap, presets, refusals.

The adapters are random rank-8 LoRAs on the starter model's attention (fixed seeds), strong
enough to change greedy replies, so "differs" and "equals" below are about real tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from test_adapters import (
    make_lora,
    truncated_copy,
    write_test_lora,
    wrong_arch_lora,
    wrong_shape_lora,
)
from test_peft import HEADS, KV_HEADS, peft_tensors, write_peft

from desktop.client.adapters import AdapterClient, apply_lora_args, parse_lora_arg
from desktop.client.api import EngineError
from desktop.client.process import EngineSupervisor
from desktop.core.adapters import AdapterLibrary
from desktop.core.gguf_info import read_gguf
from desktop.core.peft import convert_peft, permute_rows
from desktop.core.presets import Preset, PresetStore, StackEntry

MODEL = "smollm2-135m-instruct"
SEA = [{"role": "user", "content": "Tell me about the sea."}]


class Lab:
    """An engine with its own data folder, and shortcuts for asking it things."""

    def __init__(self, supervisor: EngineSupervisor, home: Path) -> None:
        self.supervisor = supervisor
        self.home = home
        self.adapters = AdapterClient(supervisor.client)
        self.openai = openai.OpenAI(base_url=supervisor.client.base_url + "/v1",
                                    api_key=supervisor._engine.token, max_retries=0)

    def ask(self, model: str = MODEL, max_tokens: int = 16, **extra: Any) -> Any:
        return self.openai.chat.completions.create(
            model=model, messages=SEA, max_tokens=max_tokens, temperature=0,
            extra_body=extra or None)

    def text(self, model: str = MODEL, **extra: Any) -> str:
        """A greedy reply; replies compared with each other come from :meth:`fresh`."""
        return self.ask(model, **extra).choices[0].message.content

    def fresh(self, model: str = MODEL, **extra: Any) -> str:
        """A greedy reply computed from an empty prompt cache.

        Reusing a cached prefix evaluates the prompt in other batch sizes, and rounding alone
        can then change a greedy reply; ``cache_prompt: false`` makes the engine evaluate the
        whole prompt, so every compared reply is computed the same way.
        """
        return self.text(model, cache_prompt=False, **extra)


# One thread: on a small shared machine, llama.cpp's spinning worker threads slow each other
# down badly when other processes compete for the cores.
SETTINGS = {"n_ctx": 1024, "n_threads": 1}


def start_engine() -> EngineSupervisor:
    supervisor = EngineSupervisor()
    supervisor.start()
    supervisor.load(MODEL, **SETTINGS)
    return supervisor


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("lora-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOMOAT_HOME", str(home))  # the engine and this module share the library
        sources = tmp_path_factory.mktemp("lora-sources")
        library = AdapterLibrary()
        for name, seed in (("pirate", 1), ("sql", 2), ("poet", 3)):
            library.add_file(make_lora(sources / f"{name}.gguf", seed))
        supervisor = start_engine()
        made = Lab(supervisor, home)
        try:
            yield made
        finally:
            made.openai.close()
            supervisor.stop()


@pytest.fixture(autouse=True)
def empty_stack(lab: Lab) -> Iterator[None]:
    yield
    lab.adapters.set_stack([])


def test_scale_zero_is_the_base_model_and_scale_one_is_not(lab: Lab) -> None:
    base = lab.fresh()
    assert lab.fresh(lora=[{"name": "pirate", "scale": 0}]) == base
    pirate = lab.fresh(lora=[{"name": "pirate", "scale": 1}])
    assert pirate != base
    assert lab.fresh(lora=[{"name": "pirate", "scale": 0.3}]) not in (base, pirate)
    assert lab.fresh() == base  # a request's own stack does not stay behind


def test_two_adapters_stacked_differ_from_each_alone(lab: Lab) -> None:
    pirate = lab.fresh(lora=[{"name": "pirate", "scale": 1.0}])
    sql = lab.fresh(lora=[{"name": "sql", "scale": 1.0}])
    both = lab.fresh(lora=[{"name": "pirate", "scale": 1.0}, {"name": "sql", "scale": 1.0}])
    assert len({pirate, sql, both}) == 3
    switched_off = lab.adapters.set_stack([StackEntry("pirate", 1.0),
                                           StackEntry("sql", 1.0, enabled=False)])
    assert [e["enabled"] for e in switched_off["stack"]] == [True, False]
    assert lab.fresh() == pirate


def test_a_cache_made_under_one_stack_never_serves_another(lab: Lab) -> None:
    lab.adapters.set_stack([StackEntry("pirate", 0.9)])
    first = lab.ask()
    again = lab.ask(max_tokens=1)
    assert again.usage.prompt_tokens_details.cached_tokens > 0  # same stack: prefix reused

    lab.adapters.set_stack([StackEntry("sql", 0.9)])  # a stack no request has used yet
    changed = lab.ask()
    assert changed.choices[0].message.content != first.choices[0].message.content
    assert changed.usage.prompt_tokens_details.cached_tokens == 0

    # The first stack's cache was kept in its own slot: back on it, the prefix is reused.
    lab.adapters.set_stack([StackEntry("pirate", 0.9)])
    back = lab.ask()
    assert back.usage.prompt_tokens_details.cached_tokens > 0

    # A fresh engine with only the new stack gives the same reply: nothing of the old
    # stack's evaluated prefix leaked into it.
    fresh_engine = start_engine()
    try:
        AdapterClient(fresh_engine.client).set_stack([StackEntry("sql", 0.9)])
        fresh = Lab(fresh_engine, lab.home)
        try:
            assert fresh.text() == changed.choices[0].message.content
        finally:
            fresh.openai.close()
    finally:
        fresh_engine.stop()


def test_two_stacks_interleaved_over_four_clients_each_give_their_own_reply(lab: Lab) -> None:
    import threading

    stacks = [[{"name": "pirate", "scale": 1.0}], [{"name": "sql", "scale": 1.0}]]
    alone = [lab.fresh(lora=stack) for stack in stacks]
    assert alone[0] != alone[1]
    replies: list[Any] = [None] * 8
    gate = threading.Barrier(4)

    def client(i: int) -> None:
        gate.wait()
        for turn in range(2):  # each client asks twice, the stacks taking turns in the slots
            slot = 2 * i + turn
            replies[slot] = lab.text(lora=stacks[(i + turn) % 2], cache_prompt=False)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for i in range(4):
        for turn in range(2):
            assert replies[2 * i + turn] == alone[(i + turn) % 2]


def test_adapters_by_id_like_llama_server(lab: Lab) -> None:
    lab.adapters.set_stack([StackEntry("poet", 0.5)])
    listed = httpx.get(lab.supervisor.client.base_url + "/lora-adapters",
                       headers=dict(lab.supervisor.client._http.headers)).json()
    by_name = {a["name"]: a for a in listed}
    assert by_name["poet"]["scale"] == 0.5
    assert by_name["poet"]["path"] == "poet.gguf"  # no folders of this computer
    poet = lab.fresh(lora=[{"name": "poet", "scale": 1.0}])
    assert lab.fresh(lora=[{"id": by_name["poet"]["id"], "scale": 1.0}]) == poet
    assert lab.fresh() == lab.fresh(lora=[{"name": "poet", "scale": 0.5}])


@pytest.mark.parametrize("lora, named", [
    ([{"name": "kraken", "scale": 1.0}], "kraken"),
    ([{"id": 99, "scale": 1.0}], "id 99"),
    ([{"scale": 1.0}], "by 'id' or by 'name'"),
    ([{"name": "sql"}, {"name": "sql", "scale": 0.5}], "'sql' twice"),
])
def test_an_unknown_adapter_is_a_400_that_names_it(lab: Lab, lora, named) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        lab.ask(lora=lora)
    assert named in caught.value.message
    assert lab.ask(max_tokens=1).usage.completion_tokens == 1  # and the engine keeps answering


def test_presets_are_models(lab: Lab) -> None:
    PresetStore().save(Preset("shanty", (StackEntry("pirate", 0.8), StackEntry("sql", 0.5),
                                         StackEntry("poet", 1.0, enabled=False))))
    try:
        models = {m.id: m for m in lab.openai.models.list()}
        assert f"{MODEL}+shanty" in models
        assert lab.ask(model=f"{MODEL}+shanty", max_tokens=1).model == f"{MODEL}+shanty"
        assert lab.fresh(model=f"{MODEL}+shanty") == lab.fresh(
            lora=[{"name": "pirate", "scale": 0.8}, {"name": "sql", "scale": 0.5}])
        with pytest.raises(openai.NotFoundError, match="no adapter preset called 'nope'"):
            lab.ask(model=f"{MODEL}+nope")
    finally:
        PresetStore().delete("shanty")


def test_adapters_that_do_not_fit_are_refused_and_the_model_keeps_working(
        lab: Lab, tmp_path: Path) -> None:
    base = lab.fresh()
    good = make_lora(tmp_path / "good.gguf", 9)
    cases = [
        (wrong_arch_lora(tmp_path / "qwen.gguf"), "adapter_mismatch", "made for 'qwen2'"),
        (wrong_shape_lora(tmp_path / "narrow.gguf"), "adapter_mismatch", "to be 512×512"),
        (truncated_copy(good, tmp_path / "cut.gguf"), "invalid_adapter", "is incomplete"),
        (tmp_path / "missing.gguf", "invalid_adapter", "does not exist"),
    ]
    for path, code, message in cases:
        with pytest.raises(EngineError) as caught:
            lab.adapters.add(path=str(path))
        assert caught.value.status == 400 and caught.value.code == code, path
        assert message in str(caught.value), path
    assert lab.fresh() == base
    names = [a["name"] for a in lab.adapters.state()["loaded"]]
    assert not {"qwen", "narrow", "cut", "missing"} & set(names)
    assert lab.supervisor.client.health()["status"] == "ok"


def test_add_a_file_stack_it_and_remove_it(lab: Lab, tmp_path: Path) -> None:
    base = lab.fresh()
    path = make_lora(tmp_path / "storm.gguf", 11)
    state = apply_lora_args(lab.supervisor.client, [f"{path}:0.7"])
    assert state["stack"] == [{"name": "storm", "scale": 0.7, "enabled": True}]
    assert lab.fresh() != base
    state = lab.adapters.remove("storm")
    assert "storm" not in [a["name"] for a in state["loaded"]] and state["stack"] == []
    assert lab.fresh() == base


def test_reloading_the_model_keeps_its_adapters(lab: Lab) -> None:
    lab.adapters.set_stack([StackEntry("pirate", 1.0)])
    pirate = lab.fresh()
    lab.supervisor.load(MODEL, **dict(SETTINGS, n_ctx=2048))
    try:
        state = lab.adapters.state()
        assert state["stack"] == [{"name": "pirate", "scale": 1.0, "enabled": True}]
        assert lab.text() == pirate
    finally:
        lab.supervisor.load(MODEL, **SETTINGS)


def test_a_converted_peft_adapter_loads_and_matches_its_gguf_twin(lab: Lab,
                                                                 tmp_path: Path) -> None:
    starter = read_gguf(lab.supervisor.client.status()["model"]["path"])
    tensors = peft_tensors(21)
    source = write_peft(tmp_path / "peft-pirate", tensors)
    converted = convert_peft(source, starter, tmp_path / "converted.gguf")
    # The same adapter written by hand: permuted q/k rows of B, alpha 16 over rank 8
    twin: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for layer in range(30):
        for module, target in (("q_proj", "attn_q"), ("k_proj", "attn_k"),
                               ("v_proj", "attn_v"), ("o_proj", "attn_output")):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            lora_b = tensors[f"{prefix}.lora_B.weight"]
            if module in ("q_proj", "k_proj"):
                lora_b = permute_rows(lora_b, HEADS if module == "q_proj" else KV_HEADS)
            twin[f"blk.{layer}.{target}.weight"] = (tensors[f"{prefix}.lora_A.weight"], lora_b)
    twin_path = write_test_lora(tmp_path / "twin.gguf", twin, alpha=16)
    lab.adapters.add(path=str(converted))
    lab.adapters.add(path=str(twin_path))
    base = lab.fresh()
    reply = lab.fresh(lora=[{"name": "converted", "scale": 1.0}])
    assert reply != base
    assert reply == lab.fresh(lora=[{"name": "twin", "scale": 1.0}])
    lab.adapters.remove("converted")
    lab.adapters.remove("twin")


def test_parse_lora_arg() -> None:
    assert parse_lora_arg("a/b.gguf") == ("a/b.gguf", 1.0)
    assert parse_lora_arg("a/b.gguf:0.5") == ("a/b.gguf", 0.5)
    assert parse_lora_arg("a/b.gguf:-1") == ("a/b.gguf", -1.0)
    assert parse_lora_arg(r"C:\x.gguf") == (r"C:\x.gguf", 1.0)
