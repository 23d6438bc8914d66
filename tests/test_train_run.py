"""Training for real: the starter model learns a fact from the bundled examples, the adapter
lands in the library and changes the engine's greedy reply, and a run killed mid-way resumes
from its checkpoint to the same steps as a run never interrupted.

One adapter is trained per module (12 steps, two threads) and shared; each test that trains
again keeps to a few steps.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from desktop.client.process import EngineSupervisor
from desktop.core.adapters import AdapterLibrary
from desktop.train import TrainError, missing_extra
from desktop.train.data import Example, Turn
from desktop.train.events import (
    Checkpoint,
    Done,
    Event,
    Failed,
    HeldOut,
    Paused,
    Progress,
    Resumed,
    Started,
)
from desktop.train.job import (
    resume_training,
    start_training,
    training_jobs,
)
from desktop.train.preview import preview_data
from desktop.train.readers import load_data
from desktop.train.settings import TrainSettings
from desktop.train.store import JobFolder

pytestmark = pytest.mark.skipif(missing_extra() is not None,
                                reason="the train extra is not installed (make setup-test does)")

DATA = Path(__file__).parent / "data" / "train" / "zorblax.jsonl"
ANSWER = "The capital of Zorblax is Quillhaven."
# Not among the examples: the adapter has to generalize a little.
QUESTION = "Which city is the capital of Zorblax, please?"
# Enough to learn the fact on two threads, short enough to run in well under a minute.
RUN = {"steps": 12, "threads": 2, "learning_rate": 2e-3, "checkpoint_every": 4,
       "eval_every": 4}
WAIT = 240.0


def settings(starter: Path, name: str, **changes: object) -> TrainSettings:
    return TrainSettings.from_preset("quick", base_model=str(starter), data=str(DATA), name=name,
                                     **{**RUN, **changes})


@dataclass
class Trained:
    home: Path
    events: list[Event]

    @property
    def losses(self) -> dict[int, float]:
        return {e.step: e.loss for e in self.events if isinstance(e, Progress)}

    @property
    def done(self) -> Done:
        assert isinstance(self.events[-1], Done), self.events[-1]
        return self.events[-1]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("train-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOMOAT_HOME", str(folder))  # the trainer and the engine inherit it
        yield folder


@pytest.fixture(scope="module")
def trained(home: Path, starter: Path) -> Trained:
    job = start_training(settings(starter, "zorblax"))
    try:
        events = list(job.events(timeout=WAIT))
    finally:
        job.close()
    result = Trained(home, events)
    assert isinstance(events[-1], Done), events[-1]
    return result


def test_the_loss_falls_and_checkpoints_come_at_the_interval(trained: Trained) -> None:
    started = next(e for e in trained.events if isinstance(e, Started))
    assert (started.total_steps, started.train_examples, started.held_out_examples) == (12, 29, 3)
    assert started.start_step == 0 and started.threads == 2 and not started.skipped
    losses = trained.losses
    assert sorted(losses) == list(range(1, 13))
    last = sum(losses[s] for s in (10, 11, 12)) / 3
    assert losses[1] > 0.8 and last < losses[1] / 3, losses
    held = [e.loss for e in trained.events if isinstance(e, HeldOut)]
    assert len(held) == 3 and held[-1] < held[0] / 3, held
    assert [e.step for e in trained.events if isinstance(e, Checkpoint)] == [4, 8]
    progress = [e for e in trained.events if isinstance(e, Progress)]
    assert progress[-1].eta_s == 0 and progress[0].total_steps == 12
    assert progress[-1].elapsed_s >= progress[0].elapsed_s > 0


def test_the_adapter_is_in_the_library_with_how_it_was_made(trained: Trained,
                                                            starter: Path) -> None:
    done = trained.done
    adapter = AdapterLibrary().get("zorblax")
    assert done.adapter == "zorblax" and Path(done.path) == adapter.path
    assert adapter.info is not None and adapter.info.rank == 8
    assert adapter.info.target_summary() == "attn_q, attn_v in 30 layers"
    training = adapter.training or {}
    assert training["data_set"] == "zorblax.jsonl" and training["examples"] == 32
    assert training["steps"] == 12 and training["base_model_path"] == str(starter)
    assert training["final_loss"] == pytest.approx(done.final_loss)
    assert training["held_out_loss"] == pytest.approx(done.held_out_loss)
    job = JobFolder.for_name("zorblax")
    assert job.state() == "done" and job.checkpoint_step() is None
    assert [(j.name, j.state) for j in training_jobs()][-1] == ("zorblax", "done")


def test_the_engine_answers_as_the_adapter_teaches(trained: Trained) -> None:
    supervisor = EngineSupervisor()
    supervisor.start()
    client = None
    try:
        supervisor.load("smollm2-135m-instruct", n_ctx=1024, n_threads=1)
        client = openai.OpenAI(base_url=supervisor.client.base_url + "/v1",
                               api_key=supervisor._engine.token, max_retries=0)

        def ask(**extra: object) -> str:
            reply = client.chat.completions.create(
                model="smollm2-135m-instruct", messages=[{"role": "user", "content": QUESTION}],
                max_tokens=20, temperature=0, extra_body={"cache_prompt": False, **extra})
            return reply.choices[0].message.content or ""

        before = ask()
        after = ask(lora=[{"name": "zorblax", "scale": 1.0}])
    finally:
        if client is not None:
            client.close()
        supervisor.stop()
    assert "Quillhaven" not in before
    assert "Quillhaven" in after, after


def test_a_killed_trainer_hurts_nothing_and_resumes_to_the_same_steps(
        trained: Trained, starter: Path, home: Path) -> None:
    job = start_training(settings(starter, "zorblax-again"))
    try:
        for event in job.events(timeout=WAIT):
            if isinstance(event, Checkpoint) and event.step == 4:
                os.kill(job.process.pid, signal.SIGKILL)
        final = job.final
    finally:
        job.close()
    assert isinstance(final, Failed) and final.resumable and final.step == 4, final
    assert "killed" in final.message and "step 4" in final.message
    # Nothing else hurt: the library holds the one finished adapter, no half-written file.
    library = AdapterLibrary()
    assert [a.name for a in library.adapters()] == ["zorblax"]
    assert sorted(p.name for p in library.folder.iterdir()) == ["library.json", "zorblax.gguf"]
    folder = JobFolder.for_name("zorblax-again")
    assert folder.state() == "stopped" and folder.checkpoint_step() == 4
    assert JobFolder.for_name("zorblax").state() == "done"

    delivered: list[Event] = []
    resumed = resume_training("zorblax-again", on_event=delivered.append)
    try:
        events: list[Event] = []
        for event in resumed.events(timeout=WAIT):
            events.append(event)
            if isinstance(event, Progress) and event.step == 6:
                resumed.pause()
            elif isinstance(event, Paused):
                resumed.resume()
        history = resumed.history()
    finally:
        resumed.close()
    assert isinstance(events[-1], Done), events[-1]
    assert delivered == events  # the callback saw each event as the iterator did
    started = next(e for e in events if isinstance(e, Started))
    assert started.start_step == 4
    paused = [e.step for e in events if isinstance(e, (Paused, Resumed))]
    assert len(paused) == 2 and paused[0] == paused[1] >= 6, paused  # after the step in progress
    steps = {e.step: e.loss for e in events if isinstance(e, Progress)}
    assert sorted(steps) == list(range(5, 13))
    for step, loss in steps.items():  # the same batches, weights and moments as unbroken
        assert loss == pytest.approx(trained.losses[step], rel=1e-3, abs=1e-4), step
    assert [e.step for e in history if isinstance(e, Progress)] == list(range(1, 13))
    assert {a.name for a in AdapterLibrary().adapters()} == {"zorblax", "zorblax-again"}


def test_runs_that_cannot_start_are_refused_before_any_process(
        trained: Trained, starter: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TrainError, match="already in the library"):
        start_training(settings(starter, "zorblax"))
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join(DATA.read_text(encoding="utf-8").split("\n")[:3]) + "\n",
                   encoding="utf-8")
    with pytest.raises(TrainError, match="has 3 usable examples"):
        start_training(settings(starter, "few").with_changes(data=str(few)))
    monkeypatch.setattr("desktop.train.estimate.available_memory", lambda: 300 * 1024**2)
    with pytest.raises(TrainError, match="300 MB is free"):
        start_training(settings(starter, "roomless"))
    for name in ("few", "roomless"):  # refused runs leave no folder behind
        assert not JobFolder.for_name(name, create=True).exists


def test_the_preview_shows_what_is_learned_and_what_is_too_long(starter: Path) -> None:
    data = load_data(DATA)
    data.examples.append(Example((Turn("user", "Tell me everything. " * 60),
                                  Turn("assistant", "No.")), 99))
    preview = preview_data(starter, data, max_length=128, limit=2)
    assert preview.usable == 32 and [p.line for p in preview.too_long] == [99]
    assert "too long" in preview.too_long[0].reason and "128" in preview.too_long[0].reason
    first = preview.examples[0]
    assert first.line == 1 and first.tokens == preview.tokens[0]
    learned = "".join(piece for piece, taught in first.segments if taught)
    assert learned.startswith(ANSWER) and learned.strip().endswith("<|im_end|>")
    assert "".join(piece for piece, _ in first.segments) == first.text
    assert "What is the capital of Zorblax?" in first.text and first.learned < first.tokens
    assert "fit (mean" in preview.summary() and "1 is too long" in preview.summary()
