"""The kit: notebook-first implementations of nine optimization-for-ML research methods.

Core modules: ``budget`` (smoke | cpu | gpu, device), ``data`` (registry), ``models``, ``train``
(the one loop), ``schedules``, ``runs`` (derived seeds, fingerprints, checkpoints), ``plots``
(plotly), ``widgets``, ``results`` (recorded numbers), ``runner`` (papermill, reports, sweeps),
``source`` (``kit.show``). Method families live in subpackages (``frankwolfe``, ``pruning``,
``soups``, ``perp``, ``merlin_arthur``, ``federated``, ``operators``, ``canopy``); the experiments each
notebook runs live in ``recipes``.
"""

from __future__ import annotations

import importlib

import torch

from . import budget, data, hub, language, memory, models, plots, recipes, results, runs, schedules, train, widgets
from .budget import describe, get_budget, get_device, resolve
from .results import record
from .seeding import seed_everything
from .source import show

__all__ = ["budget", "claims", "data", "get_budget", "get_device", "hub", "language", "memory", "models", "plots",
           "recipes", "record", "results", "runs", "schedules", "seed_everything", "setup", "show", "train",
           "widgets"]
__version__ = "0.2.0"



def __getattr__(name: str) -> object:
    # moved in 0.2: kit.experiments is kit.recipes.common (the old module warns when imported)
    if name == "experiments":
        return importlib.import_module("kit.experiments")
    if name == "claims":  # imported on first use, so `python -m kit.claims` runs it only once
        return importlib.import_module("kit.claims")
    raise AttributeError(f"module 'kit' has no attribute {name!r}")


def setup(budget: str | None = None, seed: int = 0, device: str | None = None) -> tuple[str, torch.device]:
    """Start of every notebook: resolve budget and device, seed everything, embed plots offline, print both."""
    name, dev = resolve(budget, device)
    seed_everything(seed)
    plots.use_offline_renderer()
    results.set_meta(budget=name, seed=seed, device=dev.type)
    print(describe(name, dev))
    return name, dev
