"""The kit: notebook-first implementations of nine optimization-for-ML research methods.

Core modules: ``budget`` (smoke | cpu | gpu, device), ``data`` (registry), ``models``, ``train``
(the one loop), ``schedules``, ``plots`` (plotly), ``widgets``, ``results`` (recorded numbers),
``runner`` (papermill, reports, sweeps). Method families live in subpackages.
"""

from __future__ import annotations

import torch

from . import budget, data, experiments, language, memory, models, plots, results, schedules, train, widgets
from .budget import describe, get_budget, get_device, resolve
from .results import record
from .seeding import seed_everything

__all__ = ["budget", "data", "experiments", "get_budget", "get_device", "language", "memory", "models", "plots",
           "record", "results",
           "schedules", "seed_everything", "setup", "train", "widgets"]
__version__ = "0.1.0"


def setup(budget: str | None = None, seed: int = 0, device: str | None = None) -> tuple[str, torch.device]:
    """Start of every notebook: resolve budget and device, seed everything, embed plots offline, print both."""
    name, dev = resolve(budget, device)
    seed_everything(seed)
    plots.use_offline_renderer()
    results.set_meta(budget=name, seed=seed, device=dev.type)
    print(describe(name, dev))
    return name, dev

