"""Bad input to kit.frankwolfe: regions and kernels never see a tensor of the wrong size (no heap corruption, no
garbage vertex), optimizer set-ups fail before any data is loaded. A hypothesis fuzz calls every region method
with random shapes, k, dtypes and ``out`` tensors: each call gives a clean error or the torch reference result."""

from __future__ import annotations

import copy
import ctypes
import math

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kit.frankwolfe import (
    KINDS,
    KSparsePolytope,
    KSupportBall,
    L1Ball,
    L2Ball,
    PenalizedSGD,
    build,
    kernels,
    sfw_setup,
)

# ---------------------------------------------------------------- the probe's findings, one by one


def test_an_out_tensor_too_small_is_refused_before_the_kernel_writes():
    x = torch.randn(4096)
    with pytest.raises(ValueError, match=r"out must match x: shape \(4096,\)"):
        L2Ball((4096,)).lmo(x, out=torch.empty(2))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: KSparsePolytope((10,), k=8).lmo(torch.randn(5)), r"x has shape \(5,\) but this KSparsePolytope"),
    (lambda: L2Ball((10,)).lmo(torch.randn(5)), r"x has shape \(5,\)"),
    (lambda: L2Ball((10,)).contains(torch.randn(3)), r"x has shape \(3,\)"),
    (lambda: L1Ball((10,)).project(torch.randn(3)), r"x has shape \(3,\)"),
    (lambda: L2Ball((10,)).norm(torch.randn(10, 1)), r"x has shape \(10, 1\)"),
    (lambda: KSupportBall((3, 4), k=2).make_feasible(torch.randn(4, 3)), r"x has shape \(4, 3\)"),
])
def test_a_tensor_of_another_shape_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_float_tensors_are_refused(dtype):
    with pytest.raises(TypeError, match="floating-point tensor"):
        L2Ball((3,)).lmo(torch.zeros(3, dtype=dtype))


@pytest.mark.parametrize(("out", "match"), [
    (torch.empty(6, dtype=torch.float64), "dtype torch.float64"),
    (torch.empty(3, 2), "shape"),
    (torch.empty(3, 2).t(), "contiguous"),
    (torch.empty(2, 6)[:, ::2], "contiguous"),
    ("x", "shares memory"),
    ([0.0] * 6, "out must be a tensor"),
])
def test_bad_out_tensors_are_refused(out, match):
    x = torch.randn(2, 3)
    if isinstance(out, str):
        out = x
    elif isinstance(out, torch.Tensor) and out.dim() == 1:
        out = out.view(2, 3)
    with pytest.raises((ValueError, TypeError), match=match):
        KSupportBall((2, 3), k=2).lmo(x, out=out)


@pytest.mark.skipif(not kernels.enabled(), reason="needs the fused kernels (g++)")
def test_kernel_wrappers_and_entry_points_check_sizes_themselves():
    x, small = torch.randn(100), torch.empty(10)
    with pytest.raises(ValueError, match="one size"):
        kernels.l2_vertex(x, 1.0, small)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 100\]"):
        kernels.topk_vertex(x, 101, 1.0, True, torch.empty(100))
    # below the wrappers, the C functions refuse too (defence in depth) and leave out untouched
    lib = kernels._library()
    out = torch.full((10,), 7.0)
    assert lib.kit_l2_vertex_f32(x.data_ptr(), 100, 1.0, out.data_ptr(), 10) == -2
    assert lib.kit_topk_vertex_f32(x.data_ptr(), 100, 200, 1.0, 1, out.data_ptr(), 10) == -2
    assert lib.kit_topk_vertex_f32(x.data_ptr(), 10, 11, 1.0, 0, out.data_ptr(), 10) == -2
    assert lib.kit_gap_f32(x.data_ptr(), out.data_ptr(), 100, 10) == -1.0
    assert torch.equal(out, torch.full((10,), 7.0))
    assert isinstance(lib.kit_l1_vertex_f32.restype(), ctypes.c_int64)


# ---------------------------------------------------------------- fuzz: a clean error or the reference


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool]
FLOATS = {torch.float32, torch.float64, torch.float16, torch.bfloat16}


def random_tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype == torch.int64:
        return torch.randint(-5, 5, shape, generator=g)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def call(region, method: str, x: torch.Tensor, out: torch.Tensor | None):
    if method == "lmo":
        return region.lmo(x, out=out)
    if method == "contains":
        return region.contains(x)
    return getattr(region, method)(x)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_every_region_method_gives_a_clean_error_or_the_reference(data):
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3), label="shape"))
    n = math.prod(shape)
    k = data.draw(st.one_of(st.integers(1, n), st.floats(0.05, 1.0), st.integers(-1, n + 2),
                            st.floats(-0.5, 1.5, allow_nan=False)), label="k")
    try:
        region = build(kind, shape, data.draw(st.floats(0.1, 3.0), label="radius"), k=k, p=1.5)
    except (ValueError, TypeError):
        event("bad k refused at construction")
        return
    reference_region = copy.deepcopy(region)  # warm-started LMOs must start the reference from the same state
    x_shape = data.draw(st.sampled_from([shape, shape, shape, shape[::-1], (*shape, 1), (n + 1,)]), label="x_shape")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64, *DTYPES]), label="dtype")
    x = random_tensor(x_shape, dtype, data.draw(st.integers(0, 1000), label="seed"))
    if data.draw(st.booleans(), label="non-contiguous x") and x.dim() >= 2:
        x = x.transpose(0, -1).contiguous().transpose(0, -1)
    method = data.draw(st.sampled_from(["lmo", "norm", "contains", "make_feasible", "project"]), label="method")
    out_kind = data.draw(st.sampled_from(["none", "none", "good", "good", "shape", "dtype", "strided", "alias"]),
                         label="out")
    out = {"none": None, "good": torch.empty(x.shape, dtype=x.dtype),
           "shape": torch.empty(x.numel() + 1, dtype=x.dtype), "dtype": torch.empty(x.shape, dtype=torch.float64
                                                                                   if x.dtype != torch.float64
                                                                                   else torch.float32),
           "strided": torch.empty((*x.shape, 2), dtype=x.dtype)[..., 0], "alias": x}[out_kind]
    if method != "lmo":
        out, out_kind = None, "none"

    out_fits = out is None or (out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous()
                               and out.untyped_storage().data_ptr() != x.untyped_storage().data_ptr())
    valid = x.shape == torch.Size(shape) and dtype in FLOATS and out_fits
    no_operation = (method == "lmo" and kind == "unconstrained") or (method == "project" and not
                                                                     region.supports_projection)
    try:
        result = call(region, method, x, out)
    except (ValueError, TypeError):
        assert not valid, "a valid call was refused"
        event("clean error")
        return
    except NotImplementedError:
        assert valid and no_operation
        event("no such operation for the region")
        return
    assert valid and not no_operation, "an invalid call was accepted"

    event(f"compared with the reference ({method})")
    # the reference: the torch implementation (no fused kernels) on the same values
    work = x.float() if dtype in (torch.float16, torch.bfloat16) else x
    with kernels.switched_off():
        expected = call(reference_region, method, work, None)
    if isinstance(expected, bool):
        assert result == expected
        return
    assert result.shape == x.shape or method in ("norm",)
    assert result.dtype == x.dtype
    tolerance = {torch.float64: 1e-9, torch.float32: 1e-5}.get(dtype, 1e-2)
    torch.testing.assert_close(result.double(), expected.to(dtype).double(), rtol=tolerance, atol=tolerance)
    if out is not None:
        assert result.data_ptr() == out.data_ptr()  # written into out


# ---------------------------------------------------------------- optimizer set-ups fail before any data


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"momentum": 1.5}, ValueError, r"momentum must lie in \[0.0, 1.0\)"),
    ({"bogus_option": 1}, TypeError, "bogus_option"),
    ({"step_schedule": "sometimes"}, ValueError, "step_schedule"),
    ({"lr": 2.0}, ValueError, r"lr must lie in \[0.0, 1.0\]"),
])
def test_sfw_setup_refuses_bad_options_at_once(kwargs, error, match):
    with pytest.raises(error, match=match):
        sfw_setup("l2", **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [({"momentum": 2.0}, "momentum"), ({"momentum": -0.1}, "momentum"),
                                               ({"lr": -1.0}, "lr"), ({"weight_decay": -1.0}, "weight_decay")])
def test_penalized_sgd_refuses_out_of_range_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PenalizedSGD([torch.nn.Parameter(torch.zeros(2, 2))], **kwargs)
