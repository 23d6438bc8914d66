"""How much memory and time a training run will take, worked out before it starts.

The trainer unpacks the GGUF weights to float32 (4 bytes a parameter, whatever the file's
quantization), keeps what the backward pass needs for every token of a batch, and a row of
logits over the whole vocabulary per token. Speed is bound by the matrix products: forward and
backward through the frozen weights take about 4 floating-point operations per parameter per
token. The constants are calibrated on the starter model and Gemma 3 270M on a 2-core x86-64
Xeon with AVX-512 (docs/performance.md, "Training"), where they came out 7-9% above the
measured peak memory and 1.5-2x above the measured time per step, mostly because the token
counts, guessed from characters, err high (a laptop without AVX-512 is slower, which the
margin covers in part). They say "about", not "exactly".
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop.core.gguf_info import GGUFInfo
from desktop.core.memory import MiB, available_memory
from desktop.train.data import DataSet
from desktop.train.settings import TrainSettings

#: The trainer with torch, transformers and peft imported, before any model.
RUNTIME = 450 * MiB
#: While loading, the unpacked state dict exists beside the model's own tensors for a while.
LOAD_FACTOR = 1.5
#: Bytes kept for the backward pass per token per layer, per unit of the hidden width (the
#: inputs of the norms, projections, activations and the MLP's wider middle), float32.
ACTIVATION_BYTES_PER_WIDTH = 4 * 24
#: Copies of the logits (float32) alive at once per token: the logits and their gradient.
LOGIT_COPIES = 2
#: Floating-point operations one CPU thread sustains in the trainer's matrix products (90 to
#: 105 billion a second measured with AVX-512), and how threads add up: n threads go about
#: n ** THREAD_SCALING times as fast (1.6x for two, measured).
FLOPS_PER_THREAD = 80e9
THREAD_SCALING = 0.7
#: Chat-template tokens around each turn, and characters per token of ordinary text.
TEMPLATE_TOKENS_PER_TURN = 8
CHARS_PER_TOKEN = 4.0
#: A free-memory share above which the run is refused: the rest of the computer needs some.
SAFE_SHARE = 0.9


@dataclass(frozen=True)
class TrainEstimate:
    """What a run should need. ``memory`` is the trainer's peak resident memory in bytes."""

    memory: int
    weights: int
    activations: int
    available: int | None
    tokens_per_step: int
    seconds_per_step: float
    total_steps: int
    load_seconds: float
    threads: int

    @property
    def total_seconds(self) -> float:
        return self.load_seconds + self.seconds_per_step * self.total_steps

    @property
    def fits(self) -> bool:
        """False only when the free memory is known and too small."""
        return self.available is None or self.memory <= self.available * SAFE_SHARE

    def refusal(self) -> str | None:
        """Why the run should not start (it would not fit in memory), or None."""
        if self.fits:
            return None
        return (f"Training this would need about {_size(self.memory)} of memory, but "
                f"{_size(self.available or 0)} is free now. Close other programs (a loaded "
                "chat model too), lower the maximum length or the batch size, or choose a "
                "smaller model.")

    def message(self) -> str:
        """One sentence for the window and the terminal."""
        free = (f"{_size(self.available)} free" if self.available is not None
                else "free memory unknown")
        return (f"About {_size(self.memory)} of memory ({free}); about "
                f"{_duration(self.seconds_per_step)} a step with {self.threads} "
                f"thread{'s' * (self.threads != 1)}, {self.total_steps} steps: about "
                f"{_duration(self.total_seconds)} in all, loading included.")


def estimate_training(settings: TrainSettings, info: GGUFInfo, data: DataSet | None = None,
                      *, available: int | None = None, threads: int | None = None
                      ) -> TrainEstimate:
    """Estimate a run of *settings* on the model *info* with the examples of *data*.

    Without *data* the batches are taken as full (``max_length`` tokens each); *available*
    defaults to the memory free now and *threads* to the settings' (or one per core).
    """
    from desktop.core.cpu import default_threads

    threads = threads or settings.threads or default_threads()
    width = info.embedding_length or 1024
    layers = info.block_count or 24
    vocab = info.vocab_size or 32_000
    params = info.parameter_count
    weights = params * 4
    mean, longest = _tokens_per_example(settings, data)
    tokens = settings.batch_size * mean
    # The peak comes with a batch of the longest examples (a batch is padded to its longest).
    activations = settings.batch_size * longest * (layers * width * ACTIVATION_BYTES_PER_WIDTH
                                                   + vocab * 4 * LOGIT_COPIES)
    lora = _lora_parameters(settings, width, layers) * 4 * 4  # weights, grads, two moments
    memory = RUNTIME + int(weights * LOAD_FACTOR) + activations + lora
    if available is None:
        available = available_memory()
    train_examples = len(data.split(settings.held_out, settings.seed)[0]) if data else 0
    total = settings.total_steps(train_examples) if data or settings.steps else 0
    seconds = 4 * params * tokens / (FLOPS_PER_THREAD * threads ** THREAD_SCALING)
    load = 10 + 30 * info.size_bytes / 1024**3 + 3e-5 * vocab
    return TrainEstimate(memory=memory, weights=weights, activations=activations,
                         available=available, tokens_per_step=tokens,
                         seconds_per_step=seconds, total_steps=total, load_seconds=load,
                         threads=threads)


def _tokens_per_example(settings: TrainSettings, data: DataSet | None) -> tuple[int, int]:
    """(mean, longest) tokens of an example, guessed from its characters (no tokenizer here),
    at most the maximum length; both the maximum length without data."""
    if not data or not data.examples:
        return settings.max_length, settings.max_length
    counts = [sum(len(t.content) / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_TURN for t in e.turns)
              for e in data.examples]
    mean = sum(counts) / len(counts)
    return (max(1, min(settings.max_length, int(mean))),
            max(1, min(settings.max_length, int(max(counts)))))


def _lora_parameters(settings: TrainSettings, width: int, layers: int) -> int:
    # Each adapted projection adds rank x (inputs + outputs); taking the width for both is
    # close for attention and low for the MLP's wider side, which the small total forgives.
    return layers * len(settings.targets) * settings.rank * 2 * width


def _size(value: int) -> str:
    if value < 1024**3:
        return f"{value / MiB:,.0f} MB"
    return f"{value / 1024**3:.1f} GB"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"
