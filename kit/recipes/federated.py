"""Notebook 07 (byzantine-resilient KD-FL): the experiments it runs and bench/federated.py measures, per budget."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..budget import PerBudget
from ..federated import FLConfig, FLHistory, simulate
from .grid import ResultGrid

SETTINGS: PerBudget[dict[str, Any]] = PerBudget(
    smoke=dict(dataset="digits", clients=4, rounds=2, public=300, widths=(32,), local_epochs=10, distill_epochs=3),
    cpu=dict(dataset="mnist5k", clients=10, rounds=10, public=1000, widths=(200,), local_epochs=2.0, distill_epochs=2),
    gpu=dict(dataset="mnist", clients=100, rounds=50, public=5000, widths=(300, 100), local_epochs=1.0,
             distill_epochs=2),
)
SEEDS = PerBudget(smoke=(0,), cpu=(0, 1, 2), gpu=(0, 1, 2))


def config(budget: str | None = None, **overrides: Any) -> FLConfig:
    """The budget's base configuration with ``overrides`` (protocol, byzantine, attack, defence, ...)."""
    return FLConfig(**{**SETTINGS(budget), **overrides})


def runs(base: FLConfig, seeds: Sequence[int], progress: bool = False) -> list[FLHistory]:
    """``base`` run once per seed."""
    return [simulate(replace(base, seed=s), progress=progress) for s in seeds]


def final_accuracy(histories: Sequence[FLHistory]) -> list[float]:
    """Server accuracy after the last round, one per run."""
    return [h.accuracy for h in histories]


def mean(values: Sequence[float]) -> float:
    """Mean of a non-empty sequence."""
    return statistics.fmean(values)


def accuracy_vs_fraction(budget: str | None, fractions: Sequence[float], seeds: Sequence[int],
                         **cases: dict[str, Any]) -> ResultGrid:
    """Final accuracy per case (label -> config overrides), attacker fraction and seed."""
    grid = ResultGrid(tuple(fractions), label_key="case", column="{:.0%} attackers")
    for label, overrides in cases.items():
        for f in fractions:
            for acc in final_accuracy(runs(config(budget, byzantine=f, **overrides), seeds)):
                grid.add(label, f, acc)
    return grid


def table(budget: str | None, seeds: Sequence[int], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per config overrides: mean and min/max final accuracy over seeds, and the attackers'
    final ExpGuard weight where there is one."""
    out = []
    for overrides in rows:
        histories = runs(config(budget, **overrides), seeds)
        acc = final_accuracy(histories)
        row = {k: v for k, v in overrides.items()}
        row.update(accuracy=mean(acc), min=min(acc), max=max(acc))
        if overrides.get("expguard"):
            row["attacker weight"] = mean([h.attacker_weight()[-1] for h in histories])
        out.append(row)
    return out
