"""The game's tasks: MNIST digits, two of them (default 4 against 9, a hard pair) or all ten, pixels in [-1, 1]
so that the baseline 0 Arthur sees for hidden pixels differs from both background (-1) and ink (+1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import data as kit_data
from ..budget import choose, get_budget
from ..data import SplitDataset, Splits
from ..validate import check_int

DEFAULT_PAIR = (4, 9)


def check_pair(pair: Sequence[int] | None) -> tuple[int, ...] | None:
    """Two different digits in 0-9 (or None: all ten classes)."""
    if pair is None:
        return None
    if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise TypeError(f"digits must be a pair of digits such as (4, 9), or None for all ten; got {pair!r}")
    a, b = (check_int(d, f"digits[{i}]", low=0, high=9) for i, d in enumerate(pair))
    if a == b:
        raise ValueError(f"digits must be two different digits; got ({a}, {b})")
    return a, b


def _relabel(ds: SplitDataset, digits: tuple[int, ...] | None) -> SplitDataset:
    x, y = ds.inputs * 2.0 - 1.0, ds.targets
    if digits is None:
        return SplitDataset(x, y, ds.index)
    keep = (y == digits[0]) | (y == digits[1])
    return SplitDataset(x[keep], (y[keep] == digits[1]).long(), ds.index[keep])


def digit_task(digits: Sequence[int] | None = DEFAULT_PAIR, *, seed: int = 0, budget: str | None = None,
               n_train: int | None = None) -> Splits:
    """MNIST-5k (smoke and cpu budgets; full MNIST at gpu) restricted to ``digits`` (relabelled 0 and 1) or all
    ten classes, pixels mapped to [-1, 1]; ``n_train`` keeps that many training samples (seeded)."""
    digits = check_pair(digits)
    budget = get_budget(budget)
    name = choose(budget, smoke="mnist5k", cpu="mnist5k", gpu="mnist")
    splits = kit_data.load(name, seed=seed, budget=budget)
    parts = {part: _relabel(getattr(splits, part), digits) for part in ("train", "val", "test")}
    if n_train is not None:
        n_train = check_int(n_train, "n_train", low=1, high=len(parts["train"]))
        order = torch.randperm(len(parts["train"]), generator=torch.Generator().manual_seed(seed))
        keep = order[:n_train].sort().values
        ds = parts["train"]
        parts["train"] = SplitDataset(ds.inputs[keep], ds.targets[keep], ds.index[keep])
    classes = [str(d) for d in digits] if digits is not None else list(splits.classes)
    label = f"{name} {digits[0]} vs {digits[1]}" if digits is not None else f"{name} digits"
    return Splits(label, parts["train"], parts["val"], parts["test"], len(classes), splits.input_shape, classes)
