"""Notebook 01's claims, at the cpu-budget setting (MNIST-5k, 3 seeds): 10 epochs as the notebook trains, and at
convergence (40 epochs, each method at the learning rate bench/frank_wolfe.py picked by validation accuracy)."""

from __future__ import annotations

import statistics

import pytest

from kit import claims
from kit.recipes import frank_wolfe as fwx

SEEDS = (0, 1, 2)
EPOCHS = fwx.EPOCHS["cpu"]
# At convergence (40 epochs, seeds 0-2), points behind SGD at its validation-picked lr 0.3, paired by seed. At 2
# threads: L2 1.6 / 1.0 / 1.4, L-inf 2.6 / 0.9 / 1.9, k-sparse 1.9 / 0.8 / 2.5, k-support 1.9 / 1.6 / 2.6. At 1
# thread SGD at lr 0.3 is unstable on seed 1 (91.7%): L2 0.9 / -3.1 / 1.9. So whether SFW "matches" SGD within a
# point depends on the thread count (bench/frank_wolfe.py measures both); that it comes within 2.5 points holds
# at both.
WITHIN = 0.025


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
    # 10 epochs, mean of seeds 0-2. Gaps to SGD (points) at 2 threads: L2 0.3, L-inf 0.4, k-sparse 0.4, k-support
    # 1.3; at 1 thread L2 0.2, L-inf 0.4, k-sparse 0.4, k-support 1.6: a 1-point margin for the three, 2 for
    # k-support.
    sgd = statistics.mean(accuracies[fwx.SGD.label])
    for label in ("SFW L2 ball", "SFW L-inf ball", "SFW k-sparse polytope"):
        assert sgd - statistics.mean(accuracies[label]) <= 0.01, (label, accuracies[label], sgd)
    assert sgd - statistics.mean(accuracies["SFW k-support ball"]) <= 0.02
    # one weight per step cannot train 266k weights, but it does train: well above chance (10%), far below
    # the rest (measured 22.5%); a broken L1 LMO (a zero or random vertex) stays at chance
    l1 = statistics.mean(accuracies["SFW L1 ball"])
    assert 0.15 < l1 < 0.5, accuracies["SFW L1 ball"]


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


@pytest.fixture(scope="module")
def converged():
    """Test accuracy per method at convergence, at the learning rates the bench chose (read from its result)."""
    lrs = {row["method"]: row["lr"] for row in claims.load("frank_wolfe")["converged.rows"]}
    methods = [fwx.with_lr(m, lrs[m.label]) for m in fwx.CONVERGED]
    result = fwx.compare(methods, "mnist5k", seeds=SEEDS, epochs=fwx.CONVERGED_EPOCHS["cpu"], progress=False)
    return {label: result.grid.get(label) for label in result.grid.labels}


@pytest.mark.slow
def test_at_convergence_the_best_region_comes_within_two_and_a_half_points_of_tuned_sgd(converged):
    sgd = converged[fwx.SGD.label]
    gaps = {label: statistics.mean(a - b for a, b in zip(sgd, v, strict=True))
            for label, v in converged.items() if label != fwx.SGD.label}
    assert min(gaps.values()) <= WITHIN, gaps
