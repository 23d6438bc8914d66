"""Loading a GGUF base model into transformers, for training (runs in the worker only).

transformers builds the model and its tokenizer from the GGUF file itself
(``from_pretrained(folder, gguf_file=name)``), unpacking every weight to float32. Left alone it
parses the file's header three times (config, tokenizer, weights) and rebuilds the gguf
package's tensor-name table once per module: about 30 s for the 135M starter model, most of it
spent on its 49,152-token vocabulary. While loading, :func:`read_once` hands transformers one
parsed header per file and one table per architecture, which brings that to about 12 s with the
same weights; both are pure functions of their arguments, and the originals are put back after.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from desktop.train import TrainError, import_extra


def quiet() -> None:
    """No progress bars and no advice on the trainer's output: its stdout carries events."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["HF_HUB_OFFLINE"] = "1"  # everything is local; never wait on a network
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    logging = import_extra("transformers.utils.logging")
    logging.set_verbosity_error()
    logging.disable_progress_bar()


@contextlib.contextmanager
def read_once() -> Iterator[None]:
    """Within the block, each GGUF file is parsed once and each tensor-name table built once."""
    import gguf

    original_reader = gguf.GGUFReader
    original_map = gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: str | os.PathLike[str], mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = original_reader(path, mode)  # type: ignore[arg-type]
        return readers[key]

    gguf.GGUFReader = reader  # type: ignore[misc,assignment]
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original_map)
    try:
        yield
    finally:
        gguf.GGUFReader = original_reader  # type: ignore[misc]
        gguf.get_tensor_name_map = original_map
        readers.clear()


def load_base(path: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from the GGUF file at *path*, the model in float32 for training."""
    torch = import_extra("torch")
    transformers = import_extra("transformers")
    folder, name = str(path.parent), path.name
    try:
        with read_once():
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError, OSError) as exc:
        raise TrainError(f"transformers cannot load {name} for training: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise TrainError(f"The tokenizer of {name} has no offsets, so the answers cannot be "
                         "told from the prompts.")
    if not getattr(tokenizer, "chat_template", None):
        raise TrainError(f"{name} has no chat template, so its examples cannot be laid out.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = False  # no generation cache while training
    return model, tokenizer


def load_tokenizer(path: Path) -> Any:
    """Only the tokenizer (and its chat template), for the data preview."""
    transformers = import_extra("transformers")
    try:
        with read_once():
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent),
                                                                   gguf_file=path.name)
    except (ValueError, KeyError, NotImplementedError, OSError) as exc:
        raise TrainError(f"transformers cannot read the tokenizer of {path.name}: {exc}") \
            from exc
    if not getattr(tokenizer, "chat_template", None):
        raise TrainError(f"{path.name} has no chat template, so its examples cannot be laid "
                         "out.")
    return tokenizer


def linear_module_names(model: Any) -> list[str]:
    """The short names of the model's linear layers (what LoRA targets can name)."""
    torch = import_extra("torch")
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear)}
    return sorted(names - {"lm_head"})
