"""Sparse Model Soups (Zimmer, Spiegel, Pokutta, ICLR 2024): retrain copies of one pruned model, average them,
prune the average further.

``merging`` (uniform and greedy soups, interpolation, BatchNorm recalibration), ``metrics`` (ECE,
output ensemble, distances between ingredients), ``results`` (the records a run returns), ``sms``
(the SMS driver: :func:`sparse_model_soup`, :func:`soup_gmp`, one :func:`soup_phase`) and ``workers``
(ingredients trained one after another or in parallel processes). Built on :mod:`kit.pruning`'s
masks and phases.
"""

from .merging import greedy_soup, interpolate, recalibrate_batchnorm, uniform_soup
from .metrics import ECE_BINS, ensemble_accuracy, expected_calibration_error, pairwise_distances
from .results import IngredientResult, SoupPhase, SoupResult
from .sms import MERGE, VARY, ingredient_values, soup_gmp, soup_phase, sparse_model_soup

__all__ = ["ECE_BINS", "MERGE", "VARY", "IngredientResult", "SoupPhase", "SoupResult", "ensemble_accuracy",
           "expected_calibration_error", "greedy_soup", "ingredient_values", "interpolate", "pairwise_distances",
           "recalibrate_batchnorm", "soup_gmp", "soup_phase", "sparse_model_soup", "uniform_soup"]
