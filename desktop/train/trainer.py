"""The training run inside the worker: LoRA on the base model, a plain torch loop, checkpoints.

One step takes a batch of examples (padded to the longest), the loss on their answers, a
backward pass and an AdamW update of the LoRA weights; the base weights stay frozen. The
batches come from a shuffle fixed by the seed and the epoch, and the learning rate is a
function of the step, so a run resumed from a checkpoint (adapter, optimizer moments, step,
torch's random state) takes the same steps as one that was never interrupted.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop.train import TrainError, import_extra
from desktop.train.data import MIN_EXAMPLES
from desktop.train.events import (
    Cancelled,
    Checkpoint,
    Done,
    Event,
    HeldOut,
    Progress,
    Started,
    Status,
)
from desktop.train.store import ADAPTER_FOLDER, CHECKPOINT_FILE, CHECKPOINT_INFO, JobFolder
from desktop.train.tokens import IGNORE, Encoded

CHECKPOINT_VERSION = 1
#: The final loss is the mean of this many last steps (one step's loss is noisy).
FINAL_WINDOW = 5
#: Steps the pace (and so the time left) is averaged over.
PACE_WINDOW = 10
#: The learning rate decays linearly to this share of itself by the last step.
FINAL_LR_SHARE = 0.1


def batch_indices(count: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Which of *count* training examples make up *step* (1-based): each epoch is a shuffle
    fixed by the seed and the epoch, so a resumed run takes the same batches as one that was
    never interrupted."""
    per_epoch = max(1, math.ceil(count / batch_size))
    epoch, position = divmod(step - 1, per_epoch)
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order[position * batch_size:(position + 1) * batch_size]


class Control:
    """What the parent asked for: checked between steps (see desktop.train.worker)."""

    @property
    def cancelled(self) -> bool:
        return False

    def wait_if_paused(self, on_pause: Callable[[], None], on_resume: Callable[[], None]
                       ) -> None:
        """Block while paused, saying so through the two callbacks."""


class Run:
    """One run of a job, from loading the model to the adapter in the library."""

    def __init__(self, job: JobFolder, emit: Callable[[Event], None], control: Control) -> None:
        self.job = job
        self.emit = emit
        self.control = control
        self.settings = job.settings()
        self.step = 0
        self.elapsed = 0.0
        self.losses: list[float] = []
        self.held_out_loss: float | None = None
        self._last_checkpoint = -1

    # -- setting up ----------------------------------------------------------------------------
    def run(self) -> Event:
        """Train to the end (or until cancelled) and return the final event."""
        from desktop.core.cpu import default_threads
        from desktop.train.loading import load_base

        torch = import_extra("torch")
        settings = self.settings
        threads = settings.threads or default_threads()
        torch.set_num_threads(threads)
        base = Path(settings.base_model)
        if not base.is_file():
            raise TrainError(f"The base model {base} is no longer there.")
        self.emit(Status("loading", f"Loading {base.name} (its weights are unpacked for "
                                    "training; this takes a little while)"))
        model, tokenizer = load_base(base)
        if self.control.cancelled:
            return self._cancelled()
        self.emit(Status("tokenizing", "Laying out the examples with the chat template"))
        train, held, skipped = self._encode(tokenizer)
        self.pad_id = int(tokenizer.pad_token_id)
        torch.manual_seed(settings.seed)  # LoRA's A starts random: the same for the same seed
        self.model = self._add_lora(model, base)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate,
                                           weight_decay=0.0)
        self._restore()
        self.steps_per_epoch = max(1, math.ceil(len(train) / settings.batch_size))
        self.total = settings.total_steps(len(train))
        self.emit(Started(total_steps=self.total, steps_per_epoch=self.steps_per_epoch,
                          train_examples=len(train), held_out_examples=len(held),
                          start_step=self.step,
                          trainable_parameters=sum(p.numel() for p in trainable),
                          threads=threads, skipped=tuple(p.to_dict() for p in skipped)))
        return self._loop(train, held)

    def _encode(self, tokenizer: Any) -> tuple[list[Encoded], list[Encoded], list[Any]]:
        from desktop.train.tokens import encode_all

        settings = self.settings
        data = self.job.data()
        train_examples, held_examples = data.split(settings.held_out, settings.seed)
        train, skipped = encode_all(tokenizer, train_examples, settings.max_length)
        held, skipped_held = encode_all(tokenizer, held_examples, settings.max_length)
        skipped = sorted(skipped + skipped_held, key=lambda p: p.line)
        if len(train) + len(held) < MIN_EXAMPLES or not train:
            raise TrainError(f"Only {len(train) + len(held)} examples fit in "
                             f"{settings.max_length} tokens; training needs at least "
                             f"{MIN_EXAMPLES}. Raise the maximum length, or shorten the "
                             "examples.")
        return train, held, skipped

    def _add_lora(self, model: Any, base: Path) -> Any:
        peft = import_extra("peft")
        from desktop.train.loading import linear_module_names

        settings = self.settings
        available = linear_module_names(model)
        unknown = [t for t in settings.targets if t not in available]
        if unknown:
            raise TrainError(f"This model has no module called {', '.join(unknown)}. Its "
                             f"linear layers are: {', '.join(available)}.")
        config = peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                            lora_dropout=settings.dropout, target_modules=list(settings.targets),
                            bias="none", task_type="CAUSAL_LM")
        peft_model = peft.get_peft_model(model, config)
        # What the converted adapter names as its base (the PEFT default is a folder path).
        peft_model.peft_config["default"].base_model_name_or_path = base.stem
        return peft_model

    # -- checkpoints ---------------------------------------------------------------------------
    def _trainable_state(self) -> dict[str, Any]:
        return {name: p.detach().clone() for name, p in self.model.named_parameters()
                if p.requires_grad}

    def _save_checkpoint(self) -> None:
        torch = import_extra("torch")
        state = {"version": CHECKPOINT_VERSION, "step": self.step, "elapsed": self.elapsed,
                 "losses": self.losses[-FINAL_WINDOW:], "held_out_loss": self.held_out_loss,
                 "adapter": self._trainable_state(), "optimizer": self.optimizer.state_dict(),
                 "rng": torch.get_rng_state()}
        target = self.job.file(CHECKPOINT_FILE)
        partial = target.with_name(f".{target.name}.part")
        with partial.open("wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
        self.job.write_checkpoint_info(self.step)
        self._last_checkpoint = self.step
        self.emit(Checkpoint(self.step))

    def _restore(self) -> None:
        torch = import_extra("torch")
        path = self.job.file(CHECKPOINT_FILE)
        if not path.is_file():
            return
        try:
            state = torch.load(path, weights_only=True)
        except Exception as exc:  # any damage reads as one clear sentence
            raise TrainError(f"The checkpoint {path} cannot be read ({exc}); start the "
                             "training over.") from exc
        adapter = state.get("adapter") or {}
        mine = self._trainable_state()
        if state.get("version") != CHECKPOINT_VERSION or set(adapter) != set(mine):
            raise TrainError("The checkpoint was made with other settings or another "
                             "version of NoMoat; start the training over.")
        self.model.load_state_dict(adapter, strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed") or 0.0)
        self.losses = [float(v) for v in state.get("losses") or []]
        held = state.get("held_out_loss")
        self.held_out_loss = float(held) if held is not None else None
        self._last_checkpoint = self.step

    # -- the loop ------------------------------------------------------------------------------
    def _batch(self, train: list[Encoded], step: int) -> list[Encoded]:
        return [train[i] for i in batch_indices(len(train), self.settings.batch_size,
                                                self.settings.seed, step)]

    def _tensors(self, batch: list[Encoded]) -> dict[str, Any]:
        torch = import_extra("torch")
        width = max(len(e.input_ids) for e in batch)
        pad = [width - len(e.input_ids) for e in batch]
        ids = [e.input_ids + [self.pad_id] * n for e, n in zip(batch, pad)]
        labels = [e.labels + [IGNORE] * n for e, n in zip(batch, pad)]
        mask = [[1] * len(e.input_ids) + [0] * n for e, n in zip(batch, pad)]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                "labels": torch.tensor(labels)}

    def _learning_rate(self, step: int) -> float:
        settings = self.settings
        warmup = min(settings.warmup_steps, max(0, self.total - 1))
        if step <= warmup:
            return settings.learning_rate * step / (warmup + 1)
        span = max(1, self.total - warmup)
        done = (step - warmup) / span
        return settings.learning_rate * (1 - (1 - FINAL_LR_SHARE) * done)

    def _held_out(self, held: list[Encoded]) -> float | None:
        torch = import_extra("torch")
        if not held:
            return None
        self.model.eval()
        total = count = 0.0
        with torch.no_grad():
            for start in range(0, len(held), self.settings.batch_size):
                batch = held[start:start + self.settings.batch_size]
                tensors = self._tensors(batch)
                tokens = float((tensors["labels"][:, 1:] != IGNORE).sum())
                total += float(self.model(**tensors).loss) * tokens
                count += tokens
        self.model.train()
        return total / count if count else None

    def _loop(self, train: list[Encoded], held: list[Encoded]) -> Event:
        settings = self.settings
        pace: deque[float] = deque(maxlen=PACE_WINDOW)
        self.model.train()
        while self.step < self.total:
            self.control.wait_if_paused(lambda: self._paused(True), lambda: self._paused(False))
            if self.control.cancelled:
                return self._cancelled()
            began = time.perf_counter()
            step = self.step + 1
            rate = self._learning_rate(step)
            for group in self.optimizer.param_groups:
                group["lr"] = rate
            loss = self.model(**self._tensors(self._batch(train, step))).loss
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainError(f"The loss became {value} at step {step}: the learning rate "
                                 f"({settings.learning_rate:g}) is too high for this model. "
                                 "Lower it and start over.")
            took = time.perf_counter() - began
            pace.append(took)
            self.step = step
            self.elapsed += took
            self.losses = (self.losses + [value])[-FINAL_WINDOW:]
            mean = sum(pace) / len(pace)
            self.emit(Progress(step=step, total_steps=self.total,
                               epoch=round(step / self.steps_per_epoch, 4), loss=value,
                               learning_rate=rate, elapsed_s=round(self.elapsed, 3),
                               eta_s=round(mean * (self.total - step), 1),
                               seconds_per_step=round(mean, 4)))
            if held and (step % settings.eval_every == 0 or step == self.total):
                self.held_out_loss = self._held_out(held)
                if self.held_out_loss is not None:
                    self.emit(HeldOut(step, self.held_out_loss))
            if step % settings.checkpoint_every == 0 and step < self.total:
                self._save_checkpoint()
        return self._finish(len(train), len(held))

    def _paused(self, paused: bool) -> None:
        from desktop.train.events import Paused, Resumed

        self.emit(Paused(self.step) if paused else Resumed(self.step))

    def _cancelled(self) -> Event:
        if not hasattr(self, "optimizer"):  # stopped while loading: the checkpoint stands
            return Cancelled(self.job.checkpoint_step() or 0)
        if self.step > self._last_checkpoint:
            self._save_checkpoint()  # nothing learned so far is lost
        return Cancelled(self.step)

    # -- the end -------------------------------------------------------------------------------
    def _finish(self, train_count: int, held_count: int) -> Event:
        from desktop.core.adapters import AdapterLibrary

        settings = self.settings
        self.emit(Status("saving", "Saving the adapter"))
        folder = self.job.file(ADAPTER_FOLDER)
        self.model.save_pretrained(str(folder), safe_serialization=True,
                                   save_embedding_layers=False)
        self.emit(Status("converting", "Converting the adapter to GGUF and adding it to the "
                                       "library"))
        final = sum(self.losses) / len(self.losses) if self.losses else None
        meta = self.job.meta()
        training = {"job": self.job.path.name, "base_model_path": settings.base_model,
                    "data_set": meta.get("data_set"), "examples": meta.get("examples"),
                    "train_examples": train_count, "held_out_examples": held_count,
                    "steps": self.step, "epochs": round(self.step / self.steps_per_epoch, 3),
                    "final_loss": final, "held_out_loss": self.held_out_loss,
                    "rank": settings.rank, "alpha": settings.alpha,
                    "targets": list(settings.targets), "learning_rate": settings.learning_rate,
                    "max_length": settings.max_length, "seconds": round(self.elapsed, 1),
                    "trained_at": time.time()}
        library = AdapterLibrary()
        existing = library.find(settings.name)
        if existing is not None and (existing.training or {}).get("job") == self.job.path.name:
            added = existing  # added before a crash cut the run short of saying so
        else:
            added = library.add_file(folder, name=settings.name, base_model=settings.base_model,
                                     origin=f"trained on {meta.get('data_set')}",
                                     training=training)
        for name in (CHECKPOINT_FILE, CHECKPOINT_INFO):
            self.job.file(name).unlink(missing_ok=True)
        return Done(adapter=added.name, path=str(added.path), steps=self.step,
                    final_loss=final, held_out_loss=self.held_out_loss,
                    elapsed_s=round(self.elapsed, 1), peak_memory=peak_memory())


def peak_memory() -> int | None:
    """This process's peak resident memory in bytes, where the system tells."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
