"""Slots and continuous batching: the one thread that calls llama_decode.

The model's context holds N sequences, one per slot, each with a cache of its own
(``kv_unified`` off, so one slot's tokens never change another's numbers). Every step builds one
batch: the next token of each slot that is generating, then chunks of the prompts of slots
that are starting, and decodes it once. A new request takes a free slot at the next step: the
one whose cached tokens share the longest prefix with its prompt, or else one next to the busy
slots; a finished one leaves.

Work that must have the model to itself (loading, unloading, adapters) queues with the
requests, first come first served, and runs once the slots it waits for are idle. Embeddings
use a context of their own and run between steps: an embedding model's work goes a batch at a
time (``Steps``), one batch between two decode steps, so replies keep streaming while a long
list of texts is embedded. Cancelling sets a flag that each step reads, so a stopped request
frees its slot within one step.

The adapter stack is one per context, so only requests with the same stack decode together:
a request with another stack waits at the head of the queue (and everything behind it waits
too, so nobody is passed over for ever) until the slots have finished, then the stack changes.
A slot remembers the stack its cache was made under and only a request with that stack reuses
it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import llama_cpp

from desktop.engine.errors import APIError
from desktop.engine.jobs import GenerationResult, Job, NeedsIdle, Prepared, Steps
from desktop.engine.sampling import GrammarStuck, SamplerChain
from desktop.engine.steering import Steering
from desktop.engine.textstream import TextStream
from desktop.engine.vocab import piece_of

if TYPE_CHECKING:
    from desktop.engine.runner import LoadedModel, ModelRunner

# Prompt tokens decoded in one step while other slots are generating: small enough that a
# long prompt delays their next token by a fraction of a second, not by seconds.
PREFILL_CHUNK = 256
# Cached prompt tokens worth choosing a slot for even when it lies apart from the busy ones.
MIN_REUSE = 16
# How long the idle thread sleeps between looks at a request waiting for cancellation.
IDLE_WAIT_S = 0.05


@dataclass
class Slot:
    """One sequence of the context: its cache, and the request it serves now."""

    index: int
    cached: list[int] = field(default_factory=list)  # tokens whose keys and values it holds
    stack_key: tuple[tuple[int, float], ...] = ()
    used_at: float = 0.0
    job: Job | None = None
    prompt: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # prompt tokens not decoded yet
    next_tokens: list[int] = field(default_factory=list)  # to be decoded in the next step
    chain: SamplerChain | None = None
    steering: Steering | None = None
    visible: frozenset[int] = frozenset()  # control tokens whose text the reply shows
    text: TextStream | None = None
    limit: int = 0
    produced: int = 0
    reused: int = 0
    started_at: float = 0.0
    first_at: float | None = None
    last_at: float | None = None
    batch_index: int = -1  # where this slot's logits are in the step's batch, or -1

    @property
    def busy(self) -> bool:
        return self.job is not None

    def describe(self) -> dict[str, Any]:
        state = "idle"
        if self.job is not None:
            state = "prompt" if self.pending else "generating"
        return {"id": self.index, "state": state, "cached_tokens": len(self.cached),
                "completion_tokens": self.produced if self.job is not None else 0}


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Scheduler:
    """Owns every llama.cpp call of the engine, on one thread."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._waiting: deque[Job] = deque()
        self._pieces: deque[tuple[Job, Steps]] = deque()  # work done a piece at a time
        self._lock = threading.Lock()
        self._queued = 0  # jobs submitted and not yet started (read by status)
        self.slots: list[Slot] = []
        self._batch: Any = None
        self._batch_size = 0
        self._stopping = False
        self.last_generation: GenerationResult | None = None
        self._outbox: list[tuple[Job, str, Any]] | None = None
        self._thread = threading.Thread(target=self._run, name="model-runner", daemon=True)
        self._thread.start()

    # -- any thread ------------------------------------------------------------------------
    def submit(self, job: Job) -> Job:
        with self._lock:
            self._queued += 1
        self._inbox.put(job)
        return job

    def stop(self) -> None:
        self._inbox.put(None)

    @property
    def busy(self) -> bool:
        """Whether any slot is writing a reply (read on the model thread to decide)."""
        return any(s.busy for s in self.slots)

    @property
    def queue_length(self) -> int:
        with self._lock:
            return self._queued

    def describe(self) -> dict[str, Any]:
        slots = list(self.slots)
        return {"total": len(slots), "busy": sum(1 for s in slots if s.busy),
                "queued": self.queue_length, "slots": [s.describe() for s in slots]}

    # -- model thread: slots follow the model ----------------------------------------------
    def reset_slots(self, model: LoadedModel | None) -> None:
        """New empty slots for a newly loaded model (or none); called on the model thread."""
        for slot in self.slots:
            if slot.chain is not None:
                slot.chain.close()
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self.slots = []
        if model is not None:
            self.slots = [Slot(i) for i in range(model.parallel)]
            self._batch_size = max(model.settings.n_batch, model.parallel)
            self._batch = llama_cpp.llama_batch_init(self._batch_size, 0, 1)

    def forget_caches(self, model: LoadedModel) -> None:
        """Drop every idle slot's cache (after the weights under it changed)."""
        for slot in self.slots:
            if not slot.busy:
                self._clear(model, slot)

    # -- model thread: the loop --------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            working = self._pieces or any(s.busy for s in self.slots)
            try:
                block = not working and not self._waiting
                timeout = None if block else (IDLE_WAIT_S if not working else 0)
                self._take(self._inbox.get(timeout=timeout) if timeout != 0 else
                           self._inbox.get_nowait())
            except queue.Empty:
                pass
            while True:  # everything else that arrived meanwhile
                try:
                    self._take(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if self._stopping:
                break
            try:
                self._admit()
                if self._pieces:
                    self._next_piece()
                if any(s.busy for s in self.slots):
                    self._step()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any request
                self._fail_all(exc)
        for _, steps in self._pieces:
            steps.pieces.close()
        self._pieces.clear()
        self.reset_slots(None)

    def _fail_all(self, exc: Exception) -> None:
        """A fault outside any one request: the replies in progress end with the reason, their
        caches are dropped, and the queue goes on."""
        error = APIError(500, f"The engine failed: {exc}", type="server_error",
                         code="engine_error")
        model = self.runner.model
        failed = []
        for slot in self.slots:
            if slot.job is not None:
                failed.append(slot.job)
                self._release(slot)
                if model is not None:
                    self._clear(model, slot)
        if not failed and self._waiting:  # it came from the request at the head: drop it
            failed.append(self._waiting[0])
            self._dequeue(failed[0])
        for job in failed:
            job.emit("error", error)
            job.emit("end")

    def _take(self, job: Job | None) -> None:
        if job is None:
            self._stopping = True
            return
        self._waiting.append(job)

    def _dequeue(self, job: Job) -> None:
        self._waiting.remove(job)
        with self._lock:
            self._queued -= 1

    def _admit(self) -> None:
        """Start what can start, in arrival order; stop at the first that must wait."""
        for job in [j for j in self._waiting if j.cancelled.is_set()]:
            self._dequeue(job)
            job.emit("end")
        # Embeddings have a context of their own: they never wait for a slot.
        for job in [j for j in self._waiting if not j.exclusive and j.prepare is None]:
            self._run_task(job)
        while self._waiting:
            job = self._waiting[0]
            busy = any(s.busy for s in self.slots)
            if job.prepare is None:
                if busy:
                    return
                self._run_task(job)
                if self._waiting and self._waiting[0] is job:
                    return  # it still waits (cannot happen with idle slots, but never spin)
                continue
            if not self._start(job, busy):
                return

    def _run_task(self, job: Job) -> None:
        """Run a job's work and take it off the queue, unless it must wait for idle slots."""
        assert job.work is not None
        try:
            result = job.work(job)
        except NeedsIdle:
            job.exclusive = True  # it keeps its place in the queue and waits there
            return
        except APIError as exc:
            self._dequeue(job)
            job.emit("error", exc)
        except Exception as exc:  # noqa: BLE001 - keep the thread alive for the next job
            self._dequeue(job)
            job.emit("error", APIError(500, f"The engine failed: {exc}", type="server_error",
                                       code="engine_error"))
        else:
            self._dequeue(job)
            if isinstance(result, Steps):
                self._pieces.append((job, result))  # its pieces run between decode steps
                return
            job.emit("result", result)
        job.emit("end")

    def _next_piece(self) -> None:
        """Do one piece of the work at the front, then let the next work have its turn."""
        job, steps = self._pieces.popleft()
        if job.cancelled.is_set():
            steps.pieces.close()
            job.emit("end")
            return
        try:
            next(steps.pieces)
        except StopIteration as done:
            job.emit("result", done.value)
        except APIError as exc:
            job.emit("error", exc)
        except Exception as exc:  # noqa: BLE001 - keep the thread alive for the next job
            job.emit("error", APIError(500, f"The engine failed: {exc}", type="server_error",
                                       code="engine_error"))
        else:
            self._pieces.append((job, steps))
            return
        job.emit("end")

    def _start(self, job: Job, busy: bool) -> bool:
        """Give *job* a slot; False if it has to wait (it stays at the head of the queue)."""
        assert job.prepare is not None
        slot = None
        try:
            if job.prepared is not None and job.prepared.model is not self.runner.model:
                job.prepared = None  # made for a model that has been replaced since
            if job.prepared is None:
                job.prepared = job.prepare(job)
            prepared = job.prepared
            model = self.runner.require_model()
            free = [s for s in self.slots if not s.busy]
            if not free:
                return False
            if busy and prepared.stack_key != self._running_key():
                return False  # another adapter stack: wait until the slots are done
            prepared.apply_stack()
            slot = self._choose(free, prepared)
            self._dequeue(job)
            self._setup(model, slot, job, prepared)
        except NeedsIdle:
            return False
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the others
            if job in self._waiting:
                self._dequeue(job)
            if slot is not None and slot.job is job:
                self._release(slot)
            job.emit("error", exc if isinstance(exc, APIError) else APIError(
                500, f"The engine failed: {exc}", type="server_error", code="engine_error"))
            job.emit("end")
        return True

    def _running_key(self) -> tuple[tuple[int, float], ...]:
        return next(s.stack_key for s in self.slots if s.busy)

    def _choose(self, free: list[Slot], prepared: Prepared) -> Slot:
        """The free slot for *prepared*: the one whose cache shares most with its prompt
        (under the same stack), if that saves real work; otherwise one next to the busy
        slots, leaving the most recently used caches alone.

        Busy slots side by side matter: llama.cpp computes a step over the whole range of
        sequences in it, and four replies in slots 0, 2, 4 and 6 decode at 0.65-0.8x the rate
        of four in slots 0-3 (measured with benchmarks/parallel.py's reference loop)."""
        def shared(slot: Slot) -> int:
            if slot.stack_key != prepared.stack_key or not prepared.reuse_cache:
                return 0
            return min(common_prefix(slot.cached, prepared.tokens), len(prepared.tokens) - 1)

        best = max(free, key=lambda s: (shared(s), -s.used_at))
        if shared(best) >= MIN_REUSE:
            return best
        busy = [s.index for s in self.slots if s.busy]

        def span(slot: Slot) -> int:
            indices = busy + [slot.index]
            return max(indices) - min(indices)

        return min(free, key=lambda s: (span(s), bool(s.cached), s.used_at))

    def _clear(self, model: LoadedModel, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(model.memory, slot.index, -1, -1)
        slot.cached = []

    def _setup(self, model: LoadedModel, slot: Slot, job: Job, prepared: Prepared) -> None:
        tokens = prepared.tokens
        keep = 0
        if slot.stack_key == prepared.stack_key and prepared.reuse_cache:
            # The last prompt token is decoded again, whatever is cached: its logits are needed.
            keep = min(common_prefix(slot.cached, tokens), len(tokens) - 1)
        if keep <= 0 or not self._trim(model, slot, keep):
            self._clear(model, slot)
            keep = 0
        slot.stack_key = prepared.stack_key
        sampling = prepared.sampling
        slot.job = job
        slot.prompt = tokens
        slot.pending = tokens[keep:]
        slot.next_tokens = []
        slot.reused = keep
        slot.chain = SamplerChain(sampling, model.n_vocab)
        slot.chain.accept_prompt(tokens)
        slot.visible = prepared.visible
        slot.steering = Steering(prepared.steer, slot.chain, model.vocab)
        slot.text = TextStream(sampling.stop)
        room = model.n_ctx - len(tokens)
        slot.limit = min(sampling.max_tokens or room, room)
        slot.produced = 0
        slot.started_at = job.queued_at
        slot.first_at = slot.last_at = None
        slot.used_at = time.monotonic()
        job.emit("started", prepared.shown)

    @staticmethod
    def _trim(model: LoadedModel, slot: Slot, keep: int) -> bool:
        """Keep the first *keep* cached tokens of *slot*; False if the cache cannot do that."""
        if not llama_cpp.llama_memory_seq_rm(model.memory, slot.index, keep, -1):
            return False  # a recurrent model's state cannot be cut back
        if model.n_swa > 0:
            # A sliding-window cache may have let go of positions the next token still needs.
            low = llama_cpp.llama_memory_seq_pos_min(model.memory, slot.index)
            if low > max(0, keep - model.n_swa):
                return False
        slot.cached = slot.cached[:keep]
        return True

    # -- model thread: one step ----------------------------------------------------------------
    def _step(self) -> None:
        """One decode step. What it has to tell the requests goes to their event loop in one
        call at the end, rather than one wake-up of the loop per slot."""
        self._outbox = []
        try:
            self._decode_step()
        finally:
            self._flush()

    def _send(self, job: Job, kind: str, payload: Any = None) -> None:
        if self._outbox is None:
            job.emit(kind, payload)
        else:
            self._outbox.append((job, kind, payload))

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox or [], None
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, str, Any]]] = {}
        for item in outbox:
            by_loop.setdefault(item[0].loop, []).append(item)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop has closed: nobody is listening any more
                for job, _, _ in items:
                    job.cancelled.set()

    def _decode_step(self) -> None:
        model = self.runner.model
        active = [s for s in self.slots if s.busy]
        for slot in active:
            if slot.job is not None and slot.job.cancelled.is_set():
                self._finish(slot, "cancelled")
        active = [s for s in active if s.busy]
        if model is None or not active:
            return
        threads = model.governor.check() if model.governor is not None else None
        if threads is not None:  # other programs took cores, or gave them back
            llama_cpp.llama_set_n_threads(model.context.ctx, threads, threads)
        batch = self._batch
        n = 0

        def add(slot: Slot, token: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = len(slot.cached)
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = slot.index
            batch.logits[n] = logits
            slot.cached.append(token)
            if logits:
                slot.batch_index = n
            n += 1

        for slot in active:
            slot.batch_index = -1
        waiting = [s for s in active if s.next_tokens]
        for k, slot in enumerate(waiting):
            # Tokens written for the model (the end of its thinking) can make one slot's turn
            # longer than a token: what does not fit waits for the next step.
            room = self._batch_size - n - (len(waiting) - k - 1)
            take, slot.next_tokens = slot.next_tokens[:room], slot.next_tokens[room:]
            for i, token in enumerate(take):
                add(slot, token, not slot.next_tokens and i == len(take) - 1)
        generating = n > 0
        budget = self._batch_size - n
        if generating:
            budget = min(budget, PREFILL_CHUNK)
        for slot in sorted((s for s in active if s.pending), key=lambda s: s.started_at):
            if budget <= 0:
                break
            chunk, slot.pending = slot.pending[:budget], slot.pending[budget:]
            budget -= len(chunk)
            for i, token in enumerate(chunk):
                add(slot, token, not slot.pending and i == len(chunk) - 1)
        batch.n_tokens = n
        code = llama_cpp.llama_decode(model.context.ctx, batch)
        if code != 0:
            self._decode_failed(model, active, code)
            return
        now = time.perf_counter()
        ctx = model.context.ctx
        for slot in active:
            if slot.batch_index < 0 or slot.chain is None:
                continue
            try:
                token = slot.chain.sample(ctx, slot.batch_index, model.vocab)
            except GrammarStuck:
                self._finish(slot, "stop", _stuck())
                continue
            if slot.chain.top_logprobs is not None and slot.job is not None:
                self._send_logprob(model, slot, slot.chain.logprob(ctx, slot.batch_index,
                                                                   token))
            self._sampled(model, slot, token, now)

    def _send_logprob(self, model: LoadedModel, slot: Slot, entry: Any) -> None:
        assert slot.job is not None
        top = [(model.piece(t), lp) for t, lp in entry.top]
        self._send(slot.job, "logprob", (self._piece(model, slot, entry.token),
                                         entry.logprob, top))

    @staticmethod
    def _piece(model: LoadedModel, slot: Slot, token: int) -> bytes:
        return piece_of(model.vocab, token, special=token in slot.visible)

    def _sampled(self, model: LoadedModel, slot: Slot, token: int, now: float) -> None:
        assert slot.job is not None and slot.text is not None
        if slot.first_at is None:
            slot.first_at = now
        slot.last_at = now
        if slot.job.cancelled.is_set():
            self._finish(slot, "cancelled")
            return
        if llama_cpp.llama_vocab_is_eog(model.vocab, token):
            self._finish(slot, "stop")
            return
        queued = [token]
        while queued:
            token = queued.pop(0)
            slot.produced += 1
            slot.next_tokens.append(token)
            raw = self._piece(model, slot, token)
            piece = slot.text.feed(raw)
            if piece:
                self._send(slot.job, "text", piece)
            if slot.text.stopped:
                self._finish(slot, "stop")
                return
            if slot.produced >= slot.limit:
                self._finish(slot, "length")
                return
            if slot.steering is not None:
                forced = slot.steering.after(raw.decode("utf-8", errors="replace"))
                try:
                    for extra in forced:  # written for the model: its sampler sees them too
                        assert slot.chain is not None
                        slot.chain.accept(extra)
                except GrammarStuck:
                    self._finish(slot, "stop", _stuck())
                    return
                queued.extend(forced)

    def _finish(self, slot: Slot, reason: str, error: APIError | None = None) -> None:
        job, text = slot.job, slot.text
        assert job is not None and text is not None
        tail = text.flush()
        if tail and reason != "cancelled":
            self._send(job, "text", tail)
        if error is not None:
            self._release(slot)
            self._send(job, "error", error)
            self._send(job, "end")
            return
        rate = None
        if (slot.first_at is not None and slot.last_at is not None and slot.produced > 1
                and slot.last_at > slot.first_at):
            rate = (slot.produced - 1) / (slot.last_at - slot.first_at)
        result = GenerationResult(
            finish_reason=reason, prompt_tokens=len(slot.prompt),
            completion_tokens=slot.produced, cached_tokens=slot.reused,
            seconds_to_first_token=(None if slot.first_at is None
                                    else slot.first_at - slot.started_at),
            tokens_per_second=rate, slot=slot.index,
            reasoning_tokens=0 if slot.steering is None else slot.steering.thought)
        self.last_generation = result
        self._release(slot)
        self._send(job, "result", result)
        self._send(job, "end")

    @staticmethod
    def _release(slot: Slot) -> None:
        """Free *slot* for the next request (its cache stays)."""
        if slot.chain is not None:
            slot.chain.close()
        slot.job = slot.chain = slot.text = slot.steering = None
        slot.pending = []
        slot.next_tokens = []
        slot.used_at = time.monotonic()

    def _decode_failed(self, model: LoadedModel, active: list[Slot], code: int) -> None:
        """A step llama.cpp refused: the requests in it fail, their caches are dropped."""
        reason = self.runner.log_reason() or f"llama_decode returned {code}"
        for slot in active:
            job = slot.job
            assert job is not None
            self._release(slot)
            self._clear(model, slot)
            self._send(job, "error", APIError(500, f"llama.cpp could not decode: {reason}",
                                              type="server_error", code="decode_failed"))
            self._send(job, "end")


def _deliver(items: list[tuple[Job, str, Any]]) -> None:
    """On the event loop: hand a step's events to their requests, in order."""
    for job, kind, payload in items:
        job.events.put_nowait((kind, payload))


def _stuck() -> APIError:
    return APIError(500, "The output grammar allowed no token the model could write next.",
                    type="server_error", code="grammar_stuck")
