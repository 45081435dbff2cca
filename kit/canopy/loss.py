"""The shift-resilient loss for canopy height regression on sparse, mislocated GEDI footprints.

Labels are lidar footprints along orbit tracks, one layer per track (``labels[b, t]``; a value <= 0 means
no footprint). A track's footprints share one geolocation error, so the loss lets each track move as a whole
by a shift ``(dy, dx)`` with ``|dy|, |dx| <= radius`` and keeps the shift that fits the prediction best: a
footprint at ``(i, j)`` is compared with ``pred[i + dy, j + dx]``. Only shifts that keep every footprint of
the track inside the patch are candidates, so a shift can never win by pushing awkward footprints out;
short tracks (fewer than ``min_footprints`` footprints) are too weak evidence for a shift and stay put.

All shifts of all tracks are evaluated at once. The readable reference (:func:`_shift_table_dense`) pads
``pred`` by ``radius``, unfolds it into its ``S = (2 radius + 1)^2`` shifted views and takes one masked sum over
the patch per track and shift: memory and time ``B * T * S * H * W``. The path the loss uses
(:func:`_shift_table`) gathers the prediction at the ``N`` footprints' shifted positions only, ``N * S`` work
(footprints are a few percent of the pixels), at the price of one host synchronisation on an accelerator to
count the footprints; the tests check that both give the same loss, shifts and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..validate import check_choice, check_float, check_int

BASES = ("huber", "l1", "l2")


def shift_resilient_loss(pred: torch.Tensor, labels: torch.Tensor, radius: int = 1, base: str = "huber",
                         delta: float = 3.0, min_footprints: int = 5) -> torch.Tensor:
    """Mean per-footprint loss after each track takes its best in-patch shift within ``radius`` (a scalar)."""
    pred, labels, radius, base, delta, min_footprints = _check(pred, labels, radius, base, delta, min_footprints)
    table, candidates = _shift_table(pred, labels, radius, base, delta, min_footprints)
    chosen = _choose(table, candidates, radius)
    # gather (not amin) so the gradient goes to the one chosen shift, also on exact ties
    per_track = table.gather(-1, chosen.unsqueeze(-1))
    # an empty batch gives 0 / 1 = a zero that is still connected to pred, without a host sync to branch on
    count = (labels > 0).sum(dtype=pred.dtype)
    return per_track.sum() / count.clamp_min(1)


def plain_loss(pred: torch.Tensor, labels: torch.Tensor, base: str = "huber", delta: float = 3.0) -> torch.Tensor:
    """Mean per-footprint loss with every track where it was recorded (the shift-resilient loss at radius 0)."""
    return shift_resilient_loss(pred, labels, radius=0, base=base, delta=delta, min_footprints=0)


def best_shifts(pred: torch.Tensor, labels: torch.Tensor, radius: int = 1, base: str = "huber",
                delta: float = 3.0, min_footprints: int = 5) -> torch.Tensor:
    """The (dy, dx) each track's minimum picks, shape (B, T, 2), long; (0, 0) for tracks that are not shifted."""
    pred, labels, radius, base, delta, min_footprints = _check(pred, labels, radius, base, delta, min_footprints)
    with torch.no_grad():
        table, candidates = _shift_table(pred, labels, radius, base, delta, min_footprints)
        chosen = _choose(table, candidates, radius)
    return _offsets(radius, pred.device)[chosen]


def pointwise_loss(residual: torch.Tensor, base: str, delta: float) -> torch.Tensor:
    """The base loss of each residual: Huber (torch's definition, with ``delta``), absolute or squared error."""
    if base == "l1":
        return residual.abs()
    if base == "l2":
        return residual.square()
    size = residual.abs()
    return torch.where(size <= delta, 0.5 * residual.square(), delta * (size - 0.5 * delta))


def _offsets(radius: int, device: torch.device) -> torch.Tensor:
    """The (S, 2) table of (dy, dx), row-major over dy then dx from -radius to radius (the unfold order)."""
    steps = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([dy.reshape(-1), dx.reshape(-1)], dim=-1)


def _shift_table(pred: torch.Tensor, labels: torch.Tensor, radius: int, base: str, delta: float,
                 min_footprints: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed base loss of every (sample, track, shift), shape (B, T, S), and which shifts are candidates, from the
    footprints alone (the losses of non-candidate shifts leave out the footprints a shift pushes off the patch)."""
    batch, tracks, height, width = labels.shape
    b, t, i, j = (labels > 0).nonzero(as_tuple=True)
    offsets = _offsets(radius, pred.device)
    rows, cols = i[:, None] + offsets[:, 0], j[:, None] + offsets[:, 1]  # (N, S)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    values = pred[b[:, None], rows.clamp(0, height - 1), cols.clamp(0, width - 1)]
    residual = values - labels[b, t, i, j][:, None]
    losses = torch.where(inside, pointwise_loss(residual, base, delta), 0.0)
    track = b * tracks + t
    size = offsets.shape[0]
    table = pred.new_zeros(batch * tracks, size).index_add_(0, track, losses).view(batch, tracks, size)
    outside = torch.zeros(batch * tracks, size, dtype=torch.long, device=pred.device)
    outside = outside.index_add_(0, track, (~inside).long()).view(batch, tracks, size)
    count = torch.zeros(batch * tracks, dtype=torch.long, device=pred.device).index_add_(
        0, track, torch.ones_like(track)).view(batch, tracks, 1)
    zero = (offsets[:, 0] == 0) & (offsets[:, 1] == 0)
    candidates = ((count >= max(min_footprints, 1)) & (outside == 0)) | zero
    return table, candidates


def _shift_table_dense(pred: torch.Tensor, labels: torch.Tensor, radius: int, base: str, delta: float,
                       min_footprints: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The readable reference of :func:`_shift_table`: summed base loss of every (sample, track, shift), shape
    (B, T, S), over whole shifted views of the patch, and which shifts are candidates."""
    _, height, width = pred.shape
    size = 2 * radius + 1
    # views[b, a, c] = pred[b] moved by (a - radius, c - radius); the zero padding is only read by
    # non-candidate shifts, whose losses are never chosen
    padded = F.pad(pred, (radius, radius, radius, radius))
    views = padded.unfold(1, height, 1).unfold(2, width, 1).reshape(pred.shape[0], size * size, height, width)
    footprints = labels > 0
    residual = views.unsqueeze(1) - labels.unsqueeze(2)
    # where (not a product with the mask) so a huge prediction off the footprints cannot turn into NaN
    losses = torch.where(footprints.unsqueeze(2), pointwise_loss(residual, base, delta), 0.0)
    table = losses.sum(dim=(-2, -1))

    offsets = _offsets(radius, pred.device)
    dy, dx = offsets[:, 0], offsets[:, 1]
    # a shift keeps the whole track in the patch iff it keeps the track's bounding box in the patch;
    # empty tracks get an inverted box, harmless since they are never shifted
    rows = torch.arange(height, device=pred.device)
    cols = torch.arange(width, device=pred.device)
    in_row, in_col = footprints.any(dim=-1), footprints.any(dim=-2)
    top = torch.where(in_row, rows, height).amin(dim=-1, keepdim=True)
    bottom = torch.where(in_row, rows, -1).amax(dim=-1, keepdim=True)
    left = torch.where(in_col, cols, width).amin(dim=-1, keepdim=True)
    right = torch.where(in_col, cols, -1).amax(dim=-1, keepdim=True)
    inside = (top + dy >= 0) & (bottom + dy < height) & (left + dx >= 0) & (right + dx < width)
    count = footprints.sum(dim=(-2, -1)).unsqueeze(-1)
    may_shift = (count >= max(min_footprints, 1)) & inside
    candidates = may_shift | ((dy == 0) & (dx == 0))
    return table, candidates


def _choose(table: torch.Tensor, candidates: torch.Tensor, radius: int) -> torch.Tensor:
    """Index of each track's minimal candidate shift: the zero shift on a tie, else the first in row-major order."""
    zero = (2 * radius + 1) ** 2 // 2
    masked = torch.where(candidates, table, torch.inf)
    best = masked.amin(dim=-1)
    # min's index on ties is not guaranteed to be the first one on every device, so find it explicitly
    positions = torch.arange(masked.shape[-1], device=table.device)
    first = torch.where(masked == best.unsqueeze(-1), positions, masked.shape[-1]).amin(dim=-1)
    return torch.where(masked[..., zero] == best, zero, first)


def _check(pred: torch.Tensor, labels: torch.Tensor, radius: int, base: str, delta: float,
           min_footprints: int) -> tuple[torch.Tensor, torch.Tensor, int, str, float, int]:
    """Validated arguments: pred as (B, H, W), labels as (B, T, H, W) in pred's dtype."""
    radius = check_int(radius, "radius", low=0)
    base = check_choice(base, "base", BASES)
    delta = check_float(delta, "delta", low=0.0, low_open=True)
    min_footprints = check_int(min_footprints, "min_footprints", low=0)
    for name, value in (("pred", pred), ("labels", labels)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor (float32 or float64); got {value.dtype}")
    if labels.dim() != 4:
        raise ValueError(f"labels must have shape (B, T, H, W); got {tuple(labels.shape)}")
    if pred.dim() == 4 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if pred.dim() != 3:
        raise ValueError(f"pred must have shape (B, H, W) or (B, 1, H, W); got {tuple(pred.shape)}")
    if pred.shape[0] != labels.shape[0] or pred.shape[1:] != labels.shape[2:]:
        raise ValueError(f"pred {tuple(pred.shape)} and labels {tuple(labels.shape)} must agree in batch size "
                         "and patch size (B, H, W)")
    if labels.device != pred.device:
        raise ValueError(f"labels must be on pred's device {pred.device}; got {labels.device}")
    height, width = pred.shape[1:]
    if 2 * radius + 1 > min(height, width):
        raise ValueError(f"radius must lie in [0, {(min(height, width) - 1) // 2}] for a {height}x{width} patch "
                         f"(2 * radius + 1 <= H and W); got {radius}")
    # one host sync for all three checks
    bad_labels, inf_labels, bad_pred = torch.stack([labels.isnan().any(), labels.isinf().any(),
                                                    pred.isnan().any()]).tolist()
    if bad_labels:
        raise ValueError("labels contain NaN; mark missing footprints with 0")
    if inf_labels:
        raise ValueError("labels contain inf; footprint heights must be finite")
    if bad_pred:
        raise ValueError("pred contains NaN")
    return pred, labels.to(pred.dtype), radius, base, delta, min_footprints
