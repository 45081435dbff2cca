"""Physics-informed training of an operator on the one training loop, prediction on a grid, errors, fine-tuning.

No solution data: the loss is the mean squared PDE residual at collocation points drawn afresh every step
(x uniform in [0, 1], t uniform in [0, t_max]), over a batch of initial conditions. The operators meet the
initial condition, and the boundary condition, by construction, so no boundary term is needed.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..budget import model_device
from ..runs import Checkpoints, fingerprint, fingerprint_model, hash_tensors
from ..schedules import Cosine
from ..seeding import check_seed
from ..train import History, fit_resumable, make_optimizer
from ..validate import check_float, check_int
from .networks import PINN, Operator

FORMAT = "kit.operators.training/1"


class Residuals(nn.Module):
    """What ``fit`` trains: for a batch of initial conditions (their coefficients), the PDE residual of the
    operator's field at ``collocation`` fresh random points each: (B, collocation)."""

    def __init__(self, operator: Operator, collocation: int = 256, t_max: float = 1.0) -> None:
        super().__init__()
        if not isinstance(operator, Operator):
            raise TypeError(f"operator must be a kit.operators operator (NPR, DeepONet, PINN); got "
                            f"{type(operator).__name__}")
        self.operator = operator
        self.collocation = check_int(collocation, "collocation", low=1)
        self.t_max = check_float(t_max, "t_max", low=0.0, low_open=True)

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        b = coefficients.shape[0]
        dev = coefficients.device
        x = torch.rand(b, self.collocation, device=dev).requires_grad_(True)
        t = (torch.rand(b, self.collocation, device=dev) * self.t_max).requires_grad_(True)
        return residual(self.operator, coefficients, x, t)


def residual(operator: Operator, coefficients: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The PDE residual of the operator's field at points (x, t) (both (B, Np), requiring grad): each point's u
    depends on its own x and t only, so one backward pass gives every point's derivative."""
    u = operator(coefficients, x, t)
    u_x, u_t = torch.autograd.grad(u.sum(), (x, t), create_graph=True)
    (u_xx,) = torch.autograd.grad(u_x.sum(), x, create_graph=True)
    return operator.problem.residual(u, u_t, u_x, u_xx)


def mean_square(residuals: torch.Tensor, _target: torch.Tensor) -> torch.Tensor:
    """The physics loss: mean squared residual (the target is a placeholder)."""
    return residuals.pow(2).mean()


def dataset(operator: Operator, initial: np.ndarray | torch.Tensor) -> TensorDataset:
    """Initial conditions on the grid (count, n) as a dataset of their series coefficients (and a placeholder)."""
    initial = np.atleast_2d(np.asarray(initial.detach().cpu() if isinstance(initial, torch.Tensor) else initial,
                                       dtype=np.float64))
    if initial.shape[1] < operator.sensors:
        raise ValueError(f"the initial conditions have {initial.shape[1]} grid points, fewer than the operator's "
                         f"{operator.sensors} sensors")
    coeffs = torch.stack([operator.problem.coefficients(u0, operator.modes) for u0 in initial]).float()
    return TensorDataset(coeffs, torch.zeros(len(coeffs)))


def train(operator: Operator, initial: np.ndarray | torch.Tensor, *, epochs: int = 10, lr: float = 1e-3,
          batch_size: int = 16, collocation: int = 256, t_max: float = 1.0, seed: int = 0,
          checkpoint_dir: str | os.PathLike | None = None, progress: bool = True, decay: bool = True) -> History:
    """Physics-informed training of ``operator`` over the initial conditions ``initial`` (count, n) with Adam, the
    learning rate falling from ``lr`` to 0 along a cosine (``decay``); a checkpoint per epoch in
    ``checkpoint_dir`` lets an interrupted run resume with identical results."""
    epochs = check_int(epochs, "epochs", low=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    batch_size = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed)
    model = Residuals(operator, collocation, t_max)
    data = dataset(operator, initial)
    opt = make_optimizer("adam", [p for p in operator.parameters() if p.requires_grad], lr, 0.0, 0.0)
    steps = -(-len(data) // batch_size)  # per epoch
    config = {"fingerprint": fingerprint({"epochs": epochs, "lr": lr, "batch_size": batch_size, "decay": decay,
                                          "collocation": collocation, "t_max": t_max, "seed": seed,
                                          "operator": fingerprint_model(operator),
                                          "data": hash_tensors({"coefficients": data.tensors[0]})}),
              "epochs": epochs, "seed": seed}
    checkpoints = None if checkpoint_dir is None else Checkpoints(checkpoint_dir, prefix="operator", format=FORMAT,
                                                                 kind="operator training")
    operator.t_max = model.t_max
    return fit_resumable(model, data, optimizer=opt, epochs=epochs, seed=seed, checkpoints=checkpoints,
                         config=config, progress=progress, desc=type(operator).__name__, loss_fn=mean_square,
                         batch_size=batch_size, lr_schedule=Cosine(lr, epochs * steps) if decay else None)


@torch.no_grad()
def predict(operator: Operator, u0: np.ndarray | torch.Tensor, t: Sequence[float] | np.ndarray,
            params: torch.Tensor | None = None) -> np.ndarray:
    """The operator's solution for one initial condition on its own grid, at times t: (len(t), n) like
    ``problem.solve``. ``params`` replaces the regressed parameters (e.g. after fine-tuning)."""
    problem = operator.problem
    u0 = problem.check_initial(u0)
    t = problem.check_times(t)
    trained = getattr(operator, "t_max", None)
    if trained is not None and t.max() > trained * (1 + 1e-9):
        warnings.warn(f"t = {t.max():g} lies outside the trained range [0, {trained:g}]: the solution there is an "
                      "extrapolation", RuntimeWarning, stacklevel=2)
    dev = model_device(operator)
    coeffs = problem.coefficients(u0, operator.modes).float().to(dev)[None]
    x = torch.tensor(problem.grid(len(u0)), dtype=torch.float32, device=dev)
    xx, tt = torch.meshgrid(x, torch.tensor(t, dtype=torch.float32, device=dev), indexing="xy")
    theta = operator.parameters_for(coeffs) if params is None else params.reshape(1, -1).to(dev)
    u = operator.field(theta, coeffs, xx.reshape(1, -1), tt.reshape(1, -1))
    out = u.reshape(len(t), len(u0)).double().cpu().numpy()
    if not problem.periodic:  # the envelope makes the ends exact; keep them exactly 0 in float64 too
        out[:, 0] = out[:, -1] = 0.0
    return out


def relative_l2(predicted: np.ndarray, reference: np.ndarray) -> float:
    """||predicted - reference|| / ||reference|| over all points."""
    predicted, reference = np.asarray(predicted, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if predicted.shape != reference.shape:
        raise ValueError(f"predicted has shape {predicted.shape}, reference {reference.shape}")
    return float(np.linalg.norm(predicted - reference) / max(np.linalg.norm(reference), 1e-300))


def errors(operator: Operator, initial: np.ndarray, t: Sequence[float]) -> list[float]:
    """Relative L2 error against the reference solver for each initial condition (count, n)."""
    return [relative_l2(predict(operator, u0, t), operator.problem.solve(u0, t)) for u0 in np.atleast_2d(initial)]


def fine_tune(operator: Operator, u0: np.ndarray, *, steps: int = 50, lr: float = 1e-3, collocation: int = 512,
              seed: int = 0, start: torch.Tensor | None = None, factors_only: bool = False,
              progress: bool = False) -> tuple[PINN, History]:
    """A few physics-informed steps on one initial condition, starting from the parameters the operator regresses
    for it (NPR) or from ``start``; returns the tuned solution network (a PINN) and its history. With a fresh
    start (``start=None`` on a non-NPR operator) this is the per-instance PINN baseline. ``factors_only``
    tunes only the hidden layers' low-rank factors U and V."""
    if not isinstance(factors_only, bool):
        raise TypeError(f"factors_only must be True or False; got {type(factors_only).__name__}")
    steps = check_int(steps, "steps", low=1)
    problem = operator.problem
    u0 = problem.check_initial(u0)
    template = operator.solution_network()
    if start is None and template is not None:
        with torch.no_grad():
            start = operator.parameters_for(problem.coefficients(u0, operator.modes).float()[None].to(
                model_device(operator)))[0]
    shape: dict[str, Any] = {} if template is None else {"width": template.width, "rank": template.rank,
                                                          "depth": template.depth}
    with torch.random.fork_rng(devices=[]):  # a fresh PINN's initialisation comes from the seed alone
        torch.manual_seed(seed)
        pinn = PINN(problem, modes=operator.modes, start=None if start is None else start.cpu(), **shape)
    pinn.t_max = getattr(operator, "t_max", 1.0)
    if factors_only:
        pinn.train_factors_only()
    history = train(pinn, u0[None], epochs=steps, lr=lr, batch_size=1, collocation=collocation,
                    t_max=pinn.t_max, seed=seed, progress=progress)
    return pinn, history


def time_to_solution(operator: Operator, u0: np.ndarray, t: Sequence[float], repeats: int = 5) -> float:
    """Median seconds from an initial condition to the solution on the grid (one regression and evaluation)."""
    times = []
    predict(operator, u0, t)
    for _ in range(check_int(repeats, "repeats", low=1)):
        start = time.perf_counter()
        predict(operator, u0, t)
        times.append(time.perf_counter() - start)
    return float(np.median(times))
