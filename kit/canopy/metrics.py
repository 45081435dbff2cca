"""Canopy height errors as the paper reports them: MAE and RMSE over labelled footprints, overall and for
footprints taller than ``tall`` metres, and the same against a dense true height map.

Every function takes torch tensors or numpy arrays and computes in float64 numpy (metrics are for reports
and figures, not for gradients). Results are plain Python numbers; MAE and RMSE are NaN over zero pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..validate import check_float

KEYS = ("mae", "rmse", "count", "mae_tall", "rmse_tall", "count_tall")


def footprint_errors(pred: Any, labels: Any, tall: float = 5.0) -> dict[str, float]:
    """MAE/RMSE of ``pred`` (B, H, W) at every footprint (label > 0) of ``labels`` (B, T, H, W), overall and tall."""
    tall = check_float(tall, "tall", low=0.0)
    pred = _maps(pred, "pred")
    labels = _array(labels, "labels")
    if labels.ndim != 4:
        raise ValueError(f"labels must have shape (B, T, H, W); got {labels.shape}")
    if pred.ndim != 3 or pred.shape[0] != labels.shape[0] or pred.shape[1:] != labels.shape[2:]:
        raise ValueError(f"pred {pred.shape} must have shape (B, H, W) or (B, 1, H, W) matching labels "
                         f"{labels.shape} in batch size and patch size")
    if np.isnan(labels).any():
        raise ValueError("labels contain NaN; mark missing footprints with 0")
    _refuse_nan(pred)
    # every track sees the same prediction, so broadcast it over the track axis
    moved = np.broadcast_to(pred[:, None], labels.shape)
    footprints = labels > 0
    return _summary(moved[footprints] - labels[footprints], labels[footprints], tall)


def map_errors(pred: Any, truth: Any, mask: Any = None, tall: float = 5.0) -> dict[str, float]:
    """MAE/RMSE of ``pred`` against the dense ``truth`` where ``mask`` is True (default: all), overall and tall.

    Pixels where ``truth`` is NaN (no reference height) are left out, also when ``mask`` selects them; tall
    pixels are those with ``truth > tall``. ``pred``, ``truth`` and ``mask`` share one shape: (H, W), (B, H, W)
    or (B, 1, H, W).
    """
    tall = check_float(tall, "tall", low=0.0)
    pred, truth = _same_maps(pred, truth)
    _refuse_nan(pred)
    keep = ~np.isnan(truth)
    if mask is not None:
        mask = _maps(mask, "mask", boolean=True)
        if mask.shape != truth.shape:
            raise ValueError(f"mask {mask.shape} must have the shape of truth {truth.shape}")
        keep &= mask
    return _summary(pred[keep] - truth[keep], truth[keep], tall)


def error_map(pred: Any, truth: Any) -> np.ndarray:
    """``pred - truth`` as a float64 numpy array (for figures), shape (H, W) or (B, H, W)."""
    pred, truth = _same_maps(pred, truth)
    return pred - truth


def _summary(errors: np.ndarray, heights: np.ndarray, tall: float) -> dict[str, float]:
    """The six numbers over ``errors``, all and where ``heights > tall``."""
    high = heights > tall
    mae, rmse, count = _mae_rmse(errors)
    mae_tall, rmse_tall, count_tall = _mae_rmse(errors[high])
    return dict(zip(KEYS, (mae, rmse, count, mae_tall, rmse_tall, count_tall), strict=True))


def _mae_rmse(errors: np.ndarray) -> tuple[float, float, int]:
    """MAE, RMSE and the count; NaN errors for an empty selection (no warning from numpy's empty mean)."""
    if errors.size == 0:
        return math.nan, math.nan, 0
    return float(np.abs(errors).mean()), float(np.sqrt(np.square(errors).mean())), int(errors.size)


def _same_maps(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` and ``truth`` as maps of one shape."""
    pred, truth = _maps(pred, "pred"), _maps(truth, "truth")
    if pred.shape != truth.shape:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must have the same shape")
    return pred, truth


def _maps(value: Any, name: str, boolean: bool = False) -> np.ndarray:
    """``value`` as a (H, W) or (B, H, W) array; a (B, 1, H, W) input loses its channel axis."""
    array = _array(value, name, boolean)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W), (B, H, W) or (B, 1, H, W); got {array.shape}")
    return array


def _array(value: Any, name: str, boolean: bool = False) -> np.ndarray:
    """``value`` (a tensor or an array) as a float64 numpy array, or a bool one when ``boolean``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        # numpy has no bfloat16, so widen torch floats before the hand-over
        if value.is_floating_point():
            value = value.double()
        value = value.numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array; got {type(value).__name__}")
    if boolean:
        if value.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean array; got {value.dtype}")
        return value
    if value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
        raise TypeError(f"{name} must hold real numbers; got {value.dtype}")
    return value.astype(np.float64)


def _refuse_nan(pred: np.ndarray) -> None:
    """A NaN prediction is a bug upstream, not a pixel to skip."""
    if np.isnan(pred).any():
        raise ValueError("pred contains NaN")
