"""Embeddings: asking the embedding function for them, checking what it gave, storing them as
float32 bytes, and finding the nearest by cosine similarity (exact, with numpy: at a laptop's
scale of documents a full scan takes milliseconds and never misses)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

#: Texts in, one vector per text out (the engine's embeddings, or any model's).
Embed = Callable[[list[str]], Sequence[Sequence[float]]]
Matrix = npt.NDArray[np.float32]
_DTYPE = np.dtype("<f4")  # little-endian on every platform, so an index can move machines


class EmbeddingError(RuntimeError):
    """The embedding model failed, or gave something other than one vector per text."""


def embed_texts(embed: Embed, texts: list[str]) -> Matrix:
    """Embed *texts* and return them as unit-length rows of a float32 matrix.

    Raises EmbeddingError, with what went wrong, if the model fails or its answer has the wrong
    shape or holds values that are not finite numbers.
    """
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    try:
        answer = embed(list(texts))
    except EmbeddingError:
        raise
    except Exception as exc:
        # Whatever the embedding function raises (an engine gone, a refused request), the
        # indexer and the search treat it the same: stop and say so.
        raise EmbeddingError(f"The embedding model failed: {exc}") from exc
    try:
        matrix = np.asarray(answer, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbeddingError(f"The embedding model gave vectors of different lengths ({exc}).") \
            from exc
    if matrix.ndim != 2 or matrix.shape[0] != len(texts) or matrix.shape[1] == 0:
        raise EmbeddingError(f"The embedding model gave {matrix.shape[0] if matrix.ndim else 0} "
                             f"vectors of shape {matrix.shape[1:]} for {len(texts)} texts.")
    if not np.isfinite(matrix).all():
        raise EmbeddingError("The embedding model gave values that are not numbers (NaN or "
                             "infinite).")
    return normalized(matrix)


def normalized(matrix: Matrix) -> Matrix:
    """Rows scaled to unit length (zero rows stay zero), so a dot product is the cosine."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32, copy=False)


def to_blob(vector: Matrix) -> bytes:
    """One vector as the bytes stored in the index."""
    return np.ascontiguousarray(vector, dtype=_DTYPE).tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int) -> Matrix:
    """Stored vectors back as the rows of one matrix."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype=_DTYPE)
    return flat.reshape(len(blobs), dim).astype(np.float32, copy=False)


def nearest(matrix: Matrix, query: Matrix, k: int) -> list[tuple[int, float]]:
    """The *k* rows of *matrix* most similar to the unit vector *query*, best first, as
    (row, cosine) pairs."""
    if k <= 0 or matrix.shape[0] == 0:
        return []
    scores = matrix @ query.reshape(-1)
    k = min(k, scores.shape[0])
    # argpartition finds the top k in linear time; only those k are sorted.
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(row), float(scores[row])) for row in top]


# Models trained to be told what a text is for; the text is prefixed as their makers advise.
_PREFIXES = {"nomic-embed-text": ("search_document: ", "search_query: ")}


def text_prefix(model_id: str, query: bool) -> str:
    """What goes before a passage (or, with *query*, a question) for the model *model_id*."""
    return next((pair[1 if query else 0] for name, pair in _PREFIXES.items()
                 if name in model_id), "")
