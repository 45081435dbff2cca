"""Bad input to the core modules (train, plots, results, budget, bench results): a clear error naming the problem
where torch would raise something raw, and nothing trained or written before the arguments are checked."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kit import plots, results
from kit.budget import get_device
from kit.models import MLP
from kit.train import evaluate, fit, predict

BENCH_COMMON = Path(__file__).resolve().parent.parent / "bench" / "common.py"


def data(n: int = 32, features: int = 6, classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g))


def model(features: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return MLP((features,), widths=(8,), num_classes=classes)


def weights(m: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


def test_an_optimizer_over_another_model_is_refused_before_training():
    net, other = model(), model()
    before = weights(net)
    with pytest.raises(ValueError, match="optimizer updates 4 of its 4 parameters that are not the model's"):
        fit(net, data(), optimizer=torch.optim.SGD(other.parameters(), lr=0.1), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, weights(net), strict=True))


@pytest.mark.parametrize(("schedule", "match"), [
    (lambda t: -0.1, r"lr_schedule\(0\) returned -0.1"),
    (lambda t: math.nan if t == 1 else 0.1, r"lr_schedule\(1\) returned nan"),  # the second epoch's step
    (lambda t: math.inf, "finite"), (lambda t: "fast", "a number")])
def test_a_schedule_with_a_negative_or_non_finite_rate_is_refused_before_training(schedule, match):
    net = model()
    before = weights(net)
    with pytest.raises((ValueError, TypeError), match=match):
        fit(net, data(), epochs=2, lr_schedule=schedule, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, weights(net), strict=True))


def test_inputs_that_do_not_fit_the_model_get_a_clear_error():
    with pytest.raises(ValueError, match=r"train_data: the model cannot take a batch of inputs of shape \(32, 5\)"):
        fit(model(features=6), data(features=5), batch_size=32, progress=False)
    with pytest.raises(ValueError, match=r"data: the model cannot take a batch of inputs of shape \(32, 5\)"):
        predict(model(features=6), data(features=5))


@pytest.mark.parametrize(("targets", "error", "match"), [
    (torch.full((32,), 7), ValueError, r"class indices in \[0, 3\).*got 7"),
    (torch.full((32,), -1), ValueError, r"got -1"),
    (torch.rand(32), ValueError, "class indices \\(integers\\) or probability vectors"),
    (torch.zeros(32, dtype=torch.bool), TypeError, "integer class indices"),
])
def test_classification_targets_are_checked(targets, error, match):
    bad = TensorDataset(torch.randn(32, 6), targets)
    with pytest.raises(error, match=match):
        fit(model(), bad, progress=False)
    with pytest.raises(error, match=match):
        evaluate(model(), bad)


def test_soft_targets_of_the_output_shape_still_train():
    soft = TensorDataset(torch.randn(32, 6), torch.softmax(torch.randn(32, 3), -1))
    assert len(fit(model(), soft, progress=False).records) == 1


@pytest.mark.parametrize(("call", "match"), [
    (lambda: plots.image_grid(torch.zeros(0, 1, 4, 4)), "non-empty"),
    (lambda: plots.mosaic(torch.zeros(2, 1, 4, 4), ncols=0), r"ncols must lie in \[1"),
    (lambda: plots.weight_histogram(torch.zeros(0)), "empty"),
    (lambda: plots.weight_histogram({"a": torch.zeros(3), "b": torch.zeros(0)}), "'b'"),
])
def test_plots_refuse_empty_input_clearly(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_truncated_results_file_is_named(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"meta": {"budget": "cpu"}, "values": {"acc')
    with pytest.raises(ValueError, match=r"run\.json is truncated"):
        results.load(path)


@pytest.mark.parametrize("prefer", ["tpu", "gpu", "cuda:99" if torch.cuda.is_available() else "cuda", "mps"])
def test_unknown_or_missing_devices_are_refused_clearly(prefer):
    if prefer == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match="prefer"):
        get_device(prefer)


def bench_common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCH_COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_results_are_written_atomically_and_survive_a_truncated_previous_file(tmp_path, monkeypatch, capsys):
    common = bench_common()
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setitem(common._DEVICE, "device", torch.device("cpu"))  # cpu results: the folder itself
    (tmp_path / "demo.json").write_text('{"benchmark": "demo", "accuracy": {"a": 1')  # killed mid-write
    path = common.write_result("demo", {"speed": 1.0}, keep=("accuracy",))
    assert "unreadable" in capsys.readouterr().out
    written = json.loads(path.read_text())
    assert written["speed"] == 1.0 and "accuracy" not in written
    common.write_result("demo", {"speed": 2.0, "accuracy": {"a": 3}})
    common.write_result("demo", {"speed": 3.0}, keep=("accuracy",))
    again = json.loads(path.read_text())
    assert again["accuracy"] == {"a": 3} and again["speed"] == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"]  # no temporary files left


def test_a_part_kept_twice_keeps_the_date_it_was_measured(tmp_path, monkeypatch):
    common = bench_common()
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setitem(common._DEVICE, "device", torch.device("cpu"))
    clock = iter(["2026-01-01 10:00:00", "2026-02-01 10:00:00", "2026-03-01 10:00:00"])
    monkeypatch.setattr(common.time, "strftime", lambda fmt: next(clock))
    common.write_result("demo", {"speed": 1.0, "accuracy": {"a": 3}})
    common.write_result("demo", {"speed": 2.0}, keep=("accuracy",))
    path = common.write_result("demo", {"speed": 3.0}, keep=("accuracy",))
    written = json.loads(path.read_text())
    assert written["machine"]["date"] == "2026-03-01 10:00:00"
    assert written["carried_over"] == {"accuracy": "2026-01-01 10:00:00"}
