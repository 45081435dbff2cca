"""Penalty baselines for compression-aware training: SGD on loss + lambda * penalty, by subgradient or prox.

Penalties act on the weight matrices and conv kernels (parameters with two or more dimensions);
biases and normalization parameters are left alone. Groups are the slices along dim 0 (conv
filters, rows of a linear weight); the nuclear norm reads a conv kernel as (out, in*kh*kw).

- ``"l1"``: sum |w|; prox = soft threshold.
- ``"group_lasso"``: sum over groups of ||w_g||_2; prox = group soft threshold.
- ``"nuclear"``: sum of singular values; prox = soft threshold of the singular values. Both the
  subgradient and the prox need a full SVD per weight per step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..validate import check_choice, check_float
from .optimizers import closure_loss

PENALTIES = ("l1", "group_lasso", "nuclear")


def _matrix(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1)


def penalty_value(name: str, w: torch.Tensor) -> torch.Tensor:
    """The penalty of one weight tensor (0 for tensors with fewer than two dimensions)."""
    check_choice(name, "penalty", PENALTIES)
    if w.dim() < 2:
        return w.new_zeros(())
    if name == "l1":
        return w.abs().sum()
    if name == "group_lasso":
        return _matrix(w).norm(dim=1).sum()
    return torch.linalg.svdvals(_matrix(w)).sum()


def penalty_subgradient(name: str, w: torch.Tensor) -> torch.Tensor:
    """A subgradient of the penalty at w (0 at the kinks: sign(0) = 0, a zero group gives 0, U V^T)."""
    check_choice(name, "penalty", PENALTIES)
    if w.dim() < 2:
        return torch.zeros_like(w)
    if name == "l1":
        return torch.sign(w)
    m = _matrix(w)
    if name == "group_lasso":
        norms = m.norm(dim=1, keepdim=True)
        return torch.where(norms > 0, m / norms.clamp_min(1e-30), 0.0).view_as(w)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    keep = (s > 1e-7 * s.max().clamp_min(1e-30)).to(m.dtype)  # the null space contributes no direction
    return ((u * keep) @ vh).view_as(w)


def penalty_prox(name: str, w: torch.Tensor, threshold: float) -> torch.Tensor:
    """argmin_y 0.5 ||y - w||^2 + threshold * penalty(y) (w itself for tensors with fewer than two dims)."""
    check_choice(name, "penalty", PENALTIES)
    threshold = check_float(threshold, "threshold", low=0.0)
    if w.dim() < 2:
        return w.clone()
    if name == "l1":
        return torch.sign(w) * (w.abs() - threshold).clamp_min(0.0)
    m = _matrix(w)
    if name == "group_lasso":
        norms = m.norm(dim=1, keepdim=True)
        return (m * (1.0 - threshold / norms.clamp_min(1e-30)).clamp_min(0.0)).view_as(w)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    return ((u * (s - threshold).clamp_min(0.0)) @ vh).view_as(w)


class PenalizedSGD(torch.optim.SGD):
    """SGD with momentum (and weight decay) on loss + strength * penalty.

    ``prox=False`` adds strength * (a subgradient of the penalty) to each gradient before the SGD
    step; ``prox=True`` (prox-SGD) takes the SGD step on the loss alone and then applies the
    penalty's proximal map with threshold lr * strength.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 0.1, *, penalty: str = "l1",
                 strength: float = 1e-4, prox: bool = False, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        check_choice(penalty, "penalty", PENALTIES)
        strength = check_float(strength, "strength", low=0.0)
        lr = check_float(lr, "lr", low=0.0)
        momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
        if not isinstance(prox, bool):
            raise TypeError(f"prox must be True or False; got {type(prox).__name__}")
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        for group in self.param_groups:
            group.update(penalty=penalty, strength=strength, prox=prox)

    @torch.no_grad()
    def step(self, closure=None):
        """One step: penalty subgradient added to the gradients, SGD, then the prox when ``prox``."""
        loss = closure_loss(closure)
        for group in self.param_groups:
            if group["prox"] or group["strength"] == 0:
                continue
            for p in group["params"]:
                if p.grad is not None and p.dim() >= 2:
                    p.grad.add_(penalty_subgradient(group["penalty"], p), alpha=group["strength"])
        super().step()
        for group in self.param_groups:
            if not group["prox"] or group["strength"] == 0:
                continue
            for p in group["params"]:
                if p.grad is not None and p.dim() >= 2:
                    p.copy_(penalty_prox(group["penalty"], p, group["lr"] * group["strength"]))
        return loss
