"""What steers a reply besides its sampler: a grammar that begins where the thinking ends,
and a budget for the thinking.

A reasoning model writes ``<think>…</think>`` before its answer. A grammar for a tool call
or a JSON schema must leave the thinking free and bind the answer, so it is lazy: it waits
for a trigger (the end of the thinking, or a call's opening). A thinking budget ends the
thinking for the model: once it has written that many tokens of thought, the engine writes
``</think>`` for it and the answer begins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop.engine.grammar import Constraint, GrammarSampler
from desktop.engine.sampling import SamplerChain

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass
class Steer:
    """What a request asks for, made on the HTTP side and carried in Prepared."""

    constraint: Constraint | None = None
    # True: the prompt ends inside an open <think>; None: the reply may open one itself;
    # False: this reply does not think.
    thinking: bool | None = False
    budget: int | None = None  # tokens of thought before the engine ends the thinking
    close_tokens: tuple[int, ...] = ()  # the tokens that end the thinking


class Steering:
    """One slot's steering while it writes a reply (model thread only)."""

    def __init__(self, steer: Steer, chain: SamplerChain, vocab: Any) -> None:
        self.steer = steer
        self.chain = chain
        self.thinking = steer.thinking
        self.thought = 0  # tokens written while thinking
        self.forced = False
        self._said = ""
        constraint = steer.constraint
        if constraint is not None:
            chain.set_grammar(GrammarSampler(vocab, constraint.gbnf, constraint.trigger))

    def after(self, text: str) -> list[int]:
        """Note the text of one more token; the tokens to write for the model next, if any."""
        if self.thinking is None:
            self._said += text
            start = self._said.lstrip()
            if start.startswith(THINK_OPEN):
                self.thinking = True
                self._said = start[len(THINK_OPEN):]
            elif not THINK_OPEN.startswith(start):
                self.thinking = False
            return []
        if not self.thinking:
            return []
        self.thought += 1
        self._said = (self._said + text)[-64:]
        if THINK_CLOSE in self._said:
            self.thinking = False
            return []
        budget = self.steer.budget
        if (budget is not None and self.thought >= budget and not self.forced
                and self.steer.close_tokens):
            self.forced = True
            return list(self.steer.close_tokens)
        return []
