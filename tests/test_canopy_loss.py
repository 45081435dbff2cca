"""The shift-resilient canopy loss and the canopy metrics, checked against plain-Python loops and hand sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.canopy.loss import best_shifts, plain_loss, shift_resilient_loss
from kit.canopy.metrics import error_map, footprint_errors, map_errors

pytestmark = pytest.mark.usefixtures("one_thread")

BASES = ("huber", "l1", "l2")


# ----------------------------------------------------------------------------------------------------------
# the loop reference: every sample, track, shift and footprint spelled out


def base_loss(residual, base: str, delta: float):
    """The pointwise loss written out (works on floats and on 0-d tensors alike)."""
    size = abs(residual)
    if base == "l1":
        return size
    if base == "l2":
        return residual * residual
    return 0.5 * residual * residual if size <= delta else delta * (size - 0.5 * delta)


def reference(pred, labels: np.ndarray, radius: int, base: str = "huber", delta: float = 3.0,
              min_footprints: int = 5):
    """(loss, shifts) by loops; ``pred`` (B, H, W) is a numpy array or a tensor (then the loss has autograd)."""
    n_samples, n_tracks, height, width = labels.shape
    shifts = np.zeros((n_samples, n_tracks, 2), dtype=np.int64)
    order = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    total, count = 0.0, 0
    for b in range(n_samples):
        for t in range(n_tracks):
            footprints = [(i, j, float(labels[b, t, i, j])) for i in range(height) for j in range(width)
                          if labels[b, t, i, j] > 0]
            count += len(footprints)
            if not footprints:
                continue
            allowed = order if len(footprints) >= min_footprints else [(0, 0)]
            best_shift = (0, 0)
            best = sum(base_loss(pred[b, i, j] - y, base, delta) for i, j, y in footprints)
            for dy, dx in allowed:
                if not all(0 <= i + dy < height and 0 <= j + dx < width for i, j, _ in footprints):
                    continue
                value = sum(base_loss(pred[b, i + dy, j + dx] - y, base, delta) for i, j, y in footprints)
                if value < best:
                    best, best_shift = value, (dy, dx)
            total = total + best
            shifts[b, t] = best_shift
    return total / max(count, 1), shifts


def random_case(rng: np.random.Generator, n_samples: int, n_tracks: int, height: int, width: int,
                densities=(0.0, 0.1, 0.3, 0.8)) -> tuple[np.ndarray, np.ndarray]:
    """A prediction and tracks of footprints near it (residuals in both Huber regimes), some tracks empty."""
    pred = rng.uniform(0.0, 20.0, size=(n_samples, height, width))
    labels = np.zeros((n_samples, n_tracks, height, width))
    for b in range(n_samples):
        for t in range(n_tracks):
            present = rng.random((height, width)) < rng.choice(densities)
            heights = np.clip(pred[b] + rng.normal(0.0, 3.0, size=(height, width)), 0.1, None)
            labels[b, t][present] = heights[present]
    return pred, labels


def tensors(device, *arrays, dtype=torch.float64):
    return tuple(torch.as_tensor(a, dtype=dtype, device=device) for a in arrays)


def check_against_reference(device, pred, labels, radius, base, delta, min_footprints):
    want, want_shifts = reference(pred, labels, radius, base, delta, min_footprints)
    p, lab = tensors(device, pred, labels)
    got = shift_resilient_loss(p, lab, radius=radius, base=base, delta=delta, min_footprints=min_footprints)
    assert got.shape == () and got.device.type == device.type
    torch.testing.assert_close(got.cpu(), torch.tensor(float(want), dtype=torch.float64))
    shifts = best_shifts(p, lab, radius=radius, base=base, delta=delta, min_footprints=min_footprints)
    assert shifts.dtype == torch.long and shifts.shape == (*labels.shape[:2], 2)
    np.testing.assert_array_equal(shifts.cpu().numpy(), want_shifts)


# ----------------------------------------------------------------------------------------------------------
# the loss against the reference


@settings(max_examples=60, deadline=None)
@given(radius=st.integers(0, 2), extra_h=st.integers(0, 3), extra_w=st.integers(0, 3),
       n_samples=st.integers(1, 3), n_tracks=st.integers(1, 3), base=st.sampled_from(BASES),
       delta=st.sampled_from([0.5, 1.0, 3.0]), min_footprints=st.integers(0, 6), seed=st.integers(0, 2**31))
def test_loss_matches_loop_reference(device, radius, extra_h, extra_w, n_samples, n_tracks, base, delta,
                                     min_footprints, seed):
    rng = np.random.default_rng(seed)
    size = 2 * radius + 1
    pred, labels = random_case(rng, n_samples, n_tracks, size + extra_h, size + extra_w)
    check_against_reference(device, pred, labels, radius, base, delta, min_footprints)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("radius", [1, 2])
def test_single_sample_single_track_on_the_edge(device, base, radius):
    # footprints along the first row and the last column: every shift with dy < 0 or dx > 0 leaves the patch
    rng = np.random.default_rng(1)
    pred = rng.uniform(0, 20, size=(1, 7, 8))
    labels = np.zeros((1, 1, 7, 8))
    labels[0, 0, 0, 1:6] = rng.uniform(1, 20, size=5)
    labels[0, 0, 3:6, 7] = rng.uniform(1, 20, size=3)
    check_against_reference(device, pred, labels, radius, base, 1.0, 5)
    dy, dx = best_shifts(*tensors(device, pred, labels), radius=radius, min_footprints=5, base=base)[0, 0].tolist()
    assert dy >= 0 and dx <= 0


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("radius", [1, 2])
def test_batch_with_short_empty_and_edge_tracks(device, base, radius):
    rng = np.random.default_rng(2)
    pred, labels = random_case(rng, 3, 4, 9, 9, densities=(0.3,))
    labels[0, 1] = 0.0                                   # empty track
    labels[1, 2] = 0.0
    labels[1, 2, 4, 2:5] = [3.0, 9.0, 12.0]              # too short to shift
    labels[2, 0] = 0.0
    labels[2, 0, 8, :] = rng.uniform(1, 20, size=9)      # whole bottom row: only dy <= 0, dx = 0 are candidates
    check_against_reference(device, pred, labels, radius, base, 2.0, 5)
    shifts = best_shifts(*tensors(device, pred, labels), radius=radius, base=base, delta=2.0)
    assert shifts[0, 1].tolist() == [0, 0] and shifts[1, 2].tolist() == [0, 0]
    assert shifts[2, 0, 0] <= 0 and shifts[2, 0, 1] == 0


def test_radius_zero_is_the_plain_loss_and_matches_torch_huber(device):
    rng = np.random.default_rng(3)
    pred, labels = random_case(rng, 2, 3, 6, 5, densities=(0.5,))
    p, lab = tensors(device, pred, labels)
    mask = lab > 0
    expected = F.huber_loss(p.unsqueeze(1).expand_as(lab)[mask], lab[mask], delta=1.5, reduction="mean")
    torch.testing.assert_close(plain_loss(p, lab, delta=1.5), expected)
    torch.testing.assert_close(shift_resilient_loss(p, lab, radius=0, delta=1.5), expected)
    for base in ("l1", "l2"):
        want, _ = reference(pred, labels, 0, base)
        torch.testing.assert_close(plain_loss(p, lab, base=base).cpu(), torch.tensor(float(want), dtype=torch.float64))


def test_channel_axis_and_float32(device):
    rng = np.random.default_rng(4)
    pred, labels = random_case(rng, 2, 2, 7, 7, densities=(0.4,))
    want, want_shifts = reference(pred, labels, 1)
    p64, lab64 = tensors(device, pred, labels)
    torch.testing.assert_close(shift_resilient_loss(p64.unsqueeze(1), lab64), shift_resilient_loss(p64, lab64))
    p32, lab32 = tensors(device, pred, labels, dtype=torch.float32)
    got = shift_resilient_loss(p32, lab32)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.cpu(), torch.tensor(float(want), dtype=torch.float32))
    np.testing.assert_array_equal(best_shifts(p32, lab32).cpu().numpy(), want_shifts)


# ----------------------------------------------------------------------------------------------------------
# the behaviour the loss exists for


@pytest.mark.parametrize("base", BASES)
def test_known_offsets_are_recovered_exactly(device, base):
    rng = np.random.default_rng(5)
    truth = rng.uniform(1.0, 30.0, size=(1, 14, 14))
    offsets = [(1, -1), (-2, 2), (0, 0), (2, 1)]
    labels = np.zeros((1, len(offsets), 14, 14))
    for t, (dy, dx) in enumerate(offsets):
        # a footprint recorded at (i, j) measured the canopy at (i + dy, j + dx): a geolocation error
        for i, j in [(3, 3), (4, 6), (6, 5), (8, 9), (10, 4), (11, 11), (5, 10)]:
            labels[0, t, i, j] = truth[0, i + dy, j + dx]
    p, lab = tensors(device, truth, labels)
    shifts = best_shifts(p, lab, radius=2, base=base)
    assert shifts[0].tolist() == [list(o) for o in offsets]
    assert shift_resilient_loss(p, lab, radius=2, base=base).item() == 0.0
    assert plain_loss(p, lab, base=base).item() > 0.0
    # outside the radius the true offset is out of reach
    assert shift_resilient_loss(p, lab, radius=1, base=base).item() > 0.0


def test_short_tracks_are_not_shifted(device):
    rng = np.random.default_rng(6)
    truth = rng.uniform(1.0, 30.0, size=(1, 8, 8))
    labels = np.zeros((1, 1, 8, 8))
    for i, j in [(2, 2), (3, 5), (5, 3), (5, 5)]:
        labels[0, 0, i, j] = truth[0, i + 1, j]
    p, lab = tensors(device, truth, labels)
    assert best_shifts(p, lab, min_footprints=5).tolist() == [[[0, 0]]]
    torch.testing.assert_close(shift_resilient_loss(p, lab, min_footprints=5), plain_loss(p, lab))
    assert best_shifts(p, lab, min_footprints=4).tolist() == [[[1, 0]]]
    assert shift_resilient_loss(p, lab, min_footprints=4).item() == 0.0


def test_shifting_never_wins_by_dropping_footprints(device):
    pred = np.zeros((1, 6, 6))
    pred[0, 2] = [5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    labels = np.zeros((1, 1, 6, 6))
    # with shift (0, -1) the footprints at columns 1..4 land exactly on pred, and the badly fitting
    # footprint at column 0 would fall off the patch: a loss that dropped it would be 0 there
    labels[0, 0, 2, :5] = [50.0, 5.0, 6.0, 7.0, 8.0]
    dropped = sum(base_loss(pred[0, 2, j - 1] - labels[0, 0, 2, j], "huber", 3.0) for j in range(1, 5))
    assert dropped == 0.0
    check_against_reference(device, pred, labels, 1, "huber", 3.0, 5)
    p, lab = tensors(device, pred, labels)
    assert best_shifts(p, lab)[0, 0, 1].item() != -1
    assert shift_resilient_loss(p, lab).item() > 0.0


def test_ties_prefer_the_zero_shift_then_row_major_order(device):
    # a constant prediction makes every in-patch shift cost the same
    pred = torch.full((1, 7, 7), 4.0, dtype=torch.float64, device=device)
    labels = torch.zeros(1, 2, 7, 7, dtype=torch.float64, device=device)
    labels[0, 0, 2:5, 2:5] = 3.0
    assert best_shifts(pred, labels, radius=2, min_footprints=1)[0, 0].tolist() == [0, 0]
    # here the zero shift is worse than two equally good shifts: the first in row-major order wins
    pred[0, 1, 1] = pred[0, 1, 5] = 3.0
    pred[0, 2, 3] = 9.0
    labels[0, 1, 2, 3] = 3.0
    assert best_shifts(pred, labels, radius=2, min_footprints=1)[0, 1].tolist() == [-1, -2]


def test_no_footprints_gives_a_connected_zero(device):
    pred = torch.rand(2, 5, 5, dtype=torch.float64, device=device, requires_grad=True)
    loss = shift_resilient_loss(pred, torch.zeros(2, 3, 5, 5, dtype=torch.float64, device=device))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert pred.grad is not None and torch.count_nonzero(pred.grad).item() == 0


@pytest.mark.parametrize("base", BASES)
def test_gradient_flows_only_at_the_chosen_positions(device, base):
    rng = np.random.default_rng(7)
    pred, labels = random_case(rng, 2, 3, 6, 6, densities=(0.2, 0.6))
    pred_ref = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    want, want_shifts = reference(pred_ref, labels, 1, base, 1.0, 3)
    want.backward()
    p = torch.tensor(pred, dtype=torch.float64, device=device, requires_grad=True)
    shift_resilient_loss(p, torch.as_tensor(labels, device=device), base=base, delta=1.0, min_footprints=3).backward()
    torch.testing.assert_close(p.grad.cpu(), pred_ref.grad)
    hits = np.zeros(pred.shape, dtype=int)
    for b, t, i, j in zip(*np.nonzero(labels > 0), strict=True):
        dy, dx = want_shifts[b, t]
        hits[b, i + dy, j + dx] += 1
    grad = p.grad.cpu().numpy()
    assert np.all(grad[hits == 0] == 0)
    # where two footprints meet, their gradients may cancel (L1 signs); a lone footprint's never does
    assert np.all(grad[hits == 1] != 0) and (hits == 1).sum() > 10


# ----------------------------------------------------------------------------------------------------------
# bad input


def _good(device):
    return torch.rand(2, 6, 6, dtype=torch.float64, device=device), torch.zeros(2, 3, 6, 6, dtype=torch.float64,
                                                                               device=device)


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"radius": -1}, ValueError, r"radius must lie in \[0"),
    ({"radius": 1.5}, TypeError, "radius must be an int"),
    ({"radius": 3}, ValueError, r"radius must lie in \[0, 2\] for a 6x6 patch"),
    ({"base": "mse"}, ValueError, "unknown base 'mse'; choose one of huber, l1, l2"),
    ({"delta": 0.0}, ValueError, r"delta must lie in \(0"),
    ({"delta": -1.0}, ValueError, r"delta must lie in \(0"),
    ({"min_footprints": -1}, ValueError, r"min_footprints must lie in \[0"),
])
@pytest.mark.parametrize("function", [shift_resilient_loss, best_shifts])
def test_bad_arguments(device, function, change, error, match):
    pred, labels = _good(device)
    with pytest.raises(error, match=match):
        function(pred, labels, **change)


@pytest.mark.parametrize(("build", "error", "match"), [
    (lambda p, lab: (p, lab[:, 0]), ValueError, r"labels must have shape \(B, T, H, W\)"),
    (lambda p, lab: (p.unsqueeze(1).expand(2, 2, 6, 6), lab), ValueError, r"pred must have shape \(B, H, W\)"),
    (lambda p, lab: (p[:1], lab), ValueError, "must agree in batch size"),
    (lambda p, lab: (p[:, :5], lab), ValueError, "must agree in batch size and patch size"),
    (lambda p, lab: (p, lab.index_fill(1, torch.tensor([0], device=lab.device), math.nan)), ValueError,
     "labels contain NaN; mark missing footprints with 0"),
    (lambda p, lab: (p, lab.index_fill(1, torch.tensor([0], device=lab.device), math.inf)), ValueError,
     "labels contain inf"),
    (lambda p, lab: (p.index_fill(1, torch.tensor([0], device=p.device), math.nan), lab), ValueError,
     "pred contains NaN"),
    (lambda p, lab: (p.long(), lab), TypeError, "pred must be a floating-point tensor"),
    (lambda p, lab: (p, lab.int()), TypeError, "labels must be a floating-point tensor"),
    (lambda p, lab: (p.cpu().numpy(), lab), TypeError, "pred must be a torch.Tensor"),
])
def test_bad_tensors(device, build, error, match):
    pred, labels = build(*_good(device))
    with pytest.raises(error, match=match):
        shift_resilient_loss(pred, labels)
    with pytest.raises(error, match=match):
        plain_loss(pred, labels)


# ----------------------------------------------------------------------------------------------------------
# metrics, against hand sums


def test_footprint_errors_by_hand(device):
    pred = torch.tensor([[[1.0, 2.0, 3.0], [10.0, 4.0, 6.0]]], device=device)
    labels = torch.zeros(1, 2, 2, 3, device=device)
    labels[0, 0, 0, 0], labels[0, 0, 1, 0] = 2.0, 8.0       # errors -1, +2
    labels[0, 1, 0, 2], labels[0, 1, 1, 2] = 3.0, 9.0       # errors 0, -3
    got = footprint_errors(pred, labels)
    assert got == pytest.approx({"mae": 1.5, "rmse": math.sqrt(3.5), "count": 4,
                                 "mae_tall": 2.5, "rmse_tall": math.sqrt(6.5), "count_tall": 2})
    assert isinstance(got["count"], int) and isinstance(got["mae"], float)
    # numpy input and a channel axis give the same numbers
    assert footprint_errors(pred.unsqueeze(1).cpu().numpy(), labels.cpu().numpy()) == got
    assert footprint_errors(pred, labels, tall=8.5) == pytest.approx(
        {**got, "mae_tall": 3.0, "rmse_tall": 3.0, "count_tall": 1})


def test_footprint_errors_empty_is_nan(device):
    pred = torch.ones(1, 2, 3, device=device)
    got = footprint_errors(pred, torch.zeros(1, 2, 2, 3, device=device))
    assert got["count"] == 0 and got["count_tall"] == 0
    assert all(math.isnan(got[k]) for k in ("mae", "rmse", "mae_tall", "rmse_tall"))
    short = torch.zeros(1, 1, 2, 3, device=device)
    short[0, 0, 0, 0] = 2.0
    got = footprint_errors(pred, short)
    assert got["mae"] == 1.0 and got["count"] == 1 and got["count_tall"] == 0 and math.isnan(got["mae_tall"])


def test_map_errors_by_hand(device):
    pred = torch.tensor([[1.0, 7.0], [3.0, 10.0]], device=device)
    truth = torch.tensor([[2.0, 5.0], [math.nan, 6.0]], device=device)
    # the NaN pixel has no reference height and is left out: errors -1, 2, 4; tall (truth > 5) only the 4
    assert map_errors(pred, truth) == pytest.approx({"mae": 7 / 3, "rmse": math.sqrt(7.0), "count": 3,
                                                     "mae_tall": 4.0, "rmse_tall": 4.0, "count_tall": 1})
    mask = np.array([[True, False], [True, True]])
    assert map_errors(pred, truth, mask=mask) == pytest.approx({"mae": 2.5, "rmse": math.sqrt(8.5), "count": 2,
                                                                "mae_tall": 4.0, "rmse_tall": 4.0, "count_tall": 1})
    none = map_errors(pred, truth, mask=np.zeros((2, 2), dtype=bool))
    assert none["count"] == 0 and math.isnan(none["mae"]) and math.isnan(none["rmse_tall"])
    # a batch with a channel axis
    batched = map_errors(pred[None, None], truth[None].cpu().numpy(), mask=torch.as_tensor(mask)[None, None])
    assert batched == pytest.approx(map_errors(pred, truth, mask=mask))


def test_error_map(device):
    pred = torch.tensor([[[1.0, 7.0], [3.0, 10.0]]], device=device)
    truth = np.array([[[2.0, 5.0], [0.5, 6.0]]], dtype=np.float32)
    got = error_map(pred.unsqueeze(1), truth)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (1, 2, 2)
    np.testing.assert_allclose(got, [[[-1.0, 2.0], [2.5, 4.0]]])


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: footprint_errors(np.ones((1, 2, 3)), np.ones((1, 2, 2, 4))), ValueError, "must have shape"),
    (lambda: footprint_errors(np.ones((1, 2, 3)), np.ones((2, 3))), ValueError, r"labels must have shape"),
    (lambda: footprint_errors(np.ones((1, 2, 3)), np.full((1, 1, 2, 3), np.nan)), ValueError, "labels contain NaN"),
    (lambda: footprint_errors(np.ones((1, 2, 3)), np.ones((1, 1, 2, 3)), tall=-1.0), ValueError, "tall"),
    (lambda: footprint_errors([[1.0]], np.ones((1, 1, 1, 1))), TypeError, "pred must be a torch.Tensor"),
    (lambda: map_errors(np.ones((2, 3)), np.ones((3, 2))), ValueError, "pred .* and truth .* must have the same"),
    (lambda: map_errors(np.full((2, 3), np.nan), np.ones((2, 3))), ValueError, "pred contains NaN"),
    (lambda: map_errors(np.ones((2, 3)), np.ones((2, 3)), mask=np.ones((2, 3))), TypeError, "mask must be a boolean"),
    (lambda: map_errors(np.ones((2, 3)), np.ones((2, 3)), mask=np.ones((3, 2), bool)), ValueError, "mask"),
    (lambda: error_map(np.ones((2, 3)), np.ones((1, 2, 3))), ValueError, "same shape"),
    (lambda: error_map(np.ones(3), np.ones(3)), ValueError, r"pred must have shape \(H, W\)"),
])
def test_metrics_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@settings(max_examples=40, deadline=None)
@given(radius=st.integers(0, 3), batch=st.integers(1, 3), tracks=st.integers(1, 4), size=st.integers(7, 14),
       density=st.floats(0.0, 0.4), base=st.sampled_from(["huber", "l1", "l2"]), min_footprints=st.integers(0, 6),
       seed=st.integers(0, 10_000))
def test_the_footprint_path_equals_the_dense_reference(radius, batch, tracks, size, density, base, min_footprints,
                                                        seed):
    from kit.canopy.loss import _choose, _shift_table, _shift_table_dense

    g = torch.Generator().manual_seed(seed)
    pred = (torch.rand(batch, size, size, generator=g, dtype=torch.float64) * 30).requires_grad_(True)
    labels = torch.rand(batch, tracks, size, size, generator=g, dtype=torch.float64) * 30
    labels = torch.where(torch.rand(labels.shape, generator=g, dtype=torch.float64) < density, labels, 0.0)
    sparse, candidates = _shift_table(pred, labels, radius, base, 3.0, min_footprints)
    dense, dense_candidates = _shift_table_dense(pred, labels, radius, base, 3.0, min_footprints)
    assert torch.equal(candidates, dense_candidates)
    # non-candidate shifts differ by design (off-patch footprints are left out, not read from padding)
    torch.testing.assert_close(sparse[candidates], dense[candidates])
    chosen = _choose(sparse, candidates, radius)
    assert torch.equal(chosen, _choose(dense, dense_candidates, radius))
    grad_sparse, = torch.autograd.grad(sparse.gather(-1, chosen.unsqueeze(-1)).sum(), pred)
    grad_dense, = torch.autograd.grad(dense.gather(-1, chosen.unsqueeze(-1)).sum(), pred)
    torch.testing.assert_close(grad_sparse, grad_dense)
