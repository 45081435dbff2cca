"""The fused C++ kernels of kit.frankwolfe against sorting, brute force and the torch implementation.

Each kernel vertex is compared with a sort of |x| (the optimal value of <v, x> over the region) and,
on inputs without ties, entry by entry with the torch path (``kernels.switched_off()``); SFW
trajectories must not depend on which path ran. Inputs with ties, the sample-miss fallback and a
failed build (torch path, with a warning) are covered too.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.frankwolfe import SFW, KSparsePolytope, KSupportBall, L1Ball, L2Ball, LinfBall, kernels

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not kernels.enabled(), reason="no C++ compiler: the torch path is the only path"),
]

SIZES = [1, 5, 1000, 16_383, 16_384, 70_001, 235_200]


def region(kind: str, shape: tuple[int, ...], k: int, r: float):
    if kind in ("k_sparse", "k_support"):
        return {"k_sparse": KSparsePolytope, "k_support": KSupportBall}[kind](shape, k, r)
    return {"l1": L1Ball, "l2": L2Ball, "linf": LinfBall}[kind](shape, r)


def best_value(kind: str, x: torch.Tensor, k: int, r: float) -> float:
    """min <v, x> over the region, from a sort of |x| (independent of both implementations)."""
    a = x.double().abs().sort(descending=True).values
    return -r * {"l1": float(a[0]), "l2": float(a.norm()), "linf": float(a.sum()),
                 "k_sparse": float(a[:k].sum()), "k_support": float(a[:k].norm())}[kind]


def dot(v: torch.Tensor, x: torch.Tensor) -> float:
    return float((v.double() * x.double()).sum())


@pytest.mark.parametrize("kind", ["l1", "l2", "linf", "k_sparse", "k_support"])
@pytest.mark.parametrize("n", SIZES)
def test_kernel_vertex_is_optimal_and_equals_the_torch_vertex(kind, n):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g)  # continuous: no ties, so the optimal vertex is unique
    k = max(1, n // 20)
    c = region(kind, (n,), k, 0.7)
    assert kernels.applies(x, torch.empty_like(x))
    v = c.lmo(x)
    with kernels.switched_off():
        assert not kernels.applies(x, torch.empty_like(x))
        reference = c.lmo(x)
    assert dot(v, x) == pytest.approx(best_value(kind, x, k, 0.7), rel=1e-6)
    if kind in ("l2", "k_support"):
        torch.testing.assert_close(v, reference, rtol=1e-6, atol=1e-7)
    else:
        assert torch.equal(v, reference)


@settings(max_examples=80, deadline=None)
@given(n=st.sampled_from([1, 2, 7, 300, 16_384, 40_000]), levels=st.integers(1, 6), k_frac=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**20), support=st.booleans())
def test_top_k_kernel_with_ties_selects_exactly_k_and_is_optimal(n, levels, k_frac, seed, support):
    """Few distinct values (zeros among them): ties at the threshold; still exactly k entries, first in memory."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-levels, levels + 1, (n,), generator=g).float() / 2
    k = min(n, 1 + int(k_frac * n))
    c = KSupportBall((n,), k, 1.3) if support else KSparsePolytope((n,), k, 1.3)
    v = c.lmo(x)
    kind = "k_support" if support else "k_sparse"
    assert dot(v, x) == pytest.approx(best_value(kind, x, k, 1.3), rel=1e-6, abs=1e-9)
    assert int((v != 0).sum()) == min(k, int((x != 0).sum()))
    assert c.contains(v)
    chosen = (v != 0).nonzero().flatten()
    if chosen.numel():  # among entries tied with the smallest chosen |x|, the first in memory order are taken
        tau = float(x[chosen].abs().min())
        tied = ((x.abs() == tau) & (x != 0)).nonzero().flatten()
        taken = tied[v[tied] != 0]
        assert torch.equal(taken, tied[: taken.numel()])


def test_top_k_kernel_falls_back_when_the_sample_misses():
    """Huge entries hidden between the sampled positions: the sampled bracket fails, the exact path answers."""
    n, k = 70_001, 500
    stride = 8  # the kernel samples every ~n/8192-th entry (a stride coprime with n)
    x = torch.full((n,), 1e-3)
    x[torch.arange(1, n, stride)] = torch.linspace(5.0, 6.0, len(range(1, n, stride)))
    v = KSparsePolytope((n,), k, 1.0).lmo(x)
    expected = torch.zeros(n)
    expected[x.abs().topk(k).indices] = -1.0
    assert torch.equal(v, expected)


def test_l1_kernel_picks_the_first_of_tied_maxima_and_zero_for_zero_input():
    x = torch.tensor([0.5, -2.0, 1.0, 2.0, -2.0])
    assert L1Ball((5,), 3.0).lmo(x).tolist() == [0.0, 3.0, 0.0, 0.0, 0.0]
    assert L1Ball((5,), 3.0).lmo(torch.zeros(5)).tolist() == [0.0] * 5
    assert KSupportBall((5,), 2, 1.0).lmo(torch.zeros(5)).tolist() == [0.0] * 5


def test_momentum_and_gap_kernels_match_torch():
    g = torch.Generator().manual_seed(3)
    m, grad, theta, v = (torch.randn(70_001, generator=g) for _ in range(4))
    expected = m.clone().lerp_(grad, 0.1)
    norm = kernels.momentum_(m, grad, 0.1)
    torch.testing.assert_close(m, expected)
    assert norm == pytest.approx(float(expected.double().norm()), rel=1e-6)
    assert kernels.gap(theta, v) == pytest.approx(float((theta.double() - v.double()).norm()), rel=1e-6)


@pytest.mark.parametrize(("rescale", "momentum_schedule"), [("diameter", "constant"), ("gradient", "constant"),
                                                            ("gradient", "mokhtari"), (None, "constant")])
@pytest.mark.parametrize("kind", ["l1", "l2", "linf", "k_sparse", "k_support"])
def test_sfw_trajectory_does_not_depend_on_the_kernels(kind, rescale, momentum_schedule):
    def run() -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        w = torch.nn.Parameter(torch.randn(40, 500, generator=g) * 0.01)
        target = torch.randn(40, 500, generator=g)
        c = region(kind, tuple(w.shape), 600, 8.0)
        opt = SFW([w], [c], lr=0.3, rescale=rescale, momentum_schedule=momentum_schedule)
        for _ in range(15):
            opt.zero_grad()
            ((w - target) ** 2).sum().backward()
            opt.step()
        return w.detach()

    fused = run()
    with kernels.switched_off():
        reference = run()
    torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-5)


def test_kernels_are_skipped_for_other_dtypes_layouts_and_aliasing():
    x = torch.randn(6, 5)
    assert kernels.applies(x, torch.empty_like(x))
    assert not kernels.applies(x.double(), torch.empty(6, 5, dtype=torch.float64))
    assert not kernels.applies(x.t(), torch.empty(5, 6))  # not contiguous
    assert not kernels.applies(x, x)  # in place would read what it overwrites
    assert not kernels.all_apply([x, x.t()])
    v64 = KSparsePolytope((6, 5), 3, 1.0).lmo(x.t().double().t())  # the torch path serves the rest
    assert int((v64 != 0).sum()) == 3


def test_failed_build_warns_and_leaves_the_torch_path(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_KERNEL_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with pytest.warns(RuntimeWarning, match="kernels not built"):
        assert kernels._build() is None
    assert list(tmp_path.iterdir()) == []  # no half-written library left behind


def test_build_is_cached_by_source_hash(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_KERNEL_DIR", str(tmp_path))
    first = kernels._build()
    assert first is not None and first.parent == tmp_path and first.exists()
    monkeypatch.setenv("CXX", "false")  # a second build would fail: the cached library is reused
    assert kernels._build() == first


@pytest.mark.parametrize("kind", ["l1", "l2", "linf", "k_sparse", "k_support"])
def test_kernels_give_the_same_bits_on_one_and_two_threads(kind):
    """Large tensors run on several OpenMP threads; partial sums are added in block order, so no change."""
    g = torch.Generator().manual_seed(5)
    x, theta, grad = (torch.randn(300_000, generator=g) for _ in range(3))
    c = region(kind, (300_000,), 15_000, 0.9)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            m = x.clone()
            norm = kernels.momentum_(m, grad, 0.1)
            v = c.lmo(m)
            results.append((v, norm, kernels.gap(theta, v)))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0][0], results[1][0])
    assert results[0][1:] == results[1][1:]
