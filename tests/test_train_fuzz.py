"""The training data readers under seeded random input: every bad file or row gets a clear
reason, and nothing raises anything but DataError.

Bounded (a fixed seed, a fixed number of cases, small sizes), so it runs in a second or two and
fails the same way every time.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from desktop.train.data import DataError, DataSet, Example
from desktop.train.readers import load_data

SEED = 20_240_617
CASES = 300
ODD_TEXT = ["", " ", "\t", "\u2028", "\u0085", "\ufeff", "\x01", "😀", "é", "\u200b", "\r",
            "\n", '"', "\\", "{", "}", ",", ";", "ÿ" * 3, "Ω" * 50, "a" * 300]
# A NUL byte makes a whole file binary, a lone surrogate makes it not UTF-8: kept rare, so
# most cases reach the rows.
RARE = ["\x00", "\ud800"]
ROLES = ["user", "assistant", "system", "tool", "", "USER", 3, None]


def _value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(9 if depth < 3 else 5)
    if pick == 0:
        return rng.choice(ODD_TEXT) + rng.choice(ODD_TEXT)
    if pick == 1:
        return rng.randint(-5, 5)
    if pick == 2:
        return None
    if pick == 3:
        return rng.random() < 0.5
    if pick == 4:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(12)))
    if pick in (5, 6):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["role", "content", "prompt", "response", "messages", "from", "value",
                        "instruction", "output", "input", "x"]): _value(rng, depth + 1)
            for _ in range(rng.randrange(4))}


def _record(rng: random.Random) -> object:
    """A row that is often almost right."""
    kind = rng.randrange(5)
    if kind == 0:
        return {"messages": [{"role": rng.choice(ROLES), "content": _value(rng)}
                             for _ in range(rng.randrange(5))]}
    if kind == 1:
        return {"prompt": _value(rng), "response": _value(rng)}
    if kind == 2:
        return {"instruction": _value(rng), "input": _value(rng), "output": _value(rng)}
    if kind == 3:
        return {"messages": [{"role": "user", "content": rng.choice(ODD_TEXT) + "q"},
                             {"role": "assistant", "content": rng.choice(ODD_TEXT) + "a"}]}
    return _value(rng)


def _jsonl(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randrange(1, 30)):
        text = json.dumps(_record(rng), ensure_ascii=rng.random() < 0.5)
        mutation = rng.randrange(8)
        if mutation == 0 and text:
            cut = rng.randrange(len(text))
            text = text[:cut] + text[cut + 1:]
        elif mutation == 1:
            text = text[: rng.randrange(len(text) + 1)]
        elif mutation == 2:
            text += rng.choice(ODD_TEXT)
        lines.append(text)
    return _rarely(rng, rng.choice(["\n", "\r\n"]).join(lines))


def _rarely(rng: random.Random, text: str) -> bytes:
    if text and rng.random() < 0.1:
        at = rng.randrange(len(text))
        text = text[:at] + rng.choice(RARE) + text[at:]
    return text.encode("utf-8", errors="surrogatepass")


def _csv(rng: random.Random) -> bytes:
    rows = []
    for _ in range(rng.randrange(1, 30)):
        cells = [rng.choice(ODD_TEXT) + rng.choice(["q", "a", "", '"x"', "a,b"])
                 for _ in range(rng.randrange(0, 4))]
        rows.append(rng.choice([",", ";"]).join(cells))
    return _rarely(rng, "\n".join(rows))


def _bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))


def _check(path: Path) -> None:
    try:
        data = load_data(path)
    except DataError as exc:
        message = str(exc)
        assert message and message.endswith((".", ")")) and "\n" not in message, message
        return
    assert isinstance(data, DataSet)
    assert all(isinstance(e, Example) and e.line >= 1 for e in data.examples)
    for example in data.examples:
        assert any(t.role == "assistant" and t.content.strip() for t in example.turns)
        assert example.turns[-1].role == "assistant"
    for problem in data.problems:
        assert problem.reason and problem.line >= 0, problem
    lines = [e.line for e in data.examples] + [p.line for p in data.problems if p.line]
    assert len(lines) == len(set(lines)), "a row was both used and skipped, or twice"
    data.unusable_reason()
    data.split(0.1)
    assert DataSet.from_jsonl(data.to_jsonl(), "copy").examples == data.examples


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json", ".txt"])
def test_readers_give_a_reason_for_any_input(tmp_path: Path, suffix: str) -> None:
    rng = random.Random(f"{SEED}{suffix}")
    makers = [_jsonl, _csv, _bytes]
    for case in range(CASES // 4):
        content = rng.choice(makers)(rng)
        path = tmp_path / f"case{case}{suffix}"
        path.write_bytes(content)
        _check(path)


def test_huge_lines_and_deep_nesting_are_refused_row_by_row(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    good = json.dumps({"prompt": "q", "response": "a"})
    huge = json.dumps({"prompt": "x" * 1_200_000, "response": "a"})
    deep = "[" * 100_000 + "]" * 100_000
    printable = [t for t in ODD_TEXT if t not in ("\n", "\r")]
    text = "\n".join([good, huge, deep, "".join(rng.choice(printable) for _ in range(2000)),
                      good])
    path = tmp_path / "huge.jsonl"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    data = load_data(path)
    assert [e.line for e in data.examples] == [1, 5]
    found = {p.line: p.reason for p in data.problems}
    assert "characters long" in found[2]
    assert found[3].startswith("bad JSON") or "not a JSON object" in found[3]
    assert 4 in found
