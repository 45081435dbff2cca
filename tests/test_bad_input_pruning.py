"""Bad input to kit.pruning: out-of-range levels are refused, and a state dict that does not fit leaves the model
exactly as it was (no masks added before the failure)."""

from __future__ import annotations

import pytest
import torch

from kit.models import MLP
from kit.pruning import apply_masks, global_magnitude_masks, is_masked, load_pruned_state_dict, masks_of, svd_rank


@pytest.mark.parametrize(("sparsity", "full_rank", "error", "match"), [
    (-1.0, 10, ValueError, r"sparsity must lie in \[0.0, 1.0\)"),
    (1.5, 10, ValueError, "sparsity"),
    (1.0, 10, ValueError, "sparsity"),
    (0.5, 0, ValueError, r"full_rank must lie in \[1"),
    (0.5, 2.5, TypeError, "full_rank"),
])
def test_svd_rank_refuses_levels_outside_its_range(sparsity, full_rank, error, match):
    with pytest.raises(error, match=match):
        svd_rank(sparsity, full_rank)


def test_svd_rank_by_hand():
    assert [svd_rank(s, 10) for s in (0.0, 0.5, 0.8, 0.95)] == [10, 5, 2, 1]


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("strict", [True, False])
def test_a_state_dict_of_another_size_leaves_the_model_untouched(strict):
    torch.manual_seed(0)
    source = MLP((1, 4, 4), widths=(8,), num_classes=3)
    apply_masks(source, global_magnitude_masks(source, 0.5))
    target = MLP((1, 4, 4), widths=(9,), num_classes=3)  # one hidden unit more
    before = state(target)
    with pytest.raises(ValueError, match=r"size mismatch.*net.1.weight_orig: \(8, 16\) in state_dict, \(9, 16\)"):
        load_pruned_state_dict(target, source.state_dict(), strict=strict)
    assert not any(is_masked(m) for m in target.modules()) and masks_of(target) == {}
    after = state(target)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_missing_and_unexpected_keys_are_refused_before_any_mask_in_strict_mode():
    torch.manual_seed(0)
    source = MLP((1, 4, 4), widths=(8,), num_classes=3)
    apply_masks(source, global_magnitude_masks(source, 0.5))
    saved = dict(source.state_dict())
    saved["extra.weight"] = torch.zeros(1)
    target = MLP((1, 4, 4), widths=(8,), num_classes=3)
    with pytest.raises(ValueError, match=r"unexpected keys \[.extra.weight.\]"):
        load_pruned_state_dict(target, saved)
    assert masks_of(target) == {}
    load_pruned_state_dict(target, saved, strict=False)  # the same dict loads when extras are allowed
    assert masks_of(target).keys() == masks_of(source).keys()
