"""What every notebook's recipe starts from: train one classifier, and the seeds and data of a budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .. import data as data_mod
from ..budget import choose, get_budget, get_device
from ..models import create
from ..seeding import check_seed, seed_everything
from ..train import History, evaluate, fit
from ..validate import check_int


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
    # the recipe builds the model, so it places it: on the kit's device unless the caller names one
    net = create(model, splits.input_shape, splits.num_classes, **model_kwargs).to(get_device(device))
    kwargs = dict(fit_kwargs or {})
    if optimizer_for is not None:
        kwargs["optimizer"] = optimizer_for(net)
    history = fit(net, splits.train, val_data=splits.val, epochs=epochs, lr=lr, seed=seed, device=device,
                  progress=progress, desc=f"{model} seed {seed}", **kwargs)
    return ClassifierRun(net, history, evaluate(net, splits.test, device=device), splits)


@dataclass
class ExperimentData:
    """What a notebook's experiments run on at a budget: the seeds, the first seed's splits, and the source.

    ``source`` is what to hand to :func:`train_classifier`: the dataset name (each seed splits it
    anew) or, at the smoke budget, ``data`` itself (one small split, so CI stays fast).
    """

    seeds: list[int]
    data: data_mod.Splits
    source: str | data_mod.Splits


def experiment_data(budget: str, seed: int = 0, dataset: str = "mnist5k", gpu_dataset: str = "mnist",
                    smoke_train: int = 600, seeds: int = 3) -> ExperimentData:
    """Seeds and data for a budget: smoke uses one seed and ``smoke_train`` examples, gpu ``gpu_dataset``."""
    budget = get_budget(budget)
    seed = check_seed(seed)
    smoke_train = check_int(smoke_train, "smoke_train", low=1)
    seeds = check_int(seeds, "seeds", low=1)
    name = choose(budget, smoke=dataset, cpu=dataset, gpu=gpu_dataset)
    data = data_mod.load(name, seed=seed, budget=budget, n_train=choose(budget, smoke=smoke_train, cpu=None, gpu=None))
    return ExperimentData(seeds=choose(budget, smoke=[seed], cpu=[seed + i for i in range(seeds)],
                                       gpu=[seed + i for i in range(seeds)]),
                          data=data, source=choose(budget, smoke=data, cpu=name, gpu=name))


__all__ = ["ClassifierRun", "ExperimentData", "experiment_data", "train_classifier"]
