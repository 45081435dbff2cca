"""kit.federated defences: median, trimmed mean and geometric median against numpy/scipy, the filter's
scores against a numpy SVD, Krum against brute force, invariance to client order and probability
outputs (hypothesis), and ExpGuard's weights (they sum to one, collapse on an LMA attacker, resume)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from federated_data import noisy_predictions
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import minimize
from scipy.stats import trim_mean

from kit.federated import (
    DEFAULT_QUANTILE,
    DEFENCES,
    FEDAVG_DEFENCES,
    ExpGuard,
    aggregate,
    aggregate_vectors,
    attack,
)
from kit.federated import defences as defences_mod

pytestmark = pytest.mark.usefixtures("one_thread")


honest_predictions = functools.partial(noisy_predictions, clients=8, samples=20, noise=0.2)


def normalised(a: np.ndarray) -> np.ndarray:
    return a / a.sum(-1, keepdims=True)


def test_registries():
    assert DEFENCES == ("mean", "median", "trimmed_mean", "geometric_median", "filter", "cronus")
    assert (*DEFENCES, "krum") == FEDAVG_DEFENCES
    assert DEFAULT_QUANTILE == 0.3


# ------------------------------------------------------------------------------- against numpy / scipy

@pytest.mark.parametrize("clients", [5, 6])  # odd and even
def test_median_matches_numpy(clients):
    p = honest_predictions(clients=clients, noise=1.0)
    got = aggregate("median", p)
    np.testing.assert_allclose(got.value.numpy(), normalised(np.median(p.numpy(), axis=0)), atol=1e-12)
    v = torch.from_numpy(np.random.default_rng(1).normal(size=(clients, 9)))
    np.testing.assert_allclose(aggregate_vectors("median", v).numpy(), np.median(v.numpy(), axis=0), atol=1e-12)


def test_median_of_an_even_count_is_the_mean_of_the_middle_two():
    v = torch.tensor([[0.0], [10.0], [1.0], [2.0]])
    assert aggregate_vectors("median", v).tolist() == [1.5]


def test_all_zero_median_becomes_uniform():
    p = torch.eye(3, dtype=torch.float64)[:, None, :]  # three clients, one-hot on different classes
    np.testing.assert_allclose(aggregate("median", p).value.numpy(), [[1 / 3] * 3])


@pytest.mark.parametrize(("clients", "trim"), [(5, 0.2), (6, 0.2), (10, 0.3), (7, 0.1), (100, 0.29), (4, 0.0)])
def test_trimmed_mean_matches_scipy(clients, trim):
    v = np.random.default_rng(clients).normal(size=(clients, 6))
    got = aggregate_vectors("trimmed_mean", torch.from_numpy(v), trim=trim)
    np.testing.assert_allclose(got.numpy(), trim_mean(v, trim, axis=0), atol=1e-12)
    p = honest_predictions(clients=clients, samples=4, noise=1.0)
    want = normalised(trim_mean(p.numpy(), trim, axis=0))
    np.testing.assert_allclose(aggregate("trimmed_mean", p, trim=trim).value.numpy(), want, atol=1e-12)


def scipy_geometric_median(x: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    w = np.ones(len(x)) if w is None else w

    def cost(z):
        return float((w * np.linalg.norm(x - z, axis=1)).sum())

    res = minimize(cost, x.mean(0), method="Nelder-Mead",
                   options={"xatol": 1e-11, "fatol": 1e-13, "maxiter": 40000, "maxfev": 40000})
    return res.x, res.fun


def sum_of_distances(x: np.ndarray, z: np.ndarray, w: np.ndarray | None = None) -> float:
    return float(((np.ones(len(x)) if w is None else w) * np.linalg.norm(x - z, axis=1)).sum())


@pytest.fixture(params=["native", "accelerator path"])
def median_path(request, monkeypatch) -> str:
    """'accelerator path' runs the geometric median as a GPU does (every iteration, nothing read) anywhere."""
    if request.param == "accelerator path":
        monkeypatch.setattr(defences_mod, "reads_are_free", lambda x: False)
    return request.param


def test_geometric_median_matches_scipy_minimize(median_path):
    p = honest_predictions(clients=7, samples=5, classes=4, noise=1.5, seed=2)
    got = aggregate("geometric_median", p).value.numpy()
    for s in range(5):
        x = p[:, s].numpy()
        z, best = scipy_geometric_median(x)
        assert sum_of_distances(x, got[s]) <= best + 1e-9
        np.testing.assert_allclose(got[s], z, atol=1e-4)
    v = np.random.default_rng(3).normal(size=(6, 3))
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 0.0])
    got = aggregate_vectors("geometric_median", torch.from_numpy(v), weights=torch.from_numpy(w))
    z, best = scipy_geometric_median(v, w)
    assert sum_of_distances(v, got.numpy(), w) <= best + 1e-9
    np.testing.assert_allclose(got.numpy(), z, atol=1e-4)


def test_geometric_median_on_the_accelerator_path_stops_where_the_cpu_stops(monkeypatch):
    """Every iteration runs on an accelerator, but the median stays at the iterate where the CPU's stopping
    test ended the loop: the same bits, however many iterations are allowed past it."""
    p = honest_predictions(clients=9, samples=30, classes=5, noise=1.0, seed=4)
    allowed = (3, 1000, 2000)
    native = [aggregate("geometric_median", p, iterations=n).value for n in allowed]
    assert not torch.equal(native[0], native[1])  # 3 iterations stop short of the test
    assert torch.equal(native[1], native[2])  # the test stops the loop before 1000 iterations
    monkeypatch.setattr(defences_mod, "reads_are_free", lambda x: False)
    for n, want in zip(allowed, native, strict=True):
        assert torch.equal(aggregate("geometric_median", p, iterations=n).value, want)


def test_weighted_mean_matches_numpy_average():
    p = honest_predictions(clients=4, noise=1.0)
    w = np.array([1.0, 0.0, 2.0, 5.0])
    got = aggregate("mean", p, weights=torch.from_numpy(w))
    np.testing.assert_allclose(got.value.numpy(), np.average(p.numpy(), axis=0, weights=w), atol=1e-12)
    assert torch.equal(got.scores, torch.zeros(4, dtype=torch.float64))


def test_l1_scores_of_the_median():
    p = honest_predictions(clients=5, noise=1.0)
    got = aggregate("median", p)
    want = np.abs(p.numpy() - got.value.numpy()[None]).sum(-1).mean(1)
    np.testing.assert_allclose(got.scores.numpy(), want, atol=1e-12)


# -------------------------------------------------------------------------------------- filter, cronus

def planted(clients: int = 9, samples: int = 6, outlier: int = 4) -> torch.Tensor:
    p = honest_predictions(clients=clients, samples=samples, noise=0.1).clone()
    lma = attack("lma", torch.cat([p[:outlier], p[outlier + 1:]]), 1)
    p[outlier] = lma[0]
    return p


def numpy_filter_scores(x: np.ndarray) -> np.ndarray:
    """|projection| on the top right-singular vector of the centred (clients, classes) matrix."""
    centred = x - x.mean(0)
    return np.abs(centred @ np.linalg.svd(centred)[2][0])


def test_filter_flags_a_planted_outlier():
    p = planted()
    got = aggregate("filter", p)
    want = np.mean([numpy_filter_scores(p[:, s].numpy()) for s in range(p.shape[1])], axis=0)
    np.testing.assert_allclose(got.scores.numpy(), want, atol=1e-8)
    assert int(got.scores.argmax()) == 4
    assert not bool(got.kept[:, 4].any())  # dropped on every sample
    assert (got.kept.sum(1) == 9 - round(DEFAULT_QUANTILE * 9)).all()  # drops round(0.3 * 9) = 3
    # the value is the mean of the kept clients
    kept = got.kept.T[..., None].double()
    np.testing.assert_allclose(got.value.numpy(), ((p * kept).sum(0) / kept.sum(0)).numpy(), atol=1e-12)


def test_filter_quantile_controls_the_drop_count():
    p = honest_predictions(clients=10, noise=1.0)
    for quantile, dropped in [(0.0, 0), (0.1, 1), (0.5, 5), (0.99, 9)]:
        assert (aggregate("filter", p, quantile=quantile).kept.sum(1) == 10 - dropped).all()


def test_cronus_is_the_filter_applied_twice():
    p = planted(samples=1)
    first = aggregate("filter", p)
    survivors = p[first.kept[0]]
    twice = aggregate("filter", survivors)
    got = aggregate("cronus", p)
    np.testing.assert_allclose(got.value.numpy(), twice.value.numpy(), atol=1e-12)
    assert int(got.kept.sum()) == int(twice.kept.sum()) == 6 - round(0.3 * 6)
    np.testing.assert_allclose(got.scores.numpy(), first.scores.numpy())


# ------------------------------------------------------------------------------------------------ Krum

def test_krum_picks_an_honest_vector_and_scores_match_brute_force():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(7, 5))
    v[2] += 100.0  # one vector far away
    got = aggregate_vectors("krum", torch.from_numpy(v), n_byzantine=2)
    d = ((v[:, None] - v[None]) ** 2).sum(-1)
    scores = [np.sort(np.delete(d[i], i))[:7 - 2 - 2].sum() for i in range(7)]
    assert int(np.argmin(scores)) != 2
    np.testing.assert_allclose(got.numpy(), v[int(np.argmin(scores))], atol=1e-12)


def test_krum_ties_are_averaged():
    v = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)  # every score is 0 with 1 neighbour
    assert aggregate_vectors("krum", v, n_byzantine=1).tolist() == [0.5]


# ------------------------------------------------------------------------------------------ properties

@st.composite
def prediction_arrays(draw):
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 4)))
    raw = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
    return torch.from_numpy(normalised(raw + 1e-3))


@settings(max_examples=40, deadline=None)
@given(p=prediction_arrays(), data=st.data())
def test_every_defence_ignores_client_order_and_returns_probabilities(p, data):
    order = torch.tensor(data.draw(st.permutations(range(p.shape[0]))))
    for name in DEFENCES:
        got, shuffled = aggregate(name, p), aggregate(name, p[order])
        np.testing.assert_allclose(got.value.numpy(), shuffled.value.numpy(), atol=1e-7, err_msg=name)
        np.testing.assert_allclose(got.scores[order].numpy(), shuffled.scores.numpy(), atol=1e-7, err_msg=name)
        assert bool((got.value >= 0).all()), name
        np.testing.assert_allclose(got.value.sum(-1).numpy(), 1.0, atol=1e-12, err_msg=name)


@settings(max_examples=40, deadline=None)
@given(v=hnp.arrays(np.float64, st.tuples(st.integers(3, 7), st.integers(1, 4)), elements=st.floats(-5, 5)),
       data=st.data())
def test_every_vector_defence_ignores_client_order(v, data):
    order = torch.tensor(data.draw(st.permutations(range(v.shape[0]))))
    x = torch.from_numpy(v)
    for name in FEDAVG_DEFENCES:
        got, shuffled = aggregate_vectors(name, x), aggregate_vectors(name, x[order])
        np.testing.assert_allclose(got.numpy(), shuffled.numpy(), atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", DEFENCES)
def test_without_attackers_every_defence_stays_close_to_the_mean(name):
    p = honest_predictions(clients=10)
    got = aggregate(name, p)
    assert float((got.value - p.mean(0)).abs().max()) < 0.05
    assert got.value.shape == (20, 5) and got.scores.shape == (10,) and got.kept.shape == (20, 10)


def test_float32_predictions_work():
    p = honest_predictions(clients=6).float()
    for name in DEFENCES:
        got = aggregate(name, p)
        assert got.value.dtype == torch.float32
        assert float((got.value - p.mean(0)).abs().max()) < 0.05


# ---------------------------------------------------------------------------------------------- ExpGuard

def lma_round(seed: int, honest: int = 8, byzantine: int = 2) -> torch.Tensor:
    p = honest_predictions(clients=honest, seed=seed)
    return torch.cat([p, attack("lma", p, byzantine)])


@pytest.mark.parametrize("base", ["mean", "median", "filter"])
def test_expguard_weights_collapse_on_a_persistent_lma_attacker(base):
    guard = ExpGuard(base, eta=1.0)
    for r in range(10):
        out = guard(lma_round(r))
        assert abs(float(guard.weights.sum()) - 1) < 1e-12
        assert bool((out.value >= 0).all()) and torch.allclose(out.value.sum(-1), torch.ones(20, dtype=torch.float64))
    w = guard.weights
    assert len(guard.history) == 10 and torch.equal(guard.history[-1], w)
    assert bool((w[8:] < 0.01).all())  # attackers
    assert bool((w[:8] > 0.9 / 8).all())  # honest clients keep about 1/8 each
    # the last round's output is close to the honest mean
    honest = honest_predictions(clients=8, seed=9)
    assert float((out.value - honest.mean(0)).abs().max()) < 0.02
    assert float(out.scores[8:].min()) > float(out.scores[:8].max())


def test_expguard_update_matches_the_formula():
    guard = ExpGuard("median", eta=0.7)
    rounds = [lma_round(r, honest=4, byzantine=1) for r in range(3)]
    w = np.full(5, 0.2)
    for p in rounds:
        out = guard(p)
        base = aggregate("median", p).value.numpy()
        s = np.abs(p.numpy() - base[None]).sum(-1).mean(1)
        w = w * np.exp(-0.7 * s)
        w /= w.sum()
        np.testing.assert_allclose(out.scores.numpy(), s, atol=1e-12)
        np.testing.assert_allclose(guard.weights.numpy(), w, atol=1e-12)
        np.testing.assert_allclose(out.value.numpy(), np.einsum("n,nsk->sk", w, p.numpy()), atol=1e-12)


def test_expguard_state_dict_round_trips():
    guard = ExpGuard("filter", eta=2.0)
    for r in range(3):
        guard(lma_round(r))
    resumed = ExpGuard("filter", eta=2.0)
    resumed.load_state_dict(guard.state_dict())
    assert torch.equal(resumed.weights, guard.weights) and len(resumed.history) == 3
    nxt = lma_round(3)
    assert torch.equal(resumed(nxt).value, guard(nxt).value)
    assert torch.equal(resumed.weights, guard.weights)
    with pytest.raises(ValueError, match="eta"):
        ExpGuard("filter", eta=1.0).load_state_dict(guard.state_dict())
    with pytest.raises(ValueError, match="missing"):
        ExpGuard("filter", eta=2.0).load_state_dict({"base": "filter"})


def test_expguard_weights_before_the_first_round():
    assert ExpGuard().weights is None
    np.testing.assert_allclose(ExpGuard(n_clients=4).weights.numpy(), [0.25] * 4)


def test_expguard_rejects_bad_input():
    with pytest.raises(ValueError, match="eta"):
        ExpGuard(eta=0.0)
    with pytest.raises(ValueError, match="eta"):
        ExpGuard(eta=-1.0)
    with pytest.raises(ValueError, match=r"base.*mean, median"):
        ExpGuard("krum")
    guard = ExpGuard("mean")
    guard(lma_round(0))
    with pytest.raises(ValueError, match="predictions has 9 clients but this ExpGuard tracks 10"):
        guard(lma_round(0, byzantine=1))
    with pytest.raises(ValueError, match="tracks 3"):
        ExpGuard(n_clients=3)(lma_round(0))


# ------------------------------------------------------------------------------------------ bad inputs

GOOD = honest_predictions(clients=4, samples=2, classes=3)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": "krum"}, ValueError, "defence.*mean, median"),
    ({"predictions": GOOD[0]}, ValueError, "predictions.*3 dimensions"),
    ({"predictions": GOOD[:0]}, ValueError, "predictions.*1 client"),
    ({"predictions": GOOD * 3}, ValueError, "predictions.*sum"),
    ({"predictions": GOOD.long()}, TypeError, "predictions.*floating"),
    ({"trim": 0.5}, ValueError, r"trim must lie in \[0.0, 0.5\)"),
    ({"trim": -0.1}, ValueError, "trim"),
    ({"quantile": 1.0}, ValueError, r"quantile must lie in \[0.0, 1.0\)"),
    ({"iterations": 0}, ValueError, "iterations"),
    ({"iterations": 2.0}, TypeError, "iterations"),
    ({"weights": torch.ones(3)}, ValueError, r"weights must have shape \(4,\)"),
    ({"weights": -torch.ones(4)}, ValueError, "weights"),
    ({"weights": torch.zeros(4)}, ValueError, "weights"),
    ({"name": "median", "weights": torch.ones(4)}, ValueError, "weights are not supported by defence 'median'"),
])
def test_aggregate_rejects_bad_input(kwargs, error, match):
    args = {"name": "filter", "predictions": GOOD} | kwargs
    with pytest.raises(error, match=match):
        aggregate(args.pop("name"), args.pop("predictions"), **args)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": "cronos"}, ValueError, "defence.*krum"),
    ({"vectors": torch.zeros(4)}, ValueError, "vectors"),
    ({"vectors": torch.full((4, 2), float("inf"))}, ValueError, "vectors must be finite"),
    ({"n_byzantine": 2}, ValueError, r"n_byzantine must lie in \[0, 1\]"),
    ({"n_byzantine": -1}, ValueError, "n_byzantine"),
    ({"vectors": torch.zeros(2, 3)}, ValueError, "krum needs at least 3 clients"),
    ({"name": "trimmed_mean", "weights": torch.ones(4)}, ValueError, "weights are not supported"),
])
def test_aggregate_vectors_rejects_bad_input(kwargs, error, match):
    args = {"name": "krum", "vectors": torch.zeros(4, 2)} | kwargs
    with pytest.raises(error, match=match):
        aggregate_vectors(args.pop("name"), args.pop("vectors"), **args)
