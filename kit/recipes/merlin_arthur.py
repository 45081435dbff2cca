"""Notebook 06 (Merlin-Arthur classifiers): the games it plays and bench/merlin_arthur.py measures, per budget.

:func:`train` plays one game (Arthur an MLP with a "don't know" output, both provers of one kind) on a
digit task; :func:`morgana_gap` plays it with Morgana (gamma = 2, the paper's weight) and without her
(gamma = 0) per seed and measures both Arthurs against the same kind of Morgana on the test split;
:func:`precision_by_prover` counts how much class information each prover's features carry against
a sound Arthur; :func:`prover_table` plays the game once per prover and k.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..budget import PerBudget, get_budget, model_device
from ..data import Splits
from ..merlin_arthur import (
    PROVERS,
    Arthur,
    Prover,
    check_k,
    class_priors,
    completeness,
    digit_task,
    feature_precision,
    information_from_precision,
    make_prover,
    mutual_information_bound,
    play,
    precision_bound,
    prover_objective,
    soundness,
)
from ..seeding import seed_everything
from ..train import History
from ..validate import check_choice, check_float
from .grid import ResultGrid

SETTINGS: PerBudget[dict[str, Any]] = PerBudget(
    smoke=dict(n_train=None, epochs=4, steps=20, widths=(128,), k=32),
    cpu=dict(n_train=None, epochs=8, steps=50, widths=(256, 128), k=32),
    gpu=dict(n_train=None, epochs=20, steps=200, widths=(512, 256), k=32),
)
SEEDS = PerBudget(smoke=(0,), cpu=(0, 1, 2), gpu=(0, 1, 2))
GAMMA = 2.0  # the paper's weight of Morgana's loss
PRECISION_LEVELS = 2  # count matches on dark/bright pixels, not on floating-point identity
# the paper's setting: the Frank-Wolfe prover at k = 32 on a two-digit MNIST task
PRESETS: dict[str, dict[str, Any]] = {"paper": dict(prover="sfw", k=32, gamma=GAMMA)}


@dataclass
class GameRun:
    """One game played: the task, Arthur, both provers and the per-epoch history."""

    task: Splits
    arthur: Arthur
    merlin: Prover
    morgana: Prover
    history: History
    gamma: float
    seconds: float
    budget: str


def prover(name: str, k: int, role: str, budget: str | None = None, input_shape: Sequence[int] = (1, 28, 28),
           seed: int = 0) -> Prover:
    """A prover of the kind ``name`` with the budget's settings (Frank-Wolfe steps; the network's shape)."""
    check_choice(name, "prover", PROVERS)
    options: dict[str, Any] = {}
    if name == "sfw":
        options["steps"] = SETTINGS(budget)["steps"]
    elif name == "network":
        options.update(input_shape=tuple(input_shape), seed=seed)
    return make_prover(name, k, role, **options)


def train(budget: str | None = None, *, seed: int = 0, gamma: float = GAMMA, prover_name: str = "sfw",
          k: int | None = None, digits: Sequence[int] | None = (4, 9), epochs: int | None = None,
          checkpoint_dir: str | os.PathLike | None = None, progress: bool = False, task: Splits | None = None
          ) -> GameRun:
    """Play the game at the budget's size: Merlin and Morgana both of kind ``prover_name``."""
    budget = get_budget(budget)
    settings = SETTINGS(budget)
    gamma = check_float(gamma, "gamma", low=0.0)
    check_choice(prover_name, "prover", PROVERS)
    task = task or digit_task(digits, seed=seed, budget=budget, n_train=settings["n_train"])
    k = check_k(settings["k"] if k is None else k, task.train[0][0].numel())
    seed_everything(seed)
    arthur = Arthur.build("mlp", task.input_shape, task.num_classes, widths=settings["widths"])
    merlin = prover(prover_name, k, "merlin", budget, task.input_shape, seed)
    morgana = prover(prover_name, k, "morgana", budget, task.input_shape, seed + 1)
    start = time.perf_counter()
    history = play(arthur, task.train, merlin, morgana, gamma=gamma, epochs=epochs or settings["epochs"], seed=seed,
                   checkpoint_dir=checkpoint_dir, progress=progress)
    return GameRun(task, arthur, merlin, morgana, history, gamma, time.perf_counter() - start, budget)


def measure(run: GameRun, part: str = "test") -> dict[str, float]:
    """Completeness and soundness of the run's Arthur against its own provers on a split, and the paper's
    bounds that follow from them (precision, and mutual information in bits)."""
    data = getattr(run.task, check_choice(part, "part", ("train", "val", "test")))
    c = completeness(run.arthur, data, run.merlin)
    s = soundness(run.arthur, data, run.morgana)
    priors = class_priors(data.targets, run.task.num_classes)
    return {"completeness": c, "soundness": s, "precision_bound": precision_bound(c, s),
            "information_bound": mutual_information_bound(c, s, priors)}


def morgana_gap(budget: str | None, seeds: Sequence[int], *, prover_name: str = "sfw", k: int | None = None,
                digits: Sequence[int] | None = (4, 9), progress: bool = False) -> dict[str, Any]:
    """Per seed, Arthur trained with Morgana (gamma = 2) and without her (gamma = 0), both measured on the test
    split against the same kind of Morgana: completeness and soundness grids, and the runs."""
    grid = ResultGrid((None,), label_key="Arthur trained")
    runs: dict[str, list[GameRun]] = {"with Morgana": [], "without Morgana": []}
    for seed in seeds:
        for label, gamma in (("with Morgana", GAMMA), ("without Morgana", 0.0)):
            run = train(budget, seed=seed, gamma=gamma, prover_name=prover_name, k=k, digits=digits,
                        progress=progress)
            m = measure(run)
            grid.add(f"{label}: completeness", None, m["completeness"])
            grid.add(f"{label}: soundness", None, m["soundness"])
            runs[label].append(run)
    return {"grid": grid, "runs": runs}


@torch.no_grad()
def masks_of(chooser: Prover, arthur: Arthur, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
             ) -> torch.Tensor:
    """The prover's masks for every sample of (x, y), batch by batch, on Arthur's device."""
    dev = model_device(arthur)
    chooser.to(dev)
    return torch.cat([chooser(x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev), arthur).cpu()
                      for i in range(0, len(x), batch_size)])


def precision_by_prover(run: GameRun, ks: Sequence[int], provers: Sequence[str] = ("sfw", "saliency", "random"),
                        part: str = "train") -> list[dict[str, Any]]:
    """Counted precision (pixels as dark/bright) of the features each prover, as Merlin, picks against the run's
    Arthur at each k, the mean number of matching samples, and the information it implies (bits)."""
    data = getattr(run.task, check_choice(part, "part", ("train", "val", "test")))
    x, y = data.inputs, data.targets
    priors = class_priors(y, run.task.num_classes)
    rows = []
    for name in provers:
        for k in ks:
            chooser = prover(name, k, "merlin", run.budget, run.task.input_shape)
            precision, found = feature_precision(x, y, masks_of(chooser, run.arthur, x, y), levels=PRECISION_LEVELS,
                                                 matches=True)
            rows.append({"prover": name, "k": int(k), "precision": float(precision), "matches": float(found),
                         "information": information_from_precision(float(precision), priors)})
    return rows


def precision_vs_k(budget: str | None, ks: Sequence[int], seeds: Sequence[int], *,
                   provers: Sequence[str] = ("sfw",), digits: Sequence[int] | None = (4, 9),
                   progress: bool = False) -> list[dict[str, Any]]:
    """Per k and seed, a game with Morgana at that k: test completeness, soundness and the bounds they give, and
    the counted precision of Frank-Wolfe Merlin's features (``counted_precision``, with its information and
    mean matches) and of any other ``provers`` (``<name>_precision``) against that Arthur."""
    rows = []
    for k in ks:
        for seed in seeds:
            run = train(budget, seed=seed, k=k, digits=digits, progress=progress)
            counted = {r["prover"]: r for r in precision_by_prover(run, (k,), tuple(dict.fromkeys(("sfw", *provers))))}
            row = {"k": int(k), "seed": seed, **measure(run), "counted_precision": counted["sfw"]["precision"],
                   "counted_information": counted["sfw"]["information"], "matches": counted["sfw"]["matches"]}
            row.update({f"{name}_precision": counted[name]["precision"] for name in provers if name != "sfw"})
            rows.append(row)
    return rows


def prover_table(budget: str | None, seeds: Sequence[int], provers: Sequence[str], ks: Sequence[int],
                 progress: bool = False) -> list[dict[str, Any]]:
    """One game per prover kind (as Merlin and Morgana), k and seed: test completeness and soundness, mean over
    seeds (and per seed)."""
    rows = []
    for name in provers:
        for k in ks:
            measured = [measure(train(budget, seed=s, prover_name=name, k=k, progress=progress)) for s in seeds]
            rows.append({"prover": name, "k": int(k),
                         **{key: sum(m[key] for m in measured) / len(measured)
                            for key in ("completeness", "soundness")},
                         "completeness_per_seed": [m["completeness"] for m in measured],
                         "soundness_per_seed": [m["soundness"] for m in measured]})
    return rows


def prover_speed(run: GameRun, provers: Sequence[str] = PROVERS, batch: int = 64, repeats: int = 5
                 ) -> dict[str, float]:
    """Each prover's time to choose the features of one batch, relative to one forward and backward pass of
    Arthur on that batch (median of ``repeats``, after a warm-up), measured in this process."""
    x, y = run.task.train.inputs[:batch], run.task.train.targets[:batch]
    arthur = run.arthur

    def arthur_step() -> None:
        arthur.zero_grad(set_to_none=True)
        prover_objective(arthur(x), y, "merlin").mean().backward()

    def median_seconds(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    base = median_seconds(arthur_step)
    arthur.zero_grad(set_to_none=True)
    out = {"arthur_step_s": base}
    for name in provers:
        chooser = prover(name, run.merlin.k, "merlin", run.budget, run.task.input_shape)
        out[name] = median_seconds(lambda c=chooser: c(x, y, arthur)) / base
    return out
