"""Notebook 04's claims in the setting fixed in advance (bench/soups.py, part 3): the CNN with BatchNorm on
MNIST-5k, 10 dense epochs, one SMS phase to 90% with 3 ingredients of 2 retraining epochs that differ in batch
order, weight decay and augmentation (vary='mixed'), SLR; IMP with the soup's total retraining (6 epochs);
every model with recalibrated BatchNorm statistics. Seeds 0-2 here (about a minute), 0-4 in the bench.

Asserted, because it holds on every seed: the soup is exactly as sparse as every ingredient, and IMP with the
same compute beats the soup (the paper's claim does not hold at this scale). Bench, seeds 0-4: soup - IMP
-4.3, -2.1, -1.6, -1.1, -11.1 points; soup - best ingredient -2.4, +0.1, -1.2, +0.3, -3.8 (its 95% interval
includes 0, so no claim either way). Margins at 1 and 2 threads: see IMP_MARGIN.
"""

from __future__ import annotations

import pytest

from kit.recipes import imp as px
from kit.recipes import soups as sx

SEEDS = (0, 1, 2)
SPARSITY = 0.9
# soup - IMP on seeds 0-2: -4.3 / -2.1 / -1.6 points at 1 thread (the bench), -1.6 / -1.4 / -1.8 at 2 threads
IMP_MARGIN = 0.005

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def grid():
    dense = [px.train_dense("mnist5k", s, px.EPOCHS["cpu"], model="cnn", **px.CNN) for s in SEEDS]
    return sx.compare_sms_imp(dense, (SPARSITY,), vary="mixed", retrain_epochs=sx.RETRAIN_EPOCHS["cpu"])


def test_soup_is_exactly_as_sparse_as_every_ingredient(grid):
    assert grid.sparsity_equal
    for run in grid.runs:
        assert run["sparsity"] == pytest.approx(SPARSITY, abs=0.005)


def test_imp_with_the_same_compute_beats_the_soup_on_every_seed(grid):
    gains = grid.gain(SPARSITY, "IMP")
    assert max(gains) <= -IMP_MARGIN, gains
