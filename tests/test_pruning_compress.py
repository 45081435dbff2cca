"""kit.pruning masks, criteria and compression evaluation, checked against independent computations.

Global/layer-wise magnitude masks against a numpy argsort; masks through training, state dicts and
dense export; L1 filter pruning on hand-built filters (BN channels output zero); truncated SVD
against numpy.linalg.svd and F.conv2d with the reconstructed kernel; counts computed by hand.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from kit import models
from kit.pruning import (
    apply_masks,
    copy_model,
    count_macs,
    global_magnitude_masks,
    is_masked,
    layerwise_magnitude_masks,
    load_pruned_state_dict,
    masks_of,
    prunable,
    prune_filters,
    prune_global,
    remove_masks,
    sparsity_report,
    svd_split,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def small_mlp(seed: int = 0) -> models.MLP:
    torch.manual_seed(seed)
    return models.MLP(6, widths=(5, 4), num_classes=3)


def weights_np(model: nn.Module) -> list[np.ndarray]:
    """The prunable weights as numpy arrays, in module order (what the masks index)."""
    return [m.weight.detach().numpy().copy() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def numpy_global_keep(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    flat = np.concatenate([np.abs(w).ravel() for w in weights])
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:round(sparsity * flat.size)]] = False
    out, start = [], 0
    for w in weights:
        out.append(keep[start:start + w.size].reshape(w.shape))
        start += w.size
    return out


def random_data(n: int = 64, features: int = 6, classes: int = 3) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g))


# ---------------------------------------------------------------------------------------------- criteria

@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.6, 0.95])
def test_global_masks_equal_numpy_threshold(sparsity):
    model = small_mlp()
    masks = global_magnitude_masks(model, sparsity)
    expected = numpy_global_keep(weights_np(model), sparsity)
    assert list(masks) == ["net.1", "net.3", "net.5"]
    for got, want in zip(masks.values(), expected, strict=True):
        assert got.dtype == torch.bool
        np.testing.assert_array_equal(got.numpy(), want)


def test_global_masks_break_ties_by_position():
    model = small_mlp()
    with torch.no_grad():  # many exact ties: only two magnitudes across all layers
        for m in prunable(model):
            m[1].weight.copy_(torch.where(torch.rand_like(m[1].weight) < 0.5, 0.1, -0.2))
    for s in (0.2, 0.5, 0.7):
        masks = global_magnitude_masks(model, s)
        for got, want in zip(masks.values(), numpy_global_keep(weights_np(model), s), strict=True):
            np.testing.assert_array_equal(got.numpy(), want)


_HYPOTHESIS_MODEL = small_mlp(3)
_N = sum(w.size for w in weights_np(_HYPOTHESIS_MODEL))


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=0.0, max_value=0.99, allow_nan=False))
def test_global_pruning_removes_exactly_round_s_n(sparsity):
    model = copy_model(_HYPOTHESIS_MODEL)
    apply_masks(model, global_magnitude_masks(model, sparsity))
    report = sparsity_report(model)
    assert report.total == _N == 6 * 5 + 5 * 4 + 4 * 3
    assert report.zeros == round(sparsity * _N)


def test_pruning_twice_keeps_old_zeros_even_if_their_weights_grew():
    model = small_mlp()
    apply_masks(model, global_magnitude_masks(model, 0.5))
    old = masks_of(model)
    with torch.no_grad():  # masked entries count as pruned first, whatever weight_orig now holds
        for name, m in prunable(model):
            m.weight_orig[~old[name]] = 100.0
    apply_masks(model, global_magnitude_masks(model, 0.8))
    new = masks_of(model)
    assert all(not (new[n] & ~old[n]).any() for n in old)  # nothing revived
    assert sparsity_report(model).zeros == round(0.8 * 62)
    # the extra zeros are the smallest live weights, as numpy says on the effective weights
    flat = np.concatenate([np.where(old[n].numpy(), np.abs(m.weight_orig.detach().numpy()), -1.0).ravel()
                           for n, m in prunable(model)])
    pruned = np.argsort(flat, kind="stable")[:round(0.8 * 62)]
    assert set(pruned.tolist()) == set(np.flatnonzero(~torch.cat([v.flatten() for v in new.values()]).numpy()))
    with pytest.raises(ValueError, match="sparsity"):
        global_magnitude_masks(model, 0.3)  # fewer than already masked: masks only grow


def test_layerwise_masks_prune_each_layer_at_the_same_fraction():
    model = small_mlp()
    masks = layerwise_magnitude_masks(model, 0.5)
    for got, w in zip(masks.values(), weights_np(model), strict=True):
        keep = np.ones(w.size, dtype=bool)
        keep[np.argsort(np.abs(w).ravel(), kind="stable")[:round(0.5 * w.size)]] = False
        np.testing.assert_array_equal(got.numpy().ravel(), keep)


# ---------------------------------------------------------------------------------------------- masks

def test_apply_masks_combines_by_and_and_checks_before_touching():
    model = small_mlp()
    a = torch.rand(5, 6) < 0.7
    b = torch.rand(5, 6) < 0.7
    apply_masks(model, {"net.1": a})
    apply_masks(model, {"net.1": b.float()})
    assert torch.equal(masks_of(model)["net.1"], a & b)
    assert torch.equal(model.net[1].weight == 0, ~(a & b) | (model.net[1].weight_orig == 0))
    fresh = small_mlp()
    with pytest.raises(ValueError, match="no module named"):
        apply_masks(fresh, {"net.1": a, "nope": a})
    with pytest.raises(ValueError, match="shape"):
        apply_masks(fresh, {"net.1": a, "net.3": a})
    with pytest.raises(ValueError, match="0 and 1"):
        apply_masks(fresh, {"net.1": a.float() * 2})
    assert not any(is_masked(m) for m in fresh.modules())  # the valid first entry was not applied


def test_masks_survive_training_with_momentum_and_weight_decay():
    model = small_mlp()
    apply_masks(model, global_magnitude_masks(model, 0.7))
    masks = masks_of(model)
    before = {n: m.weight_orig.detach().clone() for n, m in prunable(model)}
    from kit.train import fit
    fit(model, random_data(), epochs=3, lr=0.1, momentum=0.9, weight_decay=0.1, batch_size=16, progress=False)
    for name, module in prunable(model):
        w = module.weight_orig.detach() * module.weight_mask  # the effective weight, recomputed here
        assert (w[~masks[name]] == 0).all()
        assert not torch.equal(module.weight_orig.detach()[masks[name]], before[name][masks[name]])
        module(torch.zeros(1, module.in_features))  # refresh the cached weight through the hook
        assert (module.weight.detach()[~masks[name]] == 0).all()
    assert sparsity_report(model).zeros >= round(0.7 * 62)


def test_masked_state_dict_loads_into_a_fresh_model():
    model = small_mlp()
    apply_masks(model, global_magnitude_masks(model, 0.6))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer)
    assert "net.1.weight_orig" in state and "net.1.weight_mask" in state
    fresh = load_pruned_state_dict(small_mlp(seed=9), state)
    x = torch.randn(4, 6)
    assert torch.equal(fresh(x), model(x))
    for name, mask in masks_of(model).items():
        assert torch.equal(masks_of(fresh)[name], mask)


def test_remove_masks_exports_plain_dense_layers_with_the_same_zeros():
    model = small_mlp()
    apply_masks(model, global_magnitude_masks(model, 0.5))
    masks = masks_of(model)
    x = torch.randn(3, 6)
    out = model(x)
    remove_masks(model)
    for name, module in prunable(model):
        assert isinstance(module.weight, nn.Parameter) and not hasattr(module, "weight_mask")
        assert not module._forward_pre_hooks
        assert torch.equal(module.weight.detach() == 0, ~masks[name])
    plain = small_mlp(seed=5)
    plain.load_state_dict(model.state_dict())  # an ordinary model loads the export, strict
    assert torch.equal(plain(x), out)


def test_copy_model_works_where_deepcopy_fails():
    model = small_mlp()
    apply_masks(model, global_magnitude_masks(model, 0.5))
    model(torch.randn(2, 6)).sum().backward()  # the cached weight is now a non-leaf tensor
    twin = copy_model(model)
    assert torch.equal(twin(torch.ones(1, 6)), model(torch.ones(1, 6)))
    assert twin.net[1].weight_orig is not model.net[1].weight_orig


def test_sparsity_report_on_a_hand_built_model():
    model = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.Flatten(), nn.Linear(2, 3), nn.BatchNorm1d(3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 0, 2, 0, 0, 0, 3, 4]).view(2, 1, 2, 2))  # 4 of 8 zero
        model[2].weight.copy_(torch.tensor([[1.0, 2], [0, 3], [4, 5]]))  # 1 of 6 zero
    apply_masks(model, {"2": torch.tensor([[1, 0], [1, 1], [1, 1]])})  # one more zero by mask
    report = sparsity_report(model)
    assert list(report.layers) == ["0", "2"]  # BatchNorm is not prunable
    assert (report.layers["0"].zeros, report.layers["0"].total) == (4, 8)
    assert (report.layers["2"].zeros, report.layers["2"].total) == (2, 6)
    assert (report.zeros, report.total) == (6, 14)
    assert report.sparsity == pytest.approx(6 / 14)
    assert report.to_dict()["layers"]["2"]["sparsity"] == pytest.approx(2 / 6)


# ---------------------------------------------------------------------------------------------- prune_global

def test_prune_global_leaves_the_input_untouched_and_counts_truly():
    model = small_mlp()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    result = prune_global(model, 0.5, input_shape=(6,),
                          retrain={"train_data": random_data(), "epochs": 1, "progress": False})
    assert list(model.state_dict()) == list(state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert not any(is_masked(m) for m in model.modules())
    zeros = sparsity_report(result.model).zeros
    assert zeros == 31 and result.sparsity == pytest.approx(31 / 62)
    dense = 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3
    assert (result.dense_params, result.params) == (dense, dense - 31)
    assert (result.dense_flops, result.flops) == (62, 62 - 31)  # one MAC per weight for a flat input
    assert result.params_ratio == pytest.approx((dense - 31) / dense)
    assert result.flops_ratio == pytest.approx(0.5)
    assert len(result.history) == 1


# ---------------------------------------------------------------------------------------------- filters

def filter_model() -> nn.Sequential:
    """Conv(1->4, 3x3) + BN + ReLU + Linear on 4x4 inputs; filter i is c_i * ones, so its L1 norm is 9|c_i|."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 2 * 2, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([3.0, -1.0, 2.0, 0.5]).view(4, 1, 1, 1).expand(4, 1, 3, 3))
        model[1].weight.copy_(torch.tensor([1.5, 2.0, 0.7, 1.1]))
        model[1].bias.copy_(torch.tensor([0.3, 0.4, -0.2, 0.9]))
        model[1].running_mean.copy_(torch.tensor([0.1, -0.5, 0.2, 0.3]))
    return model


def test_prune_filters_removes_the_smallest_l1_filters_and_their_bn_channels():
    model = filter_model()
    result = prune_filters(model, 0.5, input_shape=(1, 4, 4))
    assert result.details["removed"] == {"0": [1, 3]}  # |c| = 1 and 0.5 are the two smallest
    assert result.details["norms"] == {"0": "1"}
    pruned = result.model
    x = torch.randn(5, 1, 4, 4)
    for mode in (pruned.eval, pruned.train):
        mode()
        out = pruned[1](pruned[0](x))
        assert (out[:, [1, 3]] == 0).all()
        assert (out[:, [0, 2]] != 0).any()
    # counts by hand: conv 36 weights -> 18 nonzero, BN 8, linear 16*3 + 3; conv output 2x2 positions
    dense_params, dense_macs = 36 + 8 + 51, 36 * 4 + 48
    assert (result.dense_params, result.params) == (dense_params, dense_params - 18)
    assert (result.dense_flops, result.flops) == (dense_macs, 18 * 4 + 48)
    assert result.sparsity == pytest.approx(1 - (18 + 48) / (36 + 48))


def test_removed_channels_stay_zero_through_retraining():
    data = TensorDataset(torch.randn(32, 1, 4, 4), torch.randint(0, 3, (32,)))
    result = prune_filters(filter_model(), 0.5, input_shape=(1, 4, 4),
                           retrain={"train_data": data, "epochs": 2, "lr": 0.5, "progress": False})
    pruned = result.model.eval()
    out = pruned[1](pruned[0](torch.randn(4, 1, 4, 4)))
    assert (out[:, [1, 3]] == 0).all()  # BN beta is masked too, so it cannot relearn an offset


def test_prune_filters_conv_bias_keeps_one_filter_and_mlp_rows():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([3.0, -1.0, 2.0, 0.5]).view(4, 1, 1, 1).expand(4, 1, 3, 3))
        model[0].bias.fill_(1.0)
    result = prune_filters(model, 0.99, input_shape=(1, 3, 3))  # round(3.96) = 4, capped at 3 of 4
    assert result.details["removed"] == {"0": [1, 2, 3]}
    out = result.model[0](torch.randn(2, 1, 3, 3))
    assert (out[:, 1:] == 0).all() and (out[:, 0] != 0).all()
    mlp = small_mlp()
    with pytest.raises(ValueError, match="linear=True"):
        prune_filters(mlp, 0.5, input_shape=(6,))
    rows = prune_filters(mlp, 0.5, input_shape=(6,), linear=True)
    assert set(rows.details["removed"]) == {"net.1", "net.3"}  # the output layer keeps its classes
    norms = mlp.net[1].weight.detach().abs().sum(1).numpy()
    assert rows.details["removed"]["net.1"] == sorted(np.argsort(norms, kind="stable")[:2].tolist())  # round(2.5)=2


# ---------------------------------------------------------------------------------------------- svd

def expected_rank(sparsity: float, bound: int) -> int:
    return max(1, math.floor((1 - Fraction(str(sparsity))) * bound))  # exact arithmetic, no round-off


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.8, 0.95])
def test_svd_split_linear_equals_the_numpy_truncation(sparsity):
    torch.manual_seed(0)
    layer = nn.Linear(12, 10)
    model = nn.Sequential(layer)
    result = svd_split(model, sparsity, input_shape=(12,))
    r = expected_rank(sparsity, 10)
    assert result.details["ranks"] == {"0": (r, 10)}
    w, b = layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    w_r = (u[:, :r] * s[:r]) @ vt[:r]
    x = np.random.default_rng(0).standard_normal((7, 12))
    got = result.model(torch.tensor(x, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(got, x @ w_r.T + b, atol=1e-5)
    first, second = result.model[0]
    assert (first.in_features, first.out_features, first.bias) == (12, r, None)
    assert (second.in_features, second.out_features, second.bias is not None) == (r, 10, True)
    assert result.params == r * 12 + 10 * r + 10 and result.dense_params == 130
    assert result.flops == r * 22 and result.dense_flops == 120


def test_svd_split_conv_equals_conv_with_the_truncated_kernel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
    result = svd_split(model, 0.5, input_shape=(3, 6, 6))
    r = 2  # bound min(4, 3*3*3) = 4
    w = model[0].weight.detach().double().numpy()
    u, s, vt = np.linalg.svd(w.reshape(4, -1), full_matrices=False)
    kernel = ((u[:, :r] * s[:r]) @ vt[:r]).reshape(w.shape)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    want = F.relu(F.conv2d(x, torch.tensor(kernel), model[0].bias.detach().double(), stride=2, padding=1))
    got = result.model(x.float()).double()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    first, second = result.model[0]
    assert first.kernel_size == (3, 3) and first.stride == (2, 2) and first.out_channels == r
    assert second.kernel_size == (1, 1) and second.bias is not None
    # weights r*27 + 4*r, bias 4; output 3x3 positions
    assert result.params == 2 * 27 + 4 * 2 + 4 and result.dense_params == 4 * 27 + 4
    assert result.flops == (2 * 27 + 4 * 2) * 9 and result.dense_flops == 4 * 27 * 9
    assert result.sparsity == pytest.approx(1 - (2 * 27 + 8) / 108)


def test_svd_split_larger_layers_rank_option_and_untouched_input():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    before = model[0].weight.detach().clone()
    split = svd_split(model, 0.0, input_shape=(4,))  # r = 3: 3*4 + 3*3 = 21 weights > 12
    assert split.params == 21 + 3 and split.sparsity == pytest.approx(1 - 21 / 12)
    kept = svd_split(model, 0.0, input_shape=(4,), skip_larger=True)
    assert kept.details["skipped"] == ["0"] and kept.params == 15 and isinstance(kept.model[0], nn.Linear)
    assert svd_split(model, rank=2, input_shape=(4,)).details["ranks"] == {"0": (2, 3)}
    with pytest.raises(ValueError, match=r"rank must lie in \[1, 3\]"):
        svd_split(model, rank=4, input_shape=(4,))
    with pytest.raises(ValueError, match="exactly one"):
        svd_split(model, 0.5, rank=2, input_shape=(4,))
    assert torch.equal(model[0].weight, before) and isinstance(model[0], nn.Linear)


# ---------------------------------------------------------------------------------------------- counting, errors

def test_count_macs_keeps_batchnorm_statistics_and_modes():
    model = filter_model()
    model.train()
    model[1].eval()  # a deliberately frozen BN must stay frozen
    stats = model[1].running_mean.clone()
    assert count_macs(model, (1, 4, 4)) == 36 * 4 + 48
    assert torch.equal(model[1].running_mean, stats)
    assert model.training and model[0].training and not model[1].training
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(model, (1, 5, 5))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_bad_sparsity_is_a_value_error_naming_it(bad):
    model = small_mlp()
    for call in (lambda: global_magnitude_masks(model, bad), lambda: layerwise_magnitude_masks(model, bad),
                 lambda: prune_global(model, bad, input_shape=(6,)), lambda: svd_split(model, bad, input_shape=(6,))):
        with pytest.raises(ValueError, match=r"sparsity must lie in \[0.0, 1.0\)"):
            call()
    with pytest.raises(ValueError, match=r"fraction must lie in \[0.0, 1.0\)"):
        prune_filters(filter_model(), bad, input_shape=(1, 4, 4))
    assert not any(is_masked(m) for m in model.modules())


def test_models_without_prunable_layers_and_wrong_types():
    empty = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3))
    for call in (lambda: prunable(empty), lambda: global_magnitude_masks(empty, 0.5),
                 lambda: prune_global(empty, 0.5, input_shape=(3,)), lambda: svd_split(empty, 0.5, input_shape=(3,)),
                 lambda: prune_filters(empty, 0.5, input_shape=(3,)), lambda: sparsity_report(empty)):
        with pytest.raises(ValueError, match="no prunable layers"):
            call()
    with pytest.raises(TypeError, match="sparsity"):
        global_magnitude_masks(small_mlp(), "0.5")
    with pytest.raises(TypeError, match="retrain"):
        prune_global(small_mlp(), 0.5, input_shape=(6,), retrain={"train_data": random_data(), "epoch": 1})


def test_retrain_callable_runs_on_the_compressed_copy():
    seen = []
    model = small_mlp()
    result = svd_split(model, 0.5, input_shape=(6,), retrain=lambda m: seen.append(m) or "done")
    assert seen == [result.model] and result.history == "done"
    scores = result.evaluate(random_data())
    assert set(scores) == {"loss", "accuracy"} and 0.0 <= scores["accuracy"] <= 1.0


def test_svd_split_keeps_the_named_layers_dense():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    result = svd_split(model, 0.5, input_shape=(12,), keep=["2"])
    assert isinstance(result.model[2], nn.Linear) and torch.equal(result.model[2].weight, model[2].weight)
    assert isinstance(result.model[0], nn.Sequential)  # the first layer is split in two
    assert result.details["skipped"] == ["2"]
    with pytest.raises(ValueError, match="keep names layers"):
        svd_split(model, 0.5, input_shape=(12,), keep=["1"])
