"""Learning-rate schedules for retraining after pruning, as functions of the retraining iteration.

Every schedule maps the retraining iteration t in [0, T_rt) to a learning rate (steps at or past
T_rt hold the value at T_rt - 1) and is a small frozen, picklable object with a readable repr, so
it goes straight into ``kit.train.fit(..., lr_schedule=...)``. They are defined from the original
training schedule (any ``step -> lr`` callable of :mod:`kit.schedules`) run for T_train steps, with
eta_max / eta_min its largest / smallest learning rate after its warm-up (:func:`lr_range`):

* ``FT``: constant eta_min;
* ``LRW``: replay the last T_rt iterations of the original schedule, ``original(T_train - T_rt + t)``;
* ``SLR``: warm-up, then the original schedule (from the end of its own warm-up) compressed in time;
* ``CLR``: warm-up, then cosine from eta_max to eta_min;
* ``LLR``: warm-up, then linear from eta_max to 0;
* ``ALLR``: ``LLR`` with the adaptive peak eta_0 = clip(d / sqrt(p) * eta_max,
  min(T_rt / T_train, 1) * eta_max, eta_max), d from :func:`relative_distance`, p the fraction
  of the remaining weights pruned in this phase.

The warm-up takes the first w = round(0.1 * T_rt) iterations (Python's round, at most T_rt - 1)
and ramps from 0 to the peak along a half cosine, peak * (1 - cos(pi * t / w)) / 2. After it, u =
t - w runs over the remaining span S = T_rt - w and s = u / S is the fraction of it done.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..schedules import Constant, Schedule
from ..validate import check_float, check_int
from .masks import PRUNABLE_TYPES, effective_weight, prunable

RETRAIN_SCHEDULES: tuple[str, ...] = ("FT", "LRW", "SLR", "CLR", "LLR", "ALLR")


def _check_schedule(schedule: object, name: str = "train_schedule") -> None:
    if not callable(schedule):
        raise TypeError(f"{name} must be callable step -> lr (see kit.schedules); got {type(schedule).__name__}")


def _retrain_step(step: int, retrain_steps: int) -> int:
    return min(check_int(step, "step", low=0), retrain_steps - 1)


class _WarmupThenDecay:
    """Cosine warm-up from 0 to ``peak`` over ``warmup_steps``, then ``_after(u, span)``."""

    retrain_steps: int
    warmup_steps: int

    def _check_lengths(self) -> None:
        check_int(self.retrain_steps, "retrain_steps", low=1)
        check_int(self.warmup_steps, "warmup_steps", low=0, high=self.retrain_steps - 1)

    @property
    def peak(self) -> float:
        """The learning rate the warm-up reaches, where the decay starts."""
        raise NotImplementedError

    def _after(self, u: int, span: int) -> float:
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        t = _retrain_step(step, self.retrain_steps)
        if t < self.warmup_steps:
            return self.peak * 0.5 * (1.0 - math.cos(math.pi * t / self.warmup_steps))
        return self._after(t - self.warmup_steps, self.retrain_steps - self.warmup_steps)


@dataclass(frozen=True)
class FT(Constant):
    """Fine-tuning: the original schedule's smallest learning rate eta_min, constant."""


@dataclass(frozen=True)
class LRW:
    """Learning-rate rewinding: the last ``retrain_steps`` iterations of the original schedule, replayed."""

    train_schedule: Schedule
    train_steps: int
    retrain_steps: int

    def __post_init__(self) -> None:
        _check_schedule(self.train_schedule)
        check_int(self.train_steps, "train_steps", low=1)
        check_int(self.retrain_steps, "retrain_steps", low=1)

    def __call__(self, step: int) -> float:
        t = _retrain_step(step, self.retrain_steps)
        # retraining longer than training: the early part holds the schedule's first value
        return float(self.train_schedule(max(0, self.train_steps - self.retrain_steps + t)))


@dataclass(frozen=True)
class SLR(_WarmupThenDecay):
    """Scaled learning-rate restarting: warm-up, then the original schedule from ``start_step`` compressed in time.

    After the warm-up, ``original(start_step + floor(u * (train_steps - start_step) / span))``.
    """

    train_schedule: Schedule
    train_steps: int
    retrain_steps: int
    warmup_steps: int
    start_step: int = 0

    def __post_init__(self) -> None:
        _check_schedule(self.train_schedule)
        check_int(self.train_steps, "train_steps", low=1)
        check_int(self.start_step, "start_step", low=0, high=self.train_steps - 1)
        self._check_lengths()

    @property
    def peak(self) -> float:
        """The original schedule at ``start_step`` (its eta_max when that is the end of its warm-up)."""
        return float(self.train_schedule(self.start_step))

    def _after(self, u: int, span: int) -> float:
        # integer arithmetic: the compressed step is exact, no float round-off at the boundaries
        return float(self.train_schedule(self.start_step + u * (self.train_steps - self.start_step) // span))


@dataclass(frozen=True)
class CLR(_WarmupThenDecay):
    """Cosine learning-rate restarting: warm-up, then cosine from ``lr_max`` to ``lr_min``.

    After the warm-up, ``lr_min + (lr_max - lr_min) * (1 + cos(pi * s)) / 2``.
    """

    lr_max: float
    lr_min: float
    retrain_steps: int
    warmup_steps: int

    def __post_init__(self) -> None:
        check_float(self.lr_max, "lr_max", low=0.0)
        check_float(self.lr_min, "lr_min", low=0.0, high=self.lr_max)
        self._check_lengths()

    @property
    def peak(self) -> float:
        """``lr_max``."""
        return self.lr_max

    def _after(self, u: int, span: int) -> float:
        return self.lr_min + 0.5 * (self.lr_max - self.lr_min) * (1.0 + math.cos(math.pi * u / span))


@dataclass(frozen=True)
class LLR(_WarmupThenDecay):
    """Linear learning-rate restarting: warm-up, then linear from ``lr_max`` to 0, ``lr_max * (1 - s)``."""

    lr_max: float
    retrain_steps: int
    warmup_steps: int

    def __post_init__(self) -> None:
        check_float(self.lr_max, "lr_max", low=0.0)
        self._check_lengths()

    @property
    def peak(self) -> float:
        """``lr_max``."""
        return self.lr_max

    def _after(self, u: int, span: int) -> float:
        return self.peak * (1.0 - u / span)


def allr_peak(lr_max: float, distance: float, pruned_fraction: float, retrain_steps: int, train_steps: int) -> float:
    """ALLR's peak: clip(distance / sqrt(pruned_fraction) * lr_max, min(T_rt / T_train, 1) * lr_max, lr_max)."""
    lr_max = check_float(lr_max, "lr_max", low=0.0)
    distance = check_float(distance, "distance", low=0.0)
    pruned_fraction = check_float(pruned_fraction, "pruned_fraction", low=0.0, high=1.0, low_open=True)
    retrain_steps = check_int(retrain_steps, "retrain_steps", low=1)
    train_steps = check_int(train_steps, "train_steps", low=1)
    lower = min(retrain_steps / train_steps, 1.0) * lr_max
    return min(max(distance / math.sqrt(pruned_fraction) * lr_max, lower), lr_max)


@dataclass(frozen=True)
class ALLR(_WarmupThenDecay):
    """Adaptive linear learning-rate restarting: :class:`LLR` from the peak :func:`allr_peak` instead of ``lr_max``."""

    lr_max: float
    distance: float
    pruned_fraction: float
    train_steps: int
    retrain_steps: int
    warmup_steps: int

    def __post_init__(self) -> None:
        self._check_lengths()
        allr_peak(self.lr_max, self.distance, self.pruned_fraction, self.retrain_steps, self.train_steps)

    @property
    def peak(self) -> float:
        """eta_0, the adaptive peak (see :func:`allr_peak`)."""
        return allr_peak(self.lr_max, self.distance, self.pruned_fraction, self.retrain_steps, self.train_steps)

    def _after(self, u: int, span: int) -> float:
        return self.peak * (1.0 - u / span)


def lr_range(train_schedule: Schedule, train_steps: int) -> tuple[float, float, int]:
    """(eta_max, eta_min, peak_step) of a schedule over its steps 0 .. train_steps - 1, after its warm-up.

    The warm-up is taken to end at ``peak_step``, the first step with the largest learning rate;
    eta_min is the smallest learning rate from there on (the last one a decaying schedule used,
    which for a decay to 0 is the small value at step train_steps - 1, not 0).
    """
    _check_schedule(train_schedule)
    train_steps = check_int(train_steps, "train_steps", low=1)
    lrs = [float(train_schedule(k)) for k in range(train_steps)]
    bad = next((k for k, lr in enumerate(lrs) if not (math.isfinite(lr) and lr >= 0)), None)
    if bad is not None:
        raise ValueError(f"train_schedule must give finite learning rates >= 0; got {lrs[bad]} at step {bad}")
    peak_step = max(range(train_steps), key=lambda k: (lrs[k], -k))
    return lrs[peak_step], min(lrs[peak_step:]), peak_step


def retrain_schedule(name: str, *, retrain_steps: int, train_schedule: Schedule, train_steps: int,
                     distance: float | None = None, pruned_fraction: float | None = None,
                     warmup_fraction: float = 0.1) -> Schedule:
    """The retraining schedule ``name`` (one of :data:`RETRAIN_SCHEDULES`, any case) for ``retrain_steps`` iterations.

    ``train_schedule`` and ``train_steps`` describe the original training; ``distance`` (see
    :func:`relative_distance`) and ``pruned_fraction`` are needed by ALLR only and ignored by the
    others (checked when given). ``warmup_fraction`` of ``retrain_steps`` (rounded) is the warm-up
    of SLR, CLR, LLR and ALLR.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {', '.join(RETRAIN_SCHEDULES)}; got {type(name).__name__}")
    key = name.upper()
    if key not in RETRAIN_SCHEDULES:
        raise ValueError(f"unknown retraining schedule {name!r}; choose one of {', '.join(RETRAIN_SCHEDULES)} "
                         f"(case-insensitive)")
    retrain_steps = check_int(retrain_steps, "retrain_steps", low=1)
    train_steps = check_int(train_steps, "train_steps", low=1)
    _check_schedule(train_schedule)
    warmup_fraction = check_float(warmup_fraction, "warmup_fraction", low=0.0, high=1.0, high_open=True)
    if distance is not None:
        distance = check_float(distance, "distance", low=0.0)
    if pruned_fraction is not None:
        pruned_fraction = check_float(pruned_fraction, "pruned_fraction", low=0.0, high=1.0, low_open=True)
    if key == "ALLR" and (distance is None or pruned_fraction is None):
        raise ValueError("ALLR needs distance= (the relative distance ||theta - theta_pruned|| / ||theta|| right "
                         "after pruning, see relative_distance) and pruned_fraction= (the fraction pruned in this "
                         "phase)")
    warmup = min(round(warmup_fraction * retrain_steps), retrain_steps - 1)

    if key == "LRW":  # needs no eta_max / eta_min: skip the pass over the original schedule
        return LRW(train_schedule, train_steps, retrain_steps)
    lr_max, lr_min, peak_step = lr_range(train_schedule, train_steps)
    if key == "FT":
        return FT(lr_min)
    if key == "SLR":
        return SLR(train_schedule, train_steps, retrain_steps, warmup, start_step=peak_step)
    if key == "CLR":
        return CLR(lr_max, lr_min, retrain_steps, warmup)
    if key == "LLR":
        return LLR(lr_max, retrain_steps, warmup)
    return ALLR(lr_max, distance, pruned_fraction, train_steps, retrain_steps, warmup)


def _before_weight(before: nn.Module | Mapping[str, torch.Tensor], modules: dict[str, nn.Module] | None,
                   name: str) -> torch.Tensor:
    if modules is not None:
        if name not in modules:
            raise ValueError(f"before has no module named {name!r} with a weight; pass the model before pruning")
        return effective_weight(modules[name])
    prefix = f"{name}." if name else ""
    if f"{prefix}weight_orig" in before and f"{prefix}weight_mask" in before:
        return before[f"{prefix}weight_orig"] * before[f"{prefix}weight_mask"]
    if f"{prefix}weight" in before:
        return before[f"{prefix}weight"]
    raise ValueError(f"before has no entry {prefix}weight (nor {prefix}weight_orig and {prefix}weight_mask)")


def relative_distance(before: nn.Module | Mapping[str, torch.Tensor], after: nn.Module,
                      types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> float:
    """d = ||theta - theta_pruned||_2 / ||theta||_2 over the prunable weights, ``before`` and ``after`` pruning.

    ``before`` is a copy of the model taken before pruning (:func:`kit.pruning.copy_model`) or a
    copy of its state dict (``{k: v.clone() ...}``: a plain ``state_dict()`` shares storage with
    the model, and pruning updates an existing mask in place). theta runs over the weights of the
    prunable layers of ``after`` (as the forward pass sees them, masks applied), the ones pruning
    changes; biases and normalisation layers are left out.
    """
    if not isinstance(after, nn.Module):
        raise TypeError(f"after must be a torch.nn.Module; got {type(after).__name__}")
    if isinstance(before, nn.Module):
        modules = {n: m for n, m in before.named_modules() if isinstance(getattr(m, "weight", None), torch.Tensor)}
    elif isinstance(before, Mapping):
        modules = None
    else:
        raise TypeError(f"before must be a model copy or a state dict; got {type(before).__name__}")
    diff = norm = 0.0
    for name, module in prunable(after, types):
        new = effective_weight(module).double()
        old = _before_weight(before, modules, name).detach().double().to(new.device)
        if old.shape != new.shape:
            raise ValueError(f"layer {name!r}: weight shape {tuple(old.shape)} before, {tuple(new.shape)} after")
        diff += float(((old - new) ** 2).sum())
        norm += float((old ** 2).sum())
    if norm == 0:
        raise ValueError("before has all prunable weights zero: the relative distance is undefined")
    return math.sqrt(diff / norm)
