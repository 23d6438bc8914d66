"""Sampling settings and the llama.cpp sampler chain each slot draws its tokens with.

A chain is built per request, in llama.cpp's usual order: penalties on what was already said,
then the filters (top-k, top-p, min-p), then temperature and a seeded draw. Temperature 0 is
greedy. Each chain has its own random state, so a request with a seed draws the same tokens
whether it runs alone or beside others.

A grammar (desktop.engine.grammar) is checked after the draw, not before: the chain picks a
token from the plain candidates, and only when the grammar refuses that token are all the
candidates filtered by the grammar and the draw made again. Checking one token is cheap;
filtering the whole vocabulary every step is what makes grammars slow, and most steps of a
constrained reply pick an allowed token anyway.

Log-probabilities come from the logits of the step that drew the token, so asking for them
costs one softmax over the vocabulary per token.
"""

from __future__ import annotations

import ctypes
import random
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np

from desktop.engine.grammar import GrammarRefused, GrammarSampler

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
    logprobs: int | None = None  # None: none; N: the chosen token's and the N likeliest

    @property
    def penalised(self) -> bool:
        return (self.repeat_penalty != 1.0 or self.frequency_penalty != 0.0
                or self.presence_penalty != 0.0)


class GrammarStuck(Exception):
    """No token the grammar allows is left among the candidates, or a token written for the
    model is one the grammar refuses."""


@dataclass
class TokenLogprob:
    token: int
    logprob: float
    top: list[tuple[int, float]]


class SamplerChain:
    """One request's llama_sampler chain; free it with :meth:`close` (on the model thread)."""

    def __init__(self, sampling: Sampling, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self.grammar: GrammarSampler | None = None
        self.top_logprobs = sampling.logprobs
        self._data: Any = None
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

    def accept(self, token: int) -> None:
        """A token that was not drawn (written for the model) joins what it has said."""
        llama_cpp.llama_sampler_accept(self.chain, token)
        if self.grammar is not None:
            self._grammar_accept(token)

    def sample(self, ctx: Any, index: int, vocab: Any) -> int:
        """Draw the next token from the logits of batch position *index* (and accept it)."""
        if self.grammar is None:
            return int(llama_cpp.llama_sampler_sample(self.chain, ctx, index))
        candidates = self._candidates(ctx, index)
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(candidates))
        token = int(candidates.data[candidates.selected].id)
        if not self.grammar.allows(token):
            candidates = self._candidates(ctx, index)
            self.grammar.apply(ctypes.byref(candidates))
            llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(candidates))
            token = int(candidates.data[candidates.selected].id)
            if not self.grammar.allows(token):
                raise GrammarStuck()
        llama_cpp.llama_sampler_accept(self.chain, token)
        if not llama_cpp.llama_vocab_is_eog(vocab, token):
            self._grammar_accept(token)  # an end token is only allowed once the grammar is done
        return token

    def _grammar_accept(self, token: int) -> None:
        assert self.grammar is not None
        try:
            self.grammar.accept(token)
        except GrammarRefused as exc:
            raise GrammarStuck() from exc

    def _candidates(self, ctx: Any, index: int) -> Any:
        """Every token with its logit at batch position *index*, as llama.cpp takes them."""
        if self._data is None:
            self._data = (llama_cpp.llama_token_data * self.n_vocab)()
            self._view = np.ctypeslib.as_array(self._data)
            self._ids = np.arange(self.n_vocab, dtype=np.int32)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index),
                                       shape=(self.n_vocab,))
        self._view["id"] = self._ids
        self._view["logit"] = logits
        self._view["p"] = 0.0
        return llama_cpp.llama_token_data_array(self._data, self.n_vocab, -1, False)

    def logprob(self, ctx: Any, index: int, token: int) -> TokenLogprob | None:
        """The model's log-probability of *token* at batch position *index*, and the
        likeliest alternatives, when the request asked for them."""
        if self.top_logprobs is None:
            return None
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index),
                                       shape=(self.n_vocab,))
        peak = float(logits.max())
        total = peak + float(np.log(np.exp(logits - peak).sum()))
        top: list[tuple[int, float]] = []
        if self.top_logprobs > 0:
            n = min(self.top_logprobs, self.n_vocab)
            best = np.argpartition(logits, -n)[-n:]
            best = best[np.argsort(-logits[best], kind="stable")]
            top = [(int(t), float(logits[t]) - total) for t in best]
        return TokenLogprob(token, float(logits[token]) - total, top)

    def set_grammar(self, grammar: GrammarSampler | None) -> None:
        if self.grammar is not None:
            self.grammar.close()
        self.grammar = grammar

    def close(self) -> None:
        self.set_grammar(None)
        if self.chain is not None:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
