"""Pruning criteria: which weights to remove. Each returns masks (module name -> bool, True = keep).

The masks are not applied; pass them to :func:`kit.pruning.masks.apply_masks`. Entries that are
already masked count as pruned first, so pruning a pruned model further keeps its old zeros. Counts
use Python's ``round`` (half to even), ties in a score go to the earlier entry (module order, then
the flat index within the weight), so the result is deterministic.

How exactly the global target is met, with N prunable weights and K = round(sparsity * N):

* global allocations (``global``, ``lamp``, ``random``) prune exactly K weights, wherever they lie;
* ``uniform`` prunes round(sparsity * n_l) weights of every layer, so its total is K up to half a
  weight per layer;
* ``uniform_plus`` and ``erk`` compute a real-valued count per layer that sums to K, then round it
  down or up (largest remainders first) so the total is exactly K and every layer is within one
  weight of its allocation. Within a layer they remove the smallest |w|.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction

import torch
from torch import nn

from ..seeding import generator
from ..validate import check_choice, check_float, check_int
from .masks import PRUNABLE_TYPES, effective_weight, is_masked, prunable

Masks = dict[str, torch.Tensor]
Layers = list[tuple[str, nn.Module]]


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """``sparsity`` as a float in [0, 1), or a ValueError/TypeError naming it."""
    return check_float(sparsity, name, low=0.0, high=1.0, high_open=True)


def _mark_masked(module: nn.Module, score: torch.Tensor) -> torch.Tensor:
    # already-masked entries at -1: every score below is >= 0, so they sort (and get pruned) first
    if is_masked(module):
        score = torch.where(module.weight_mask.flatten().to(score.device) == 0, torch.full_like(score, -1.0), score)
    return score


def _scores(module: nn.Module) -> torch.Tensor:
    return _mark_masked(module, effective_weight(module).abs().float().flatten())


def _prune_smallest(score: torch.Tensor, k: int, where: str, sparsity: float) -> torch.Tensor:
    already = int((score < 0).sum())
    if already > k:
        raise ValueError(f"sparsity {sparsity} asks for {k} pruned weights{where} but {already} are already "
                         f"masked; masks only grow, so ask for at least {already / score.numel():.6g}")
    keep = torch.ones_like(score, dtype=torch.bool)
    keep[torch.argsort(score, stable=True)[:k]] = False
    return keep


def _shape(module: nn.Module) -> torch.Size:
    return effective_weight(module).shape


def _global_masks(layers: Layers, scores: Sequence[torch.Tensor], sparsity: float) -> Masks:
    # prune the round(sparsity * N) smallest scores over all layers at once
    flat = torch.cat([s.cpu() for s in scores])
    keep = _prune_smallest(flat, round(sparsity * flat.numel()), "", sparsity)
    masks, start = {}, 0
    for (name, module), score in zip(layers, scores, strict=True):
        w = module.weight_orig if is_masked(module) else module.weight
        masks[name] = keep[start:start + score.numel()].view(w.shape).to(w.device)
        start += score.numel()
    return masks


def _layer_masks(layers: Layers, scores: Sequence[torch.Tensor], counts: Sequence[int], sparsity: float) -> Masks:
    # prune counts[l] smallest |w| of layer l
    return {name: _prune_smallest(score, k, f" in layer {name!r}", sparsity).view(_shape(module))
            for (name, module), score, k in zip(layers, scores, counts, strict=True)}


def _allocate(targets: Sequence[Fraction], caps: Sequence[int], already: Sequence[int], total: int,
              criterion: str) -> list[int]:
    """Integer pruned counts, each the floor or ceiling of its (exact) target, at most its cap, summing to total."""
    counts = [min(math.floor(x), c) for x, c in zip(targets, caps, strict=True)]
    spare = total - sum(counts)
    # a layer whose old mask already needs the ceiling comes first (IMP: masks only grow), then the
    # largest fractional parts, then module order
    order = sorted((i for i in range(len(counts)) if counts[i] < caps[i]),
                   key=lambda i: (already[i] <= counts[i], -(targets[i] - counts[i]), i))
    if spare < 0 or spare > len(order):
        raise ValueError(f"{criterion}: cannot allocate {total} pruned weights over the layers")
    for i in order[:spare]:
        counts[i] += 1
    return counts


def _already(scores: Sequence[torch.Tensor]) -> list[int]:
    return [int((s < 0).sum()) for s in scores]


def global_magnitude_masks(model: nn.Module, sparsity: float,
                           types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> Masks:
    """Masks removing exactly round(sparsity * N) of all N prunable weights, smallest |w| first, over all layers."""
    sparsity = check_sparsity(sparsity)
    layers = prunable(model, types)
    return _global_masks(layers, [_scores(m) for _, m in layers], sparsity)


def layerwise_magnitude_masks(model: nn.Module, sparsity: float,
                              types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> Masks:
    """Masks removing round(sparsity * n_l) weights of smallest |w| in every layer separately (uniform)."""
    sparsity = check_sparsity(sparsity)
    layers = prunable(model, types)
    scores = [_scores(m) for _, m in layers]
    return _layer_masks(layers, scores, [round(sparsity * s.numel()) for s in scores], sparsity)


uniform_masks = layerwise_magnitude_masks  # the name the pruning literature uses


def uniform_plus_masks(model: nn.Module, sparsity: float,
                       types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> Masks:
    """Uniform+: first prunable layer dense, last at most 80% sparse, the rest uniform at the rate meeting sparsity."""
    sparsity = check_sparsity(sparsity)
    layers = prunable(model, types)
    scores = [_scores(m) for _, m in layers]
    sizes = [s.numel() for s in scores]
    total = round(sparsity * sum(sizes))
    if len(layers) == 1:
        if total:
            raise ValueError(f"uniform_plus keeps the first prunable layer dense; this model has a single prunable "
                             f"layer, so only sparsity 0 is possible; got sparsity {sparsity}")
        targets, caps = [Fraction(0)], [0]
    else:
        middle, last = sum(sizes[1:-1]), sizes[-1]
        caps = [0, *sizes[1:-1], 4 * last // 5]  # floor(0.8 * n_last) in integers: no float round-off
        if total > middle + caps[-1]:
            raise ValueError(f"uniform_plus reaches at most sparsity {(middle + caps[-1]) / sum(sizes):.6g} on this "
                             f"model (first layer dense, last layer at most 80% sparse); got sparsity {sparsity}")
        rate = Fraction(total, middle + last)
        if rate <= Fraction(4, 5):
            targets = [Fraction(0), *(rate * n for n in sizes[1:])]
        else:  # the last layer is capped: the middle layers take the rest
            last_target = Fraction(4 * last, 5)
            rate = (total - last_target) / middle
            targets = [Fraction(0), *(rate * n for n in sizes[1:-1]), last_target]
    counts = _allocate(targets, caps, _already(scores), total, "uniform_plus")
    return _layer_masks(layers, scores, counts, sparsity)


def erk_densities(shapes: Sequence[Sequence[int]], kept: int) -> list[Fraction]:
    """Erdos-Renyi-Kernel densities (exact fractions) of weights of these shapes keeping ``kept`` weights in all.

    Density of layer l is eps * (sum of dims) / (product of dims), eps chosen so the kept weights
    sum to ``kept``; layers that would exceed density 1 are made dense and eps is recomputed for
    the rest (the RigL procedure).
    """
    sizes = [math.prod(s) for s in shapes]
    kept = check_int(kept, "kept", low=0, high=sum(sizes))
    if kept == sum(sizes):
        return [Fraction(1)] * len(sizes)
    raw = [Fraction(sum(s), n) for s, n in zip(shapes, sizes, strict=True)]
    dense: set[int] = set()
    while True:
        free = [i for i in range(len(sizes)) if i not in dense]
        eps = (kept - sum(sizes[i] for i in dense)) / sum(raw[i] * sizes[i] for i in free)
        top = max(raw[i] for i in free)
        if eps * top <= 1:
            break
        # the densest-to-be layers cannot exceed 1; fixing them dense changes eps, so repeat
        dense |= {i for i in free if raw[i] == top}
    return [Fraction(1) if i in dense else eps * raw[i] for i in range(len(sizes))]


def erk_masks(model: nn.Module, sparsity: float, types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> Masks:
    """Masks with Erdos-Renyi-Kernel layer densities (see :func:`erk_densities`), smallest |w| pruned in each layer."""
    sparsity = check_sparsity(sparsity)
    layers = prunable(model, types)
    scores = [_scores(m) for _, m in layers]
    sizes = [s.numel() for s in scores]
    total = round(sparsity * sum(sizes))
    densities = erk_densities([_shape(m) for _, m in layers], sum(sizes) - total)
    targets = [n * (1 - d) for n, d in zip(sizes, densities, strict=True)]
    caps = [0 if d == 1 else n for n, d in zip(sizes, densities, strict=True)]  # a dense layer stays dense
    counts = _allocate(targets, caps, _already(scores), total, "erk")
    return _layer_masks(layers, scores, counts, sparsity)


def lamp_scores(module: nn.Module) -> torch.Tensor:
    """LAMP score of every weight (flat, float64): w^2 over the sum of w'^2 of the layer's weights with |w'| >= |w|."""
    w2 = effective_weight(module).double().flatten() ** 2
    ascending, order = torch.sort(w2, stable=True)
    suffix = torch.flip(torch.cumsum(torch.flip(ascending, [0]), 0), [0])
    # equal magnitudes share one denominator: the suffix sum from the first of them
    _, group, counts = torch.unique_consecutive(ascending, return_inverse=True, return_counts=True)
    denominator = suffix[(torch.cumsum(counts, 0) - counts)[group]]
    sorted_scores = torch.where(denominator > 0, ascending / denominator.clamp_min(1e-300), 0.0)
    scores = torch.empty_like(w2)
    scores[order] = sorted_scores
    return scores


def lamp_masks(model: nn.Module, sparsity: float, types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> Masks:
    """Masks removing exactly round(sparsity * N) weights of smallest LAMP score (:func:`lamp_scores`), all layers."""
    sparsity = check_sparsity(sparsity)
    layers = prunable(model, types)
    return _global_masks(layers, [_mark_masked(m, lamp_scores(m)) for _, m in layers], sparsity)


def random_masks(model: nn.Module, sparsity: float, seed: int = 0,
                 types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> Masks:
    """Masks removing exactly round(sparsity * N) prunable weights chosen uniformly at random over all layers."""
    sparsity = check_sparsity(sparsity)
    g = generator(seed)  # its own generator: the global torch RNG is neither used nor advanced
    layers = prunable(model, types)
    scores = [_mark_masked(m, torch.rand(_shape(m).numel(), generator=g, dtype=torch.float64)) for _, m in layers]
    return _global_masks(layers, scores, sparsity)


CRITERIA: dict[str, Callable[..., Masks]] = {
    "global": global_magnitude_masks,
    "uniform": uniform_masks,
    "uniform_plus": uniform_plus_masks,
    "erk": erk_masks,
    "lamp": lamp_masks,
    "random": random_masks,
}


def masks_for(criterion: str, model: nn.Module, sparsity: float, **kw: object) -> Masks:
    """Masks from the criterion named ``criterion`` (a key of :data:`CRITERIA`); ``kw`` go to it (``seed``, ...)."""
    return CRITERIA[check_choice(criterion, "criterion", CRITERIA)](model, sparsity, **kw)
