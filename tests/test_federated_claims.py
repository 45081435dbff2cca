"""Notebook 07's claims at the cpu budget's setting (MNIST-5k, 10 clients, MLP), 5 rounds instead of 10, 3 seeds.

bench/federated.py measures the same at 10 rounds (bench/results/federated.json).
"""

from __future__ import annotations

import pytest

from kit.recipes import federated as fx

SEEDS = (0, 1, 2)
ROUNDS = 5
# reference preset, 5 rounds, seeds 0-2, identical at 1 and 2 threads: attack-free 0.771 /
# 0.781 / 0.756, LMA on the mean 0.125 / 0.139 / 0.061, ExpGuard 0.764 / 0.750 / 0.744 (3.1 points below on
# seed 1 after 5 rounds; 0.5 points on average at 10 rounds in the bench), FedAvg under Gaussian weights
# 0.344 / 0.327 / 0.361 against FedDistill under random one-hot 0.719 / 0.632 / 0.690.
REFERENCE_MARGINS = (0.4, 0.05)  # the mean collapses by more than 40 points; ExpGuard stays within 5
FEDAVG_MARGIN = 0.2


def final(**overrides):
    return [h.accuracy for h in fx.runs(fx.config("cpu", rounds=ROUNDS, **overrides), SEEDS)]


@pytest.fixture(scope="module")
def attack_free():
    return final()


def test_feddistill_keeps_far_higher_accuracy_than_fedavg_under_naive_attacks():
    distill = final(byzantine=0.3, attack="random")
    avg = final(protocol="fedavg", byzantine=0.3, attack="gaussian")
    # bench at 10 rounds: FedDistill 0.884 / 0.884 / 0.869 against FedAvg 0.759 / 0.743 / 0.782
    for d, a in zip(distill, avg, strict=True):
        assert d > a + 0.05


def test_expguard_holds_against_lma_where_the_mean_loses_accuracy(attack_free):
    mean = final(byzantine=0.3, attack="lma")
    histories = fx.runs(fx.config("cpu", rounds=ROUNDS, byzantine=0.3, attack="lma", expguard=True), SEEDS)
    for free, plain, guarded in zip(attack_free, mean, histories, strict=True):
        assert guarded.accuracy > free - 0.03  # within a few points of the attack-free run
        assert plain < guarded.accuracy - 0.04  # LMA costs the plain mean (bench: 0.79 against 0.89)
        assert guarded.attacker_weight()[2] < 0.01  # the attackers' total weight collapses within 3 rounds


def test_filter_drops_exactly_its_count_so_it_holds_at_40_percent_lma_and_breaks_at_half(attack_free):
    filtered = final(byzantine=0.4, attack="lma", defence="filter")
    median = final(byzantine=0.4, attack="lma", defence="median")
    guarded = final(byzantine=0.4, attack="lma", expguard=True)
    half = final(byzantine=0.5, attack="lma", defence="filter")
    # 5 rounds, at 1 and 2 threads alike: Filter 0.868 / 0.875 / 0.857, median 0.889 / 0.888 / 0.877, ExpGuard
    # 0.886 / 0.889 / 0.858, attack-free 0.874 / 0.860 / 0.863; Filter at 50%: 0.087 / 0.155 / 0.108. The four
    # identical attackers tie at Filter's 30% cut; exactly three are dropped (ties settled by content), so
    # one attacker is left among seven clients. (Keeping every tied score, as before, dropped none.)
    for free, f, m, g, h in zip(attack_free, filtered, median, guarded, half, strict=True):
        assert f > free - 0.03 and m > free - 0.03 and g > free - 0.03
        assert h < free - 0.3


def test_lma_at_half_the_clients_collapses_mean_median_and_expguard(attack_free):
    # 5 rounds: mean 0.428 / 0.436 / 0.374, median 0.338 / 0.229 / 0.388, ExpGuard 0.170 / 0.224 / 0.176
    for overrides in ({}, {"defence": "median"}, {"expguard": True}):
        for free, acc in zip(attack_free, final(byzantine=0.5, attack="lma", **overrides), strict=True):
            assert acc < free - 0.3, overrides


def test_hiding_lma_fools_expguard_into_trusting_the_attackers():
    plain = final(byzantine=0.4, attack="hiding_lma")
    histories = fx.runs(fx.config("cpu", rounds=ROUNDS, byzantine=0.4, attack="hiding_lma", expguard=True), SEEDS)
    # 5 rounds: attackers' weight 0.554 / 0.537 / 0.557 (their share is 0.4); ExpGuard 0.814 / 0.818 / 0.782
    # against the plain mean's 0.841 / 0.839 / 0.812
    for m, h in zip(plain, histories, strict=True):
        assert h.attacker_weight()[-1] > 0.4
        assert h.accuracy < m


def test_median_geometric_median_filter_and_expguard_hold_at_30_percent(attack_free):
    # 5 rounds: all within 0.01 of the attack-free run but CPA + geometric median on seed 2 (0.858 against 0.865);
    # ExpGuard with eta from 0.5 to 5 (the notebook's sensitivity table)
    cases = [{"attack": a, "defence": d} for a in ("lma", "cpa") for d in ("median", "geometric_median", "filter")]
    guards = [{"attack": "cpa", "expguard": True}, *({"attack": "lma", "expguard": True, "eta": e} for e in (0.5, 5.0))]
    for overrides in [*cases, *guards]:
        for free, acc in zip(attack_free, final(byzantine=0.3, **overrides), strict=True):
            assert acc > free - 0.03, overrides


def test_hiding_makes_the_attackers_look_honest_to_filter():
    def first_round_scores(attack):
        histories = fx.runs(fx.config("cpu", rounds=1, byzantine=0.3, attack=attack, defence="filter"), SEEDS)
        b = histories[0].config.n_byzantine
        scores = [h.records[0]["scores"] for h in histories]
        return fx.mean([x for s in scores for x in s[-b:]]), fx.mean([x for s in scores for x in s[:-b]])

    attackers, honest = first_round_scores("lma")
    assert attackers > 2 * honest  # bench: 0.81 against 0.35
    attackers, honest = first_round_scores("hiding_lma")
    assert attackers < 1.5 * honest  # bench: 0.19 against 0.15


def test_non_iid_clients_with_40_percent_lma_break_the_mean_and_expguard():
    free = final(alpha=0.3)
    plain = final(alpha=0.3, byzantine=0.4, attack="lma")
    guarded = final(alpha=0.3, byzantine=0.4, attack="lma", expguard=True)
    # 5 rounds, seeds 0-9, identical at 1 and 2 threads but for one seed's third decimal: attack-free 0.67-0.81,
    # the mean under LMA 0.44-0.61; the smallest per-seed loss is 0.18 (seed 9), so the 0.1 margin holds on
    # every seed. (The failure reported in issue 18, 0.564 against 0.638 on seed 0, came from the code before
    # round seeds were derived from (seed, round): its seed-0 draws gave a weak attack-free run, 0.638, and a
    # mild attack. A per-seed margin needs a spread measured over many seeds; this one was.)
    for f, m in zip(free, plain, strict=True):
        assert m < f - 0.1
    # ExpGuard per seed varies from a mild loss to a collapse (seeds 0-9: 0.012-0.587, mean 0.284 against the
    # attack-free 0.769): a claim on the mean over seeds. Even the three seeds where ExpGuard did best (0, 2, 3)
    # average 0.515 against their attack-free 0.749, so three seeds keep the average's margin.
    assert fx.mean(guarded) < fx.mean(free) - 0.1


def reference(**overrides):
    return [h.accuracy for h in fx.runs(fx.config("cpu", preset="reference", rounds=ROUNDS, **overrides), SEEDS)]


def test_in_the_reference_setting_lma_collapses_the_mean_and_expguard_restores_it():
    """The paper's claim, in the reference code's setting (data split among all clients, one local epoch a round):
    measured at 1 and 2 threads, see REFERENCE_MARGINS."""
    free = reference()
    plain = reference(byzantine=0.3, attack="lma")
    guarded = reference(byzantine=0.3, attack="lma", expguard=True)
    collapse, restored = REFERENCE_MARGINS
    for f, m, g in zip(free, plain, guarded, strict=True):
        assert m < f - collapse, (free, plain)
        assert g > f - restored, (free, guarded)


def test_gaussian_weights_break_fedavg_where_gaussian_updates_only_dent_it():
    weights = final(protocol="fedavg", byzantine=0.3, attack="gaussian_weights", preset="reference")
    distill = reference(byzantine=0.3, attack="random")
    for w, d in zip(weights, distill, strict=True):
        assert w < d - FEDAVG_MARGIN, (weights, distill)
