"""Notebook 08 (Neural Parameter Regression): the operators it trains and bench/npr.py measures, per budget.

Heat (alpha = 0.02) on a 65-point grid and Burgers (nu = 0.01, periodic) on a 64-point grid (128 at gpu),
initial conditions drawn as Gaussian random sine/Fourier series with four modes (amplitude of mode k
~ k^-2), each scaled to a peak of 1; held-out initial conditions from another seed; out-of-distribution
ones with twice the modes. NPR and the physics-informed DeepONet train on the same initial conditions
with the same loss and budget (Adam, cosine decay from 3e-3).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..budget import PerBudget, get_budget
from ..operators import (
    NPR,
    PINN,
    Burgers,
    DeepONet,
    Heat,
    Operator,
    Problem,
    Residuals,
    dataset,
    errors,
    fine_tune,
    mean_square,
    predict,
    relative_l2,
    train,
)
from ..seeding import seed_everything
from ..train import Callback, History, TrainState, fit, make_optimizer
from ..validate import check_choice

PROBLEMS = ("heat", "burgers")
KINDS = ("npr", "deeponet")
SETTINGS: PerBudget[dict[str, Any]] = PerBudget(
    smoke=dict(train=200, test=10, epochs=60, collocation=128, batch=20, hidden=(64, 64), latent=64, points=64,
               pinn_count=3, pinn_steps=300),
    cpu=dict(train=400, test=40, epochs=100, collocation=256, batch=20, hidden=(64, 64), latent=64, points=64,
             pinn_count=5, pinn_steps=1000),
    gpu=dict(train=1000, test=200, epochs=2000, collocation=1024, batch=50, hidden=(256, 256), latent=256,
             points=128, pinn_count=20, pinn_steps=5000),
)
RANKS = (2, 4, 8)  # the ranks the notebook trains for its widget (and bench/npr.py compares)
SEEDS = PerBudget(smoke=(0,), cpu=(0, 1, 2), gpu=(0, 1, 2))
MODES, OOD_MODES = 4, 8  # modes of the training initial conditions; of the out-of-distribution ones
TIMES = np.linspace(0.0, 1.0, 21)
LR = 3e-3
ALPHA = 0.02  # slow enough that every mode stays visible up to t = 1 (mode 4 decays as exp(-3.2 t))
DECAY = 2.0  # amplitude of mode k ~ k^-2: smooth initial conditions


def problem(name: str) -> Problem:
    """The notebook's heat (alpha 0.02) or Burgers (nu 0.01) problem."""
    return Heat(ALPHA) if check_choice(name, "problem", PROBLEMS) == "heat" else Burgers(0.01)


def grid_points(name: str, budget: str | None = None) -> int:
    """Grid size: 65 for heat (both ends), the budget's for Burgers."""
    return SETTINGS(budget)["points"] + 1 if name == "heat" else SETTINGS(budget)["points"]


def initial_conditions(name: str, count: int, *, seed: int, budget: str | None = None, modes: int = MODES
                       ) -> np.ndarray:
    """``count`` initial conditions of the problem on its grid (Gaussian series with ``modes`` modes)."""
    return problem(name).sample(count, grid_points(name, budget), seed=seed, modes=modes, decay=DECAY,
                                  peak=1.0)


def build(kind: str, name: str, budget: str | None = None, seed: int = 0, rank: int = 4) -> Operator:
    """NPR or the physics-informed DeepONet at the budget's size, seeded."""
    check_choice(kind, "kind", KINDS)
    settings = SETTINGS(budget)
    seed_everything(seed)
    if kind == "npr":
        return NPR(problem(name), sensors=32, modes=16, width=32, rank=rank, hidden=settings["hidden"])
    return DeepONet(problem(name), sensors=32, modes=16, latent=settings["latent"], hidden=settings["hidden"])


@dataclass
class Trained:
    """An operator trained on a problem, its history and wall seconds."""

    kind: str
    name: str
    operator: Operator
    history: History
    seconds: float


def train_operator(kind: str, name: str, budget: str | None = None, *, seed: int = 0, rank: int = 4,
                   progress: bool = False) -> Trained:
    """Physics-informed training of one operator on the budget's initial conditions (seed ``seed``)."""
    budget = get_budget(budget)
    settings = SETTINGS(budget)
    operator = build(kind, name, budget, seed, rank)
    data = initial_conditions(name, settings["train"], seed=1000 + seed, budget=budget)
    start = time.perf_counter()
    history = train(operator, data, epochs=settings["epochs"], lr=LR, batch_size=settings["batch"],
                    collocation=settings["collocation"], seed=seed, progress=progress)
    return Trained(kind, name, operator, history, time.perf_counter() - start)


def held_out(name: str, budget: str | None = None, *, ood: bool = False) -> np.ndarray:
    """The held-out initial conditions (seed 7; ``ood``: twice the modes, seed 8)."""
    return initial_conditions(name, SETTINGS(budget)["test"], seed=8 if ood else 7, budget=budget,
                              modes=OOD_MODES if ood else MODES)


def error_row(run: Trained, budget: str | None = None) -> dict[str, Any]:
    """Relative L2 errors on the held-out initial conditions (mean, spread), parameter counts, training time."""
    errs = errors(run.operator, held_out(run.name, budget), TIMES)
    return {"kind": run.kind, "problem": run.name, "mean": float(np.mean(errs)), "std": float(np.std(errs)),
            "max": float(np.max(errs)), "errors": errs, "seconds": run.seconds, **run.operator.parameter_counts()}


def display_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Error rows (:func:`error_row`, :func:`pinn_baseline`) as the notebook's table rows."""
    names = {"npr": "NPR", "deeponet": "PI-DeepONet", "pinn": "PINN, one per initial condition"}
    out = []
    for r in rows:
        per = r.get("regressed_per_solution")
        out.append({"model": names[r["kind"]], "mean relative L2": f"{r['mean']:.4f}", "worst": f"{r['max']:.4f}",
                    "trained parameters": f"{r['trained']:,}" + (" per solution" if r["kind"] == "pinn" else ""),
                    "per solution": f"{per:,} regressed" if per else
                    f"{r['steps']:,} steps, {r['seconds_per_solution']:.1f} s" if r["kind"] == "pinn" else
                    "one forward pass"})
    return out


def fine_tuning(run: Trained, budget: str | None = None, steps: Sequence[int] = (10, 30), count: int = 3
                ) -> list[dict[str, Any]]:
    """Error on out-of-distribution initial conditions before and after ``steps`` fine-tuning steps of the
    regressed parameters (one row per initial condition)."""
    rows = []
    for i, u0 in enumerate(held_out(run.name, budget, ood=True)[:count]):
        reference = run.operator.problem.solve(u0, TIMES)
        row: dict[str, Any] = {"initial_condition": i, "before": relative_l2(predict(run.operator, u0, TIMES),
                                                                             reference)}
        for n in steps:
            tuned, _ = fine_tune(run.operator, u0, steps=n, lr=1e-3, seed=i)
            row[f"after_{n}"] = relative_l2(predict(tuned, u0, TIMES), reference)
        rows.append(row)
    return rows


def pinn_baseline(name: str, budget: str | None = None) -> dict[str, Any]:
    """The per-instance baseline: a fresh PINN (NPR's solution network) trained on each of the first
    ``pinn_count`` held-out initial conditions for ``pinn_steps`` steps with the same loss, its relative L2
    errors (mean, spread, worst), parameters per solution and seconds per solution."""
    settings = SETTINGS(budget)
    prob = problem(name)
    errs, seconds = [], []
    for i, u0 in enumerate(held_out(name, budget)[: settings["pinn_count"]]):
        pinn = _fresh_pinn(prob, seed=i)
        start = time.perf_counter()
        train(pinn, u0[None], epochs=settings["pinn_steps"], lr=LR, batch_size=1,
              collocation=settings["collocation"], seed=i, progress=False)
        seconds.append(time.perf_counter() - start)
        errs.append(relative_l2(predict(pinn, u0, TIMES), prob.solve(u0, TIMES)))
    return {"kind": "pinn", "problem": name, "mean": float(np.mean(errs)), "std": float(np.std(errs)),
            "max": float(np.max(errs)), "errors": errs, "seconds": float(np.sum(seconds)),
            "seconds_per_solution": float(np.mean(seconds)), "steps": settings["pinn_steps"],
            **pinn.parameter_counts()}


def _fresh_pinn(prob: Problem, seed: int) -> PINN:
    with torch.random.fork_rng(devices=[]):  # its initialisation from the seed alone
        torch.manual_seed(seed)
        pinn = PINN(prob, modes=16)
    pinn.t_max = 1.0
    return pinn


class _UntilError(Callback):
    """Stops training once the PINN's error on the reference is at most ``target`` (checked every ``every``
    steps; the checks are left out of the training time)."""

    def __init__(self, pinn: PINN, u0: np.ndarray, reference: np.ndarray, target: float, every: int) -> None:
        self.pinn, self.u0, self.reference, self.target, self.every = pinn, u0, reference, target, every
        self.checking, self.error = 0.0, float("inf")

    def after_step(self, state: TrainState) -> None:
        if (state.step + 1) % self.every:
            return
        start = time.perf_counter()
        self.error = relative_l2(predict(self.pinn, self.u0, TIMES), self.reference)
        self.checking += time.perf_counter() - start
        state.stop = self.error <= self.target


def pinn_to_error(name: str, u0: np.ndarray, target: float, *, every: int = 25, max_steps: int = 3000,
                  seed: int = 0, collocation: int = 512) -> dict[str, Any]:
    """Train a fresh PINN on one initial condition until its error is at most ``target`` (checked every ``every``
    steps): training seconds and steps, and the error reached (``reached`` False at ``max_steps``)."""
    prob = problem(name)
    pinn = _fresh_pinn(prob, seed)
    until = _UntilError(pinn, u0, prob.solve(u0, TIMES), target, every)
    opt = make_optimizer("adam", pinn.parameters(), LR, 0.0, 0.0)
    start = time.perf_counter()
    history = fit(Residuals(pinn, collocation), dataset(pinn, u0[None]), epochs=max_steps, optimizer=opt,
                  loss_fn=mean_square, batch_size=1, callbacks=[until], seed=seed, progress=False)
    seconds = time.perf_counter() - start - until.checking
    return {"seconds": seconds, "steps": history.last("step"), "error": until.error,
            "reached": until.error <= target}
