"""Reasoning models: whether a template thinks, and the thinking split from the answer as the
reply streams.

Templates of models that think mention ``<think>``. Some open the thinking in the prompt
(DeepSeek-R1's distills end the prompt with ``<think>``), so the reply starts inside it and
only its end is written; others (Qwen3) let the model open it. Qwen3's template also takes
``enable_thinking``: false writes an empty thinking into the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop.engine.steering import THINK_CLOSE, THINK_OPEN


def template_thinks(template: str) -> bool:
    return THINK_OPEN in template or THINK_CLOSE in template or "enable_thinking" in template


def template_switches_thinking(template: str) -> bool:
    return "enable_thinking" in template


def prompt_opens_thinking(prompt: str) -> bool:
    """Whether *prompt* ends inside a <think> the model is to go on with."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


def _held(text: str, marker: str) -> int:
    """How many characters at the end of *text* may be the start of *marker*."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0


@dataclass
class ThinkSplitter:
    """Feed the reply's text; get ("reasoning", text) and ("content", text) pieces.

    *thinking*: True when the reply starts inside the thinking, None when it may open it,
    False when it does not think (all of it is answer)."""

    thinking: bool | None
    _buffer: str = ""
    _answer_started: bool = False
    started_at: float | None = None  # set by the caller; for "Thought for N s"

    def feed(self, text: str) -> list[tuple[str, str]]:
        self._buffer += text
        out: list[tuple[str, str]] = []
        while self._buffer:
            if self.thinking is None:
                start = self._buffer.lstrip()
                if start.startswith(THINK_OPEN):
                    self.thinking = True
                    self._buffer = start[len(THINK_OPEN):].lstrip("\n")
                    continue
                if THINK_OPEN.startswith(start):
                    return out  # not sure yet
                self.thinking = False
            if self.thinking:
                at = self._buffer.find(THINK_CLOSE)
                if at >= 0:
                    if at:
                        out.append(("reasoning", self._buffer[:at]))
                    self._buffer = self._buffer[at + len(THINK_CLOSE):]
                    self.thinking = False
                    continue
                keep = _held(self._buffer, THINK_CLOSE)
                piece = self._buffer[:len(self._buffer) - keep]
                if piece:
                    out.append(("reasoning", piece))
                self._buffer = self._buffer[len(self._buffer) - keep:]
                return out
            piece = self._buffer
            if not self._answer_started:
                piece = piece.lstrip()
                if not piece:
                    return out
                self._answer_started = True
            self._buffer = ""
            out.append(("content", piece))
        return out

    def finish(self) -> list[tuple[str, str]]:
        rest, self._buffer = self._buffer, ""
        if not rest:
            return []
        if self.thinking:
            return [("reasoning", rest)]
        rest = rest if self._answer_started else rest.lstrip()
        return [("content", rest)] if rest else []
