"""Test data shared by the federated tests: honest clients' predictions as noisy copies of one vector."""

from __future__ import annotations

import numpy as np
import torch


def noisy_predictions(*, clients: int, samples: int, classes: int = 5, noise: float, seed: int = 0) -> torch.Tensor:
    """Noisy softmax copies of one random logit vector per sample, float64: (clients, samples, classes)."""
    rng = np.random.default_rng(seed)
    logits = 2 * rng.normal(size=(1, samples, classes)) + noise * rng.normal(size=(clients, samples, classes))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return torch.from_numpy(p / p.sum(-1, keepdims=True))
