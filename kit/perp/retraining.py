"""PERP: after one-shot pruning, retrain only a sliver of the language model (biases, norms, sparsity-
preserving LoRA) with the kit's one training loop; full retraining (all weights, masks kept) is the
reference. Time per step and peak memory are recorded for both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..memory import PeakMemory
from ..schedules import Linear, Warmup
from ..seeding import check_seed
from ..train import Callback, TrainState, fit
from ..validate import check_choice, check_float, check_int
from .lora import GROUPS, LORA_KINDS, Trainable, add_lora, set_trainable, trainable_parameters

PERP_GROUPS = ("norms", "biases", "lora")  # the paper's choice; biases are absent in Llama models


def _set_checkpointing(model: nn.Module, on: bool) -> None:
    """Activation checkpointing of the decoder blocks (Hugging Face models): recompute, don't store."""
    lm = getattr(model, "lm", model)
    if not getattr(lm, "supports_gradient_checkpointing", False):
        if on:
            raise ValueError(f"checkpointing needs a Hugging Face model that supports it; got {type(lm).__name__}")
        return
    kwargs = {"use_reentrant": False}
    if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.2 renamed the methods
        if on:
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            lm.activation_checkpointing_disable()
    elif on:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        lm.gradient_checkpointing_disable()


class StepStats(Callback):
    """Stops ``fit`` after ``steps`` optimizer steps; records each step's loss and seconds and the peak memory."""

    def __init__(self, steps: int) -> None:
        self.steps = check_int(steps, "steps", low=1)
        self.losses: list[float] = []
        self.seconds: list[float] = []
        self.memory: PeakMemory | None = None
        self._start = 0.0

    def on_fit_start(self, state: TrainState) -> None:
        self.memory = PeakMemory(state.device).__enter__()

    def before_step(self, state: TrainState) -> None:
        self._start = time.perf_counter()

    def after_step(self, state: TrainState) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        self.losses.append(state.loss)
        if len(self.losses) >= self.steps:
            state.stop = True

    def on_fit_end(self, state: TrainState) -> None:
        self.memory.__exit__(None, None, None)


@dataclass
class RetrainResult:
    """What one retraining run did: trained fraction, per-step losses and seconds, peak memory."""

    groups: tuple[str, ...]
    trainable: Trainable
    losses: list[float]
    seconds: list[float]
    peak_bytes: int | None
    baseline_bytes: int | None
    settings: dict = field(default_factory=dict)

    @property
    def seconds_per_step(self) -> float:
        """Median seconds per step, first step excluded (it allocates the optimizer state)."""
        s = sorted(self.seconds[1:] or self.seconds)
        return s[len(s) // 2]

    def to_dict(self) -> dict:
        return {"groups": list(self.groups), "trainable": self.trainable.trainable, "total": self.trainable.total,
                "trainable_percent": self.trainable.percent, "steps": len(self.losses),
                "first_loss": self.losses[0], "last_loss": self.losses[-1],
                "seconds_per_step": self.seconds_per_step, "peak_bytes": self.peak_bytes,
                "baseline_bytes": self.baseline_bytes, **self.settings}


def retrain(model: nn.Module, train_data, *, steps: int, groups: Sequence[str] = PERP_GROUPS, rank: int = 16,
            alpha: float = 32.0, lora_kind: str = "mask", lr: float = 5e-4, batch_size: int = 4,
            warmup: float = 0.1, checkpointing: bool = False, seed: int = 0, progress: bool = True,
            device=None) -> RetrainResult:
    """Retrain ``model`` (pruned, masks kept) for ``steps`` AdamW steps with linear decay after a warm-up.

    ``groups`` picks what is trained: any of 'biases', 'norms', 'lora' (PERP), or 'all' (full
    retraining). With 'lora', sparsity-preserving adapters of ``lora_kind`` ('mask' or 'scale') are
    added to every decoder Linear first; call :func:`kit.perp.merge` afterwards to fold them in.
    """
    # every argument first: a refused call leaves the model as it was (no adapters added, nothing frozen)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(train_data, (Dataset, DataLoader)):
        raise TypeError(f"train_data must be a torch Dataset or DataLoader (e.g. kit.language.TokenWindows); "
                        f"got {type(train_data).__name__}")
    if len(train_data) == 0:
        raise ValueError("train_data is empty")
    steps = check_int(steps, "steps", low=1)
    warmup = check_float(warmup, "warmup", low=0.0, high=1.0, high_open=True)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    batch_size = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed)
    if not isinstance(checkpointing, bool):
        raise TypeError(f"checkpointing must be True or False; got {type(checkpointing).__name__}")
    if isinstance(groups, str):
        raise TypeError(f"groups must be a sequence of group names such as ('norms', 'lora'); got the string "
                        f"{groups!r}")
    groups = tuple(groups)
    if not groups:
        raise ValueError(f"groups must name at least one of {', '.join(GROUPS)}")
    for g in groups:
        if g not in GROUPS:
            raise ValueError(f"groups: unknown group {g!r}; choose from {', '.join(GROUPS)}")
    if "lora" in groups and "all" in groups:
        raise ValueError("groups 'all' and 'lora' exclude each other: 'all' retrains every weight, 'lora' freezes "
                         "the adapted weights inside their adapters")
    if "lora" in groups:
        check_int(rank, "rank", low=1)
        check_float(alpha, "alpha", low=0.0, low_open=True)
        check_choice(lora_kind, "lora_kind", LORA_KINDS)
    if "lora" in groups:
        add_lora(model, rank=rank, alpha=alpha, kind=lora_kind, seed=seed)
    set_trainable(model, groups)
    _set_checkpointing(model, checkpointing)
    trainable = trainable_parameters(model)
    schedule = Warmup(Linear(lr, 0.0, steps), warmup_steps=round(warmup * steps))
    stats = StepStats(steps)
    epochs = math.ceil(steps / max(1, len(train_data) // batch_size))
    fit(model, train_data, epochs=epochs, lr=lr, optimizer="adamw", batch_size=batch_size, lr_schedule=schedule,
        callbacks=[stats], seed=seed, progress=progress, device=device, desc=f"retrain {'+'.join(groups)}")
    model.eval()
    settings = {"lr": lr, "batch_size": batch_size, "warmup": warmup, "seed": seed}
    if "lora" in groups:
        settings.update(rank=rank, alpha=alpha, lora_kind=lora_kind)
    return RetrainResult(groups, trainable, stats.losses, stats.seconds, stats.memory.peak_bytes,
                         stats.memory.baseline_bytes, settings)
