"""The tour's claim: an MLP on MNIST-5k passes 88% test accuracy after 5 epochs and improves by 20 epochs."""

from __future__ import annotations

import statistics

import pytest

from kit.recipes.common import train_classifier

SEEDS = (0, 1, 2)


def test_train_classifier_uses_the_given_seed_for_split_and_init():
    a = train_classifier("digits", seed=1, epochs=1, progress=False, widths=(16,))
    b = train_classifier("digits", seed=1, epochs=1, progress=False, widths=(16,))
    timing_free = [{k: v for k, v in r.items() if k != "seconds"} for r in a.history.records]
    assert timing_free == [{k: v for k, v in r.items() if k != "seconds"} for r in b.history.records]
    assert a.test == b.test
    assert sorted(a.data.test.index.tolist()) == sorted(b.data.test.index.tolist())


@pytest.mark.slow
def test_mlp_claim_holds_over_three_seeds():
    # exactly the tour's run: MNIST-5k split by seed, MLP 784-300-100-10, SGD lr 0.1, momentum 0.9
    short = [train_classifier("mnist5k", seed=s, epochs=5, progress=False).test["accuracy"] for s in SEEDS]
    long = [train_classifier("mnist5k", seed=s, epochs=20, progress=False).test["accuracy"] for s in SEEDS]
    assert min(short) >= 0.88, short
    assert statistics.mean(long) >= 0.93, long
    assert statistics.mean(long) > statistics.mean(short) + 0.01, (short, long)
