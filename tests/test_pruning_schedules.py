"""kit.pruning retraining schedules (FT, LRW, SLR, CLR, LLR, ALLR) against the formulas written out by
hand, the relative distance d against numpy, and the argument checks."""

from __future__ import annotations

import math
import pickle
from itertools import pairwise

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from kit.pruning import (
    ALLR,
    CLR,
    FT,
    LLR,
    LRW,
    RETRAIN_SCHEDULES,
    SLR,
    apply_masks,
    copy_model,
    global_magnitude_masks,
    lr_range,
    relative_distance,
    retrain_schedule,
)
from kit.schedules import Cosine, Linear, StepDecay, Warmup
from kit.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")

# the original training: linear decay 0.1 -> 0 over T_train = 1000 steps, no warm-up; T_rt = 100, so
# the warm-up is w = 10 iterations and the decay runs over the remaining 90
T_TRAIN, T_RT, W = 1000, 100, 10
ORIGINAL = Linear(0.1, 0.0, T_TRAIN)


def original(k: int) -> float:
    return 0.1 * (1 - k / T_TRAIN)


ETA_MAX, ETA_MIN = 0.1, original(T_TRAIN - 1)  # 1e-4: the last learning rate training used


def make(name: str, **kw) -> object:
    args = {"retrain_steps": T_RT, "train_schedule": ORIGINAL, "train_steps": T_TRAIN, **kw}
    return retrain_schedule(name, **args)


def warmup(peak: float, t: int, w: int = W) -> float:
    return peak * 0.5 * (1 - math.cos(math.pi * t / w))


# ----------------------------------------------------------------------------------- values by hand

def test_lr_range_after_the_warm_up():
    assert lr_range(ORIGINAL, T_TRAIN) == (pytest.approx(ETA_MAX), pytest.approx(ETA_MIN), 0)
    # a linear warm-up over 50 steps up to original(50) = 0.095: the peak is at step 50
    warmed = Warmup(ORIGINAL, 50)
    assert lr_range(warmed, T_TRAIN) == (pytest.approx(0.095), pytest.approx(ETA_MIN), 50)
    assert lr_range(StepDecay(0.1, [500, 750]), T_TRAIN) == (pytest.approx(0.1), pytest.approx(0.001), 0)


def test_ft_is_constant_eta_min():
    s = make("FT")
    assert isinstance(s, FT)
    assert [s(t) for t in (0, 1, 50, 99, 500)] == [pytest.approx(1e-4)] * 5


def test_lrw_replays_the_last_iterations():
    s = make("LRW")
    for t in (0, 1, 37, 99):
        assert s(t) == pytest.approx(original(900 + t))
    assert s(0) == pytest.approx(0.01) and s(99) == pytest.approx(1e-4)
    # retraining longer than training: the first T_rt - T_train iterations hold original(0)
    long = retrain_schedule("LRW", retrain_steps=150, train_schedule=ORIGINAL, train_steps=T_TRAIN // 10)
    assert long(0) == long(49) == pytest.approx(0.1) and long(50 + 30) == pytest.approx(original(30))


def test_slr_warm_up_then_compressed_original():
    s = make("SLR")
    assert s(0) == 0.0 and s(5) == pytest.approx(0.05) and s(3) == pytest.approx(warmup(0.1, 3))
    # after the warm-up, t maps to original step floor((t - 10) * 1000 / 90)
    for t, k in ((10, 0), (11, 11), (55, 500), (70, 666), (99, 988)):
        assert k == (t - W) * T_TRAIN // (T_RT - W)
        assert s(t) == pytest.approx(original(k))
    # an original schedule with a warm-up: compression starts where that warm-up ends (step 50)
    warmed = retrain_schedule("SLR", retrain_steps=T_RT, train_schedule=Warmup(ORIGINAL, 50), train_steps=T_TRAIN)
    assert warmed(5) == pytest.approx(0.095 / 2)
    assert warmed(10) == pytest.approx(original(50)) and warmed(55) == pytest.approx(original(50 + 475))


def test_clr_cosine_from_eta_max_to_eta_min():
    s = make("CLR")
    assert s(5) == pytest.approx(warmup(0.1, 5))
    for t in (10, 20, 55, 80, 99):
        want = ETA_MIN + 0.5 * (ETA_MAX - ETA_MIN) * (1 + math.cos(math.pi * (t - W) / (T_RT - W)))
        assert s(t) == pytest.approx(want)
    assert s(10) == pytest.approx(0.1) and s(55) == pytest.approx((0.1 + 1e-4) / 2)


def test_llr_linear_to_zero():
    s = make("LLR")
    assert s(0) == 0.0 and s(7) == pytest.approx(warmup(0.1, 7))
    for t in (10, 40, 55, 99):
        assert s(t) == pytest.approx(0.1 * (1 - (t - W) / 90))
    assert s(55) == pytest.approx(0.05) and s(99) == pytest.approx(0.1 / 90)
    assert s(100) == s(10**6) == s(99)  # past T_rt the last value holds


@pytest.mark.parametrize(("distance", "fraction", "peak"), [
    (0.3, 0.5, 0.3 / math.sqrt(0.5) * 0.1),  # inside: 0.0424
    (0.001, 0.5, 0.01),                       # clipped below at min(100 / 1000, 1) * eta_max
    (0.9, 0.1, 0.1),                          # 0.9 / sqrt(0.1) = 2.85 eta_max: clipped at eta_max
])
def test_allr_adaptive_peak_clipped(distance, fraction, peak):
    s = make("ALLR", distance=distance, pruned_fraction=fraction)
    assert isinstance(s, ALLR) and s.peak == pytest.approx(peak)
    assert s(5) == pytest.approx(peak / 2)
    for t in (10, 55, 99):
        assert s(t) == pytest.approx(peak * (1 - (t - W) / 90))


def test_allr_lower_bound_is_eta_max_when_retraining_outlasts_training():
    s = retrain_schedule("ALLR", retrain_steps=200, train_schedule=ORIGINAL, train_steps=100, distance=1e-3,
                         pruned_fraction=0.9)
    assert s.peak == pytest.approx(0.1)  # min(200 / 100, 1) * eta_max


def test_warm_up_length_rounds_and_can_vanish():
    assert make("LLR").warmup_steps == 10
    short = retrain_schedule("LLR", retrain_steps=4, train_schedule=ORIGINAL, train_steps=T_TRAIN)
    assert short.warmup_steps == 0 and short(0) == pytest.approx(0.1)  # round(0.4) = 0: starts at the peak
    assert retrain_schedule("LLR", retrain_steps=1, train_schedule=ORIGINAL, train_steps=T_TRAIN)(0) == 0.1
    custom = make("CLR", warmup_fraction=0.25)
    assert custom.warmup_steps == 25 and custom(25) == pytest.approx(0.1)


def test_names_case_insensitive_and_types():
    kinds = {"ft": FT, "Lrw": LRW, "slr": SLR, "CLR": CLR, "llr": LLR, "allr": ALLR}
    for name, cls in kinds.items():
        assert type(make(name, distance=0.2, pruned_fraction=0.4)) is cls
    assert tuple(RETRAIN_SCHEDULES) == ("FT", "LRW", "SLR", "CLR", "LLR", "ALLR")


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(RETRAIN_SCHEDULES), retrain=st.integers(1, 300), train=st.integers(1, 400),
       distance=st.floats(0, 2), fraction=st.floats(0.01, 1.0))
def test_every_schedule_stays_in_range(name, retrain, train, distance, fraction):
    original = Warmup(Cosine(0.2, train, 0.002), min(5, train - 1))
    lr_max, _, _ = lr_range(original, train)
    s = retrain_schedule(name, retrain_steps=retrain, train_schedule=original, train_steps=train,
                         distance=distance, pruned_fraction=fraction)
    lrs = [s(t) for t in range(retrain)]
    assert all(0 <= lr <= lr_max + 1e-12 for lr in lrs)
    if name in ("CLR", "LLR", "ALLR"):  # rises during the warm-up, falls after it
        w = s.warmup_steps
        assert all(a <= b for a, b in pairwise(lrs[:w + 1]))
        assert all(a >= b for a, b in pairwise(lrs[w:]))


# ------------------------------------------------------------------------------- objects for fit

def test_picklable_with_readable_repr():
    for name in RETRAIN_SCHEDULES:
        s = make(name, distance=0.3, pruned_fraction=0.5)
        again = pickle.loads(pickle.dumps(s))
        assert again == s and [again(t) for t in (0, 9, 50)] == [s(t) for t in (0, 9, 50)]
        assert repr(s).startswith(f"{name}(")
    assert repr(make("LLR")) == "LLR(lr_max=0.1, retrain_steps=100, warmup_steps=10)"
    assert "distance=0.3" in repr(make("ALLR", distance=0.3, pruned_fraction=0.5))


def test_drives_fit():
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g))
    model = nn.Sequential(nn.Linear(6, 3))
    s = retrain_schedule("SLR", retrain_steps=8, train_schedule=ORIGINAL, train_steps=T_TRAIN)
    history = fit(model, data, epochs=2, batch_size=8, lr_schedule=s, progress=False)
    assert history["lr"] == [s(3), s(7)]  # the lr of each epoch's last step (4 steps per epoch)


# -------------------------------------------------------------------------------- relative distance

def prunable_np(model: nn.Module) -> np.ndarray:
    return np.concatenate([m.weight.detach().double().numpy().ravel() for m in model.modules()
                           if isinstance(m, (nn.Linear, nn.Conv2d))])


def test_relative_distance_against_numpy_over_two_phases():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    theta = prunable_np(model)
    before = copy_model(model)
    masks = global_magnitude_masks(model, 0.5)
    apply_masks(model, masks)
    keep = np.concatenate([m.flatten().numpy() for m in masks.values()])
    want = np.linalg.norm(theta * ~keep) / np.linalg.norm(theta)
    assert relative_distance(before, model) == pytest.approx(want)
    # phase 2 from a masked model, with a cloned state dict as "before" (weight_orig * weight_mask)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    theta2 = theta * keep
    masks2 = global_magnitude_masks(model, 0.8)
    apply_masks(model, masks2)
    keep2 = np.concatenate([m.flatten().numpy() for m in masks2.values()])
    want2 = np.linalg.norm(theta2 * ~keep2) / np.linalg.norm(theta2)
    assert relative_distance(state, model) == pytest.approx(want2)
    assert relative_distance(model, model) == 0.0
    allr = retrain_schedule("ALLR", retrain_steps=T_RT, train_schedule=ORIGINAL, train_steps=T_TRAIN,
                            distance=want2, pruned_fraction=1 - 0.2 / 0.5)
    assert allr.peak == pytest.approx(min(max(want2 / math.sqrt(0.6) * 0.1, 0.01), 0.1))


def test_relative_distance_bad_input():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="before"):
        relative_distance([1, 2], model)
    with pytest.raises(TypeError, match="after"):
        relative_distance(model, {"0.weight": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match=r"no entry 0\.weight"):
        relative_distance({}, model)
    with pytest.raises(ValueError, match="no module named"):
        relative_distance(nn.Sequential(nn.ReLU()), model)
    with pytest.raises(ValueError, match="shape"):
        relative_distance({"0.weight": torch.zeros(3, 3)}, model)
    with pytest.raises(ValueError, match="undefined"):
        relative_distance({"0.weight": torch.zeros(2, 3)}, model)


# ------------------------------------------------------------------------------------------ bad input

def test_unknown_name_and_missing_allr_inputs():
    with pytest.raises(ValueError, match="FT, LRW, SLR, CLR, LLR, ALLR"):
        make("cosine")
    with pytest.raises(TypeError, match="name"):
        make(None)
    with pytest.raises(ValueError, match="ALLR needs distance"):
        make("ALLR", distance=0.2)
    with pytest.raises(ValueError, match="ALLR needs distance"):
        make("ALLR", pruned_fraction=0.2)


@pytest.mark.parametrize(("kw", "error", "named"), [
    ({"retrain_steps": 0}, ValueError, "retrain_steps"),
    ({"retrain_steps": 10.0}, TypeError, "retrain_steps"),
    ({"train_steps": -1}, ValueError, "train_steps"),
    ({"train_schedule": 0.1}, TypeError, "train_schedule"),
    ({"train_schedule": lambda k: -1.0}, ValueError, "train_schedule"),
    ({"distance": -0.1}, ValueError, "distance"),
    ({"distance": math.inf}, ValueError, "distance"),
    ({"pruned_fraction": 0.0}, ValueError, "pruned_fraction"),
    ({"pruned_fraction": 1.5}, ValueError, "pruned_fraction"),
    ({"warmup_fraction": 1.0}, ValueError, "warmup_fraction"),
])
def test_bad_numbers_are_named(kw, error, named):
    args = {"distance": 0.3, "pruned_fraction": 0.5, **kw}
    with pytest.raises(error, match=named):
        make("ALLR", **args)


def test_bad_steps_and_direct_construction():
    with pytest.raises(ValueError, match="step"):
        make("LLR")(-1)
    with pytest.raises(TypeError, match="step"):
        make("SLR")(1.5)
    with pytest.raises(ValueError, match="lr_min"):
        CLR(0.1, 0.2, 100, 10)
    with pytest.raises(ValueError, match="warmup_steps"):
        LLR(0.1, 10, 10)  # no iteration left after the warm-up
    with pytest.raises(ValueError, match="start_step"):
        SLR(ORIGINAL, 100, 10, 1, start_step=100)
    with pytest.raises(ValueError, match="lr"):
        FT(-0.1)
