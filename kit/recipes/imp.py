"""Notebook 03 (IMP revisited): its experiments, shared by the notebook, its tests and bench/pruning.py.

Dense models are trained once per seed with a linearly decaying learning rate; IMP then prunes each
to a target sparsity in a few phases with a given retraining schedule and criterion. GMP trains
from scratch while pruning, with the same total epochs as dense training plus retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import data as data_mod
from ..budget import PerBudget, get_device
from ..models import create
from ..pruning import RETRAIN_SCHEDULES, ImpResult, gmp, imp, retrain_schedule
from ..schedules import Linear, steps_per_epoch
from ..seeding import seed_everything
from ..validate import check_float, check_int
from .common import ClassifierRun, train_classifier
from .grid import ResultGrid

EPOCHS = PerBudget(smoke=1, cpu=10, gpu=100)  # dense training
RETRAIN_EPOCHS = PerBudget(smoke=3, cpu=3, gpu=30)  # retraining budget, split across the phases
PHASES = 3
LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
BATCH_SIZE = 128
SPARSITIES = (0.8, 0.9, 0.95, 0.98)
CNN = {"global_pool": False}  # kit.models.SmallCNN with a head on the whole feature map: trains in 10 epochs


@dataclass
class DenseRun:
    """A dense model trained with the linearly decaying schedule, and that schedule (IMP derives from it)."""

    run: ClassifierRun
    schedule: Linear
    steps: int
    seed: int


def train_dense(data, seed: int, epochs: int, model: str = "mlp", progress: bool = False, device=None,
                **model_kwargs) -> DenseRun:
    """Train a dense model with SGD (momentum, weight decay) and lr decaying linearly from LR to 0."""
    splits = data if isinstance(data, data_mod.Splits) else data_mod.load(data, seed=seed)
    steps = epochs * steps_per_epoch(len(splits.train), BATCH_SIZE)
    schedule = Linear(LR, 0.0, steps)
    run = train_classifier(splits, model, seed=seed, epochs=epochs, lr=LR, progress=progress, device=device,
                           fit_kwargs={"momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY, "lr_schedule": schedule,
                                       "batch_size": BATCH_SIZE}, **model_kwargs)
    return DenseRun(run, schedule, steps, seed)


def prune(dense: DenseRun, target_sparsity: float, *, schedule: str = "SLR", criterion: str = "global",
          phases: int = PHASES, retrain_epochs: int = 3, original_final_lr: float | None = None,
          progress: bool = False, device=None, checkpoint_dir=None) -> ImpResult:
    """IMP from a dense run: ``phases`` prune-retrain phases to ``target_sparsity`` (the dense model untouched).

    ``original_final_lr`` derives the retraining schedule as if the original schedule had decayed linearly
    from LR to that rate instead of to 0 (same dense model): FT retrains at about that rate, which is how
    FT's result depends on the schedule the model was trained with.
    """
    train_schedule = dense.schedule
    if original_final_lr is not None:
        train_schedule = Linear(LR, check_float(original_final_lr, "original_final_lr", low=0.0, high=LR), dense.steps)
    return imp(dense.run.model, dense.run.data, target_sparsity=target_sparsity, phases=phases,
               retrain_epochs=retrain_epochs, train_schedule=train_schedule, train_steps=dense.steps,
               schedule=schedule, criterion=criterion, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
               batch_size=BATCH_SIZE, seed=dense.seed, progress=progress, device=device,
               checkpoint_dir=checkpoint_dir)


def gmp_run(data, seed: int, target_sparsity: float, epochs: int, model: str = "mlp", progress: bool = False,
            device=None, **model_kwargs) -> ImpResult:
    """GMP from scratch for ``epochs`` (pruning from 10% to 70% of the run, every epoch), same SGD settings."""
    splits = data if isinstance(data, data_mod.Splits) else data_mod.load(data, seed=seed)
    seed_everything(seed)
    net = create(model, splits.input_shape, splits.num_classes, **model_kwargs).to(get_device(device))
    start, end = max(0, round(0.1 * epochs)), max(1, round(0.7 * epochs))
    return gmp(net, splits, target_sparsity=target_sparsity, epochs=epochs, start_epoch=start, end_epoch=end,
               interval_epochs=1, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, batch_size=BATCH_SIZE,
               seed=seed, progress=progress, device=device)


def sparsity_grid(sparsities: Sequence[float], dense: Sequence[float] = ()) -> ResultGrid:
    """A result grid over sparsities (columns '80%', '90%', ...), the dense accuracies as its reference."""
    return ResultGrid(tuple(sparsities), label_key="setting", column="{:.0%}",
                      reference={"dense": list(dense)} if dense else {})


def compare(dense_runs: Sequence[DenseRun], sparsities: Sequence[float], settings: dict[str, dict],
            phases: int = PHASES, retrain_epochs: int = 3, progress: bool = False, device=None) -> ResultGrid:
    """IMP from every dense run to every sparsity with each setting (label -> {'schedule', 'criterion'})."""
    if not dense_runs:
        raise ValueError("dense_runs is empty")
    if not settings:
        raise ValueError("settings is empty")
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=0)
    grid = sparsity_grid(sparsities, dense=[d.run.test["accuracy"] for d in dense_runs])
    for label, options in settings.items():
        for s in grid.levels:
            for dense in dense_runs:
                result = prune(dense, s, phases=phases, retrain_epochs=retrain_epochs, progress=progress,
                               device=device, **options)
                grid.add(label, s, result.accuracy)
    return grid


# FT's constant rate is the original schedule's last one: 0.1 / 320 steps here (the dense run decays to 0).
FT_FINAL_LRS = (None, 1e-3, 3e-3, 1e-2, 3e-2)


def ft_sensitivity(dense_runs: Sequence[DenseRun], sparsities: Sequence[float],
                   final_lrs: Sequence[float | None] = FT_FINAL_LRS, retrain_epochs: int = 3,
                   progress: bool = False, device=None) -> ResultGrid:
    """IMP + FT at each sparsity with the original schedule ending at each rate (None: the dense run's own);
    labelled by the rate FT retrains at, the original schedule's last one ('FT at lr 0.0003 (own schedule)')."""
    grid = sparsity_grid(sparsities, dense=[d.run.test["accuracy"] for d in dense_runs])
    for final in final_lrs:
        for s in grid.levels:
            for dense in dense_runs:
                schedule = dense.schedule if final is None else Linear(LR, final, dense.steps)
                label = f"FT at lr {schedule(dense.steps - 1):.2g}" + (" (own schedule)" if final is None else "")
                grid.add(label, s, prune(dense, s, schedule="FT", retrain_epochs=retrain_epochs,
                                         original_final_lr=final, progress=progress, device=device).accuracy)
    return grid


def retraining_curve(dense_runs: Sequence[DenseRun], sparsity: float, budgets: Sequence[int],
                     schedule: str = "SLR", phases: int = PHASES, progress: bool = False,
                     device=None) -> list[list[float]]:
    """Test accuracy after IMP to ``sparsity`` for each retraining budget (epochs): an array (seeds, budgets)."""
    if not budgets:
        raise ValueError("budgets is empty")
    budgets = [check_int(b, "budgets[i]", low=0) for b in budgets]
    return [[prune(dense, sparsity, schedule=schedule, phases=phases, retrain_epochs=b, progress=progress,
                   device=device).accuracy for b in budgets] for dense in dense_runs]


def cycle_trace(result: ImpResult) -> tuple[list[float], list[float]]:
    """The prune-retrain sawtooth of one IMP run: (x in phases, test accuracy), dense first, then for each
    phase the accuracy right after pruning and after retraining."""
    x, y = [0.0], [result.dense_accuracy]
    for p in result.phases:
        x += [p.phase - 1 + 1e-3, float(p.phase)]  # the drop is (almost) vertical: pruning is instantaneous
        y += [p.accuracy_pruned, p.accuracy]
    return x, y


def schedule_curves(dense: DenseRun, retrain_steps: int, distance: float = 0.3,
                    pruned_fraction: float = 0.5) -> dict[str, list[float]]:
    """Every retraining schedule's learning rate at each retraining step (ALLR at the given d and p)."""
    retrain_steps = check_int(retrain_steps, "retrain_steps", low=1)
    return {name: [sched(t) for t in range(retrain_steps)]
            for name, sched in ((n, retrain_schedule(n, retrain_steps=retrain_steps, train_schedule=dense.schedule,
                                                     train_steps=dense.steps, distance=distance,
                                                     pruned_fraction=pruned_fraction))
                                for n in RETRAIN_SCHEDULES)}


__all__ = [
    "BATCH_SIZE",
    "CNN",
    "EPOCHS",
    "FT_FINAL_LRS",
    "LR",
    "MOMENTUM",
    "PHASES",
    "RETRAIN_EPOCHS",
    "SPARSITIES",
    "WEIGHT_DECAY",
    "DenseRun",
    "compare",
    "cycle_trace",
    "ft_sensitivity",
    "gmp_run",
    "prune",
    "retraining_curve",
    "schedule_curves",
    "sparsity_grid",
    "train_dense",
]
