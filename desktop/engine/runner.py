"""The one thread that owns the model.

Every request that touches llama.cpp becomes a job on this thread's queue, so jobs run one at
a time in arrival order. A job reports back to the asyncio loop through its own event queue;
cancelling a job sets a flag that generation checks between tokens.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp

from desktop.core.cpu import default_threads
from desktop.core.gguf_info import GGUFError, GGUFInfo, read_gguf
from desktop.core.memory import available_memory, estimate_model_memory
from desktop.engine.adapters import Active, AdapterSet
from desktop.engine.errors import APIError, ContextLengthExceeded, LoadError
from desktop.engine.textstream import TextStream

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
    """How a model is loaded. None means: pick a sensible default for this model."""

    n_ctx: int | None = None
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = 0
    chat_template: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass
class LoadedModel:
    id: str
    path: Path
    info: GGUFInfo
    settings: LoadSettings
    llm: Any
    formatter: Any
    template_source: str  # "model", "override" or "fallback"
    loaded_at: float = field(default_factory=time.time)
    embedder: Any = None


@dataclass
class GenerationResult:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    seconds_to_first_token: float | None
    tokens_per_second: float | None


class Job:
    """One unit of work for the model thread, with a queue of events for the asyncio side."""

    def __init__(self, work: Callable[[Job], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.loop = loop
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.cancelled = threading.Event()

    def emit(self, kind: str, payload: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))
        except RuntimeError:  # the loop has closed: nobody is listening any more
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()


class ModelRunner:
    """Owns the llama.cpp model on one thread; everything else talks to it through jobs."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self.model: LoadedModel | None = None
        self.last_generation: GenerationResult | None = None
        self.adapters = AdapterSet(_log_reason, _LOG_LINES.clear)
        self._thread = threading.Thread(target=self._run, name="model-runner", daemon=True)
        self._thread.start()

    # -- queue -------------------------------------------------------------------------------
    @property
    def queue_length(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, work: Callable[[Job], Any], loop: asyncio.AbstractEventLoop) -> Job:
        job = Job(work, loop)
        with self._lock:
            self._pending += 1
        self._jobs.put(job)
        return job

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                if job.cancelled.is_set():
                    continue
                result = job.work(job)
                job.emit("result", result)
            except APIError as exc:
                job.emit("error", exc)
            except Exception as exc:  # noqa: BLE001 - keep the thread alive for the next job
                job.emit("error", APIError(500, f"The engine failed: {exc}",
                                           type="server_error", code="engine_error"))
            finally:
                with self._lock:
                    self._pending -= 1
                job.emit("end")

    # -- loading (model thread only) ------------------------------------------------------------
    def load(self, model_id: str, path: Path, settings: LoadSettings) -> LoadedModel:
        try:
            info = read_gguf(path)
        except GGUFError as exc:
            raise LoadError(str(exc)) from exc
        if info.file_type != "model":
            raise LoadError(f"{path.name} is a {info.file_type} file (a LoRA adapter?), "
                            "not a model. Load a model, then add the adapter to it.")
        n_ctx = settings.n_ctx or min(4096, info.context_length or 4096)
        if n_ctx < 16:
            raise LoadError(f"A context length of {n_ctx} tokens is too short.")
        need = estimate_model_memory(info, n_ctx)
        free = available_memory()
        if free is not None:
            if self.model is not None:
                free += estimate_model_memory(self.model.info, self.model.llm.n_ctx()).total
            if need.total > free:
                raise LoadError(
                    f"{info.name or path.name} with a context of {n_ctx:,} tokens needs about "
                    f"{need.total / GiB:.1f} GB of memory ({need.weights / GiB:.1f} GB weights, "
                    f"{need.kv_cache / GiB:.1f} GB context cache), but only {free / GiB:.1f} GB "
                    "is available. Choose a shorter context or a smaller model.",
                    code="model_too_large")
        previous = self.model
        kept_adapters = self.adapters.snapshot()
        self.unload()
        threads = settings.n_threads or default_threads()
        _LOG_LINES.clear()
        try:
            llm = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_batch=settings.n_batch,
                n_ubatch=settings.n_batch, n_threads=threads, n_threads_batch=threads,
                n_gpu_layers=settings.n_gpu_layers, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            reason = _log_reason() or str(exc)
            message = f"llama.cpp could not load {path.name}: {reason}"
            if previous is not None:
                try:
                    self.load(previous.id, previous.path, previous.settings)
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
            formatter = self._formatter(llm, template)
        except Exception as exc:
            llm.close()
            raise LoadError(f"The chat template does not parse: {exc}",
                            code="invalid_chat_template") from exc
        resolved = LoadSettings(n_ctx=llm.n_ctx(), n_threads=threads, n_batch=settings.n_batch,
                                n_gpu_layers=settings.n_gpu_layers,
                                chat_template=settings.chat_template)
        self.model = LoadedModel(model_id, path, info, resolved, llm, formatter, source)
        # Adapters that fit the new model (the same one with other settings) come back.
        self.adapters.restore(self.model, kept_adapters)
        return self.model

    @staticmethod
    def _formatter(llm: Any, template: str) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def text_of(token: int) -> str:
            if token == -1:
                return ""
            return llm._model.token_get_text(token)

        return Jinja2ChatFormatter(template=template, eos_token=text_of(llm.token_eos()),
                                   bos_token=text_of(llm.token_bos()))

    def unload(self) -> None:
        model, self.model = self.model, None
        self.adapters.release(model)  # adapters must be freed before their model
        if model is not None:
            if model.embedder is not None:
                model.embedder.close()
            model.llm.close()

    # -- generation (model thread only) --------------------------------------------------------
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
        return model.llm.tokenize(rendered.prompt.encode("utf-8"),
                                  add_bos=not rendered.added_special, special=True)

    def text_prompt(self, prompt: str) -> list[int]:
        model = self.require_model()
        return model.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def check_fits(self, tokens: list[int]) -> None:
        """Refuse a prompt that leaves no room in the context for a reply."""
        n_ctx = self.require_model().llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise ContextLengthExceeded(len(tokens), n_ctx)

    def generate(self, job: Job, tokens: list[int], sampling: Sampling,
                 adapters: Active | None = None) -> GenerationResult:
        """Generate on the model thread, emitting ("text", str) events as text is ready.

        *adapters* is this reply's adapter stack; None means the engine's own stack. Applying
        a different stack than the last reply's drops the prompt cache first.
        """
        self.check_fits(tokens)
        model = self.require_model()
        self.adapters.apply(model, self.adapters.stack_active() if adapters is None
                            else adapters)
        llm = model.llm
        n_ctx = llm.n_ctx()
        room = n_ctx - len(tokens)
        limit = min(sampling.max_tokens or room, room)
        cached = 0
        for a, b in zip(llm._input_ids[: llm.n_tokens], tokens):
            if a != b:
                break
            cached += 1
        llm.set_seed(sampling.seed if sampling.seed is not None else random.randrange(2**31))
        vocab = llm._model.vocab
        text = TextStream(sampling.stop)
        started = time.perf_counter()
        first_at = last_at = None
        produced = 0
        finish = "length"
        stream = llm.generate(
            tokens, top_k=sampling.top_k, top_p=sampling.top_p, min_p=sampling.min_p,
            temp=sampling.temperature, repeat_penalty=sampling.repeat_penalty,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty, reset=True)
        try:
            for token in stream:
                now = time.perf_counter()
                if first_at is None:
                    first_at = now
                last_at = now
                if job.cancelled.is_set():
                    finish = "cancelled"
                    break
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                produced += 1
                piece = text.feed(llm.detokenize([token]))
                if piece:
                    job.emit("text", piece)
                if text.stopped:
                    finish = "stop"
                    break
                if produced >= limit:
                    break
        finally:
            stream.close()
        tail = text.flush()
        if tail:
            job.emit("text", tail)
        rate = None
        if first_at is not None and last_at is not None and produced > 1 and last_at > first_at:
            rate = (produced - 1) / (last_at - first_at)
        result = GenerationResult(
            finish_reason=finish, prompt_tokens=len(tokens), completion_tokens=produced,
            cached_tokens=cached,
            seconds_to_first_token=None if first_at is None else first_at - started,
            tokens_per_second=rate)
        self.last_generation = result
        return result

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
