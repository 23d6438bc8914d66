"""The data preview: the examples laid out with the model's chat template, and their tokens.

The parent calls :func:`preview_data`, which runs ``python -m desktop.train.preview``: a process
of its own, because the tokenizer comes with transformers, and with it torch, which the window
never imports. The process reads one JSON request on standard input (``{"base_model",
"max_length", "limit", "examples"}``), tokenizes every example, and writes one JSON answer
line: the first few examples rendered and cut into learned and not-learned segments, the
examples that are too long, and every example's token count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.train import TrainError, require_extra
from desktop.train.data import DataSet, Example, Problem, Turn
from desktop.train.events import claim_stdout
from desktop.train.tokens import IGNORE, encode, encode_all


@dataclass(frozen=True)
class PreviewExample:
    """One example as the model sees it. *segments* cut *text* into ``(piece, learned)``
    runs: the learned ones are the answers the loss is taken on."""

    line: int
    text: str
    tokens: int
    learned: int
    segments: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class DataPreview:
    """The first examples rendered, the ones too long for the maximum length, and the token
    counts of those that fit."""

    examples: tuple[PreviewExample, ...]
    too_long: tuple[Problem, ...]
    tokens: tuple[int, ...]
    learned: tuple[int, ...]

    @property
    def usable(self) -> int:
        """Examples that fit the maximum length."""
        return len(self.tokens)

    def summary(self) -> str:
        """``40 examples fit (mean 54 tokens, longest 61); 2 are too long``."""
        if not self.tokens:
            return "No example fits the maximum length."
        text = (f"{len(self.tokens)} example{'s' * (len(self.tokens) != 1)} fit (mean "
                f"{sum(self.tokens) / len(self.tokens):.0f} tokens, longest "
                f"{max(self.tokens)})")
        if self.too_long:
            text += f"; {len(self.too_long)} {'is' if len(self.too_long) == 1 else 'are'} " \
                    "too long"
        return text


def preview_data(base_model: str | Path, data: DataSet, *, max_length: int = 256,
                 limit: int = 5, timeout: float = 300) -> DataPreview:
    """Lay out *data* with *base_model*'s chat template (in a process of its own) and count
    its tokens; :class:`TrainError` when that cannot be done. Takes seconds: call it off the
    window's thread."""
    require_extra()
    request = {"base_model": str(base_model), "max_length": max_length, "limit": limit,
               "examples": [{"messages": e.messages(), "line": e.line} for e in data.examples]}
    try:
        done = subprocess.run([sys.executable, "-m", "desktop.train.preview"],
                              input=json.dumps(request), capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TrainError(f"The preview took longer than {timeout:.0f} s.") from None
    except OSError as exc:
        raise TrainError(f"The preview could not be started: {exc}") from exc
    lines = [line for line in done.stdout.split("\n") if line.strip()]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = done.stderr.strip().split("\n")[-1:] or [""]
        raise TrainError(f"The preview failed: {tail[0] or f'status {done.returncode}'}") \
            from None
    if "error" in answer:
        raise TrainError(str(answer["error"]))
    return DataPreview(
        examples=tuple(PreviewExample(int(e["line"]), str(e["text"]), int(e["tokens"]),
                                      int(e["learned"]),
                                      tuple((str(p), bool(f)) for p, f in e["segments"]))
                       for e in answer["examples"]),
        too_long=tuple(Problem.from_dict(p) for p in answer["problems"]),
        tokens=tuple(int(n) for n in answer["tokens"]),
        learned=tuple(int(n) for n in answer["learned"]))


# -- the process -------------------------------------------------------------------------------
def segments(tokenizer: Any, text: str, labels: list[int]) -> list[list[Any]]:
    """*text* cut into ``[piece, learned]`` runs, from the labels of its tokens."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    runs: list[list[Any]] = []
    cursor = 0
    for (start, end), label in zip(encoding["offset_mapping"], labels):
        if end <= start:
            continue
        learned = label != IGNORE
        piece = text[cursor:end]
        cursor = end
        if runs and runs[-1][1] == learned:
            runs[-1][0] += piece
        else:
            runs.append([piece, learned])
    if cursor < len(text):
        if runs and not runs[-1][1]:
            runs[-1][0] += text[cursor:]
        else:
            runs.append([text[cursor:], False])
    return runs


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The preview process's answer to one request."""
    from desktop.train.loading import load_tokenizer, quiet

    quiet()
    tokenizer = load_tokenizer(Path(str(request["base_model"])))
    max_length = int(request.get("max_length") or 256)
    limit = int(request.get("limit") or 5)
    examples = [Example(tuple(Turn(str(m["role"]), str(m["content"])) for m in raw["messages"]),
                        int(raw.get("line") or 0)) for raw in request.get("examples") or []]
    kept, problems = encode_all(tokenizer, examples, max_length)
    shown = []
    for example in examples[:limit]:
        try:
            encoded = encode(tokenizer, example)
        except Exception:  # noqa: BLE001, S112 - already listed among the problems
            continue
        shown.append({"line": example.line, "text": encoded.text,
                      "tokens": len(encoded.input_ids), "learned": encoded.learned,
                      "segments": segments(tokenizer, encoded.text, encoded.labels)})
    return {"examples": shown, "problems": [p.to_dict() for p in problems],
            "tokens": [len(e.input_ids) for e in kept],
            "learned": [e.learned for e in kept]}


def main() -> int:
    out = claim_stdout()
    try:
        result = answer(json.loads(sys.stdin.read()))
    except TrainError as exc:
        result = {"error": str(exc)}
    except (ValueError, KeyError, TypeError) as exc:
        result = {"error": f"The preview could not be made: {exc}"}
    out.write(json.dumps(result, ensure_ascii=False) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
