"""Compression evaluation: compress a trained model without retraining (optionally with a short retrain).

Three compressions, each returning a :class:`Compressed` copy (the input model is never touched):

- :func:`prune_global`: global magnitude pruning to a sparsity (unstructured, masks);
- :func:`prune_filters`: per-layer L1 filter pruning of every Conv2d (structured, masks), BN channels too;
- :func:`svd_split`: every Linear/Conv2d replaced by two layers holding its truncated SVD.

How sizes are counted (one rule for all three):

- ``params``: every parameter entry of the model, except that the weights of Linear/Conv layers
  count only their nonzero entries (effective weights, masks applied). Biases and norm-layer
  parameters always count in full, also where filter pruning zeroed them, and weights that only
  see a removed channel's zero output are not subtracted: the count is conservative.
- ``flops``: multiply-accumulates of the Linear/Conv layers for one sample of ``input_shape``,
  measured with forward hooks: each layer contributes (nonzero weights) x (output positions),
  e.g. nnz(W) x H_out x W_out for a convolution. Bias additions, norms, activations and pooling
  are not counted. ``dense_*`` are the same counts for the input model with all weights counted.
- ``sparsity``: 1 - (nonzero Linear/Conv weights after) / (Linear/Conv weights before). For the
  masking methods this is the fraction of zero weights; for ``svd_split`` the weight-count reduction,
  negative where the split layers are larger than the originals.
- ``params_ratio`` and ``flops_ratio`` are remaining fractions (compressed / dense; 1.0 = no gain).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import torch
from torch import nn

from ..models import count_parameters
from ..validate import check_float, check_int
from .criteria import check_sparsity, global_magnitude_masks
from .masks import PRUNABLE_TYPES, apply_masks, copy_model, effective_weight, prunable

Retrain = Mapping[str, Any] | Callable[[nn.Module], Any]
_MAC_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class Compressed:
    """A compressed copy of a model with its true size: parameters, multiply-accumulates, sparsity."""

    model: nn.Module
    method: str
    params: int
    dense_params: int
    flops: int
    dense_flops: int
    sparsity: float
    details: dict[str, Any] = field(default_factory=dict)
    history: Any = None
    params_ratio: float = field(init=False)
    flops_ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.params_ratio = self.params / self.dense_params if self.dense_params else float("nan")
        self.flops_ratio = self.flops / self.dense_flops if self.dense_flops else float("nan")

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, float]:
        """``kit.train.evaluate`` of the compressed model (loss, accuracy)."""
        from ..train import evaluate
        return evaluate(self.model, data, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The numbers without the model (for JSON results and tables)."""
        return {"method": self.method, "params": self.params, "dense_params": self.dense_params,
                "params_ratio": self.params_ratio, "flops": self.flops, "dense_flops": self.dense_flops,
                "flops_ratio": self.flops_ratio, "sparsity": self.sparsity}


# ---------------------------------------------------------------------------------------------- counting

def _check_input_shape(input_shape: Sequence[int] | int) -> tuple[int, ...]:
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, Sequence) or isinstance(input_shape, str) or not input_shape:
        raise TypeError(f"input_shape must be the shape of one sample, e.g. (1, 28, 28); got {input_shape!r}")
    return tuple(check_int(s, f"input_shape[{i}]", low=1) for i, s in enumerate(input_shape))


def remaining_parameters(model: nn.Module, types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> int:
    """Parameter entries, counting only the nonzero entries of prunable weights."""
    zeros = sum(int((effective_weight(m) == 0).sum()) for _, m in prunable(model, types))
    return count_parameters(model) - zeros


def _prunable_weights(model: nn.Module, nonzero: bool) -> int:
    weights = [effective_weight(m) for _, m in prunable(model)]
    return sum(int((w != 0).sum()) if nonzero else w.numel() for w in weights)


def count_macs(model: nn.Module, input_shape: Sequence[int] | int, nonzero_only: bool = True) -> int:
    """Multiply-accumulates of Linear/Conv layers for one sample (nonzero weights only, by default)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    shape = _check_input_shape(input_shape)
    total = 0

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        w = effective_weight(module)
        weights = int((w != 0).sum()) if nonzero_only else w.numel()
        channels = module.out_features if isinstance(module, nn.Linear) else module.out_channels
        channel_dim = -1 if isinstance(module, nn.Linear) else 1
        if output.shape[channel_dim] != channels:
            raise ValueError(f"cannot count {type(module).__name__} output of shape {tuple(output.shape)}")
        total += weights * (output.numel() // channels)  # batch of one: positions per output channel

    ref = next(iter(model.parameters()), None)
    x = torch.zeros((1, *shape), device=ref.device if ref is not None else None,
                    dtype=ref.dtype if ref is not None and ref.is_floating_point() else None)
    # eval mode so the probe does not move BatchNorm running statistics; restore each module's own mode
    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _MAC_TYPES)]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"input_shape {shape} does not fit the model (one sample of that shape failed): "
                         f"{err}") from err
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return total


# ---------------------------------------------------------------------------------------------- retraining

def _check_retrain(retrain: Retrain | None) -> None:
    if retrain is None or (callable(retrain) and not isinstance(retrain, Mapping)):
        return
    if not isinstance(retrain, Mapping):
        raise TypeError("retrain must be None, a dict of kit.train.fit arguments (with train_data) or a "
                        f"callable model -> result; got {type(retrain).__name__}")
    from ..train import fit
    allowed = set(inspect.signature(fit).parameters) - {"model"}
    unknown = sorted(set(retrain) - allowed)
    if unknown:
        raise TypeError(f"retrain has arguments kit.train.fit does not take: {', '.join(map(str, unknown))}")
    if "train_data" not in retrain:
        raise ValueError("retrain must name the data: retrain={'train_data': ..., 'epochs': ...}")


def _run_retrain(model: nn.Module, retrain: Retrain | None) -> Any:
    if retrain is None:
        return None
    if isinstance(retrain, Mapping):
        from ..train import fit
        # masks live in forward pre-hooks, so the ordinary loop keeps every removed entry at zero
        return fit(model, **retrain)
    return retrain(model)


def _finish(model: nn.Module, method: str, dense: tuple[int, int, int],
            input_shape: tuple[int, ...], retrain: Retrain | None, details: dict[str, Any]) -> Compressed:
    history = _run_retrain(model, retrain)
    dense_params, dense_flops, dense_weights = dense
    sparsity = 1.0 - _prunable_weights(model, nonzero=True) / dense_weights
    return Compressed(model=model, method=method, params=remaining_parameters(model), dense_params=dense_params,
                      flops=count_macs(model, input_shape), dense_flops=dense_flops, sparsity=sparsity,
                      details=details, history=history)


def _dense_counts(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    # measured on the input model first: a wrong input_shape fails before any work
    return count_parameters(model), count_macs(model, input_shape, nonzero_only=False), \
        _prunable_weights(model, nonzero=False)


def _start(model: nn.Module, input_shape: Sequence[int] | int, retrain: Retrain | None
           ) -> tuple[tuple[int, ...], tuple[int, int, int], nn.Module]:
    """Checked input shape and retraining, the dense model's counts, and the copy to compress."""
    shape = _check_input_shape(input_shape)
    _check_retrain(retrain)
    return shape, _dense_counts(model, shape), copy_model(model)


# ---------------------------------------------------------------------------------------------- unstructured

def prune_global(model: nn.Module, sparsity: float, *, input_shape: Sequence[int] | int,
                 retrain: Retrain | None = None, types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> Compressed:
    """Global magnitude pruning of a copy to ``sparsity`` (masks kept), optionally retrained; input untouched."""
    sparsity = check_sparsity(sparsity)
    prunable(model, types)
    shape, dense, pruned = _start(model, input_shape, retrain)
    apply_masks(pruned, global_magnitude_masks(pruned, sparsity, types))
    return _finish(pruned, "global magnitude", dense, shape, retrain, {"target_sparsity": sparsity})


# ---------------------------------------------------------------------------------------------- structured

def _following_norms(model: nn.Module, targets: dict[str, nn.Module]) -> dict[str, str]:
    """For each target layer, the BatchNorm that alone consumes its output (traced; else the next in a Sequential)."""
    def fits(layer: nn.Module, norm: nn.Module) -> bool:
        width = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        return isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.num_features == width

    pairs: dict[str, str] = {}
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # any model fx cannot trace: fall back to the Sequential layout
        graph = None
    if graph is not None:
        modules = dict(model.named_modules())
        for node in graph.nodes:
            if node.op != "call_module" or node.target not in targets or len(node.users) != 1:
                continue
            user = next(iter(node.users))
            if user.op == "call_module" and fits(targets[node.target], modules[user.target]):
                pairs[node.target] = user.target
        return pairs
    for seq_name, seq in model.named_modules():
        if isinstance(seq, nn.Sequential):
            for (a, layer), (b, norm) in pairwise(seq.named_children()):
                full = f"{seq_name}.{a}" if seq_name else a
                if full in targets and fits(layer, norm):
                    pairs[full] = f"{seq_name}.{b}" if seq_name else b
    return pairs


def prune_filters(model: nn.Module, fraction: float, *, input_shape: Sequence[int] | int, linear: bool = False,
                  retrain: Retrain | None = None) -> Compressed:
    """Per-layer L1 filter pruning of a copy: in every Conv2d zero the round(fraction * out) weakest filters.

    A removed filter's bias and the matching BatchNorm channel (weight and bias) are masked too, so
    the channel outputs exactly zero (a zero filter followed by BN would still output its beta, also
    after retraining). At least one filter per layer is kept. With ``linear=True`` the rows (neurons)
    of every Linear layer except the last (the output layer) are pruned the same way.
    """
    fraction = check_float(fraction, "fraction", low=0.0, high=1.0, high_open=True)
    if not isinstance(linear, bool):
        raise TypeError(f"linear must be True or False; got {linear!r}")
    layers = prunable(model)
    targets = {n: m for n, m in layers if isinstance(m, nn.Conv2d)}
    if linear:
        dense_layers = [(n, m) for n, m in layers if isinstance(m, nn.Linear)]
        targets.update(dense_layers[:-1])
    if not targets:
        hint = "" if linear else "; for an MLP use linear=True (prunes neurons)"
        raise ValueError(f"model has no layers to filter-prune (Conv2d{', hidden Linear' if linear else ''}){hint}")
    shape, dense, pruned = _start(model, input_shape, retrain)
    modules = dict(pruned.named_modules())
    norms = _following_norms(pruned, {n: modules[n] for n in targets})
    weight_masks, bias_masks, norm_masks, removed_by_layer = {}, {}, {}, {}
    for name in targets:
        layer = modules[name]
        w = effective_weight(layer)
        filters = w.shape[0]
        n_remove = min(round(fraction * filters), filters - 1)
        order = torch.argsort(w.abs().flatten(1).sum(1).cpu(), stable=True)
        keep = torch.ones(filters, dtype=torch.bool)
        keep[order[:n_remove]] = False
        removed_by_layer[name] = sorted(order[:n_remove].tolist())
        keep = keep.to(w.device)
        weight_masks[name] = keep.view(-1, *([1] * (w.dim() - 1))).expand_as(w).clone()
        if getattr(layer, "bias", None) is not None:
            bias_masks[name] = keep
        if name in norms and modules[norms[name]].affine:
            norm_masks[norms[name]] = keep
    apply_masks(pruned, weight_masks)
    apply_masks(pruned, bias_masks, "bias")
    apply_masks(pruned, norm_masks)
    apply_masks(pruned, norm_masks, "bias")
    details = {"removed": removed_by_layer, "norms": norms,
               "not_zeroed": [n for n in targets if n in norms and not modules[norms[n]].affine]}
    return _finish(pruned, "L1 filters", dense, shape, retrain, details)


# ---------------------------------------------------------------------------------------------- low rank

def _split_layer(layer: nn.Module, r: int) -> nn.Sequential:
    w = effective_weight(layer)
    matrix = w.double().flatten(1)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    # balanced factors (sqrt of the singular values on each side) so both layers keep similar scales
    root = s[:r].sqrt()
    first = (root[:, None] * vh[:r]).to(w.dtype)
    second = (u[:, :r] * root[None, :]).to(w.dtype)
    bias = layer.bias is not None
    factory = {"device": w.device, "dtype": w.dtype}
    if isinstance(layer, nn.Linear):
        a = nn.Linear(layer.in_features, r, bias=False, **factory)
        b = nn.Linear(r, layer.out_features, bias=bias, **factory)
        a.weight.data.copy_(first)
        b.weight.data.copy_(second)
    else:
        a = nn.Conv2d(layer.in_channels, r, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                      dilation=layer.dilation, bias=False, padding_mode=layer.padding_mode, **factory)
        b = nn.Conv2d(r, layer.out_channels, 1, bias=bias, **factory)
        a.weight.data.copy_(first.view_as(a.weight))
        b.weight.data.copy_(second.view_as(b.weight))
    if bias:
        b.bias.data.copy_(layer.bias.detach())
    trainable = getattr(layer, "weight_orig", layer.weight).requires_grad
    for p in (*a.parameters(), *b.parameters()):
        p.requires_grad_(trainable)
    return nn.Sequential(a, b)


def svd_rank(sparsity: float, full_rank: int) -> int:
    """Singular values kept at ``sparsity``: max(1, floor((1 - sparsity) * full_rank))."""
    sparsity = check_sparsity(sparsity)
    full_rank = check_int(full_rank, "full_rank", low=1)
    # the 1e-9 guards against round-off: (1 - 0.8) * 10 is 1.9999999999999996 in floating point
    return max(1, math.floor((1.0 - sparsity) * full_rank + 1e-9))


def svd_split(model: nn.Module, sparsity: float | None = None, *, input_shape: Sequence[int] | int,
              rank: int | None = None, skip_larger: bool = False, keep: Iterable[str] = (),
              retrain: Retrain | None = None) -> Compressed:
    """Replace every Linear/Conv2d of a copy by two layers holding its truncated SVD.

    A weight viewed as the matrix (out, in*kh*kw) of rank bound R = min(out, in*kh*kw) keeps
    r = max(1, floor((1 - sparsity) * R)) singular values, or ``rank`` for every layer. A Linear
    becomes Linear(in, r, bias=False) -> Linear(r, out); a Conv2d becomes Conv2d(in, r, k) with the
    original stride/padding -> 1x1 Conv2d(r, out); the bias stays on the second layer. By default
    every layer is split even where the pair has more weights than the original (the counts report
    it); ``skip_larger=True`` leaves such layers dense. Layers named in ``keep`` (e.g. the output
    layer, whose rank bound is the number of classes) and grouped convolutions are left dense.
    """
    if (sparsity is None) == (rank is None):
        raise ValueError("give exactly one of sparsity (in [0, 1)) and rank (an int >= 1)")
    if sparsity is not None:
        sparsity = check_sparsity(sparsity)
    if not isinstance(skip_larger, bool):
        raise TypeError(f"skip_larger must be True or False; got {skip_larger!r}")
    layers = prunable(model)
    keep = [keep] if isinstance(keep, str) else list(keep)
    unknown = sorted(set(keep) - {n for n, _ in layers})
    if unknown:
        raise ValueError(f"keep names layers that are not Linear/Conv2d layers of the model: {unknown}; "
                         f"the layers are {[n for n, _ in layers]}")
    targets = [(n, m) for n, m in layers if not (isinstance(m, nn.Conv2d) and m.groups != 1) and n not in keep]
    if not targets:
        raise ValueError("model has no Linear or ungrouped Conv2d layer to split")
    bounds = {n: min(effective_weight(m).flatten(1).shape) for n, m in targets}
    if rank is not None:
        rank = check_int(rank, "rank", low=1)
        worst = min(bounds, key=bounds.get)
        if rank > bounds[worst]:
            raise ValueError(f"rank must lie in [1, {bounds[worst]}] (the rank bound of layer {worst!r}); got {rank}")
    shape, dense, result = _start(model, input_shape, retrain)
    modules = dict(result.named_modules())
    ranks, skipped = {}, [n for n, m in layers if (isinstance(m, nn.Conv2d) and m.groups != 1) or n in keep]
    for name, _ in targets:
        layer = modules[name]
        r = rank if rank is not None else svd_rank(sparsity, bounds[name])
        out, fan_in = effective_weight(layer).flatten(1).shape
        if skip_larger and r * (out + fan_in) > out * fan_in:
            skipped.append(name)
            continue
        ranks[name] = (r, bounds[name])
        pair = _split_layer(layer, r)
        if not name:
            result = pair  # the model itself is one layer
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name], child, pair)
    details = {"ranks": ranks, "skipped": skipped, "skip_larger": skip_larger}
    return _finish(result, "truncated SVD", dense, shape, retrain, details)
