"""Learning-rate schedules as functions of the iteration: ``schedule(step) -> lr``.

Any callable ``step -> lr`` works with :func:`kit.train.fit`; these are the common ones, as small
picklable objects with a readable repr (method packages build theirs from them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from numbers import Real

from .validate import check_float, check_int

Schedule = Callable[[int], float]


def steps_per_epoch(n_samples: int, batch_size: int, drop_last: bool = False) -> int:
    """Optimizer steps in one epoch over ``n_samples`` with batches of ``batch_size``."""
    n_samples = check_int(n_samples, "n_samples", low=0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    return n_samples // batch_size if drop_last else math.ceil(n_samples / batch_size)


def _check_step(step: int) -> int:
    return check_int(step, "step", low=0)


@dataclass(frozen=True)
class Constant:
    """The same learning rate at every step."""

    lr: float

    def __post_init__(self) -> None:
        check_float(self.lr, "lr", low=0.0)

    def __call__(self, step: int) -> float:
        _check_step(step)
        return self.lr


@dataclass(frozen=True)
class StepDecay:
    """Multiply the learning rate by ``gamma`` at each milestone step."""

    lr: float
    milestones: Sequence[int]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_float(self.lr, "lr", low=0.0)
        check_float(self.gamma, "gamma", low=0.0)
        if isinstance(self.milestones, str) or not isinstance(self.milestones, Iterable):
            raise TypeError(f"milestones must be a sequence of ints; got {type(self.milestones).__name__}")
        for i, m in enumerate(self.milestones):
            check_int(m, f"milestones[{i}]", low=0)

    def __call__(self, step: int) -> float:
        step = _check_step(step)
        return self.lr * self.gamma ** sum(step >= m for m in self.milestones)


@dataclass(frozen=True)
class Linear:
    """Linear from ``lr_start`` at step 0 to ``lr_end`` at ``total_steps`` (held after)."""

    lr_start: float
    lr_end: float
    total_steps: int

    def __post_init__(self) -> None:
        check_float(self.lr_start, "lr_start", low=0.0)
        check_float(self.lr_end, "lr_end", low=0.0)
        check_int(self.total_steps, "total_steps", low=1)

    def __call__(self, step: int) -> float:
        t = min(_check_step(step), self.total_steps) / self.total_steps
        return self.lr_start + t * (self.lr_end - self.lr_start)


@dataclass(frozen=True)
class Cosine:
    """Cosine annealing from ``lr`` at step 0 to ``lr_min`` at ``total_steps`` (held after)."""

    lr: float
    total_steps: int
    lr_min: float = 0.0

    def __post_init__(self) -> None:
        check_float(self.lr, "lr", low=0.0)
        check_float(self.lr_min, "lr_min", low=0.0, high=self.lr)
        check_int(self.total_steps, "total_steps", low=1)

    def __call__(self, step: int) -> float:
        t = min(_check_step(step), self.total_steps) / self.total_steps
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Warmup:
    """Linear warm-up from ``start_factor * schedule(warmup_steps)`` to ``schedule(warmup_steps)``
    over the first ``warmup_steps`` steps, then ``schedule`` itself (continuous at the hand-over)."""

    schedule: Schedule
    warmup_steps: int
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.schedule):
            raise TypeError(f"schedule must be callable step -> lr; got {type(self.schedule).__name__}")
        check_int(self.warmup_steps, "warmup_steps", low=0)
        check_float(self.start_factor, "start_factor", low=0.0, high=1.0)

    def __call__(self, step: int) -> float:
        step = _check_step(step)
        if step >= self.warmup_steps:
            return self.schedule(step)
        frac = self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
        return frac * self.schedule(self.warmup_steps)


def as_schedule(schedule: Schedule | float | None, default_lr: float) -> Schedule:
    """A callable step -> lr from a schedule, a constant number, or None (constant ``default_lr``)."""
    if schedule is None:
        return Constant(default_lr)
    if isinstance(schedule, Real) and not isinstance(schedule, bool):
        return Constant(float(schedule))
    if not callable(schedule):
        raise TypeError(f"lr_schedule must be a callable step -> lr or a number; got {type(schedule).__name__}")
    return schedule
