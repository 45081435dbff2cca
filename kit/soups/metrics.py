"""What soups are judged by: calibration (ECE), the output ensemble, and how far apart the ingredients lie."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..pruning import effective_weight, is_masked
from ..train import predict
from ..validate import check_int

ECE_BINS = 15


def expected_calibration_error(probs: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE: sum over equal-width confidence bins (lo, hi] of |bin| / n * |accuracy - mean confidence|.

    The confidence of a row of ``probs`` (N, C) is its largest probability and its prediction the
    class of that probability.
    """
    bins = check_int(bins, "bins", low=1)
    p = torch.as_tensor(probs).detach().cpu().double()
    t = torch.as_tensor(targets).detach().cpu()
    if p.dim() != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must have shape (N, C) with N > 0; got {tuple(p.shape)}")
    if t.shape != (p.shape[0],):
        raise ValueError(f"targets must have shape ({p.shape[0]},) to match probs; got {tuple(t.shape)}")
    if bool((p < 0).any() | (p > 1).any()) or not torch.allclose(p.sum(1), torch.ones(p.shape[0], dtype=p.dtype),
                                                                   atol=1e-4):
        raise ValueError("probs must be probabilities, each row in [0, 1] summing to 1 (pass softmax(logits))")
    confidence, prediction = p.max(dim=1)
    correct = (prediction == t.long()).double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    index = torch.bucketize(confidence, edges[1:-1], right=False)  # edges[b] < conf <= edges[b + 1]
    ece = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            ece += float(inside.double().mean()) * abs(float(correct[inside].mean() - confidence[inside].mean()))
    return ece


def softmax_outputs(model: nn.Module, data: Dataset | DataLoader, device: str | torch.device | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (float64, N x C) of ``model`` on ``data`` and the targets; the model's mode is kept."""
    was_training = model.training
    output, target = predict(model, data, device=device)
    model.train(was_training)
    return torch.softmax(output.double(), dim=-1), target


def accuracy_from_probs(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of rows whose most probable class is the target."""
    return float((probs.argmax(dim=-1) == targets).double().mean())


def ensemble_accuracy(models: Sequence[nn.Module], data: Dataset | DataLoader, *,
                      device: str | torch.device | None = None) -> float:
    """Accuracy of the output ensemble: the class of the largest mean softmax probability over ``models``."""
    if isinstance(models, nn.Module) or not isinstance(models, Sequence) or not models:
        raise TypeError("models must be a non-empty sequence of nn.Module")
    if not all(isinstance(m, nn.Module) for m in models):
        raise TypeError("models must hold torch.nn.Module instances only")
    outputs = [softmax_outputs(m, data, device) for m in models]
    return accuracy_from_probs(sum(p for p, _ in outputs) / len(outputs), outputs[0][1])


def _flat_parameters(model: nn.Module) -> tuple[list[str], torch.Tensor]:
    names, parts = [], []
    for prefix, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            # the weight the forward pass uses: masked entries count as the zeros they are
            if name.endswith("_orig") and is_masked(module, name[:-5]):
                name, param = name[:-5], effective_weight(module, name[:-5])
            names.append(f"{prefix}.{name}".lstrip("."))
            parts.append(param.detach().cpu().double().reshape(-1))
    return names, torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def pairwise_distances(models: Sequence[nn.Module]) -> tuple[np.ndarray, np.ndarray]:
    """(m, m) arrays of L2 distances and angles (degrees) between the ingredients' parameter vectors.

    A vector holds every parameter as the forward pass sees it (masked entries zero); buffers such as
    masks and BatchNorm statistics are left out. The angle with a zero vector is NaN.
    """
    if isinstance(models, nn.Module) or not isinstance(models, Sequence) or not models:
        raise TypeError("models must be a non-empty sequence of nn.Module")
    flat = []
    for k, model in enumerate(models):
        if not isinstance(model, nn.Module):
            raise TypeError(f"models[{k}] must be a torch.nn.Module; got {type(model).__name__}")
        names, vector = _flat_parameters(model)
        if flat and (names != flat[0][0] or vector.numel() != flat[0][1].numel()):
            raise ValueError(f"models[{k}] has other parameters than models[0]: the distance needs one architecture")
        flat.append((names, vector))
    m = len(flat)
    distances, angles = np.zeros((m, m)), np.zeros((m, m))
    for a in range(m):
        for b in range(a + 1, m):
            u, v = flat[a][1], flat[b][1]
            distances[a, b] = distances[b, a] = float(torch.linalg.vector_norm(u - v))
            norms = float(torch.linalg.vector_norm(u)) * float(torch.linalg.vector_norm(v))
            cosine = min(1.0, max(-1.0, float(u @ v) / norms)) if norms > 0 else float("nan")
            angles[a, b] = angles[b, a] = math.degrees(math.acos(cosine))
    return distances, angles


__all__ = ["ECE_BINS", "accuracy_from_probs", "ensemble_accuracy", "expected_calibration_error", "pairwise_distances",
           "softmax_outputs"]
