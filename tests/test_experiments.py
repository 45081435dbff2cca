"""kit.recipes.common: the per-budget experiment data shared by the method notebooks."""

from __future__ import annotations

import pytest

from kit.recipes.common import experiment_data


def test_smoke_uses_one_seed_and_a_small_split():
    setting = experiment_data("smoke", seed=4)
    assert setting.seeds == [4]
    assert len(setting.data.train) == 600
    assert setting.source is setting.data  # every run trains on this one small split


def test_cpu_uses_consecutive_seeds_and_the_dataset_name():
    setting = experiment_data("cpu", seed=2, seeds=3)
    assert setting.seeds == [2, 3, 4]
    assert setting.source == "mnist5k"  # each seed splits the dataset anew
    assert len(setting.data.train) + len(setting.data.val) + len(setting.data.test) == 5000


def test_bad_input():
    with pytest.raises(ValueError, match="budget"):
        experiment_data("laptop")
    with pytest.raises(ValueError, match="seeds"):
        experiment_data("cpu", seeds=0)
    with pytest.raises(ValueError, match="smoke_train"):
        experiment_data("smoke", smoke_train=0)
