"""Small recipes that glue data, model, loop and evaluation, shared by notebooks, tests and benchmarks."""

from __future__ import annotations

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
                     progress: bool = True, fit_kwargs: dict | None = None, **model_kwargs) -> ClassifierRun:
    """Load ``dataset`` split by ``seed`` (or take given splits), build ``model``, train with kit.train.fit, test."""
    seed = check_seed(seed)
    splits = dataset if isinstance(dataset, data_mod.Splits) else data_mod.load(dataset, seed=seed, budget=budget)
    seed_everything(seed)
    net = create(model, splits.input_shape, splits.num_classes, **model_kwargs)
    history = fit(net, splits.train, val_data=splits.val, epochs=epochs, lr=lr, seed=seed, device=device,
                  progress=progress, desc=f"{model} seed {seed}", **(fit_kwargs or {}))
    return ClassifierRun(net, history, evaluate(net, splits.test, device=device), splits)
