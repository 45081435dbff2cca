"""kit.recipes.imp (notebook 03's recipes) on the digits data, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from kit.data import load
from kit.pruning import phase_sparsity, retrain_schedule
from kit.recipes import imp as px
from kit.schedules import steps_per_epoch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dense():
    return px.train_dense(load("digits", seed=0), 0, 2)


def test_dense_training_uses_the_linear_decay_it_reports(dense):
    steps = 2 * steps_per_epoch(len(dense.run.data.train), px.BATCH_SIZE)
    assert dense.steps == steps
    assert dense.schedule(0) == pytest.approx(px.LR) and dense.schedule(steps) == 0.0
    assert dense.run.history["lr"][0] == pytest.approx(px.LR * (1 - (steps // 2 - 1) / steps), rel=1e-6)


def test_prune_lands_on_the_target_and_leaves_the_dense_model(dense):
    before = [p.detach().clone() for p in dense.run.model.parameters()]
    result = px.prune(dense, 0.9, schedule="ALLR", retrain_epochs=3)
    assert [round(p.target_sparsity, 12) for p in result.phases] == [round(phase_sparsity(0.9, i, 3), 12)
                                                                      for i in (1, 2, 3)]
    assert result.phases[-1].zeros == round(0.9 * result.phases[-1].total)
    assert all((a == b).all() for a, b in zip(before, dense.run.model.parameters(), strict=True))


def test_cycle_trace_alternates_drops_and_recoveries(dense):
    result = px.prune(dense, 0.8, retrain_epochs=3)
    x, y = px.cycle_trace(result)
    assert len(x) == len(y) == 1 + 2 * 3
    assert y[0] == result.dense_accuracy
    assert y[1::2] == [p.accuracy_pruned for p in result.phases]
    assert y[2::2] == [p.accuracy for p in result.phases]
    assert x[2::2] == [1.0, 2.0, 3.0]


def test_schedule_curves_equal_the_retraining_schedules(dense):
    curves = px.schedule_curves(dense, 40, distance=0.2, pruned_fraction=0.4)
    assert set(curves) == {"FT", "LRW", "SLR", "CLR", "LLR", "ALLR"}
    allr = retrain_schedule("ALLR", retrain_steps=40, train_schedule=dense.schedule, train_steps=dense.steps,
                            distance=0.2, pruned_fraction=0.4)
    assert curves["ALLR"] == [allr(t) for t in range(40)]
    assert curves["FT"] == [curves["FT"][0]] * 40  # constant


def test_compare_grid_and_retraining_curve_shapes_and_means(dense):
    grid = px.compare([dense], (0.5, 0.9), {"FT": {"schedule": "FT"}}, retrain_epochs=3)
    assert np.asarray(grid.curves()["FT"]).shape == (1, 2)
    assert grid.rows()[0]["50%"] == grid.values["FT"][0.5][0]
    assert grid.reference["dense"] == [dense.run.test["accuracy"]]
    curve = px.retraining_curve([dense], 0.9, [0, 3])
    assert np.asarray(curve).shape == (1, 2)
    assert curve[0][0] == px.prune(dense, 0.9, retrain_epochs=0).accuracy  # prune only


def test_bad_input():
    with pytest.raises(ValueError, match="dense_runs"):
        px.compare([], (0.5,), {"FT": {"schedule": "FT"}})
    with pytest.raises(ValueError, match="budgets"):
        px.retraining_curve([], 0.9, [])
