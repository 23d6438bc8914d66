"""Examples laid out with the model's chat template, tokenized, with the answers marked.

The model learns only the assistant turns: every other token gets the label -100, which the
loss skips. An answer's span runs from the end of the conversation before it (rendered with
the template's generation prompt, so the "assistant:" header is not learned) to the end of the
conversation with it, so the end-of-turn marker after the answer is learned too, and the
trained model knows when to stop. Works on any tokenizer with a chat template and offsets
(every fast tokenizer); no torch needed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop.train.data import Example, Problem

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One example as token ids and labels (-100 where nothing is learned)."""

    input_ids: list[int]
    labels: list[int]
    line: int
    text: str

    @property
    def learned(self) -> int:
        """How many tokens the loss is taken on."""
        return sum(1 for label in self.labels if label != IGNORE)


def render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool = False
           ) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=generation_prompt))


def answer_spans(tokenizer: Any, messages: list[dict[str, str]], text: str
                 ) -> list[tuple[int, int]]:
    """Character ranges of *text* (the whole conversation rendered) that are answers."""
    spans = []
    cursor = 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:index], generation_prompt=True)
        upto = render(tokenizer, messages[:index + 1])
        if text.startswith(upto) and upto.startswith(before) and len(upto) > len(before):
            spans.append((len(before), len(upto)))
            cursor = len(upto)
            continue
        # A template that renders earlier turns differently than the last (some drop
        # reasoning from old answers): find the answer's own text after the last one.
        found = text.find(message["content"], cursor)
        if found < 0:
            continue
        end = found + len(message["content"])
        eos = getattr(tokenizer, "eos_token", None)
        tail = text[end:]
        if isinstance(eos, str) and eos and tail.lstrip().startswith(eos):
            end += len(tail) - len(tail.lstrip()) + len(eos)
        spans.append((found, end))
        cursor = end
    return spans


def encode(tokenizer: Any, example: Example) -> Encoded:
    """Render and tokenize *example*, marking its answers' tokens to be learned."""
    messages = example.messages()
    text = render(tokenizer, messages)
    spans = answer_spans(tokenizer, messages, text)
    # The template writes the special tokens it wants (a BOS among them) itself.
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    labels = []
    for token, (start, end) in zip(ids, encoding["offset_mapping"]):
        inside = end > start and any(lo <= start < hi for lo, hi in spans)
        labels.append(token if inside else IGNORE)
    return Encoded(ids, labels, example.line, text)


def encode_all(tokenizer: Any, examples: list[Example], max_length: int
               ) -> tuple[list[Encoded], list[Problem]]:
    """Every example that fits *max_length* tokens, and a problem for each that does not."""
    kept: list[Encoded] = []
    problems: list[Problem] = []
    for example in examples:
        try:
            encoded = encode(tokenizer, example)
        except Exception as exc:  # noqa: BLE001 - a template's own error, about this example
            problems.append(Problem(example.line, "the model's chat template cannot lay it "
                                                  f"out: {exc}"))
            continue
        if len(encoded.input_ids) > max_length:
            problems.append(Problem(example.line, f"too long: {len(encoded.input_ids)} tokens "
                                                  "with the chat template, and the maximum "
                                                  f"length is {max_length}"))
        elif not encoded.learned:
            problems.append(Problem(example.line, "no answer tokens were found after laying "
                                                  "it out with the chat template"))
        else:
            kept.append(encoded)
    return kept, problems
