"""kit.perp.llm_pruning: N:M patterns, magnitude / random / Wanda / SparseGPT masks and one-shot pruning of a
causal LM's decoder Linears, against independent computations.

Wanda's masks are recomputed with NumPy from activations captured by forward hooks (block 1 from a
copy whose block 0 carries the returned masks, so the sequential calibration is checked too).
SparseGPT is checked three ways on one layer: against an independent OBS formulation (saliency from
inverses of trailing Hessian blocks, the update from direct linear solves), against magnitude
pruning's reconstruction error, and against the least-squares optimum for the same mask.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kit.language import tiny_llama
from kit.perp.llm_pruning import (
    LLM_CRITERIA,
    decoder_blocks,
    decoder_linears,
    decoder_sparsity,
    magnitude_mask,
    nm_mask,
    pattern,
    prune_llm,
    random_mask,
    sparsegpt_prune,
    wanda_mask,
)
from kit.pruning import apply_masks, effective_weight, masks_of

pytestmark = pytest.mark.usefixtures("one_thread")

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")
DECODER = {f"lm.model.layers.{b}.{n}" for b in range(2) for n in LINEARS}


def calibration_ids():
    return torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(0))


def numpy_wanda(weight: np.ndarray, x: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep-mask: per output row, drop the round(s * in) lowest |W_ij| * ||X_j||_2."""
    scores = np.abs(weight) * np.sqrt((x**2).sum(0))[None, :]
    keep = np.ones_like(weight, dtype=bool)
    k = round(sparsity * weight.shape[1])
    for i, row in enumerate(scores):
        keep[i, np.argsort(row, kind="stable")[:k]] = False
    return keep


def linear_inputs(model: nn.Module, names, ids: torch.Tensor) -> dict[str, np.ndarray]:
    """The inputs (tokens x features, float64) each named Linear sees in one forward pass of ``model``."""
    seen = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(
        lambda _m, args, _out, n=n: seen.__setitem__(n, args[0].detach().reshape(-1, args[0].shape[-1])))
        for n in names]
    with torch.no_grad():
        model(ids)
    for h in handles:
        h.remove()
    return {n: x.double().numpy() for n, x in seen.items()}


def dense_weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {n: m.weight.detach().double().numpy().copy() for n, m in decoder_linears(model).items()}


# --------------------------------------------------------------------------------------- patterns

def test_pattern_parses_unstructured_and_nm():
    assert pattern(0.3) == pattern(0.3, None) and pattern(0.3).sparsity == 0.3 and not pattern(0.3).structured
    assert pattern(nm="2:4") == pattern(nm=(2, 4)) == pattern(0.5, " 2 : 4 ")
    p = pattern(nm="3:8")
    assert (p.n, p.m, p.structured, p.sparsity, str(p)) == (3, 8, True, 0.375, "3:8")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"sparsity": -0.1}, ValueError, "sparsity must lie in"),
    ({"sparsity": 1.0}, ValueError, "sparsity must lie in"),
    ({}, ValueError, "give a sparsity"),
    ({"nm": "4:4"}, ValueError, "N < M"),
    ({"nm": "5:4"}, ValueError, "N < M"),
    ({"nm": "x:y"}, ValueError, "nm must look like 'N:M'"),
    ({"nm": "0:4"}, ValueError, r"N \(of N:M\)"),
    ({"nm": (2,)}, TypeError, "nm must be 'N:M' or a pair"),
    ({"sparsity": 0.3, "nm": "2:4"}, ValueError, "contradicts N:M 2:4"),
])
def test_pattern_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        pattern(**kwargs)


# --------------------------------------------------------------------------------------- per-matrix masks

@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 6), groups=st.integers(1, 6), m=st.integers(2, 6), data=st.data())
def test_every_nm_mask_prunes_exactly_n_in_every_group(rows, groups, m, data):
    n = data.draw(st.integers(1, m - 1))
    seed = data.draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, groups * m, generator=g)
    norm = torch.rand(groups * m, generator=g) + 0.1
    spec = pattern(nm=(n, m))
    masks = {"nm": nm_mask(weight.abs(), n, m), "magnitude": magnitude_mask(weight, spec),
             "random": random_mask(weight, spec, torch.Generator().manual_seed(seed)),
             "wanda": wanda_mask(weight, norm, spec)}
    for name, keep in masks.items():
        assert keep.dtype == torch.bool and keep.shape == weight.shape, name
        pruned = (~keep).reshape(rows, groups, m).sum(-1)
        assert bool((pruned == n).all()), name
    # nm_mask / magnitude: the pruned ones are the n smallest |w| of their group (numpy)
    w = weight.abs().numpy().reshape(rows, groups, m)
    expect = np.ones_like(w, dtype=bool)
    np.put_along_axis(expect, np.argsort(w, axis=-1, kind="stable")[..., :n], False, axis=-1)
    np.testing.assert_array_equal(masks["magnitude"].numpy(), expect.reshape(rows, groups * m))
    scores = w * norm.numpy().reshape(1, groups, m)
    expect = np.ones_like(w, dtype=bool)
    np.put_along_axis(expect, np.argsort(scores, axis=-1, kind="stable")[..., :n], False, axis=-1)
    np.testing.assert_array_equal(masks["wanda"].numpy(), expect.reshape(rows, groups * m))


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 12), cols=st.integers(1, 12), sparsity=st.floats(0.0, 0.99), seed=st.integers(0, 2**16))
def test_unstructured_magnitude_mask_is_a_global_threshold(rows, cols, sparsity, seed):
    weight = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))
    keep = magnitude_mask(weight, pattern(sparsity))
    k = round(sparsity * rows * cols)
    assert int((~keep).sum()) == k
    a = np.abs(weight.numpy()).ravel()
    expect = np.ones(a.size, dtype=bool)
    expect[np.argsort(a, kind="stable")[:k]] = False
    np.testing.assert_array_equal(keep.numpy().ravel(), expect)
    if 0 < k < a.size:  # every pruned |w| is at most every kept |w|
        assert a[~expect].max() <= a[expect].min()


def test_random_mask_is_seeded_and_counts_exactly():
    weight = torch.randn(20, 30)
    a = random_mask(weight, pattern(0.4), torch.Generator().manual_seed(0))
    b = random_mask(weight, pattern(0.4), torch.Generator().manual_seed(0))
    c = random_mask(weight, pattern(0.4), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c) and int((~a).sum()) == 240


def test_wanda_mask_equals_numpy_per_row_scores():
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(8, 12, generator=g)
    norm = torch.tensor([0.1, 5.0, 1.0, 2.0, 0.5, 3.0, 0.2, 4.0, 1.5, 0.05, 2.5, 0.7])
    for sparsity in (0.25, 0.5, 0.75):
        keep = wanda_mask(weight, norm, pattern(sparsity))
        scores = np.abs(weight.numpy()) * norm.numpy()[None, :]
        expect = np.ones((8, 12), dtype=bool)
        k = round(sparsity * 12)
        for i in range(8):
            expect[i, np.argsort(scores[i], kind="stable")[:k]] = False
        np.testing.assert_array_equal(keep.numpy(), expect)
        assert bool(((~keep).sum(1) == k).all())  # per row, not over the matrix
    # a large input norm protects its column: column 1 (norm 5) keeps more weights than column 9 (norm 0.05)
    keep = wanda_mask(weight, norm, pattern(0.5))
    assert int(keep[:, 1].sum()) > int(keep[:, 9].sum())


def test_mask_functions_reject_bad_shapes():
    with pytest.raises(ValueError, match="input_norm must have one entry per input feature"):
        wanda_mask(torch.randn(4, 6), torch.ones(5), pattern(0.5))
    with pytest.raises(ValueError, match="multiple of M"):
        nm_mask(torch.randn(4, 6), 2, 4)
    with pytest.raises(ValueError, match="hessian must be 6x6"):
        sparsegpt_prune(torch.randn(4, 6), torch.eye(5), pattern(0.5))
    with pytest.raises(ValueError, match="damp"):
        sparsegpt_prune(torch.randn(4, 6), torch.eye(6), pattern(0.5), damp=0.0)
    with pytest.raises(ValueError, match="blocksize"):
        sparsegpt_prune(torch.randn(4, 6), torch.eye(6), pattern(0.5), blocksize=0)


# --------------------------------------------------------------------------------------- SparseGPT on one layer

def layer_problem(seed: int):
    """W (16x32) and calibration X (512x32) with correlated features, X = Z C: an AR(1) correlation
    0.8^|i-j| between inputs i and j, and input scales spread by a factor of about 5 (as in LLM
    activations); H = 2 X^T X / n as SparseGPT's calibration builds it."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(16, 32, generator=g)
    z = torch.randn(512, 32, generator=g)
    index = torch.arange(32, dtype=torch.float64)
    correlation = 0.8 ** (index[:, None] - index[None, :]).abs()
    c = torch.linalg.cholesky(correlation).T.float() * torch.exp(0.5 * torch.randn(32, generator=g))[None, :]
    x = z @ c
    return weight, x, 2 * x.T @ x / 512


def reconstruction_error(x: np.ndarray, weight: np.ndarray, pruned: np.ndarray) -> float:
    return float(((x @ pruned.T - x @ weight.T) ** 2).sum())


def least_squares(x: np.ndarray, weight: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The best weights for a fixed mask: per row, lstsq of the dense outputs on the kept inputs."""
    out = np.zeros_like(weight)
    y = x @ weight.T
    for i in range(weight.shape[0]):
        out[i, keep[i]] = np.linalg.lstsq(x[:, keep[i]], y[:, i], rcond=None)[0]
    return out


def obs_reference(weight: np.ndarray, hessian: np.ndarray, sparsity: float, nm: tuple[int, int] | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """SparseGPT written the OBS way, without Cholesky factors (one block): ``(weights, keep-mask)``.

    Columns are fixed left to right; before column i is fixed, columns i.. hold their best values for the
    already fixed columns < i: W_{i:} - (Q_{<i} - W_{<i}) H_{<i,i:} H_{i:,i:}^-1. The saliency of an
    entry of column j is w^2 / [(H_{j:, j:})^-1]_00: over the whole matrix on the original weights
    (unstructured, the mask chosen once per block), or per group of M on the current best values (N:M).
    """
    rows, cols = weight.shape
    d = np.array([np.linalg.inv(hessian[j:, j:])[0, 0] for j in range(cols)])
    keep = np.ones_like(weight, dtype=bool)
    if nm is None:
        k = round(sparsity * weight.size)
        keep.ravel()[np.argsort((weight**2 / d[None, :]).ravel(), kind="stable")[:k]] = False
    q = np.zeros_like(weight)
    for i in range(cols):
        best = weight[:, i:] - np.linalg.solve(hessian[i:, i:], hessian[i:, :i] @ (q[:, :i] - weight[:, :i]).T).T
        if nm is not None and i % nm[1] == 0:
            saliency = best[:, : nm[1]] ** 2 / d[None, i : i + nm[1]]
            for r in range(rows):
                keep[r, i + np.argsort(saliency[r], kind="stable")[: nm[0]]] = False
        q[:, i] = keep[:, i] * best[:, 0]
    return q, keep


@pytest.mark.parametrize("nm", [None, (2, 4)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparsegpt_equals_the_obs_formulation(seed, nm):
    weight, _, h = layer_problem(seed)
    new, keep = sparsegpt_prune(weight, h, pattern(0.5, nm))
    hd = h.double().numpy()
    hd = hd + 0.01 * np.mean(np.diag(hd)) * np.eye(32)  # the default damping
    q, expect = obs_reference(weight.double().numpy(), hd, 0.5, nm)
    np.testing.assert_array_equal(keep.numpy(), expect)
    np.testing.assert_allclose(new.double().numpy(), q, rtol=0, atol=1e-5 * float(weight.abs().max()))


# Least-squares tolerance: SparseGPT compensates each pruned weight only in the columns to its right
# and never revisits kept columns, so it is not the least-squares optimum for its own mask (the test
# above shows it is exactly the sequential OBS update). Measured err_sgpt / err_ls here: 1.57, 1.51,
# 1.65 unstructured and 1.47, 1.54, 1.58 at 2:4 (seeds 0-2; 1.47-1.68 over seeds 0-9), while the same
# masks without the weight update give 2.5-4.0. Bound: err_ls <= err_sgpt <= 2.0 * err_ls.
LS_TOLERANCE = 1.0


@pytest.mark.parametrize("nm", [None, "2:4"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparsegpt_reconstructs_better_than_magnitude_and_near_least_squares(seed, nm):
    weight, x, h = layer_problem(seed)
    spec = pattern(0.5, nm)
    new, keep = sparsegpt_prune(weight, h, spec)
    assert new.dtype == weight.dtype and keep.dtype == torch.bool
    # exact sparsity: zero exactly where pruned, and round(0.5 * numel) pruned
    assert int((~keep).sum()) == 256
    assert bool((new[~keep] == 0).all()) and bool((new[keep] != 0).all())
    if nm is not None:
        assert bool(((~keep).reshape(16, 8, 4).sum(-1) == 2).all())
    xd, wd, kd = x.double().numpy(), weight.double().numpy(), keep.numpy()
    err_sgpt = reconstruction_error(xd, wd, new.double().numpy())
    err_mag = reconstruction_error(xd, wd, wd * magnitude_mask(weight, spec).numpy())
    err_ls = reconstruction_error(xd, wd, least_squares(xd, wd, kd))
    err_mask_only = reconstruction_error(xd, wd, wd * kd)
    print(f"seed {seed} {spec}: sgpt/ls {err_sgpt / err_ls:.3f}, magnitude/sgpt {err_mag / err_sgpt:.2f}, "
          f"mask only/ls {err_mask_only / err_ls:.2f}")
    assert err_sgpt < 0.6 * err_mag  # measured: at most 0.41
    assert err_sgpt < 0.75 * err_mask_only  # the weight update matters, not only the mask (measured <= 0.66)
    assert err_ls * (1 - 1e-9) <= err_sgpt <= (1 + LS_TOLERANCE) * err_ls


def test_sparsegpt_drops_dead_inputs():
    weight, x, _ = layer_problem(0)
    x[:, 5] = 0  # an input that is never active
    h = 2 * x.T @ x / 512
    new, _ = sparsegpt_prune(weight, h, pattern(0.25))
    assert bool((new[:, 5] == 0).all()) and torch.isfinite(new).all()


# --------------------------------------------------------------------------------------- the decoder layers

def test_decoder_blocks_and_linears_of_tiny_llama():
    model = tiny_llama(seed=0)
    name, blocks = decoder_blocks(model)
    assert name == "lm.model.layers" and len(blocks) == 2
    linears = decoder_linears(model)
    assert set(linears) == DECODER
    assert all(linears[n] is model.get_submodule(n) for n in linears)


@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(4, 4)), nn.Linear(4, 4),
                                   nn.ModuleList([nn.ReLU(), nn.ReLU()])])
def test_a_model_without_decoder_blocks_is_rejected(model):
    with pytest.raises(ValueError, match="decoder Linear"):
        decoder_linears(model)
    with pytest.raises(ValueError, match="decoder Linear"):
        prune_llm(model, 0.5, progress=False)


def test_wanda_masks_in_prune_llm_equal_numpy_on_captured_activations():
    ids = calibration_ids()
    model, dense = tiny_llama(seed=0), tiny_llama(seed=0)
    weights = dense_weights(dense)
    masks = prune_llm(model, 0.5, method="wanda", calibration=ids, progress=False)
    assert set(masks) == DECODER
    # block 0 sees the dense model's activations
    block0 = [n for n in DECODER if ".layers.0." in n]
    for name, x in linear_inputs(dense, block0, ids).items():
        assert x.shape == (64, weights[name].shape[1])
        np.testing.assert_array_equal(masks[name].numpy(), numpy_wanda(weights[name], x, 0.5), err_msg=name)
    # block 1 sees the outputs of the already pruned block 0
    apply_masks(dense, {n: masks[n] for n in block0})
    block1 = [n for n in DECODER if ".layers.1." in n]
    for name, x in linear_inputs(dense, block1, ids).items():
        np.testing.assert_array_equal(masks[name].numpy(), numpy_wanda(weights[name], x, 0.5), err_msg=name)
    # Wanda does not update weights: the kept ones are the original values
    for name, module in decoder_linears(model).items():
        np.testing.assert_array_equal(effective_weight(module).double().numpy(), weights[name] * masks[name].numpy())


@pytest.mark.parametrize("method", LLM_CRITERIA)
@pytest.mark.parametrize("nm", [None, "2:4"])
def test_prune_llm_prunes_only_decoder_linears_exactly(method, nm):
    model, untouched = tiny_llama(seed=0), tiny_llama(seed=0)
    weights = dense_weights(untouched)
    masks = prune_llm(model, None if nm else 0.5, nm=nm, method=method, calibration=calibration_ids(),
                      progress=False)
    assert decoder_sparsity(model) == 0.5
    stored = masks_of(model)
    assert set(stored) == set(masks) == DECODER
    for name, keep in masks.items():
        assert torch.equal(stored[name], keep)
        w = effective_weight(model.get_submodule(name))
        assert bool((w[~keep] == 0).all())
        if nm is None:
            assert int((~keep).sum()) == keep.numel() // 2
        else:
            assert bool(((~keep).reshape(keep.shape[0], -1, 4).sum(-1) == 2).all())
        if method != "sparsegpt":  # only SparseGPT updates the kept weights
            np.testing.assert_array_equal(w.double().numpy(), weights[name] * keep.numpy())
    # the embeddings, the (tied) LM head and every norm are untouched
    dense_params = dict(untouched.named_parameters())
    for name, param in model.named_parameters():
        if not name.endswith(("weight_orig", "weight_mask")):
            assert torch.equal(param, dense_params[name]), name
    assert torch.equal(model.lm.lm_head.weight, untouched.lm.lm_head.weight)


def test_prune_llm_random_is_seeded_and_magnitude_ignores_calibration():
    a = prune_llm(tiny_llama(seed=0), 0.5, method="random", seed=1, progress=False)
    b = prune_llm(tiny_llama(seed=0), 0.5, method="random", seed=1, progress=False)
    c = prune_llm(tiny_llama(seed=0), 0.5, method="random", seed=2, progress=False)
    assert all(torch.equal(a[n], b[n]) for n in a) and not all(torch.equal(a[n], c[n]) for n in a)
    m1 = prune_llm(tiny_llama(seed=0), 0.5, progress=False)
    m2 = prune_llm(tiny_llama(seed=0), 0.5, calibration=calibration_ids(), progress=False)
    assert all(torch.equal(m1[n], m2[n]) for n in m1)


@pytest.mark.parametrize("nm", [None, "2:4"])
def test_sparsegpt_keeps_the_tiny_model_closer_to_dense_than_magnitude(nm):
    ids = calibration_ids()
    dense = tiny_llama(seed=0)
    with torch.no_grad():
        reference = dense(ids)
    errors = {}
    for method in ("magnitude", "sparsegpt"):
        model = tiny_llama(seed=0)
        prune_llm(model, None if nm else 0.5, nm=nm, method=method, calibration=ids, progress=False)
        with torch.no_grad():
            errors[method] = float(((model(ids) - reference) ** 2).mean())
    # measured ratios: 0.75 unstructured, 0.51 at 2:4
    assert errors["sparsegpt"] < 0.9 * errors["magnitude"]


def test_prune_llm_keeps_the_training_mode():
    model = tiny_llama(seed=0).train()
    prune_llm(model, 0.5, method="wanda", calibration=calibration_ids(), progress=False)
    assert model.training


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"sparsity": -0.1}, ValueError, "sparsity must lie in"),
    ({"sparsity": 1.0}, ValueError, "sparsity must lie in"),
    ({"nm": "4:4"}, ValueError, "N < M"),
    ({"nm": "5:4"}, ValueError, "N < M"),
    ({"nm": "x:y"}, ValueError, "nm must look like"),
    ({"sparsity": 0.6, "nm": "2:4"}, ValueError, "contradicts"),
    ({"sparsity": 0.5, "method": "wanda"}, ValueError, "'wanda' needs calibration token ids"),
    ({"sparsity": 0.5, "method": "sparsegpt"}, ValueError, "'sparsegpt' needs calibration token ids"),
    ({"sparsity": 0.5, "method": "sparsegpt", "calibration": torch.arange(16)}, ValueError, "needs calibration"),
    ({"sparsity": 0.5, "method": "wanda", "calibration": torch.zeros(0, 16, dtype=torch.long)}, ValueError,
     "needs calibration"),
    ({"nm": "3:7"}, ValueError, "32 inputs, not a multiple of M = 7"),
    ({"sparsity": 0.5, "method": "obs"}, ValueError, "magnitude, wanda, sparsegpt, random"),
    ({"sparsity": 0.5, "batch_size": 0}, ValueError, "batch_size"),
])
def test_prune_llm_rejects_bad_input(kwargs, error, match):
    model = tiny_llama(seed=0, layers=1)
    with pytest.raises(error, match=match):
        prune_llm(model, progress=False, **kwargs)
    assert not masks_of(model)  # nothing was pruned before the error


def test_prune_llm_refuses_float_calibration():
    with pytest.raises(ValueError, match="integer"):
        prune_llm(tiny_llama(seed=0), 0.5, method="wanda", calibration=torch.rand(2, 8), progress=False)
