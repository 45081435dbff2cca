"""Notebook 07 (byzantine-resilient KD-FL): the experiments it runs and bench/federated.py measures, per budget."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..budget import PerBudget
from ..federated import FLConfig, FLHistory, simulate
from ..validate import check_choice
from .grid import ResultGrid

SETTINGS: PerBudget[dict[str, Any]] = PerBudget(
    smoke=dict(dataset="digits", clients=4, rounds=2, public=300, widths=(32,), local_epochs=10, distill_epochs=3),
    cpu=dict(dataset="mnist5k", clients=10, rounds=10, public=1000, widths=(200,), local_epochs=2.0, distill_epochs=2),
    gpu=dict(dataset="mnist", clients=100, rounds=50, public=5000, widths=(300, 100), local_epochs=1.0,
             distill_epochs=2),
)
SEEDS = PerBudget(smoke=(0,), cpu=(0, 1, 2), gpu=(0, 1, 2))
# The kit's setting (2 local epochs a round, private data split among the honest clients) makes honest
# clients confident; the reference code's setting spreads its local epochs over the rounds (here one a
# round), splits the data among all clients (the attackers' shares unused) and distils for one epoch a
# round.
PRESETS: dict[str, dict[str, Any]] = {
    "kit": {},
    "reference": dict(split="all", local_epochs=1.0, distill_epochs=1),
}


def config(budget: str | None = None, preset: str = "kit", **overrides: Any) -> FLConfig:
    """The budget's base configuration, a named preset on top (``kit`` or ``reference``), then ``overrides``
    (protocol, byzantine, attack, defence, ...)."""
    check_choice(preset, "preset", tuple(PRESETS))
    return FLConfig(**{**SETTINGS(budget), **PRESETS[preset], **overrides})


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


def local_epochs_sensitivity(budget: str | None, seeds: Sequence[int], local_epochs: Sequence[float],
                             splits: Sequence[str] = ("honest", "all"), **overrides: Any) -> list[dict[str, Any]]:
    """Final accuracy and the honest clients' last-round confidence against local epochs per round, per split."""
    out = []
    for split in splits:
        for epochs in local_epochs:
            histories = runs(config(budget, split=split, local_epochs=epochs, **overrides), seeds)
            out.append({"split": split, "local_epochs": epochs, "accuracy": final_accuracy(histories),
                        "confidence": [h.records[-1]["honest_confidence"] for h in histories]})
    return out


def sensitivity_curves(rows: Sequence[dict[str, Any]], key: str = "accuracy", prefix: str = ""
                       ) -> tuple[list[float], dict[str, list[list[float]]]]:
    """Rows of :func:`local_epochs_sensitivity` (or their JSON) as (local epochs, label -> per-seed curves), the
    input of kit.plots.band_curves; one label per split."""
    epochs = sorted({float(r["local_epochs"]) for r in rows})
    curves: dict[str, list[list[float]]] = {}
    for split in dict.fromkeys(r["split"] for r in rows):
        mine = sorted((r for r in rows if r["split"] == split), key=lambda r: r["local_epochs"])
        label = f"{prefix}data split among {'the honest clients' if split == 'honest' else 'all clients'}"
        curves[label] = [list(v) for v in zip(*(r[key] for r in mine), strict=True)]
    return epochs, curves


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
