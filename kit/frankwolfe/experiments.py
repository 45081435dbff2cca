"""The experiments of notebook 01, shared by the notebook, its tests and bench/frank_wolfe.py.

SGD with momentum and weight decay against SFW over several regions on one MLP; weight statistics
per region; the effect of the learning-rate rescaling.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..experiments import ClassifierRun, train_classifier
from ..validate import check_int
from .recipes import sfw_setup

EPOCHS = {"smoke": 2, "cpu": 10, "gpu": 60}
SGD_SETTINGS = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}
K_FRACTION = 0.05  # k = 5% of each layer's entries for the k-sparse and k-support regions
WIDTH = 10.0  # L2 diameter = 2 * WIDTH * E||theta_0||, per layer


@dataclass(frozen=True)
class Method:
    """One way to train: SGD, or SFW over a region with a rescaling mode and learning rate."""

    label: str
    region: str | None = None  # None: SGD with momentum and weight decay
    rescale: str | None = "gradient"
    lr: float = 1.0
    width: float = WIDTH
    options: dict = field(default_factory=dict)

    def run(self, data, seed: int, epochs: int, progress: bool = False, device=None) -> ClassifierRun:
        """Train the MLP on ``data`` (a name or kit.data.Splits) with this method."""
        if self.region is None:
            return train_classifier(data, seed=seed, epochs=epochs, lr=SGD_SETTINGS["lr"], progress=progress,
                                    device=device, fit_kwargs={"momentum": SGD_SETTINGS["momentum"],
                                                               "weight_decay": SGD_SETTINGS["weight_decay"]})
        k = K_FRACTION if self.region in ("k_sparse", "k_support") else None
        setup = sfw_setup(self.region, width=self.width, lr=self.lr, rescale=self.rescale, k=k, **self.options)
        return train_classifier(data, seed=seed, epochs=epochs, lr=self.lr, progress=progress, device=device,
                                optimizer_for=setup)


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


def compare(methods: Sequence[Method], data, seeds: Sequence[int] = (0, 1, 2), epochs: int = 10,
            progress: bool = True, device=None) -> dict:
    """Train every method on every seed; rows with test accuracies, mean and std, plus the runs."""
    if not methods:
        raise ValueError("methods is empty")
    epochs = check_int(epochs, "epochs", low=1)
    if not seeds:
        raise ValueError("seeds is empty")
    rows, runs = [], {}
    for method in methods:
        runs[method.label] = [method.run(data, s, epochs, progress, device) for s in seeds]
        acc = [r.test["accuracy"] for r in runs[method.label]]
        rows.append({"method": method.label, "accuracies": acc, "mean": statistics.mean(acc),
                     "std": statistics.stdev(acc) if len(acc) > 1 else 0.0})
    return {"rows": rows, "runs": runs, "seeds": list(seeds), "epochs": epochs}


def weight_statistics(model: torch.nn.Module, radius: float | None = None) -> dict[str, float]:
    """Of the first layer's weights: fraction near zero (|w| < 1% of max) and near the extremes (> 90% of max)."""
    w = next(p for p in model.parameters() if p.dim() > 1).detach().abs().flatten()
    top = float(w.max()) if radius is None else radius
    return {"near_zero": float((w < 0.01 * top).float().mean()), "near_extreme": float((w > 0.9 * top).float().mean())}
