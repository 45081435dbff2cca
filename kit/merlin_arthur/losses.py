"""The game's losses: Arthur's on Merlin's and Morgana's features, and each prover's own objective."""

from __future__ import annotations

import torch
from torch import nn

from ..validate import check_choice

ROLES = ("merlin", "morgana")


def _check(logits: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("logits and y must be tensors")
    if logits.dim() != 2 or logits.shape[-1] < 3:
        raise ValueError(f"logits must be (batch, classes + 1) with classes >= 2 (the last is \"don't know\"); got "
                         f"shape {tuple(logits.shape)}")
    if y.shape != logits.shape[:1]:
        raise ValueError(f"y must hold one class index per row of logits ({logits.shape[0]}); got shape "
                         f"{tuple(y.shape)}")


def merlin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Arthur's loss on Merlin's features: cross-entropy towards the true class (not "don't know")."""
    _check(logits, y)
    return nn.functional.cross_entropy(logits, y)


def morgana_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Arthur's loss on Morgana's features: -log(p_true + p_dontknow), from logsumexps (finite for any logits).

    Arthur is right to answer the true class or to abstain; only a wrong class costs him.
    """
    _check(logits, y)
    check_choice(reduction, "reduction", ("mean", "none"))
    safe = torch.stack([logits.gather(1, y[:, None]).squeeze(1), logits[:, -1]], dim=1)
    per_sample = torch.logsumexp(logits, dim=1) - torch.logsumexp(safe, dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample


def prover_objective(logits: torch.Tensor, y: torch.Tensor, role: str) -> torch.Tensor:
    """What a prover minimises, per sample: Merlin -log p_true; Morgana -log(sum of the wrong classes' p)."""
    check_choice(role, "role", ROLES)
    _check(logits, y)
    log_norm = torch.logsumexp(logits, dim=1)
    if role == "merlin":
        return log_norm - logits.gather(1, y[:, None]).squeeze(1)
    wrong = torch.ones_like(logits, dtype=torch.bool)
    wrong.scatter_(1, y[:, None], False)
    wrong[:, -1] = False
    return log_norm - torch.logsumexp(logits.masked_fill(~wrong, -torch.inf), dim=1)


class GameLoss:
    """Arthur's loss on a batch whose first half shows Merlin's features and second half Morgana's:
    L_Merlin + gamma * L_Morgana (as ``fit``'s ``loss_fn``)."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = logits.shape[0] // 2
        loss = merlin_loss(logits[:n], y[:n])
        if self.gamma:
            loss = loss + self.gamma * morgana_loss(logits[n:], y[n:])
        return loss
