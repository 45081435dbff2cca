"""kit.recipes.soups (notebook 04's recipes) against hand computations, on the digits data.

Tiny models (MLP 64-16-10; a CNN of 4 channels with BatchNorm), one dense epoch, one retraining epoch:
each recipe's numbers are recomputed here from kit's primitives (imp, evaluate, recalibrate_batchnorm,
interpolate's end points, the per-ingredient records).
"""

from __future__ import annotations

import statistics

import pytest

from kit import data as data_mod
from kit.pruning import imp, masks_of, sparsity_report
from kit.recipes import imp as px
from kit.recipes import soups as sx
from kit.soups import recalibrate_batchnorm
from kit.train import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> data_mod.Splits:
    return data_mod.load("digits", seed=0)


@pytest.fixture(scope="module")
def mlp(digits) -> px.DenseRun:
    return px.train_dense(digits, 0, 1, widths=(16,))


@pytest.fixture(scope="module")
def cnn(digits) -> px.DenseRun:
    return px.train_dense(digits, 0, 1, model="cnn", channels=(4,))


def test_compare_records_what_sms_and_imp_give_by_hand(mlp):
    grid = sx.compare_sms_imp([mlp], (0.7,), ingredients=2, retrain_epochs=1)
    result = sx.sms(mlp, 0.7, ingredients=2, retrain_epochs=1)
    last = result.phases[-1]
    best = max(last.ingredients, key=lambda x: x.val_accuracy)
    assert grid.accuracy.values["soup"][0.7] == [last.accuracy]
    assert last.accuracy == pytest.approx(evaluate(result.model, mlp.run.data.test)["accuracy"])
    assert grid.accuracy.values["best ingredient"][0.7] == [best.accuracy]
    assert grid.accuracy.values["ensemble"][0.7] == [last.ensemble_accuracy]
    assert grid.ece.values["soup"][0.7] == [last.ece]
    # IMP with the soup's total retraining: 2 ingredients x 1 epoch = 2 epochs
    by_hand = imp(mlp.run.model, mlp.run.data, target_sparsity=0.7, phases=1, retrain_epochs=2,
                  train_schedule=mlp.schedule, train_steps=mlp.steps, momentum=px.MOMENTUM,
                  weight_decay=px.WEIGHT_DECAY, batch_size=px.BATCH_SIZE, seed=0, progress=False)
    assert grid.accuracy.values["IMP"][0.7] == [by_hand.accuracy]
    assert grid.sparsity_equal and all(x.zeros == last.zeros for x in last.ingredients)
    assert grid.gain(0.7) == [last.accuracy - best.accuracy]
    assert sx.mean_gain(grid, "IMP") == pytest.approx(last.accuracy - by_hand.accuracy)
    row = grid.rows()[0]
    assert row["sparsity"] == 0.7 and row["soup"] == last.accuracy and row["ECE best ingredient"] == best.ece


def test_imp_on_batchnorm_model_is_scored_after_recalibration(cnn):
    got = sx.imp_equal_budget(cnn, 0.5, ingredients=2, retrain_epochs=1)
    model = imp(cnn.run.model, cnn.run.data, target_sparsity=0.5, phases=1, retrain_epochs=2,
                train_schedule=cnn.schedule, train_steps=cnn.steps, momentum=px.MOMENTUM,
                weight_decay=px.WEIGHT_DECAY, batch_size=px.BATCH_SIZE, seed=0, progress=False).model
    recalibrate_batchnorm(model, cnn.run.data.train, batch_size=px.BATCH_SIZE, seed=0)
    assert got == pytest.approx(evaluate(model, cnn.run.data.test)["accuracy"])


def test_interpolation_end_points_are_the_models_and_the_mask_is_shared(mlp, digits):
    other = px.train_dense(digits, 1, 1, widths=(16,))
    alphas = [0.0, 0.5, 1.0]
    line = sx.interpolation(mlp, other, 0.8, alphas, retrain_epochs=1)
    a, b = sx.retrained_copies(mlp, 0.8, (0, 1), retrain_epochs=1)
    same, dense = line.curves.values()
    assert same[0] == pytest.approx(evaluate(a, digits.test)["accuracy"])
    assert same[2] == pytest.approx(evaluate(b, digits.test)["accuracy"])
    assert dense[0] == pytest.approx(mlp.run.test["accuracy"])
    assert dense[2] == pytest.approx(evaluate(other.run.model, digits.test)["accuracy"])
    for (_, ma), (_, mb) in zip(masks_of(a).items(), masks_of(b).items(), strict=True):
        assert (ma == mb).all()
    assert line.sparsity["copy A"] == line.sparsity["copy B"] == line.sparsity["their average"]
    assert line.sparsity["copy A"] == pytest.approx(0.8, abs=0.01)
    assert sparsity_report(a).zeros == sparsity_report(b).zeros


def test_gain_and_rows_by_hand():
    acc, ece = px.sparsity_grid((0.9,)), px.sparsity_grid((0.9,))
    for label, values in {"soup": [0.8, 0.9], "best ingredient": [0.7, 0.95], "IMP": [0.6, 0.6]}.items():
        for v in values:
            acc.add(label, 0.9, v)
    ece.add("soup", 0.9, 0.1)
    grid = sx.SoupGrid(acc, ece)
    assert grid.gain(0.9) == pytest.approx([0.1, -0.05])
    assert sx.mean_gain(grid) == pytest.approx(0.025)
    assert sx.mean_gain(grid, "IMP") == pytest.approx(statistics.mean([0.2, 0.3]))
    assert grid.rows() == [{"sparsity": 0.9, "soup": pytest.approx(0.85), "best ingredient": pytest.approx(0.825),
                            "IMP": pytest.approx(0.6), "ECE soup": pytest.approx(0.1)}]
    assert grid.to_dict()["sparsity_equal"] is True


def test_bad_input(mlp):
    with pytest.raises(ValueError, match="dense_runs is empty"):
        sx.compare_sms_imp([], (0.9,))
    with pytest.raises(ValueError, match="sparsities is empty"):
        sx.compare_sms_imp([mlp], ())
    with pytest.raises(ValueError, match="vary"):
        sx.compare_sms_imp([mlp], (0.9,), vary="colour")
    with pytest.raises(ValueError, match="merge"):
        sx.compare_sms_imp([mlp], (0.9,), merge="median")
    with pytest.raises(ValueError, match="ingredients"):
        sx.sms(mlp, 0.9, ingredients=0)
    with pytest.raises(ValueError, match="retrain_epochs"):
        sx.imp_equal_budget(mlp, 0.9, retrain_epochs=0)
