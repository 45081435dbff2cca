"""kit.federated attacks: every prediction attack against a numpy computation of its target, hiding
attacks send real honest vectors, partial attacks touch exactly round(fraction * samples) samples,
outputs are probability vectors (hypothesis), and the FedAvg vector attacks (scaling really scales)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from federated_data import noisy_predictions
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kit.federated import ATTACKS, FEDAVG_ATTACKS, attack, attack_weights, class_similarity

pytestmark = pytest.mark.usefixtures("one_thread")


honest_predictions = functools.partial(noisy_predictions, clients=6, samples=40, noise=0.3)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_hot_classes(out: torch.Tensor) -> np.ndarray:
    """Class index of every (attacker, sample) row, asserting the rows are one-hot."""
    a = out.numpy()
    assert set(np.unique(a)) <= {0.0, 1.0} and np.all(a.sum(-1) == 1)
    return a.argmax(-1)


# ------------------------------------------------------------------------------------- class similarity

def numpy_similarity(p: np.ndarray) -> np.ndarray:
    mean = p.mean(0)
    labels = mean.argmax(1)
    k = p.shape[2]
    rows = np.eye(k)
    for a in range(k):
        if (labels == a).any():
            rows[a] = mean[labels == a].mean(0)
    return (rows + rows.T) / 2


def test_class_similarity_against_numpy():
    p = honest_predictions(samples=60, seed=1)
    got = class_similarity(p)
    np.testing.assert_allclose(got.numpy(), numpy_similarity(p.numpy()), atol=1e-12)
    assert torch.equal(got, got.T)


def test_class_similarity_row_without_samples_is_one_hot():
    # two samples, both with top class 0; classes 1 and 2 are never on top
    p = torch.tensor([[[0.6, 0.3, 0.1], [0.8, 0.1, 0.1]]], dtype=torch.float64)
    rows = np.array([[0.7, 0.2, 0.1], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(class_similarity(p).numpy(), (rows + rows.T) / 2, atol=1e-12)


# ---------------------------------------------------------------------------------------- naive attacks

def test_registry():
    assert ATTACKS == ("none", "random", "constant", "second", "lma", "cpa", "hiding_lma", "hiding_cpa")
    assert FEDAVG_ATTACKS == ("none", "gaussian", "gaussian_weights", "scaled", "sign_flip")


def test_random_is_uniform_one_hot_and_reproducible():
    p = honest_predictions(clients=3, samples=500, classes=4)
    out = attack("random", p, 3, generator=gen(1))
    classes = one_hot_classes(out)
    assert torch.equal(out, attack("random", p, 3, generator=gen(1)))
    assert not torch.equal(out[0], out[1])  # drawn per attacker
    counts = np.bincount(classes.ravel(), minlength=4)
    assert counts.min() > 0.2 * classes.size and counts.max() < 0.3 * classes.size  # 1500 draws of 1/4


def test_constant_and_second():
    p = honest_predictions(samples=30)
    assert (one_hot_classes(attack("constant", p, 2, constant_class=3)) == 3).all()
    second = np.argsort(-p.numpy().mean(0), axis=1, kind="stable")[:, 1]
    assert (one_hot_classes(attack("second", p, 2)) == second).all()
    # a tie for the top: the second is the other top class, the later index
    tied = torch.tensor([[[0.4, 0.2, 0.4]]], dtype=torch.float64)
    assert one_hot_classes(attack("second", tied, 1)).tolist() == [[2]]


def test_lma_is_the_argmin_of_the_honest_mean():
    p = honest_predictions(samples=50, classes=7, seed=3)
    target = np.argmin(p.numpy().mean(0), axis=1)
    out = attack("lma", p, 4)
    assert out.shape == (4, 50, 7)
    assert (one_hot_classes(out) == target[None]).all()


def test_none_sends_whole_honest_clients():
    p = honest_predictions(clients=4, samples=10)
    out = attack("none", p, 5, generator=gen(2))
    for b in range(5):
        assert any(torch.equal(out[b], p[i]) for i in range(4))


def test_no_attackers_is_empty():
    p = honest_predictions()
    assert attack("lma", p, 0).shape == (0, 40, 5)


# ------------------------------------------------------------------------------------------------- CPA

SIMILARITY = torch.tensor([[1.0, 0.5, 0.1],
                           [0.5, 1.0, 0.3],
                           [0.1, 0.3, 1.0]], dtype=torch.float64)
# top class 0 -> column (1, .5, .1) -> target 2; top 1 -> (.5, 1, .3) -> 2; top 2 -> (.1, .3, 1) -> 0
CPA_BY_HAND = {0: 2, 1: 2, 2: 0}


def three_class_honest() -> torch.Tensor:
    # four samples whose honest mean tops classes 0, 1, 2, 1
    base = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.3, 0.5, 0.2]], dtype=torch.float64)
    return torch.stack([base, 0.5 * base + 0.5 / 3, 0.8 * base + 0.2 / 3])  # mixing with uniform keeps the top


def test_cpa_target_from_a_hand_built_similarity():
    p = three_class_honest()
    tops = [0, 1, 2, 1]
    out = attack("cpa", p, 2, similarity=SIMILARITY)
    assert (one_hot_classes(out) == np.array([CPA_BY_HAND[t] for t in tops])[None]).all()


def test_cpa_defaults_to_the_estimated_similarity():
    p = honest_predictions(samples=80, classes=4, seed=5)
    sim = torch.from_numpy(numpy_similarity(p.numpy()))
    assert torch.equal(attack("cpa", p, 1), attack("cpa", p, 1, similarity=sim))
    top = p.numpy().mean(0).argmax(1)
    target = sim.numpy()[:, top].argmin(0)
    assert (one_hot_classes(attack("cpa", p, 1)) == target[None]).all()


# ---------------------------------------------------------------------------------------------- hiding

def test_hiding_lma_sends_the_honest_vector_least_sure_of_the_top_class():
    p = honest_predictions(clients=5, samples=30, seed=7)
    a = p.numpy()
    top = a.mean(0).argmax(1)
    chosen = a[:, np.arange(30), top].argmin(0)  # the client with the lowest top-class probability
    out = attack("hiding_lma", p, 3)
    for s in range(30):
        for b in range(3):
            assert torch.equal(out[b, s], p[chosen[s], s])  # an exact copy of a real vector


def test_hiding_cpa_sends_the_honest_vector_most_sure_of_the_cpa_target():
    p = honest_predictions(clients=5, samples=30, classes=3, noise=1.0, seed=8)
    a = p.numpy()
    target = SIMILARITY.numpy()[:, a.mean(0).argmax(1)].argmin(0)
    chosen = a[:, np.arange(30), target].argmax(0)
    out = attack("hiding_cpa", p, 2, similarity=SIMILARITY)
    for s in range(30):
        assert torch.equal(out[0, s], p[chosen[s], s]) and torch.equal(out[1, s], p[chosen[s], s])


# ------------------------------------------------------------------------------------ partial attacks

@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5, 0.63, 1.0])
@pytest.mark.parametrize("name", ["lma", "cpa", "constant"])
def test_fraction_touches_exactly_round_fraction_samples(fraction, name):
    p = honest_predictions(samples=37, seed=4)
    mean = p.mean(0)
    out = attack(name, p, 2, fraction=fraction, generator=gen(3), constant_class=1)
    touched = ~torch.isclose(out, mean.expand_as(out), atol=1e-12).all(-1)  # (attackers, samples)
    assert int(touched[0].sum()) == round(fraction * 37)
    assert torch.equal(touched[0], touched[1])  # the same samples for every attacker
    full = attack(name, p, 2, constant_class=1)
    assert torch.equal(out[:, touched[0]], full[:, touched[0]])  # attacked samples get the full attack


# ---------------------------------------------------------------------------------- property: outputs

@st.composite
def prediction_arrays(draw):
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(2, 5)))
    raw = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
    raw = raw + 1e-3  # no all-zero rows
    return torch.from_numpy(raw / raw.sum(-1, keepdims=True))


@settings(max_examples=40, deadline=None)
@given(p=prediction_arrays(), name=st.sampled_from(ATTACKS), n=st.integers(0, 3),
       fraction=st.sampled_from([0.3, 1.0]), seed=st.integers(0, 100))
def test_every_attack_returns_probability_vectors(p, name, n, fraction, seed):
    out = attack(name, p, n, generator=gen(seed), fraction=fraction)
    assert out.shape == (n, *p.shape[1:]) and out.dtype == p.dtype
    assert bool((out >= 0).all())
    np.testing.assert_allclose(out.sum(-1).numpy(), 1.0, atol=1e-12)


# --------------------------------------------------------------------------------------- FedAvg attacks

def test_fedavg_scaled_really_scales():
    rng = np.random.default_rng(0)
    v = torch.from_numpy(rng.normal(size=(4, 50)))
    mean = v.numpy().mean(0)
    out = attack_weights("scaled", v, 2)
    np.testing.assert_allclose(out.numpy(), np.tile(-10 * mean, (2, 1)), atol=1e-12)
    assert not torch.allclose(out[0], v.mean(0))  # the reference's scaling was the identity
    np.testing.assert_allclose(attack_weights("scaled", v, 1, scale=3.5)[0].numpy(), 3.5 * mean, atol=1e-12)
    np.testing.assert_allclose(attack_weights("sign_flip", v, 3).numpy(), np.tile(-mean, (3, 1)), atol=1e-12)


def test_fedavg_gaussian_and_none():
    v = torch.zeros(3, 2000, dtype=torch.float64)
    out = attack_weights("gaussian", v, 2, sigma=0.5, generator=gen(0))
    assert out.shape == (2, 2000) and out.dtype == torch.float64
    assert abs(float(out.std()) - 0.5) < 0.03 and abs(float(out.mean())) < 0.03
    assert torch.equal(out, attack_weights("gaussian", v, 2, sigma=0.5, generator=gen(0)))
    honest = torch.arange(12.0).view(3, 4)
    copies = attack_weights("none", honest, 4, generator=gen(1))
    assert all(any(torch.equal(c, h) for h in honest) for c in copies)


def test_fedavg_gaussian_weights_replace_the_model_not_the_update():
    """The reference's attack: the attacker's weights are noise, so global + update is the noise itself."""
    v = torch.zeros(3, 2000, dtype=torch.float64)
    base = torch.linspace(-3, 3, 2000, dtype=torch.float64)
    update = attack_weights("gaussian_weights", v, 2, sigma=0.5, generator=gen(0), global_vector=base)
    noise = attack_weights("gaussian", v, 2, sigma=0.5, generator=gen(0))
    np.testing.assert_allclose((base + update).numpy(), noise.numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="global_vector"):
        attack_weights("gaussian_weights", v, 2, generator=gen(0))


# ----------------------------------------------------------------------------------------- bad inputs

GOOD = honest_predictions(clients=2, samples=3, classes=3)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": "flip"}, ValueError, "attack.*none, random"),
    ({"n_byzantine": -1}, ValueError, "n_byzantine"),
    ({"n_byzantine": 1.5}, TypeError, "n_byzantine"),
    ({"honest": GOOD[0]}, ValueError, "honest.*3 dimensions"),
    ({"honest": GOOD[:0]}, ValueError, "honest.*1 client"),
    ({"honest": GOOD[:, :0]}, ValueError, "honest.*1 sample"),
    ({"honest": GOOD * 2}, ValueError, "honest.*sums to 1"),
    ({"honest": -GOOD}, ValueError, "honest.*>= 0"),
    ({"honest": GOOD.tolist()}, TypeError, "honest"),
    ({"fraction": 0.0}, ValueError, r"fraction must lie in \(0.0, 1.0\]"),
    ({"fraction": 1.5}, ValueError, "fraction"),
    ({"constant_class": 3}, ValueError, "constant_class"),
    ({"constant_class": -1}, ValueError, "constant_class"),
    ({"similarity": torch.eye(10)}, ValueError, r"similarity must have shape \(3, 3\)"),
    ({"generator": 3}, TypeError, "generator"),
])
def test_attack_rejects_bad_input(kwargs, error, match):
    args = {"name": "lma", "honest": GOOD, "n_byzantine": 1} | kwargs
    with pytest.raises(error, match=match):
        attack(args.pop("name"), args.pop("honest"), args.pop("n_byzantine"), **args)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": "scale"}, ValueError, "attack.*gaussian"),
    ({"n_byzantine": -2}, ValueError, "n_byzantine"),
    ({"honest_vectors": torch.zeros(3)}, ValueError, "honest_vectors"),
    ({"honest_vectors": torch.zeros(0, 3)}, ValueError, "honest_vectors"),
    ({"honest_vectors": torch.full((2, 3), float("nan"))}, ValueError, "honest_vectors must be finite"),
    ({"sigma": -1.0}, ValueError, "sigma"),
    ({"scale": float("inf")}, ValueError, "scale"),
])
def test_attack_weights_rejects_bad_input(kwargs, error, match):
    args = {"name": "scaled", "honest_vectors": torch.zeros(2, 3), "n_byzantine": 1} | kwargs
    with pytest.raises(error, match=match):
        attack_weights(args.pop("name"), args.pop("honest_vectors"), args.pop("n_byzantine"), **args)
