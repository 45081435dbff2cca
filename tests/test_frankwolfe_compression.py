"""kit.recipes.compression (notebook 02's recipes) against hand computations on tiny models and data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from kit.data import load
from kit.frankwolfe import SFW, GroupKSupportBall, KSupportBall, L2Ball, sfw_setup
from kit.frankwolfe.penalties import PenalizedSGD
from kit.models import MLP, SmallCNN
from kit.recipes import compression as cx
from kit.recipes.frank_wolfe import SGD, Method

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load("digits", seed=0, n_train=300)


def test_global_compression_hits_the_sparsity_exactly():
    torch.manual_seed(0)
    model = MLP((20,), widths=(16,), num_classes=4)
    small = cx.compress(model, "global", 0.9, (20,))
    weights = [(m.weight_orig * m.weight_mask).detach() for m in small.model.modules() if isinstance(m, nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = 20 * 16 + 16 * 4
    assert zeros == round(0.9 * total)
    kept = torch.cat([w.flatten() for w in weights])
    smallest_kept = float(kept[kept != 0].abs().min())
    all_w = torch.cat([m.weight.detach().abs().flatten() for m in model.modules() if isinstance(m, nn.Linear)])
    assert smallest_kept == pytest.approx(float(np.sort(all_w.numpy())[round(0.9 * total)]))


def test_rank_compression_keeps_the_output_layer_and_truncates_the_rest():
    torch.manual_seed(0)
    model = MLP((30,), widths=(20,), num_classes=5)
    small = cx.compress(model, "rank", 0.5, (30,)).model
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    x = torch.randn(7, 30)
    # by hand: the hidden layer's weight truncated to floor(0.5 * 20) = 10 singular values
    u, s, vh = np.linalg.svd(layers[0].weight.detach().double().numpy(), full_matrices=False)
    w10 = (u[:, :10] * s[:10]) @ vh[:10]
    hidden = torch.relu(x.double() @ torch.from_numpy(w10).T + layers[0].bias.double())
    expected = hidden @ layers[1].weight.double().T + layers[1].bias.double()
    torch.testing.assert_close(small(x).double(), expected, rtol=1e-4, atol=1e-5)
    assert sum(isinstance(m, nn.Linear) for m in small.modules()) == 3  # hidden layer split in two, output kept


def test_filter_compression_zeroes_the_weakest_filters():
    model = SmallCNN((1, 8, 8), channels=(4,), num_classes=3)
    with torch.no_grad():
        conv = model.features[0]
        for i, scale in enumerate([3.0, 0.1, 2.0, 0.2]):
            conv.weight[i] = scale
    small = cx.compress(model, "filters", 0.5, (1, 8, 8)).model
    mask = small.features[0].weight_mask
    assert [bool(mask[i].any()) for i in range(4)] == [True, False, True, False]


def test_sweep_numbers_are_means_of_the_per_seed_accuracies(digits):
    result = cx.sweep((SGD,), digits, "global", (0.5, 0.9), seeds=(0, 1), epochs=1, progress=False)
    label = SGD.label
    for level in (0.5, 0.9):
        per_seed = result.compressed[label][level]
        assert len(per_seed) == 2
        assert result.mean(label, level) == pytest.approx(sum(per_seed) / 2)
        # each number is the test accuracy of that seed's model pruned by hand-checked global magnitude
        for run, acc in zip(result.runs[label], per_seed, strict=True):
            small = cx.compress(run.model, "global", level, run.data.input_shape)
            assert small.evaluate(run.data.test)["accuracy"] == acc
    curves = result.curves()[label]
    assert np.asarray(curves).shape == (2, 2)  # (seeds, levels) for kit.plots.band_curves
    assert result.rows()[0]["dense"] == pytest.approx(sum(result.dense[label]) / 2)
    assert set(result.to_dict()) >= {"how", "levels", "seeds", "dense", "compressed", "params_ratio"}
    assert result.params_ratio[label][0.9] < result.params_ratio[label][0.5] < 1.0


def test_methods_build_the_right_optimizers():
    torch.manual_seed(0)
    model = SmallCNN((1, 8, 8), channels=(4,), num_classes=3)
    opt = cx.GROUP_K_SUPPORT.optimizer_for()(model)
    kinds = [type(c) for c in opt.param_groups[0]["constraints"]]
    dims = [p.dim() for p in model.parameters()]
    assert kinds == [{4: GroupKSupportBall, 2: KSupportBall, 1: L2Ball}[d] for d in dims]
    assert isinstance(opt, SFW)
    nuclear = cx.NUCLEAR.optimizer_for()(model)
    assert isinstance(nuclear, PenalizedSGD) and nuclear.param_groups[0]["penalty"] == "nuclear"
    assert cx.PROX.optimizer_for()(model).param_groups[0]["prox"] is True
    assert SGD.optimizer_for() is None


def test_k_support_method_uses_k_and_width():
    torch.manual_seed(0)
    model = MLP((10,), widths=(40,), num_classes=2)
    opt = Method("ks", "k_support", k=0.25, width=7.0).optimizer_for()(model)
    first = opt.param_groups[0]["constraints"][0]
    assert isinstance(first, KSupportBall) and first.k == 100  # 25% of 10 * 40


def test_step_time_gives_one_positive_finite_time_per_method():
    # which method is cheapest is a speed claim: bench/compression.py measures it, no timed unit test does
    torch.manual_seed(0)
    batch = (torch.randn(32, 64), torch.randint(0, 10, (32,)))
    times = {m.label: cx.step_time(m, MLP((64,), widths=(64,)), batch, repeats=3) for m in (SGD, cx.NUCLEAR)}
    assert set(times) == {SGD.label, cx.NUCLEAR.label}
    assert all(0 < t < float("inf") for t in times.values())


def test_bad_input_fails_before_training(digits):
    with pytest.raises(ValueError, match="how"):
        cx.sweep((SGD,), digits, "channels", (0.5,))
    with pytest.raises(ValueError, match="levels"):
        cx.sweep((SGD,), digits, "global", (0.5, 1.0))
    with pytest.raises(ValueError, match="levels"):
        cx.sweep((SGD,), digits, "global", ())
    with pytest.raises(ValueError, match="methods"):
        cx.train((), digits)
    with pytest.raises(ValueError, match="sparsity"):
        cx.compress(MLP((4,), widths=(3,)), "global", 1.5, (4,))
    with pytest.raises(ValueError, match="by_dims"):
        sfw_setup("k_support", k=0.1, by_dims={1: "l5"})
    with pytest.raises(ValueError, match="by_dims key"):
        sfw_setup("k_support", k=0.1, by_dims={0: "l2"})
