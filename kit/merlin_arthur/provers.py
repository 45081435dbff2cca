"""The provers: Merlin (cooperative) and Morgana (adversarial) each pick k features per sample for Arthur.

Every prover is called the same way, ``prover(x, y, arthur) -> mask``: a float tensor of ``x``'s shape with
exactly ``k`` ones per sample. ``sfw`` optimises a mask per sample by stochastic Frank-Wolfe over the
nonnegative k-sparse polytope (``kit.frankwolfe``), ``network`` learns a mask network in the game,
``saliency`` takes the top k of |gradient x input|, ``random`` draws k features.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .. import models
from ..frankwolfe import SFW, NonnegativeKSparsePolytope
from ..validate import check_choice, check_float, check_int
from .arthur import Arthur, mask_features
from .losses import ROLES, prover_objective

PROVERS = ("sfw", "network", "saliency", "random")


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """0/1 float mask of ``scores``' shape with ones at each sample's k largest scores (ties: lower index first)."""
    flat = scores.detach().reshape(scores.shape[0], -1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :k]
    mask = torch.zeros_like(flat, dtype=torch.float32 if not flat.is_floating_point() else flat.dtype)
    return mask.scatter_(1, order, 1.0).reshape(scores.shape)


def check_k(k: Any, features: int | None = None) -> int:
    """k as a count in [1, features] (features: the number of features per sample, when known)."""
    k = check_int(k, "k", low=1)
    if features is not None and k > features:
        raise ValueError(f"k must lie in [1, {features}] (the number of features per sample); got {k}")
    return k


def _check_batch(x: torch.Tensor, y: torch.Tensor, arthur: nn.Module, k: int) -> None:
    if not isinstance(arthur, Arthur):
        raise TypeError(f"arthur must be a kit.merlin_arthur.Arthur; got {type(arthur).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise TypeError("x must be a floating-point batch (samples first)")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1]:
        raise ValueError(f"y must hold one class per sample of x ({x.shape[0]}); got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    check_k(k, x[0].numel())


@contextmanager
def _frozen(arthur: nn.Module) -> Iterator[None]:
    # a prover looks at Arthur without changing him: eval mode (no BatchNorm statistics move), mode restored
    was_training = arthur.training
    arthur.eval()
    try:
        yield
    finally:
        arthur.train(was_training)


class Prover:
    """A feature selector in the role of Merlin (``role='merlin'``) or Morgana (``role='morgana'``)."""

    name = "prover"
    trainable = False

    def __init__(self, k: int, role: str = "merlin", baseline: float = 0.0) -> None:
        self.k = check_k(k)
        self.role = check_choice(role, "role", ROLES)
        self.baseline = check_float(baseline, "baseline")

    def __call__(self, x: torch.Tensor, y: torch.Tensor, arthur: Arthur) -> torch.Tensor:
        """Exactly ``k`` ones per sample: the features this prover shows Arthur."""
        _check_batch(x, y, arthur, self.k)
        with _frozen(arthur):
            return self._select(x, y, arthur)

    def _select(self, x: torch.Tensor, y: torch.Tensor, arthur: Arthur) -> torch.Tensor:
        raise NotImplementedError

    def update(self, x: torch.Tensor, y: torch.Tensor, arthur: Arthur) -> float | None:
        """One training step of a learned prover against the current Arthur (others: nothing to learn)."""
        return None

    def to(self, device: torch.device | str) -> Prover:
        """Move what the prover owns (a network) to ``device``."""
        return self

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the prover (a learned prover's weights and optimizer)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def describe(self) -> dict[str, Any]:
        """The prover's settings as plain values (part of a run's fingerprint)."""
        return {"prover": self.name, "k": self.k, "role": self.role, "baseline": self.baseline}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "prover")
        return f"{type(self).__name__}({args})"


class SFWProver(Prover):
    """Per-sample stochastic Frank-Wolfe on the prover's loss over {m in [0, 1]^d, sum m <= k}, all samples of
    the batch at once; stops early once the rounded masks stay the same for ``patience`` checks, then
    rounds each mask to its top k."""

    name = "sfw"

    def __init__(self, k: int, role: str = "merlin", steps: int = 100, momentum: float = 0.9,
                 check_every: int = 10, patience: int = 2, baseline: float = 0.0) -> None:
        super().__init__(k, role, baseline)
        self.steps = check_int(steps, "steps", low=1)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        self.check_every = check_int(check_every, "check_every", low=1)
        self.patience = check_int(patience, "patience", low=1)
        self.steps_taken = 0

    def _select(self, x, y, arthur):
        n, d = x.shape[0], x[0].numel()
        # the polytope's centre: every feature at k / d, feasible and unbiased
        m = torch.full((n, d), self.k / d, dtype=x.dtype, device=x.device, requires_grad=True)
        region = NonnegativeKSparsePolytope((n, d), self.k, per_sample=True)
        opt = SFW([m], [region], lr=1.0, momentum=self.momentum, rescale=None, step_schedule="decreasing")
        previous, stable = None, 0
        for step in range(1, self.steps + 1):
            with torch.enable_grad():
                logits = arthur(mask_features(x, m.view_as(x), self.baseline))
                # summed over samples: each sample's mask gets its own loss's gradient, whatever the batch size
                (m.grad,) = torch.autograd.grad(prover_objective(logits, y, self.role).sum(), m)
            opt.step()
            if step % self.check_every == 0:
                current = top_k_mask(m, self.k)
                stable = stable + 1 if previous is not None and torch.equal(current, previous) else 0
                previous = current
                if stable >= self.patience:
                    break
        self.steps_taken = step
        return top_k_mask(m, self.k).view_as(x)

    def describe(self):
        return {**super().describe(), "steps": self.steps, "momentum": self.momentum,
                "check_every": self.check_every, "patience": self.patience}


class SaliencyProver(Prover):
    """The top k of |gradient x (input - baseline)| of the prover's loss on Arthur's view of the whole input."""

    name = "saliency"

    def _select(self, x, y, arthur):
        with torch.enable_grad():
            inputs = x.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(prover_objective(arthur(inputs), y, self.role).sum(), inputs)
        return top_k_mask((grad * (x - self.baseline)).abs(), self.k)


class RandomProver(Prover):
    """k features drawn uniformly per sample (from the global generator, which ``fit`` seeds every epoch)."""

    name = "random"

    def _select(self, x, y, arthur):
        return top_k_mask(torch.rand(x.shape, device=x.device), self.k)


def _relaxed(scores: torch.Tensor) -> torch.Tensor:
    # the sigmoid of each sample's standardised scores: raising one feature's score lowers the others', and the
    # scale stays put, so neither a shared offset nor growing scores can saturate the gradient (a plain
    # sigmoid freezes features that start far below the top k; the identity lets every score run off)
    flat = scores.flatten(1)
    spread = flat.std(1, keepdim=True).clamp_min(1e-6)
    return torch.sigmoid((flat - flat.mean(1, keepdim=True)) / spread).view_as(scores)


class NetworkProver(Prover):
    """A mask network (a small U-Net for images, an MLP otherwise) scores every feature; the top k are shown.

    Trained in the game (:meth:`update`): one Adam step per batch on the prover's loss, the top-k mask
    passed through with the straight-through estimator (forward: the 0/1 mask; backward: the sigmoid of each
    sample's standardised scores).
    """

    name = "network"
    trainable = True

    def __init__(self, k: int, role: str = "merlin", input_shape: Sequence[int] = (1, 28, 28),
                 widths: Sequence[int] = (16, 32), lr: float = 1e-3, seed: int = 0, baseline: float = 0.0) -> None:
        super().__init__(k, role, baseline)
        if isinstance(input_shape, int) or not isinstance(input_shape, Sequence) or not input_shape:
            raise TypeError(f"input_shape must be a sequence of ints; got {input_shape!r}")
        self.input_shape = tuple(check_int(s, f"input_shape[{i}]", low=1) for i, s in enumerate(input_shape))
        check_k(self.k, math.prod(self.input_shape))
        self.widths = tuple(widths)
        self.lr = check_float(lr, "lr", low=0.0, low_open=True)
        self.seed = check_int(seed, "seed", low=0)
        with torch.random.fork_rng(devices=[]):  # its own initialisation: the caller's random stream is untouched
            torch.manual_seed(self.seed)
            if len(self.input_shape) == 3:
                self.net: nn.Module = models.UNet(self.input_shape[0], self.input_shape[0], self.widths)
            else:
                d = math.prod(self.input_shape)
                self.net = nn.Sequential(models.MLP(self.input_shape, self.widths, d),
                                         nn.Unflatten(1, self.input_shape))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"this network prover was built for inputs of shape {self.input_shape}; got "
                             f"{tuple(x.shape[1:])}")
        return self.net(x)

    def _select(self, x, y, arthur):
        with torch.no_grad():
            return top_k_mask(self._scores(x), self.k).to(x.dtype)

    def update(self, x, y, arthur):
        _check_batch(x, y, arthur, self.k)
        with _frozen(arthur), torch.enable_grad():
            scores = self._scores(x)
            mask = top_k_mask(scores, self.k).to(x.dtype) + _relaxed(scores) - _relaxed(scores).detach()
            loss = prover_objective(arthur(mask_features(x, mask, self.baseline)), y, self.role).mean()
            params = list(self.net.parameters())
            grads = torch.autograd.grad(loss, params)  # the prover's own: Arthur's gradients stay as they are
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def to(self, device):
        self.net.to(device)
        return self

    def state_dict(self):
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])

    def describe(self):
        return {**super().describe(), "input_shape": list(self.input_shape), "widths": list(self.widths),
                "lr": self.lr, "seed": self.seed}


CLASSES: dict[str, type[Prover]] = {"sfw": SFWProver, "network": NetworkProver, "saliency": SaliencyProver,
                                     "random": RandomProver}


def make_prover(name: str, k: int, role: str = "merlin", **options: Any) -> Prover:
    """A prover by name: 'sfw', 'network', 'saliency' or 'random' (``options`` go to its class)."""
    if not isinstance(name, str) or name not in CLASSES:
        raise ValueError(f"unknown prover {name!r}; choose one of {', '.join(PROVERS)}")
    return CLASSES[name](k, role, **options)
