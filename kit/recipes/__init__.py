"""Recipes: the experiments each notebook and benchmark runs, one module per notebook, built from the
method packages (which hold algorithms only).

``common`` (train one classifier; the seeds and data of a budget; the tour), ``grid`` (the one
result grid: a number per label, level and seed), ``frank_wolfe`` (notebook 01), ``compression``
(02), ``imp`` (03), ``soups`` (04), ``perp`` (05), ``merlin_arthur`` (06), ``federated`` (07),
``operators`` (08), ``canopy`` (09). Settings that differ by budget are :class:`kit.budget.PerBudget` values,
read through :func:`kit.budget.choose`.
"""

from .common import ClassifierRun, ExperimentData, experiment_data, train_classifier
from .grid import ResultGrid

__all__ = ["ClassifierRun", "ExperimentData", "ResultGrid", "experiment_data", "train_classifier"]
