"""Notebook 02 (compression-aware training): its experiments, shared by the notebook, its tests and bench.

Train once (dense), then compress the trained model without retraining and measure test accuracy:
global magnitude pruning (unstructured), per-layer L1 filter pruning (structured), per-layer
truncated SVD (low rank). SFW in k-support balls against SGD with weight decay and the penalty
baselines of :mod:`kit.frankwolfe.penalties`. This recipe combines two methods: SFW trains, pruning
evaluates.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import pruning
from ..budget import PerBudget
from ..validate import check_choice, check_int
from .common import ClassifierRun
from .frank_wolfe import SGD, Method
from .grid import ResultGrid

EPOCHS = PerBudget(smoke=1, cpu=10, gpu=60)
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)  # fraction of weights removed (global magnitude)
FILTER_FRACTIONS = (0.1, 0.25, 0.5, 0.75)  # fraction of each conv layer's filters removed
RANK_SPARSITIES = (0.5, 0.9, 0.95, 0.98)  # fraction of each layer's rank removed (output layer kept)
K = 0.1  # k-support: 10% of each layer's entries (groups, singular values)
WIDTH = 100.0  # L2 diameter = 2 * WIDTH * E||theta_0||: a loose ball, so k decides the shape
CNN = {"global_pool": False}  # kit.models.SmallCNN reading the whole feature map: trains in 10 epochs

L1 = Method("SGD + L1 penalty", penalty="l1", strength=3e-4)
PROX = Method("prox-SGD (L1 soft threshold)", penalty="l1", strength=1e-3, prox=True)
GROUP_LASSO = Method("SGD + group-lasso penalty", penalty="group_lasso", strength=1e-3)
GROUP_LASSO_STRONG = Method("SGD + group-lasso penalty (1e-2)", penalty="group_lasso", strength=1e-2)
NUCLEAR = Method("SGD + nuclear-norm penalty", penalty="nuclear", strength=3e-3)
SFW_L2 = Method("SFW L2 ball", "l2")  # notebook 01's settings: width 10, lr 1, gradient rescaling
SFW_K_SPARSE = Method("SFW k-sparse polytope", "k_sparse")  # notebook 01's settings, k = 5%
K_SUPPORT = Method("SFW k-support ball", "k_support", k=K, width=WIDTH, lr=1.0)
# conv nets: biases and BatchNorm scales in L2 balls; the structured regions act on the weights
K_SUPPORT_CNN = Method("SFW k-support ball", "k_support", k=K, width=WIDTH, options={"by_dims": {1: "l2"}})
GROUP_K_SUPPORT = Method("SFW group k-support ball", "group_k_support", k=K, width=WIDTH,
                         options={"by_dims": {1: "l2", 2: "k_support"}})
SPECTRAL_K_SUPPORT = Method("SFW spectral k-support ball", "spectral_k_support", k=K, width=WIDTH,
                            options={"by_dims": {1: "l2"}})

UNSTRUCTURED = (SGD, L1, PROX, GROUP_LASSO, SFW_L2, SFW_K_SPARSE, K_SUPPORT)  # global magnitude pruning
UNSTRUCTURED_CNN = (*UNSTRUCTURED[:-1], K_SUPPORT_CNN)
MLP_METHODS = (*UNSTRUCTURED[:-1], NUCLEAR, K_SUPPORT, SPECTRAL_K_SUPPORT)  # every MLP model of notebook 02
CNN_METHODS = (*UNSTRUCTURED_CNN, GROUP_LASSO_STRONG, GROUP_K_SUPPORT)  # every CNN model of notebook 02
FILTERS = (SGD, GROUP_LASSO_STRONG, K_SUPPORT_CNN, GROUP_K_SUPPORT)  # CNN, filter pruning
LOW_RANK = (SGD, NUCLEAR, K_SUPPORT, SPECTRAL_K_SUPPORT)  # MLP, truncated SVD
HOW = ("global", "filters", "rank")


def compress(model: nn.Module, how: str, level: float, input_shape: Sequence[int]) -> pruning.Compressed:
    """A compressed copy of ``model``: 'global' magnitude pruning to sparsity ``level``, 'filters' (remove
    that fraction of each conv layer's filters) or 'rank' (remove that fraction of the rank of every
    layer but the output layer, whose rank bound is the number of classes)."""
    check_choice(how, "how", HOW)
    if how == "global":
        return pruning.prune_global(model, level, input_shape=input_shape)
    if how == "filters":
        return pruning.prune_filters(model, level, input_shape=input_shape)
    output_layer = pruning.prunable(model)[-1][0]
    return pruning.svd_split(model, level, input_shape=input_shape, keep=[output_layer])


@dataclass
class Sweep:
    """Test accuracy of each method per seed: dense (``dense_grid``) and after compression at each level (``grid``)."""

    how: str
    levels: tuple[float, ...]
    seeds: list[int]
    grid: ResultGrid = field(init=False)
    dense_grid: ResultGrid = field(init=False)
    params_ratio: dict[str, dict[float, float]] = field(default_factory=dict)
    runs: dict[str, list[ClassifierRun]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.grid = ResultGrid(self.levels, label_key="method", column=f"{self.how} {{:g}}")
        self.dense_grid = ResultGrid(label_key="method")

    @property
    def dense(self) -> dict[str, list[float]]:
        """Dense test accuracy per method, one per seed."""
        return {label: self.dense_grid.get(label) for label in self.dense_grid.labels}

    @property
    def compressed(self) -> dict[str, dict[float, list[float]]]:
        """Test accuracy after compression per method and level, one per seed."""
        return self.grid.values

    def mean(self, label: str, level: float | None = None) -> float:
        """Mean test accuracy over seeds (dense when ``level`` is None)."""
        return self.dense_grid.mean(label) if level is None else self.grid.mean(label, level)

    def rows(self) -> list[dict]:
        """One row per method: dense and per-level mean accuracies (for tables and JSON)."""
        return [{"method": row["method"], "dense": self.mean(row["method"]), **{k: v for k, v in row.items()
                                                                                if k != "method"}}
                for row in self.grid.rows()]

    def curves(self) -> dict[str, list[list[float]]]:
        """Per method, an array (seeds, levels) of accuracies: the input of kit.plots.band_curves."""
        return self.grid.curves()

    def to_dict(self) -> dict:
        """The numbers, without models (for JSON)."""
        return {"how": self.how, "levels": list(self.levels), "seeds": self.seeds, "dense": self.dense,
                "compressed": self.grid.to_dict()["values"],
                "params_ratio": {label: {str(k): v for k, v in r.items()} for label, r in self.params_ratio.items()}}


def train(methods: Sequence[Method], data, seeds: Sequence[int] = (0, 1, 2), epochs: int = 10, model: str = "mlp",
          progress: bool = True, device=None, **model_kwargs) -> dict[str, list[ClassifierRun]]:
    """Train every method on every seed (dense); the runs by method label."""
    if not methods:
        raise ValueError("methods is empty")
    if not seeds:
        raise ValueError("seeds is empty")
    epochs = check_int(epochs, "epochs", low=1)
    return {m.label: [m.run(data, s, epochs, progress, device, model, **model_kwargs) for s in seeds] for m in methods}


def evaluate(runs: dict[str, list[ClassifierRun]], how: str, levels: Sequence[float],
             seeds: Sequence[int] | None = None) -> Sweep:
    """Compress every trained model at every level and test it without retraining (``seeds``: the runs' seeds)."""
    check_choice(how, "how", HOW)
    if not runs:
        raise ValueError("runs is empty")
    if not levels:
        raise ValueError("levels is empty")
    levels = tuple(pruning.check_sparsity(level, "levels[i]") for level in levels)
    result = Sweep(how, levels, list(seeds) if seeds is not None else list(range(len(next(iter(runs.values()))))))
    for label, trained in runs.items():
        result.runs[label] = trained
        for run in trained:
            result.dense_grid.add(label, None, run.test["accuracy"])
        result.params_ratio[label] = {}
        for level in levels:
            for run in trained:
                small = compress(run.model, how, level, run.data.input_shape)
                result.grid.add(label, level, small.evaluate(run.data.test)["accuracy"])
            result.params_ratio[label][level] = small.params_ratio
    return result


def sweep(methods: Sequence[Method], data, how: str, levels: Sequence[float], seeds: Sequence[int] = (0, 1, 2),
          epochs: int = 10, model: str = "mlp", progress: bool = True, device=None, **model_kwargs) -> Sweep:
    """Train every method on every seed, compress each trained model at every level, test without retraining."""
    check_choice(how, "how", HOW)
    if not levels:
        raise ValueError("levels is empty")
    for level in levels:
        pruning.check_sparsity(level, "levels[i]")  # bad levels fail before any training
    return evaluate(train(methods, data, seeds, epochs, model, progress, device, **model_kwargs), how, levels, seeds)


def step_time(method: Method, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], repeats: int = 20) -> float:
    """Median seconds of one optimizer step of ``method`` on ``model`` (gradients from ``batch``, computed once)."""
    repeats = check_int(repeats, "repeats", low=1)
    setup = method.optimizer_for()
    opt = setup(model) if setup is not None else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    inputs, targets = batch
    nn.functional.cross_entropy(model(inputs), targets).backward()
    opt.step()  # the first step allocates state (momentum buffers, warm starts)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


__all__ = [
    "CNN",
    "CNN_METHODS",
    "EPOCHS",
    "FILTERS",
    "FILTER_FRACTIONS",
    "HOW",
    "LOW_RANK",
    "MLP_METHODS",
    "RANK_SPARSITIES",
    "SPARSITIES",
    "UNSTRUCTURED",
    "UNSTRUCTURED_CNN",
    "WIDTH",
    "K",
    "Sweep",
    "compress",
    "evaluate",
    "step_time",
    "sweep",
    "train",
]
