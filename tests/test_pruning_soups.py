"""kit.soups: merges, BatchNorm recalibration, metrics and SMS on the digits data, against hand computations.

Every number a soup function produces is recomputed here another way: state-dict averages and
distances with NumPy, BatchNorm statistics from the convolution outputs batch by batch, the ECE of a
six-sample example by hand, the ensemble from softmax outputs. SMS runs on a 64-16-10 MLP (1,184
prunable weights) and a tiny CNN with BatchNorm, one-epoch budgets.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from kit import data as data_mod
from kit.models import MLP, SmallCNN
from kit.pruning import (
    apply_masks,
    copy_model,
    effective_weight,
    gmp,
    imp,
    masks_for,
    masks_of,
    phase_seed,
    phase_sparsity,
    sparsity_report,
)
from kit.schedules import Cosine, steps_per_epoch
from kit.soups import (
    ensemble_accuracy,
    expected_calibration_error,
    greedy_soup,
    ingredient_values,
    interpolate,
    pairwise_distances,
    recalibrate_batchnorm,
    soup_gmp,
    sparse_model_soup,
    uniform_soup,
)
from kit.soups.sms import MIXED_SHIFTS
from kit.train import evaluate, fit

pytestmark = pytest.mark.usefixtures("one_thread")
# the modules themselves, for monkeypatching what they call
sms_mod = importlib.import_module("kit.soups.sms")
workers_mod = importlib.import_module("kit.soups.workers")

N = 64 * 16 + 16 * 10
SPE = math.ceil(1259 / 128)  # digits train split, batch 128
DENSE_EPOCHS = 2
SCHEDULE = Cosine(0.3, DENSE_EPOCHS * SPE)


@pytest.fixture(scope="module")
def digits() -> data_mod.Splits:
    return data_mod.load("digits", seed=0)


@pytest.fixture(scope="module")
def dense(digits, device) -> MLP:
    torch.manual_seed(0)
    model = MLP((1, 8, 8), widths=(16,), num_classes=10).to(device)  # soups of it follow it there
    fit(model, digits.train, epochs=DENSE_EPOCHS, lr_schedule=SCHEDULE, progress=False)
    return model


@pytest.fixture(scope="module")
def cnn(digits, device) -> SmallCNN:
    torch.manual_seed(1)
    model = SmallCNN((1, 8, 8), channels=(4, 6), num_classes=10, batchnorm=True, global_pool=False).to(device)
    fit(model, digits.train, epochs=1, lr=0.1, progress=False)
    return model


def pruned(model: nn.Module, sparsity: float = 0.5) -> nn.Module:
    work = copy_model(model)
    return apply_masks(work, masks_for("global", work, sparsity))


def retrained(model: nn.Module, digits, seed: int, lr: float = 0.05) -> nn.Module:
    work = copy_model(model)
    fit(work, digits.train, epochs=1, lr=lr, seed=seed, progress=False)
    return work


def perturbed(model: nn.Module, seed: int) -> nn.Module:
    """A copy with every float tensor but the masks moved by noise, and its batch counters changed."""
    work = copy_model(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in work.state_dict().items():
            if key.endswith("_mask"):
                continue
            if value.is_floating_point():
                value.add_(0.1 * torch.randn(value.shape, generator=g).to(value.device))
            else:
                value.add_(seed + 1)
    return work


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state on the CPU (models may train on the suite's device; a checkpoint loads on the CPU)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------- merges

def test_uniform_soup_is_the_hand_computed_average_with_masks_kept(cnn):
    base = pruned(cnn)
    ingredients = [perturbed(base, seed) for seed in range(3)]
    before = [state_of(m) for m in ingredients]
    soup = uniform_soup(ingredients)
    states = [{k: v.numpy().astype(np.float64) for k, v in s.items()} for s in before]
    got = state_of(soup)
    assert list(got) == list(before[0])
    masks = [k for k in got if k.endswith("_mask")]
    assert masks == ["features.0.weight_mask", "features.4.weight_mask", "head.1.weight_mask"]
    for key, value in got.items():
        if key in masks or key.endswith("num_batches_tracked"):
            assert torch.equal(value, before[0][key]), key  # masks bit-identical, counters from the first
        else:
            expected = (states[0][key] + states[1][key] + states[2][key]) / 3
            if key.endswith("_orig"):  # the mask hook keeps masked entries of *_orig at zero
                expected = expected * states[0][key.removesuffix("_orig") + "_mask"]
            np.testing.assert_allclose(value.numpy(), expected, rtol=1e-6, atol=1e-8, err_msg=key)
    for model, state in zip(ingredients, before, strict=True):
        assert_same_state(state_of(model), state)  # inputs untouched
    assert soup is not ingredients[0]
    # the cached weight the forward pass uses is the merged one, masked
    conv = soup.features[0]
    assert torch.equal(conv.weight.detach(), effective_weight(conv))
    assert sparsity_report(soup).zeros == sparsity_report(ingredients[0]).zeros


def test_a_soup_of_one_model_or_of_copies_is_that_model(cnn):
    base = pruned(cnn)
    assert_same_state(state_of(uniform_soup([base])), state_of(base))
    assert_same_state(state_of(uniform_soup([base, copy_model(base), copy_model(base)])), state_of(base))


def test_merges_name_the_layer_where_masks_differ(cnn, digits):
    a = pruned(cnn)
    b = copy_model(a)
    with torch.no_grad():
        b.head[1].weight_mask.view(-1)[:3] = 1 - b.head[1].weight_mask.view(-1)[:3]
    with pytest.raises(ValueError, match=r"masks differ at layer 'head\.1' \(weight\): 3 of"):
        uniform_soup([a, a, b])
    with pytest.raises(ValueError, match=r"masks differ at layer 'head\.1'"):
        greedy_soup([a, b], digits.val)
    with pytest.raises(ValueError, match=r"masks differ at layer 'head\.1'"):
        interpolate(a, b, [0.5], digits.test)
    with pytest.raises(ValueError, match=r"masks differ at layer 'features\.0' \(weight\): masked in models\[0\]"):
        uniform_soup([a, cnn])


def test_merges_reject_other_architectures(dense, cnn):
    narrow = MLP((1, 8, 8), widths=(8,), num_classes=10)
    with pytest.raises(ValueError, match=r"another architecture.*'net\.1\.weight'"):
        uniform_soup([dense, narrow])
    with pytest.raises(ValueError, match=r"models\[1\] is a MLP but models\[0\] a SmallCNN"):
        uniform_soup([cnn, dense])
    with pytest.raises(ValueError, match="at least one"):
        uniform_soup([])
    with pytest.raises(TypeError, match="sequence"):
        uniform_soup(dense)


def test_greedy_soup_never_lowers_validation_accuracy(dense, digits):
    base = pruned(dense, 0.6)
    ingredients = [retrained(base, digits, seed) for seed in range(3)]
    ingredients.append(perturbed(ingredients[0], 7))  # a poor candidate, scored last
    scores = [evaluate(m, digits.val)["accuracy"] for m in ingredients]
    soup, selected = greedy_soup(ingredients, digits.val, return_selected=True)
    assert selected[0] == int(np.argmax(scores))
    assert evaluate(soup, digits.val)["accuracy"] >= max(scores)
    assert masks_of(soup).keys() == masks_of(base).keys()
    assert all(torch.equal(masks_of(soup)[k], masks_of(base)[k]) for k in masks_of(base))


def test_greedy_soup_that_accepts_only_the_best_is_the_best(dense, digits):
    best = retrained(pruned(dense, 0.6), digits, 0)
    ruined = perturbed(best, 3)
    with torch.no_grad():
        for p in ruined.parameters():
            p.mul_(-5.0)  # averaging with this one ruins any soup
    soup, selected = greedy_soup([ruined, best], digits.val, return_selected=True)
    assert selected == [1]
    assert_same_state(state_of(soup), state_of(best))
    assert soup is not best


# ---------------------------------------------------------------- BatchNorm recalibration

def direct_statistics(model: SmallCNN, loader, batches: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per BatchNorm, the mean over batches of each batch's channel mean and unbiased variance of its input.

    The forward pass is written out: in train mode every BatchNorm normalises with the batch's own
    (biased) statistics, which is what the next layer's input depends on.
    """
    conv1, bn1, conv2, bn2 = model.features[0], model.features[1], model.features[4], model.features[5]
    sums = [[torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)],
            [torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)]]
    count = 0
    with torch.no_grad():
        for k, (x, _) in enumerate(loader):
            if batches is not None and k >= batches:
                break
            h = x.to(conv1.weight.device)
            for i, (conv, bn) in enumerate(((conv1, bn1), (conv2, bn2))):
                z = conv(h)
                mean, var = z.mean(dim=(0, 2, 3)), z.var(dim=(0, 2, 3), unbiased=False)
                n = z.numel() / z.shape[1]
                sums[i][0] += mean.double().cpu()
                sums[i][1] += (var * n / (n - 1)).double().cpu()
                zn = (z - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + bn.eps)
                h = nn.functional.max_pool2d(torch.relu(zn * bn.weight[None, :, None, None]
                                                        + bn.bias[None, :, None, None]), 2)
            count += 1
    return [(s[0] / count, s[1] / count) for s in sums]


@pytest.mark.parametrize("batches", [None, 3])
def test_recalibrated_batchnorm_statistics_equal_the_direct_computation(cnn, digits, batches):
    model = copy_model(cnn)
    norms = [model.features[1], model.features[5]]
    with torch.no_grad():
        for bn in norms:
            bn.running_mean.fill_(5.0)
            bn.running_var.fill_(7.0)
    norms[0].momentum = 0.3
    model.eval()
    model.head.train()  # a mixed state, to be restored module by module
    loader = DataLoader(digits.train, batch_size=100, shuffle=False)  # 12 full batches and one of 59
    recalibrate_batchnorm(model, loader, batches=batches)
    expected = direct_statistics(model, loader, batches)
    for bn, (mean, var) in zip(norms, expected, strict=True):
        torch.testing.assert_close(bn.running_mean.double().cpu(), mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var.double().cpu(), var, rtol=1e-5, atol=1e-6)
        assert int(bn.num_batches_tracked) == (13 if batches is None else 3)
    assert norms[0].momentum == 0.3 and norms[1].momentum == 0.1
    assert not model.training and not model.features[1].training and model.head.training


def test_recalibration_leaves_a_model_without_batchnorm_alone(dense, digits):
    model = copy_model(dense)
    before = state_of(model)
    assert recalibrate_batchnorm(model, digits.train) is model
    assert_same_state(state_of(model), before)


# ---------------------------------------------------------------- metrics

def test_ece_of_a_hand_computed_example():
    # confidences 0.62, 0.71, 0.83, 0.91, 0.92, 0.97 (of class 0); 0.91 and 0.92 share the bin (13/15, 14/15]
    confidence = [0.62, 0.71, 0.83, 0.91, 0.92, 0.97]
    correct = [False, True, True, True, False, True]
    probs = torch.tensor([[c, (1 - c) / 2, (1 - c) / 2] for c in confidence])
    targets = torch.tensor([0 if ok else 1 for ok in correct])
    by_hand = (0.62 + (1 - 0.71) + (1 - 0.83) + (1 - 0.97)) / 6 + 2 / 6 * abs(0.5 - (0.91 + 0.92) / 2)
    assert by_hand == pytest.approx(1.94 / 6)
    assert expected_calibration_error(probs, targets) == pytest.approx(by_hand, abs=1e-7)
    # one bin: |mean accuracy - mean confidence|
    assert expected_calibration_error(probs.numpy(), targets.numpy(), bins=1) == pytest.approx(
        abs(4 / 6 - sum(confidence) / 6), abs=1e-7)
    with pytest.raises(ValueError, match="softmax"):
        expected_calibration_error(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="targets"):
        expected_calibration_error(probs, targets[:3])


def flat_numpy(model: nn.Module) -> np.ndarray:
    parts = []
    for name, p in model.named_parameters():
        value = p.detach().cpu().numpy().astype(np.float64)
        if name.endswith("_orig"):
            value = value * dict(model.named_buffers())[name[:-5] + "_mask"].cpu().numpy()
        parts.append(value.ravel())
    return np.concatenate(parts)


def test_pairwise_distances_and_angles_match_numpy(cnn):
    base = pruned(cnn)
    models = [perturbed(base, seed) for seed in range(3)]
    distances, angles = pairwise_distances(models)
    vectors = [flat_numpy(m) for m in models]
    for a in range(3):
        for b in range(3):
            u, v = vectors[a], vectors[b]
            assert distances[a, b] == pytest.approx(np.linalg.norm(u - v), rel=1e-9, abs=1e-12)
            cosine = np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)
            assert angles[a, b] == pytest.approx(0.0 if a == b else np.degrees(np.arccos(cosine)), abs=1e-6)
    assert distances.shape == angles.shape == (3, 3)


def test_ensemble_accuracy_averages_softmax_outputs(dense, digits, device):
    models = [retrained(pruned(dense, 0.9), digits, seed, lr=0.2) for seed in range(3)]
    x, y = digits.test.tensors
    with torch.no_grad():
        logits = [m.eval()(x.to(device)).double().cpu().numpy() for m in models]
    probs = [np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
             for z in logits]
    by_hand = float((np.mean(probs, axis=0).argmax(1) == y.numpy()).mean())
    assert ensemble_accuracy(models, digits.test) == pytest.approx(by_hand, abs=1e-12)


def test_interpolation_runs_from_one_model_to_the_other(dense, digits):
    base = pruned(dense, 0.6)
    a, b = retrained(base, digits, 0), retrained(base, digits, 1)
    curve = interpolate(a, b, [0.0, 0.5, 1.0], digits.test)
    assert curve[0] == evaluate(a, digits.test)["accuracy"]
    assert curve[1] == evaluate(uniform_soup([a, b]), digits.test)["accuracy"]
    assert curve[2] == evaluate(b, digits.test)["accuracy"]


# ---------------------------------------------------------------- SMS

def sms(model: nn.Module, data, **kwargs):
    args = dict(target_sparsity=0.9, phases=2, ingredients=2, retrain_epochs=2, train_schedule=SCHEDULE,
                train_steps=DENSE_EPOCHS * SPE, progress=False)
    args.update(kwargs)
    return sparse_model_soup(model, data, **args)


@pytest.fixture(scope="module")
def sms_run(dense, digits, tmp_path_factory):
    directory = tmp_path_factory.mktemp("sms")
    return sms(dense, digits, checkpoint_dir=directory), directory


def test_soup_is_exactly_as_sparse_as_each_ingredient_on_the_schedule(sms_run):
    result, _ = sms_run
    assert [p.phase for p in result.phases] == [1, 2]
    for i, p in enumerate(result.phases, start=1):
        assert p.target_sparsity == phase_sparsity(0.9, i, 2)
        assert p.target_sparsity == pytest.approx(1 - (1 - 0.9) ** (i / 2), abs=1e-15)
        assert p.total == N and p.zeros == round(p.target_sparsity * N)
        assert all(x.zeros == p.zeros and x.sparsity == p.sparsity for x in p.ingredients)
        assert len(p.ingredients) == 2 and p.selected == [0, 1] and not p.recalibrated
        assert p.ingredients[0].seed != p.ingredients[1].seed
        assert np.asarray(p.distances).shape == (2, 2) and p.distances[0][1] > 0 and p.angles[0][1] > 0
        assert 0 <= p.ece <= 1 and 0 <= p.ensemble_ece <= 1 and 0 <= p.best_ece <= 1
    assert result.sparsity == sparsity_report(result.model).sparsity
    assert result.phases[-1].zeros == round(0.9 * N)
    assert len(result.rows()) == 2 and len(result.ingredient_rows()) == 4


def test_resume_equals_the_uninterrupted_run(sms_run, dense, digits):
    result, directory = sms_run
    (directory / "imp-phase-002.pt").unlink()
    resumed = sms(dense, digits, checkpoint_dir=directory)
    assert resumed.resumed_phases == 1
    assert resumed.phases == result.phases
    assert resumed.to_dict()["phases"][1]["accuracy"] == result.phases[1].accuracy
    assert_same_state(state_of(resumed.model), state_of(result.model))
    with pytest.raises(ValueError, match=r"different IMP run.*ingredients"):
        sms(dense, digits, checkpoint_dir=directory, ingredients=3)


def test_parallel_ingredients_equal_sequential_ones(sms_run, dense, digits):
    result, _ = sms_run
    parallel = sms(dense, digits, workers=2)
    assert parallel.phases == result.phases
    assert_same_state(state_of(parallel.model), state_of(result.model))


def test_one_ingredient_is_imp(dense, digits):
    soup = sms(dense, digits, ingredients=1, schedule="ALLR")
    reference = imp(dense, digits, target_sparsity=0.9, phases=2, retrain_epochs=2, train_schedule=SCHEDULE,
                    train_steps=DENSE_EPOCHS * SPE, schedule="ALLR", progress=False)
    assert [p.accuracy for p in soup.phases] == [p.accuracy for p in reference.phases]
    assert_same_state(state_of(soup.model), state_of(reference.model))


def test_mixed_ingredients_differ_in_batch_order_weight_decay_and_augmentation(dense, digits):
    result = sms(dense, digits, phases=1, retrain_epochs=1, ingredients=3, vary="mixed", weight_decay=1e-3)
    ingredients = result.phases[0].ingredients
    assert len({x.seed for x in ingredients}) == 3
    assert [x.weight_decay for x in ingredients] == pytest.approx([5e-4, 1e-3, 2e-3])
    assert MIXED_SHIFTS == (0, 1, 2)  # ingredient j shifts by up to MIXED_SHIFTS[j] pixels
    with pytest.raises(ValueError, match="values= does not apply"):
        sms(dense, digits, phases=1, retrain_epochs=1, ingredients=3, vary="mixed", values=[1, 2, 3])


@pytest.mark.parametrize("vary", ["weight_decay", "lr", "retrain_length"])
def test_the_varied_setting_follows_the_documented_grid(dense, digits, vary):
    result = sms(dense, digits, phases=1, retrain_epochs=1, ingredients=3, vary=vary, weight_decay=1e-3)
    ingredients = result.phases[0].ingredients
    assert [x.value for x in ingredients] == ingredient_values(vary, 3, weight_decay=1e-3)
    assert len({x.seed for x in ingredients}) == 1  # only the varied setting differs
    if vary == "weight_decay":
        assert [x.weight_decay for x in ingredients] == pytest.approx([5e-4, 1e-3, 2e-3])
    elif vary == "lr":
        peaks = [x.lr_peak for x in ingredients]
        assert peaks == pytest.approx([0.5 * peaks[1], peaks[1], 2 * peaks[1]])
    else:
        assert [x.steps for x in ingredients] == [round(0.5 * SPE), SPE, round(1.5 * SPE)]
        assert [x.history[-1]["step"] for x in ingredients] == [x.steps for x in ingredients]


def cnn_sms(cnn, digits, **kwargs):
    spe = steps_per_epoch(len(digits.train), 128)
    args = dict(target_sparsity=0.5, phases=1, retrain_epochs=1, ingredients=2, train_schedule=0.1, train_steps=spe,
                recalibrate_batches=4)
    return sms(cnn, digits, **{**args, **kwargs})


@pytest.mark.parametrize("merge", ["uniform", "greedy"])
def test_sms_on_a_batchnorm_cnn(cnn, digits, merge):
    p = cnn_sms(cnn, digits, merge=merge).phases[0]
    if merge == "greedy":
        assert p.val_accuracy >= max(x.val_accuracy for x in p.ingredients)
    else:
        assert p.selected == [0, 1]
    assert p.recalibrated == (len(p.selected) > 1)
    assert all(x.zeros == p.zeros for x in p.ingredients) and p.zeros == round(0.5 * p.total)


def test_recalibrated_ingredients_get_the_soup_s_batches(cnn, digits):
    plain = cnn_sms(cnn, digits, ingredients=1)
    assert not plain.phases[0].recalibrated  # a soup of one keeps its ingredient's statistics
    recalibrated = cnn_sms(cnn, digits, ingredients=1, recalibrate_ingredients=True)
    expected = recalibrate_batchnorm(plain.model, digits.train, batches=4, seed=phase_seed(0, 1))
    assert_same_state(state_of(recalibrated.model), state_of(expected))


def test_soups_on_gmp_keep_gmp_s_final_mask(digits):
    torch.manual_seed(2)
    start = MLP((1, 8, 8), widths=(16,), num_classes=10)
    result = soup_gmp(start, digits, target_sparsity=0.8, epochs=3, ingredients=2, retrain_epochs=1, lr=0.2,
                      progress=False)
    reference = gmp(start, digits, target_sparsity=0.8, epochs=3, lr=0.2, progress=False)
    p = result.phases[0]
    assert p.pruned_fraction == 0.0 and p.zeros == round(0.8 * N)
    assert all(x.zeros == p.zeros for x in p.ingredients)
    assert result.base_accuracy == reference.accuracy and len(result.base_phases) == len(reference.phases)
    final, expected = masks_of(result.model), masks_of(reference.model)
    assert final.keys() == expected.keys() and all(torch.equal(final[k], expected[k]) for k in final)


def test_soups_on_gmp_resume_after_the_gmp_run(digits, tmp_path, monkeypatch):
    torch.manual_seed(3)
    start = MLP((1, 8, 8), widths=(16,), num_classes=10)
    args = dict(target_sparsity=0.8, epochs=2, ingredients=2, retrain_epochs=1, progress=False, checkpoint_dir=tmp_path)
    first = soup_gmp(start, digits, **args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imp-phase-000.pt", "imp-phase-001.pt"]
    (tmp_path / "imp-phase-001.pt").unlink()
    monkeypatch.setattr(sms_mod, "gmp", lambda *a, **k: pytest.fail("the GMP run was not resumed"))
    again = soup_gmp(start, digits, **args)
    assert again == first
    assert_same_state(state_of(again.model), state_of(first.model))


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"ingredients": 0}, ValueError, r"ingredients must lie in \[1"),
    ({"vary": "dropout"}, ValueError, "seed, weight_decay, retrain_length, lr"),
    ({"merge": "mean"}, ValueError, "uniform, greedy"),
    ({"vary": "weight_decay"}, ValueError, "weight_decay > 0 or values="),
    ({"vary": "lr", "values": [1.0]}, ValueError, "one value per ingredient"),
    ({"vary": "lr", "values": [1.0, -1.0]}, ValueError, r"values\[1\]"),
    ({"values": [1.0, 2.0]}, ValueError, "does not apply to vary='seed'"),
    ({"retrain_epochs": 1}, ValueError, "at least phases=2"),
    ({"workers": 0}, ValueError, "workers"),
    ({"schedule": "XYZ"}, ValueError, "SLR"),
])
def test_bad_input_fails_before_any_training(dense, digits, monkeypatch, kwargs, error, match):
    def no_work(*args, **kw):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(workers_mod, "fit", no_work)
    monkeypatch.setattr(sms_mod, "gmp", no_work)
    monkeypatch.setattr(sms_mod, "accuracy", no_work)
    with pytest.raises(error, match=match):
        sms(dense, digits, **kwargs)
    if "retrain_epochs" not in kwargs:
        with pytest.raises(error, match=match):
            soup_gmp(dense, digits, target_sparsity=0.5, epochs=2, **{"ingredients": 2, "retrain_epochs": 1, **kwargs})
