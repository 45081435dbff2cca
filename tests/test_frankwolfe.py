"""kit.frankwolfe against independent computations.

LMOs against vertex enumeration, Hoelder's closed form, brute force over supports and SVD; the k-support
norm against a brute-force dual (scipy SLSQP) and the box-norm water-filling formula; projections against
scipy root finding; diameters against vertex enumeration; radii from initialization against freshly drawn
layers; SFW / AdaGrad-SFW / projected SGD steps against hand computations, feasibility invariants
(hypothesis), parameter pairing, state dicts, argument checks, and a digits run through ``kit.train.fit``.
"""

from __future__ import annotations

import copy
import io
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from by_hand import project_l1_by_hand, project_simplex_by_hand, quadratic_model_fw
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, minimize
from torch import nn

from kit.data import load
from kit.frankwolfe import (
    SFW,
    AdaGradSFW,
    Constraint,
    KSparsePolytope,
    KSupportBall,
    L1Ball,
    L2Ball,
    LinfBall,
    LpBall,
    NuclearBall,
    ProbabilitySimplex,
    ProjectedSGD,
    Unconstrained,
    build,
    constraints_from_init,
    ksupport_norm,
    make_feasible_,
    projected_sgd_setup,
    resolve_k,
    sfw_setup,
)
from kit.models import MLP
from kit.train import evaluate, fit

F64 = torch.float64
INF = math.inf
SMALL_SHAPES = [(1,), (2,), (3,), (4,), (6,), (2, 3), (3, 2), (1, 2, 3)]  # at most 6 entries: enumerable
P_VALUES = [1.0, 1.5, 2.0, 3.0, INF]
SEEDS = st.integers(0, 2**20)
RADII = st.floats(0.1, 5.0)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- independent helpers

def randn(shape, seed: int, ties: bool = False, dtype: torch.dtype = F64) -> torch.Tensor:
    """A seeded Gaussian tensor; with ``ties`` rounded to multiples of 1/2 (many ties and exact zeros)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=g, dtype=F64)
    if ties:
        x = torch.round(2 * x) / 2
    return x.to(dtype)


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() * b.double()).sum())


def npy(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy().copy()


def lp_norm(x: torch.Tensor | np.ndarray, p: float) -> float:
    """||x||_p with numpy (p = inf allowed), by hand."""
    a = np.abs(np.asarray(x.detach().double() if isinstance(x, torch.Tensor) else x, dtype=float).ravel())
    if a.size == 0:
        return 0.0
    if math.isinf(p):
        return float(a.max())
    return float((a**p).sum() ** (1.0 / p))


def dual_exponent(p: float) -> float:
    return INF if p == 1 else (1.0 if math.isinf(p) else p / (p - 1))


def as_matrix(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1) if x.dim() >= 2 else x.reshape(1, -1)


def nuclear_norm(x: torch.Tensor) -> float:
    return float(torch.linalg.svdvals(as_matrix(x.detach().double())).sum())


def ksupport_by_hand(x, k: int) -> float:
    """The k-support norm as the box norm (McDonald, Pontil & Stamos 2014): ||x||^2 = min over
    {0 < theta_i <= 1, sum theta <= k} of sum x_i^2 / theta_i, solved by water-filling theta_i = min(1, |x_i|/lam)
    with scipy's root finder. Independent of the sorting formula in the kit."""
    a = np.abs(np.asarray(x.detach().double() if isinstance(x, torch.Tensor) else x, dtype=float).ravel())
    a = a[a > 0]
    if a.size <= k:
        return float(np.sqrt((a * a).sum()))

    def excess(t):
        return np.minimum(1.0, a / t).sum() - k

    high = a.sum() / k  # excess(high) <= 0, excess(a.min()) = len(a) - k > 0
    lam = high if excess(high) >= 0 else brentq(excess, a.min(), high, xtol=1e-300, rtol=1e-15)
    theta = np.minimum(1.0, a / lam)
    return float(np.sqrt((a * a / theta).sum()))


def ksupport_dual_brute_force(x: np.ndarray, k: int) -> float:
    """max <x, y> over the dual ball {y : ||y_S||_2 <= 1 for every k-subset S}, by SLSQP (one constraint per subset).

    Every candidate is rescaled into the dual ball before it counts, so the result never overshoots."""
    x = np.asarray(x, dtype=float).ravel()
    n = x.size
    if not np.any(x):
        return 0.0
    subsets = [list(s) for s in itertools.combinations(range(n), k)]

    def jac(y, s):
        out = np.zeros(n)
        out[s] = -2.0 * y[s]
        return out

    cons = [{"type": "ineq", "fun": (lambda y, s=s: 1.0 - np.sum(y[s] ** 2)), "jac": (lambda y, s=s: jac(y, s))}
            for s in subsets]
    best = 0.0
    for start in (np.zeros(n), np.sign(x) / math.sqrt(n), x / np.linalg.norm(x)):
        res = minimize(lambda y: -(x @ y), start, jac=lambda y: -x, constraints=cons, method="SLSQP",
                       options={"ftol": 1e-15, "maxiter": 500})
        y = res.x
        top = np.sort(y * y)[::-1][:k].sum()
        best = max(best, float(x @ y) / max(1.0, math.sqrt(top)))
    return best


def vertices(kind: str, n: int, r: float, k: int = 1) -> torch.Tensor:
    """Every vertex of the polytope (rows), for small n."""
    eye = torch.eye(n, dtype=F64)
    if kind == "l1":
        return torch.cat([r * eye, -r * eye])
    if kind == "linf":
        return r * torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)), dtype=F64)
    if kind == "k_sparse":
        rows = []
        for support in itertools.combinations(range(n), k):
            for signs in itertools.product([-1.0, 1.0], repeat=k):
                v = torch.zeros(n, dtype=F64)
                v[list(support)] = r * torch.tensor(signs, dtype=F64)
                rows.append(v)
        return torch.stack(rows)
    if kind == "simplex":
        return r * eye
    raise AssertionError(kind)


def inside_by_hand(kind: str, z: torch.Tensor, r: float, k: int | None = None, p: float | None = None,
                   rtol: float = 1e-6) -> bool:
    """Feasibility from the region's definition, without the kit's norm()."""
    slack = r * (1 + rtol) + 1e-12
    if kind in ("l1", "l2", "linf", "lp"):
        return lp_norm(z, {"l1": 1.0, "l2": 2.0, "linf": INF}.get(kind, p)) <= slack
    if kind == "k_sparse":
        return lp_norm(z, INF) <= slack and lp_norm(z, 1) <= k * slack
    if kind == "k_support":
        return ksupport_by_hand(z, k) <= slack
    if kind == "nuclear":
        return nuclear_norm(z) <= slack
    if kind == "simplex":
        return float(z.min()) >= -rtol * r and abs(float(z.double().sum()) - r) <= rtol * max(r, 1.0)
    if kind == "unconstrained":
        return True
    raise AssertionError(kind)


def feasible_points(kind: str, shape, r: float, seed: int, count: int = 12, k: int | None = None,
                    p: float | None = None) -> list[torch.Tensor]:
    """Random points on the boundary (scaled by a hand-computed gauge) and in the interior."""
    g = torch.Generator().manual_seed(seed + 7)
    n = math.prod(shape)
    points = []
    for _ in range(count):
        y = torch.randn(n, generator=g, dtype=F64)
        if kind == "simplex":
            e = torch.exp(2 * y)
            z = r * e / e.sum()
        elif kind == "k_support":  # convex combination of k-sparse vectors of L2 norm r: inside by definition
            z = torch.zeros(n, dtype=F64)
            weights = -torch.log(torch.rand(3, generator=g, dtype=F64))  # Dirichlet(1, 1, 1)
            for w in weights / weights.sum():
                a = torch.zeros(n, dtype=F64)
                support = torch.randperm(n, generator=g)[:k]
                a[support] = torch.randn(k, generator=g, dtype=F64)
                z += w * r * a / a.norm()
        else:
            if kind == "nuclear":
                gauge = nuclear_norm(y.reshape(shape))
            elif kind == "k_sparse":
                gauge = max(lp_norm(y, INF), lp_norm(y, 1) / k)
            else:
                gauge = lp_norm(y, {"l1": 1.0, "l2": 2.0, "linf": INF}.get(kind, p))
            z = r * y / gauge
        points.append(z.reshape(shape))
    interior = [z * float(torch.rand((), generator=g, dtype=F64)) for z in points if kind != "simplex"]
    return points + interior


def region_for(kind: str, shape, r: float, k: int | None = None, p: float | None = None) -> Constraint:
    return build(kind, torch.Size(shape), r, k=k, p=p)


# ---------------------------------------------------------------- 1. LMO optimality

@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["l1", "linf", "k_sparse", "simplex", "lp1", "lpinf"]),
       shape=st.sampled_from(SMALL_SHAPES), seed=SEEDS, ties=st.booleans(), r=RADII, k_raw=st.integers(0, 5))
def test_polytope_lmo_is_the_best_vertex(kind, shape, seed, ties, r, k_raw):
    x = randn(shape, seed, ties)
    n = x.numel()
    k = 1 + k_raw % n
    if kind.startswith("lp"):
        p = 1.0 if kind == "lp1" else INF
        region, kind = LpBall(shape, p, r), ("l1" if p == 1 else "linf")
    else:
        region = region_for(kind, shape, r, k=k)
    v = region.lmo(x)
    assert v.shape == x.shape and v.dtype == x.dtype
    assert region.contains(v)
    assert inside_by_hand(kind, v, r, k=k)
    verts = vertices(kind, n, r, k)
    best = float((verts @ x.reshape(-1)).min())
    assert dot(v, x) == pytest.approx(best, abs=1e-9 * (1 + r * float(x.abs().sum())))


@settings(max_examples=60, deadline=None)
@given(p=st.sampled_from(P_VALUES), use_named=st.booleans(), shape=st.sampled_from([*SMALL_SHAPES, (5, 7)]),
       seed=SEEDS, ties=st.booleans(), r=RADII)
def test_lp_lmo_meets_hoelder_bound_and_beats_sampled_points(p, use_named, shape, seed, ties, r):
    x = randn(shape, seed, ties)
    named = {1.0: L1Ball, 2.0: L2Ball, INF: LinfBall}
    region = named[p](shape, r) if use_named and p in named else LpBall(shape, p, r)
    v = region.lmo(x)
    q = dual_exponent(p)
    assert dot(v, x) == pytest.approx(-r * lp_norm(x, q), rel=1e-9, abs=1e-12)  # equality in Hoelder
    assert lp_norm(v, p) == pytest.approx(r if float(x.abs().max()) > 0 else 0.0, rel=1e-9, abs=1e-12)
    assert region.contains(v)
    for z in feasible_points("lp", shape, r, seed, p=p):
        assert dot(v, x) <= dot(z, x) + 1e-9 * (1 + r * float(x.abs().sum()))


@settings(max_examples=50, deadline=None)
@given(shape=st.sampled_from(SMALL_SHAPES), seed=SEEDS, ties=st.booleans(), r=RADII, k_raw=st.integers(0, 5))
def test_ksupport_lmo_is_best_over_supports(shape, seed, ties, r, k_raw):
    x = randn(shape, seed, ties)
    n = x.numel()
    k = 1 + k_raw % n
    region = KSupportBall(shape, k, r)
    v = region.lmo(x)
    flat = x.reshape(-1)
    brute = min(-r * float(flat[list(s)].norm()) for s in itertools.combinations(range(n), k))
    assert dot(v, x) == pytest.approx(brute, rel=1e-9, abs=1e-12)
    assert int((v != 0).sum()) <= k
    if float(x.abs().max()) > 0:
        assert float(v.norm()) == pytest.approx(r, rel=1e-9)
        assert float(ksupport_norm(v, k)) == pytest.approx(r, rel=1e-9)
        assert ksupport_by_hand(v, k) == pytest.approx(r, rel=1e-9)
    assert region.contains(v)
    for z in feasible_points("k_support", shape, r, seed, k=k):
        assert dot(v, x) <= dot(z, x) + 1e-9 * (1 + r * float(x.abs().sum()))


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from([(3, 4), (5, 2), (6,), (4, 2, 2, 2), (3, 1, 3, 3), (8, 3)]), seed=SEEDS, r=RADII)
def test_nuclear_lmo_uses_the_top_singular_pair(shape, seed, r):
    x = randn(shape, seed)
    region = NuclearBall(shape, r)
    v = region.lmo(x)
    assert v.shape == x.shape
    s = torch.linalg.svdvals(as_matrix(x))
    sv = torch.linalg.svdvals(as_matrix(v))
    assert float(sv[0]) == pytest.approx(r, rel=1e-9)  # rank one, nuclear norm r
    assert float(sv[1:].sum()) <= 1e-9 * r
    assert nuclear_norm(v) == pytest.approx(r, rel=1e-9)
    assert region.contains(v)
    # power iteration: near-exact when the top singular value is separated, a few percent at worst otherwise
    gap = float(s[1] / s[0]) if s.numel() > 1 else 0.0
    rel = 1e-6 if gap <= 0.8 else 5e-2
    assert dot(v, x) == pytest.approx(-r * float(s[0]), rel=rel)
    for z in feasible_points("nuclear", shape, r, seed, count=6):
        assert dot(v, x) <= dot(z, x) + rel * r * float(s[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_nuclear_lmo_is_optimal_when_the_top_singular_values_cluster(seed):
    # 40 singular values within 8% of the top, 0.2% apart: 50 plain power iterations landed 0.6% off here
    g = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64)).Q
    w = torch.linalg.qr(torch.randn(784, 300, generator=g, dtype=torch.float64)).Q
    s = torch.cat([1 - 0.002 * torch.arange(40, dtype=torch.float64), 0.5 * torch.rand(260, generator=g,
                                                                                          dtype=torch.float64)])
    x = (u * s) @ w.T
    v = NuclearBall((300, 784), 2.0).lmo(x)
    assert dot(v, x) == pytest.approx(-2.0 * float(s.max()), rel=1e-6)


@pytest.mark.parametrize("x", [
    torch.tensor([[2.0, -2.0], [1.0, 1.0]]),  # sigma = (sqrt 8, sqrt 2); the top right vector is (1, -1)/sqrt 2
    torch.tensor([1.0, -1.0]),  # a bias with balanced gradient: the LMO must be -r x/||x||, not 0
    torch.tensor([[3.0, -3.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.5]]),
], ids=["2x2", "vector", "3x3"])
def test_nuclear_lmo_finds_top_singular_value_from_any_start(x):
    """A deterministic power-iteration start (|x| column sums) can be orthogonal to the top singular vector."""
    region = NuclearBall(x.shape, 1.0)
    v = region.lmo(x)
    assert dot(v, x) == pytest.approx(-float(torch.linalg.svdvals(as_matrix(x))[0]), rel=1e-5)


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from(SMALL_SHAPES), seed=SEEDS, ties=st.booleans(), r=RADII)
def test_simplex_lmo_is_r_times_the_argmin_vertex(shape, seed, ties, r):
    x = randn(shape, seed, ties)
    v = ProbabilitySimplex(shape, r).lmo(x)
    assert inside_by_hand("simplex", v, r)
    assert int((v != 0).sum()) == 1 and float(v.max()) == r
    assert dot(v, x) == pytest.approx(r * float(x.min()), abs=1e-12)
    for z in feasible_points("simplex", shape, r, seed):
        assert dot(v, x) <= dot(z, x) + 1e-9 * (1 + r * float(x.abs().sum()))


@settings(max_examples=50, deadline=None)
@given(kind=st.sampled_from(["l1", "l2", "linf", "k_sparse", "k_support", "nuclear"]),
       shape=st.sampled_from([(4,), (2, 3), (3, 1, 2)]), seed=SEEDS, r=RADII)
def test_lmo_beats_random_feasible_points(kind, shape, seed, r):
    x = randn(shape, seed)
    k = 2
    region = region_for(kind, shape, r, k=k)
    v = region.lmo(x)
    assert inside_by_hand(kind, v, r, k=k)
    slack = 1e-9 * (1 + r * float(x.abs().sum())) + (2e-2 * r * float(x.norm()) if kind == "nuclear" else 0.0)
    for z in feasible_points(kind, shape, r, seed, k=k):
        assert inside_by_hand(kind, z, r, k=k)  # the sampler itself is right
        assert dot(v, x) <= dot(z, x) + slack


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
@pytest.mark.parametrize("k", [1, 9, 1000, 65_536, 131_071])
def test_large_top_k_lmos_match_an_exact_sort(k, ties):
    """Past 65,536 entries the k-sparse / k-support LMOs pick the top k by a sampled threshold: compare with a sort."""
    shape = (256, 512)
    x = randn(shape, 11 + k, dtype=torch.float32)
    if ties:
        x = torch.round(4 * x) / 4  # a few dozen distinct values: ties at every threshold
    top = x.abs().reshape(-1).double().sort(descending=True).values[:k]
    r = 0.7
    sparse = KSparsePolytope(shape, k, r)
    support = KSupportBall(shape, k, r)
    for _ in range(2):  # twice: reused work buffers must not leak between calls
        v = sparse.lmo(x)
        assert dot(v, x) == pytest.approx(-r * float(top.sum()), rel=1e-6)
        assert int((v != 0).sum()) <= k and float(v.abs().max()) == pytest.approx(r)
        assert int((v != 0).sum()) == min(k, int((x != 0).sum()))
        w = support.lmo(x)
        assert dot(w, x) == pytest.approx(-r * float(top.norm()), rel=1e-6)
        assert int((w != 0).sum()) <= k
        assert float(w.double().norm()) == pytest.approx(r, rel=1e-6)
        x = -x.flip(0)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10_007, 65_537, 70_001])
@pytest.mark.parametrize("where", ["first", "last", "middle"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_l1_lmo_finds_the_largest_entry_at_any_size(n, where, sign):
    x = randn((n,), n, dtype=torch.float32)
    i = {"first": 0, "last": n - 1, "middle": n // 2}[where]
    x[i] = sign * 100.0
    v = L1Ball((n,), 2.0).lmo(x)
    expected = torch.zeros(n)
    expected[i] = -2.0 * sign
    assert torch.equal(v, expected)
    assert float(LpBall((n,), 1.0, 2.0).lmo(x)[i]) == -2.0 * sign


@pytest.mark.parametrize("kind", ["l1", "l2", "linf", "lp", "k_sparse", "k_support", "nuclear", "simplex"])
def test_lmo_out_argument_and_repeated_calls(kind):
    shape = (4, 6)
    region = region_for(kind, shape, 1.3, k=5, p=3.0)
    out = torch.full(shape, 123.0)
    for seed in range(4):
        x = randn(shape, seed, ties=seed % 2 == 1, dtype=torch.float32)
        fresh = region_for(kind, shape, 1.3, k=5, p=3.0).lmo(x)
        x_before = x.clone()
        got = region.lmo(x, out=out)
        assert got is out  # written in place
        assert torch.allclose(got, fresh, atol=1e-6)
        assert torch.allclose(region.lmo(x), fresh, atol=1e-6)
        assert torch.equal(x, x_before)  # the input is not touched
    clone = copy.deepcopy(region)  # work buffers are not part of a region's state
    assert torch.allclose(clone.lmo(x), region.lmo(x))


# ---------------------------------------------------------------- 2. L-inf tie rule

@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from(SMALL_SHAPES), seed=SEEDS, r=RADII)
def test_linf_lmo_gives_zero_on_zero_entries(shape, seed, r):
    x = randn(shape, seed, ties=True)
    for region in (LinfBall(shape, r), LpBall(shape, INF, r)):
        v = region.lmo(x)
        assert torch.all(v[x == 0] == 0)
        assert torch.all(v[x > 0] == -r) and torch.all(v[x < 0] == r)


@pytest.mark.parametrize("rescale", ["diameter", "gradient"])
def test_sfw_linf_weights_on_a_dead_input_only_shrink(rescale):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(256, 5, generator=g)
    x[:, 0] = 0.0  # the first "pixel" is always zero: its incoming weights get zero gradient
    y = (x[:, 1] + x[:, 2] > 0).long()
    torch.manual_seed(0)
    model = MLP(input_shape=5, widths=(8,), num_classes=2)
    cons = constraints_from_init(model, "linf", width=10.0)
    make_feasible_(model, cons)
    first = model.net[1].weight
    w0 = first[:, 0].detach().clone()
    assert cons[0].radius > 3 * float(w0.abs().max())  # drifting to +-r would be visible
    opt = SFW(model.parameters(), cons, lr=0.5, momentum=0.9, rescale=rescale)
    previous = w0.abs()
    steps = 0
    for _ in range(3):
        for i in range(0, 256, 32):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
            steps += 1
            now = first[:, 0].detach().abs()
            assert torch.all(now <= previous + 1e-7)
            previous = now
    assert torch.all(previous < w0.abs())  # they did shrink
    if rescale == "diameter":  # each step is theta <- (1 - lr/D) theta + (lr/D) * 0 on these weights
        factor = (1 - 0.5 / cons[0].diameter) ** steps
        assert torch.allclose(first[:, 0].detach(), w0 * factor, rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------- 3. the k-support norm

@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), seed=SEEDS, ties=st.booleans(), double=st.booleans())
def test_ksupport_norm_is_l1_at_k1_and_l2_at_kn(n, seed, ties, double):
    x = randn((n,), seed, ties, dtype=F64 if double else torch.float32)
    if seed % 3 == 0:
        x[: n // 2] = 0.0
    l1, l2 = lp_norm(x, 1), lp_norm(x, 2)
    rel = 1e-9 if double else 1e-6
    assert float(ksupport_norm(x, 1)) == pytest.approx(l1, rel=rel, abs=1e-12)
    assert float(ksupport_norm(x, n)) == pytest.approx(l2, rel=rel, abs=1e-12)
    assert float(ksupport_norm(x, 1.0)) == pytest.approx(l2, rel=rel, abs=1e-12)  # a fraction: all of n
    assert ksupport_norm(x, 1).dtype == x.dtype


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), seed=SEEDS, ties=st.booleans(), k_raw=st.integers(0, 5))
def test_ksupport_norm_matches_brute_force_dual(n, seed, ties, k_raw):
    x = randn((n,), seed, ties)
    k = 1 + k_raw % n
    got = float(ksupport_norm(x, k))
    assert got == pytest.approx(ksupport_dual_brute_force(npy(x), k), rel=1e-4, abs=1e-9)
    assert got == pytest.approx(ksupport_by_hand(x, k), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("values", "k"), [
    ([0.3, 0.1, 0.7, 0.7, 0.2, 0.1], 3),
    ([0.1, 0.7, 0.3, 0.3, 0.7], 3),
    ([0.7, 0.0, 0.1, 0.3, 0.7, 0.3], 3),
])
def test_ksupport_norm_is_exact_on_float64_ties(values, k):
    """Ties where the exact sorting condition holds with equality; float64 round-off must not pick the L2 norm."""
    x = torch.tensor(values, dtype=F64)
    expected = ksupport_by_hand(x, k)
    assert expected == pytest.approx(ksupport_dual_brute_force(npy(x), k), rel=1e-6)
    assert expected > lp_norm(x, 2) * (1 + 1e-3)  # the fallback (L2) would be visibly wrong
    assert float(ksupport_norm(x, k)) == pytest.approx(expected, rel=1e-9)
    assert float(ksupport_norm(x.float(), k)) == pytest.approx(expected, rel=1e-6)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 10), seed=SEEDS, ties=st.booleans(), k_raw=st.integers(0, 9), a=st.floats(-5, 5))
@example(n=8, seed=195, ties=True, k_raw=2, a=1.1861280558303635)  # a*x has inexact ties: float64 round-off
def test_ksupport_norm_is_a_norm_between_l2_and_l1(n, seed, ties, k_raw, a):
    x, y = randn((n,), seed, ties), randn((n,), seed + 1, ties)
    k = 1 + k_raw % n

    def nrm(z):
        return float(ksupport_norm(z, k))

    tol = 1e-9 * (1 + lp_norm(x, 1) + lp_norm(y, 1))
    assert nrm(x + y) <= nrm(x) + nrm(y) + tol
    assert nrm(a * x) == pytest.approx(abs(a) * nrm(x), rel=1e-9, abs=1e-12)
    assert lp_norm(x, 2) - tol <= nrm(x) <= lp_norm(x, 1) + tol
    if k < n:
        assert float(ksupport_norm(x, k + 1)) <= nrm(x) + tol  # the balls grow with k
    assert nrm(torch.zeros(n, dtype=F64)) == 0.0


# ---------------------------------------------------------------- 4. resolve_k

def test_resolve_k_counts_fractions_and_errors():
    assert resolve_k(3, 10) == 3
    assert resolve_k(1, 1) == 1 and resolve_k(10, 10) == 10
    assert resolve_k(0.3, 10) == 3
    assert resolve_k(0.25, 100) == 25
    assert resolve_k(1.0, 7) == 7  # a float is a fraction: all entries
    assert resolve_k(1e-9, 50) == 1  # clamped up to one entry
    assert resolve_k(0.99, 3) == 3
    for bad in (0, 11, -1):
        with pytest.raises(ValueError, match="k"):
            resolve_k(bad, 10)
    for bad in (1.5, 0.0, -0.2, math.nan):
        with pytest.raises(ValueError, match="k"):
            resolve_k(bad, 10)
    for bad in ("a", None, True, [2]):
        with pytest.raises(TypeError, match="k"):
            resolve_k(bad, 10)


def test_resolve_k_accepts_numpy_integers():
    """The kit's own checks (validate.check_int) accept any Integral; a k from np.arange must work too."""
    assert resolve_k(np.int64(3), 10) == 3
    assert KSparsePolytope((10,), np.arange(1, 4)[1]).k == 2


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 500), frac=st.floats(1e-6, 1.0))
def test_resolve_k_fraction_stays_in_range(n, frac):
    k = resolve_k(frac, n)
    assert 1 <= k <= n
    assert abs(k - frac * n) <= 0.5 + 1e-9 or k == 1


# ---------------------------------------------------------------- 5. make_feasible and projections

FEASIBLE_KINDS = ["l1", "l2", "linf", "lp", "k_sparse", "k_support", "nuclear", "simplex"]


@settings(max_examples=50, deadline=None)
@given(kind=st.sampled_from(FEASIBLE_KINDS), shape=st.sampled_from([(5,), (2, 3), (3, 1, 2)]), seed=SEEDS,
       r=RADII, scale=st.floats(1e-3, 1e3))
def test_make_feasible_lands_inside_and_keeps_feasible_points(kind, shape, seed, r, scale):
    k, p = 2, 3.0
    region = region_for(kind, shape, r, k=k, p=p)
    x = randn(shape, seed) * scale
    y = region.make_feasible(x)
    assert y.shape == x.shape
    assert region.contains(y)
    assert inside_by_hand(kind, y, r, k=k, p=p, rtol=1e-9)
    for z in feasible_points(kind, shape, r, seed, count=3, k=k, p=p):
        assert torch.allclose(region.make_feasible(z), z, rtol=1e-12, atol=0.0)  # on the boundary: up to round-off
        if kind != "simplex":
            assert torch.equal(region.make_feasible(0.9 * z), 0.9 * z)  # strictly inside: untouched


PROJECTING = ["l1", "l2", "linf", "nuclear", "simplex"]


@settings(max_examples=50, deadline=None)
@given(kind=st.sampled_from(PROJECTING), shape=st.sampled_from([(1,), (4,), (6,), (2, 3), (3, 2, 2)]),
       seed=SEEDS, r=RADII, scale=st.floats(0.01, 30.0), ties=st.booleans())
def test_project_is_the_euclidean_projection(kind, shape, seed, r, scale, ties):
    region = region_for(kind, shape, r)
    assert region.supports_projection
    x = randn(shape, seed, ties) * scale
    px = region.project(x)
    assert px.shape == x.shape
    assert region.contains(px)
    assert inside_by_hand(kind, px, r, rtol=1e-9)
    dist = float((x - px).norm())
    tol = 1e-9 * (1 + float(x.norm()))
    for z in feasible_points(kind, shape, r, seed, k=None):
        assert dist <= float((x - z).norm()) + tol
        assert dot(x - px, z - px) <= tol * (1 + r)  # the obtuse-angle characterization
    if kind == "l1":
        assert np.allclose(npy(px).ravel(), project_l1_by_hand(npy(x).ravel(), r), atol=1e-9)
    elif kind == "simplex":
        assert np.allclose(npy(px).ravel(), project_simplex_by_hand(npy(x).ravel(), r), atol=1e-9)
    elif kind == "nuclear":
        u, s, vt = np.linalg.svd(npy(as_matrix(x)), full_matrices=False)
        expected = (u * project_l1_by_hand(s, r)) @ vt
        assert np.allclose(npy(as_matrix(px)), expected, atol=1e-9)
    elif kind == "l2":
        expected = x if float(x.norm()) <= r else x * (r / float(x.norm()))
        assert torch.allclose(px, expected, atol=1e-12)
    else:
        assert torch.allclose(px, torch.clamp(x, -r, r))
    if inside_by_hand(kind, x, r, rtol=0.0) and kind != "simplex":
        assert torch.allclose(px, x, atol=1e-10)  # feasible points stay


@pytest.mark.parametrize("region", [LpBall((4,), 3.0), LpBall((4,), 2.0), KSparsePolytope((4,), 2),
                                    KSupportBall((4,), 2)], ids=repr)
def test_regions_without_cheap_projection_refuse(region):
    assert not region.supports_projection
    with pytest.raises(NotImplementedError):
        region.project(torch.ones(4))


# ---------------------------------------------------------------- 6. diameters

def max_pairwise_distance(points: torch.Tensor) -> float:
    return float(torch.cdist(points, points).max())


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("r", [0.5, 2.0])
def test_polytope_diameters_match_vertex_enumeration(n, r):
    regions = [("l1", L1Ball((n,), r)), ("linf", LinfBall((n,), r)), ("l1", LpBall((n,), 1.0, r)),
               ("linf", LpBall((n,), INF, r))]
    if n > 1:  # a one-entry simplex is a single point
        regions.append(("simplex", ProbabilitySimplex((n,), r)))
    for kind, region in regions:
        assert region.diameter == pytest.approx(max_pairwise_distance(vertices(kind, n, r)), rel=1e-12), region
    for k in range(1, n + 1):
        region = KSparsePolytope((n,), k, r)
        assert region.diameter == pytest.approx(max_pairwise_distance(vertices("k_sparse", n, r, k)), rel=1e-12)


@pytest.mark.parametrize("r", [0.3, 4.0])
def test_round_ball_diameters_are_2r(r):
    g = torch.Generator().manual_seed(0)
    for region, kind in [(L2Ball((3, 4), r), "l2"), (KSupportBall((3, 4), 3, r), "k_support"),
                         (NuclearBall((3, 4), r), "nuclear"), (NuclearBall((2, 3, 2, 2), r), "nuclear")]:
        assert region.diameter == pytest.approx(2 * r, rel=1e-12)
        x = torch.randn(region.shape, generator=g, dtype=F64)
        v = region.lmo(x)
        assert float((v - region.lmo(-x)).norm()) == pytest.approx(2 * r, rel=1e-6)  # attained by v and -v
        for z in feasible_points(kind, tuple(region.shape), r, 1, k=3):
            assert float(z.norm()) <= r * (1 + 1e-9)  # every such ball lies in the L2 ball of radius r


@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("n", [1, 3, 8])
def test_lp_diameter(p, n):
    r = 1.7
    region = LpBall((n,), p, r)
    corner = torch.full((n,), r / n ** (1 / p) if not math.isinf(p) else r, dtype=F64)  # on the boundary
    farthest = r if p <= 2 else float(corner.norm())  # e_i for p <= 2, the all-equal corner for p >= 2
    assert lp_norm(corner, p) == pytest.approx(r)
    assert region.diameter == pytest.approx(2 * farthest, rel=1e-12)
    for z in feasible_points("lp", (n,), r, 0, p=p):
        assert float(z.norm()) <= region.diameter / 2 * (1 + 1e-9)


# ---------------------------------------------------------------- 7. radii from the initialization

def sampled_linear_norms(in_features: int, out_features: int, draws: int = 300) -> tuple[float, float]:
    """E||W_0||, E||b_0|| of a fresh nn.Linear, by drawing many (torch's own kaiming-uniform init)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(12345)
        w, b = 0.0, 0.0
        for _ in range(draws):
            lin = nn.Linear(in_features, out_features)
            w += float(lin.weight.norm())
            b += float(lin.bias.norm())
    return w / draws, b / draws


def expected_radius(kind: str, diameter: float, n: int, k: int | None = None, p: float | None = None) -> float:
    """The radius that gives an L2 diameter, from the geometry of each region (by hand)."""
    if kind in ("l1", "l2", "k_support", "nuclear") or (kind == "lp" and p <= 2):
        return diameter / 2
    if kind == "linf":
        return diameter / (2 * math.sqrt(n))
    if kind == "lp":
        return diameter / (2 * n ** (0.5 - 1 / p))
    if kind == "k_sparse":
        return diameter / (2 * math.sqrt(k))
    if kind == "simplex":
        return diameter / math.sqrt(2)
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "extra"), [("l2", {}), ("linf", {}), ("l1", {}), ("k_sparse", {"k": 3}),
                                             ("k_support", {"k": 2}), ("nuclear", {}), ("simplex", {}),
                                             ("lp", {"p": 3.0}), ("lp", {"p": 1.5})])
def test_constraints_from_init_radius_from_expected_norm(kind, extra):
    torch.manual_seed(0)
    model = MLP(input_shape=16, widths=(12,), num_classes=5)
    width = 7.0
    before = {n: t.clone() for n, t in model.state_dict().items()}
    rng = torch.get_rng_state()
    cons = constraints_from_init(model, kind, width=width, samples=100, **extra)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is untouched
    for n, t in model.state_dict().items():
        assert torch.equal(t, before[n])  # and so are the live weights
    params = list(model.parameters())
    assert len(cons) == len(params)
    norms = [*sampled_linear_norms(16, 12), *sampled_linear_norms(12, 5)]
    for region, param, mean_norm in zip(cons, params, norms, strict=True):
        assert isinstance(region, Constraint) and region.shape == param.shape
        assert region.name == kind
        assert region.diameter == pytest.approx(2 * width * mean_norm, rel=0.1)
        k = region.k if hasattr(region, "k") else None
        assert region.radius == pytest.approx(expected_radius(kind, 2 * width * mean_norm, param.numel(), k,
                                                              extra.get("p")), rel=0.1)


def test_constraints_from_init_is_per_layer_not_per_shape():
    class Loud(nn.Linear):
        def reset_parameters(self):
            super().reset_parameters()
            with torch.no_grad():
                self.weight.mul_(10.0)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), Loud(8, 8))
    cons = constraints_from_init(model, "l2", width=1.0, samples=50)
    assert cons[2].radius / cons[0].radius == pytest.approx(10.0, rel=0.1)  # same shape, different init
    assert cons[3].radius / cons[1].radius == pytest.approx(1.0, rel=0.15)


def test_constraints_from_init_keeps_batchnorm_stats_and_uses_one_for_zero_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    model.train()
    for _ in range(3):
        model(torch.randn(16, 6) * 3 + 1)
    with torch.no_grad():
        model[1].weight.mul_(2.0)
    before = copy.deepcopy(model.state_dict())
    assert not torch.equal(before["1.running_mean"], torch.zeros(4))
    rng = torch.get_rng_state()
    cons = constraints_from_init(model, "l2", width=5.0)
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name
    names = [n for n, _ in model.named_parameters()]
    by_name = dict(zip(names, cons, strict=True))
    assert by_name["1.bias"].radius == pytest.approx(5.0 * 1.0)  # zero initial norm: uses 1
    assert by_name["1.weight"].radius == pytest.approx(5.0 * math.sqrt(4))  # BN's init (ones), not the live x2


def test_constraints_from_init_handles_layers_without_bias():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2, bias=False))
    cons = constraints_from_init(model, "l2", width=2.0, samples=20)
    assert [c.shape for c in cons] == [p.shape for p in model.parameters()]


def test_constraints_from_init_kind_callable_and_errors():
    torch.manual_seed(0)
    model = MLP(input_shape=6, widths=(5,), num_classes=3)
    seen = []

    def kind(name, param):
        seen.append(name)
        return "nuclear" if param.dim() > 1 else "unconstrained"

    cons = constraints_from_init(model, kind, width=3.0)
    assert seen == [n for n, _ in model.named_parameters()]
    assert [type(c) for c in cons] == [NuclearBall, Unconstrained, NuclearBall, Unconstrained]
    with pytest.raises(ValueError, match="kind"):
        constraints_from_init(model, "l7")
    with pytest.raises((ValueError, TypeError)):
        constraints_from_init(model, lambda n, p: "nope")
    with pytest.raises(ValueError, match="k"):
        constraints_from_init(model, "k_sparse")
    with pytest.raises(ValueError, match="k"):
        constraints_from_init(model, "k_support")
    with pytest.raises(ValueError, match="p"):
        constraints_from_init(model, "lp")
    for width in (0.0, -1.0):
        with pytest.raises(ValueError, match="width"):
            constraints_from_init(model, "l2", width=width)


@pytest.mark.parametrize("kind", ["l1", "l2", "linf", "k_sparse", "k_support", "nuclear", "simplex", "lp"])
def test_make_feasible_puts_every_parameter_inside(kind):
    torch.manual_seed(0)
    model = MLP(input_shape=6, widths=(5,), num_classes=3)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(50.0)
    cons = constraints_from_init(model, kind, width=0.5, k=2, p=3.0)
    assert not all(inside_by_hand(kind, p.detach(), c.radius, k=2, p=3.0) for p, c in zip(model.parameters(), cons,
                                                                                          strict=True))
    make_feasible_(model, cons)
    for p, c in zip(model.parameters(), cons, strict=True):
        assert c.contains(p.detach())
        assert inside_by_hand(kind, p.detach(), c.radius, k=2, p=3.0, rtol=1e-5)
    snapshot = [p.detach().clone() for p in model.parameters()]
    make_feasible_(model, cons)  # already inside: unchanged (up to round-off on the boundary)
    assert all(torch.allclose(a, b, rtol=1e-6, atol=0.0) for a, b in zip(snapshot, model.parameters(), strict=True))
    with pytest.raises(ValueError):
        make_feasible_(model, cons[:-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_constraints_from_init_keeps_cuda_rng_state():
    torch.cuda.init()
    model = MLP(input_shape=6, widths=(5,), num_classes=3).cuda()
    torch.cuda.manual_seed_all(777)
    before = torch.cuda.get_rng_state_all()
    cpu_before = torch.get_rng_state()
    constraints_from_init(model, "l2", width=3.0)
    assert torch.equal(torch.get_rng_state(), cpu_before)
    assert all(torch.equal(a, b) for a, b in zip(before, torch.cuda.get_rng_state_all(), strict=True))


# ---------------------------------------------------------------- 8. SFW

W0 = np.array([[0.1, -0.2, 0.3], [0.0, 0.2, -0.1]])
B0 = np.array([0.05, -0.05])
GRADS = [(np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]), np.array([0.5, -1.5])),
         (np.array([[-0.5, 1.0, 2.0], [1.0, -1.0, 0.0]]), np.array([-2.0, 0.25])),
         (np.array([[0.2, 0.2, -0.3], [-1.0, 0.5, 0.7]]), np.array([1.0, 1.0]))]
R_W, R_B = 1.0, 0.3  # weight in an L2 ball, bias in an L-inf ball


def tiny_linear() -> tuple[nn.Linear, list[Constraint]]:
    lin = nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(W0))
        lin.bias.copy_(torch.from_numpy(B0))
    return lin, [L2Ball((2, 3), R_W), LinfBall((2,), R_B)]


def sfw_by_hand(lr, beta, rescale, step_schedule="constant", momentum_schedule="constant", steps=3):
    theta = [W0.copy(), B0.copy()]
    lmos = [lambda m: -R_W * m / np.linalg.norm(m), lambda m: -R_B * np.sign(m)]
    diameters = [2 * R_W, 2 * R_B * math.sqrt(2)]
    momenta = [None, None]
    etas = []
    for t, grads in enumerate(GRADS[:steps], start=1):
        for i, g in enumerate(grads):
            if momenta[i] is None:
                momenta[i] = g.copy()
            else:
                rho = (1 / (t + 1)) ** (1 / 3) if momentum_schedule == "mokhtari" else 1 - beta
                momenta[i] = (1 - rho) * momenta[i] + rho * g
            v = lmos[i](momenta[i])
            if step_schedule == "decreasing":
                eta = 1 / (t + 1)
            elif rescale == "diameter":
                eta = lr / diameters[i]
            elif rescale == "gradient":
                gap = np.linalg.norm(theta[i] - v)  # gap 0: theta is v already, any eta gives v
                eta = lr * np.linalg.norm(momenta[i]) / gap if gap > 0 else 0.0
            else:
                eta = lr
            etas.append(eta)
            eta = min(max(eta, 0.0), 1.0)
            theta[i] = (1 - eta) * theta[i] + eta * v
    return theta, etas


def run_sfw(opt, params, steps=3):
    for grads in GRADS[:steps]:
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.from_numpy(g.copy())
        opt.step()


@pytest.mark.parametrize("rescale", ["diameter", "gradient", None])
@pytest.mark.parametrize("lr", [0.05, 0.7])
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_sfw_steps_by_hand(rescale, lr, steps):
    lin, cons = tiny_linear()
    params = [lin.weight, lin.bias]
    opt = SFW(params, cons, lr=lr, momentum=0.8, rescale=rescale)
    run_sfw(opt, params, steps)
    (w, b), etas = sfw_by_hand(lr, 0.8, rescale, steps=steps)
    assert np.allclose(npy(lin.weight), w, rtol=1e-12, atol=1e-14)
    assert np.allclose(npy(lin.bias), b, rtol=1e-12, atol=1e-14)
    if rescale == "gradient" and lr == 0.7:
        assert max(etas) > 1  # the clip to [0, 1] was exercised


@pytest.mark.parametrize(("step_schedule", "momentum_schedule"), [("decreasing", "constant"),
                                                                  ("constant", "mokhtari"),
                                                                  ("decreasing", "mokhtari")])
def test_sfw_schedules_by_hand(step_schedule, momentum_schedule):
    lin, cons = tiny_linear()
    params = [lin.weight, lin.bias]
    opt = SFW(params, cons, lr=0.3, momentum=0.9, rescale="diameter", step_schedule=step_schedule,
              momentum_schedule=momentum_schedule)
    run_sfw(opt, params, 3)
    (w, b), _ = sfw_by_hand(0.3, 0.9, "diameter", step_schedule, momentum_schedule)
    assert np.allclose(npy(lin.weight), w, rtol=1e-12, atol=1e-14)
    assert np.allclose(npy(lin.bias), b, rtol=1e-12, atol=1e-14)
    assert opt.state[lin.weight]["step"] == 3


def test_sfw_unconstrained_parameter_takes_momentum_sgd_step():
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=F64))
    lr, beta = 0.2, 0.75
    opt = SFW([p], [Unconstrained((3,))], lr=lr, momentum=beta)
    theta, m = npy(p), None
    for g in ([0.5, 1.0, -1.0], [2.0, 0.0, 1.0], [-1.0, 3.0, 0.5]):
        g = np.array(g)
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        m = g if m is None else beta * m + (1 - beta) * g
        theta = theta - lr * m
        assert np.allclose(npy(p), theta, rtol=1e-12)
    q = nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=F64))  # = torch SGD with dampening = momentum
    sgd = torch.optim.SGD([q], lr=lr, momentum=beta, dampening=beta)
    for g in ([0.5, 1.0, -1.0], [2.0, 0.0, 1.0], [-1.0, 3.0, 0.5]):
        q.grad = torch.tensor(g, dtype=F64)
        sgd.step()
    assert torch.allclose(p, q, rtol=1e-12)


SFW_KINDS = ["l1", "l2", "linf", "lp", "k_sparse", "k_support", "nuclear", "simplex"]


@settings(max_examples=50, deadline=None)
@given(kind=st.sampled_from(SFW_KINDS), seed=SEEDS, lr=st.floats(0.0, 1.0), rescale=st.sampled_from(
       ["diameter", "gradient", None]), momentum=st.floats(0.0, 0.99), schedule=st.sampled_from(["constant",
       "decreasing"]), conv=st.booleans())
def test_sfw_iterates_stay_feasible(kind, seed, lr, rescale, momentum, schedule, conv):
    shape = (2, 3, 2, 2) if conv else (4, 5)
    g = torch.Generator().manual_seed(seed)
    r = 0.1 + 3 * float(torch.rand((), generator=g))
    region = region_for(kind, shape, r, k=3, p=3.0)
    p = nn.Parameter(region.make_feasible(torch.randn(shape, generator=g) * 2))
    opt = SFW([p], [region], lr=lr, momentum=momentum, rescale=rescale, step_schedule=schedule)
    for _ in range(6):
        p.grad = torch.randn(shape, generator=g) * 10 ** float(6 * torch.rand((), generator=g) - 3)
        opt.step()
        assert torch.isfinite(p).all()
        assert region.contains(p.detach(), tol=1e-4)
        assert inside_by_hand(kind, p.detach(), r, k=3, p=3.0, rtol=1e-4)


@pytest.mark.parametrize("how", ["unused", "frozen"])
def test_sfw_skips_parameters_without_gradient_and_keeps_pairing(how):
    a = nn.Parameter(torch.tensor([0.1, 0.2], dtype=F64))
    b = nn.Parameter(torch.tensor([0.3, -0.1, 0.2], dtype=F64))  # gets no gradient
    c = nn.Parameter(torch.tensor([0.01, -0.02, 0.0], dtype=F64))  # same shape as b, very different region
    if how == "frozen":
        b.requires_grad_(False)
    cons = [L2Ball((2,), 1.0), L2Ball((3,), 100.0), LinfBall((3,), 0.05)]
    opt = SFW([a, b, c], cons, lr=0.5, momentum=0.0, rescale=None)
    x = torch.tensor([1.0, -2.0, 3.0], dtype=F64)
    loss = (a.sum() * 2) + (c * x).sum()
    loss.backward()
    assert b.grad is None
    b0, c0 = b.detach().clone(), c.detach().clone()
    opt.step()
    assert torch.equal(b.detach(), b0)
    expected_c = 0.5 * c0 + 0.5 * (-0.05 * torch.sign(x))  # c's own L-inf ball, not b's L2 ball
    assert torch.allclose(c.detach(), expected_c, rtol=1e-12)
    assert b not in opt.state or not opt.state[b]


def small_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(input_shape=6, widths=(8,), num_classes=3)


def mixed_constraints(model: nn.Module) -> list[Constraint]:
    shapes = [p.shape for p in model.parameters()]
    return [KSupportBall(shapes[0], 5, 4.0), LinfBall(shapes[1], 0.5), L2Ball(shapes[2], 3.0),
            Unconstrained(shapes[3])]


def batches(count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(count)]


def train_steps(model, opt, data) -> list[torch.Tensor]:
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(("cls", "options"), [
    (SFW, {"lr": 0.3, "momentum": 0.9, "rescale": "gradient"}),
    (SFW, {"lr": 0.3, "momentum": 0.9, "step_schedule": "decreasing", "momentum_schedule": "mokhtari"}),
    (AdaGradSFW, {"lr": 0.05, "momentum": 0.5}),
    (AdaGradSFW, {"lr": 0.02, "inner_steps": 2}),
], ids=["sfw-gradient", "sfw-decreasing-mokhtari", "adagrad-momentum", "adagrad-inner2"])
def test_state_dict_round_trip_resumes_exactly(cls, options):
    first, second = batches(3, 0), batches(4, 1)
    model = small_model(0)
    cons = mixed_constraints(model)
    make_feasible_(model, cons)
    opt = cls(model.parameters(), cons, **options)
    train_steps(model, opt, first)
    model_buf, opt_buf = io.BytesIO(), io.BytesIO()
    torch.save(model.state_dict(), model_buf)
    torch.save(opt.state_dict(), opt_buf)
    reference = train_steps(model, opt, second)

    opt_buf.seek(0)
    saved = torch.load(opt_buf, weights_only=True)  # tensors and plain values only
    assert len(saved["state"]) == 4
    fresh = small_model(1)
    model_buf.seek(0)
    fresh.load_state_dict(torch.load(model_buf, weights_only=True))
    fresh_opt = cls(fresh.parameters(), mixed_constraints(fresh), **options)
    fresh_opt.load_state_dict(saved)
    resumed = train_steps(fresh, fresh_opt, second)
    assert all(torch.equal(a, b) for a, b in zip(reference, resumed, strict=True))
    assert [type(c) for c in fresh_opt.param_groups[0]["constraints"]] == [KSupportBall, LinfBall, L2Ball,
                                                                          Unconstrained]

    control = small_model(1)  # same weights, optimizer state NOT restored: the test can tell
    model_buf.seek(0)
    control.load_state_dict(torch.load(model_buf, weights_only=True))
    unrestored = train_steps(control, cls(control.parameters(), mixed_constraints(control), **options), second)
    assert not all(torch.equal(a, b) for a, b in zip(reference, unrestored, strict=True))


@pytest.mark.parametrize("lr", [-0.1, 1.5, math.nan, math.inf])
def test_sfw_rejects_lr_outside_unit_interval(lr):
    p = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="lr"):
        SFW([p], [L2Ball((3,))], lr=lr)


def test_sfw_rejects_bad_lr_set_after_construction():
    p = nn.Parameter(torch.full((3,), 0.1))
    opt = SFW([p], [L2Ball((3,))], lr=0.5)
    opt.param_groups[0]["lr"] = 2.0
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    assert torch.equal(p.detach(), torch.full((3,), 0.1))


@pytest.mark.parametrize("cls", [SFW, AdaGradSFW, ProjectedSGD])
def test_optimizers_reject_bad_constraints(cls):
    p, q = nn.Parameter(torch.zeros(2, 3)), nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        cls([p, q], [L2Ball((3, 2)), L2Ball((3,))])
    with pytest.raises(ValueError, match="one constraint per parameter"):
        cls([p, q], [L2Ball((2, 3))])
    with pytest.raises(ValueError, match="one constraint per parameter"):
        cls([p], [L2Ball((2, 3)), L2Ball((3,))])
    with pytest.raises(TypeError, match="Constraint"):
        cls([p, q], [L2Ball((2, 3)), "l2"])
    with pytest.raises(ValueError, match="empty"):
        cls([], [])


def test_sfw_rejects_unknown_options():
    p = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="rescale"):
        SFW([p], [L2Ball((3,))], rescale="norm")
    with pytest.raises(ValueError, match="step_schedule"):
        SFW([p], [L2Ball((3,))], step_schedule="cosine")
    with pytest.raises(ValueError, match="momentum_schedule"):
        SFW([p], [L2Ball((3,))], momentum_schedule="adam")
    with pytest.raises(ValueError, match="momentum"):
        SFW([p], [L2Ball((3,))], momentum=1.0)


# ---------------------------------------------------------------- 9. AdaGrad-SFW

def quadratic_model_step(theta, m, h, lr, vertex):
    """One FW step on Q(y) = <m, y - theta> + ||y - theta||_H^2 / (2 lr) toward ``vertex``, by a scalar search."""
    return quadratic_model_fw(theta, m, h, lr, lambda grad: vertex, inner_steps=1)


def test_adagrad_sfw_one_step_by_hand():
    r, lr, delta = 1.0, 0.5, 1e-8
    theta0 = np.array([0.2, -0.1, 0.3])
    g1, g2 = np.array([1.0, -2.0, 0.5]), np.array([-0.5, 0.3, 2.0])
    p = nn.Parameter(torch.from_numpy(theta0.copy()))
    opt = AdaGradSFW([p], [L2Ball((3,), r)], lr=lr, momentum=0.0, inner_steps=1, delta=delta)

    p.grad = torch.from_numpy(g1.copy())
    opt.step()
    h1 = np.sqrt(g1 * g1) + delta
    theta1 = quadratic_model_step(theta0, g1, h1, lr, -r * g1 / np.linalg.norm(g1))
    assert np.allclose(npy(p), theta1, atol=1e-8)
    assert not np.allclose(theta1, theta0)

    p.grad = torch.from_numpy(g2.copy())
    opt.step()
    h2 = np.sqrt(g1 * g1 + g2 * g2) + delta
    theta2 = quadratic_model_step(theta1, g2, h2, lr, -r * g2 / np.linalg.norm(g2))
    assert np.allclose(npy(p), theta2, atol=1e-8)


def test_adagrad_sfw_more_inner_steps_lower_the_quadratic_model():
    theta0, g = np.array([0.2, -0.1, 0.3, 0.0]), np.array([1.0, -2.0, 0.5, 0.1])
    h = np.abs(g) + 1e-8
    values = []
    for inner in (1, 2, 5, 20):
        p = nn.Parameter(torch.from_numpy(theta0.copy()))
        opt = AdaGradSFW([p], [L1Ball((4,), 1.0)], lr=0.3, inner_steps=inner)
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        y = npy(p)
        values.append(float(g @ (y - theta0) + ((y - theta0) ** 2 * h).sum() / 0.6))
        assert lp_norm(y, 1) <= 1 + 1e-12
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(values))
    assert values[-1] < values[0]


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(SFW_KINDS), seed=SEEDS, lr=st.floats(1e-3, 10.0), inner=st.integers(1, 4))
def test_adagrad_sfw_iterates_stay_feasible(kind, seed, lr, inner):
    shape = (3, 4)
    g = torch.Generator().manual_seed(seed)
    region = region_for(kind, shape, 1.5, k=3, p=3.0)
    p = nn.Parameter(region.make_feasible(torch.randn(shape, generator=g, dtype=F64)))
    opt = AdaGradSFW([p], [region], lr=lr, momentum=0.5, inner_steps=inner)
    for _ in range(5):
        p.grad = torch.randn(shape, generator=g, dtype=F64) * 10 ** float(4 * torch.rand((), generator=g) - 2)
        opt.step()
        assert inside_by_hand(kind, p.detach(), 1.5, k=3, p=3.0, rtol=1e-6)


def test_adagrad_sfw_converges_to_the_constrained_optimum():
    c = torch.tensor([2.0, -1.0, 0.5, 1.0], dtype=F64)
    r = 1.0
    optimum = c * r / c.norm()  # projection of the unconstrained minimizer onto the ball
    p = nn.Parameter(torch.zeros(4, dtype=F64))
    opt = AdaGradSFW([p], [L2Ball((4,), r)], lr=0.5, inner_steps=5)

    def f():
        return float(((p.detach() - c) ** 2).sum())

    start = f()
    for _ in range(200):
        opt.zero_grad()
        ((p - c) ** 2).sum().backward()
        opt.step()
    assert f() < start
    assert f() == pytest.approx(float(((optimum - c) ** 2).sum()), rel=1e-6)
    assert float((p.detach() - optimum).norm()) < 1e-3


# ---------------------------------------------------------------- 10. projected SGD

def test_projected_sgd_steps_by_hand():
    r, lr, beta, wd = 0.8, 0.4, 0.5, 0.1
    theta = np.array([0.3, -0.2, 0.1, 0.0])
    p = nn.Parameter(torch.from_numpy(theta.copy()))
    opt = ProjectedSGD([p], [L1Ball((4,), r)], lr=lr, momentum=beta, weight_decay=wd)
    buf, active = None, 0
    for g in ([1.0, -2.0, 0.5, 0.0], [-0.5, 0.3, 2.0, 1.0], [0.1, 0.1, -0.2, 0.3]):
        g = np.array(g)
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        d = g + wd * theta
        buf = d if buf is None else beta * buf + d
        step = theta - lr * buf
        theta = project_l1_by_hand(step, r)
        active += lp_norm(step, 1) > r
        assert np.allclose(npy(p), theta, atol=1e-12)
    assert active >= 2  # the projection did something


def test_projected_sgd_converges_to_the_ball_optimum():
    c = torch.tensor([2.0, -1.0, 0.5, 1.0], dtype=F64)
    r = 1.0
    p = nn.Parameter(torch.zeros(4, dtype=F64))
    opt = ProjectedSGD([p], [L2Ball((4,), r)], lr=0.05, momentum=0.9)
    for _ in range(200):
        opt.zero_grad()
        ((p - c) ** 2).sum().backward()
        opt.step()
    assert torch.allclose(p.detach(), c * r / c.norm(), atol=1e-8)


@pytest.mark.parametrize("region", [KSupportBall((4,), 2), KSparsePolytope((4,), 2), LpBall((4,), 3.0)], ids=repr)
def test_projected_sgd_refuses_regions_without_projection(region):
    with pytest.raises(ValueError, match="projection"):
        ProjectedSGD([nn.Parameter(torch.zeros(4))], [region])


# ---------------------------------------------------------------- recipes

def test_sfw_setup_builds_feasible_sfw_with_regions_from_init():
    torch.manual_seed(0)
    model = MLP(input_shape=6, widths=(5,), num_classes=3)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100.0)
    opt = sfw_setup("k_sparse", width=1.0, k=2, lr=0.3, rescale="diameter")(model)
    assert isinstance(opt, SFW) and opt.param_groups[0]["lr"] == 0.3 and opt.param_groups[0]["rescale"] == "diameter"
    cons = opt.param_groups[0]["constraints"]
    reference = constraints_from_init(model, "k_sparse", width=1.0, k=2)
    for p, c, ref in zip(model.parameters(), cons, reference, strict=True):
        assert isinstance(c, KSparsePolytope) and c.k == 2
        assert c.radius == pytest.approx(ref.radius)
        assert inside_by_hand("k_sparse", p.detach(), c.radius, k=2, rtol=1e-5)
    with pytest.raises(ValueError, match="k"):
        sfw_setup("k_support")  # k missing: fails when the recipe is made, before any model
    with pytest.raises(ValueError, match="lr"):
        sfw_setup("l2", lr=2.0)


def test_projected_sgd_setup_projects_and_refuses_regions_without_projection_early():
    torch.manual_seed(0)
    model = MLP(input_shape=6, widths=(5,), num_classes=3)
    opt = projected_sgd_setup("l1", width=0.5, lr=0.05)(model)
    assert isinstance(opt, ProjectedSGD)
    for p, c in zip(model.parameters(), opt.param_groups[0]["constraints"], strict=True):
        assert inside_by_hand("l1", p.detach(), c.radius, rtol=1e-6)
    for region in ("k_support", "k_sparse", "lp"):
        with pytest.raises(ValueError, match="projection"):
            projected_sgd_setup(region)


# ---------------------------------------------------------------- 11. with kit.train.fit

@pytest.mark.parametrize(("kind", "rescale"), [("linf", "diameter"), ("k_support", "gradient")])
def test_sfw_trains_digits_with_fit_and_stays_feasible(kind, rescale, device):
    data = load("digits")
    torch.manual_seed(0)
    model = MLP(input_shape=(1, 8, 8), widths=(64,), num_classes=10).to(device)
    cons = constraints_from_init(model, kind, width=10.0, k=0.3)
    make_feasible_(model, cons)
    opt = SFW(model.parameters(), cons, lr=0.1, momentum=0.9, rescale=rescale)
    history = fit(model, data.train, optimizer=opt, epochs=15, batch_size=64, progress=False)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert opt.param_groups[0]["lr"] == 0.1  # fit keeps the optimizer's own learning rate
    assert evaluate(model, data.test)["accuracy"] > 0.85
    for p, c in zip(model.parameters(), cons, strict=True):
        assert c.contains(p.detach(), tol=1e-4)
        assert inside_by_hand(kind, p.detach().cpu(), c.radius, k=c.k if hasattr(c, "k") else None, rtol=1e-4)
