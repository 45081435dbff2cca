"""SFW's flat path (kit.frankwolfe.flat): the vertices of a whole group at once, as on an accelerator.

Checked against independent computations: each vertex attains minus the radius times the region's dual
norm of x (computed here by sorting) and lies in the region; vertices equal each region's own torch
LMO; SFW on the flat path takes the same steps as the per-parameter path through region, schedule and
state changes. On the ``meta`` device (no data: any read of a value on the host raises) a step runs and
its kernel count does not grow with the number of layers.
"""

from __future__ import annotations

import copy
import gc
import io
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kit.budget import count_kernel_ops
from kit.frankwolfe import (
    SFW,
    KSparsePolytope,
    KSupportBall,
    L1Ball,
    L2Ball,
    LinfBall,
    LpBall,
    NuclearBall,
    Unconstrained,
    build,
    flat,
    kernels,
    sfw_setup,
)
from kit.models import MLP

FLAT = {"l2": L2Ball, "linf": LinfBall, "l1": L1Ball, "k_sparse": KSparsePolytope, "k_support": KSupportBall}


def dual_norm(kind: str, x: torch.Tensor, k: int) -> float:
    """max over the unit region of <v, x>, by sorting |x| (independent of the LMOs)."""
    a = x.detach().abs().flatten().double().sort(descending=True).values
    return {"l2": a.norm(), "linf": a.sum(), "l1": a[0], "k_sparse": a[:k].sum(),
            "k_support": a[:k].norm()}[kind].item()


def in_region(kind: str, v: torch.Tensor, radius: float, k: int) -> bool:
    a = v.double().abs().flatten()

    def within(value: torch.Tensor, bound: float) -> bool:
        return bool(value <= bound * (1 + 1e-6))  # relative: float32 entries round the radius

    checks = {"l2": within(a.norm(), radius), "linf": within(a.max(), radius), "l1": within(a.sum(), radius),
              "k_sparse": within(a.max(), radius) and within(a.sum(), k * radius),
              "k_support": bool((a > 0).sum() <= k) and within(a.norm(), radius)}
    return checks[kind]


segments = st.lists(st.tuples(st.sampled_from(sorted(FLAT)), st.integers(1, 300), st.floats(0.1, 5.0),
                              st.floats(0.01, 1.0)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(segments, st.integers(0, 2**31 - 1), st.sampled_from([torch.float32, torch.float64]))
def test_flat_vertices_attain_the_dual_norm_inside_each_region(specs, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    regions = [build(kind, torch.Size([n]), radius, k=frac if kind.startswith("k_") else None)
               for kind, n, radius, frac in specs]
    xs = [torch.randn(n, generator=g, dtype=torch.float64).to(dtype) for _, n, _, _ in specs]
    for (kind, _, radius, _), region, x, v in zip(specs, regions, xs, flat.flat_vertices(regions, xs), strict=True):
        k = getattr(region, "k", 1)
        assert in_region(kind, v, radius, k)
        value = float((v.double() * x.double()).sum())
        assert value == pytest.approx(-radius * dual_norm(kind, x, k), rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pad_free", [flat.PAD_FREE, 0])
def test_flat_vertices_equal_each_regions_own_lmo(dtype, pad_free, monkeypatch):
    if not pad_free:  # no padding allowed: a bucket per top-k row
        monkeypatch.setattr(flat, "PAD_FREE", 0)
        monkeypatch.setattr(flat, "PAD_SLACK", 1)
    torch.manual_seed(0)
    shapes = [(30, 20), (20,), (5, 4, 3, 3), (7,), (1,), (64,), (12, 12)]
    regions = [KSupportBall(shapes[0], 0.1, 2.0), L2Ball(shapes[1], 0.5), KSparsePolytope(shapes[2], 17, 1.5),
               LinfBall(shapes[3], 3.0), L1Ball(shapes[4], 0.7), KSupportBall(shapes[5], 64, 1.0),
               NuclearBall(shapes[6], 2.0)]  # the nuclear ball has no flat form: its own lmo, into its slice
    xs = [torch.randn(s, dtype=dtype) for s in shapes]
    with kernels.switched_off():
        expected = [region.lmo(x) for region, x in zip(regions, xs, strict=True)]
    for got, want in zip(flat.flat_vertices(regions, xs), expected, strict=True):
        torch.testing.assert_close(got, want)
    layout = flat.FlatRegions(xs, regions, xs)
    assert len(layout._buckets) == (1 if pad_free else 4)
    zero = flat.flat_vertices([L2Ball((3,)), KSupportBall((4,), 2)], [torch.zeros(3), torch.zeros(4)])
    assert all(v.abs().sum() == 0 for v in zero)  # no direction: the vertex at the centre, as the LMOs give


def _mixed(model: nn.Module) -> list:
    """One region of every kind the flat path knows, one it does not (Lp) and an unconstrained parameter."""
    kinds = [lambda s: KSupportBall(s, 0.2, 4.0), lambda s: L2Ball(s, 2.0), lambda s: LpBall(s, 3.0, 3.0),
             Unconstrained, lambda s: KSparsePolytope(s, 0.1, 0.2), lambda s: LinfBall(s, 0.3),
             lambda s: L1Ball(s, 2.0), lambda s: KSupportBall(s, 1, 1.0)]
    return [make(p.shape) for make, p in zip(kinds, model.parameters(), strict=True)]


@pytest.mark.parametrize(("rescale", "schedule"), [("gradient", "constant"), ("diameter", "constant"),
                                                   (None, "constant"), ("diameter", "decreasing")])
def test_sfw_on_the_flat_path_takes_the_per_parameter_steps(device, rescale, schedule):
    """Same steps through a raised k (DelayedK), a new radius, a parameter without a gradient and a reloaded state."""
    torch.manual_seed(0)
    reference = MLP((1, 6, 6), (16, 12, 8), 3).double()
    model = copy.deepcopy(reference).to(device)
    optimizers = [SFW(net.parameters(), _mixed(net), lr=0.2, momentum=0.8, rescale=rescale, step_schedule=schedule)
                  for net in (reference, model)]
    x, y = torch.rand(24, 1, 6, 6, dtype=torch.float64), torch.randint(0, 3, (24,))
    start = [p.detach().clone() for p in reference.parameters()]
    for step in range(7):
        for net, opt, on_flat in ((reference, optimizers[0], False), (model, optimizers[1], True)):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x.to(device)), y.to(device)).backward()
            regions = opt.param_groups[0]["constraints"]
            if step == 2:
                regions[0].k = regions[0].n // 2  # what DelayedK does
                regions[1].radius = 1.5
            if step == 3:
                next(iter(net.parameters())).grad = None
            if step == 5:
                buffer = io.BytesIO()
                torch.save(opt.state_dict(), buffer)
                buffer.seek(0)
                opt.load_state_dict(torch.load(buffer))
            if on_flat:
                with flat.forced():
                    opt.step()
            else:
                with kernels.switched_off():
                    opt.step()
        for got, want in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(got.detach().cpu(), want.detach(), rtol=1e-9, atol=1e-12)
    assert hasattr(optimizers[1], "_flat") and not hasattr(optimizers[0], "_flat")
    assert all(float((p.detach() - s).abs().max()) > 1e-3 for p, s in zip(reference.parameters(), start, strict=True))


def test_the_flat_layout_holds_the_momenta_once():
    """The optimizer's momentum buffers become views of the flat buffer; the buffers they replace are freed."""
    torch.manual_seed(0)
    model = MLP((1, 6, 6), (16,), 3)
    opt = SFW(model.parameters(), [L2Ball(p.shape, 1.0) for p in model.parameters()], lr=0.1)
    x, y = torch.rand(8, 1, 6, 6), torch.randint(0, 3, (8,))
    with flat.forced():
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()  # makes the momentum buffers
        first = [weakref.ref(opt.state[p]["momentum_buffer"]) for p in model.parameters()]
        opt.step()  # builds the layout, which copies them in
    gc.collect()
    assert all(ref() is None for ref in first)
    layout = opt._flat[0]
    storage = layout.momentum.untyped_storage().data_ptr()
    assert all(opt.state[p]["momentum_buffer"].untyped_storage().data_ptr() == storage for p in model.parameters())


def _meta_step_ops(kind: str, rescale: str | None, depth: int) -> int:
    torch.manual_seed(0)
    model = MLP((1, 8, 8), (32,) * depth, 10)
    regions = [c for g in sfw_setup(kind, width=5.0, rescale=rescale, k=0.1)(model).param_groups
               for c in g["constraints"]]
    model.to("meta")
    opt = SFW(model.parameters(), regions, lr=0.1, momentum=0.9, rescale=rescale)
    for p in model.parameters():
        p.grad = torch.empty_like(p)
    for _ in range(2):  # the first step makes the momentum buffers, the second the flat layout
        opt.step()
    return sum(count_kernel_ops(opt.step).values())


@pytest.mark.parametrize("kind", sorted(FLAT))
@pytest.mark.parametrize("rescale", ["gradient", "diameter"])
def test_sfw_step_on_an_accelerator_launches_a_fixed_number_of_kernels(kind, rescale):
    """On ``meta`` (as on CUDA, values stay on the device; reading one on the host would raise here), the
    kernels of a step do not grow with the number of layers: 4 parameters or 16, the same count."""
    shallow, deep = _meta_step_ops(kind, rescale, 1), _meta_step_ops(kind, rescale, 7)
    assert shallow == deep <= 40


def test_top_k_buckets_bound_the_padding():
    """Rows are padded to their bucket's widest segment only while that costs at most PAD_SLACK times the entries."""
    sizes = [2**20, 2**19 + 1, 3000, 2000, 2000, 50, 7, 1]
    params = [torch.zeros(n) for n in sizes]
    layout = flat.FlatRegions(params, [KSparsePolytope((n,), 1) for n in sizes], params)
    padded = sum(len(b["length"]) * b["width"] for b in layout._buckets)
    assert padded <= max(flat.PAD_SLACK * sum(sizes), flat.PAD_FREE * len(layout._buckets))
    rows = sorted(int(n) for b in layout._buckets for n in b["length"])
    assert rows == sorted(sizes)  # every segment in exactly one row


@pytest.mark.parametrize("kind", ["group_k_support", "lp", "nonnegative_k_sparse"])
def test_sfw_step_over_regions_with_their_own_lmo_reads_nothing_on_the_host(kind):
    """Regions outside the flat kinds run their own lmo in the step: on ``meta`` any host read would raise."""
    torch.manual_seed(0)
    model = MLP((1, 8, 8), (32,), 10)
    regions = [c for g in sfw_setup(kind, width=5.0, k=0.5, p=3.0)(model).param_groups for c in g["constraints"]]
    model.to("meta")
    opt = SFW(model.parameters(), regions, lr=0.1, momentum=0.9, rescale="gradient")
    for p in model.parameters():
        p.grad = torch.empty_like(p)
    for _ in range(3):
        opt.step()
    assert all(flat.kind_of(c) == "own" for c in regions) and len(opt._flat[0]._own) == len(regions)


def test_flat_regions_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError, match="one device and one dtype"):
        flat.FlatRegions([torch.zeros(2), torch.zeros(2, dtype=torch.float64)], [L2Ball((2,)), L2Ball((2,))],
                         [torch.zeros(2), torch.zeros(2)])
    with pytest.raises(ValueError, match="non-empty and of one length"):
        flat.FlatRegions([torch.zeros(2)], [L2Ball((2,)), L2Ball((2,))], [torch.zeros(2)])
    half = [torch.zeros(3, dtype=torch.bfloat16)]
    assert not flat.suits(half)  # low precision keeps the per-parameter path (its LMOs work in float32)
