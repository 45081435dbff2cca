"""How far Arthur's certificates can be trusted: completeness, soundness, counted feature precision, and the
paper's lower bounds on precision and on the mutual information between the chosen features and the class."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from ..budget import model_device
from ..data import make_loader
from ..validate import check_float, check_int
from .arthur import Arthur, check_mask, mask_features
from .provers import Prover


@torch.no_grad()
def _answers(arthur: Arthur, data: Dataset, prover: Prover, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(arthur, Arthur):
        raise TypeError(f"arthur must be a kit.merlin_arthur.Arthur; got {type(arthur).__name__}")
    if not isinstance(prover, Prover):
        raise TypeError(f"prover must be a kit.merlin_arthur prover; got {type(prover).__name__}")
    batch_size = check_int(batch_size, "batch_size", low=1)
    dev = model_device(arthur)
    prover.to(dev)
    was_training = arthur.training
    arthur.eval()
    answers, targets = [], []
    for x, y in make_loader(data, batch_size, shuffle=False):
        x, y = x.to(dev), y.to(dev)
        answers.append(arthur(mask_features(x, prover(x, y, arthur), prover.baseline)).argmax(dim=-1))
        targets.append(y)
    arthur.train(was_training)
    return torch.cat(answers), torch.cat(targets)


def completeness(arthur: Arthur, data: Dataset, merlin: Prover, batch_size: int = 256) -> float:
    """Arthur's accuracy on Merlin's features (abstaining counts as wrong)."""
    answers, y = _answers(arthur, data, merlin, batch_size)
    return float((answers == y).double().mean())


def soundness(arthur: Arthur, data: Dataset, morgana: Prover, batch_size: int = 256) -> float:
    """The fraction of Morgana's feature sets on which Arthur answers the true class or "don't know"."""
    answers, y = _answers(arthur, data, morgana, batch_size)
    return float(((answers == y) | (answers == arthur.dont_know)).double().mean())


def feature_precision(x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, *, levels: int | None = None,
                      reduction: str = "mean", chunk: int = 64, matches: bool = False
                      ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """For each sample, among all samples of (x, y) that show exactly its values on its masked features,
    the fraction of its class (itself included); averaged unless ``reduction='none'``. ``matches=True``
    also returns how many samples matched (the same reduction): a precision of 1 from a sample that
    matches only itself says little.

    ``levels`` first quantises features into that many equal bins between the data's min and max (2:
    dark or bright pixels), so that "the same values" is not mere floating-point identity.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be tensors")
    check_mask(x, masks)
    if y.shape != x.shape[:1]:
        raise ValueError(f"y must hold one class per sample of x ({x.shape[0]}); got shape {tuple(y.shape)}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; choose one of mean, none")
    chunk = check_int(chunk, "chunk", low=1)
    values = x.reshape(x.shape[0], -1)
    if levels is not None:
        levels = check_int(levels, "levels", low=2)
        low, high = values.min(), values.max()
        values = ((values - low) / (high - low).clamp_min(1e-12) * levels).floor().clamp_max(levels - 1)
    chosen = masks.reshape(x.shape[0], -1) > 0.5
    counts = chosen.sum(1)
    if bool((counts != counts[0]).any()):
        raise ValueError("every sample's mask must choose the same number of features")
    k = int(counts[0])
    index = chosen.float().argsort(dim=1, descending=True, stable=True)[:, :k]  # each sample's chosen features
    precision = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    found = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        idx = index[start:start + chunk]  # (c, k)
        mine = values[start:start + chunk].gather(1, idx)  # (c, k): each sample's own values there
        others = values[:, idx]  # (n, c, k): every sample's values on those features
        match = (others == mine.unsqueeze(0)).all(dim=2)  # (n, c)
        same = match & (y[:, None] == y[start:start + chunk][None, :])
        found[start:start + chunk] = match.sum(0).double()
        precision[start:start + chunk] = same.sum(0).double() / found[start:start + chunk]
    if reduction == "mean":
        precision, found = precision.mean(), found.mean()
    return (precision, found) if matches else precision


def precision_bound(completeness: float, soundness: float, kappa: float = 1.0) -> float:
    """The paper's lower bound on the average precision of Merlin's features: 1 - eps_c - kappa eps_s / (1 - eps_c),
    with eps_c = 1 - completeness, eps_s = 1 - soundness and ``kappa`` the asymmetric feature correlation of
    the data (1: none); clipped to [0, 1]."""
    completeness = check_float(completeness, "completeness", low=0.0, high=1.0)
    soundness = check_float(soundness, "soundness", low=0.0, high=1.0)
    kappa = check_float(kappa, "kappa", low=1.0)
    eps_c, eps_s = 1.0 - completeness, 1.0 - soundness
    if completeness == 0.0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - eps_c - kappa * eps_s / (1.0 - eps_c)))


def _entropy(p: Sequence[float]) -> float:
    return -sum(q * math.log2(q) for q in p if q > 0)


def information_from_precision(precision: float, priors: Sequence[float]) -> float:
    """A lower bound in bits on I(class; features) from the features' average precision: H(C) - H(C | features)
    with H(C | features) <= h(Q) + (1 - Q) log2(C - 1) (Fano's inequality, then Jensen over feature sets);
    0 when the precision says nothing (Q at or below the largest prior)."""
    precision = check_float(precision, "precision", low=0.0, high=1.0)
    priors = [check_float(p, f"priors[{i}]", low=0.0, high=1.0) for i, p in enumerate(priors)]
    if len(priors) < 2 or abs(sum(priors) - 1.0) > 1e-6:
        raise ValueError(f"priors must be at least two class frequencies summing to 1; got {priors}")
    if precision <= max(priors):
        return 0.0
    conditional = _entropy([precision, 1.0 - precision]) + (1.0 - precision) * math.log2(len(priors) - 1)
    return max(0.0, _entropy(priors) - conditional)


def mutual_information_bound(completeness: float, soundness: float, priors: Sequence[float],
                             kappa: float = 1.0) -> float:
    """The guarantee in bits: :func:`information_from_precision` of :func:`precision_bound`."""
    return information_from_precision(precision_bound(completeness, soundness, kappa), priors)


def class_priors(y: torch.Tensor, classes: int) -> list[float]:
    """Class frequencies of the labels ``y`` over ``classes`` classes."""
    classes = check_int(classes, "classes", low=2)
    counts = torch.bincount(y.reshape(-1).cpu(), minlength=classes).double()
    return (counts / counts.sum()).tolist()
