"""Merging retrained copies of one pruned model: uniform and greedy soups, interpolation, BatchNorm recalibration.

A soup averages its ingredients' weights (and BatchNorm statistics) entry by entry; masks are kept,
not averaged, so every ingredient must carry the same mask (:func:`check_ingredients` names the
first layer where they differ) and the soup is exactly as sparse as each. Averaged BatchNorm
statistics do not describe the averaged network: :func:`recalibrate_batchnorm` recomputes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset

from ..budget import device_for
from ..data import make_loader
from ..pruning import copy_model, refresh_masked
from ..train import evaluate
from ..validate import check_float, check_int


def _mask_keys(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in state if k.endswith("_mask") and f"{k[:-5]}_orig" in state]


def _layer_of(key: str) -> tuple[str, str]:
    prefix, _, leaf = key.rpartition(".")
    return prefix, leaf.removesuffix("_mask").removesuffix("_orig")


def check_ingredients(models: Sequence[nn.Module], name: str = "models") -> list[nn.Module]:
    """The models as a list, or an error naming the first layer where architectures or masks differ."""
    if isinstance(models, nn.Module) or not isinstance(models, Sequence):
        raise TypeError(f"{name} must be a sequence (e.g. a list) of nn.Module ingredients; "
                        f"got {type(models).__name__}")
    models = list(models)
    if not models:
        raise ValueError(f"{name} is empty: a soup needs at least one ingredient")
    for k, m in enumerate(models):
        if not isinstance(m, nn.Module):
            raise TypeError(f"{name}[{k}] must be a torch.nn.Module; got {type(m).__name__}")
    ref = models[0].state_dict()
    ref_masks = set(_mask_keys(ref))
    for k, model in enumerate(models[1:], start=1):
        if type(model) is not type(models[0]):
            raise ValueError(f"{name}[{k}] is a {type(model).__name__} but {name}[0] a {type(models[0]).__name__}: "
                             "a soup needs one architecture")
        state = model.state_dict()
        masks = set(_mask_keys(state))
        for key in [*ref, *state]:
            if (key in ref_masks) != (key in masks):
                layer, param = _layer_of(key)
                has, lacks = (0, k) if key in ref_masks else (k, 0)
                raise ValueError(f"masks differ at layer {layer!r} ({param}): masked in {name}[{has}] but not in "
                                 f"{name}[{lacks}]; a soup needs bit-identical masks")
        if list(state) != list(ref):
            missing, extra = [x for x in ref if x not in state], [x for x in state if x not in ref]
            raise ValueError(f"{name}[{k}] has another architecture than {name}[0]: state_dict keys missing "
                             f"{missing or 'none'}, extra {extra or 'none'}")
        for key, value in ref.items():
            other = state[key]
            if other.shape != value.shape or other.dtype != value.dtype:
                raise ValueError(f"{name}[{k}] has another architecture than {name}[0]: {key!r} is "
                                 f"{other.dtype} {tuple(other.shape)} there and {value.dtype} {tuple(value.shape)} "
                                 f"in {name}[0]")
            if key in ref_masks and not torch.equal(other.detach().cpu(), value.detach().cpu()):
                layer, param = _layer_of(key)
                n = int((other.detach().cpu() != value.detach().cpu()).sum())
                raise ValueError(f"masks differ at layer {layer!r} ({param}): {n} of {value.numel()} entries differ "
                                 f"between {name}[0] and {name}[{k}]; a soup needs bit-identical masks (retrain "
                                 "copies of one pruned model)")
    return models


def combine(models: list[nn.Module], weights: Sequence[float] | None = None) -> nn.Module:
    """A new model: sum_k w_k state_k of every float non-mask tensor (the mean without weights), in float64;
    masks and integer buffers from model 0. ``models`` must have passed :func:`check_ingredients`."""
    states = [m.state_dict() for m in models]
    masks = set(_mask_keys(states[0]))
    merged = {}
    for key, ref in states[0].items():
        if key in masks or not ref.is_floating_point():
            merged[key] = ref.detach().clone()  # masks (identical) and integer counters such as num_batches_tracked
            continue
        tensors = [s[key].detach().cpu().double() for s in states]
        if weights is None:
            value = sum(tensors) / len(tensors)
        else:
            value = sum(w * t for w, t in zip(weights, tensors, strict=True))
        merged[key] = value.to(ref.dtype)
    soup = copy_model(models[0])
    soup.load_state_dict(merged)
    refresh_masked(soup)
    return soup


def uniform_soup(models: Sequence[nn.Module]) -> nn.Module:
    """A new model whose every float non-mask tensor (parameters, BN statistics) is the ingredients' mean."""
    return combine(check_ingredients(models))


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer with running statistics (a soup of it needs recalibration)."""
    return any(isinstance(m, _BatchNorm) and m.track_running_stats for m in model.modules())


def greedy_soup(models: Sequence[nn.Module], val_data: Dataset | DataLoader, *,
                recalibrate_data: Dataset | DataLoader | None = None, recalibrate_batches: int | None = None,
                batch_size: int = 512, seed: int = 0, device: str | torch.device | None = None,
                return_selected: bool = False) -> nn.Module | tuple[nn.Module, list[int]]:
    """Greedy soup: from the best ingredient by validation accuracy, add each next-best one if accuracy does not drop.

    Ties keep the input order. With ``recalibrate_data`` every candidate soup of two or more
    ingredients gets its BatchNorm statistics recomputed before it is scored (see
    :func:`recalibrate_batchnorm`). If only the best ingredient is accepted the result is a copy of it.
    With ``return_selected`` the indices of the accepted ingredients (in the order added) come too.
    """
    models = check_ingredients(models)
    if not isinstance(val_data, (Dataset, DataLoader)):
        raise TypeError(f"val_data must be a torch Dataset or DataLoader; got {type(val_data).__name__}")
    if recalibrate_data is not None and not isinstance(recalibrate_data, (Dataset, DataLoader)):
        raise TypeError(f"recalibrate_data must be a torch Dataset, DataLoader or None; "
                        f"got {type(recalibrate_data).__name__}")
    if recalibrate_batches is not None:
        recalibrate_batches = check_int(recalibrate_batches, "recalibrate_batches", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)

    def score(model: nn.Module) -> float:
        return float(evaluate(model, val_data, batch_size=batch_size, device=device)["accuracy"])

    scores = [score(m) for m in models]
    order = sorted(range(len(models)), key=lambda k: -scores[k])  # stable: ties keep the input order
    selected, best = [order[0]], scores[order[0]]
    soup = copy_model(models[order[0]])
    for k in order[1:]:
        trial = combine([models[j] for j in [*selected, k]])
        if recalibrate_data is not None and has_batchnorm(trial):
            recalibrate_batchnorm(trial, recalibrate_data, batches=recalibrate_batches, batch_size=batch_size,
                                  seed=seed, device=device)
        accuracy = score(trial)
        if accuracy >= best:
            selected, best, soup = [*selected, k], accuracy, trial
    return (soup, selected) if return_selected else soup


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: Dataset | DataLoader, *, batches: int | None = None,
                          batch_size: int = 128, seed: int = 0, device: str | torch.device | None = None) -> nn.Module:
    """Reset every BatchNorm's running statistics and recompute them on ``data``; returns ``model`` (changed in place).

    With momentum None PyTorch keeps a cumulative average: the running mean becomes the mean over
    batches of each batch's per-channel mean, the running variance the mean of the unbiased batch
    variances. ``batches`` caps the number of batches (None: one pass); a Dataset is read in
    ``batch_size`` batches shuffled with ``seed``, a DataLoader as it is. Every module's train/eval
    mode and every BatchNorm's momentum are restored afterwards. Models without BatchNorm are left as they are.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if batches is not None:
        batches = check_int(batches, "batches", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if isinstance(data, DataLoader):
        loader = data
    elif isinstance(data, Dataset):
        if len(data) == 0:
            raise ValueError("data is empty")
        loader = make_loader(data, batch_size, shuffle=True, seed=seed)
    else:
        raise TypeError(f"data must be a torch Dataset or DataLoader; got {type(data).__name__}")
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return model
    dev = device_for(model, device)
    if device is not None:
        model.to(dev)
    modes = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in norms]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for seen, batch in enumerate(loader):
            if batches is not None and seen >= batches:
                break
            inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
            model(inputs.to(dev))
    finally:
        for m, momentum in momenta:
            m.momentum = momentum
        for m, mode in modes:
            m.training = mode
    return model


def interpolate(model_a: nn.Module, model_b: nn.Module, alphas: Sequence[float], data: Dataset | DataLoader, *,
                recalibrate_data: Dataset | DataLoader | None = None, recalibrate_batches: int | None = None,
                batch_size: int = 512, seed: int = 0, device: str | torch.device | None = None) -> list[float]:
    """Accuracy on ``data`` of (1 - alpha) * model_a + alpha * model_b for each alpha (masks must match).

    Alpha 0 is ``model_a`` and 1 is ``model_b``; values outside [0, 1] extrapolate. With
    ``recalibrate_data`` each interpolated model with BatchNorm gets its statistics recomputed first
    (averaged BN statistics do not describe the averaged network).
    """
    models = check_ingredients([model_a, model_b])
    if isinstance(alphas, (str, bytes)) or not isinstance(alphas, Sequence) or not alphas:
        raise TypeError("alphas must be a non-empty sequence of numbers")
    alphas = [check_float(a, f"alphas[{i}]") for i, a in enumerate(alphas)]
    if not isinstance(data, (Dataset, DataLoader)):
        raise TypeError(f"data must be a torch Dataset or DataLoader; got {type(data).__name__}")
    accuracies = []
    for alpha in alphas:
        model = combine(models, [1.0 - alpha, alpha])
        if recalibrate_data is not None and has_batchnorm(model):
            recalibrate_batchnorm(model, recalibrate_data, batches=recalibrate_batches, seed=seed, device=device)
        accuracies.append(float(evaluate(model, data, batch_size=batch_size, device=device)["accuracy"]))
    return accuracies


__all__ = ["check_ingredients", "combine", "greedy_soup", "has_batchnorm", "interpolate", "recalibrate_batchnorm",
           "uniform_soup"]
