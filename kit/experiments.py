"""Small recipes that glue data, model, loop and evaluation, shared by notebooks, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from . import data as data_mod
from .models import create
from .seeding import check_seed, seed_everything
from .train import History, evaluate, fit


@dataclass
class ClassifierRun:
    """A trained model, its per-epoch history and its test metrics."""

    model: nn.Module
    history: History
    test: dict[str, float]
    data: data_mod.Splits


def train_classifier(dataset: str | data_mod.Splits, model: str = "mlp", *, seed: int = 0, epochs: int = 10,
                     lr: float = 0.1, budget: str | None = None, device: str | torch.device | None = None,
                     progress: bool = True, optimizer_for: Callable[[nn.Module], torch.optim.Optimizer] | None = None,
                     fit_kwargs: dict | None = None, **model_kwargs) -> ClassifierRun:
    """Load ``dataset`` split by ``seed`` (or take given splits), build ``model``, train with kit.train.fit, test.

    ``optimizer_for(model)`` builds the optimizer once the model exists (e.g. constraints from its
    initialization, see :func:`kit.frankwolfe.sfw_setup`); without it, ``fit_kwargs`` choose SGD/Adam.
    """
    if optimizer_for is not None and not callable(optimizer_for):
        raise TypeError(f"optimizer_for must be a callable model -> Optimizer; got {type(optimizer_for).__name__}")
    seed = check_seed(seed)
    splits = dataset if isinstance(dataset, data_mod.Splits) else data_mod.load(dataset, seed=seed, budget=budget)
    seed_everything(seed)
    net = create(model, splits.input_shape, splits.num_classes, **model_kwargs)
    kwargs = dict(fit_kwargs or {})
    if optimizer_for is not None:
        kwargs["optimizer"] = optimizer_for(net)
    history = fit(net, splits.train, val_data=splits.val, epochs=epochs, lr=lr, seed=seed, device=device,
                  progress=progress, desc=f"{model} seed {seed}", **kwargs)
    return ClassifierRun(net, history, evaluate(net, splits.test, device=device), splits)
