"""The LoRA adapters panel, presets, the chat header and the compare view, with the real engine.

The adapters are random rank-8 LoRAs on the starter model's attention (fixed seeds), made
strong enough that greedy replies with and without them always differ.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from hubserver import HubServer
from PySide6.QtTest import QAbstractItemModelTester
from test_adapters import make_lora, truncated_copy, wrong_arch_lora, wrong_shape_lora
from test_gui import open_app as open_window
from test_gui import send

from desktop.client.adapters import AdapterClient
from desktop.core.compare import VoteStore
from desktop.core.downloads import DownloadOptions
from desktop.core.peft import write_safetensors
from desktop.core.presets import StackEntry
from desktop.core.settings import ModelSettings, Settings, save_settings

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals")

MODEL = "smollm2-135m-instruct"
PROMPT = "Tell me about the sea."
FATAL = QAbstractItemModelTester.FailureReportingMode.Fatal


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    # One thread: on a small shared machine llama.cpp's spinning threads slow each other down.
    settings = Settings()
    settings.models[MODEL] = ModelSettings(n_ctx=1024, n_threads=1)
    save_settings(settings)
    return tmp_path / "home"


def open_app(qtbot, home: Path):  # type: ignore[no-untyped-def]
    """The window with the engine up and the starter model loaded; short greedy replies."""
    desktop = open_window(qtbot, home)
    desktop.chat.sampling = {"max_tokens": 10, "temperature": 0.0}
    return desktop


@pytest.fixture
def app(qtbot, home):  # type: ignore[no-untyped-def]
    desktop = open_app(qtbot, home)
    yield desktop
    desktop.close()


def strong_lora(path: Path, seed: int) -> Path:
    return make_lora(path, seed, sigma=0.3)


def reply(qtbot, app, text: str = PROMPT) -> str:  # type: ignore[no-untyped-def]
    """A greedy reply in a new conversation, so every compared prompt is the same."""
    app.chat.new_conversation()
    message, _ = send(qtbot, app, text)
    assert message.state == "complete", message.error
    return message.content


def add(qtbot, app, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Add an adapter file in the dock's panel and wait until the engine applies it."""
    with qtbot.waitSignal(app.adapters.applied, timeout=30_000):
        app.adapters_panel.add_path(str(path))


def engine_stack(app) -> list[dict]:  # type: ignore[no-untyped-def]
    return AdapterClient(app.engine.supervisor.client).state()["stack"]


def test_an_adapter_added_in_the_panel_changes_the_next_reply(qtbot, app, tmp_path) -> None:
    loaded_at = app.engine.supervisor.client.status()["model"]["loaded_at"]
    base = reply(qtbot, app)
    panel = app.adapters_panel
    with qtbot.waitSignal(app.adapters.applied, timeout=30_000) as applied:
        panel.add_path(str(strong_lora(tmp_path / "pirate.gguf", 1)))
    assert applied.args[0] == (StackEntry("pirate", 1.0, True),)
    qtbot.waitUntil(lambda: app.adapters.adapter_model.rowCount() == 1)
    QAbstractItemModelTester(app.adapters.adapter_model, FATAL)
    row = app.adapters.adapter_model.rows()[0]
    assert (row.name, row.architecture, row.rank, row.alpha) == ("pirate", "llama", 8, 8.0)
    assert row.targets == "attn_q, attn_v in 30 layers"
    assert row.status == "In use" and row.size_bytes > 1_000_000
    assert panel.select("pirate")
    assert "Made for llama models · rank 8 · alpha 8" in panel.details.text()
    header = app.window.chat_page.adapters_label
    assert header.toolTip() == "Adapters: pirate 1" and not header.isHidden()
    assert header.text() == header.toolTip()  # short enough to show whole
    # Replies from a server elsewhere do not get this computer's adapters: the header says none.
    server = app.window.pages["Server"]
    server.remote_url.setText("http://127.0.0.1:9/v1")
    server.use_remote.setChecked(True)
    assert header.isHidden()
    server.use_remote.setChecked(False)
    assert header.toolTip() == "Adapters: pirate 1" and not header.isHidden()

    on = reply(qtbot, app)
    assert on != base

    switch = panel.rows["pirate"].switch
    with qtbot.waitSignal(app.adapters.applied, timeout=10_000):
        switch.click()  # off: the adapter stays in the stack but does nothing
    assert engine_stack(app) == [{"name": "pirate", "scale": 1.0, "enabled": False}]
    assert header.isHidden()
    assert reply(qtbot, app) == base

    with qtbot.waitSignal(app.adapters.applied, timeout=10_000):
        switch.click()
    assert reply(qtbot, app) == on

    # The number field and the slider move together; a reply sent at once, before the
    # slider's delay is over, still gets the new scale.
    row_widget = panel.rows["pirate"]
    row_widget.spin.setValue(0.5)
    assert row_widget.slider.value() == 50
    assert app.adapters_page.rows["pirate"].spin.value() == 0.5  # the page's panel follows
    half = reply(qtbot, app)
    assert half not in (base, on)
    assert header.toolTip() == "Adapters: pirate 0.5"
    row_widget.slider.setValue(-150)
    assert row_widget.spin.value() == -1.5
    with qtbot.waitSignal(app.adapters.applied, timeout=10_000) as applied:
        pass
    assert applied.args[0] == (StackEntry("pirate", -1.5, True),)
    # No reply reloaded the model: the adapters were swapped between replies.
    assert app.engine.supervisor.client.status()["model"]["loaded_at"] == loaded_at


def test_a_preset_is_saved_applied_and_remembered_by_its_conversation(qtbot, home,
                                                                      tmp_path) -> None:
    first = open_app(qtbot, home)
    try:
        first.chat.sampling = {"max_tokens": 2, "temperature": 0.0}
        panel = first.adapters_panel
        add(qtbot, first, strong_lora(tmp_path / "pirate.gguf", 1))
        add(qtbot, first, strong_lora(tmp_path / "sql.gguf", 2))
        panel.rows["pirate"].spin.setValue(0.8)
        panel.rows["sql"].spin.setValue(0.5)
        panel.preset_name.setText("duo")
        with qtbot.waitSignal(first.adapters.presetChanged, timeout=10_000):
            panel.save_preset_button.click()
        assert first.adapters.active_preset == "duo"
        header = first.window.chat_page.adapters_label
        assert header.toolTip() == "Adapters (duo): pirate 0.8 + sql 0.5"
        qtbot.waitUntil(lambda: first.adapters.preset_model.rowCount() == 1)
        QAbstractItemModelTester(first.adapters.preset_model, FATAL)
        first.chat.new_conversation()
        with_duo, _ = send(qtbot, first, PROMPT)
        assert first.store.conversation(with_duo.conversation_id).adapter_preset == "duo"

        panel.rows["sql"].switch.click()  # the stack is no longer the preset
        assert first.adapters.active_preset is None
        assert header.toolTip() == "Adapters: pirate 0.8"
        first.chat.new_conversation()
        without, _ = send(qtbot, first, PROMPT)
        assert first.store.conversation(without.conversation_id).adapter_preset is None
    finally:
        first.close()

    second = open_app(qtbot, home)
    try:
        assert second.adapters.stack == []
        with qtbot.waitSignal(second.adapters.applied, timeout=30_000):
            second.chat.open_conversation(with_duo.conversation_id)
        duo = [StackEntry("pirate", 0.8), StackEntry("sql", 0.5)]
        assert second.adapters.stack == duo
        assert second.adapters.active_preset == "duo"
        assert engine_stack(second) == [e.to_dict() for e in duo]
        assert second.window.chat_page.adapters_label.toolTip() == \
            "Adapters (duo): pirate 0.8 + sql 0.5"
        panel = second.adapters_panel
        assert panel.rows["sql"].switch.isChecked() and panel.rows["pirate"].spin.value() == 0.8

        assert panel.chosen_preset() == "duo"
        panel.preset_name.setText("pair")
        panel.rename_preset_button.click()
        qtbot.waitUntil(lambda: second.adapters.active_preset == "pair", timeout=10_000)
        assert [p.name for p in second.adapters.preset_model.presets()] == ["pair"]
        # The conversation that used the preset follows the new name, stored and shown.
        assert second.store.conversation(with_duo.conversation_id).adapter_preset == "pair"
        assert second.chat.conversation.adapter_preset == "pair"
        assert second.store.conversation(without.conversation_id).adapter_preset is None
        panel.delete_preset_button.click()
        qtbot.waitUntil(lambda: second.adapters.preset_model.rowCount() == 0, timeout=10_000)
        assert second.adapters.active_preset is None
        assert second.adapters.stack == duo  # deleting a preset leaves the adapters as they are
    finally:
        second.close()


def test_adapters_that_do_not_fit_are_refused_and_the_chat_still_answers(qtbot, app, home,
                                                                        tmp_path) -> None:
    panel = app.adapters_panel
    cases = ((wrong_arch_lora(tmp_path / "qwen.gguf"), "was made for 'qwen2' models"),
             (wrong_shape_lora(tmp_path / "narrow.gguf"), "expects tensor"),
             (truncated_copy(strong_lora(tmp_path / "whole.gguf", 5), tmp_path / "cut.gguf"),
              "is incomplete"))
    for path, words in cases:
        with qtbot.waitSignal(app.adapters.message, timeout=10_000,
                              check_params_cb=lambda _text, problem: problem):
            panel.add_path(str(path))
        assert words in panel.notice.text()
        assert not panel.notice.isHidden()
    assert app.adapters.adapter_model.rowCount() == 0
    assert app.adapters.stack == [] and engine_stack(app) == []
    assert reply(qtbot, app)

    # A damaged file put in the adapters folder by hand is listed with its problem.
    (home / "adapters").mkdir(parents=True, exist_ok=True)
    truncated_copy(tmp_path / "whole.gguf", home / "adapters" / "broken.gguf")
    app.adapters.refresh()
    qtbot.waitUntil(lambda: app.adapters.adapter_model.rowCount() == 1)
    row = app.adapters.adapter_model.rows()[0]
    assert row.name == "broken" and row.status.startswith("Cannot be used:")
    assert panel.select("broken")
    assert not panel.use_button.isEnabled()


def test_hub_and_peft_adapters_are_converted_for_the_loaded_model(qtbot, app,
                                                                  tmp_path) -> None:
    tensors = {"base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight":
               np.full((8, 576), 0.01, dtype=np.float32),
               "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight":
               np.full((192, 8), 0.01, dtype=np.float32)}
    config = json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16,
                         "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    with HubServer() as hub:
        hub.add_repo("someone/sea-lora", {
            "peft/adapter_config.json": config.encode(),
            "peft/adapter_model.safetensors": write_safetensors(
                tmp_path / "adapter_model.safetensors", tensors)})
        app.adapters.hub = DownloadOptions(endpoint=hub.endpoint, token=False, retries=1,
                                           retry_wait=0.01, space_margin=0)
        panel = app.adapters_panel
        panel.hub_ref.setText("someone/sea-lora/peft/adapter_config.json")
        with qtbot.waitSignal(app.adapters.applied, timeout=30_000) as applied:
            panel.download_button.click()
    assert applied.args[0] == (StackEntry("sea-lora", 1.0, True),)
    qtbot.waitUntil(lambda: app.adapters.adapter_model.rowCount() == 1)
    row = app.adapters.adapter_model.rows()[0]
    assert row.targets == "attn_v in 1 layer" and row.base_model
    assert row.source == "hf://someone/sea-lora/peft/adapter_config.json"

    # Renaming keeps it in the stack under the new name.
    index = app.adapters.adapter_model.index(0, 0)
    assert app.adapters.adapter_model.setData(index, "waves")
    with qtbot.waitSignal(app.adapters.applied, timeout=10_000) as applied:
        pass
    assert applied.args[0] == (StackEntry("waves", 1.0, True),)
    qtbot.waitUntil(lambda: [r.name for r in app.adapters.adapter_model.rows()] == ["waves"])
    assert engine_stack(app) == [{"name": "waves", "scale": 1.0, "enabled": True}]
    assert reply(qtbot, app)

    # Out of the stack with its row's button, back in with Use, then out of the library.
    with qtbot.waitSignal(app.adapters.applied, timeout=10_000) as applied:
        panel.rows["waves"].remove_button.click()
    assert applied.args[0] == () and panel.rows == {}
    assert panel.select("waves") and panel.use_button.isEnabled()
    with qtbot.waitSignal(app.adapters.applied, timeout=10_000) as applied:
        panel.use_button.click()
    assert applied.args[0] == (StackEntry("waves", 1.0, True),)
    app.adapters.remove_adapter("waves")
    qtbot.waitUntil(lambda: app.adapters.adapter_model.rowCount() == 0, timeout=10_000)
    assert app.adapters.stack == [] and panel.rows == {}
    state = AdapterClient(app.engine.supervisor.client).state()
    assert state["loaded"] == [] and state["stack"] == []


def test_a_blind_comparison_streams_two_replies_and_stores_the_vote(qtbot, app,
                                                                    tmp_path) -> None:
    add(qtbot, app, strong_lora(tmp_path / "pirate.gguf", 1))
    with qtbot.waitSignal(app.adapters.presetsChanged, timeout=10_000):
        app.adapters.save_preset("pirate-only")
    page = app.compare_page
    app.window.chat_page.header.panel_buttons["Adapters"].click()  # closed at first
    assert app.adapters_dock.isVisible()
    app.window.show_page("Compare")
    assert not app.adapters_dock.isVisible()  # the dock belongs beside the chat
    preset, stacked = f"{MODEL}+pirate-only", f"{MODEL} with pirate 1"
    qtbot.waitUntil(lambda: {MODEL, preset, stacked} <= set(page.setups), timeout=10_000)
    page.choose(MODEL, preset)
    page.blind.setChecked(True)
    page.prompt.setPlainText(PROMPT)
    with qtbot.waitSignal(page.compared, timeout=60_000) as compared:
        assert page.compare()
    run = compared.args[0]
    assert {s.name for s in run.sides} == {MODEL, preset}
    left, right = page.state()["answers"]
    assert left and right and left != right
    assert page.state()["titles"] == ["Left", "Right"]  # no names until the vote

    with qtbot.waitSignal(page.voted, timeout=10_000) as voted:
        page.vote_buttons["left"].click()
    vote = voted.args[0]
    assert vote.blind and vote.winner == "left" and vote.prompt == PROMPT
    assert (vote.left, vote.right) == tuple(s.name for s in run.sides)
    assert VoteStore().votes() == [vote]
    assert page.state()["titles"] == [f"Left: {vote.left}", f"Right: {vote.right}"]
    qtbot.waitUntil(lambda: page.tally_model.rowCount() == 1, timeout=10_000)
    QAbstractItemModelTester(page.tally_model, FATAL)
    tally = page.tally_model.tallies()[0]
    assert tally.total == 1 and tally.wins_of(vote.left) == 1
    assert not any(b.isEnabled() for b in page.vote_buttons.values())  # one vote per run
    assert app.adapters.stack == [StackEntry("pirate", 1.0)]  # the chat's stack is untouched
    app.window.show_page("Chat")
    assert app.adapters_dock.isVisible()


def test_the_engine_killed_comes_back_with_the_same_adapter_stack(qtbot, app, tmp_path) -> None:
    add(qtbot, app, strong_lora(tmp_path / "pirate.gguf", 1))
    with qtbot.waitSignal(app.adapters.applied, timeout=10_000):
        app.adapters_panel.rows["pirate"].spin.setValue(0.7)
    before = reply(qtbot, app)
    pid = app.engine.pid
    os.kill(pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: app.engine.state == "ready" and app.engine.pid not in (None, pid),
                    timeout=60_000)
    assert engine_stack(app) == [{"name": "pirate", "scale": 0.7, "enabled": True}]
    assert app.adapters.stack == [StackEntry("pirate", 0.7)]
    assert reply(qtbot, app) == before
