"""Loading: the model, its context of N slots, its chat template, and its embedding context.

Everything here runs on the scheduler's thread (desktop.engine.scheduler), the only thread
that calls llama.cpp; the asyncio side reads ``model`` and the status only.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import _internals as internals

from desktop.core.cpu import default_threads
from desktop.core.gguf_info import EMBEDDING, GGUFError, GGUFInfo, read_gguf
from desktop.core.memory import (
    MemoryEstimate,
    available_memory,
    choose_parallel,
    default_context,
    estimate_model_memory,
)
from desktop.engine import amx
from desktop.engine.adapters import AdapterSet
from desktop.engine.embedder import Embedders
from desktop.engine.errors import APIError, ContextLengthExceeded, LoadError
from desktop.engine.jobs import GenerationResult, Job, Prepared
from desktop.engine.scheduler import Scheduler
from desktop.engine.threads import ThreadGovernor
from desktop.engine.vocab import piece_of

GiB = 1024**3

# A plain ChatML template for models whose file carries none.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_LOG_LINES: collections.deque[str] = collections.deque(maxlen=200)


@llama_cpp.llama_log_callback
def _keep_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """Keep llama.cpp's log in memory so a failed load can say why."""
    _LOG_LINES.append(text.decode("utf-8", errors="replace"))
    if os.environ.get("NOMOAT_ENGINE_VERBOSE"):
        os.write(2, text)


llama_cpp.llama_log_set(_keep_log, ctypes.c_void_p(0))


def _log_reason() -> str:
    """The last error-looking lines llama.cpp logged, for a failed load."""
    text = "".join(_LOG_LINES)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return "; ".join((errors or lines)[-3:])


@dataclass
class LoadSettings:
    """How a model is loaded. None means: pick a sensible default for this model.

    *n_ctx* is each slot's context; the cache holds *parallel* of them (None: as many as
    the memory free holds comfortably, up to DEFAULT_PARALLEL).
    """

    n_ctx: int | None = None
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = 0
    chat_template: str | None = None
    parallel: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    id: str
    path: Path
    info: GGUFInfo
    settings: LoadSettings
    weights: Any  # llama_cpp._internals.LlamaModel
    context: Any  # llama_cpp._internals.LlamaContext with one sequence per slot
    formatter: Any
    template_source: str  # "model", "override" or "fallback"
    n_ctx: int  # tokens of context each slot has
    parallel: int
    loaded_at: float = field(default_factory=time.time)
    embedder: Any = None
    governor: ThreadGovernor | None = None
    template_text: str = ""
    requested: LoadSettings | None = None  # as asked: what is unset there was chosen here

    def __post_init__(self) -> None:
        self.vocab = self.weights.vocab
        self.n_vocab = int(self.weights.n_vocab())
        self.memory = llama_cpp.llama_get_memory(self.context.ctx)
        self.n_swa = int(llama_cpp.llama_model_n_swa(self.weights.model))

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return list(self.weights.tokenize(text.encode("utf-8"), add_bos=add_bos,
                                          special=True))

    def piece(self, token: int) -> bytes:
        return piece_of(self.vocab, token)

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()
            self.embedder = None
        self.context.close()
        self.weights.close()


class ModelRunner:
    """The loaded model and the scheduler that runs every job on it."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.adapters = AdapterSet(_log_reason, _LOG_LINES.clear)
        self.embedders = Embedders(_log_reason, _LOG_LINES.clear)  # beside the chat model
        self.scheduler = Scheduler(self)

    # -- queue (any thread) ------------------------------------------------------------------
    @property
    def queue_length(self) -> int:
        return self.scheduler.queue_length

    @property
    def last_generation(self) -> GenerationResult | None:
        return self.scheduler.last_generation

    def submit(self, work: Callable[[Job], Any], loop: asyncio.AbstractEventLoop, *,
               exclusive: bool = True) -> Job:
        """Run *work* on the model thread; *exclusive* work waits until every slot is idle."""
        return self.scheduler.submit(Job(work, loop, exclusive=exclusive))

    def submit_generation(self, prepare: Callable[[Job], Prepared],
                          loop: asyncio.AbstractEventLoop) -> Job:
        """Queue a reply; *prepare* makes its prompt once the reply reaches the head."""
        return self.scheduler.submit(Job(None, loop, prepare=prepare))

    def stop(self) -> None:
        self.scheduler.stop()

    @staticmethod
    def log_reason() -> str:
        return _log_reason()

    # -- loading (model thread only) ------------------------------------------------------------
    def load(self, model_id: str, path: Path, settings: LoadSettings) -> LoadedModel:
        try:
            info = read_gguf(path)
        except GGUFError as exc:
            raise LoadError(str(exc)) from exc
        if info.file_type != "model":
            raise LoadError(f"{path.name} is a {info.file_type} file (a LoRA adapter?), "
                            "not a model. Load a model, then add the adapter to it.")
        if info.kind == EMBEDDING:
            raise not_a_chat_model(model_id)
        n_ctx = settings.n_ctx or default_context(info)
        if n_ctx < 16:
            raise LoadError(f"A context length of {n_ctx} tokens is too short.")
        free = available_memory()
        if free is not None and self.model is not None:
            free += estimate_model_memory(self.model.info, self.model.n_ctx,
                                          parallel=self.model.parallel).total

        def estimate(slots: int) -> MemoryEstimate:
            return estimate_model_memory(info, n_ctx, parallel=slots)

        parallel = choose_parallel(estimate, settings.parallel, free, engine_running=True)
        need = estimate(parallel)
        if free is not None and need.total > free:
            slots = "" if parallel == 1 else f" for each of {parallel} parallel replies"
            raise LoadError(
                f"{info.name or path.name} with a context of {n_ctx:,} tokens{slots} needs "
                f"about {need.total / GiB:.1f} GB of memory ({need.weights / GiB:.1f} GB "
                f"weights, {need.kv_cache / GiB:.1f} GB context cache), but only "
                f"{free / GiB:.1f} GB is available. Choose a shorter context, fewer "
                "parallel replies or a smaller model.",
                code="model_too_large")
        previous = self.model
        kept_adapters = self.adapters.snapshot()
        self.unload()
        threads = settings.n_threads or default_threads()
        _LOG_LINES.clear()
        try:
            weights, context = self._open(path, n_ctx, parallel, threads, settings)
        except (ValueError, RuntimeError, OSError) as exc:
            reason = _log_reason() or str(exc)
            message = f"llama.cpp could not load {path.name}: {reason}"
            if previous is not None:
                try:
                    self.load(previous.id, previous.path,
                              previous.requested or previous.settings)
                    self.adapters.restore(self.model, kept_adapters)
                    message += f" {previous.id} is loaded again."
                except LoadError:
                    message += f" {previous.id} could not be loaded again either."
            raise LoadError(message) from exc
        template, source = settings.chat_template, "override"
        if not template:
            template, source = info.chat_template, "model"
        if not template:
            template, source = FALLBACK_TEMPLATE, "fallback"
        try:
            formatter = self._formatter(weights, template)
        except Exception as exc:
            context.close()
            weights.close()
            raise LoadError(f"The chat template does not parse: {exc}",
                            code="invalid_chat_template") from exc
        resolved = LoadSettings(n_ctx=n_ctx, n_threads=threads, n_batch=settings.n_batch,
                                n_gpu_layers=settings.n_gpu_layers,
                                chat_template=settings.chat_template, parallel=parallel)
        self.model = LoadedModel(model_id, path, info, resolved, weights, context, formatter,
                                 source, n_ctx=n_ctx, parallel=parallel,
                                 governor=ThreadGovernor(threads,
                                                         adaptive=settings.n_threads is None),
                                 template_text=template, requested=settings)
        self.scheduler.reset_slots(self.model)
        # Adapters that fit the new model (the same one with other settings) come back.
        self.adapters.restore(self.model, kept_adapters)
        return self.model

    @staticmethod
    def _open(path: Path, n_ctx: int, parallel: int, threads: int,
              settings: LoadSettings) -> tuple[Any, Any]:
        """The weights and a context of *parallel* sequences with a cache of their own each."""
        model_params = amx.model_params()
        model_params.n_gpu_layers = settings.n_gpu_layers
        weights = internals.LlamaModel(path_model=str(path), params=model_params, verbose=False)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * parallel
        params.n_seq_max = parallel
        params.kv_unified = False  # one slot's tokens never change another's numbers
        params.n_batch = max(settings.n_batch, parallel)
        params.n_ubatch = params.n_batch  # every slot's next token fits in one micro-batch
        params.n_threads = threads
        params.n_threads_batch = threads
        params.no_perf = True
        try:
            context = internals.LlamaContext(model=weights, params=params, verbose=False)
        except ValueError:
            weights.close()
            raise
        return weights, context

    @staticmethod
    def _formatter(weights: Any, template: str) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def text_of(token: int) -> str:
            if token == -1:
                return ""
            return weights.token_get_text(token)

        return Jinja2ChatFormatter(template=template, eos_token=text_of(weights.token_eos()),
                                   bos_token=text_of(weights.token_bos()))

    def unload(self) -> None:
        model, self.model = self.model, None
        self.scheduler.reset_slots(None)
        self.adapters.release(model)  # adapters must be freed before their model
        if model is not None:
            model.close()

    # -- prompts (model thread only) -------------------------------------------------------------
    def require_model(self) -> LoadedModel:
        if self.model is None:
            raise APIError(503, "No model is loaded.", type="server_error",
                           code="model_not_loaded")
        return self.model

    def chat_prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        model = self.require_model()
        try:
            rendered = model.formatter(messages=messages)
        except Exception as exc:  # templates raise their own errors for bad conversations
            raise APIError(400, f"The model's chat template rejected these messages: {exc}",
                           param="messages") from exc
        return self.nonempty(model.tokenize(rendered.prompt,
                                             add_bos=not rendered.added_special))

    def text_prompt(self, prompt: str) -> list[int]:
        model = self.require_model()
        return self.nonempty(model.tokenize(prompt, add_bos=True))

    def nonempty(self, tokens: list[int]) -> list[int]:
        """An empty prompt starts from the model's first token, as a text does."""
        if tokens:
            return tokens
        model = self.require_model()
        for start in (model.weights.token_bos(), model.weights.token_eos()):
            if start >= 0:
                return [start]
        raise APIError(400, "The prompt is empty and this model has no token to begin with: "
                       "send some text.", param="prompt", code="empty_prompt")

    def check_fits(self, tokens: list[int]) -> None:
        """Refuse a prompt that leaves no room in its slot for a reply."""
        n_ctx = self.require_model().n_ctx
        if len(tokens) >= n_ctx:
            raise ContextLengthExceeded(len(tokens), n_ctx)

    # -- embeddings (model thread only) -----------------------------------------------------------
    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Mean-pooled, normalised embeddings from a second context on the same weights."""
        model = self.require_model()
        if model.embedder is None:
            try:
                model.embedder = llama_cpp.Llama(
                    model_path=str(model.path), embedding=True, n_ctx=512, n_batch=512,
                    n_ubatch=512, n_threads=model.settings.n_threads,
                    pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    n_gpu_layers=model.settings.n_gpu_layers, verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise APIError(500, f"Cannot make embeddings with this model: {exc}",
                               type="server_error") from exc
        vectors, total = model.embedder.embed(list(texts), normalize=True, truncate=True,
                                              return_count=True)
        return [list(v) for v in vectors], int(total)


def not_a_chat_model(model_id: str) -> LoadError:
    """The error for a chat (or a load for chatting) that names an embedding model."""
    return LoadError(f"{model_id} is an embedding model; it cannot chat. It makes embeddings "
                     "(POST /v1/embeddings with this model); choose a chat model to chat.",
                     code="not_a_chat_model")


def native_abort(message: str) -> None:
    """Stop the process in native code the way a failed GGML_ASSERT does (ggml_abort: the
    message and a backtrace on stderr, then abort), to check that the app survives it."""
    import glob

    folder = Path(llama_cpp.__file__).parent / "lib"
    names = sorted(glob.glob(str(folder / "*ggml-base*")))
    if not names:
        raise APIError(500, "ggml's library was not found.", type="server_error")
    ggml = ctypes.CDLL(names[0])
    ggml.ggml_abort.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
    ggml.ggml_abort(b"desktop/engine/runner.py", 1, b"%s", message.encode())
