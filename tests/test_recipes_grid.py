"""kit.recipes.ResultGrid (the one accumulator of every recipe) and kit.budget.PerBudget, by hand."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit.budget import PerBudget, UnknownBudgetError
from kit.recipes import ResultGrid


def test_grid_over_levels_by_hand():
    grid = ResultGrid((0.5, 0.9), label_key="setting", column="{:.0%}", reference={"dense": [0.97, 0.96]})
    for label, values in {"FT": [(0.9, 0.7), (0.92, 0.72)], "SLR": [(0.93, 0.85), (0.94, 0.87)]}.items():
        for at_half, at_ninety in values:
            grid.add(label, 0.5, at_half)
            grid.add(label, 0.9, at_ninety)
    assert grid.labels == ["FT", "SLR"]
    assert grid.get("SLR", 0.9) == [0.85, 0.87]
    assert grid.mean("FT", 0.9) == pytest.approx(0.71)
    assert grid.std("FT", 0.9) == pytest.approx(statistics.stdev([0.7, 0.72]))
    assert grid.gain("SLR", "FT", 0.9) == pytest.approx([0.15, 0.15])
    assert grid.rows() == [{"setting": "FT", "50%": pytest.approx(0.91), "90%": pytest.approx(0.71)},
                           {"setting": "SLR", "50%": pytest.approx(0.935), "90%": pytest.approx(0.86)}]
    assert grid.curves() == {"FT": [[0.9, 0.7], [0.92, 0.72]], "SLR": [[0.93, 0.85], [0.94, 0.87]]}
    assert grid.to_dict() == {"levels": [0.5, 0.9], "dense": [0.97, 0.96],
                              "values": {"FT": {"0.5": [0.9, 0.92], "0.9": [0.7, 0.72]},
                                         "SLR": {"0.5": [0.93, 0.94], "0.9": [0.85, 0.87]}}}


def test_plain_comparison_has_one_level():
    grid = ResultGrid(label_key="method")
    for v in (0.9, 0.8):
        grid.add("SGD", None, v)
    assert grid.mean("SGD") == pytest.approx(0.85)
    assert grid.rows() == [{"method": "SGD", "mean": pytest.approx(0.85), "std": pytest.approx(0.0707, abs=1e-4),
                            "values": [0.9, 0.8]}]
    grid.add("one seed", None, 0.5)
    assert grid.std("one seed") == 0.0


def test_grid_errors_name_the_problem():
    grid = ResultGrid((0.5,))
    with pytest.raises(ValueError, match=r"level 0.7 is not one of the grid's levels \(0.5,\)"):
        grid.add("a", 0.7, 1.0)
    with pytest.raises(KeyError, match="no results for 'b'"):
        grid.mean("b", 0.5)
    with pytest.raises(TypeError, match="label must be a string"):
        grid.add(3, 0.5, 1.0)
    with pytest.raises(TypeError, match="levels"):
        ResultGrid(())
    with pytest.raises(ValueError, match="distinct"):
        ResultGrid((0.5, 0.5))


@given(st.lists(st.lists(st.floats(0, 1), min_size=2, max_size=2), min_size=1, max_size=5))
def test_curves_rows_and_means_agree(per_seed):
    grid = ResultGrid((1, 2))
    for a, b in per_seed:
        grid.add("x", 1, a)
        grid.add("x", 2, b)
    assert grid.curves()["x"] == [list(p) for p in per_seed]
    row = grid.rows()[0]
    assert row["100%"] == pytest.approx(statistics.mean(a for a, _ in per_seed))


def test_per_budget_reads_through_choose(monkeypatch):
    epochs = PerBudget(smoke=1, cpu=10, gpu=100)
    assert (epochs("smoke"), epochs["cpu"], epochs("gpu")) == (1, 10, 100)
    monkeypatch.setenv("KIT_BUDGET", "smoke")
    assert epochs() == 1
    with pytest.raises(UnknownBudgetError, match="laptop"):
        epochs("laptop")
