"""Training data, settings, estimates and models: everything of training that needs no torch.

Bad rows are listed by line number with the reason; files that cannot be read at all get one
clear error; a data set is usable only with enough good examples.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from desktop.core.chats import ChatStore
from desktop.core.gguf_info import read_gguf
from desktop.train import TrainError, missing_extra
from desktop.train.data import MIN_EXAMPLES, DataError, DataSet, Example, Turn
from desktop.train.estimate import estimate_training
from desktop.train.events import (
    Done,
    Failed,
    Progress,
    Started,
    event_to_json,
    parse_event,
)
from desktop.train.models import info_problem, readable_tensor_types, tensor_types
from desktop.train.readers import from_chats, load_data
from desktop.train.settings import PRESETS, TrainSettings

DATA = Path(__file__).parent / "data" / "train"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def reasons(data: DataSet) -> dict[int, str]:
    return {p.line: p.reason for p in data.problems}


# -- JSONL -------------------------------------------------------------------------------------
def test_bundled_data_set_reads_whole() -> None:
    data = load_data(DATA / "zorblax.jsonl")
    assert data.usable and not data.problems
    assert len(data.examples) == 32
    assert data.examples[0].messages()[-1] == {"role": "assistant",
                                               "content": "The capital of Zorblax is Quillhaven."}
    assert [e.line for e in data.examples[:3]] == [1, 2, 3]


def test_jsonl_formats_and_their_other_names(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello."},
                      {"role": "user", "content": "Bye"},
                      {"role": "assistant", "content": "Goodbye."}]},
        {"prompt": "2+2?", "response": "4"},
        {"prompt": "Capital of France?", "completion": "Paris", "system": "Answer in a word."},
        {"instruction": "Translate to French", "input": "cat", "output": "chat"},
        {"instruction": "Say yes", "input": "", "output": "yes"},
        {"question": "Sky colour?", "answer": "Blue"},
        {"conversations": [{"from": "human", "value": "Ping"}, {"from": "gpt", "value": "Pong"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Parts"}]},
                      {"role": "assistant", "content": "work"}]},
    ]
    text = "\n".join(json.dumps(r) for r in rows) + "\n\n"
    data = load_data(write(tmp_path, "mixed.jsonl", text))
    assert not data.problems
    turns = [e.turns for e in data.examples]
    assert turns[0][0] == Turn("system", "Be brief.") and len(turns[0]) == 5
    assert turns[2][0] == Turn("system", "Answer in a word.")
    assert turns[3][0] == Turn("user", "Translate to French\n\ncat")
    assert turns[4][0] == Turn("user", "Say yes")
    assert turns[6] == (Turn("user", "Ping"), Turn("assistant", "Pong"))
    assert turns[7][0].content == "Parts"


def test_bad_jsonl_rows_are_listed_by_line_with_the_reason(tmp_path: Path) -> None:
    good = json.dumps({"prompt": "q", "response": "a"})
    lines = [
        good,                                                                   # 1
        '{"prompt": "q", "response": ',                                         # 2 bad JSON
        json.dumps(["a", "list"]),                                              # 3
        json.dumps({"text": "no known fields"}),                                # 4
        json.dumps({"messages": [{"role": "assistant", "content": "a"},
                                 {"role": "user", "content": "q"}]}),           # 5 wrong order
        json.dumps({"messages": [{"role": "user", "content": "q"},
                                 {"role": "assistant", "content": "  "}]}),     # 6 empty
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),  # 7
        json.dumps({"messages": [{"role": "user", "content": "q"},
                                 {"role": "tool", "content": "x"}]}),           # 8 tool role
        json.dumps({"prompt": 5, "response": "a"}),                            # 9
        json.dumps({"messages": "not a list"}),                                 # 10
        json.dumps({"messages": [{"role": "user", "content": "q"},
                                 {"role": "assistant", "content": "a"},
                                 {"role": "system", "content": "late"}]}),      # 11
        json.dumps({"messages": [{"role": "user"}]}),                          # 12
        "",                                                                     # 13 blank
        good,                                                                   # 14
    ]
    data = load_data(write(tmp_path, "bad.jsonl", "\n".join(lines)))
    assert [e.line for e in data.examples] == [1, 14]
    found = reasons(data)
    assert sorted(found) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert found[2].startswith("bad JSON:") and "column" in found[2]
    assert "not a JSON object" in found[3]
    assert "missing fields" in found[4] and "text" in found[4]
    assert "wrong roles" in found[5]
    assert "empty" in found[6]
    assert "no assistant message" in found[7]
    assert "'tool'" in found[8]
    assert "'prompt' is not text" in found[9]
    assert "not a list" in found[10]
    assert "only the first" in found[11]
    assert "no 'content'" in found[12]
    assert str(data.problems[0]).startswith("line 2: bad JSON")
    assert not data.usable
    assert "2 usable examples" in (data.unusable_reason() or "")
    assert str(MIN_EXAMPLES) in (data.unusable_reason() or "")


def test_line_numbers_survive_odd_line_breaks_inside_json(tmp_path: Path) -> None:
    # U+2028 is legal inside a JSON string; str.splitlines() would break the row there.
    rows = [json.dumps({"prompt": "a\u2028b", "response": "c\u0085d"}, ensure_ascii=False),
            "{broken"]
    data = load_data(write(tmp_path, "odd.jsonl", "\r\n".join(rows)))
    assert data.examples[0].turns[0].content == "a\u2028b"
    assert [p.line for p in data.problems] == [2]


def test_json_list_items_are_numbered(tmp_path: Path) -> None:
    items = [{"instruction": "i", "output": "o"}, {"instruction": "i"}, 3]
    data = load_data(write(tmp_path, "alpaca.json", json.dumps(items)))
    assert len(data.examples) == 1
    assert str(data.problems[0]).startswith("item 2: missing fields")
    assert data.problems[1].unit == "item" and data.problems[1].line == 3
    with pytest.raises(DataError, match="not valid JSON"):
        load_data(write(tmp_path, "broken.json", "[{"))


# -- CSV ---------------------------------------------------------------------------------------
def test_csv_with_and_without_a_header(tmp_path: Path) -> None:
    with_header = load_data(write(tmp_path, "a.csv", "prompt,response\nhi,hello\n\"a, b\",c\n"))
    assert [e.turns[0].content for e in with_header.examples] == ["hi", "a, b"]
    assert [e.line for e in with_header.examples] == [2, 3]
    plain = load_data(write(tmp_path, "b.csv", "hi;hello\nbye;see you\n"))
    assert [e.answer for e in plain.examples] == ["hello", "see you"]
    tabs = load_data(write(tmp_path, "c.tsv", "question\tanswer\nx\ty\n"))
    assert tabs.examples[0].turns == (Turn("user", "x"), Turn("assistant", "y"))


def test_bad_csv_rows_are_listed_by_line(tmp_path: Path) -> None:
    text = ('prompt,response\n'
            '"multi\nline",ok\n'        # a record over lines 2-3
            'one column only\n'          # 4
            ',no prompt\n'               # 5
            'no answer,\n'               # 6
            'a,b,c\n'                    # 7
            'fine,row\n'                 # 8
            '"unclosed,quote\n')         # 9
    data = load_data(write(tmp_path, "bad.csv", text))
    assert [(e.line, e.prompt) for e in data.examples] == [(2, "multi\nline"), (8, "fine")]
    found = reasons(data)
    assert "found 1" in found[4]
    assert "prompt (first column) is empty" in found[5]
    assert "answer (second column) is empty" in found[6]
    assert "found 3" in found[7]
    assert "cannot be read" in found[9]


# -- files that cannot be read -----------------------------------------------------------------
def test_unreadable_files_get_one_clear_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {
        "missing.jsonl": (None, "does not exist"),
        "empty.jsonl": ("  \n\n", "is empty"),
        "binary.jsonl": (b"\x00\x01GGUF\x00" * 20, "not a text file"),
        "latin1.csv": ("caf\xe9,ok\n".encode("latin-1"), "not UTF-8 text (line 1"),
        "notes.txt": ("just some words", "neither JSONL nor CSV"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            write(tmp_path, name, content)
        with pytest.raises(DataError, match=message.replace("(", r"\(")):
            load_data(path)
    with pytest.raises(DataError, match="is not a file"):
        load_data(tmp_path)
    monkeypatch.setattr("desktop.train.readers.MAX_FILE_BYTES", 1000)
    with pytest.raises(DataError, match="read whole, up to"):
        load_data(write(tmp_path, "huge.jsonl", "x" * 2000))


def test_a_bom_is_not_part_of_the_first_row(tmp_path: Path) -> None:
    data = load_data(write(tmp_path, "bom.csv", "\ufeffprompt,response\nq,a\n"))
    assert [e.line for e in data.examples] == [2]


# -- chats -------------------------------------------------------------------------------------
def test_chats_from_the_history_become_examples(tmp_path: Path) -> None:
    with ChatStore(tmp_path / "chats.sqlite3") as store:
        taught = store.create_conversation("Pirate", system_prompt="Talk like a pirate.")
        store.add_message(taught.id, "user", "Hello")
        store.add_message(taught.id, "assistant", "Arr, ahoy!")
        store.add_message(taught.id, "user", "And then?")  # no answer yet: left out
        cut = store.create_conversation("Cut off")
        store.add_message(cut.id, "user", "Tell me a story")
        reply = store.begin_reply(cut.id)
        store.finish_reply(reply.id, "Once upon", state="stopped")
        empty = store.create_conversation("Empty")
        data = from_chats(store, [taught.id, cut.id, empty.id, 9999])
    assert data.kind == "chats" and data.name == "4 chats"
    assert len(data.examples) == 1
    assert data.examples[0].turns == (Turn("system", "Talk like a pirate."),
                                      Turn("user", "Hello"), Turn("assistant", "Arr, ahoy!"))
    found = {p.line: str(p) for p in data.problems}
    assert found[cut.id].startswith(f"conversation {cut.id}: 'Cut off': no ")
    assert "no messages" in found[empty.id]
    assert "no longer exists" in found[9999]
    with pytest.raises(DataError, match="No chats"):
        from_chats(store, [])


# -- the split ---------------------------------------------------------------------------------
def test_held_out_split_is_fixed_by_the_seed() -> None:
    data = load_data(DATA / "zorblax.jsonl")
    train, held = data.split(0.1, seed=0)
    assert (len(train), len(held)) == (29, 3)
    again_train, again_held = data.split(0.1, seed=0)
    assert [e.line for e in held] == [e.line for e in again_held]
    assert [e.line for e in train] == [e.line for e in again_train]
    other = data.split(0.1, seed=1)[1]
    assert [e.line for e in other] != [e.line for e in held]
    assert {e.line for e in train} | {e.line for e in held} == set(range(1, 33))
    small = DataSet("small", data.examples[:MIN_EXAMPLES])
    assert small.split(0.2) == (small.examples, [])  # too few to keep any back
    round_trip = DataSet.from_jsonl(data.to_jsonl(), "copy")
    assert round_trip.examples == data.examples


# -- settings, events, estimates, models -------------------------------------------------------
def test_presets_and_settings_checks() -> None:
    quick = TrainSettings.from_preset("quick", base_model="m.gguf", data="d.jsonl", name="x")
    assert quick.rank == PRESETS["quick"]["rank"] and quick.epochs == 2.0
    careful = TrainSettings.from_preset("careful", base_model="m", data="d", name="x",
                                        steps=30, rank=4)
    assert careful.steps == 30 and careful.epochs is None and careful.rank == 4
    assert len(careful.targets) == 7
    assert TrainSettings.from_dict(careful.to_dict()) == careful
    assert quick.total_steps(29) == 16  # 8 batches of 4 a pass, two passes
    for bad, message in [({"rank": 0}, "rank"), ({"learning_rate": 5.0}, "learning rate"),
                         ({"targets": ()}, "target"), ({"steps": 5}, "not both"),
                         ({"name": " "}, "name"), ({"max_length": 4}, "maximum length")]:
        with pytest.raises(TrainError, match=message):
            quick.with_changes(**bad)
    with pytest.raises(TrainError, match="no preset"):
        TrainSettings.from_preset("fast", base_model="m", data="d", name="x")


def test_events_travel_as_json_lines() -> None:
    events = [Started(total_steps=10, steps_per_epoch=5, train_examples=20, held_out_examples=2,
                      skipped=({"line": 3, "reason": "too long", "unit": "line"},)),
              Progress(step=1, total_steps=10, epoch=0.2, loss=2.5, learning_rate=1e-3,
                       elapsed_s=1.0, eta_s=9.0, seconds_per_step=1.0),
              Done(adapter="a", path="/x/a.gguf", steps=10, final_loss=0.1, held_out_loss=None,
                   elapsed_s=10.0),
              Failed("bad", step=4, resumable=True)]
    for event in events:
        assert parse_event(event_to_json(event)) == event
    assert parse_event("not json") is None
    assert parse_event('{"event": "nope"}') is None
    assert parse_event('{"event": "progress", "step": 1}') is None  # fields missing


def test_estimate_refuses_what_would_not_fit(starter: Path) -> None:
    info = read_gguf(starter)
    data = load_data(DATA / "zorblax.jsonl")
    settings = TrainSettings.from_preset("quick", base_model=str(starter), data="d", name="x",
                                         threads=2)
    roomy = estimate_training(settings, info, data, available=16 * 1024**3)
    assert roomy.fits and roomy.refusal() is None
    assert roomy.total_steps == 16 and roomy.threads == 2
    assert roomy.weights == info.parameter_count * 4
    assert 0.5 * 1024**3 < roomy.memory < 4 * 1024**3
    assert "a step with 2 threads" in roomy.message()
    tight = estimate_training(settings, info, data, available=512 * 1024**2)
    assert not tight.fits
    assert "512 MB is free" in (tight.refusal() or "")
    longer = estimate_training(settings.with_changes(max_length=2048), info, None,
                               available=16 * 1024**3)
    assert longer.memory > 4 * roomy.memory  # without data, every batch is taken as full
    assert dataclasses.replace(tight, available=None).fits  # free memory unknown: no refusal


def test_the_starter_model_can_be_trained(starter: Path) -> None:
    info = read_gguf(starter)
    assert tensor_types(starter) == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert {"F32", "F16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K"} <= readable_tensor_types()
    if missing_extra() is None:
        assert info_problem(info) is None


@pytest.mark.skipif(missing_extra() is not None, reason="the train extra is not installed")
def test_checks_read_a_models_header_once_until_the_file_changes(
        starter: Path, tmp_path: Path, data_home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Train page checks its settings at every change of the form: the model's header is
    read at the first check only, and again once the file changes."""
    from desktop.core import gguf_info
    from desktop.train.job import check_start

    model = tmp_path / "copy.gguf"  # a file no earlier test has read
    shutil.copyfile(starter, model)
    reads: list[Path] = []
    real = gguf_info._read
    monkeypatch.setattr(gguf_info, "_read", lambda path: reads.append(path) or real(path))
    data = load_data(DATA / "zorblax.jsonl")
    settings = TrainSettings.from_preset("quick", base_model=str(model), data="d",
                                         name="once", threads=2)
    first = check_start(settings, data)
    second = check_start(settings.with_changes(rank=16, epochs=None, steps=5), data)
    assert reads == [model]
    assert second.model is first.model and second.estimate.total_steps == 5
    assert tensor_types(model) == {"Q4_1": 210, "F32": 61, "Q8_0": 1} and len(reads) == 1

    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    third = check_start(settings, data)
    assert reads == [model, model] and third.model is not first.model
    check_start(settings, data)
    assert len(reads) == 2


def test_missing_extra_says_how_to_add_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "peft" else real(name, *a))
    line = missing_extra()
    assert line is not None and "peft" in line and '".[train]"' in line and "\n" not in line


def test_examples_know_their_prompt_and_answer() -> None:
    example = Example((Turn("system", "s"), Turn("user", "q1"), Turn("assistant", "a1"),
                       Turn("user", "q2"), Turn("assistant", "a2")), 7)
    assert (example.prompt, example.answer) == ("q1", "a2")
