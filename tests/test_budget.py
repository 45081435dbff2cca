"""kit.budget: budget resolution from argument/environment, device choice, gpu-without-accelerator warning."""

from __future__ import annotations

import warnings

import pytest
import torch

import kit
from kit import budget as kb


def test_argument_wins_over_environment(monkeypatch):
    monkeypatch.setenv("KIT_BUDGET", "gpu")
    assert kb.get_budget("smoke") == "smoke"
    assert kb.get_budget(" CPU ") == "cpu"


def test_environment_then_default(monkeypatch):
    monkeypatch.setenv("KIT_BUDGET", "smoke")
    assert kb.get_budget() == "smoke"
    monkeypatch.delenv("KIT_BUDGET")
    assert kb.get_budget() == "cpu"


@pytest.mark.parametrize("bad", ["tiny", "GPU2", ""])
def test_unknown_budget_lists_the_three(bad, monkeypatch):
    monkeypatch.delenv("KIT_BUDGET", raising=False)
    with pytest.raises(ValueError) as err:
        kb.get_budget(bad)
    assert all(name in str(err.value) for name in ("smoke", "cpu", "gpu"))


def test_unknown_budget_from_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("KIT_BUDGET", "huge")
    with pytest.raises(ValueError, match="KIT_BUDGET"):
        kb.get_budget()


def test_budget_type_error():
    with pytest.raises(TypeError, match="budget"):
        kb.get_budget(3)


def test_choose_picks_by_budget():
    assert [kb.choose(b, smoke=1, cpu=10, gpu=100) for b in kb.BUDGETS] == [1, 10, 100]


def test_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert kb.get_device().type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert kb.get_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert kb.get_device().type == "cuda"


def test_prefer_cuda_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA"):
        kb.get_device("cuda")


def test_gpu_budget_without_accelerator_warns_and_runs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="no CUDA/MPS"):
        name, dev = kb.resolve("gpu")
    assert (name, dev.type) == ("gpu", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kb.resolve("cpu")[0] == "cpu"


def test_setup_prints_budget_and_device(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    name, dev = kit.setup("smoke", seed=3)
    out = capsys.readouterr().out
    assert "budget=smoke" in out and "device=cpu" in out
    assert (name, dev.type) == ("smoke", "cpu")
    assert kit.results._meta["seed"] == 3


def test_budget_table_has_three_rows():
    assert [r["budget"] for r in kb.budget_table()] == list(kb.BUDGETS)
