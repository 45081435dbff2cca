"""Neural Parameter Regression (kit.operators) against independent computations: the heat solver against the
closed form of sine modes and their sums, the Burgers solver against Cole-Hopf, residuals on exact and perturbed
solutions, the initial and boundary conditions met by construction, the vmap-batched loss against a loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.operators import (
    NPR,
    PINN,
    Burgers,
    DeepONet,
    Heat,
    LowRankSolution,
    dataset,
    fine_tune,
    predict,
    relative_l2,
    residual,
    train,
)

TIMES = np.array([0.0, 0.01, 0.1, 0.5, 1.0])


# ---------------------------------------------------------------- reference solvers


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.01, 1.0), modes=st.lists(st.tuples(st.integers(1, 20), st.floats(-2, 2)), min_size=1,
                                                   max_size=4), n=st.integers(45, 129))
def test_heat_solver_is_the_closed_form_of_its_sine_modes(alpha, modes, n):
    problem = Heat(alpha)
    x = problem.grid(n)
    exact = sum(a * np.exp(-alpha * (k * math.pi) ** 2 * TIMES)[:, None] * np.sin(k * math.pi * x) for k, a in modes)
    assert np.abs(problem.solve(exact[0], TIMES) - exact).max() < 1e-11


def cole_hopf(x: np.ndarray, t: float, nu: float, a: float, b: float) -> np.ndarray:
    """u = -2 nu phi_x / phi with phi = a + b exp(-4 pi^2 nu t) cos(2 pi x), a solution of viscous Burgers."""
    e = b * math.exp(-4 * math.pi**2 * nu * t)
    return 4 * math.pi * nu * e * np.sin(2 * math.pi * x) / (a + e * np.cos(2 * math.pi * x))


@pytest.mark.parametrize("nu, a, b, n", [(0.01, 1.0, 0.9, 256), (0.01, 1.0, 0.5, 128), (0.05, 1.0, 0.95, 256)])
def test_burgers_solver_matches_cole_hopf_at_several_times(nu, a, b, n):
    problem = Burgers(nu)
    x = problem.grid(n)
    solution = problem.solve(cole_hopf(x, 0.0, nu, a, b), TIMES)
    for i, t in enumerate(TIMES):
        assert np.abs(solution[i] - cole_hopf(x, t, nu, a, b)).max() < 1e-8, t


def test_solvers_keep_mass_and_the_boundary():
    heat, burgers = Heat(0.2), Burgers(0.01)
    u0 = heat.sample(1, 65, seed=3)[0]
    out = heat.solve(u0, TIMES)
    assert np.all(out[:, 0] == 0) and np.all(out[:, -1] == 0)
    v0 = burgers.sample(1, 128, seed=3)[0]
    # periodic viscous Burgers conserves the mean of u
    assert np.allclose(burgers.solve(v0, TIMES).mean(axis=1), v0.mean(), atol=1e-12)


@pytest.mark.parametrize("kind", ["grf", "sines"])
def test_samplers_are_seeded_and_meet_the_boundary(kind):
    heat, burgers = Heat(), Burgers()
    a, b = heat.sample(3, 33, seed=5, kind=kind), heat.sample(3, 33, seed=5, kind=kind)
    assert np.array_equal(a, b) and not np.array_equal(a, heat.sample(3, 33, seed=6, kind=kind))
    assert np.all(a[:, 0] == 0) and np.all(a[:, -1] == 0)
    assert burgers.sample(2, 64, seed=1, kind=kind).shape == (2, 64)
    assert np.abs(burgers.sample(20, 64, seed=1, kind=kind)).max() <= 1.0 + 1e-12


@pytest.mark.parametrize("problem, n", [(Heat(), 33), (Burgers(), 64)])
def test_series_interpolate_the_grid_values(problem, n):
    u0 = problem.sample(1, n, seed=2, modes=6)[0]
    coeffs = problem.coefficients(u0, 12)
    x = torch.tensor(problem.grid(n))
    assert torch.allclose(problem.initial_value(coeffs, x), torch.tensor(u0), atol=1e-12)


# ---------------------------------------------------------------- residuals


def heat_exact(x, t, alpha, k):
    return torch.exp(-alpha * (k * math.pi) ** 2 * t) * torch.sin(k * math.pi * x)


def burgers_exact(x, t, nu, a=1.0, b=0.8):
    e = b * torch.exp(-4 * math.pi**2 * nu * t)
    return 4 * math.pi * nu * e * torch.sin(2 * math.pi * x) / (a + e * torch.cos(2 * math.pi * x))


def residual_of(problem, fn):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, generator=gen, dtype=torch.float64).requires_grad_(True)
    t = torch.rand(200, generator=gen, dtype=torch.float64).requires_grad_(True)
    u = fn(x, t)
    u_x, u_t = torch.autograd.grad(u.sum(), (x, t), create_graph=True)
    (u_xx,) = torch.autograd.grad(u_x.sum(), x)
    return problem.residual(u, u_t, u_x, u_xx).detach()


def test_residuals_vanish_on_exact_solutions_and_not_on_perturbed_ones():
    heat, burgers = Heat(0.1), Burgers(0.01)
    assert residual_of(heat, lambda x, t: heat_exact(x, t, 0.1, 3)).abs().max() < 1e-10
    perturbed = residual_of(heat, lambda x, t: heat_exact(x, t, 0.1, 3) + 0.1 * t * torch.sin(math.pi * x))
    assert perturbed.abs().max() > 0.05
    assert residual_of(burgers, lambda x, t: burgers_exact(x, t, 0.01)).abs().max() < 1e-10
    perturbed = residual_of(burgers, lambda x, t: burgers_exact(x, t, 0.01) + 0.1 * t * torch.cos(2 * math.pi * x))
    assert perturbed.abs().max() > 0.05


# ---------------------------------------------------------------- operators


@pytest.fixture(params=["heat", "burgers"])
def problem(request):
    return Heat(0.1) if request.param == "heat" else Burgers(0.01)


@pytest.mark.parametrize("kind", ["npr", "deeponet", "pinn"])
def test_every_operator_meets_the_initial_condition_exactly(problem, kind):
    torch.manual_seed(0)
    operator = {"npr": NPR, "deeponet": DeepONet, "pinn": PINN}[kind](problem, modes=8) if kind == "pinn" else \
        {"npr": NPR, "deeponet": DeepONet}[kind](problem, sensors=16, modes=8)
    n = 33 if isinstance(problem, Heat) else 32
    u0 = problem.sample(1, n, seed=1, modes=4)[0]
    out = predict(operator, u0, [0.0, 0.3, 0.7])
    assert np.abs(out[0] - u0).max() < 1e-6  # float32 network, float64 data
    if isinstance(problem, Heat):
        assert np.abs(out[:, [0, -1]]).max() == 0.0
        coeffs = problem.coefficients(u0, 8).float()[None]
        ends = operator(coeffs, torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.9]]))
        assert ends.abs().max() < 1e-6
    else:  # periodic in x by construction
        coeffs = problem.coefficients(u0, 8).float()[None]
        x = torch.tensor([[0.1, 0.35]])
        t = torch.tensor([[0.4, 0.8]])
        assert torch.allclose(operator(coeffs, x, t), operator(coeffs, x + 1.0, t), atol=1e-5)


def test_the_vmap_batched_loss_equals_a_loop_over_initial_conditions(problem):
    torch.manual_seed(0)
    npr = NPR(problem, sensors=16, modes=8, width=16, rank=3, hidden=(32,))
    n = 33 if isinstance(problem, Heat) else 32
    coeffs = dataset(npr, problem.sample(4, n, seed=0, modes=4)).tensors[0]
    gen = torch.Generator().manual_seed(1)
    x, t = torch.rand(4, 50, generator=gen), torch.rand(4, 50, generator=gen)
    batched = residual(npr, coeffs, x.clone().requires_grad_(True), t.clone().requires_grad_(True)).pow(2).mean()
    grads = torch.autograd.grad(batched, list(npr.hyper.parameters()))
    looped = sum(residual(npr, coeffs[i:i + 1], x[i:i + 1].clone().requires_grad_(True),
                          t[i:i + 1].clone().requires_grad_(True)).pow(2).mean() for i in range(4)) / 4
    grads_loop = torch.autograd.grad(looped, list(npr.hyper.parameters()))
    assert torch.allclose(batched, looped, rtol=1e-5)
    for a, b in zip(grads, grads_loop, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_low_rank_layers_are_u_v_transpose():
    torch.manual_seed(0)
    net = LowRankSolution(2, width=8, rank=2, depth=1)
    h = torch.randn(5, 8)
    w = net.u[0] @ net.v[0].T
    assert torch.linalg.matrix_rank(w) == 2
    assert torch.allclose((h @ net.v[0]) @ net.u[0].T, h @ w.T, atol=1e-6)


def test_npr_reports_its_parameter_counts():
    npr = NPR(Heat(), sensors=16, modes=8, width=16, rank=3, depth=2, hidden=(32,))
    # per solution: input 2*16+16, two low-rank layers 2*(16*3*2+16), output 16+1
    assert npr.parameter_counts()["regressed_per_solution"] == 48 + 2 * (96 + 16) + 17
    assert npr.parameter_counts()["trained"] == (16 * 32 + 32) + (32 * 289 + 289)


def test_solution_blocks_split_the_regressed_parameters_layer_by_layer():
    npr = NPR(Heat(), sensors=16, modes=8, width=16, rank=3, depth=2, hidden=(32,))
    blocks = npr.solution_blocks()
    assert list(blocks) == ["input layer", "U1", "V1", "b1", "U2", "V2", "b2", "output layer"]
    assert blocks == {"input layer": 48, "U1": 48, "V1": 48, "b1": 16, "U2": 48, "V2": 48, "b2": 16,
                      "output layer": 17}
    assert sum(blocks.values()) == npr.regressed
    pinn = PINN(Burgers(0.01), modes=8, width=16, rank=3, depth=2)
    assert sum(pinn.solution_blocks().values()) == pinn.theta.numel()
    assert DeepONet(Heat(), sensors=16, modes=8).solution_blocks() == {}


def test_a_resumed_training_ends_where_an_uninterrupted_one_does(tmp_path):
    heat = Heat(0.1)
    data = heat.sample(8, 33, seed=0, modes=3)

    def run(folder):
        torch.manual_seed(0)
        npr = NPR(heat, sensors=8, modes=6, width=8, rank=2, hidden=(16,))
        history = train(npr, data, epochs=3, batch_size=4, collocation=32, checkpoint_dir=folder, progress=False)
        return npr, history

    a, ha = run(tmp_path / "a")
    run(tmp_path / "b")
    (tmp_path / "b" / "operator-003.pt").unlink()
    b, hb = run(tmp_path / "b")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert ha["train_loss"] == hb["train_loss"]


def test_fine_tuning_starts_from_the_regressed_parameters():
    torch.manual_seed(0)
    heat = Heat(0.1)
    npr = NPR(heat, sensors=8, modes=6, width=8, rank=2, hidden=(16,))
    u0 = heat.sample(1, 33, seed=4, modes=3)[0]
    pinn, history = fine_tune(npr, u0, steps=1, lr=1e-12)
    assert np.allclose(predict(pinn, u0, TIMES), predict(npr, u0, TIMES), atol=1e-6)
    assert len(history) == 1


def test_fine_tuning_only_the_factors_leaves_every_other_parameter_alone():
    torch.manual_seed(0)
    heat = Heat(0.1)
    npr = NPR(heat, sensors=8, modes=6, width=8, rank=2, hidden=(16,))
    u0 = heat.sample(1, 33, seed=4, modes=3)[0]
    start = npr.parameters_for(heat.coefficients(u0, 6).float()[None])[0].detach()
    tuned, _ = fine_tune(npr, u0, steps=5, lr=1e-2, factors_only=True)
    mask = tuned.factor_mask().bool()
    # width 8, rank 2, depth 2: four factor matrices of 8 x 2
    assert int(mask.sum()) == 4 * 16
    assert torch.equal(tuned.theta.detach()[~mask], start[~mask])
    assert not torch.equal(tuned.theta.detach()[mask], start[mask])


# ---------------------------------------------------------------- bad input


def test_bad_input_is_refused_with_the_parameter_named():
    with pytest.raises(ValueError, match="alpha must lie"):
        Heat(0.0)
    with pytest.raises(ValueError, match="nu must lie"):
        Burgers(-0.01)
    with pytest.raises(ValueError, match="rank must lie"):
        NPR(Heat(), rank=0)
    with pytest.raises(ValueError, match="vanish at both ends"):
        Heat().solve(np.ones(33), [0.1])
    with pytest.raises(ValueError, match="non-finite"):
        Burgers().solve(np.full(32, np.nan), [0.1])
    with pytest.raises(ValueError, match="must have 33 values"):
        Heat().check_initial(np.zeros(32), 33)
    with pytest.raises(ValueError, match="times >= 0"):
        Burgers().solve(np.zeros(32), [-0.1])
    npr = NPR(Heat(), sensors=40, modes=8)
    with pytest.raises(ValueError, match="fewer than the operator's 40 sensors"):
        dataset(npr, Heat().sample(2, 33))
    npr.t_max = 1.0
    with pytest.warns(RuntimeWarning, match="outside the trained range"):
        predict(npr, Heat().sample(1, 65)[0], [0.5, 2.0])
    with pytest.raises(ValueError, match="shape"):
        relative_l2(np.zeros(3), np.zeros(4))


def test_the_pinn_baseline_trains_npr_s_solution_network_on_each_initial_condition(monkeypatch):
    from kit.recipes import operators as ox

    monkeypatch.setitem(ox.SETTINGS["smoke"], "pinn_count", 2)
    monkeypatch.setitem(ox.SETTINGS["smoke"], "pinn_steps", 3)
    row = ox.pinn_baseline("heat", "smoke")
    assert row["kind"] == "pinn" and len(row["errors"]) == 2 and row["steps"] == 3
    assert row["trained"] == ox.build("npr", "heat", "smoke").regressed  # the same network, its own parameters
    assert row["mean"] == pytest.approx(np.mean(row["errors"])) and row["max"] == max(row["errors"])
