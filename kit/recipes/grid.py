"""The one result grid every recipe accumulates into: a number per label, level and seed."""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ResultGrid:
    """A measured number (say test accuracy) per label (method, setting), level (sparsity, compression
    level; ``(None,)`` for a plain comparison) and seed, added one seed at a time.

    ``rows()`` gives one table row per label: the mean at each level, in a column named
    ``column.format(level)``; with the single level None, the mean, the standard deviation and the
    values themselves. ``curves()`` gives per label an array (seeds, levels), the input of
    :func:`kit.plots.band_curves`. ``reference`` keeps numbers off the level axis (e.g. the dense
    accuracy before pruning, one per seed).
    """

    levels: tuple[Hashable, ...] = (None,)
    label_key: str = "setting"
    column: str = "{:.0%}"
    values: dict[str, dict[Hashable, list[float]]] = field(default_factory=dict)
    reference: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.levels, (str, bytes)) or not isinstance(self.levels, Sequence) or not self.levels:
            raise TypeError(f"levels must be a non-empty sequence (e.g. sparsities); got {self.levels!r}")
        self.levels = tuple(self.levels)
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels must be distinct; got {self.levels!r}")

    @property
    def labels(self) -> list[str]:
        """The labels in the order they were first added."""
        return list(self.values)

    def add(self, label: str, level: Hashable, value: float) -> None:
        """Record one seed's number for ``label`` at ``level`` (one of ``levels``)."""
        if not isinstance(label, str):
            raise TypeError(f"label must be a string; got {type(label).__name__}")
        if level not in self.levels:
            raise ValueError(f"level {level!r} is not one of the grid's levels {self.levels!r}")
        self.values.setdefault(label, {lv: [] for lv in self.levels})[level].append(float(value))

    def get(self, label: str, level: Hashable = None) -> list[float]:
        """The per-seed numbers of ``label`` at ``level`` (default: the single level of a plain comparison)."""
        if label not in self.values:
            raise KeyError(f"no results for {label!r}; the grid has {', '.join(self.values) or 'none'}")
        if level not in self.levels:
            raise ValueError(f"level {level!r} is not one of the grid's levels {self.levels!r}")
        return self.values[label][level]

    def mean(self, label: str, level: Hashable = None) -> float:
        """Mean over seeds."""
        return statistics.mean(self.get(label, level))

    def std(self, label: str, level: Hashable = None) -> float:
        """Sample standard deviation over seeds (0 with one seed)."""
        values = self.get(label, level)
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def gain(self, label: str, over: str, level: Hashable = None) -> list[float]:
        """``label`` minus ``over`` seed by seed at ``level`` (positive: ``label`` is better)."""
        return [a - b for a, b in zip(self.get(label, level), self.get(over, level), strict=True)]

    def rows(self) -> list[dict[str, Any]]:
        """One row per label (see the class docstring)."""
        if self.levels == (None,):
            return [{self.label_key: label, "mean": self.mean(label), "std": self.std(label),
                     "values": list(self.get(label))} for label in self.values]
        return [{self.label_key: label, **{self.column.format(lv): self.mean(label, lv) for lv in self.levels}}
                for label in self.values]

    def curves(self) -> dict[str, list[list[float]]]:
        """Per label an array (seeds, levels): the input of kit.plots.band_curves."""
        return {label: [list(v) for v in zip(*(acc[lv] for lv in self.levels), strict=True)]
                for label, acc in self.values.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON (levels as strings in the value maps)."""
        return {"levels": list(self.levels), **{name: list(v) for name, v in self.reference.items()},
                "values": {label: {str(lv): list(v) for lv, v in acc.items()} for label, acc in self.values.items()}}


__all__ = ["ResultGrid"]
