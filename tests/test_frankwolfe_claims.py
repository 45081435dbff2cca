"""Notebook 01's claims, at the cpu-budget setting (10 epochs, MNIST-5k, 3 seeds): each takes well under a minute."""

from __future__ import annotations

import statistics

import pytest

from kit.recipes import frank_wolfe as fwx

SEEDS = (0, 1, 2)
EPOCHS = fwx.EPOCHS["cpu"]


@pytest.fixture(scope="module")
def accuracies():
    """Test accuracy per method label over the three seeds (computed once for this module)."""
    methods = (fwx.SGD, *fwx.REGIONS, *fwx.RESCALING[1:])
    result = fwx.compare(methods, "mnist5k", seeds=SEEDS, epochs=EPOCHS, progress=False)
    return {label: result.grid.get(label) for label in result.grid.labels}


@pytest.mark.slow
def test_best_sfw_is_within_one_and_a_half_points_of_sgd(accuracies):
    sgd = statistics.mean(accuracies[fwx.SGD.label])
    sfw_l2 = statistics.mean(accuracies["SFW L2 ball"])  # the sweep's best, named in the notebook
    assert sgd - sfw_l2 <= 0.015, (sgd, sfw_l2)


@pytest.mark.slow
def test_regions_other_than_l1_come_close_to_sgd_and_l1_fails(accuracies):
    sgd = statistics.mean(accuracies[fwx.SGD.label])
    for label in ("SFW L2 ball", "SFW L-inf ball", "SFW k-sparse polytope"):
        assert sgd - statistics.mean(accuracies[label]) <= 0.005, (label, accuracies[label], sgd)
    assert sgd - statistics.mean(accuracies["SFW k-support ball"]) <= 0.02  # measured 1.3 points; the notebook says 2
    assert statistics.mean(accuracies["SFW L1 ball"]) < 0.5  # one weight per step cannot train 266k weights


@pytest.mark.slow
def test_gradient_rescaling_beats_diameter_and_no_rescaling(accuracies):
    gradient = statistics.mean(accuracies["SFW L2 ball"])  # L2, gradient rescaling, lr 1.0
    for label in ("L2, diameter rescaling (lr 1.0)", "L2, no rescaling (lr 0.01)"):
        assert gradient >= statistics.mean(accuracies[label]) + 0.02, (label, accuracies)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_tight_regions_shape_the_first_layer(seed):
    result = fwx.compare(fwx.SHAPE, "mnist5k", seeds=(seed,), epochs=EPOCHS, progress=False)
    stats = {label: fwx.weight_statistics(runs[0].model) for label, runs in result.runs.items()}
    sgd = stats[fwx.SGD.label]
    linf = stats["SFW L-inf ball, width 1"]
    sparse = stats["SFW k-sparse polytope, width 1"]
    l1 = stats["SFW L1 ball, width 1"]
    assert linf["near_extreme"] >= 0.2 and sgd["near_extreme"] < 0.01, (linf, sgd)
    assert sparse["near_zero"] >= 0.5 and sgd["near_zero"] < 0.15, (sparse, sgd)
    assert l1["near_zero"] >= 0.9, l1
