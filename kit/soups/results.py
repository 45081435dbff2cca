"""The records a sparse-model-soup run returns: per ingredient, per phase, and the whole run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..pruning.phases import PhasedResult, PruneRecord


@dataclass
class IngredientResult:
    """One retrained copy: its varied setting and what it trained with, its accuracy, calibration and sparsity.

    ``value`` is the varied setting's value (the weight decay, the learning-rate or length factor,
    or, for ``vary='seed'``, the ingredient's index); ``seed`` orders its batches.
    """

    index: int
    value: float
    seed: int
    weight_decay: float
    lr_peak: float
    steps: int
    epochs: float
    accuracy: float
    val_accuracy: float
    ece: float
    sparsity: float
    zeros: int
    history: list[dict[str, float]] = field(default_factory=list, compare=False)


@dataclass
class SoupPhase(PruneRecord):
    """One SMS phase: pruning, the ingredients, and soup, best ingredient (by validation accuracy) and ensemble.

    ``accuracy`` / ``val_accuracy`` / ``ece`` are the soup's (test, validation, test ECE);
    ``best_ingredient`` is chosen by validation accuracy, ``best_accuracy`` / ``best_ece`` are its
    test numbers; ``ensemble_*`` average the ingredients' softmax outputs. ``selected`` lists the
    ingredients in the soup, ``recalibrated`` says whether BatchNorm statistics were recomputed,
    ``distances`` / ``angles`` (degrees) compare the ingredients pairwise. ``sparsity`` / ``zeros``
    are the soup's; each ingredient's are in ``ingredients``.
    """

    val_accuracy: float
    ece: float
    ensemble_accuracy: float
    ensemble_ece: float
    best_ingredient: int
    best_accuracy: float
    best_ece: float
    selected: list[int]
    recalibrated: bool
    epochs: int
    ingredients: list[IngredientResult]
    distances: list[list[float]]
    angles: list[list[float]]
    seconds: float = field(default=0.0, compare=False)

    @property
    def max_ingredient_accuracy(self) -> float:
        """The highest test accuracy of any ingredient (an optimistic baseline: picked by test accuracy)."""
        return max(x.accuracy for x in self.ingredients)

    def row(self) -> dict[str, Any]:
        """The table row: scalars plus mean ingredient accuracy, mean pairwise distance and angle."""
        m = len(self.ingredients)
        pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
        skip = ("ingredients", "distances", "angles", "seconds", "selected")
        return {**{k: v for k, v in asdict(self).items() if k not in skip},
                "ingredients": m, "selected": len(self.selected),
                "mean_ingredient_accuracy": sum(x.accuracy for x in self.ingredients) / m,
                "max_ingredient_accuracy": self.max_ingredient_accuracy,
                "mean_distance": (sum(self.distances[a][b] for a, b in pairs) / len(pairs)) if pairs else 0.0,
                "mean_angle": (sum(self.angles[a][b] for a, b in pairs) / len(pairs)) if pairs else 0.0}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SoupPhase:
        """Rebuild from :func:`dataclasses.asdict` output (as stored in a checkpoint)."""
        return cls(**{**d, "ingredients": [IngredientResult(**x) for x in d["ingredients"]]})


@dataclass
class SoupResult(PhasedResult):
    """Per-phase results of :func:`~kit.soups.sparse_model_soup` or :func:`~kit.soups.soup_gmp`, and the final soup.

    The soup's masks stay attached. ``dense_accuracy`` is the test accuracy before the first pruning; for ``soup_gmp``,
    ``base_phases`` holds the GMP run's pruning steps (table rows) and ``base_accuracy`` its final
    accuracy. ``resumed_phases`` (not part of equality) counts phases read from a checkpoint; the
    model is not part of equality either (compare state dicts).
    """

    method: str
    phases: list[SoupPhase]
    model: nn.Module = field(repr=False, compare=False)  # compare models by their state dicts
    dense_accuracy: float
    config: dict[str, Any] = field(default_factory=dict)
    base_phases: list[dict[str, Any]] = field(default_factory=list)
    base_accuracy: float | None = None
    resumed_phases: int = field(default=0, compare=False)

    def ingredient_rows(self) -> list[dict[str, Any]]:
        """One plain dict per (phase, ingredient), without histories."""
        return [{"phase": p.phase, **{k: v for k, v in asdict(x).items() if k != "history"}}
                for p in self.phases for x in p.ingredients]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as plain numbers and strings (for JSON results)."""
        return {"method": self.method, "config": dict(self.config), "dense_accuracy": self.dense_accuracy,
                "base_accuracy": self.base_accuracy, "base_phases": list(self.base_phases),
                "sparsity": self.sparsity, "accuracy": self.accuracy, "phases": [asdict(p) for p in self.phases]}


__all__ = ["IngredientResult", "SoupPhase", "SoupResult"]
