"""Embedding models: each in a llama.cpp context of its own, beside the chat model.

An embedding model (an encoder such as BERT, or any model whose file sets a pooling type; see
``GGUFInfo.kind``) is loaded by the first ``/v1/embeddings`` request that names it and stays
loaded: loading it never unloads or replaces the chat model. Only one stays loaded at a time;
a request for another embedding model replaces it once no request is using it.

Like every llama.cpp call, its work runs on the scheduler's thread, but a batch at a time
between the chat's decode steps (``Steps``), so replies keep streaming while documents are
embedded.

A text longer than the model's context (its trained context, at most
``EMBEDDING_CONTEXT`` tokens) is truncated: its first tokens are kept, with the closing
separator token the model expects. Usage counts the tokens that were embedded.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals as internals

from desktop.core.gguf_info import POOLING_NONE, POOLING_RANK, GGUFInfo
from desktop.core.memory import (
    MemoryEstimate,
    available_memory,
    embedding_context,
    estimate_embedding_memory,
)
from desktop.engine import amx
from desktop.engine.errors import APIError, LoadError, bad_request

GiB = 1024**3
# Texts decoded together in one batch (each is a sequence of its own in the context).
MAX_SEQUENCES = 32
POOLING_NAMES = {1: "mean", 2: "cls", 3: "last"}


class EmbeddingModel:
    """One embedding model: its weights, its context and a batch of its context's size."""

    def __init__(self, model_id: str, path: Path, info: GGUFInfo, threads: int,
                 n_gpu_layers: int = 0) -> None:
        self.id = model_id
        self.path = path
        self.info = info
        self.n_ctx = embedding_context(info)
        self.users = 0  # requests embedding with it now; it is not closed while they do
        # A file without a pooling type keeps a vector per token: mean them, as most do.
        pooling = info.pooling_type
        if pooling is None or pooling == POOLING_NONE:
            pooling = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        self.pooling = pooling
        params = amx.model_params()
        params.n_gpu_layers = n_gpu_layers
        self.weights = internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        context = llama_cpp.llama_context_default_params()
        context.n_ctx = self.n_ctx
        # An encoder reads a whole text in one micro-batch (llama.cpp asserts that it fits).
        context.n_batch = context.n_ubatch = self.n_ctx
        context.n_seq_max = MAX_SEQUENCES
        context.kv_unified = True  # one cache of n_ctx, for decoders; encoders keep none
        context.embeddings = True
        context.pooling_type = pooling
        context.n_threads = context.n_threads_batch = threads
        context.no_perf = True
        try:
            self.context = internals.LlamaContext(model=self.weights, params=context,
                                                  verbose=False)
        except ValueError:
            self.weights.close()
            raise
        self.memory = llama_cpp.llama_get_memory(self.context.ctx)  # None for an encoder
        self.vocab = self.weights.vocab
        self.width = int(llama_cpp.llama_model_n_embd_out(self.weights.model))
        # The separator or end token the tokenizer puts last is kept when a text is cut.
        self.closes = bool(llama_cpp.llama_vocab_get_add_sep(self.vocab)
                           or llama_cpp.llama_vocab_get_add_eos(self.vocab))
        self.batch = llama_cpp.llama_batch_init(self.n_ctx, 0, 1)

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        self.context.close()
        self.weights.close()

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "architecture": self.info.architecture,
                "dimensions": self.width, "context": self.n_ctx,
                "pooling": POOLING_NAMES.get(self.pooling, str(self.pooling)),
                "memory_bytes": estimate_embedding_memory(self.info).model_bytes}

    def tokens(self, text: str) -> list[int]:
        """The tokens of *text* as the model reads it, cut to its context."""
        tokens = list(self.weights.tokenize(text.encode("utf-8"), add_bos=True,
                                            special=False))
        if len(tokens) > self.n_ctx:
            tokens = (tokens[:self.n_ctx - 1] + tokens[-1:] if self.closes
                      else tokens[:self.n_ctx])
        return tokens

    def embed_steps(self, texts: list[str]
                    ) -> Generator[None, None, tuple[str, list[list[float]], int]]:
        """Its id, unit-length embeddings of *texts* and the tokens read: one batch of texts
        per ``next()``. The model counts as in use from this call until the work ends."""
        pieces = self._pieces(texts)
        next(pieces)  # now in use, and closing the work (cancelled) says it is not any more
        return pieces

    def _pieces(self, texts: list[str]
                ) -> Generator[None, None, tuple[str, list[list[float]], int]]:
        self.users += 1
        try:
            yield
            prepared = [self.tokens(text) for text in texts]
            for index, tokens in enumerate(prepared):
                if not tokens:
                    raise bad_request(f"'input.{index}' has nothing {self.id} can read (no "
                                      "tokens).", param=f"input.{index}")
            vectors: list[list[float]] = []
            start = 0
            while start < len(prepared):
                end, used = start, 0
                while (end < len(prepared) and end - start < MAX_SEQUENCES
                       and used + len(prepared[end]) <= self.n_ctx):
                    used += len(prepared[end])
                    end += 1
                vectors += self._decode(prepared[start:end])
                start = end
                if start < len(prepared):
                    yield  # the chat's next step, then the next batch
            return self.id, vectors, sum(len(tokens) for tokens in prepared)
        finally:
            self.users -= 1

    def _decode(self, group: list[list[int]]) -> list[list[float]]:
        batch = self.batch
        n = 0
        for seq, tokens in enumerate(group):
            for pos, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = True  # an embedding context reads every token's output
                n += 1
        batch.n_tokens = n
        if self.memory:
            llama_cpp.llama_memory_clear(self.memory, True)  # a decoder's last batch goes
        code = llama_cpp.llama_decode(self.context.ctx, batch)
        if code != 0:
            raise APIError(500, f"llama.cpp could not embed with {self.id} (llama_decode "
                           f"returned {code}).", type="server_error", code="embedding_failed")
        out = []
        for seq in range(len(group)):
            pointer = llama_cpp.llama_get_embeddings_seq(self.context.ctx, seq)
            if not pointer:
                raise APIError(500, f"{self.id} gave no embedding.", type="server_error",
                               code="embedding_failed")
            vector = np.ctypeslib.as_array(pointer, shape=(self.width,)).astype(np.float64)
            norm = float(np.linalg.norm(vector))
            out.append((vector / norm if norm > 0 else vector).tolist())
        return out


class Embedders:
    """The embedding models loaded in the engine (model thread only)."""

    def __init__(self, log_reason: Callable[[], str], clear_log: Callable[[], None]) -> None:
        self.loaded: dict[str, EmbeddingModel] = {}
        self._log_reason = log_reason
        self._clear_log = clear_log

    def describe(self) -> list[dict[str, Any]]:
        return [model.describe() for model in list(self.loaded.values())]

    def use(self, model_id: str, path: Path, info: GGUFInfo, threads: int) -> EmbeddingModel:
        """The embedding model *model_id*, loading it first (in place of the others that no
        request is using)."""
        found = self.loaded.get(model_id)
        if found is not None:
            return found
        if info.pooling_type == POOLING_RANK:
            raise APIError(400, f"{model_id} is a reranking model: it scores how well texts "
                           "match a query and makes no embeddings.", param="model",
                           code="not_an_embedding_model")
        for other in [m for m in self.loaded.values() if m.users == 0]:
            del self.loaded[other.id]
            other.close()
        need: MemoryEstimate = estimate_embedding_memory(info)
        free = available_memory()
        if free is not None and need.model_bytes > free:
            raise LoadError(f"The embedding model {model_id} needs about "
                            f"{need.model_bytes / GiB:.1f} GB of memory, but only "
                            f"{free / GiB:.1f} GB is available. Close other programs or "
                            "choose a smaller embedding model.", code="model_too_large")
        self._clear_log()
        try:
            model = EmbeddingModel(model_id, path, info, threads)
        except (ValueError, RuntimeError, OSError) as exc:
            reason = self._log_reason() or str(exc)
            raise LoadError(f"llama.cpp could not load the embedding model {path.name}: "
                            f"{reason}") from exc
        self.loaded[model_id] = model
        return model

    def close(self) -> None:
        for model in self.loaded.values():
            model.close()
        self.loaded.clear()
