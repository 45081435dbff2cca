"""Pruning criteria: which weights to remove. Each returns masks (module name -> bool, True = keep).

The masks are not applied; pass them to :func:`kit.pruning.masks.apply_masks`. Entries that are
already masked count as pruned first, so pruning a pruned model further keeps its old zeros. Counts
use Python's ``round`` (half to even), ties in ``|w|`` go to the earlier entry (module order, then
the flat index within the weight), so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..validate import check_float
from .masks import PRUNABLE_TYPES, effective_weight, is_masked, prunable


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """``sparsity`` as a float in [0, 1), or a ValueError/TypeError naming it."""
    return check_float(sparsity, name, low=0.0, high=1.0, high_open=True)


def _scores(module: nn.Module) -> torch.Tensor:
    # |w| as float32, with masked entries at -1 so they sort before every live weight
    score = effective_weight(module).abs().float().flatten()
    if is_masked(module):
        score = torch.where(module.weight_mask.flatten() == 0, torch.full_like(score, -1.0), score)
    return score


def _prune_smallest(score: torch.Tensor, k: int, where: str, sparsity: float) -> torch.Tensor:
    already = int((score < 0).sum())
    if already > k:
        raise ValueError(f"sparsity {sparsity} asks for {k} pruned weights{where} but {already} are already "
                         f"masked; masks only grow, so ask for at least {already / score.numel():.6g}")
    keep = torch.ones_like(score, dtype=torch.bool)
    keep[torch.argsort(score, stable=True)[:k]] = False
    return keep


def global_magnitude_masks(model: nn.Module, sparsity: float,
                           types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> dict[str, torch.Tensor]:
    """Masks removing exactly round(sparsity * N) of all N prunable weights, smallest |w| first, over all layers."""
    sparsity = check_sparsity(sparsity)
    layers = prunable(model, types)
    scores = [_scores(m).cpu() for _, m in layers]
    flat = torch.cat(scores)
    keep = _prune_smallest(flat, round(sparsity * flat.numel()), "", sparsity)
    masks, start = {}, 0
    for (name, module), score in zip(layers, scores, strict=True):
        w = module.weight_orig if is_masked(module) else module.weight
        masks[name] = keep[start:start + score.numel()].view(w.shape).to(w.device)
        start += score.numel()
    return masks


def layerwise_magnitude_masks(model: nn.Module, sparsity: float,
                              types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> dict[str, torch.Tensor]:
    """Masks removing round(sparsity * n_l) weights of smallest |w| in every layer separately (uniform)."""
    sparsity = check_sparsity(sparsity)
    masks = {}
    for name, module in prunable(model, types):
        score = _scores(module)
        keep = _prune_smallest(score, round(sparsity * score.numel()), f" in layer {name!r}", sparsity)
        masks[name] = keep.view(effective_weight(module).shape)
    return masks
