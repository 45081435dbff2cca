"""kit.pruning criteria: ERK, LAMP, uniform+, random and the registry, against allocations and scores
computed by hand or with numpy, and the global sparsity every criterion promises (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kit.pruning import (
    CRITERIA,
    apply_masks,
    erk_densities,
    erk_masks,
    global_magnitude_masks,
    lamp_masks,
    lamp_scores,
    layerwise_magnitude_masks,
    masks_for,
    random_masks,
    uniform_masks,
    uniform_plus_masks,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ALL = tuple(CRITERIA)


def linear(weight: list[list[float]]) -> nn.Linear:
    """A Linear layer holding exactly ``weight`` (shape out x in)."""
    w = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


def seeded(*layers: nn.Module, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(*layers)


def mlp4(seed: int = 0) -> nn.Sequential:
    """Weights 120, 900, 900, 90: a small first layer, so uniform+ can reach high sparsity."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(),
                         nn.Linear(30, 3))


def conv_net(seed: int = 0) -> nn.Sequential:
    """Conv and Linear layers (weights 18, 144, 640, 100 = 902); the forward pass is never run."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 8, 3), nn.Flatten(), nn.Linear(32, 20), nn.Linear(20, 5))


def weights(model: nn.Module) -> list[np.ndarray]:
    return [m.weight.detach().double().numpy().copy() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def pruned_counts(masks: dict[str, torch.Tensor]) -> list[int]:
    return [int((~m).sum()) for m in masks.values()]


def assert_smallest_in_layer(masks: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Within each layer the pruned entries are the k smallest |w| (stable numpy argsort)."""
    for mask, w in zip(masks.values(), weights(model), strict=True):
        k = int((~mask).sum())
        expect = np.ones(w.size, dtype=bool)
        expect[np.argsort(np.abs(w).ravel(), kind="stable")[:k]] = False
        np.testing.assert_array_equal(mask.flatten().numpy(), expect)


# --------------------------------------------------------------------------------------- registry and alias

def test_registry_names_and_uniform_alias():
    assert set(CRITERIA) == {"global", "uniform", "uniform_plus", "erk", "lamp", "random"}
    assert CRITERIA["global"] is global_magnitude_masks
    assert uniform_masks is layerwise_magnitude_masks and CRITERIA["uniform"] is uniform_masks
    model = mlp4()
    for name, fn in CRITERIA.items():
        got, want = masks_for(name, model, 0.6), fn(model, 0.6)
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    assert torch.equal(masks_for("random", model, 0.6, seed=5)["0"], random_masks(model, 0.6, seed=5)["0"])


# --------------------------------------------------------------------------------------------------- ERK

def test_erk_two_linear_layers_by_hand():
    # weights (6, 8) and (2, 6): ERK raw densities 14/48 and 8/12, so raw * n = sum of dims
    model = seeded(nn.Linear(8, 6), nn.Linear(6, 2))
    # sparsity 0.5 keeps 30 of 60: eps = 30 / (14 + 8); densities 14/48 * eps = 0.3977, 8/12 * eps = 0.9091
    eps = 30 / 22
    target = [48 * (1 - 14 / 48 * eps), 12 * (1 - 8 / 12 * eps)]  # 28.909, 1.091 pruned
    assert target == pytest.approx([28.909090909, 1.090909091])
    masks = erk_masks(model, 0.5)
    assert pruned_counts(masks) == [29, 1]  # 28 + 1 (the larger remainder) and 1: exactly 30
    assert_smallest_in_layer(masks, model)
    assert [float(d) for d in erk_densities([(6, 8), (2, 6)], 30)] == pytest.approx([14 / 48 * eps, 8 / 12 * eps])


def test_erk_layer_over_density_one_is_dense_and_rest_rescaled():
    model = seeded(nn.Linear(8, 6), nn.Linear(6, 2))
    # sparsity 0.2 keeps 48: eps = 48 / 22 gives the second layer 8/12 * 48/22 = 1.45 > 1, so it goes
    # dense (12 kept) and the first keeps the remaining 36 of 48: 12 pruned there, none in the second
    assert 8 / 12 * 48 / 22 > 1
    masks = erk_masks(model, 0.2)
    assert pruned_counts(masks) == [12, 0]
    assert bool(masks["1"].all())
    assert_smallest_in_layer(masks, model)
    assert [float(d) for d in erk_densities([(6, 8), (2, 6)], 48)] == [36 / 48, 1.0]


def test_erk_conv_uses_all_four_dims():
    # conv (4, 3, 3, 3): (4 + 3 + 3 + 3) / 108; linear (10, 20): 30 / 200; keep 60 of 308
    eps = 60 / (13 + 30)
    got = [float(d) for d in erk_densities([(4, 3, 3, 3), (10, 20)], 60)]
    assert got == pytest.approx([13 / 108 * eps, 30 / 200 * eps])
    model = seeded(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(20, 10))
    counts = pruned_counts(erk_masks(model, 1 - 60 / 308))
    assert sum(counts) == 248
    assert all(abs(c - n * (1 - d)) <= 1 for c, n, d in zip(counts, (108, 200), got, strict=True))


def test_erk_densities_rejects_impossible_count():
    with pytest.raises(ValueError, match="kept"):
        erk_densities([(2, 2)], 5)


# -------------------------------------------------------------------------------------------------- LAMP

def test_lamp_scores_by_hand_with_ties():
    # squared 1, 1, 4, 4 (sum 10): equal magnitudes share the denominator of all weights at least as large
    layer = linear([[1.0, -1.0], [2.0, -2.0]])
    assert lamp_scores(layer).tolist() == pytest.approx([1 / 10, 1 / 10, 4 / 8, 4 / 8])
    layer = linear([[1.0, 2.0], [3.0, 4.0]])  # squared 1, 4, 9, 16: sums 30, 29, 25, 16
    assert lamp_scores(layer).tolist() == pytest.approx([1 / 30, 4 / 29, 9 / 25, 1.0])
    assert lamp_scores(linear([[0.0, 0.0]])).tolist() == [0.0, 0.0]  # an all-zero layer: no NaN


def test_lamp_masks_by_hand_differ_from_magnitude():
    # scores: A = 1/30, 4/29, 9/25, 1; B (weights 0.1, 0.2) = 0.01/0.05 = 0.2, 1. Pruning 3 of 6 removes
    # A's 1 and 2 and B's 0.1; global magnitude would remove all of B (0.1, 0.2) and A's 1
    model = nn.Sequential(linear([[1.0, 2.0], [3.0, 4.0]]), linear([[0.1, 0.2]]))
    masks = lamp_masks(model, 0.5)
    assert masks["0"].tolist() == [[False, False], [True, True]] and masks["1"].tolist() == [[False, True]]
    magnitude = global_magnitude_masks(model, 0.5)
    assert magnitude["1"].tolist() == [[False, False]]


def numpy_lamp(w: np.ndarray) -> np.ndarray:
    sq = w.ravel() ** 2
    return np.array([s / sq[sq >= s].sum() for s in sq])  # brute force, O(n^2)


def test_lamp_masks_against_numpy():
    model = conv_net(3)
    flat = np.concatenate([numpy_lamp(w) for w in weights(model)])
    k = round(0.7 * flat.size)
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:k]] = False
    got = torch.cat([m.flatten() for m in lamp_masks(model, 0.7).values()]).numpy()
    np.testing.assert_array_equal(got, keep)
    # the largest weight of every layer scores 1, so LAMP never empties a layer
    assert all(bool(m.any()) for m in lamp_masks(model, 0.99).values())


# ------------------------------------------------------------------------------------------------ uniform+

def test_uniform_plus_below_the_cap():
    model = mlp4()  # 120 | 900 900 | 90
    masks = uniform_plus_masks(model, 0.5)
    counts = pruned_counts(masks)  # K = 1005 over 1890 weights: rate 0.5317 in the middle and the last layer
    rate = 1005 / 1890
    assert counts[0] == 0 and sum(counts) == 1005
    assert all(abs(c - rate * n) <= 1 for c, n in zip(counts[1:], (900, 900, 90), strict=True))
    assert_smallest_in_layer(masks, model)


def test_uniform_plus_caps_the_last_layer():
    model = mlp4()
    counts = pruned_counts(uniform_plus_masks(model, 0.9))
    # K = 1809: 1809 / 1890 = 0.957 > 0.8, so the last layer stops at 72 (80%) and the middle takes the
    # remaining 1737 / 1800 = 0.965
    assert counts[0] == 0 and counts[3] == 72 and sum(counts) == 1809
    assert all(abs(c - 1737 / 1800 * 900) <= 1 for c in counts[1:3])


def test_uniform_plus_unreachable_sparsity_and_tiny_models():
    with pytest.raises(ValueError, match=r"at most sparsity 0\.93"):
        uniform_plus_masks(mlp4(), 0.95)  # (1800 + 72) / 2010 = 0.9313 is the most it can do
    one = seeded(nn.Linear(5, 4))
    assert pruned_counts(uniform_plus_masks(one, 0.0)) == [0]
    with pytest.raises(ValueError, match="single prunable layer"):
        uniform_plus_masks(one, 0.3)
    two = seeded(nn.Linear(5, 4), nn.Linear(4, 10))  # 20 dense + 40 with at most 32 pruned
    assert pruned_counts(uniform_plus_masks(two, 0.5)) == [0, 30]
    with pytest.raises(ValueError, match="at most sparsity"):
        uniform_plus_masks(two, 0.6)  # 36 > 32


# -------------------------------------------------------------------------------------------------- random

def test_random_masks_seeded_exact_and_leave_global_rng_alone():
    model = conv_net()
    state = torch.get_rng_state()
    a, b, c = random_masks(model, 0.6, seed=1), random_masks(model, 0.6, seed=1), random_masks(model, 0.6, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert sum(pruned_counts(a)) == round(0.6 * 902)
    # not magnitude: some pruned weight is larger than some kept one in the same layer
    w = model[3].weight.detach().abs()
    assert w[~a["3"]].max() > w[a["3"]].min()


# ----------------------------------------------------------------------------------- the global target

def layer_sizes(model: nn.Module) -> list[int]:
    return [w.size for w in weights(model)]


@settings(max_examples=25, deadline=None)
@given(sparsity=st.floats(min_value=0.0, max_value=0.95), seed=st.integers(0, 3))
def test_every_criterion_meets_the_global_target(sparsity, seed):
    model = conv_net(seed)
    sizes = layer_sizes(model)
    total = round(sparsity * sum(sizes))
    for name in ALL:
        counts = pruned_counts(masks_for(name, model, sparsity))
        if name == "uniform":  # per-layer rounding: each layer exact, the total within half a weight per layer
            assert counts == [round(sparsity * n) for n in sizes]
            assert abs(sum(counts) - sparsity * sum(sizes)) <= len(sizes) / 2
        else:  # global criteria exactly; per-layer allocations (erk, uniform_plus) also exactly, by construction
            assert sum(counts) == total, name
    erk = pruned_counts(erk_masks(model, sparsity))
    shapes = [w.shape for w in weights(model)]
    ideal = [n * (1 - float(d)) for n, d in zip(sizes, erk_densities(shapes, sum(sizes) - total), strict=True)]
    assert all(abs(c - x) <= 1 for c, x in zip(erk, ideal, strict=True))
    plus = pruned_counts(uniform_plus_masks(model, sparsity))
    assert plus[0] == 0 and plus[-1] <= 0.8 * sizes[-1]
    rate = total / sum(sizes[1:])
    if rate <= 0.8:
        assert all(abs(c - rate * n) <= 1 for c, n in zip(plus[1:], sizes[1:], strict=True))


@pytest.mark.parametrize("name", ALL)
def test_pruning_a_pruned_model_further_keeps_old_zeros(name):
    # IMP: each phase asks the criterion for a higher sparsity on the model masked by the phase before
    model = conv_net(1)
    total = sum(layer_sizes(model))
    previous = None
    for sparsity in (0.3, 0.5, 0.7, 0.9):
        masks = masks_for(name, model, sparsity)
        if previous is not None:
            assert not any(bool((masks[k] & ~previous[k]).any()) for k in masks)  # masks only grow
        if name != "uniform":
            assert sum(pruned_counts(masks)) == round(sparsity * total)
        apply_masks(model, masks)
        previous = masks


# ---------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", ALL)
def test_bad_sparsity_is_named(name):
    model = conv_net()
    for bad in (1.0, -0.1, math.nan):
        with pytest.raises(ValueError, match="sparsity"):
            masks_for(name, model, bad)
    with pytest.raises(TypeError, match="sparsity"):
        masks_for(name, model, "0.5")
    with pytest.raises(ValueError, match="no prunable layers"):
        masks_for(name, nn.Sequential(nn.ReLU()), 0.5)


def test_unknown_criterion_and_bad_seed():
    with pytest.raises(ValueError, match="global, uniform, uniform_plus, erk, lamp, random"):
        masks_for("magnitude", conv_net(), 0.5)
    with pytest.raises(TypeError, match="criterion"):
        masks_for(None, conv_net(), 0.5)
    with pytest.raises(ValueError, match="seed"):
        random_masks(conv_net(), 0.5, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        random_masks(conv_net(), 0.5, seed=1.5)
    with pytest.raises(TypeError, match="seed"):
        masks_for("erk", conv_net(), 0.5, seed=1)  # a keyword the criterion does not take
