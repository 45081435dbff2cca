"""Notebook 04's claims at the smallest setting where the soup beat its best ingredient in the search
(digits, small CNN with BatchNorm, 10 dense epochs, 3 ingredients of 2 retraining epochs whose learning
rates differ (x0.5, x1, x2; vary='lr', SLR) in one phase, 90% sparsity, seeds 0-2; every ingredient
and the soup with recalibrated BatchNorm statistics): a few seconds.

Asserted: the soup is exactly as sparse as every ingredient (same zero count); its test accuracy is at
least its best ingredient's (chosen by validation accuracy) for every seed, and on average by half a
point (measured: +1.9, +0.6, +0.8 points, i.e. 7, 2 and 3 of 359 test images); greedy merging never
lowers validation accuracy below the best ingredient's. Not asserted because it does not hold here:
SMS beating IMP with the same total retraining (IMP with 6 epochs was 0.6-2.2 points better: at two
retraining epochs each ingredient is far from converged, and one run three times as long recovers more).
With vary='seed' or 'weight_decay' the gain was within one test image either way.
"""

from __future__ import annotations

import pytest

from kit import data as data_mod
from kit.recipes import imp as px
from kit.recipes import soups as sx

SEEDS = (0, 1, 2)
SPARSITY = 0.9
MEAN_GAIN = 0.005  # mean over seeds of soup - best ingredient (measured 0.011)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def results():
    splits = data_mod.load("digits", seed=0)
    dense = [px.train_dense(splits, s, px.EPOCHS["cpu"], model="cnn", **px.CNN) for s in SEEDS]
    uniform = [sx.sms(d, SPARSITY, vary="lr", retrain_epochs=2) for d in dense]
    greedy = [sx.sms(d, SPARSITY, vary="lr", retrain_epochs=2, merge="greedy") for d in dense]
    return uniform, greedy


def test_soup_is_exactly_as_sparse_as_every_ingredient(results):
    for result in (*results[0], *results[1]):
        last = result.phases[-1]
        assert all(x.zeros == last.zeros and x.sparsity == last.sparsity for x in last.ingredients)
        assert last.sparsity == pytest.approx(SPARSITY, abs=0.005)


def test_soup_beats_its_best_ingredient(results):
    gains = [r.phases[-1].accuracy - r.phases[-1].best_accuracy for r in results[0]]
    assert min(gains) >= 0.0 and sum(gains) / len(gains) >= MEAN_GAIN, gains


def test_greedy_soup_never_lowers_validation_accuracy(results):
    for result in results[1]:
        last = result.phases[-1]
        assert last.val_accuracy >= max(x.val_accuracy for x in last.ingredients), last.row()
