"""Seeding: one call makes Python, NumPy and torch reproducible."""

from __future__ import annotations

import random

import numpy as np
import torch


def check_seed(seed: int, name: str = "seed") -> int:
    """Validate a seed (a non-negative int) and return it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative int; got {type(seed).__name__}")
    if seed < 0 or seed >= 2**63:
        raise ValueError(f"{name} must lie in [0, 2**63); got {seed}")
    return int(seed)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch.Generator seeded the same way."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        # cuDNN's fastest convolutions may sum in a different order on every run; the same seed must give
        # the same numbers, so the kit asks for its deterministic ones (and no per-shape benchmarking)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return generator(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with ``seed`` (for samplers and splits)."""
    g = torch.Generator()
    g.manual_seed(check_seed(seed))
    return g
