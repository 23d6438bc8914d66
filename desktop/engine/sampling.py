"""Sampling settings and the llama.cpp sampler chain each slot draws its tokens with.

A chain is built per request, in llama.cpp's usual order: penalties on what was already said,
then the filters (top-k, top-p, min-p), then temperature and a seeded draw. Temperature 0 is
greedy. Each chain has its own random state, so a request with a seed draws the same tokens
whether it runs alone or beside others.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

# How many recent tokens the repeat, frequency and presence penalties look at.
PENALTY_LAST_N = 64


@dataclass
class Sampling:
    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    @property
    def penalised(self) -> bool:
        return (self.repeat_penalty != 1.0 or self.frequency_penalty != 0.0
                or self.presence_penalty != 0.0)


class SamplerChain:
    """One request's llama_sampler chain; free it with :meth:`close` (on the model thread)."""

    def __init__(self, sampling: Sampling, n_vocab: int) -> None:
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self.chain: Any = llama_cpp.llama_sampler_chain_init(params)
        self.seed = sampling.seed if sampling.seed is not None else random.randrange(2**31)
        self._penalised = sampling.penalised
        add = self._add
        if sampling.penalised:
            penalties: list[Any] = [PENALTY_LAST_N, sampling.repeat_penalty,
                                    sampling.frequency_penalty, sampling.presence_penalty]
            init: Any = llama_cpp.llama_sampler_init_penalties
            if len(getattr(init, "argtypes", ()) or ()) == 5:  # llama.cpp builds that want n_vocab
                penalties.insert(0, n_vocab)
            add(init(*penalties))
        if sampling.temperature <= 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
            return
        if sampling.top_k > 0:
            add(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0.0:
            add(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(sampling.temperature))
        add(llama_cpp.llama_sampler_init_dist(self.seed & 0xFFFFFFFF))

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self.chain, sampler)

    def accept_prompt(self, tokens: list[int]) -> None:
        """Let the penalties see the prompt's last tokens, as if the model had said them."""
        if self._penalised:
            for token in tokens[-PENALTY_LAST_N:]:
                llama_cpp.llama_sampler_accept(self.chain, token)

    def sample(self, ctx: Any, index: int) -> int:
        """Draw the next token from the logits of batch position *index* (and accept it)."""
        return int(llama_cpp.llama_sampler_sample(self.chain, ctx, index))

    def close(self) -> None:
        if self.chain is not None:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
