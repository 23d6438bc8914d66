"""Which installed models can be trained here, and why the others cannot.

A base model must pass four checks: transformers can build it from a GGUF file (its
architecture is in transformers' own GGUF table), every tensor's type is one transformers can
unpack (it dequantizes through the gguf package: F32, F16, BF16, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, the
K-quants and the i-quants; the list is read from the installed packages), NoMoat's PEFT-to-GGUF
converter knows the architecture (so the result can be applied by llama.cpp), and it has a chat
template (the examples are conversations). Nothing here imports torch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from desktop.core.gguf_info import GGUFInfo
from desktop.core.library import InstalledModel, installed_models, read_header
from desktop.train import import_extra


@dataclass(frozen=True)
class ModelCheck:
    """An installed model and why it cannot be trained (None when it can)."""

    model: InstalledModel
    reason: str | None

    @property
    def trainable(self) -> bool:
        return self.reason is None


def trainable_models() -> list[ModelCheck]:
    """Every installed chat model, each with the reason it cannot be trained, if any."""
    return [ModelCheck(model, model_problem(model)) for model in installed_models()
            if model.kind == "chat"]


def model_problem(model: InstalledModel) -> str | None:
    """Why *model* cannot be a base for training here, or None when it can."""
    if model.problem:
        return model.problem
    if model.info is None:
        return "Its header cannot be read."
    if len(model.files) > 1:
        return (f"It is split across {len(model.files)} files, which transformers cannot "
                "load for training. Use a model in one file.")
    return info_problem(model.info)


def info_problem(info: GGUFInfo) -> str | None:
    """Why the model described by *info* cannot be trained here, or None."""
    from desktop.core.peft import PERMUTES_QK

    arch = info.architecture
    if info.kind != "chat":
        return "It is an embedding model; adapters are trained for chat models."
    readable = transformers_architectures()
    if readable is not None and arch not in readable:
        return (f"transformers cannot load '{arch}' models from GGUF files (it reads "
                f"{', '.join(sorted(readable & set(PERMUTES_QK)))} and a few more).")
    if arch not in PERMUTES_QK:
        return (f"NoMoat cannot convert adapters for '{arch}' models to GGUF yet (it converts "
                f"{', '.join(sorted(PERMUTES_QK))}).")
    unreadable = sorted(set(info.tensor_types) - readable_tensor_types())
    if unreadable:
        return (f"Its weights are stored as {', '.join(unreadable)}, which transformers "
                "cannot unpack. Use a copy quantized as Q4_K_M, Q8_0 or F16.")
    if not info.has_chat_template:
        return ("It has no chat template (a base model, not an instruct one), so the "
                "examples' conversations cannot be laid out for it.")
    return None


@lru_cache(maxsize=1)
def transformers_architectures() -> frozenset[str] | None:
    """Architectures transformers can build from a GGUF file, from its own table (None when
    transformers is not installed: the missing extra is said elsewhere)."""
    try:
        table = import_extra("transformers.integrations.ggml").GGUF_CONFIG_MAPPING
    except (ImportError, AttributeError):
        return None
    return frozenset(set(table) - {"general", "tokenizer"})


@lru_cache(maxsize=1)
def readable_tensor_types() -> frozenset[str]:
    """Tensor types the gguf package can unpack (what transformers dequantizes with)."""
    from gguf import quants

    found = {"F32", "F16"}
    traits = getattr(quants, "_type_traits", None)
    if isinstance(traits, dict):
        found.update(qtype.name for qtype in traits)
    else:  # an older or newer layout: the types known to have been readable for long
        found.update({"BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
                      "Q5_K", "Q6_K"})
    return frozenset(found)


def tensor_types(path: Path) -> Counter[str]:
    """How many tensors of each type (``Q4_K``, ``F32``, ...) a GGUF file holds (its header is
    read again only once the file changes)."""
    return Counter(read_header(path).tensor_types)
