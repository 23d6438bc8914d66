"""A model's vocabulary as text: one token's bytes, and text back into tokens."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp


def piece_of(vocab: Any, token: int, special: bool = False) -> bytes:
    """The bytes of one token as text (control tokens give none unless *special*)."""
    buffer = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buffer, 64, 0, special)
    if n < 0:
        buffer = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, -n, 0, special)
    return buffer.raw[:max(n, 0)]


def tokens_of(vocab: Any, text: str) -> list[int]:
    """*text* as tokens, control markers included, with no start-of-text token."""
    data = text.encode("utf-8")
    size = len(data) + 8
    tokens = (llama_cpp.llama_token * size)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), tokens, size, False, True)
    if n < 0:
        size = -n
        tokens = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), tokens, size, False, True)
    return list(tokens[:max(n, 0)])
