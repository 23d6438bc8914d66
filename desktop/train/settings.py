"""What a training run is asked to do: the base model, the data, and the knobs.

Two presets cover most uses: ``quick`` (a small adapter on the attention's query and value
projections, a high learning rate, a couple of passes: minutes on a laptop, good for teaching
one behaviour) and ``careful`` (a larger adapter on every projection, a gentler learning
rate, more passes: slower, better for style and knowledge spread over many examples).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from desktop.train import TrainError

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"rank": 8, "alpha": 16.0, "dropout": 0.0, "targets": ("q_proj", "v_proj"),
              "epochs": 2.0, "learning_rate": 1e-3, "max_length": 256},
    "careful": {"rank": 16, "alpha": 32.0, "dropout": 0.05, "targets": ATTENTION + MLP,
                "epochs": 3.0, "learning_rate": 2e-4, "max_length": 512},
}
DEFAULT_PRESET = "quick"


@dataclass(frozen=True)
class TrainSettings:
    """One training run. Exactly one of *epochs* and *steps* says how long it trains.

    *base_model* is the path of an installed GGUF model; *data* the path of the data file,
    or a description of the chats it came from; *name* the adapter's name in the library.
    *threads* 0 means one per physical core. Every *checkpoint_every* steps the run is saved,
    so a crash or a quit loses at most that many; every *eval_every* steps the held-out
    loss is measured (a *held_out* share of the examples is kept back for it).
    """

    base_model: str
    data: str
    name: str
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    epochs: float | None = 2.0
    steps: int | None = None
    learning_rate: float = 1e-3
    batch_size: int = 4
    max_length: int = 256
    threads: int = 0
    checkpoint_every: int = 10
    eval_every: int = 10
    held_out: float = 0.1
    warmup_steps: int = 2
    seed: int = 0
    preset: str | None = DEFAULT_PRESET

    @classmethod
    def from_preset(cls, preset: str, *, base_model: str, data: str, name: str,
                    **overrides: Any) -> TrainSettings:
        """Settings of *preset* (``quick`` or ``careful``), with *overrides* on top."""
        if preset not in PRESETS:
            raise TrainError(f"There is no preset '{preset}': choose {' or '.join(PRESETS)}.")
        values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
        if values.get("steps") is not None and overrides.get("epochs") is None:
            values["epochs"] = None
        settings = cls(base_model=base_model, data=data, name=name, preset=preset, **values)
        return settings.checked()

    def checked(self) -> TrainSettings:
        """These settings with their values checked; :class:`TrainError` says what is wrong."""
        if (self.epochs is None) == (self.steps is None):
            raise TrainError("Say how long to train: a number of epochs or of steps, not both.")
        if self.steps is not None and not 1 <= self.steps <= 1_000_000:
            raise TrainError("Steps must be a whole number from 1 to 1,000,000.")
        if self.epochs is not None and not 0 < self.epochs <= 1000:
            raise TrainError("Epochs must be more than 0 and at most 1000.")
        checks = [
            (1 <= self.rank <= 1024, "The rank must be from 1 to 1024 (8 or 16 is usual)."),
            (0 < self.alpha <= 4096, "Alpha must be more than 0 (twice the rank is usual)."),
            (0 <= self.dropout < 1, "Dropout must be from 0 to just under 1."),
            (bool(self.targets), "Choose at least one target module (q_proj, v_proj, ...)."),
            (0 < self.learning_rate <= 1,
             "The learning rate must be more than 0 and at most 1 (1e-4 to 1e-3 is usual)."),
            (1 <= self.batch_size <= 256, "The batch size must be from 1 to 256."),
            (16 <= self.max_length <= 32768,
             "The maximum length must be from 16 to 32768 tokens."),
            (0 <= self.threads <= 1024, "Threads must be 0 (automatic) or a positive number."),
            (self.checkpoint_every >= 1, "Checkpoints need an interval of at least one step."),
            (self.eval_every >= 1, "The held-out loss needs an interval of at least one step."),
            (0 <= self.held_out < 0.5, "The held-out share must be from 0 to under 0.5."),
            (self.warmup_steps >= 0, "Warm-up steps cannot be negative."),
            (all(isinstance(t, str) and t.strip() for t in self.targets),
             "Target modules are named by text, such as q_proj."),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainError(message)
        if not self.name.strip():
            raise TrainError("The adapter needs a name (--out NAME).")
        return self

    def total_steps(self, train_examples: int) -> int:
        """How many optimizer steps the run takes with *train_examples* to learn from."""
        if self.steps is not None:
            return self.steps
        per_epoch = max(1, math.ceil(train_examples / self.batch_size))
        return max(1, math.ceil(per_epoch * (self.epochs or 1.0)))

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["targets"] = list(self.targets)
        return values

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainSettings:
        """Settings saved by :meth:`to_dict`; unknown keys (from a newer version) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["targets"] = tuple(values.get("targets") or ())
        return cls(**values).checked()

    def with_changes(self, **changes: Any) -> TrainSettings:
        return replace(self, **changes).checked()
