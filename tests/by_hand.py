"""Independent float64 computations that several test modules check the kit against (no kit code inside)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq, minimize_scalar


def project_l1_by_hand(x: np.ndarray, r: float) -> np.ndarray:
    """Euclidean projection onto the L1 ball: the soft threshold whose L1 norm is r, found by root finding."""
    a = np.abs(x)
    if a.sum() <= r:
        return x.copy()
    theta = brentq(lambda t: np.maximum(a - t, 0.0).sum() - r, 0.0, a.max(), xtol=1e-15)
    return np.sign(x) * np.maximum(a - theta, 0.0)


def project_simplex_by_hand(x: np.ndarray, r: float) -> np.ndarray:
    """Euclidean projection onto {y >= 0, sum y = r}: the shift whose positive part sums to r, by root finding."""
    theta = brentq(lambda t: np.maximum(x - t, 0.0).sum() - r, x.min() - r - 1.0, x.max(), xtol=1e-15)
    return np.maximum(x - theta, 0.0)


def quadratic_model_fw(theta: np.ndarray, m: np.ndarray, h: np.ndarray, lr: float,
                       lmo: Callable[[np.ndarray], np.ndarray], inner_steps: int) -> np.ndarray:
    """Frank-Wolfe on Q(y) = <m, y - theta> + ||y - theta||_H^2 / (2 lr), each step size by a scalar search."""
    y = theta.copy()
    for _ in range(inner_steps):
        d = lmo(m + (y - theta) * h / lr) - y

        def q(gamma, y=y, d=d):
            z = y + gamma * d - theta
            return float(m @ z + (z * z * h).sum() / (2 * lr))

        y = y + minimize_scalar(q, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-13}).x * d
    return y
