"""kit.pruning.algorithms: IMP, BIMP and GMP on a tiny MLP and the digits data, checked against hand counts.

The MLP 64-16-10 has N = 64*16 + 16*10 = 1,184 prunable weights; the zero counts after each phase,
interval or pruning step are computed here from the formulas of 02_pruning.md (and written out as
numbers). Resuming from a checkpoint is compared with an uninterrupted run, bit for bit.
"""

from __future__ import annotations

import copy
import importlib
import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kit import data as data_mod
from kit.models import MLP
from kit.pruning import (
    CRITERIA,
    RETRAIN_SCHEDULES,
    ImpResult,
    bimp,
    effective_weight,
    gmp,
    imp,
    load_pruned_state_dict,
    masks_of,
    phase_epochs,
    prunable,
    sparsity_report,
)
from kit.schedules import Cosine, steps_per_epoch
from kit.train import Callback, fit

pytestmark = pytest.mark.usefixtures("one_thread")
# the module itself, for monkeypatching its use of fit
imp_mod = importlib.import_module("kit.pruning.algorithms")

N = 64 * 16 + 16 * 10
S = 0.9
SPE = math.ceil(1259 / 128)  # digits train split, batch 128
DENSE_EPOCHS = 4


@pytest.fixture(scope="module")
def digits() -> data_mod.Splits:
    return data_mod.load("digits", seed=0)


@pytest.fixture(scope="module")
def dense(digits, device) -> MLP:
    torch.manual_seed(0)
    model = MLP((1, 8, 8), widths=(16,), num_classes=10).to(device)  # the rest of the module follows it
    fit(model, digits.train, epochs=DENSE_EPOCHS, lr_schedule=Cosine(0.3, DENSE_EPOCHS * SPE), progress=False)
    return model


def run_imp(model: nn.Module, data: data_mod.Splits, **kwargs) -> ImpResult:
    args = dict(target_sparsity=S, phases=3, retrain_epochs=3, train_schedule=Cosine(0.3, DENSE_EPOCHS * SPE),
                train_steps=DENSE_EPOCHS * SPE, progress=False)
    args.update(kwargs)
    return imp(model, data, **args)


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state on the CPU (models may train on the suite's device; a checkpoint loads on the CPU)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class MaskWatch(Callback):
    """Checks after every step that masked entries are zero in the effective weights; logs zero counts."""

    def __init__(self) -> None:
        self.zeros_per_step: list[int] = []
        self.lrs: list[float] = []
        self.fits = 0

    def on_fit_start(self, state) -> None:
        self.fits += 1

    def after_step(self, state) -> None:
        masks = masks_of(state.model)
        for name, module in prunable(state.model):
            if name in masks:
                assert not effective_weight(module)[~masks[name]].any(), f"masked weight of {name} moved"
        self.zeros_per_step.append(sparsity_report(state.model).zeros)
        self.lrs.append(state.lr)


# ---------------------------------------------------------------- IMP


def test_checked_numbers():
    assert SPE == steps_per_epoch(1259, 128) == 10
    assert N == 1184


def test_imp_sparsity_per_phase_and_masked_weights_stay_zero(digits, dense):
    watch = MaskWatch()
    before = state_of(dense)
    result = run_imp(dense, digits, callbacks=[watch])
    # round((1 - 0.1^(i/3)) * 1184): 634.44 -> 634, 928.91 -> 929, 1065.6 -> 1066
    expected = [634, 929, 1066]
    assert [round((1 - (1 - S) ** (i / 3)) * N) for i in (1, 2, 3)] == expected
    assert [p.zeros for p in result.phases] == expected
    assert [p.total for p in result.phases] == [N] * 3
    assert [p.sparsity for p in result.phases] == [z / N for z in expected]
    assert result.phases[-1].target_sparsity == S and result.sparsity == 1066 / N
    # during retraining the count never changes: pruned weights stay zero, nothing else becomes zero
    assert watch.fits == 3
    assert watch.zeros_per_step == [z for z in expected for _ in range(SPE)]
    assert sparsity_report(result.model).zeros == 1066
    # the given dense model is left alone; the result holds a pruned copy
    assert_same_state(before, state_of(dense))
    assert result.model is not dense and not masks_of(dense)
    # pruned fraction of the live weights per phase, and accuracies are measured
    assert result.phases[0].pruned_fraction == pytest.approx(634 / N)
    assert result.phases[1].pruned_fraction == pytest.approx((929 - 634) / (N - 634))
    for p in result.phases:
        assert 0 < p.distance < 1 and 0 <= p.accuracy_pruned <= 1 and 0 <= p.accuracy <= 1
        assert p.lr_peak is not None and p.lr_peak > 0
    assert result.accuracy == result.phases[-1].accuracy
    assert result.dense_accuracy > 0.8
    # retraining at 90% sparsity on digits keeps a working classifier, better than right after pruning
    assert result.accuracy > max(0.6, result.phases[-1].accuracy_pruned)


def test_retraining_budget_split(digits, dense):
    assert phase_epochs(7, 3) == [2, 2, 3]
    assert phase_epochs(6, 3) == [2, 2, 2]
    assert phase_epochs(5, 1) == [5]
    assert phase_epochs(0, 4) == [0, 0, 0, 0]
    result = run_imp(dense, digits, retrain_epochs=7, schedule="FT")
    assert [p.epochs for p in result.phases] == [2, 2, 3]
    assert sum(p.epochs for p in result.phases) == 7
    assert [p.steps for p in result.phases] == [2 * SPE, 2 * SPE, 3 * SPE]
    assert [len(p.history) for p in result.phases] == [2, 2, 3]


def test_zero_retraining_prunes_only(digits, dense, monkeypatch):
    monkeypatch.setattr(imp_mod, "fit", lambda *a, **k: pytest.fail("fit called with no retraining budget"))
    result = run_imp(dense, digits, retrain_epochs=0)
    assert [p.zeros for p in result.phases] == [634, 929, 1066]
    assert all(p.epochs == 0 and p.accuracy == p.accuracy_pruned for p in result.phases)


def test_every_schedule_and_criterion_runs(digits, dense):
    for schedule in RETRAIN_SCHEDULES:
        result = run_imp(dense, digits, phases=1, retrain_epochs=1, schedule=schedule)
        assert result.phases[0].zeros == 1066, schedule
    for criterion in CRITERIA:
        # uniform+ keeps the first layer dense and the last at most 80% sparse: at most 128 / 1184 here
        s = 0.1 if criterion == "uniform_plus" else S
        result = run_imp(dense, digits, target_sparsity=s, phases=2, retrain_epochs=2, criterion=criterion)
        assert result.phases[-1].zeros == round(s * N), criterion


def test_allr_peak_and_a_phase_that_prunes_nothing(digits, dense):
    # p = 1 - 0.1^(1/3) of the live weights per phase; d measured right after pruning
    result = run_imp(dense, digits, schedule="ALLR")
    for p in result.phases:
        lower, upper = min(SPE / (DENSE_EPOCHS * SPE), 1) * 0.3, 0.3
        assert p.lr_peak == pytest.approx(min(max(p.distance / math.sqrt(p.pruned_fraction) * 0.3, lower), upper))
    # sparsity 0: nothing pruned, d = 0, so ALLR's peak is its floor min(T_rt / T_train, 1) * eta_max = 0.075
    result = run_imp(dense, digits, target_sparsity=0.0, schedule="ALLR", phases=2, retrain_epochs=2)
    assert [p.zeros for p in result.phases] == [0, 0]
    assert [p.distance for p in result.phases] == [0.0, 0.0]
    assert [p.lr_peak for p in result.phases] == [pytest.approx(0.075)] * 2


def test_result_tables_and_json(digits, dense):
    result = run_imp(dense, digits, phases=2, retrain_epochs=2)
    rows = result.rows()
    assert len(rows) == 2 and rows[1]["phase"] == 2 and rows[1]["method"] == "imp"
    assert "history" not in rows[0] and {"sparsity", "accuracy_pruned", "accuracy", "epochs"} <= rows[0].keys()
    d = json.loads(json.dumps(result.to_dict()))
    assert d["sparsity"] == result.sparsity and d["config"]["phases"] == 2
    assert len(d["phases"][0]["history"]) == 1


# ---------------------------------------------------------------- checkpoints and resume


class Interrupted(RuntimeError):
    """Stands in for a crash or a kill in the middle of a run."""


class Interrupt(Callback):
    """Raises in the middle of the ``phase``-th retraining."""

    def __init__(self, phase: int) -> None:
        self.phase, self.fits = phase, 0

    def on_fit_start(self, state) -> None:
        self.fits += 1

    def after_step(self, state) -> None:
        if self.fits == self.phase and state.step == SPE // 2:
            raise Interrupted(f"phase {self.phase}")


def test_resume_after_interruption_equals_uninterrupted_run(digits, dense, tmp_path, monkeypatch):
    full = run_imp(dense, digits, checkpoint_dir=tmp_path / "full")
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [
        "imp-phase-001.pt", "imp-phase-002.pt", "imp-phase-003.pt"]  # no temporary files left

    broken = tmp_path / "broken"
    with pytest.raises(Interrupted):
        run_imp(dense, digits, checkpoint_dir=broken, callbacks=[Interrupt(phase=2)])
    assert sorted(p.name for p in broken.iterdir()) == ["imp-phase-001.pt"]
    resumed = run_imp(dense, digits, checkpoint_dir=broken)
    assert resumed.resumed_phases == 1 and full.resumed_phases == 0
    assert resumed.rows() == full.rows()
    assert resumed.to_dict()["config"] == full.to_dict()["config"]
    assert_same_state(state_of(resumed.model), state_of(full.model))

    # a lost last checkpoint: phase 3 is redone, identically
    (tmp_path / "full" / "imp-phase-003.pt").unlink()
    again = run_imp(dense, digits, checkpoint_dir=tmp_path / "full")
    assert again.resumed_phases == 2 and again.rows() == full.rows()
    assert_same_state(state_of(again.model), state_of(full.model))

    # a finished run: nothing is trained, the saved result comes back
    monkeypatch.setattr(imp_mod, "fit", lambda *a, **k: pytest.fail("a finished run must not train"))
    done = run_imp(dense, digits, checkpoint_dir=tmp_path / "full")
    assert done.resumed_phases == 3 and done.rows() == full.rows()
    assert_same_state(state_of(done.model), state_of(full.model))


def test_checkpoint_is_a_loadable_state_dict(digits, dense, tmp_path):
    result = run_imp(dense, digits, phases=2, retrain_epochs=2, checkpoint_dir=tmp_path)
    ckpt = torch.load(tmp_path / "imp-phase-002.pt", map_location="cpu", weights_only=True)
    assert ckpt["phase"] == 2 and len(ckpt["phases"]) == 2
    fresh = MLP((1, 8, 8), widths=(16,), num_classes=10)
    load_pruned_state_dict(fresh, ckpt["state_dict"])
    assert_same_state(state_of(fresh), state_of(result.model))
    assert sparsity_report(fresh).zeros == 1066


@pytest.mark.parametrize(("change", "named"), [
    ({"seed": 1}, "seed"),
    ({"phases": 2, "retrain_epochs": 2}, "phases"),
    ({"schedule": "FT"}, "schedule"),
    ({"train_schedule": Cosine(0.05, DENSE_EPOCHS * SPE)}, "train_schedule_sha256"),
])
def test_checkpoint_of_other_arguments_is_refused(digits, dense, tmp_path, change, named, monkeypatch):
    run_imp(dense, digits, phases=3, retrain_epochs=0, checkpoint_dir=tmp_path)
    monkeypatch.setattr(imp_mod, "fit", lambda *a, **k: pytest.fail("trained despite a foreign checkpoint"))
    args = {"retrain_epochs": 0, **change}
    with pytest.raises(ValueError, match=f"different IMP run.*{named}"):
        run_imp(dense, digits, checkpoint_dir=tmp_path, **args)


def test_checkpoint_of_another_model_is_refused(digits, dense, tmp_path):
    run_imp(dense, digits, retrain_epochs=0, checkpoint_dir=tmp_path)
    other = MLP((1, 8, 8), widths=(16,), num_classes=10)
    with pytest.raises(ValueError, match=r"different IMP run.*model_sha256"):
        run_imp(other, digits, retrain_epochs=0, checkpoint_dir=tmp_path)


def test_checkpoint_on_data_of_the_same_sizes_but_other_values_is_refused(digits, dense, tmp_path):
    run_imp(dense, digits, retrain_epochs=0, checkpoint_dir=tmp_path)
    rescaled = copy.copy(digits)  # same name and sizes (its repr is unchanged), other standardisation
    rescaled.train = TensorDataset(digits.train.tensors[0] * 0.5, digits.train.tensors[1])
    assert repr(rescaled) == repr(digits)
    with pytest.raises(ValueError, match=r"different IMP run.*data_sha256"):
        run_imp(dense, rescaled, retrain_epochs=0, checkpoint_dir=tmp_path)


# ---------------------------------------------------------------- GMP and BIMP


class CountFits:
    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        real = imp_mod.fit

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(imp_mod, "fit", counted)


def test_gmp_follows_the_cubic_schedule_in_one_fit(digits, monkeypatch):
    fits = CountFits(monkeypatch)
    torch.manual_seed(0)
    model = MLP((1, 8, 8), widths=(16,), num_classes=10)
    watch = MaskWatch()
    result = gmp(model, digits, target_sparsity=S, epochs=4, start_epoch=1, end_epoch=3, interval_steps=5,
                 callbacks=[watch], progress=False)
    assert fits.calls == 1 and watch.fits == 1
    # t0 = 10, Delta = 5, n = (30 - 10) / 5 = 4: s_k = 0.9 (1 - (1 - k/4)^3) = 0.5203, 0.7875, 0.8859, 0.9
    t0, delta, n = 10, 5, 4
    cubic = [S + (0 - S) * (1 - (t0 + k * delta - t0) / (n * delta)) ** 3 for k in range(1, n + 1)]
    assert cubic == pytest.approx([0.5203125, 0.7875, 0.8859375, 0.9])
    assert [imp_mod.cubic_sparsity(t, final_sparsity=S, start_step=t0, interval=delta, n=n)
            for t in (0, 10, 15, 20, 25, 30, 40)] == [0.0, 0.0, *cubic[:3], S, S]
    expected = [616, 932, 1049, 1066]
    assert [round(c * N) for c in cubic] == expected
    assert [p.zeros for p in result.phases] == expected
    assert [p.steps for p in result.phases] == [5, 5, 5, 10]
    assert result.phases[-1].target_sparsity == S and result.sparsity == 1066 / N
    # pruned right after steps 15, 20, 25, 30 (after_step of step index 14, 19, 24, 29), held in between
    zeros = watch.zeros_per_step
    assert len(zeros) == 40
    assert zeros[:14] == [0] * 14
    assert zeros[14:19] == [616] * 5 and zeros[19:24] == [932] * 5 and zeros[24:29] == [1049] * 5
    assert zeros[29:] == [1066] * 11


def test_gmp_interval_epochs(digits):
    torch.manual_seed(0)
    model = MLP((1, 8, 8), widths=(16,), num_classes=10)
    result = gmp(model, digits, target_sparsity=0.5, epochs=3, interval_epochs=1, progress=False)
    # t0 = 0, Delta = 10, n = 3: 0.5 (1 - (2/3)^3) = 0.35185 -> 416.6 -> 417; 0.5 (1 - (1/3)^3) = 0.48148 -> 570.1
    assert [p.zeros for p in result.phases] == [417, 570, 592]
    # the last pruning ends the run (end_epoch defaults to epochs), so it gets no training after it
    assert [p.epochs for p in result.phases] == [1.0, 1.0, 0.0]
    assert result.phases[-1].accuracy == result.phases[-1].accuracy_pruned == result.accuracy


def test_bimp_prunes_each_interval_and_restarts_the_lr(digits, monkeypatch):
    fits = CountFits(monkeypatch)
    torch.manual_seed(0)
    model = MLP((1, 8, 8), widths=(16,), num_classes=10)
    watch = MaskWatch()
    result = bimp(model, digits, target_sparsity=S, total_epochs=5, dense_epochs=2, interval_epochs=1, lr=0.1,
                  callbacks=[watch], progress=False)
    assert fits.calls == 1 and watch.fits == 1
    # n = (5 - 2) / 1 = 3 intervals: 1 - 0.1^((t+1)/3) -> 634, 929, 1066 of 1,184
    expected = [634, 929, 1066]
    assert [round((1 - (1 - S) ** ((t + 1) / 3)) * N) for t in range(3)] == expected
    assert [p.zeros for p in result.phases] == expected
    assert watch.zeros_per_step == [0] * 20 + [z for z in expected for _ in range(SPE)]
    assert [p.epochs for p in result.phases] == [1.0, 1.0, 1.0]
    # every segment (dense part, then each interval) warms up from its first step and decays to its end
    lrs = watch.lrs
    for start, end in [(0, 20), (20, 30), (30, 40), (40, 50)]:
        seg = lrs[start:end]
        top = max(seg)
        assert seg[0] < top and seg[-1] < top and top <= 0.1 + 1e-12
        if start >= 20:
            assert top == pytest.approx(result.phases[(start - 20) // SPE].lr_peak)


def test_bimp_remainder_to_last_interval(digits):
    torch.manual_seed(0)
    model = MLP((1, 8, 8), widths=(16,), num_classes=10)
    result = bimp(model, digits, target_sparsity=0.5, total_epochs=6, dense_epochs=1, interval_epochs=2,
                  progress=False)
    # (6 - 1) // 2 = 2 intervals of 2 and 3 epochs: 1 - 0.5^(1/2) = 0.2929 -> 346.8 -> 347; then 592
    assert [p.epochs for p in result.phases] == [2.0, 3.0]
    assert [p.zeros for p in result.phases] == [347, 592]


# ---------------------------------------------------------------- bad input, refused before any work


class NoPrunable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(1))[:, :10]


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"target_sparsity": 1.0}, ValueError, r"target_sparsity must lie in \[0.0, 1.0\)"),
    ({"target_sparsity": -0.1}, ValueError, "target_sparsity"),
    ({"phases": 0}, ValueError, "phases"),
    ({"phases": 3, "retrain_epochs": 2}, ValueError, "retrain_epochs must be 0 .* at least phases=3"),
    ({"retrain_epochs": -1}, ValueError, "retrain_epochs"),
    ({"schedule": "cosine"}, ValueError, "unknown schedule 'cosine'; choose one of FT, LRW, SLR, CLR, LLR, ALLR"),
    ({"criterion": "magnitude"}, ValueError, "unknown criterion 'magnitude'; choose one of .*global.*lamp"),
    ({"train_steps": 0}, ValueError, "train_steps"),
    ({"train_schedule": "cosine"}, TypeError, "train_schedule must be a callable"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"criterion": "uniform_plus"}, ValueError, "uniform_plus reaches at most sparsity 0.108108"),
])
def test_imp_bad_input_refused_before_work(digits, dense, monkeypatch, tmp_path, kwargs, error, match):
    monkeypatch.setattr(imp_mod, "fit", lambda *a, **k: pytest.fail("trained despite bad input"))
    before = state_of(dense)
    with pytest.raises(error, match=match):
        run_imp(dense, digits, checkpoint_dir=tmp_path / "ckpt", **kwargs)
    assert_same_state(before, state_of(dense))
    assert not (tmp_path / "ckpt").exists()


def test_model_without_prunable_layers_is_refused(digits, monkeypatch):
    monkeypatch.setattr(imp_mod, "fit", lambda *a, **k: pytest.fail("trained despite bad input"))
    for call in (lambda m: run_imp(m, digits),
                 lambda m: bimp(m, digits, target_sparsity=S, total_epochs=3, dense_epochs=1, interval_epochs=1),
                 lambda m: gmp(m, digits, target_sparsity=S, epochs=2)):
        with pytest.raises(ValueError, match="no prunable layers"):
            call(NoPrunable())
    with pytest.raises(TypeError, match=r"kit\.data\.Splits"):
        run_imp(MLP((1, 8, 8), widths=(4,)), digits.train)


@pytest.mark.parametrize(("method", "kwargs", "match"), [
    ("bimp", {"total_epochs": 3, "dense_epochs": 3, "interval_epochs": 1}, "dense_epochs"),
    ("bimp", {"total_epochs": 4, "dense_epochs": 2, "interval_epochs": 3}, "interval_epochs"),
    ("bimp", {"total_epochs": 4, "dense_epochs": 1, "interval_epochs": 1, "target_sparsity": 1.0}, "target_sparsity"),
    ("bimp", {"total_epochs": 4, "dense_epochs": 1, "interval_epochs": 1, "criterion": "l1"}, "choose one of"),
    ("gmp", {"epochs": 3, "start_epoch": 3}, "start_epoch"),
    ("gmp", {"epochs": 3, "end_epoch": 4}, "end_epoch"),
    ("gmp", {"epochs": 3, "interval_steps": 5, "interval_epochs": 1}, "not both"),
    ("gmp", {"epochs": 3, "interval_steps": 31}, "interval_steps"),
    ("gmp", {"epochs": 3, "target_sparsity": 1.5}, "target_sparsity"),
])
def test_bimp_gmp_bad_input_refused_before_work(digits, dense, monkeypatch, method, kwargs, match):
    monkeypatch.setattr(imp_mod, "fit", lambda *a, **k: pytest.fail("trained despite bad input"))
    before = state_of(dense)
    fn = bimp if method == "bimp" else gmp
    with pytest.raises(ValueError, match=match):
        fn(dense, digits, **{"target_sparsity": S, **kwargs})
    assert_same_state(before, state_of(dense))
