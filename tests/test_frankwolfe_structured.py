"""kit.frankwolfe.structured against independent computations.

Group k-support LMO against numpy group norms and sampled feasible points (convex combinations of
group-k-sparse vectors); its gauge against group lasso, Frobenius and the plain k-support norm. The
spectral k-support LMO and top-k singular triplets against numpy's SVD (power and full-SVD paths, warm
starts across unrelated matrices, float32 and float64); its gauge against the nuclear and Frobenius
norms. SFW feasibility (hypothesis), the delayed switch of k through ``kit.train.fit``, registration in
``build`` / ``constraints_from_init`` / ``sfw_setup``, and argument checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from kit.frankwolfe import (
    KINDS,
    SFW,
    DelayedK,
    GroupKSupportBall,
    KSupportBall,
    L2Ball,
    SpectralKSupportBall,
    build,
    constraints_from_init,
    expected_init_norms,
    k_limit,
    ksupport_norm,
    sfw_setup,
    top_k_singular,
)
from kit.train import Callback, fit

F64 = torch.float64
SEEDS = st.integers(0, 2**20)

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- independent helpers

def randn(shape, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=F64).to(dtype)


def npy(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy().copy()


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.sum(npy(a) * npy(b)))


def np_group_norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x.reshape(x.shape[0], -1), axis=1) if x.ndim else np.abs(x).reshape(1)


def np_matrix(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1) if x.ndim >= 2 else x.reshape(1, -1)


def np_singular_values(x: torch.Tensor) -> np.ndarray:
    return np.linalg.svd(np_matrix(npy(x)), compute_uv=False)


def decaying(rows: int, cols: int, seed: int, ratio: float = 0.7, dtype: torch.dtype = F64) -> torch.Tensor:
    """A matrix with singular values ratio**i (times 1..2): the spectrum of a trained layer's gradient, roughly."""
    rng = np.random.default_rng(seed)
    q = min(rows, cols)
    u = np.linalg.qr(rng.standard_normal((rows, q)))[0]
    v = np.linalg.qr(rng.standard_normal((cols, q)))[0]
    s = ratio ** np.arange(q) * rng.uniform(1.0, 2.0)
    return torch.tensor((u * s) @ v.T).to(dtype)


def group_sparse_points(shape, k: int, r: float, seed: int, count: int = 40) -> list[torch.Tensor]:
    """Feasible points: convex combinations of vectors with <= k nonzero groups and L2 norm r, some scaled inward."""
    rng = np.random.default_rng(seed)
    groups = shape[0]
    atoms = []
    for _ in range(6):
        z = rng.standard_normal(shape)
        off = rng.permutation(groups)[rng.integers(1, k + 1):]  # keep between 1 and k groups
        z[off] = 0.0
        atoms.append(r * z / np.linalg.norm(z))
    points = []
    for _ in range(count):
        w = rng.dirichlet(np.ones(len(atoms)))
        z = sum(wi * a for wi, a in zip(w, atoms, strict=True))
        points.append(torch.tensor(z * (rng.uniform(0.2, 1.0) if rng.random() < 0.5 else 1.0)))
    return points


# ---------------------------------------------------------------- group k-support

GROUP_SHAPES = [(4, 3), (3, 2, 2, 2), (5,), (6, 1), (2, 5)]


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from(GROUP_SHAPES), seed=SEEDS, r=st.floats(0.1, 5.0), k_raw=st.integers(0, 5))
def test_group_lmo_is_optimal_and_feasible(shape, seed, r, k_raw):
    groups = shape[0]
    k = 1 + k_raw % groups
    region = GroupKSupportBall(shape, k, r)
    x = randn(shape, seed)
    v = region.lmo(x)
    best = -r * np.linalg.norm(np.sort(np_group_norms(npy(x)))[::-1][:k])
    assert dot(v, x) == pytest.approx(best, rel=1e-10, abs=1e-12)
    assert np.count_nonzero(np_group_norms(npy(v))) <= k
    assert float(v.norm()) == pytest.approx(r, rel=1e-10)
    assert float(region.norm(v)) <= r * (1 + 1e-10)
    for z in group_sparse_points(shape, k, r, seed):
        assert dot(z, x) >= best - 1e-9 * (1 + abs(best))


def test_group_lmo_ties_pick_lowest_groups_and_zero_input_gives_zero():
    region = GroupKSupportBall((4, 3), 2, 2.0)
    v = region.lmo(torch.ones(4, 3, dtype=F64))
    np.testing.assert_allclose(npy(v), np.vstack([np.full((2, 3), -2.0 / math.sqrt(6)), np.zeros((2, 3))]))
    assert torch.equal(region.lmo(torch.zeros(4, 3)), torch.zeros(4, 3))


def test_group_lmo_writes_into_out_and_float32():
    region = GroupKSupportBall((8, 3, 3, 3), 3, 1.5)
    x = randn((8, 3, 3, 3), 1, torch.float32)
    out = torch.empty_like(x)
    v = region.lmo(x, out=out)
    assert v.data_ptr() == out.data_ptr() and v.dtype == torch.float32
    best = -1.5 * np.linalg.norm(np.sort(np_group_norms(npy(x)))[::-1][:3])
    assert dot(v, x) == pytest.approx(best, rel=1e-5)


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from(GROUP_SHAPES), seed=SEEDS)
def test_group_gauge_ends_and_single_entry_groups(shape, seed):
    x = randn(shape, seed)
    groups = shape[0]
    g = np_group_norms(npy(x))
    assert float(GroupKSupportBall(shape, 1).norm(x)) == pytest.approx(g.sum(), rel=1e-10)  # group lasso
    assert float(GroupKSupportBall(shape, groups).norm(x)) == pytest.approx(np.linalg.norm(npy(x)), rel=1e-10)
    for k in range(1, groups + 1):
        # the dual pairing with the LMO value: <x, y> <= gauge(x) * ||top-k group norms of y||
        y = randn(shape, seed + 1)
        dual = np.linalg.norm(np.sort(np_group_norms(npy(y)))[::-1][:k])
        assert dot(x, y) <= float(GroupKSupportBall(shape, k).norm(x)) * dual * (1 + 1e-10)
        if math.prod(shape) == groups:  # one entry per group: the plain k-support norm
            assert float(GroupKSupportBall(shape, k).norm(x)) == pytest.approx(float(ksupport_norm(x, k)), rel=1e-10)


def test_group_fraction_counts_groups():
    assert GroupKSupportBall((10, 7, 3, 3), 0.3).k == 3
    assert GroupKSupportBall((20,), 0.1).k == 2
    assert GroupKSupportBall((4, 3), 1.0).k == 4
    assert GroupKSupportBall((4, 3), 0.5).unit_diameter() == 2.0


# ---------------------------------------------------------------- spectral k-support

def check_spectral_vertex(region: SpectralKSupportBall, x: torch.Tensor, rel: float) -> None:
    """The LMO at x against numpy's SVD: value -r ||top-k singular values||, rank <= k, ||V||_F = r."""
    k, r = region.k, region.radius
    v = region.lmo(x)
    assert v.shape == x.shape and v.dtype == x.dtype
    s = np_singular_values(x)
    best = -r * np.linalg.norm(s[:k])
    assert dot(v, x) == pytest.approx(best, rel=rel)
    slack = 1e-11 if x.dtype == F64 else 2e-3  # float32 vertices round at 1e-7; bfloat16 at 1e-3
    assert dot(v, x) >= best * (1 + slack) - 1e-12  # never better than the optimum
    sv = np_singular_values(v)
    assert np.all(sv[k:] <= 1e-5 * r)  # rank <= k
    assert float(np.linalg.norm(npy(v))) == pytest.approx(r, rel=1e-5)
    assert float(region.norm(v)) <= r * (1 + 1e-5)


SPECTRAL_CASES = [((8, 3, 3, 3), [1, 3, 7]), ((40, 64), [1, 3, 18]), ((100, 45), [1, 4, 40]),
                  ((3, 120), [1, 2, 3]), ((64, 3, 3, 3), [1, 5, 20]), ((12,), [1])]


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize(("shape", "ks"), SPECTRAL_CASES, ids=[str(c[0]) for c in SPECTRAL_CASES])
def test_spectral_lmo_against_numpy_svd_on_random_matrices(shape, ks, dtype):
    rel = 1e-4 if dtype == torch.float32 else 1e-5
    for k in ks:
        region = SpectralKSupportBall(shape, k, 1.7)
        for seed in range(3):  # repeated calls: the warm start must not carry over a wrong subspace
            check_spectral_vertex(region, randn(shape, 100 * k + seed, dtype), rel)


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
def test_spectral_power_path_warm_starts_across_unrelated_matrices(dtype):
    rel = 1e-4 if dtype == torch.float32 else 1e-5
    region = SpectralKSupportBall((60, 90), 4, 2.0)
    a = decaying(60, 90, 1, dtype=dtype)
    check_spectral_vertex(region, a, rel)
    assert region.last_method == "power"
    b = decaying(60, 90, 2, ratio=0.6, dtype=dtype)  # a completely different subspace
    sequence = [b, -b, a.T.contiguous().T * 3.0, b + 1e-3 * randn((60, 90), 3, dtype), randn((60, 90), 4, dtype),
                decaying(60, 90, 5, dtype=dtype), torch.zeros(60, 90, dtype=dtype)]
    for x in sequence[:-1]:
        check_spectral_vertex(region, x, rel)
    check_spectral_vertex(region, sequence[0], rel)
    assert region.last_method == "power"
    check_spectral_vertex(region, sequence[0] * 1.001, rel)
    assert region.last_method == "power" and region.last_iters == 1  # a warm start next to the answer
    assert torch.equal(region.lmo(sequence[-1]), sequence[-1])
    for k in (12, 2):  # k switched (DelayedK): the warm basis has the wrong width
        region.k = k
        check_spectral_vertex(region, a, rel)
        assert region.last_method == "power"


def test_spectral_fallback_paths_are_taken():
    near_rank = SpectralKSupportBall((40, 64), 30)
    near_rank.lmo(randn((40, 64), 0))
    assert near_rank.last_method == "svd" and near_rank.last_iters == 0  # block too large: no iterations
    slow = SpectralKSupportBall((200, 300), 10, power_iters=3)
    check_spectral_vertex(slow, randn((200, 300), 1), 1e-10)  # a clustered random spectrum: falls back
    assert slow.last_method == "svd"


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(33, 70), cols=st.integers(33, 70), k=st.integers(1, 6), seed=SEEDS,
       ratio=st.floats(0.3, 0.95), double=st.booleans())
def test_top_k_singular_against_numpy(rows, cols, k, seed, ratio, double):
    dtype = F64 if double else torch.float32
    a = decaying(rows, cols, seed, ratio, dtype)
    u, s, vh = top_k_singular(a, k)
    assert u.shape == (rows, k) and s.shape == (k,) and vh.shape == (k, cols) and s.dtype == dtype
    ref = np.linalg.svd(npy(a), compute_uv=False)
    # Ritz values err by about residual^2 / gap: within 2e-5 of s_1 at the default tolerance, in 1,500 trials
    np.testing.assert_allclose(npy(s), ref[:k], rtol=0, atol=1e-4 * ref[0])
    np.testing.assert_allclose(npy(u).T @ npy(u), np.eye(k), atol=1e-4)
    np.testing.assert_allclose(npy(vh) @ npy(vh).T, np.eye(k), atol=1e-4)
    # each triplet nearly solves A v = s u and A^T u = s v (the default tolerance is 1e-3 of s_1)
    assert np.abs(npy(a) @ npy(vh).T - npy(u) * npy(s)).max() <= 2e-3 * ref[0]
    assert np.abs(npy(a).T @ npy(u) - npy(vh).T * npy(s)).max() <= 2e-3 * ref[0]


def test_top_k_singular_warm_start_and_low_precision():
    a = decaying(50, 80, 0)
    _, _, vh = top_k_singular(a, 3)
    basis = torch.linalg.qr(torch.cat([vh.T, randn((80, 4), 1)], dim=1)).Q  # k + oversample columns
    ref = np.linalg.svd(npy(a), compute_uv=False)
    _, s, _ = top_k_singular(a * 2, 3, start=basis, iters=2)
    np.testing.assert_allclose(npy(s), 2 * ref[:3], rtol=1e-6)
    for columns in (1, 20):  # a start of another width is cut or filled up
        _, s, _ = top_k_singular(a, 3, start=basis[:, :columns] if columns == 1 else randn((80, columns), 2))
        np.testing.assert_allclose(npy(s), ref[:3], rtol=1e-5)
    with pytest.raises(ValueError, match="start must be a basis of 80 rows"):
        top_k_singular(a, 3, start=basis.T)
    region = SpectralKSupportBall((50, 80), 3)
    x = a.to(torch.bfloat16)
    v = region.lmo(x)
    assert v.dtype == torch.bfloat16
    best = -np.linalg.norm(np_singular_values(x)[:3])
    assert dot(v, x) == pytest.approx(best, rel=2e-2)


def test_spectral_first_start_leaves_global_rng_alone_and_is_deterministic():
    x = decaying(50, 70, 3)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    v1 = SpectralKSupportBall((50, 70), 2).lmo(x)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(SpectralKSupportBall((50, 70), 2).lmo(x), v1)


@pytest.mark.parametrize("shape", [(8, 3, 3, 3), (6, 9), (9, 4), (5,)])
def test_spectral_gauge_ends(shape):
    x = randn(shape, 7)
    m = np_matrix(npy(x))
    rank = min(m.shape)
    assert float(SpectralKSupportBall(shape, 1).norm(x)) == pytest.approx(np.linalg.norm(m, "nuc"), rel=1e-10)
    assert float(SpectralKSupportBall(shape, rank).norm(x)) == pytest.approx(np.linalg.norm(m), rel=1e-10)
    assert SpectralKSupportBall(shape, 1.0).k == rank
    assert SpectralKSupportBall((300, 784), 0.05).k == 15


# ---------------------------------------------------------------- SFW feasibility

STRUCTURED = {"group": GroupKSupportBall, "spectral": SpectralKSupportBall}


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(sorted(STRUCTURED)), shape=st.sampled_from([(4, 3), (3, 2, 2, 2), (5,), (40, 36)]),
       seed=SEEDS, r=st.floats(0.1, 5.0), k_frac=st.floats(0.01, 1.0), lr=st.floats(0.0, 1.0),
       rescale=st.sampled_from(["gradient", "diameter", None]))
def test_sfw_iterates_stay_feasible(kind, shape, seed, r, k_frac, lr, rescale):
    region = STRUCTURED[kind](shape, k_frac, r)
    param = nn.Parameter(region.make_feasible(3 * r * randn(shape, seed)))
    opt = SFW([param], [region], lr=lr, momentum=0.9, rescale=rescale)
    for step in range(5):
        param.grad = randn(shape, seed + step + 1)
        opt.step()
        assert float(region.norm(param.detach())) <= r * (1 + 1e-5)


# ---------------------------------------------------------------- the delayed switch of k

def tiny_problem(seed: int = 0) -> tuple[nn.Module, TensorDataset]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 40), nn.ReLU(),
                          nn.Linear(40, 3))
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(48, 1, 6, 6, generator=g), torch.randint(0, 3, (48,), generator=g))
    return model, data


def region_kind(name: str, param: nn.Parameter) -> str:
    if name.startswith("0."):
        return "group_k_support"
    if name == "3.weight":
        return "spectral_k_support"
    return "k_support"


def target_gauge(param: torch.Tensor, region, k: int) -> float:
    """The region's gauge at a given k, computed from its definition (group norms / singular values / entries)."""
    x = param.detach().double()
    if isinstance(region, GroupKSupportBall):
        return float(ksupport_norm(torch.tensor(np_group_norms(npy(x))), k))
    if isinstance(region, SpectralKSupportBall):
        return float(ksupport_norm(torch.tensor(np_singular_values(x)), k))
    return float(ksupport_norm(x, k))


class Recorder(Callback):
    """Records every region's k before each step, and the target-k gauges of the weights (after DelayedK ran)."""

    def __init__(self, regions, targets):
        self.regions, self.targets, self.ks, self.gauges = regions, targets, [], []

    def before_step(self, state):
        self.ks.append([c.k for c in self.regions])
        params = list(state.model.parameters())
        self.gauges.append([target_gauge(p, c, k) / c.radius for p, c, k in zip(params, self.regions, self.targets,
                                                                               strict=True)])


def test_delayed_k_switches_at_the_step_and_rescales_into_the_new_ball():
    model, data = tiny_problem()
    regions = constraints_from_init(model, region_kind, width=5.0, k=0.1)
    maxima = [k_limit(c) for c in regions]
    targets = [c.k for c in regions]
    assert maxima == [6, 6, 40, 40, 120, 3]  # filters, bias entries, rank bound, then entries
    # plain steps of 0.3 toward the (dense, k = n) vertices: the weights near the sphere before the switch
    opt = SFW(model.parameters(), regions, lr=0.3, momentum=0.9, rescale=None)
    for p, c in zip(model.parameters(), regions, strict=True):
        with torch.no_grad():
            p.copy_(c.make_feasible(p))
    before = Recorder(regions, targets)  # runs before the switch in the same hook
    delayed = DelayedK(regions, 0.1, at=0.5)
    after = Recorder(regions, targets)
    fit(model, data, epochs=2, batch_size=8, optimizer=opt, callbacks=[before, delayed, after], progress=False)
    total = 12
    switch = round(0.5 * total)
    assert delayed.switched_at == switch
    assert after.ks[:switch] == [maxima] * switch
    assert after.ks[switch:] == [targets] * (total - switch)
    # training at k = n left weights outside the target ball; the switch brought them in
    assert max(before.gauges[switch]) > 1.0 + 1e-3
    for gauges in after.gauges[switch:]:
        assert max(gauges) <= 1.0 + 1e-5
    for p, c, k in zip(model.parameters(), regions, targets, strict=True):
        assert target_gauge(p, c, k) <= c.radius * (1 + 1e-5)


@pytest.mark.parametrize(("at", "expected"), [(0.0, 0), (1.0, 12)])
def test_delayed_k_at_the_ends(at, expected):
    model, data = tiny_problem(1)
    setup = sfw_setup("group_k_support", width=5.0, k=0.5, rescale="gradient")
    opt = setup(model)
    regions = opt.param_groups[0]["constraints"]
    delayed = DelayedK(regions, 1, at=at)
    fit(model, data, epochs=2, batch_size=8, optimizer=opt, callbacks=[delayed], progress=False)
    assert delayed.switched_at == expected
    assert [c.k for c in regions] == [1] * len(regions)
    assert all(c.contains(p.detach()) for p, c in zip(model.parameters(), regions, strict=True))


def test_delayed_k_argument_checks():
    model, data = tiny_problem()
    regions = constraints_from_init(model, region_kind, width=5.0, k=0.5)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"at must lie in \[0.0, 1.0\]"):
            DelayedK(regions, 0.5, at=bad)
    with pytest.raises(TypeError, match="at must be a number"):
        DelayedK(regions, 0.5, at="half")
    with pytest.raises(ValueError, match=r"target_k must lie in \[1, 3\]"):
        DelayedK(regions, 4)  # the last layer has 3 entries in its bias
    with pytest.raises(ValueError, match="target_k as a fraction"):
        DelayedK(regions, 1.5)
    with pytest.raises(TypeError, match="list of regions"):
        DelayedK(regions[0], 0.5)
    with pytest.raises(ValueError, match="no k-support-type region"):
        DelayedK([L2Ball((3,))], 0.5)
    with pytest.raises(TypeError, match="needs a constrained optimizer"):
        fit(model, data, optimizer="sgd", callbacks=[DelayedK(regions, 0.5)], progress=False)
    other = SFW(model.parameters(), constraints_from_init(model, region_kind, width=5.0, k=0.5))
    with pytest.raises(ValueError, match="not held by the optimizer"):
        fit(model, data, optimizer=other, callbacks=[DelayedK(regions, 0.5)], progress=False)


# ---------------------------------------------------------------- registration and argument checks

def test_registered_kinds_build_and_set_radius_from_init():
    assert {"group_k_support", "spectral_k_support"} <= set(KINDS)
    model, _ = tiny_problem()
    norms = expected_init_norms(model)
    for kind, cls in (("group_k_support", GroupKSupportBall), ("spectral_k_support", SpectralKSupportBall)):
        regions = constraints_from_init(model, kind, width=3.0, k=0.1)
        assert all(isinstance(c, cls) for c in regions)
        for (name, _), c in zip(model.named_parameters(), regions, strict=True):
            assert c.diameter == pytest.approx(2 * 3.0 * norms[name])
        assert [c.k for c in regions][:2] == [1, 1]
    assert isinstance(build("group_k_support", (4, 3), 2.0, k=2), GroupKSupportBall)
    with pytest.raises(ValueError, match="needs k"):
        build("spectral_k_support", (4, 3))


def test_sfw_setup_probe_allocates_nothing_and_accepts_counts():
    probe = build("spectral_k_support", (2**20, 2**20), k=5)  # a 2**40-entry matrix: never allocated
    assert probe.k == 5 and probe._buffers == {}
    assert build("group_k_support", (2**40,), k=3).k == 3
    sfw_setup("spectral_k_support", k=5, rescale="gradient")
    sfw_setup("group_k_support", k=64)
    with pytest.raises(ValueError, match="k as a fraction"):
        sfw_setup("spectral_k_support", k=1.5)
    model, data = tiny_problem()
    opt = sfw_setup("spectral_k_support", width=5.0, k=0.25, rescale="gradient")(model)
    fit(model, data, epochs=1, batch_size=16, optimizer=opt, progress=False)
    assert all(c.contains(p.detach()) for p, c in zip(model.parameters(), opt.param_groups[0]["constraints"],
                                                       strict=True))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"k must lie in \[1, 3\] as a count of groups"):
        GroupKSupportBall((3, 4), 5)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 3\]"):
        GroupKSupportBall((3, 4), 0)
    with pytest.raises(ValueError, match="k as a fraction"):
        GroupKSupportBall((3, 4), 1.5)
    with pytest.raises(TypeError, match="k must be an int count or a float fraction"):
        GroupKSupportBall((3, 4), "2")
    with pytest.raises(TypeError):
        GroupKSupportBall((3, 4), True)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 3\] as a count of singular values"):
        SpectralKSupportBall((3, 4), 4)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 1\]"):
        SpectralKSupportBall((7,), 2)  # a vector is one row: rank at most 1
    with pytest.raises(ValueError, match="radius"):
        SpectralKSupportBall((3, 4), 1, radius=0.0)
    with pytest.raises(ValueError, match="power_iters"):
        SpectralKSupportBall((3, 4), 1, power_iters=0)
    with pytest.raises(ValueError, match="tol"):
        SpectralKSupportBall((3, 4), 1, tol=1.0)
    with pytest.raises(ValueError, match="oversample"):
        SpectralKSupportBall((3, 4), 1, oversample=-1)
    with pytest.raises(TypeError, match="shape"):
        GroupKSupportBall(3, 1)
    with pytest.raises(TypeError, match="2-D tensor"):
        top_k_singular(torch.ones(3), 1)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 3\]"):
        top_k_singular(torch.ones(3, 4), 4)
    with pytest.raises(TypeError, match="not a k-support-type region"):
        k_limit(L2Ball((3,)))
    assert k_limit(KSupportBall((3, 4), 2)) == 12
