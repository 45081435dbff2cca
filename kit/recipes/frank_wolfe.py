"""Notebook 01 (Frank-Wolfe training): its experiments, shared by the notebook, its tests and bench/frank_wolfe.py.

SGD with momentum and weight decay against SFW over several regions on one MLP; weight statistics
per region; the effect of the learning-rate rescaling.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ..budget import PerBudget
from ..frankwolfe import PenalizedSGD, sfw_setup
from ..validate import check_int
from .common import ClassifierRun, train_classifier
from .grid import ResultGrid

EPOCHS = PerBudget(smoke=2, cpu=10, gpu=60)
SGD_SETTINGS = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}
K_FRACTION = 0.05  # k = 5% of each layer's entries for the k-sparse and k-support regions
K_REGIONS = ("k_sparse", "k_support", "group_k_support", "spectral_k_support")
WIDTH = 10.0  # L2 diameter = 2 * WIDTH * E||theta_0||, per layer


@dataclass(frozen=True)
class Method:
    """One way to train: SGD (weight decay, or a penalty instead), or SFW over a region."""

    label: str
    region: str | None = None  # None: SGD with momentum, and weight decay unless a penalty is given
    rescale: str | None = "gradient"
    lr: float = 1.0  # SFW's learning rate; SGD and the penalty baselines use sgd_lr
    sgd_lr: float = SGD_SETTINGS["lr"]
    width: float = WIDTH
    k: float | None = None  # None: K_FRACTION for the regions that need k
    penalty: str | None = None  # 'l1', 'group_lasso' or 'nuclear' (kit.frankwolfe.penalties)
    strength: float = 0.0
    prox: bool = False
    options: dict = field(default_factory=dict)

    def optimizer_for(self) -> Callable[[nn.Module], torch.optim.Optimizer] | None:
        """A function model -> optimizer, or None for plain SGD with weight decay (kit.train.fit's own)."""
        if self.region is not None:
            k = (self.k or K_FRACTION) if self.region in K_REGIONS else None
            return sfw_setup(self.region, width=self.width, lr=self.lr, rescale=self.rescale, k=k, **self.options)
        if self.penalty is not None:
            return lambda model: PenalizedSGD(model.parameters(), lr=self.sgd_lr, penalty=self.penalty,
                                              strength=self.strength, prox=self.prox,
                                              momentum=SGD_SETTINGS["momentum"])
        return None

    def run(self, data, seed: int, epochs: int, progress: bool = False, device=None, model: str = "mlp",
            **model_kwargs) -> ClassifierRun:
        """Train ``model`` (default the MLP) on ``data`` (a name or kit.data.Splits) with this method."""
        setup = self.optimizer_for()
        if setup is None:
            return train_classifier(data, model, seed=seed, epochs=epochs, lr=self.sgd_lr, progress=progress,
                                    device=device, fit_kwargs={"momentum": SGD_SETTINGS["momentum"],
                                                               "weight_decay": SGD_SETTINGS["weight_decay"]},
                                    **model_kwargs)
        lr = self.lr if self.region is not None else self.sgd_lr
        return train_classifier(data, model, seed=seed, epochs=epochs, lr=lr, progress=progress, device=device,
                                optimizer_for=setup, **model_kwargs)


SGD = Method("SGD + weight decay")
REGIONS = (
    Method("SFW L2 ball", "l2"),
    Method("SFW L-inf ball", "linf"),
    Method("SFW L1 ball", "l1"),
    Method("SFW k-sparse polytope", "k_sparse"),
    Method("SFW k-support ball", "k_support"),
)
RESCALING = (  # the same region, three ways to turn lr into a step size
    Method("L2, gradient rescaling (lr 1.0)", "l2", "gradient", 1.0),
    Method("L2, diameter rescaling (lr 1.0)", "l2", "diameter", 1.0),
    Method("L2, no rescaling (lr 0.01)", "l2", None, 0.01),
)
SHAPE = (  # tight regions (width 1), where the region's shape shows in the weights
    SGD,
    Method("SFW L-inf ball, width 1", "linf", width=1.0),
    Method("SFW k-sparse polytope, width 1", "k_sparse", width=1.0),
    Method("SFW L1 ball, width 1", "l1", width=1.0),
)


@dataclass
class Comparison:
    """Test accuracy of every method on every seed (``grid``, one column), and the trained runs by method label."""

    grid: ResultGrid
    runs: dict[str, list[ClassifierRun]]
    seeds: list[int]
    epochs: int

    def rows(self) -> list[dict]:
        """One row per method: mean, std and the per-seed accuracies."""
        return self.grid.rows()


def compare(methods: Sequence[Method], data, seeds: Sequence[int] = (0, 1, 2), epochs: int = 10,
            progress: bool = True, device=None, model: str = "mlp", **model_kwargs) -> Comparison:
    """Train every method on every seed and test it."""
    if not methods:
        raise ValueError("methods is empty")
    epochs = check_int(epochs, "epochs", low=1)
    if not seeds:
        raise ValueError("seeds is empty")
    grid, runs = ResultGrid(label_key="method"), {}
    for method in methods:
        runs[method.label] = [method.run(data, s, epochs, progress, device, model, **model_kwargs) for s in seeds]
        for run in runs[method.label]:
            grid.add(method.label, None, run.test["accuracy"])
    return Comparison(grid, runs, list(seeds), epochs)


# At convergence (issue: 10 epochs leave SGD itself undertrained): each method's learning rate chosen from a
# small grid by mean validation accuracy over the seeds, then compared on test accuracy, paired by seed.
CONVERGED_EPOCHS = PerBudget(smoke=3, cpu=40, gpu=200)
CONVERGED = (SGD, *(m for m in REGIONS if m.region != "l1"))  # L1 cannot train this network at any budget
LR_GRID = {"sgd": (0.03, 0.1, 0.3), "sfw": (0.3, 1.0)}


def with_lr(method: Method, lr: float) -> Method:
    """The same method at another learning rate (SGD's or SFW's, whichever it uses)."""
    return replace(method, sgd_lr=lr) if method.region is None else replace(method, lr=lr)


@dataclass
class Tuned:
    """Per method: the learning rate picked by validation accuracy, and the test accuracies at that rate."""

    comparison: Comparison
    lrs: dict[str, float]
    validation: dict[str, dict[float, float]]  # label -> lr -> mean final validation accuracy

    def paired_gaps(self, reference: str = SGD.label) -> dict[str, list[float]]:
        """``reference`` minus each method, seed by seed (same split and initialization): positive = behind."""
        ref = self.comparison.grid.get(reference)
        return {label: [a - b for a, b in zip(ref, self.comparison.grid.get(label), strict=True)]
                for label in self.comparison.grid.labels if label != reference}


def tuned(methods: Sequence[Method], data, seeds: Sequence[int] = (0, 1, 2), epochs: int = 40,
          lr_grid: dict[str, Sequence[float]] | None = None, progress: bool = False, device=None) -> Tuned:
    """Every method at every learning rate of its grid (``sgd`` or ``sfw``); keep the rate with the best mean
    final validation accuracy (test accuracy never chooses)."""
    lr_grid = LR_GRID if lr_grid is None else lr_grid
    grid, runs, lrs, validation = ResultGrid(label_key="method"), {}, {}, {}
    for method in methods:
        candidates = lr_grid["sgd" if method.region is None else "sfw"]
        trials = {lr: compare((with_lr(method, lr),), data, seeds, epochs, progress, device) for lr in candidates}
        validation[method.label] = {lr: statistics.fmean(r.history["val_accuracy"][-1] for r in c.runs[method.label])
                                    for lr, c in trials.items()}
        best = max(candidates, key=lambda lr: (validation[method.label][lr], -lr))
        lrs[method.label], runs[method.label] = best, trials[best].runs[method.label]
        for run in runs[method.label]:
            grid.add(method.label, None, run.test["accuracy"])
    return Tuned(Comparison(grid, runs, list(seeds), epochs), lrs, validation)


def weight_statistics(model: torch.nn.Module, radius: float | None = None) -> dict[str, float]:
    """Of the first layer's weights: fraction near zero (|w| < 1% of max) and near the extremes (> 90% of max)."""
    w = next(p for p in model.parameters() if p.dim() > 1).detach().abs().flatten()
    top = float(w.max()) if radius is None else radius
    return {"near_zero": float((w < 0.01 * top).float().mean()), "near_extreme": float((w > 0.9 * top).float().mean())}


__all__ = ["CONVERGED", "CONVERGED_EPOCHS", "EPOCHS", "K_FRACTION", "K_REGIONS", "LR_GRID", "REGIONS", "RESCALING",
           "SGD", "SGD_SETTINGS", "SHAPE", "WIDTH", "Comparison", "Method", "Tuned", "compare", "tuned",
           "weight_statistics", "with_lr"]
