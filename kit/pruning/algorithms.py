"""Iterative magnitude pruning (IMP), budgeted IMP (BIMP) and gradual magnitude pruning (GMP).

All three prune with one mask mechanism (:mod:`kit.pruning.masks`), choose weights with a criterion
of :mod:`kit.pruning.criteria` and train with :func:`kit.train.fit`; none has a loop of its own.

* :func:`imp` starts from a trained dense model and runs P prune-retrain phases (their parts are in
  :mod:`kit.pruning.phases`, checkpoints in :mod:`kit.runs`). Phase i prunes to
  the cumulative sparsity 1 - (1 - s)^(i/P), i.e. the fraction p = 1 - (1 - s)^(1/P) of the weights
  still alive, and retrains with a schedule of :mod:`kit.pruning.schedules` (one ``fit`` per
  phase, seeded from (seed, phase), so a run resumed from a checkpoint is exactly the same run).
* :func:`bimp` trains from scratch within one budget: dense first, then every interval a hard prune
  to 1 - (1 - s)^((t+1)/n) and a learning-rate restart (linear with warm-up, ALLR-scaled peak).
* :func:`gmp` prunes during one training run along Zhu and Gupta's cubic schedule.

All return an :class:`ImpResult`: one :class:`PhaseResult` per phase (IMP), interval (BIMP) or
pruning step (GMP), and the final pruned model (masks attached).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import Splits
from ..runs import Checkpoints, fingerprint_data
from ..schedules import Constant, Schedule, as_schedule, steps_per_epoch
from ..train import Callback, TrainState, fit
from ..validate import check_float, check_int
from .criteria import check_sparsity
from .masks import copy_model, load_pruned_state_dict, sparsity_report
from .phases import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_PREFIX,
    PhasedResult,
    PruneRecord,
    accuracy,
    check_pruning_arguments,
    check_retrain_schedule,
    check_train_schedule,
    lr_peak,
    phase_epochs,
    phase_seed,
    phase_sparsity,
    prune_step,
    run_fingerprints,
)
from .schedules import retrain_schedule


@dataclass
class PhaseResult(PruneRecord):
    """One prune(-retrain) step: target and achieved sparsity, test accuracy before and after retraining.

    ``target_sparsity`` is the cumulative target, ``sparsity`` / ``zeros`` / ``total`` what
    :func:`~kit.pruning.masks.sparsity_report` counts after the step, ``pruned_fraction`` the share of
    the weights alive before the step that it removed (p), ``distance`` ALLR's d right after pruning.
    ``accuracy_pruned`` is the test accuracy right after pruning, ``accuracy`` after the training that
    follows (for GMP and BIMP: just before the next pruning, or at the end). ``epochs`` / ``steps``
    count that training; ``lr_peak`` is its schedule's largest learning rate (None without one).
    """

    epochs: float
    steps: int
    lr_peak: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = field(default=0.0, compare=False)  # wall time of the phase (IMP): not part of equality

    def row(self) -> dict[str, Any]:
        """The table row: every field but the per-epoch history and the wall time (not a result of the method)."""
        return {k: v for k, v in asdict(self).items() if k not in ("history", "seconds")}


@dataclass
class ImpResult(PhasedResult):
    """Per-phase results of :func:`imp`, :func:`bimp` or :func:`gmp`, and the final (masked) model.

    ``dense_accuracy`` is the test accuracy just before the first pruning; ``config`` the arguments
    (and, for IMP, fingerprints of the starting model and training schedule); ``resumed_phases`` how
    many phases came from a checkpoint (not part of ``to_dict`` or of equality).
    """

    method: str
    phases: list[PhaseResult]
    model: nn.Module = field(repr=False)
    dense_accuracy: float
    config: dict[str, Any] = field(default_factory=dict)
    resumed_phases: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as plain numbers and strings (for JSON results)."""
        return {"method": self.method, "config": dict(self.config), "dense_accuracy": self.dense_accuracy,
                "sparsity": self.sparsity, "accuracy": self.accuracy,
                "phases": [asdict(p) for p in self.phases]}


# ---------------------------------------------------------------- GMP's schedule

def cubic_sparsity(step: int, *, final_sparsity: float, start_step: int, interval: int, n: int,
                   initial_sparsity: float = 0.0) -> float:
    """Zhu-Gupta: s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n Delta))^3, clamped to [t_0, t_0 + n Delta]."""
    final_sparsity = check_sparsity(final_sparsity, "final_sparsity")
    initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity")
    step, start_step = check_int(step, "step", low=0), check_int(start_step, "start_step", low=0)
    interval, n = check_int(interval, "interval", low=1), check_int(n, "n", low=1)
    t = min(max(step, start_step), start_step + n * interval)
    if t == start_step + n * interval:
        return final_sparsity
    return final_sparsity + (initial_sparsity - final_sparsity) * (1 - (t - start_step) / (n * interval)) ** 3


# ---------------------------------------------------------------- IMP

def imp(model: nn.Module, data: Splits, *, target_sparsity: float, phases: int, retrain_epochs: int,
        train_schedule: Schedule | float, train_steps: int, schedule: str = "SLR", criterion: str = "global",
        momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 128, seed: int = 0,
        checkpoint_dir: str | os.PathLike | None = None, callbacks: Sequence[Callback] = (),
        progress: bool = True, device: str | torch.device | None = None) -> ImpResult:
    """Prune a trained dense ``model`` to ``target_sparsity`` in ``phases`` prune-retrain phases (on a copy).

    ``train_schedule`` (a callable step -> lr, or a constant lr) and ``train_steps`` describe how the
    dense model was trained; the retraining schedule ``schedule`` (one of ``RETRAIN_SCHEDULES``) is
    derived from them. ``retrain_epochs`` is split into whole epochs per phase, the remainder going to
    the last; it must be 0 (prune only, no retraining) or at least ``phases`` (no phase without
    retraining). With ``checkpoint_dir`` every finished phase is saved, and a second call with the same
    arguments resumes after the last saved phase; a checkpoint of other arguments raises ValueError.
    """
    args = check_pruning_arguments(model, data, target_sparsity, criterion, momentum, weight_decay, batch_size, seed)
    s, seed = args["target_sparsity"], args["seed"]
    phases = check_int(phases, "phases", low=1)
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=0)
    if 0 < retrain_epochs < phases:
        raise ValueError(f"retrain_epochs must be 0 (prune only) or at least phases={phases} (one epoch per "
                         f"phase); got {retrain_epochs}")
    schedule = check_retrain_schedule(schedule)
    train_schedule = check_train_schedule(train_schedule)
    train_steps = check_int(train_steps, "train_steps", low=1)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be kit.train.Callback instances; got {type(cb).__name__}")
    store = None if checkpoint_dir is None else Checkpoints(checkpoint_dir, prefix=CHECKPOINT_PREFIX,
                                                            format=CHECKPOINT_FORMAT, kind="IMP")

    config = dict(method="imp", target_sparsity=s, phases=phases, retrain_epochs=retrain_epochs,
                  schedule=schedule, criterion=args["criterion"], train_steps=train_steps,
                  momentum=args["momentum"], weight_decay=args["weight_decay"], batch_size=args["batch_size"],
                  seed=seed, **run_fingerprints(model, data, train_schedule, train_steps))
    ckpt = None if store is None else store.latest(config)

    work = copy_model(model)
    if ckpt is None:
        records: list[PhaseResult] = []
        dense_accuracy = accuracy(work, data.test, device)
    else:
        load_pruned_state_dict(work, ckpt["state_dict"])
        records = [PhaseResult(**r) for r in ckpt["phases"]]
        dense_accuracy = float(ckpt["dense_accuracy"])
    resumed = len(records)

    epochs = phase_epochs(retrain_epochs, phases)
    spe = steps_per_epoch(len(data.train), args["batch_size"])
    outer = tqdm(total=phases, initial=resumed, desc=f"IMP {schedule} to {s:.1%}", disable=not progress)
    for i in range(resumed + 1, phases + 1):
        started = time.perf_counter()
        target = phase_sparsity(s, i, phases)
        fraction, distance = prune_step(work, args["criterion"], target, phase_seed(seed, i))
        accuracy_pruned = accuracy(work, data.test, device)
        history, peak, steps = [], None, epochs[i - 1] * spe
        if steps:
            lr_schedule = retrain_schedule(schedule, retrain_steps=steps, train_schedule=train_schedule,
                                           train_steps=train_steps, distance=distance,
                                           # nothing pruned (rounding) means d = 0: any p > 0 gives ALLR its floor
                                           pruned_fraction=fraction if fraction > 0 else 1.0)
            peak = lr_peak(lr_schedule, steps)
            history = fit(work, data.train, epochs=epochs[i - 1], lr=float(lr_schedule(0)), lr_schedule=lr_schedule,
                          momentum=args["momentum"], weight_decay=args["weight_decay"],
                          batch_size=args["batch_size"], val_data=data.val, callbacks=callbacks,
                          seed=phase_seed(seed, i), device=device, progress=progress,
                          desc=f"IMP phase {i}/{phases} ({target:.1%})").records
        report = sparsity_report(work)
        records.append(PhaseResult(phase=i, target_sparsity=target, sparsity=report.sparsity, zeros=report.zeros,
                                   total=report.total, pruned_fraction=fraction, distance=distance,
                                   accuracy_pruned=accuracy_pruned, accuracy=accuracy(work, data.test, device),
                                   epochs=epochs[i - 1], steps=steps, lr_peak=peak, history=history,
                                   seconds=time.perf_counter() - started))
        if store is not None:
            store.save(i, config, {"phase": i, "state_dict": work.state_dict(), "dense_accuracy": dense_accuracy,
                                   "phases": [asdict(r) for r in records]})
        outer.update(1)
        outer.set_postfix(sparsity=f"{report.sparsity:.3f}", accuracy=f"{records[-1].accuracy:.3f}")
    outer.close()
    return ImpResult("imp", records, work, dense_accuracy, config, resumed_phases=resumed)


# ---------------------------------------------------------------- pruning during training (one fit call)

class _Restarts:
    """A schedule made of segments, each a schedule of its own that restarts at the segment's first step."""

    def __init__(self, first: Schedule) -> None:
        self.segments: list[tuple[int, Schedule]] = [(0, first)]

    def add(self, start: int, schedule: Schedule) -> None:
        self.segments.append((start, schedule))

    def __call__(self, step: int) -> float:
        start, schedule = next(seg for seg in reversed(self.segments) if seg[0] <= step)
        return schedule(step - start)


class _PruneDuringTraining(Callback):
    """Prunes at given points of a ``fit`` run and records each pruning step as a :class:`PhaseResult`."""

    def __init__(self, data: Splits, criterion: str, seed: int, device: str | torch.device | None,
                 plan: dict[int, tuple[int, float, int]], spe: int,
                 on_pruned: Callable[[int, int, float, float], float | None] | None = None) -> None:
        # plan: steps done -> (phase, cumulative sparsity, steps until the next pruning or the end)
        self.data, self.criterion, self.seed, self.device = data, criterion, seed, device
        self.plan, self.spe, self.on_pruned = plan, spe, on_pruned
        self.records: list[PhaseResult] = []
        self.dense_accuracy = float("nan")

    def prune_at(self, done: int, state: TrainState) -> None:
        if done not in self.plan:
            return
        test_accuracy = accuracy(state.model, self.data.test, self.device)
        if self.records:
            self.records[-1].accuracy = test_accuracy
        else:
            self.dense_accuracy = test_accuracy
        phase, target, steps = self.plan[done]
        fraction, distance = prune_step(state.model, self.criterion, target, phase_seed(self.seed, phase))
        peak = None if self.on_pruned is None else self.on_pruned(done, steps, fraction, distance)
        report = sparsity_report(state.model)
        self.records.append(PhaseResult(phase=phase, target_sparsity=target, sparsity=report.sparsity,
                                        zeros=report.zeros, total=report.total, pruned_fraction=fraction,
                                        distance=distance, accuracy_pruned=accuracy(state.model, self.data.test,
                                                                                    self.device),
                                        accuracy=float("nan"), epochs=steps / self.spe, steps=steps, lr_peak=peak))

    def on_fit_end(self, state: TrainState) -> None:
        test_accuracy = accuracy(state.model, self.data.test, self.device)
        if self.records:
            self.records[-1].accuracy = test_accuracy
        else:
            self.dense_accuracy = test_accuracy


class _PruneAtEpochs(_PruneDuringTraining):
    def on_epoch_end(self, state: TrainState) -> None:
        self.prune_at(state.step, state)


class _PruneAtSteps(_PruneDuringTraining):
    def after_step(self, state: TrainState) -> None:
        self.prune_at(state.step + 1, state)  # state.step counts the steps before this one


def bimp(model: nn.Module, data: Splits, *, target_sparsity: float, total_epochs: int, dense_epochs: int,
         interval_epochs: int, lr: float = 0.1, criterion: str = "global", momentum: float = 0.9,
         weight_decay: float = 0.0, batch_size: int = 128, seed: int = 0, callbacks: Sequence[Callback] = (),
         progress: bool = True, device: str | torch.device | None = None) -> ImpResult:
    """Budgeted IMP in one ``fit`` run of ``total_epochs`` (on a copy of ``model``, usually untrained).

    Dense training for ``dense_epochs`` (10% warm-up, then linear from ``lr`` to 0), then
    n = (total_epochs - dense_epochs) // interval_epochs intervals (the remainder epochs go to the last):
    at the start of interval t the model is hard-pruned to 1 - (1 - s)^((t+1)/n) and the learning rate
    restarts with ALLR (10% warm-up, linear to 0, peak scaled by how far pruning moved the weights;
    its lower bound takes the dense part as the original training).
    """
    args = check_pruning_arguments(model, data, target_sparsity, criterion, momentum, weight_decay, batch_size, seed)
    s, seed = args["target_sparsity"], args["seed"]
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    total_epochs = check_int(total_epochs, "total_epochs", low=2)
    dense_epochs = check_int(dense_epochs, "dense_epochs", low=1, high=total_epochs - 1)
    interval_epochs = check_int(interval_epochs, "interval_epochs", low=1, high=total_epochs - dense_epochs)
    n = (total_epochs - dense_epochs) // interval_epochs
    spe = steps_per_epoch(len(data.train), args["batch_size"])
    dense_steps, total_steps = dense_epochs * spe, total_epochs * spe
    starts = [(dense_epochs + t * interval_epochs) * spe for t in range(n)]
    ends = [*starts[1:], total_steps]
    plan = {start: (t + 1, phase_sparsity(s, t + 1, n), end - start)
            for t, (start, end) in enumerate(zip(starts, ends, strict=True))}

    original = Constant(lr)
    lr_schedule = _Restarts(retrain_schedule("LLR", retrain_steps=dense_steps, train_schedule=original,
                                             train_steps=dense_steps))

    def restart(start: int, steps: int, fraction: float, distance: float) -> float:
        segment = retrain_schedule("ALLR", retrain_steps=steps, train_schedule=original, train_steps=dense_steps,
                                   distance=distance, pruned_fraction=fraction if fraction > 0 else 1.0)
        lr_schedule.add(start, segment)
        return lr_peak(segment, steps)

    work = copy_model(model)
    pruner = _PruneAtEpochs(data, args["criterion"], seed, device, plan, spe, on_pruned=restart)
    fit(work, data.train, epochs=total_epochs, lr=lr, lr_schedule=lr_schedule, momentum=args["momentum"],
        weight_decay=args["weight_decay"], batch_size=args["batch_size"], val_data=data.val,
        callbacks=[pruner, *callbacks], seed=seed, device=device, progress=progress,
        desc=f"BIMP to {s:.1%} ({n} intervals)")
    config = dict(method="bimp", target_sparsity=s, total_epochs=total_epochs, dense_epochs=dense_epochs,
                  interval_epochs=interval_epochs, intervals=n, lr=lr, criterion=args["criterion"],
                  momentum=args["momentum"], weight_decay=args["weight_decay"], batch_size=args["batch_size"],
                  seed=seed, data_sha256=fingerprint_data(data))
    return ImpResult("bimp", pruner.records, work, pruner.dense_accuracy, config)


def gmp(model: nn.Module, data: Splits, *, target_sparsity: float, epochs: int, start_epoch: int = 0,
        end_epoch: int | None = None, interval_steps: int | None = None, interval_epochs: int | None = None,
        lr: float = 0.1, lr_schedule: Schedule | float | None = None, criterion: str = "global",
        momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 128, seed: int = 0,
        callbacks: Sequence[Callback] = (), progress: bool = True,
        device: str | torch.device | None = None) -> ImpResult:
    """Gradual magnitude pruning (Zhu & Gupta) inside one ``fit`` run of ``epochs`` (on a copy of ``model``).

    With t_0 = ``start_epoch`` and Delta = ``interval_steps`` (or ``interval_epochs``, default one
    epoch) in steps, the model is pruned after t_0 + k Delta steps, k = 1..n, n = floor((t_end - t_0) /
    Delta), to s_t = s_f + (0 - s_f)(1 - (t - t_0) / (n Delta))^3, reaching s_f at t_0 + n Delta <= t_end
    (``end_epoch``, default ``epochs``). Without ``lr_schedule`` the learning rate warms up for 10% of
    the run and then falls linearly from ``lr`` to 0.
    """
    args = check_pruning_arguments(model, data, target_sparsity, criterion, momentum, weight_decay, batch_size, seed)
    s, seed = args["target_sparsity"], args["seed"]
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    epochs = check_int(epochs, "epochs", low=1)
    end_epoch = epochs if end_epoch is None else check_int(end_epoch, "end_epoch", low=1, high=epochs)
    start_epoch = check_int(start_epoch, "start_epoch", low=0, high=end_epoch - 1)
    if interval_steps is not None and interval_epochs is not None:
        raise ValueError("give interval_steps or interval_epochs, not both")
    spe = steps_per_epoch(len(data.train), args["batch_size"])
    t0, t_end, total_steps = start_epoch * spe, end_epoch * spe, epochs * spe
    if interval_steps is not None:
        delta = check_int(interval_steps, "interval_steps", low=1, high=t_end - t0)
    else:
        delta = check_int(1 if interval_epochs is None else interval_epochs, "interval_epochs", low=1,
                          high=end_epoch - start_epoch) * spe
    n = (t_end - t0) // delta
    if lr_schedule is None:
        lr_schedule = retrain_schedule("LLR", retrain_steps=total_steps, train_schedule=Constant(lr),
                                       train_steps=total_steps)
    lr_schedule = as_schedule(lr_schedule, lr)
    points = [t0 + k * delta for k in range(1, n + 1)]
    plan = {t: (k, cubic_sparsity(t, final_sparsity=s, start_step=t0, interval=delta, n=n), nxt - t)
            for k, (t, nxt) in enumerate(zip(points, [*points[1:], total_steps], strict=True), start=1)}

    work = copy_model(model)
    pruner = _PruneAtSteps(data, args["criterion"], seed, device, plan, spe)
    fit(work, data.train, epochs=epochs, lr=lr, lr_schedule=lr_schedule, momentum=args["momentum"],
        weight_decay=args["weight_decay"], batch_size=args["batch_size"], val_data=data.val,
        callbacks=[pruner, *callbacks], seed=seed, device=device, progress=progress,
        desc=f"GMP to {s:.1%} ({n} steps)")
    config = dict(method="gmp", target_sparsity=s, epochs=epochs, start_epoch=start_epoch, end_epoch=end_epoch,
                  interval_steps=delta, pruning_steps=n, lr=lr, criterion=args["criterion"],
                  momentum=args["momentum"], weight_decay=args["weight_decay"], batch_size=args["batch_size"],
                  seed=seed, data_sha256=fingerprint_data(data))
    return ImpResult("gmp", pruner.records, work, pruner.dense_accuracy, config)


__all__ = ["ImpResult", "PhaseResult", "bimp", "cubic_sparsity", "gmp", "imp"]
