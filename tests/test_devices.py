"""The device rule (data, masks and metrics follow the model; nothing moves a user's model unasked) and the
GPU hot path (no host synchronisation in an SFW step, a masked training step or an FL round's server side).

Every test here runs on the suite's device (the ``device`` fixture: CUDA on a GPU machine); the ones that
count host synchronisations need CUDA and are skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import pytest
import torch
from by_hand import project_l1_by_hand, project_simplex_by_hand, quadratic_model_fw
from torch import nn
from torch.utils.data import TensorDataset

import kit
from kit import pruning
from kit.budget import count_kernel_ops, device_for, model_device, reads_are_free
from kit.federated import ExpGuard, aggregate, attack
from kit.frankwolfe import (
    SFW,
    AdaGradSFW,
    NuclearBall,
    ProjectedSGD,
    SpectralKSupportBall,
    constraints_from_init,
    kernels,
    sfw_setup,
)
from kit.frankwolfe import constraints as constraints_mod
from kit.frankwolfe import optimizers as optimizers_mod
from kit.frankwolfe import structured as structured_mod
from kit.frankwolfe.regions import KINDS, build
from kit.models import MLP
from kit.train import Callback, evaluate, fit, step_kernels

pytestmark = pytest.mark.usefixtures("one_thread")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="counts CUDA host synchronisations")


def blobs(n: int = 96, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 6, generator=g) + 2.0 * nn.functional.one_hot(y, 6).float()
    return TensorDataset(x, y)


# ---------------------------------------------------------------- the device rule

def test_model_device_and_device_for():
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no tensors: the CPU
    norm_only = nn.BatchNorm1d(3, affine=False)  # buffers only
    assert model_device(norm_only) == norm_only.running_mean.device
    assert device_for(nn.Linear(2, 2), "cpu") == torch.device("cpu")
    assert reads_are_free(torch.zeros(2)) and reads_are_free(torch.device("cpu"))
    assert not reads_are_free(torch.zeros(2, device="meta"))  # any device but the CPU keeps values there
    with pytest.raises(ValueError, match="cpu"):
        device_for(nn.Linear(2, 2), "tpu")


def test_kit_device_variable_picks_the_default_and_is_checked(monkeypatch):
    monkeypatch.setenv("KIT_DEVICE", "cpu")
    assert kit.get_device() == torch.device("cpu")
    assert kit.get_device("cpu") == torch.device("cpu")  # an argument still wins
    monkeypatch.setenv("KIT_DEVICE", "abacus")
    with pytest.raises(ValueError, match="KIT_DEVICE"):
        kit.get_device()


def test_fit_and_evaluate_follow_the_model_and_never_move_it(device):
    data = blobs()
    torch.manual_seed(0)
    model = MLP(6, (16,), 3).to(device)
    fit(model, data, epochs=3, lr=0.1, batch_size=16, progress=False)  # CPU data, model on the device
    assert {p.device.type for p in model.parameters()} == {device.type}
    acc = evaluate(model, data)["accuracy"]
    with torch.no_grad():
        x, y = data.tensors
        expected = (model(x.to(device)).argmax(1).cpu() == y).double().mean().item()
    assert acc == pytest.approx(expected, abs=1e-12) and acc > 0.8
    cpu_model = MLP(6, (16,), 3)
    fit(cpu_model, data, epochs=1, progress=False)  # on a GPU machine too: a CPU model stays on the CPU
    assert {p.device.type for p in cpu_model.parameters()} == {"cpu"}


def test_train_loss_and_accuracy_read_once_per_epoch_match_the_steps(device):
    """The epoch's loss and accuracy, summed on the device, are the step-weighted means of each step's numbers."""
    data = blobs(50)
    torch.manual_seed(1)
    model = MLP(6, (8,), 3).to(device)
    seen: list[tuple[float, int, int]] = []

    class Steps(Callback):
        def after_step(self, state):
            y = state.batch[1]
            seen.append((state.loss, int((state.output.argmax(1) == y).sum()), len(y)))

    history = fit(model, data, epochs=1, lr=0.05, batch_size=16, progress=False, callbacks=[Steps()])
    n = sum(k for _, _, k in seen)
    assert n == 50 and len(seen) == 4
    assert history.last("train_loss") == pytest.approx(sum(loss * k for loss, _, k in seen) / n, rel=1e-12)
    assert history.last("train_accuracy") == pytest.approx(sum(c for _, c, _ in seen) / n, abs=1e-12)


def test_non_finite_loss_is_caught_on_the_device_too(device):
    class Blows(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 3)

        def forward(self, x):
            return self.lin(x) * float("inf")

    with pytest.raises(FloatingPointError, match=r"loss became nan at step 0 \(epoch 0\)"):
        fit(Blows().to(device), blobs(32), lr=0.1, batch_size=8, progress=False)


# the LMOs on the device against an independent float64 computation on the CPU
def _vertex_by_hand(kind: str, x: torch.Tensor, r: float, k: int) -> torch.Tensor:
    x = x.double().cpu().reshape(-1)
    if kind == "l2":
        v = -r * x / x.norm()
    elif kind == "linf":
        v = -r * torch.sign(x)
    elif kind == "l1":
        v = torch.zeros_like(x)
        i = int(x.abs().argmax())
        v[i] = -r * math.copysign(1.0, float(x[i]))
    elif kind == "lp":  # p = 3, q = 3/2: Hoelder's equality case
        v = -r * torch.sign(x) * (x.abs() / x.norm(p=1.5)) ** 0.5
    elif kind == "simplex":
        v = torch.zeros_like(x)
        v[int(x.argmin())] = r
    else:
        top = x.abs().sort(descending=True).indices[:k]
        v = torch.zeros_like(x)
        if kind == "k_sparse":
            v[top] = -r * torch.sign(x[top])
        else:
            v[top] = -r * x[top] / x[top].norm()
    return v


@pytest.fixture(params=["native", "accelerator path"])
def lmo_path(request, monkeypatch) -> str:
    """'accelerator path' runs the code a GPU runs (values kept on the device) wherever the suite is."""
    if request.param == "accelerator path":
        monkeypatch.setattr(constraints_mod, "reads_are_free", lambda x: False)
        monkeypatch.setattr(optimizers_mod, "reads_are_free", lambda x: False)
        monkeypatch.setattr(structured_mod, "reads_are_free", lambda x: False)
        monkeypatch.setattr(kernels, "applies", lambda x, out: False)
        monkeypatch.setattr(kernels, "all_apply", lambda tensors: False)
    return request.param


@pytest.mark.parametrize("kind", ["l2", "linf", "l1", "k_sparse", "k_support", "simplex", "lp"])
@pytest.mark.parametrize("n", [40, 70_000])  # both sides of the sampled-threshold path on the CPU
def test_lmo_on_the_device_matches_the_vertex_by_hand(kind, n, device, lmo_path):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g)
    k, r = max(1, n // 20), 1.7
    region = build(kind, torch.Size((n,)), r, k=k, p=3.0)
    got = region.lmo(x.to(device))
    assert got.device.type == device.type
    torch.testing.assert_close(got.double().cpu(), _vertex_by_hand(kind, x, r, k), rtol=1e-5, atol=1e-6)


def _sfw_by_hand(start: nn.Module, regions: list, grads: list, lr: float, momentum: float) -> list[torch.Tensor]:
    """SFW with gradient rescaling in float64, from the definition: m <- (1 - rho) m + rho g (m = g first),
    v = LMO(m), eta = clip(lr ||m|| / ||theta - v||, 0, 1), theta <- (1 - eta) theta + eta v."""
    thetas = [p.detach().double().clone() for p in start.parameters()]
    moms: list[torch.Tensor | None] = [None] * len(thetas)
    rho = 1 - momentum
    for step in grads:
        for i, (theta, grad, region) in enumerate(zip(thetas, step, regions, strict=True)):
            g = grad.double()
            moms[i] = g.clone() if moms[i] is None else (1 - rho) * moms[i] + rho * g
            v = _vertex_by_hand(region.name, moms[i], region.radius, getattr(region, "k", 1)).view_as(theta)
            gap = float((theta - v).norm())
            eta = min(max(lr * float(moms[i].norm()) / gap, 0.0), 1.0) if gap > 0 else 0.0
            thetas[i] = (1 - eta) * theta + eta * v
    return thetas


@pytest.mark.parametrize("kind", ["l2", "linf", "l1", "k_sparse", "k_support"])
def test_sfw_steps_on_the_device_match_sfw_by_hand(kind, device, lmo_path):
    """Three SFW steps with gradient rescaling (on an accelerator the step sizes stay on the device) against
    the same steps written out in float64."""
    g = torch.Generator().manual_seed(3)
    grads = [[torch.randn(5, 6, generator=g), torch.randn(5, generator=g)] for _ in range(3)]
    torch.manual_seed(0)
    start = nn.Linear(6, 5)
    regions = constraints_from_init(start, kind, width=2.0, k=0.3)
    model = copy.deepcopy(start).to(device)
    opt = SFW(model.parameters(), regions, lr=0.3, momentum=0.9, rescale="gradient")
    for step in grads:
        for p, grad in zip(model.parameters(), step, strict=True):
            p.grad = grad.to(device)
        opt.step()
    expected = _sfw_by_hand(start, regions, grads, lr=0.3, momentum=0.9)
    assert any(float((e - p.detach()).abs().max()) > 1e-2 for e, p in zip(expected, start.parameters(), strict=True))
    for got, want in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(got.detach().double().cpu(), want, rtol=1e-5, atol=1e-6)


def _matrix_with_spectrum(spectrum: list[float], rows: int, cols: int) -> tuple[torch.Tensor, ...]:
    """U diag(s) V^T with orthonormal U, V drawn at random and the given singular values s (float64)."""
    g = torch.Generator().manual_seed(len(spectrum))
    u = torch.linalg.qr(torch.randn(rows, len(spectrum), generator=g, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(cols, len(spectrum), generator=g, dtype=torch.float64)).Q
    s = torch.tensor(spectrum, dtype=torch.float64)
    return (u * s) @ v.T, u, s, v


@pytest.mark.parametrize("kind, k", [("nuclear", 1), ("spectral_k_support", 2), ("spectral_k_support", 5)])
def test_spectral_lmos_on_the_device_match_the_vertex_from_the_factors(kind, k, device, lmo_path):
    """-r U_k S_k V_k^T / ||S_k|| from the matrix's known factors (each singular value a quarter of the one before),
    and the zero vertex for the zero matrix."""
    a, u, s, v = _matrix_with_spectrum([10.0 * 0.25**i for i in range(25)], 30, 50)
    region = build(kind, a.shape, 1.5, k=k)
    want = -1.5 * (u[:, :k] * s[:k]) @ v[:, :k].T / s[:k].norm()
    got = region.lmo(a.to(device))
    assert got.device.type == device.type
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-9)
    assert float(region.lmo(torch.zeros(30, 50, dtype=torch.float64, device=device)).abs().max()) == 0.0


@pytest.mark.parametrize("kind, k", [("nuclear", 1), ("spectral_k_support", 2)])
def test_spectral_lmos_on_the_device_sharpen_over_warm_started_calls(kind, k, device):
    """On an accelerator each call spends a fixed number of iterations; starting from the last call's basis,
    calls on a slowly separating spectrum (ratio 0.9 after the k-th value) reach the exact vertex."""
    a, u, s, v = _matrix_with_spectrum([5.0, 4.5, 4.05, 3.6] + [3.0 * 0.9**i for i in range(26)], 30, 50)
    region = NuclearBall(a.shape, 1.5, power_iters=1) if kind == "nuclear" else SpectralKSupportBall(
        a.shape, k, 1.5, power_iters=1)
    want = -1.5 * (u[:, :k] * s[:k]) @ v[:, :k].T / s[:k].norm()
    with pytest.MonkeyPatch.context() as patch:  # the accelerator path wherever the suite runs
        patch.setattr(constraints_mod, "reads_are_free", lambda x: False)
        patch.setattr(structured_mod, "reads_are_free", lambda x: False)
        errors = [float((region.lmo(a.to(device)).cpu() - want).abs().max()) for _ in range(80)]
    assert errors[0] > 1e-2 and errors[-1] < 1e-5
    assert errors[-1] < errors[40] < errors[10] < errors[0]


@pytest.mark.parametrize("kind", ["l1", "l2", "linf", "simplex"])
@pytest.mark.parametrize("scale", [0.02, 3.0])  # inside the ball (not the simplex) and far outside
def test_projections_on_the_device_match_the_projection_by_hand(kind, scale, device, lmo_path):
    x = torch.randn(50, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * scale
    r = 1.7
    got = build(kind, torch.Size((50,)), r).project(x.to(device))
    a = x.numpy()
    expected = {"l1": lambda: project_l1_by_hand(a, r), "simplex": lambda: project_simplex_by_hand(a, r),
                "l2": lambda: a * min(1.0, r / np.linalg.norm(a)), "linf": lambda: np.clip(a, -r, r)}[kind]()
    assert got.device.type == device.type
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-9, atol=1e-12)


def test_adagrad_sfw_on_the_device_matches_adagrad_fw_by_hand(device, lmo_path):
    """Three AdaGrad-SFW steps of four inner Frank-Wolfe steps each in the L1 ball (on an accelerator the step
    sizes stay on the device and every inner step runs) against line searches done by a scalar minimizer."""
    g = torch.Generator().manual_seed(2)
    theta = 0.1 * torch.randn(12, generator=g, dtype=torch.float64)
    grads = [torch.randn(12, generator=g, dtype=torch.float64) for _ in range(3)]
    r, lr, beta, delta = 1.0, 0.2, 0.5, 1e-8
    p = nn.Parameter(theta.clone().to(device))
    opt = AdaGradSFW([p], [build("l1", p.shape, r)], lr=lr, momentum=beta, inner_steps=4, delta=delta)

    def l1_vertex(x):
        v = np.zeros_like(x)
        i = int(np.abs(x).argmax())
        v[i] = -r * np.sign(x[i])
        return v

    want, m, squares = theta.numpy(), None, np.zeros(12)
    for grad in grads:
        p.grad = grad.to(device)
        opt.step()
        a = grad.numpy()
        squares = squares + a * a
        m = a if m is None else beta * m + (1 - beta) * a
        want = quadratic_model_fw(want, m, np.sqrt(squares) + delta, lr, l1_vertex, inner_steps=4)
    assert np.abs(want - theta.numpy()).max() > 0.1
    np.testing.assert_allclose(p.detach().cpu().numpy(), want, rtol=1e-7, atol=1e-9)


def _second_meta_step_kernels(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, int]:
    """The kernels of an optimizer's second step on a ``meta`` model with random gradients (the first makes
    the optimizer's state); a read on the host raises."""

    def step():
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt.step()

    step()
    return count_kernel_ops(step)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rescale", ["gradient", "diameter"])
def test_sfw_steps_in_every_region_read_nothing_on_the_host(kind, rescale):
    """SFW on the ``meta`` device (any read on the host raises), every region kind, both rescalings."""
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8)).to("meta")
    regions = [build(kind, p.shape, 1.0, k=1, p=3.0) for p in model.parameters()]
    opt = SFW(model.parameters(), regions, lr=0.1, momentum=0.9, rescale=rescale)
    assert _second_meta_step_kernels(model, opt)


@pytest.mark.parametrize("optimizer", ["adagrad_sfw", "projected_sgd"])
@pytest.mark.parametrize("kind", ["l1", "l2", "linf", "simplex"])
def test_adagrad_sfw_and_projected_sgd_steps_read_nothing_on_the_host(optimizer, kind):
    """Both optimizers' steps on the ``meta`` device, so on any machine: any read on the host raises."""
    model = nn.Linear(6, 3).to("meta")
    regions = [build(kind, p.shape, 1.0) for p in model.parameters()]
    opt = (AdaGradSFW(model.parameters(), regions, lr=0.1, momentum=0.5) if optimizer == "adagrad_sfw"
           else ProjectedSGD(model.parameters(), regions, lr=0.1, momentum=0.9))
    counts = _second_meta_step_kernels(model, opt)
    assert counts and all(p.device.type == "meta" for p in model.parameters())


# ---------------------------------------------------------------- no host syncs on CUDA

class _NoSync:
    """Any host synchronisation inside raises (CUDA's sync debug mode)."""

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")


def _third_step_under_no_sync(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    """Two training steps on a CUDA model (the first creates the optimizer's state), then a third in which
    any host synchronisation raises."""
    x, y = torch.rand(64, 1, 28, 28, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    for watched in (False, False, True):
        with _NoSync() if watched else contextlib.nullcontext():
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()


@needs_cuda
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "unconstrained"])
@pytest.mark.parametrize("rescale", ["gradient", "diameter"])
def test_sfw_step_has_no_host_sync(kind, rescale):
    torch.manual_seed(0)
    model = MLP((1, 28, 28), (300, 100), 10).cuda()
    opt = sfw_setup(kind, width=10.0, lr=0.1, rescale=rescale, k=0.05, p=3.0)(model)
    _third_step_under_no_sync(model, opt)


@needs_cuda
@pytest.mark.parametrize("optimizer", ["adagrad_sfw", "projected_sgd"])
def test_adagrad_sfw_and_projected_sgd_steps_have_no_host_sync(optimizer):
    torch.manual_seed(0)
    model = MLP((1, 28, 28), (300, 100), 10).cuda()
    regions = [build("l1", p.shape, 50.0) for p in model.parameters()]
    opt = (AdaGradSFW(model.parameters(), regions, lr=0.1, momentum=0.5) if optimizer == "adagrad_sfw"
           else ProjectedSGD(model.parameters(), regions, lr=0.1, momentum=0.9))
    _third_step_under_no_sync(model, opt)


@needs_cuda
def test_masked_training_steps_in_fit_have_no_host_sync():
    torch.manual_seed(0)
    model = MLP(6, (32, 32), 3).cuda()
    pruning.apply_masks(model, pruning.global_magnitude_masks(model, 0.8))
    steps = 6

    class Watch(Callback):
        # from the second step (the first checks the targets) to the last; fit reads its numbers after the epoch
        def before_step(self, state):
            if state.step == 1:
                torch.cuda.set_sync_debug_mode("error")

        def after_step(self, state):
            if state.step == steps - 1:
                torch.cuda.set_sync_debug_mode("default")

    try:
        fit(model, blobs(16 * steps), epochs=1, lr=0.05, batch_size=16, progress=False, callbacks=[Watch()])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert pruning.sparsity_report(model).sparsity == pytest.approx(0.8, abs=0.01)


@needs_cuda
@pytest.mark.parametrize("defence", ["mean", "median", "trimmed_mean", "geometric_median"])
def test_fl_server_aggregation_has_no_host_sync(defence):
    g = torch.Generator().manual_seed(0)
    honest = torch.softmax(torch.randn(6, 200, 10, generator=g), -1).cuda()
    guard = ExpGuard(defence, eta=1.0)
    with _NoSync():
        bad = attack("lma", honest, 2, generator=torch.Generator().manual_seed(1), validate=False)
        predictions = torch.cat([honest, bad])
        value = aggregate(defence, predictions, validate=False).value
        guarded = guard(predictions, validate=False).value
    torch.testing.assert_close(value.sum(-1).cpu(), torch.ones(200), rtol=0, atol=1e-5)
    assert guarded.shape == (200, 10) and guard.weights.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("optimizer", ["sgd", "sfw_k_support", "sfw_l2"])
def test_fit_steps_on_a_masked_model_read_nothing_on_the_host(optimizer):
    """fit on the ``meta`` device (tensors without data: any read on the host raises), so on any machine: the
    steps, including the first (targets checked on the loader's host copy), wait for nothing until step 50."""
    torch.manual_seed(0)
    model = MLP(6, (32, 32), 3)
    pruning.apply_masks(model, pruning.global_magnitude_masks(model, 0.8))
    if optimizer == "sgd":
        factory = "sgd"
    else:
        regions = [c for g in sfw_setup(optimizer[4:], width=5.0, k=0.3)(model).param_groups for c in g["constraints"]]

        def factory(params):
            return SFW(params, regions, lr=0.1)

    first = step_kernels(model, blobs(16 * 12), step=0, batch_size=16, optimizer=factory)
    later = step_kernels(model, blobs(16 * 12), step=11, batch_size=16, optimizer=factory)
    assert first["addmm.default"] == later["addmm.default"] == 3  # the three layers ran forward, on a meta copy
    assert model_device(model).type == "cpu"


def test_step_kernels_refuses_a_step_it_cannot_count():
    model = MLP(6, (8,), 3)
    with pytest.raises(ValueError, match="step"):
        step_kernels(model, blobs(32), step=49)  # the 50th step reads the losses
    with pytest.raises(ValueError, match="2 steps in an epoch, fewer than 5"):
        step_kernels(model, blobs(32), step=4, batch_size=16)
    with pytest.raises(TypeError, match="model"):
        step_kernels("mlp", blobs(32))
    assert model_device(model).type == "cpu" and not torch._C._is_torch_function_mode_enabled()


def test_fit_adds_five_kernels_to_a_training_step():
    """Loss (one copy into a window read every 50 steps, non-finite check included) and accuracy (argmax, eq,
    sum, add) are all fit adds per step on an accelerator to forward, backward and the optimizer's step."""
    torch.manual_seed(0)
    model = MLP(6, (32, 32), 3)
    fitted = step_kernels(model, blobs(16 * 12), step=5, batch_size=16, optimizer="sgd", momentum=0.9)
    bare = model.to("meta")
    opt = torch.optim.SGD(bare.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 6, device="meta"), torch.randint(0, 3, (16,), device="meta")

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(bare(x), y).backward()
        opt.step()

    step()  # momentum buffers
    assert sum(fitted.values()) - sum(count_kernel_ops(step).values()) == 5


@pytest.mark.parametrize("defence", ["mean", "median", "trimmed_mean", "geometric_median"])
def test_fl_server_aggregation_reads_nothing_on_the_host(defence):
    """The same round on the ``meta`` device, so on any machine: tensors without data, any host read raises."""
    honest = torch.softmax(torch.randn(6, 200, 10, generator=torch.Generator().manual_seed(0)), -1).to("meta")
    guard = ExpGuard(defence, eta=1.0)
    bad = attack("lma", honest, 2, generator=torch.Generator().manual_seed(1), validate=False)
    predictions = torch.cat([honest, bad])
    assert aggregate(defence, predictions, validate=False).value.shape == (200, 10)
    assert guard(predictions, validate=False).value.shape == (200, 10) and guard.weights.shape == (8,)


def test_the_gpu_check_scripts_parse_and_the_device_run_calls_the_check(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench"
    scripts = [bench / n for n in ("gpu_check.sh", "gpu_bundle.sh", "gpu_device_run.sh")]
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, script
    assert all(os.access(s, os.X_OK) for s in scripts[1:])
    run = (bench / "gpu_device_run.sh").read_text()
    # every bundle gpu_bundle.sh writes is unpacked, and the check is the one make gpu-check runs
    assert "for bundle in .gpu/*.tar.xz" in run and "bash bench/gpu_check.sh" in run
    bundle = (bench / "gpu_bundle.sh").read_text()
    assert all(f".gpu/{name}.tar.xz" in bundle for name in ("site", "extra", "cp312"))
