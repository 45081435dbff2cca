"""Sparse Model Soups (SMS): average retrained copies of one pruned model, then prune the average further.

A phase of :func:`sparse_model_soup` prunes the previous soup (phase 1: the dense model) to the
cumulative sparsity 1 - (1 - s)^(i/P), exactly as :func:`~kit.pruning.algorithms.imp` does, retrains
``ingredients`` copies that differ in one setting, merges them (:func:`uniform_soup` or
:func:`greedy_soup`), recomputes BatchNorm statistics (:func:`recalibrate_batchnorm`) and goes on
from the soup. The copies share the mask by construction, so the soup is exactly as sparse as each.

Decisions (the notebook and the tests rely on them):

* ``retrain_epochs`` means what it means for ``imp``: each ingredient's retraining budget over all
  phases, split per phase by :func:`~kit.pruning.algorithms.phase_epochs`. A soup of m ingredients
  therefore costs m times the retraining of one IMP run with the same ``retrain_epochs`` (compare
  with ``imp(retrain_epochs=m * E)`` for equal compute).
* What varies (``vary``), ingredient j of m, with u_j = -1 + 2j/(m-1) spread evenly over [-1, 1]
  (u = 0 when m = 1), unless ``values`` gives one value per ingredient:
  ``seed``: the batch order (fit seed) differs, ingredient 0 keeping IMP's phase seed;
  ``weight_decay``: weight_decay * 2**u_j (from half to twice the base; values = absolute decays);
  ``lr``: the retraining schedule times 2**u_j (values = these factors);
  ``retrain_length``: the phase's retraining steps times 1 + u_j / 2, rounded, at least one step
  (from half to 1.5 times; values = these factors), so the mean length is the base length.
  Except for ``seed``, all ingredients see the same batch order (IMP's phase seed).
* With one ingredient the run is IMP itself (same pruning, seed and schedule, and no merge or
  recalibration), bit for bit.
* BatchNorm statistics are recomputed whenever a soup averages two or more ingredients (a soup of
  one is that ingredient, with its own statistics), on ``recalibrate_batches`` seeded batches of the
  training split (all of it by default). With ``recalibrate_ingredients=True`` every ingredient
  gets the same treatment before it is scored or merged. Off by default (the paper's recipe, and one
  ingredient stays IMP), but after short retraining BatchNorm running statistics lag behind the
  weights, so a recalibrated soup against unrecalibrated ingredients credits averaging with what
  recalibration alone does: switch it on (and recalibrate IMP's model too) for a fair comparison.
* ``workers > 1`` trains the ingredients of a phase in that many spawned processes, each with one
  intra-op thread; data and models travel as bytes (no shared memory). The results equal the
  sequential ones whenever the sequential run also uses one intra-op thread (CPU kernels may sum in an
  order that depends on the thread count).
* Checkpoints reuse IMP's mechanism (same format, file names ``imp-phase-NNN.pt``, atomic writes,
  config fingerprint); a checkpoint of other arguments raises, one of another ``workers`` value resumes.
* :func:`soup_gmp` applies soups to GMP (pruning during training): one GMP run prunes to the target,
  then the ingredients retrain copies of its result under GMP's final mask and are merged, so the
  masks are identical by construction (m GMP runs would each pick their own mask).
"""

from __future__ import annotations

import concurrent.futures
import io
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..budget import get_device
from ..data import Splits, make_loader
from ..schedules import Constant, Schedule, as_schedule, steps_per_epoch
from ..train import Callback, TrainState, evaluate, fit, predict
from ..validate import check_choice, check_float, check_int
from .algorithms import (
    CHECKPOINT_FORMAT,
    _accuracy,
    _check_common,
    _fingerprint_model,
    _fingerprint_schedule,
    _load_checkpoint,
    _phase_seed,
    _prune,
    _save_atomic,
    gmp,
    phase_epochs,
    phase_sparsity,
)
from .masks import copy_model, effective_weight, is_masked, load_pruned_state_dict, refresh_masked, sparsity_report
from .schedules import RETRAIN_SCHEDULES, retrain_schedule

VARY = ("seed", "weight_decay", "retrain_length", "lr")
MERGE = ("uniform", "greedy")
ECE_BINS = 15


# ---------------------------------------------------------------- merging

def _mask_keys(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in state if k.endswith("_mask") and f"{k[:-5]}_orig" in state]


def _layer_of(key: str) -> tuple[str, str]:
    prefix, _, leaf = key.rpartition(".")
    return prefix, leaf.removesuffix("_mask").removesuffix("_orig")


def _check_ingredients(models: Sequence[nn.Module], name: str = "models") -> list[nn.Module]:
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


def _combine(models: list[nn.Module], weights: Sequence[float] | None = None) -> nn.Module:
    """sum_k w_k state_k of every float non-mask tensor (mean without weights), in float64; the rest from model 0."""
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
    return _combine(_check_ingredients(models))


def _has_batchnorm(model: nn.Module) -> bool:
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
    models = _check_ingredients(models)
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
        trial = _combine([models[j] for j in [*selected, k]])
        if recalibrate_data is not None and _has_batchnorm(trial):
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
    dev = get_device(device)
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
    models = _check_ingredients([model_a, model_b])
    if isinstance(alphas, (str, bytes)) or not isinstance(alphas, Sequence) or not alphas:
        raise TypeError("alphas must be a non-empty sequence of numbers")
    alphas = [check_float(a, f"alphas[{i}]") for i, a in enumerate(alphas)]
    if not isinstance(data, (Dataset, DataLoader)):
        raise TypeError(f"data must be a torch Dataset or DataLoader; got {type(data).__name__}")
    accuracies = []
    for alpha in alphas:
        model = _combine(models, [1.0 - alpha, alpha])
        if recalibrate_data is not None and _has_batchnorm(model):
            recalibrate_batchnorm(model, recalibrate_data, batches=recalibrate_batches, seed=seed, device=device)
        accuracies.append(float(evaluate(model, data, batch_size=batch_size, device=device)["accuracy"]))
    return accuracies


# ---------------------------------------------------------------- metrics

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


def _probs(model: nn.Module, data: Dataset | DataLoader, device: str | torch.device | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = model.training
    output, target = predict(model, data, device=device)
    model.train(was_training)
    return torch.softmax(output.double(), dim=-1), target


def _accuracy_of(probs: torch.Tensor, targets: torch.Tensor) -> float:
    return float((probs.argmax(dim=-1) == targets).double().mean())


def ensemble_accuracy(models: Sequence[nn.Module], data: Dataset | DataLoader, *,
                      device: str | torch.device | None = None) -> float:
    """Accuracy of the output ensemble: the class of the largest mean softmax probability over ``models``."""
    if isinstance(models, nn.Module) or not isinstance(models, Sequence) or not models:
        raise TypeError("models must be a non-empty sequence of nn.Module")
    if not all(isinstance(m, nn.Module) for m in models):
        raise TypeError("models must hold torch.nn.Module instances only")
    outputs = [_probs(m, data, device) for m in models]
    return _accuracy_of(sum(p for p, _ in outputs) / len(outputs), outputs[0][1])


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


# ---------------------------------------------------------------- results

@dataclass
class IngredientResult:
    """One retrained copy: its varied setting and what it trained with, its accuracy, calibration and sparsity.

    ``value`` is the varied setting's value (the weight decay, the learning-rate or length factor,
    or, for ``vary='seed'``, the ingredient's index); ``seed`` orders its batches.
    """

    index: int
    value: float
    seed: int
    weight_decay: float
    lr_peak: float
    steps: int
    epochs: float
    accuracy: float
    val_accuracy: float
    ece: float
    sparsity: float
    zeros: int
    history: list[dict[str, float]] = field(default_factory=list, compare=False)


@dataclass
class SoupPhase:
    """One SMS phase: pruning, the ingredients, and soup, best ingredient (by validation accuracy) and ensemble.

    ``accuracy`` / ``val_accuracy`` / ``ece`` are the soup's (test, validation, test ECE);
    ``best_ingredient`` is chosen by validation accuracy, ``best_accuracy`` / ``best_ece`` are its
    test numbers; ``ensemble_*`` average the ingredients' softmax outputs. ``selected`` lists the
    ingredients in the soup, ``recalibrated`` says whether BatchNorm statistics were recomputed,
    ``distances`` / ``angles`` (degrees) compare the ingredients pairwise. ``sparsity`` / ``zeros``
    are the soup's; each ingredient's are in ``ingredients``.
    """

    phase: int
    target_sparsity: float
    sparsity: float
    zeros: int
    total: int
    pruned_fraction: float
    distance: float
    accuracy_pruned: float
    accuracy: float
    val_accuracy: float
    ece: float
    ensemble_accuracy: float
    ensemble_ece: float
    best_ingredient: int
    best_accuracy: float
    best_ece: float
    selected: list[int]
    recalibrated: bool
    epochs: int
    ingredients: list[IngredientResult]
    distances: list[list[float]]
    angles: list[list[float]]
    seconds: float = field(default=0.0, compare=False)

    @property
    def max_ingredient_accuracy(self) -> float:
        """The highest test accuracy of any ingredient (an optimistic baseline: picked by test accuracy)."""
        return max(x.accuracy for x in self.ingredients)

    def row(self) -> dict[str, Any]:
        """The table row: scalars plus mean ingredient accuracy, mean pairwise distance and angle."""
        m = len(self.ingredients)
        pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
        skip = ("ingredients", "distances", "angles", "seconds", "selected")
        return {**{k: v for k, v in asdict(self).items() if k not in skip},
                "ingredients": m, "selected": len(self.selected),
                "mean_ingredient_accuracy": sum(x.accuracy for x in self.ingredients) / m,
                "max_ingredient_accuracy": self.max_ingredient_accuracy,
                "mean_distance": (sum(self.distances[a][b] for a, b in pairs) / len(pairs)) if pairs else 0.0,
                "mean_angle": (sum(self.angles[a][b] for a, b in pairs) / len(pairs)) if pairs else 0.0}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SoupPhase:
        """Rebuild from :func:`dataclasses.asdict` output (as stored in a checkpoint)."""
        return cls(**{**d, "ingredients": [IngredientResult(**x) for x in d["ingredients"]]})


@dataclass
class SoupResult:
    """Per-phase results of :func:`sparse_model_soup` or :func:`soup_gmp` and the final soup (masks attached).

    ``dense_accuracy`` is the test accuracy before the first pruning; for ``soup_gmp``,
    ``base_phases`` holds the GMP run's pruning steps (table rows) and ``base_accuracy`` its final
    accuracy. ``resumed_phases`` (not part of equality) counts phases read from a checkpoint; the
    model is not part of equality either (compare state dicts).
    """

    method: str
    phases: list[SoupPhase]
    model: nn.Module = field(repr=False, compare=False)  # compare models by their state dicts
    dense_accuracy: float
    config: dict[str, Any] = field(default_factory=dict)
    base_phases: list[dict[str, Any]] = field(default_factory=list)
    base_accuracy: float | None = None
    resumed_phases: int = field(default=0, compare=False)

    @property
    def sparsity(self) -> float:
        """Global sparsity of the final soup."""
        return self.phases[-1].sparsity if self.phases else 0.0

    @property
    def accuracy(self) -> float:
        """Test accuracy of the final soup."""
        return self.phases[-1].accuracy if self.phases else self.dense_accuracy

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per phase, ready for a table or a DataFrame."""
        return [{"method": self.method, **p.row()} for p in self.phases]

    def ingredient_rows(self) -> list[dict[str, Any]]:
        """One plain dict per (phase, ingredient), without histories."""
        return [{"phase": p.phase, **{k: v for k, v in asdict(x).items() if k != "history"}}
                for p in self.phases for x in p.ingredients]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as plain numbers and strings (for JSON results)."""
        return {"method": self.method, "config": dict(self.config), "dense_accuracy": self.dense_accuracy,
                "base_accuracy": self.base_accuracy, "base_phases": list(self.base_phases),
                "sparsity": self.sparsity, "accuracy": self.accuracy, "phases": [asdict(p) for p in self.phases]}


# ---------------------------------------------------------------- ingredient training (in this or a worker process)

class _Table:
    """A schedule given by its values at steps 0..n-1 (the last value after): exact, and picklable for workers."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = tuple(float(v) for v in values)

    def __call__(self, step: int) -> float:
        return self.values[min(step, len(self.values) - 1)]


class _StopAfter(Callback):
    """Ends ``fit`` after ``steps`` optimizer steps (retraining lengths that are not whole epochs)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def after_step(self, state: TrainState) -> None:
        if state.step + 1 >= self.steps:  # state.step counts the steps before this one
            state.stop = True


@dataclass(frozen=True)
class _Task:
    index: int
    value: float
    seed: int
    steps: int
    epochs: int
    lrs: tuple[float, ...]
    weight_decay: float
    momentum: float
    batch_size: int
    desc: str


def _train(model: nn.Module, train: Dataset, val: Dataset, task: _Task, device: str | torch.device | None,
           progress: bool) -> list[dict[str, float]]:
    return fit(model, train, epochs=task.epochs, lr=task.lrs[0], lr_schedule=_Table(task.lrs),
               momentum=task.momentum, weight_decay=task.weight_decay, batch_size=task.batch_size, val_data=val,
               callbacks=[_StopAfter(task.steps)], seed=task.seed, device=device, progress=progress,
               desc=task.desc).records


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _loads(payload: bytes) -> Any:
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)  # our own bytes


_WORKER: dict[str, Any] = {}


def _init_worker(payload: bytes) -> None:
    # one intra-op thread per worker: m workers share the cores, and the sums match a one-thread run
    torch.set_num_threads(1)
    _WORKER.update(_loads(payload))


def _train_in_worker(model_payload: bytes, task: _Task) -> bytes:
    model = _loads(model_payload)
    history = _train(model, _WORKER["train"], _WORKER["val"], task, _WORKER["device"], progress=False)
    return _dumps({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "history": history})


class _Trainer:
    """Trains a phase's ingredients one after another, or in a pool of spawned processes (created on first use)."""

    def __init__(self, data: Splits, workers: int, device: str | torch.device | None, progress: bool) -> None:
        self.data, self.workers, self.device, self.progress = data, workers, device, progress
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None

    def run(self, work: nn.Module, tasks: list[_Task]) -> list[tuple[nn.Module, list[dict[str, float]]]]:
        if self.workers == 1 or len(tasks) == 1:
            out = []
            for task in tasks:
                model = copy_model(work)
                out.append((model, _train(model, self.data.train, self.data.val, task, self.device, self.progress)))
            return out
        if self.pool is None:
            payload = _dumps({"train": self.data.train, "val": self.data.val, "device": self.device})
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(payload,))
        model_payload = _dumps(copy_model(work).cpu())
        futures = [self.pool.submit(_train_in_worker, model_payload, task) for task in tasks]
        out = []
        for future in futures:
            result = _loads(future.result())
            model = copy_model(work)
            model.load_state_dict(result["state_dict"])
            refresh_masked(model)
            out.append((model, result["history"]))
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


# ---------------------------------------------------------------- SMS

def _spread(m: int) -> list[float]:
    return [0.0] if m == 1 else [-1.0 + 2.0 * j / (m - 1) for j in range(m)]


def ingredient_values(vary: str, ingredients: int, *, weight_decay: float = 0.0) -> list[float]:
    """The default value of the varied setting for each ingredient (see the module docstring for the grid)."""
    vary = check_choice(vary, "vary", VARY)
    ingredients = check_int(ingredients, "ingredients", low=1)
    weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
    u = _spread(ingredients)
    if vary == "seed":
        return [float(j) for j in range(ingredients)]
    if vary == "weight_decay":
        if weight_decay == 0.0 and ingredients > 1:
            raise ValueError("vary='weight_decay' spreads the ingredients around weight_decay, which is 0; "
                             "pass weight_decay > 0 or values= (one weight decay per ingredient)")
        return [weight_decay * 2.0 ** x for x in u]
    if vary == "lr":
        return [2.0 ** x for x in u]
    return [1.0 + x / 2.0 for x in u]


def _ingredient_seed(seed: int, phase: int, index: int) -> int:
    # ingredient 0 keeps IMP's phase seed, so one ingredient reproduces IMP; the others get seeds of their own
    if index == 0:
        return _phase_seed(seed, phase)
    return int(np.random.SeedSequence([seed, phase, index]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@dataclass
class _Plan:
    ingredients: int
    vary: str
    values: list[float]
    merge: str
    schedule: str
    criterion: str
    momentum: float
    weight_decay: float
    batch_size: int
    seed: int
    recalibrate_batches: int | None
    recalibrate_ingredients: bool
    workers: int


def _check_plan(args: dict[str, Any], ingredients: int, vary: str, merge: str, values: Sequence[float] | None,
                schedule: str, recalibrate_batches: int | None, recalibrate_ingredients: bool,
                workers: int) -> _Plan:
    ingredients = check_int(ingredients, "ingredients", low=1)
    vary = check_choice(vary, "vary", VARY)
    merge = check_choice(merge, "merge", MERGE)
    if not (isinstance(schedule, str) and schedule.upper() in RETRAIN_SCHEDULES):
        check_choice(schedule, "schedule", RETRAIN_SCHEDULES)
    if recalibrate_batches is not None:
        recalibrate_batches = check_int(recalibrate_batches, "recalibrate_batches", low=1)
    workers = check_int(workers, "workers", low=1)
    if not isinstance(recalibrate_ingredients, bool):
        raise TypeError(f"recalibrate_ingredients must be True or False; got {type(recalibrate_ingredients).__name__}")
    if values is None:
        values = ingredient_values(vary, ingredients, weight_decay=args["weight_decay"])
    else:
        if vary == "seed":
            raise ValueError("values= does not apply to vary='seed' (the seeds derive from seed, phase and ingredient)")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"values must be a sequence of numbers, one per ingredient; got {type(values).__name__}")
        if len(values) != ingredients:
            raise ValueError(f"values must hold one value per ingredient ({ingredients}); got {len(values)}")
        if vary == "weight_decay":
            values = [check_float(v, f"values[{j}]", low=0.0) for j, v in enumerate(values)]
        else:
            values = [check_float(v, f"values[{j}]", low=0.0, low_open=True) for j, v in enumerate(values)]
    return _Plan(ingredients=ingredients, vary=vary, values=list(values), merge=merge, schedule=schedule.upper(),
                 criterion=args["criterion"], momentum=args["momentum"], weight_decay=args["weight_decay"],
                 batch_size=args["batch_size"], seed=args["seed"], recalibrate_batches=recalibrate_batches,
                 recalibrate_ingredients=recalibrate_ingredients, workers=workers)


def _tasks(plan: _Plan, phase: int, base_steps: int, spe: int, train_schedule: Schedule, train_steps: int,
           distance: float, fraction: float, desc: str) -> list[_Task]:
    tasks = []
    for j, value in enumerate(plan.values):
        steps = max(1, round(value * base_steps)) if plan.vary == "retrain_length" else base_steps
        lr_schedule = retrain_schedule(plan.schedule, retrain_steps=steps, train_schedule=train_schedule,
                                       train_steps=train_steps, distance=distance,
                                       # nothing pruned (rounding) means d = 0: any p > 0 gives ALLR its floor
                                       pruned_fraction=fraction if fraction > 0 else 1.0)
        factor = value if plan.vary == "lr" else 1.0
        tasks.append(_Task(index=j, value=float(value),
                           seed=_ingredient_seed(plan.seed, phase, j if plan.vary == "seed" else 0),
                           steps=steps, epochs=math.ceil(steps / spe),
                           lrs=tuple(factor * float(lr_schedule(t)) for t in range(steps)),
                           weight_decay=value if plan.vary == "weight_decay" else plan.weight_decay,
                           momentum=plan.momentum, batch_size=plan.batch_size,
                           desc=f"{desc}, ingredient {j + 1}/{len(plan.values)}"))
    return tasks


def _soup_phase(work: nn.Module, data: Splits, plan: _Plan, trainer: _Trainer, *, phase: int, target: float,
                epochs: int, train_schedule: Schedule, train_steps: int, device: str | torch.device | None,
                desc: str) -> tuple[nn.Module, SoupPhase]:
    started = time.perf_counter()
    fraction, distance = _prune(work, plan.criterion, target, _phase_seed(plan.seed, phase))
    accuracy_pruned = _accuracy(work, data, device)
    spe = steps_per_epoch(len(data.train), plan.batch_size)
    tasks = _tasks(plan, phase, epochs * spe, spe, train_schedule, train_steps, distance, fraction, desc)
    trained = trainer.run(work, tasks)
    models = [m for m, _ in trained]
    recalibrate = data.train if _has_batchnorm(work) else None
    recal_seed = _phase_seed(plan.seed, phase)
    if recalibrate is not None and plan.recalibrate_ingredients:
        for model in models:
            recalibrate_batchnorm(model, recalibrate, batches=plan.recalibrate_batches, batch_size=plan.batch_size,
                                  seed=recal_seed, device=device)

    test = [_probs(m, data.test, device) for m in models]
    targets = test[0][1]
    ingredients = []
    for task, (model, history), (probs, _) in zip(tasks, trained, test, strict=True):
        report = sparsity_report(model)
        ingredients.append(IngredientResult(
            index=task.index, value=task.value, seed=task.seed, weight_decay=task.weight_decay,
            lr_peak=max(task.lrs), steps=task.steps, epochs=task.steps / spe, accuracy=_accuracy_of(probs, targets),
            val_accuracy=float(evaluate(model, data.val, device=device)["accuracy"]),
            ece=expected_calibration_error(probs, targets), sparsity=report.sparsity, zeros=report.zeros,
            history=history))

    if plan.merge == "greedy":
        soup, selected = greedy_soup(models, data.val, recalibrate_data=recalibrate,
                                     recalibrate_batches=plan.recalibrate_batches, batch_size=plan.batch_size,
                                     seed=recal_seed, device=device, return_selected=True)
    else:
        selected = list(range(len(models)))
        soup = uniform_soup(models) if len(models) > 1 else copy_model(models[0])
        if recalibrate is not None and len(models) > 1:
            recalibrate_batchnorm(soup, recalibrate, batches=plan.recalibrate_batches, batch_size=plan.batch_size,
                                  seed=recal_seed, device=device)
    soup_probs, _ = _probs(soup, data.test, device)
    ensemble = sum(p for p, _ in test) / len(test)
    best = max(range(len(models)), key=lambda k: (ingredients[k].val_accuracy, -k))
    distances, angles = pairwise_distances(models)
    report = sparsity_report(soup)
    record = SoupPhase(
        phase=phase, target_sparsity=target, sparsity=report.sparsity, zeros=report.zeros, total=report.total,
        pruned_fraction=fraction, distance=distance, accuracy_pruned=accuracy_pruned,
        accuracy=_accuracy_of(soup_probs, targets),
        val_accuracy=float(evaluate(soup, data.val, device=device)["accuracy"]),
        ece=expected_calibration_error(soup_probs, targets), ensemble_accuracy=_accuracy_of(ensemble, targets),
        ensemble_ece=expected_calibration_error(ensemble, targets), best_ingredient=best,
        best_accuracy=ingredients[best].accuracy, best_ece=ingredients[best].ece, selected=selected,
        recalibrated=recalibrate is not None and len(selected) > 1, epochs=epochs, ingredients=ingredients,
        distances=distances.tolist(), angles=angles.tolist(), seconds=time.perf_counter() - started)
    return soup, record


def _check_directory(checkpoint_dir: str | os.PathLike | None) -> Path | None:
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    if directory is not None and directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"checkpoint_dir {directory} exists and is not a directory")
    return directory


def _save(directory: Path | None, config: dict[str, Any], phase: int, model: nn.Module, dense_accuracy: float,
          records: list[SoupPhase], base_phases: list[dict[str, Any]], base_accuracy: float | None) -> None:
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    _save_atomic({"format": CHECKPOINT_FORMAT, "config": config, "phase": phase, "state_dict": state,
                  "dense_accuracy": dense_accuracy, "phases": [asdict(r) for r in records],
                  "base_phases": base_phases, "base_accuracy": base_accuracy}, directory / f"imp-phase-{phase:03d}.pt")


def _run_phases(work: nn.Module, data: Splits, plan: _Plan, *, method: str, config: dict[str, Any],
                targets: list[float], epochs: list[int], records: list[SoupPhase], dense_accuracy: float,
                train_schedule: Schedule, train_steps: int, directory: Path | None, base_phases: list[dict[str, Any]],
                base_accuracy: float | None, progress: bool, device: str | torch.device | None) -> SoupResult:
    resumed = len(records)
    trainer = _Trainer(data, min(plan.workers, plan.ingredients), device, progress)
    outer = tqdm(total=len(targets), initial=resumed, disable=not progress,
                 desc=f"SMS x{plan.ingredients} ({plan.vary}) to {targets[-1]:.1%}")
    try:
        for i in range(resumed + 1, len(targets) + 1):
            work, record = _soup_phase(work, data, plan, trainer, phase=i, target=targets[i - 1], epochs=epochs[i - 1],
                                       train_schedule=train_schedule, train_steps=train_steps, device=device,
                                       desc=f"SMS phase {i}/{len(targets)} ({targets[i - 1]:.1%})")
            records.append(record)
            _save(directory, config, i, work, dense_accuracy, records, base_phases, base_accuracy)
            outer.update(1)
            outer.set_postfix(sparsity=f"{record.sparsity:.3f}", soup=f"{record.accuracy:.3f}",
                              best=f"{record.best_accuracy:.3f}")
    finally:
        trainer.close()
        outer.close()
    return SoupResult(method, records, work, dense_accuracy, config, base_phases, base_accuracy, resumed_phases=resumed)


def _check_train_schedule(train_schedule: Schedule | float) -> Schedule:
    if isinstance(train_schedule, bool) or not (callable(train_schedule) or isinstance(train_schedule, Real)):
        raise TypeError(f"train_schedule must be a callable step -> lr or a constant lr; "
                        f"got {type(train_schedule).__name__}")
    return as_schedule(train_schedule, 0.0)


def sparse_model_soup(model: nn.Module, data: Splits, *, target_sparsity: float, phases: int, ingredients: int,
                      retrain_epochs: int, train_schedule: Schedule | float, train_steps: int, vary: str = "seed",
                      merge: str = "uniform", values: Sequence[float] | None = None, schedule: str = "SLR",
                      criterion: str = "global", momentum: float = 0.9, weight_decay: float = 0.0,
                      batch_size: int = 128, recalibrate_batches: int | None = None,
                      recalibrate_ingredients: bool = False, seed: int = 0, workers: int = 1,
                      checkpoint_dir: str | os.PathLike | None = None, progress: bool = True,
                      device: str | torch.device | None = None) -> SoupResult:
    """Sparse Model Soups from a trained dense ``model``: ``phases`` prune-retrain-merge phases to ``target_sparsity``.

    Each phase prunes the previous soup to 1 - (1 - s)^(i/P), retrains ``ingredients`` copies that
    differ in ``vary`` (``values`` overrides the default grid, see the module docstring), merges them
    (``merge``: 'uniform' or 'greedy' by validation accuracy), recomputes BatchNorm statistics on
    the training split and continues from the soup. ``retrain_epochs`` is each ingredient's budget
    over all phases, split as in :func:`~kit.pruning.algorithms.imp`, at least one epoch per phase;
    ``train_schedule`` / ``train_steps`` describe the dense training the retraining ``schedule``
    derives from. ``recalibrate_ingredients`` recomputes each ingredient's BatchNorm statistics as well
    (a fair soup-vs-ingredient comparison; see the module docstring). ``workers > 1`` trains
    ingredients in parallel processes; ``checkpoint_dir`` saves every phase and resumes after the
    last saved one. All arguments are checked before any work.
    """
    args = _check_common(model, data, target_sparsity, criterion, momentum, weight_decay, batch_size, seed)
    s = args["target_sparsity"]
    phases = check_int(phases, "phases", low=1)
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=0)
    if retrain_epochs < phases:
        raise ValueError(f"retrain_epochs must be at least phases={phases} (every ingredient retrains at least one "
                         f"epoch per phase); got {retrain_epochs}")
    plan = _check_plan(args, ingredients, vary, merge, values, schedule, recalibrate_batches,
                       recalibrate_ingredients, workers)
    train_schedule = _check_train_schedule(train_schedule)
    train_steps = check_int(train_steps, "train_steps", low=1)
    directory = _check_directory(checkpoint_dir)

    config = dict(method="sms", target_sparsity=s, phases=phases, retrain_epochs=retrain_epochs,
                  ingredients=plan.ingredients, vary=plan.vary, values=plan.values, merge=plan.merge,
                  schedule=plan.schedule, criterion=plan.criterion, train_steps=train_steps, momentum=plan.momentum,
                  weight_decay=plan.weight_decay, batch_size=plan.batch_size,
                  recalibrate_batches=plan.recalibrate_batches,
                  recalibrate_ingredients=plan.recalibrate_ingredients, seed=plan.seed, data=repr(data),
                  model_sha256=_fingerprint_model(model),
                  train_schedule_sha256=_fingerprint_schedule(train_schedule, train_steps))
    ckpt = None if directory is None else _load_checkpoint(directory, config)
    work = copy_model(model)
    if ckpt is None:
        records, dense_accuracy = [], _accuracy(work, data, device)
    else:
        load_pruned_state_dict(work, ckpt["state_dict"])
        records, dense_accuracy = [SoupPhase.from_dict(r) for r in ckpt["phases"]], float(ckpt["dense_accuracy"])
    targets = [phase_sparsity(s, i, phases) for i in range(1, phases + 1)]
    return _run_phases(work, data, plan, method="sms", config=config, targets=targets,
                       epochs=phase_epochs(retrain_epochs, phases), records=records, dense_accuracy=dense_accuracy,
                       train_schedule=train_schedule, train_steps=train_steps, directory=directory, base_phases=[],
                       base_accuracy=None, progress=progress, device=device)


def soup_gmp(model: nn.Module, data: Splits, *, target_sparsity: float, epochs: int, ingredients: int,
             retrain_epochs: int, vary: str = "seed", merge: str = "uniform", values: Sequence[float] | None = None,
             start_epoch: int = 0, end_epoch: int | None = None, interval_epochs: int | None = None, lr: float = 0.1,
             schedule: str = "SLR", criterion: str = "global", momentum: float = 0.9, weight_decay: float = 0.0,
             batch_size: int = 128, recalibrate_batches: int | None = None, recalibrate_ingredients: bool = False,
             seed: int = 0, workers: int = 1,
             checkpoint_dir: str | os.PathLike | None = None, progress: bool = True,
             device: str | torch.device | None = None) -> SoupResult:
    """Soups on GMP: one :func:`~kit.pruning.algorithms.gmp` run to ``target_sparsity``, then one soup phase.

    The GMP run (``epochs``, ``start_epoch``, ``end_epoch``, ``interval_epochs``, ``lr``: 10% warm-up,
    then linear to 0) prunes during training; ``ingredients`` copies of its result then retrain for
    ``retrain_epochs`` under its final mask (``schedule`` derived from the GMP learning rate) and are
    merged. With ``checkpoint_dir`` the GMP result is saved as phase 0 and the soup as phase 1.
    """
    args = _check_common(model, data, target_sparsity, criterion, momentum, weight_decay, batch_size, seed)
    s = args["target_sparsity"]
    epochs = check_int(epochs, "epochs", low=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=1)
    plan = _check_plan(args, ingredients, vary, merge, values, schedule, recalibrate_batches,
                       recalibrate_ingredients, workers)
    directory = _check_directory(checkpoint_dir)
    total = epochs * steps_per_epoch(len(data.train), plan.batch_size)
    # the schedule gmp uses by default, made explicit: the retraining schedule derives from it
    gmp_schedule = retrain_schedule("LLR", retrain_steps=total, train_schedule=Constant(lr), train_steps=total)

    config = dict(method="sms-gmp", target_sparsity=s, epochs=epochs, start_epoch=start_epoch, end_epoch=end_epoch,
                  interval_epochs=interval_epochs, lr=lr, retrain_epochs=retrain_epochs, ingredients=plan.ingredients,
                  vary=plan.vary, values=plan.values, merge=plan.merge, schedule=plan.schedule,
                  criterion=plan.criterion, momentum=plan.momentum, weight_decay=plan.weight_decay,
                  batch_size=plan.batch_size, recalibrate_batches=plan.recalibrate_batches,
                  recalibrate_ingredients=plan.recalibrate_ingredients, seed=plan.seed,
                  data=repr(data), model_sha256=_fingerprint_model(model))
    ckpt = None if directory is None else _load_checkpoint(directory, config)
    if ckpt is None:
        base = gmp(model, data, target_sparsity=s, epochs=epochs, start_epoch=start_epoch, end_epoch=end_epoch,
                   interval_epochs=interval_epochs, lr=lr, lr_schedule=gmp_schedule, criterion=plan.criterion,
                   momentum=plan.momentum, weight_decay=plan.weight_decay, batch_size=plan.batch_size, seed=plan.seed,
                   progress=progress, device=device)
        work, records, dense_accuracy = base.model, [], base.dense_accuracy
        base_phases, base_accuracy = [p.row() for p in base.phases], base.accuracy
        _save(directory, config, 0, work, dense_accuracy, records, base_phases, base_accuracy)
    else:
        work = copy_model(model)
        load_pruned_state_dict(work, ckpt["state_dict"])
        records = [SoupPhase.from_dict(r) for r in ckpt["phases"]]
        dense_accuracy, base_phases = float(ckpt["dense_accuracy"]), list(ckpt["base_phases"])
        base_accuracy = ckpt["base_accuracy"]
    return _run_phases(work, data, plan, method="sms-gmp", config=config, targets=[s], epochs=[retrain_epochs],
                       records=records, dense_accuracy=dense_accuracy, train_schedule=gmp_schedule, train_steps=total,
                       directory=directory, base_phases=base_phases, base_accuracy=base_accuracy, progress=progress,
                       device=device)


__all__ = ["ECE_BINS", "MERGE", "VARY", "IngredientResult", "SoupPhase", "SoupResult", "ensemble_accuracy",
           "expected_calibration_error", "greedy_soup", "ingredient_values", "interpolate", "pairwise_distances",
           "recalibrate_batchnorm", "soup_gmp", "sparse_model_soup", "uniform_soup"]
