"""Notebook 04 (Sparse Model Soups): its experiments, shared by the notebook, its tests and bench/soups.py.

Dense models come from :func:`kit.recipes.imp.train_dense` (notebook 03's recipe). From each,
:func:`compare_sms_imp` runs SMS (``ingredients`` copies per phase, ``retrain_epochs`` each) and IMP
with the same *total* retraining, ``ingredients * retrain_epochs`` epochs (the compute of the whole
soup), at each sparsity. On a model with BatchNorm every ingredient, the soup and the IMP model get
their BatchNorm statistics recomputed on the training split, so the comparison credits averaging
with what averaging does and not with what recalibration alone does. :func:`interpolation` draws
the accuracy along the straight line between two retrained copies of one pruned model (one basin,
one mask) and between two dense models trained from different seeds (two basins).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..budget import PerBudget
from ..pruning import apply_masks, copy_model, global_magnitude_masks, imp, retrain_schedule, sparsity_report
from ..schedules import steps_per_epoch
from ..soups import MERGE, VARY, SoupResult, interpolate, recalibrate_batchnorm, sparse_model_soup, uniform_soup
from ..soups.merging import has_batchnorm
from ..train import evaluate, fit
from ..validate import check_choice, check_int
from .grid import ResultGrid
from .imp import BATCH_SIZE, MOMENTUM, WEIGHT_DECAY, DenseRun, sparsity_grid

RETRAIN_EPOCHS = PerBudget(smoke=1, cpu=2, gpu=10)  # per ingredient and phase (IMP gets ingredients times this)
INGREDIENTS = 3
PHASES = 1
SCHEDULE = "SLR"
# what the soup's ingredients report, and IMP with the same total retraining
LABELS = ("soup", "best ingredient", "ensemble", "IMP")


def sms(dense: DenseRun, target_sparsity: float, *, ingredients: int = INGREDIENTS, vary: str = "seed",
        merge: str = "uniform", phases: int = PHASES, retrain_epochs: int = 2, schedule: str = SCHEDULE,
        values: Sequence[float] | None = None, workers: int = 1, progress: bool = False, device=None) -> SoupResult:
    """SMS from a dense run with notebook 03's SGD settings; ``retrain_epochs`` per ingredient and phase.

    Ingredients get recalibrated BatchNorm statistics too (where the model has BatchNorm), for a fair
    soup-vs-ingredient comparison.
    """
    phases = check_int(phases, "phases", low=1)
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=1)
    return sparse_model_soup(dense.run.model, dense.run.data, target_sparsity=target_sparsity, phases=phases,
                             ingredients=ingredients, retrain_epochs=phases * retrain_epochs,
                             train_schedule=dense.schedule, train_steps=dense.steps, vary=vary, merge=merge,
                             values=values, schedule=schedule, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                             batch_size=BATCH_SIZE, recalibrate_ingredients=True, seed=dense.seed, workers=workers,
                             progress=progress, device=device)


def imp_equal_budget(dense: DenseRun, target_sparsity: float, *, ingredients: int = INGREDIENTS,
                     phases: int = PHASES, retrain_epochs: int = 2, schedule: str = SCHEDULE, progress: bool = False,
                     device=None) -> float:
    """Test accuracy of IMP with ``ingredients * retrain_epochs`` epochs per phase (the soup's total retraining),
    its BatchNorm statistics recomputed on the training split where the model has BatchNorm."""
    phases = check_int(phases, "phases", low=1)
    ingredients = check_int(ingredients, "ingredients", low=1)
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=1)
    result = imp(dense.run.model, dense.run.data, target_sparsity=target_sparsity, phases=phases,
                 retrain_epochs=phases * ingredients * retrain_epochs, train_schedule=dense.schedule,
                 train_steps=dense.steps, schedule=schedule, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                 batch_size=BATCH_SIZE, seed=dense.seed, progress=progress, device=device)
    if not has_batchnorm(result.model):
        return result.accuracy
    recalibrate_batchnorm(result.model, dense.run.data.train, batch_size=BATCH_SIZE, seed=dense.seed, device=device)
    return float(evaluate(result.model, dense.run.data.test, device=device)["accuracy"])


@dataclass
class SoupGrid:
    """Test accuracy (``accuracy``) and ECE (``ece``) per label of :data:`LABELS` and sparsity, one value per seed.

    ``runs`` keeps every SMS result's table rows (last phase), ``sparsity_equal`` whether the soup's
    and every ingredient's zero counts matched in every run.
    """

    accuracy: ResultGrid
    ece: ResultGrid
    runs: list[dict] = field(default_factory=list)
    sparsity_equal: bool = True

    def gain(self, sparsity: float, over: str = "best ingredient") -> list[float]:
        """Soup minus ``over`` per seed at ``sparsity`` (positive: the soup is better)."""
        return self.accuracy.gain("soup", over, sparsity)

    def rows(self) -> list[dict]:
        """One row per sparsity: mean accuracy of each label, mean soup ECE and best-ingredient ECE."""
        out = []
        for s in self.accuracy.levels:
            row = {"sparsity": s, **{k: self.accuracy.mean(k, s) for k in self.accuracy.labels}}
            row.update({f"ECE {k}": self.ece.mean(k, s) for k in self.ece.labels})
            out.append(row)
        return out

    def to_dict(self) -> dict:
        """Plain numbers for JSON."""
        return {"accuracy": self.accuracy.to_dict(), "ece": self.ece.to_dict(), "rows": self.rows(),
                "sparsity_equal": self.sparsity_equal, "runs": self.runs}


def compare_sms_imp(dense_runs: Sequence[DenseRun], sparsities: Sequence[float], *, ingredients: int = INGREDIENTS,
                    vary: str = "seed", merge: str = "uniform", phases: int = PHASES, retrain_epochs: int = 2,
                    schedule: str = SCHEDULE, values: Sequence[float] | None = None, include_imp: bool = True,
                    workers: int = 1, progress: bool = False, device=None) -> SoupGrid:
    """SMS and IMP (same total retraining) from every dense run to every sparsity.

    Per (sparsity, seed): the soup's test accuracy, its best ingredient's (by validation accuracy),
    the output ensemble's and IMP's; the ECE of soup, best ingredient and ensemble.
    """
    if not dense_runs:
        raise ValueError("dense_runs is empty")
    if not sparsities:
        raise ValueError("sparsities is empty")
    check_choice(vary, "vary", VARY)
    check_choice(merge, "merge", MERGE)
    acc = sparsity_grid(sparsities, dense=[d.run.test["accuracy"] for d in dense_runs])
    ece = sparsity_grid(sparsities)
    grid = SoupGrid(acc, ece)
    for s in acc.levels:
        for dense in dense_runs:
            result = sms(dense, s, ingredients=ingredients, vary=vary, merge=merge, phases=phases,
                         retrain_epochs=retrain_epochs, schedule=schedule, values=values, workers=workers,
                         progress=progress, device=device)
            last = result.phases[-1]
            acc.add("soup", s, last.accuracy)
            acc.add("best ingredient", s, last.best_accuracy)
            acc.add("ensemble", s, last.ensemble_accuracy)
            ece.add("soup", s, last.ece)
            ece.add("best ingredient", s, last.best_ece)
            ece.add("ensemble", s, last.ensemble_ece)
            grid.sparsity_equal &= all(x.zeros == last.zeros for x in last.ingredients)
            grid.runs.append({"seed": dense.seed, **last.row()})
            if include_imp:
                acc.add("IMP", s, imp_equal_budget(dense, s, ingredients=ingredients, phases=phases,
                                                   retrain_epochs=retrain_epochs, schedule=schedule,
                                                   progress=progress, device=device))
    return grid


def mean_gain(grid: SoupGrid, over: str = "best ingredient") -> float:
    """The soup's mean advantage over ``over`` across sparsities and seeds."""
    return statistics.mean(g for s in grid.accuracy.levels for g in grid.gain(s, over))


def retrained_copies(dense: DenseRun, sparsity: float, seeds: Sequence[int] = (0, 1), *, retrain_epochs: int = 2,
                     schedule: str = SCHEDULE, device=None) -> list:
    """One global-magnitude pruning of the dense model, then one retrained copy per seed (batch order): same mask."""
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=1)
    pruned = copy_model(dense.run.model)
    apply_masks(pruned, global_magnitude_masks(pruned, sparsity))
    data = dense.run.data
    steps = retrain_epochs * steps_per_epoch(len(data.train), BATCH_SIZE)
    lr = retrain_schedule(schedule, retrain_steps=steps, train_schedule=dense.schedule, train_steps=dense.steps)
    copies = []
    for seed in seeds:
        model = copy_model(pruned)
        fit(model, data.train, epochs=retrain_epochs, lr=lr(0), lr_schedule=lr, momentum=MOMENTUM,
            weight_decay=WEIGHT_DECAY, batch_size=BATCH_SIZE, seed=seed, device=device, progress=False)
        if has_batchnorm(model):
            recalibrate_batchnorm(model, data.train, batch_size=BATCH_SIZE, seed=seed, device=device)
        copies.append(model)
    return copies


@dataclass
class Interpolation:
    """Accuracy curves along alphas (label -> one value per alpha) and the sparsity of A, B and their average."""

    alphas: list[float]
    curves: dict[str, list[float]]
    sparsity: dict[str, float]


def interpolation(dense_a: DenseRun, dense_b: DenseRun, sparsity: float, alphas: Sequence[float], *,
                  retrain_epochs: int = 2, schedule: str = SCHEDULE, device=None) -> Interpolation:
    """Test accuracy along (1 - alpha) A + alpha B for two retrained copies of ``dense_a`` pruned to ``sparsity``
    (one basin, one mask), and for the two dense models (different seeds: two basins; train both on the same
    splits), with recomputed BatchNorm statistics where the model has BatchNorm."""
    a, b = retrained_copies(dense_a, sparsity, (dense_a.seed, dense_a.seed + 1), retrain_epochs=retrain_epochs,
                            schedule=schedule, device=device)
    data = dense_a.run.data
    same = interpolate(a, b, alphas, data.test, recalibrate_data=data.train, seed=dense_a.seed, device=device)
    dense = interpolate(dense_a.run.model, dense_b.run.model, alphas, data.test, recalibrate_data=data.train,
                        seed=dense_a.seed, device=device)
    curves = {f"two retrained copies, one mask ({sparsity:.0%} sparse)": same,
              "two dense models, different seeds": dense}
    return Interpolation([float(x) for x in alphas], curves,
                         {"copy A": sparsity_report(a).sparsity, "copy B": sparsity_report(b).sparsity,
                          "their average": sparsity_report(uniform_soup([a, b])).sparsity})


__all__ = ["INGREDIENTS", "LABELS", "PHASES", "RETRAIN_EPOCHS", "SCHEDULE", "Interpolation", "SoupGrid",
           "compare_sms_imp", "imp_equal_budget", "interpolation", "mean_gain", "retrained_copies", "sms"]
