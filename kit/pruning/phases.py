"""The prune-retrain phase, in parts every phased method shares (IMP here, sparse model soups in ``kit.soups``).

Phase i of P prunes to the cumulative sparsity 1 - (1 - s)^(i/P) (:func:`phase_sparsity`), i.e. the
fraction p = 1 - (1 - s)^(1/P) of the weights still alive (:func:`prune_step` measures p and ALLR's
d), then retrains for its share of the retraining budget (:func:`phase_epochs`) from a seed of its
own (:func:`phase_seed`), so a run resumed from a checkpoint retrains every phase exactly as an
uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import Splits
from ..runs import derive_seed, fingerprint_data, fingerprint_model, fingerprint_schedule
from ..schedules import Schedule, as_schedule
from ..seeding import check_seed
from ..train import evaluate
from ..validate import check_choice, check_float, check_int
from .criteria import CRITERIA, check_sparsity, masks_for
from .masks import apply_masks, prunable, sparsity_report
from .schedules import RETRAIN_SCHEDULES, relative_distance

CHECKPOINT_FORMAT = "kit.pruning.phases/2"  # /2: data fingerprinted by content
CHECKPOINT_PREFIX = "imp-phase"  # IMP's and SMS's phases: imp-phase-001.pt, ...


def phase_epochs(retrain_epochs: int, phases: int) -> list[int]:
    """The retraining budget split into ``phases`` whole epochs, the remainder going to the last phase."""
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=0)
    phases = check_int(phases, "phases", low=1)
    base = retrain_epochs // phases
    return [base] * (phases - 1) + [retrain_epochs - base * (phases - 1)]


def phase_sparsity(target_sparsity: float, phase: int, phases: int) -> float:
    """Cumulative sparsity after ``phase`` of ``phases``: 1 - (1 - s)^(phase/phases), exactly s at the end."""
    target_sparsity = check_sparsity(target_sparsity, "target_sparsity")
    phases = check_int(phases, "phases", low=1)
    phase = check_int(phase, "phase", low=0, high=phases)
    # the closed form can miss s by one ulp at the end, and the last phase must land on s itself
    return target_sparsity if phase == phases else 1.0 - (1.0 - target_sparsity) ** (phase / phases)


def phase_seed(seed: int, phase: int) -> int:
    """The seed of one phase's pruning (random criterion) and retraining (batch order): derived from (seed, phase)."""
    return derive_seed(seed, phase)


class PruneStep(NamedTuple):
    """What one pruning step did: the fraction p of live weights it removed and ALLR's relative distance d."""

    fraction: float
    distance: float


def prune_step(model: nn.Module, criterion: str, sparsity: float, seed: int) -> PruneStep:
    """Prune ``model`` in place to the global ``sparsity`` with ``criterion``; return p and d of the step."""
    before = sparsity_report(model)
    # a clone: pruning updates an existing mask buffer in place
    theta = {k: v.detach().clone() for k, v in model.state_dict().items()}
    kwargs = {"seed": seed} if criterion == "random" else {}
    apply_masks(model, masks_for(criterion, model, sparsity, **kwargs))
    after = sparsity_report(model)
    alive = before.total - before.zeros
    fraction = (after.zeros - before.zeros) / alive if alive else 0.0
    return PruneStep(fraction, relative_distance(theta, model))


def accuracy(model: nn.Module, dataset: Dataset, device: str | torch.device | None = None) -> float:
    """Accuracy of ``model`` on ``dataset`` (what every phase record reports on the test split)."""
    return float(evaluate(model, dataset, device=device)["accuracy"])


def lr_peak(schedule: Schedule, steps: int) -> float:
    """The largest learning rate of ``schedule`` over its first ``steps`` steps."""
    return max(float(schedule(t)) for t in range(steps))


def check_pruning_arguments(model: nn.Module, data: Splits, target_sparsity: float, criterion: str, momentum: float,
                            weight_decay: float, batch_size: int, seed: int) -> dict[str, Any]:
    """Check the arguments every phased method shares and that the criterion can reach the target; return them."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(data, Splits):
        raise TypeError(f"data must be kit.data.Splits (from kit.data.load); got {type(data).__name__}")
    prunable(model)  # raises if there is nothing to prune
    args = dict(target_sparsity=check_sparsity(target_sparsity, "target_sparsity"),
                criterion=check_choice(criterion, "criterion", tuple(CRITERIA)),
                momentum=check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True),
                weight_decay=check_float(weight_decay, "weight_decay", low=0.0),
                batch_size=check_int(batch_size, "batch_size", low=1), seed=check_seed(seed))
    # masks only, nothing applied: a target the criterion cannot reach (uniform_plus on a small model,
    # a model already pruned further) fails now rather than after hours of retraining
    masks_for(args["criterion"], model, args["target_sparsity"],
              **({"seed": 0} if args["criterion"] == "random" else {}))
    return args


def check_retrain_schedule(schedule: str) -> str:
    """A retraining schedule's name (any case) as its canonical upper-case name."""
    if not (isinstance(schedule, str) and schedule.upper() in RETRAIN_SCHEDULES):
        check_choice(schedule, "schedule", RETRAIN_SCHEDULES)
    return schedule.upper()


def check_train_schedule(train_schedule: Schedule | float) -> Schedule:
    """The dense training's schedule (a callable step -> lr, or a constant lr) as a schedule."""
    if isinstance(train_schedule, bool) or not (callable(train_schedule) or isinstance(train_schedule, Real)):
        raise TypeError(f"train_schedule must be a callable step -> lr or a constant lr; "
                        f"got {type(train_schedule).__name__}")
    return as_schedule(train_schedule, 0.0)


@dataclass
class PruneRecord:
    """What every phase record starts with: the pruning step and the test accuracy right after it and at the
    phase's end (IMP's :class:`~kit.pruning.PhaseResult`, the soups' :class:`~kit.soups.SoupPhase`)."""

    phase: int
    target_sparsity: float
    sparsity: float
    zeros: int
    total: int
    pruned_fraction: float
    distance: float
    accuracy_pruned: float
    accuracy: float


class PhasedResult:
    """What every phased run's result shares (mixed into IMP's and the soups' result dataclasses): the final
    sparsity and accuracy, and one table row per phase. Needs ``method``, ``phases`` and ``dense_accuracy``."""

    method: str
    phases: list
    dense_accuracy: float

    @property
    def sparsity(self) -> float:
        """Global sparsity of the final model (0 if nothing was pruned)."""
        return self.phases[-1].sparsity if self.phases else 0.0

    @property
    def accuracy(self) -> float:
        """Test accuracy of the final model."""
        return self.phases[-1].accuracy if self.phases else self.dense_accuracy

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per phase (no histories), ready for a table or a DataFrame."""
        return [{"method": self.method, **p.row()} for p in self.phases]


def run_fingerprints(model: nn.Module, data: Splits, train_schedule: Schedule | None = None,
                     train_steps: int | None = None) -> dict[str, str]:
    """What a phased run's checkpoints are tied to, by content: the starting model, the data, the dense schedule."""
    prints = {"model_sha256": fingerprint_model(model), "data_sha256": fingerprint_data(data)}
    if train_schedule is not None:
        prints["train_schedule_sha256"] = fingerprint_schedule(train_schedule, train_steps)
    return prints


__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_PREFIX", "PhasedResult", "PruneRecord", "PruneStep", "accuracy",
           "check_pruning_arguments", "check_retrain_schedule", "check_train_schedule", "lr_peak", "phase_epochs",
           "phase_seed", "phase_sparsity", "prune_step", "run_fingerprints"]
