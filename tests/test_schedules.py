"""kit.schedules: values at known steps, closed-form properties (hypothesis), argument checks."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.schedules import Constant, Cosine, Linear, StepDecay, Warmup, as_schedule, steps_per_epoch

lrs = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False, allow_infinity=False)
steps = st.integers(min_value=0, max_value=10_000)
totals = st.integers(min_value=1, max_value=5_000)


# ---------------------------------------------------------------- values at known steps

def test_constant_values():
    s = Constant(0.3)
    assert [s(k) for k in (0, 1, 17, 10**6)] == [0.3] * 4


def test_step_decay_values():
    s = StepDecay(1.0, milestones=[10, 20], gamma=0.5)
    assert [s(k) for k in (0, 9, 10, 19, 20, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert StepDecay(0.1, [])(500) == 0.1  # no milestones: constant


def test_linear_values():
    s = Linear(1.0, 0.0, total_steps=4)
    assert [s(k) for k in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]  # held at lr_end after total_steps
    up = Linear(0.0, 2.0, total_steps=8)
    assert up(2) == pytest.approx(0.5) and up(8) == 2.0


def test_cosine_values():
    s = Cosine(0.1, 100)
    assert s(0) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.05)
    assert s(25) == pytest.approx(0.05 * (1 + math.sqrt(0.5)))  # 0.05 * (1 + cos(pi/4))
    assert s(100) == pytest.approx(0.0, abs=1e-15)
    assert s(1000) == s(100)  # held after total_steps
    m = Cosine(1.0, 10, lr_min=0.2)
    assert m(5) == pytest.approx(0.6) and m(10) == pytest.approx(0.2) and m(0) == pytest.approx(1.0)


def test_warmup_values():
    s = Warmup(Constant(0.4), warmup_steps=4)
    assert [s(k) for k in range(6)] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4])
    f = Warmup(Constant(1.0), warmup_steps=2, start_factor=0.5)
    assert [f(k) for k in range(3)] == pytest.approx([0.5, 0.75, 1.0])
    # warm-up ramps towards the wrapped schedule's value at the hand-over step, then follows it
    c = Cosine(1.0, 10)
    w = Warmup(c, warmup_steps=5)
    assert w(0) == 0.0
    assert w(4) == pytest.approx(0.8 * c(5))
    assert [w(k) for k in range(5, 12)] == [c(k) for k in range(5, 12)]
    assert Warmup(c, warmup_steps=0)(0) == c(0)  # no warm-up: the schedule itself (no division by zero)


def test_schedules_are_picklable_with_readable_repr():
    s = Warmup(StepDecay(0.1, (5,), 0.1), 2)
    assert pickle.loads(pickle.dumps(s))(7) == s(7) == pytest.approx(0.01)
    assert "StepDecay" in repr(s) and "warmup_steps=2" in repr(s)


# ---------------------------------------------------------------- properties

@settings(max_examples=60, deadline=None)
@given(lr=lrs, frac=st.floats(0.0, 1.0), total=totals, a=steps, b=steps)
def test_cosine_bounded_and_non_increasing(lr, frac, total, a, b):
    lr_min = lr * frac
    s = Cosine(lr, total, lr_min=lr_min)
    lo, hi = min(a, b), max(a, b)
    tol = 1e-12 * lr
    assert lr_min - tol <= s(hi) <= s(lo) + tol <= lr + 2 * tol
    assert s(0) == pytest.approx(lr) and s(total) == pytest.approx(lr_min, abs=tol)


@settings(max_examples=60, deadline=None)
@given(lr=lrs, start=st.floats(0.0, 1.0), warm=st.integers(1, 200), step=st.integers(0, 400))
def test_warmup_linear_then_wrapped(lr, start, warm, step):
    inner = Cosine(lr, 300)
    s = Warmup(inner, warm, start_factor=start)
    target = inner(warm)
    if step >= warm:
        assert s(step) == inner(step)
    else:
        expected = target * (start + (1 - start) * step / warm)  # the straight line from start*target to target
        assert s(step) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        if step + 1 < warm:  # equal increments: linear
            assert s(step + 1) - s(step) == pytest.approx(target * (1 - start) / warm, rel=1e-9, abs=1e-14)


@settings(max_examples=60, deadline=None)
@given(lr=lrs, gamma=st.floats(0.0, 1.0), ms=st.lists(st.integers(0, 1000), max_size=5), step=steps)
def test_step_decay_is_lr_times_gamma_power(lr, gamma, ms, step):
    k = len([m for m in ms if m <= step])
    assert StepDecay(lr, ms, gamma)(step) == pytest.approx(lr * gamma**k, rel=1e-12, abs=0.0)


@settings(max_examples=60, deadline=None)
@given(a=lrs, b=lrs, total=totals, step=steps)
def test_linear_closed_form(a, b, total, step):
    t = min(step, total) / total
    assert Linear(a, b, total)(step) == pytest.approx((1 - t) * a + t * b, rel=1e-12, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 10_000), bs=st.integers(1, 512))
def test_steps_per_epoch_counts_batches(n, bs):
    batches = [min(bs, n - i) for i in range(0, n, bs)]  # the batch sizes a DataLoader would produce
    assert steps_per_epoch(n, bs) == len(batches)
    assert steps_per_epoch(n, bs, drop_last=True) == sum(b == bs for b in batches)


def test_steps_per_epoch_values():
    assert steps_per_epoch(100, 32) == 4
    assert steps_per_epoch(100, 32, drop_last=True) == 3
    assert steps_per_epoch(96, 32) == 3 == steps_per_epoch(96, 32, drop_last=True)
    assert steps_per_epoch(0, 8) == 0


# ---------------------------------------------------------------- as_schedule

def test_as_schedule():
    none = as_schedule(None, 0.05)
    assert isinstance(none, Constant) and none(123) == 0.05
    num = as_schedule(0.2, 0.05)
    assert isinstance(num, Constant) and num(7) == 0.2
    assert as_schedule(1, 0.05)(3) == 1.0
    assert as_schedule(np.float32(0.5), 0.05)(3) == 0.5  # numpy scalars are numbers too
    c = Cosine(0.1, 10)
    assert as_schedule(c, 0.05) is c

    def fn(step):
        return 0.1 / (step + 1)

    assert as_schedule(fn, 0.05) is fn
    with pytest.raises(TypeError, match="lr_schedule"):
        as_schedule("cosine", 0.1)
    with pytest.raises(TypeError, match="lr_schedule"):
        as_schedule(True, 0.1)
    with pytest.raises(ValueError, match="lr"):
        as_schedule(-0.1, 0.1)


# ---------------------------------------------------------------- argument checks

@pytest.mark.parametrize(("make", "exc", "name"), [
    (lambda: Constant(-0.1), ValueError, "lr"),
    (lambda: Constant(float("nan")), ValueError, "lr"),
    (lambda: Constant("0.1"), TypeError, "lr"),
    (lambda: StepDecay(-1.0, [1]), ValueError, "lr"),
    (lambda: StepDecay(0.1, [5, -1]), ValueError, r"milestones\[1\]"),
    (lambda: StepDecay(0.1, [2.5]), TypeError, r"milestones\[0\]"),
    (lambda: StepDecay(0.1, 5), TypeError, "milestones"),
    (lambda: StepDecay(0.1, [1], gamma=-0.5), ValueError, "gamma"),
    (lambda: Linear(-1.0, 0.0, 10), ValueError, "lr_start"),
    (lambda: Linear(1.0, -1.0, 10), ValueError, "lr_end"),
    (lambda: Linear(1.0, 0.0, 0), ValueError, "total_steps"),
    (lambda: Cosine(-0.1, 100), ValueError, "lr"),
    (lambda: Cosine(0.1, 0), ValueError, "total_steps"),
    (lambda: Cosine(0.1, 10.0), TypeError, "total_steps"),
    (lambda: Cosine(0.1, 100, lr_min=0.2), ValueError, "lr_min"),
    (lambda: Warmup(0.1, 10), TypeError, "schedule"),
    (lambda: Warmup(Constant(0.1), -1), ValueError, "warmup_steps"),
    (lambda: Warmup(Constant(0.1), 5, start_factor=1.5), ValueError, "start_factor"),
    (lambda: steps_per_epoch(-1, 8), ValueError, "n_samples"),
    (lambda: steps_per_epoch(10, 0), ValueError, "batch_size"),
])
def test_bad_arguments_name_the_parameter(make, exc, name):
    with pytest.raises(exc, match=name):
        make()


@pytest.mark.parametrize("schedule", [Constant(0.1), StepDecay(0.1, [3]), Linear(0.1, 0.0, 10), Cosine(0.1, 10),
                                      Warmup(Constant(0.1), 3)])
def test_negative_or_non_int_step_rejected(schedule):
    with pytest.raises(ValueError, match="step"):
        schedule(-1)
    with pytest.raises(TypeError, match="step"):
        schedule(1.5)
