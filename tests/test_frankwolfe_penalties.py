"""Penalty baselines against autograd, the proximal objective and hand-computed SGD steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.frankwolfe.penalties import PENALTIES, PenalizedSGD, penalty_prox, penalty_subgradient, penalty_value

SHAPES = [(3, 4), (4, 2), (2, 3, 2, 2)]
F64 = torch.float64


def numpy_penalty(name: str, w: np.ndarray) -> float:
    """The penalties written independently in numpy."""
    m = w.reshape(w.shape[0], -1)
    if name == "l1":
        return float(np.abs(m).sum())
    if name == "group_lasso":
        return float(np.sqrt((m**2).sum(axis=1)).sum())
    return float(np.linalg.svd(m, compute_uv=False).sum())


@pytest.mark.parametrize("name", PENALTIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_value_matches_numpy_and_subgradient_matches_autograd(name, shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=F64)  # generic: no kinks
    assert float(penalty_value(name, w)) == pytest.approx(numpy_penalty(name, w.numpy()), rel=1e-10)
    x = w.clone().requires_grad_(True)
    penalty_value(name, x).backward()
    torch.testing.assert_close(penalty_subgradient(name, w), x.grad)


def test_subgradient_at_kinks_is_a_subgradient():
    w = torch.tensor([[0.0, 2.0], [0.0, 0.0]], dtype=F64)
    assert penalty_subgradient("l1", w).tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert penalty_subgradient("group_lasso", w).tolist() == [[0.0, 1.0], [0.0, 0.0]]
    # rank one: the subgradient u v^T of the nuclear norm, nothing from the null space
    torch.testing.assert_close(penalty_subgradient("nuclear", w), torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=F64))


def test_vectors_are_not_penalized():
    b = torch.randn(5, dtype=F64)
    for name in PENALTIES:
        assert float(penalty_value(name, b)) == 0.0
        assert torch.equal(penalty_subgradient(name, b), torch.zeros_like(b))
        assert torch.equal(penalty_prox(name, b, 0.3), b)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(PENALTIES), shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**20),
       t=st.floats(0.0, 2.0))
def test_prox_minimizes_the_proximal_objective(name, shape, seed, t):
    """No random perturbation of the prox beats it on 0.5 ||y - w||^2 + t * penalty(y) (numpy objective)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g, dtype=F64)
    y = penalty_prox(name, w, t).numpy()
    wn = w.numpy()

    def objective(z: np.ndarray) -> float:
        return 0.5 * float(((z - wn) ** 2).sum()) + t * numpy_penalty(name, z)

    best = objective(y)
    rng = np.random.default_rng(seed)
    for scale in (1e-1, 1e-3):
        for _ in range(30):
            assert objective(y + scale * rng.standard_normal(y.shape)) >= best - 1e-12
    assert objective(y) <= objective(wn) + 1e-12


def test_l1_prox_is_the_soft_threshold():
    w = torch.tensor([[1.5, -0.2], [-3.0, 0.4]], dtype=F64)
    assert penalty_prox("l1", w, 0.5).tolist() == [[1.0, 0.0], [-2.5, 0.0]]


def test_penalized_sgd_steps_by_hand():
    torch.manual_seed(0)
    w0 = torch.randn(3, 4, dtype=F64)
    g = torch.randn(3, 4, dtype=F64)
    for prox in (False, True):
        w = torch.nn.Parameter(w0.clone())
        opt = PenalizedSGD([w], lr=0.1, penalty="l1", strength=0.05, prox=prox, momentum=0.9)
        w.grad = g.clone()
        opt.step()
        if prox:
            expected = w0 - 0.1 * g
            expected = torch.sign(expected) * (expected.abs() - 0.1 * 0.05).clamp_min(0)
        else:
            expected = w0 - 0.1 * (g + 0.05 * torch.sign(w0))
        torch.testing.assert_close(w.detach(), expected)


def test_prox_sgd_makes_exact_zeros_and_subgradient_sgd_does_not():
    torch.manual_seed(0)
    w0 = torch.randn(20, 20) * 0.01  # every |w| is below the threshold lr * strength = 0.1
    for prox, zeros in ((True, 400), (False, 0)):
        w = torch.nn.Parameter(w0.clone())
        opt = PenalizedSGD([w], lr=0.1, penalty="l1", strength=1.0, prox=prox)
        w.grad = torch.zeros_like(w)
        opt.step()
        assert int((w == 0).sum()) == zeros


def test_bad_input():
    w = torch.nn.Parameter(torch.randn(2, 2))
    with pytest.raises(ValueError, match="penalty"):
        PenalizedSGD([w], penalty="l3")
    with pytest.raises(ValueError, match="strength"):
        PenalizedSGD([w], strength=-1.0)
    with pytest.raises(TypeError, match="prox"):
        PenalizedSGD([w], prox="yes")
    with pytest.raises(ValueError, match="threshold"):
        penalty_prox("l1", w, -0.1)
