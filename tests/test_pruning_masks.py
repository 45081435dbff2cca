"""The kit's mask hook against torch's own ``torch.nn.utils.prune.custom_from_mask``.

The hook must give the same forward values and the same gradients as torch's reparametrisation (an
independent implementation of the same convention), keep masked entries out of the forward pass
whatever an optimizer writes there, and keep doing so through copies, pickling, dtype changes, two
forward passes before one backward, ``functional_call`` and removal.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import prune

from kit.pruning import apply_masks, copy_model, remove_masks
from kit.pruning.mask_hook import MaskHook


def _pair(seed: int = 0) -> tuple[nn.Module, nn.Module, dict[str, torch.Tensor]]:
    """Two identical MLPs: one masked by the kit, one by torch's custom_from_mask; and the masks."""
    torch.manual_seed(seed)
    ours = nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 4))
    theirs = copy.deepcopy(ours)
    g = torch.Generator().manual_seed(seed + 1)
    masks = {"0": torch.rand(9, 12, generator=g) > 0.6, "2": torch.rand(4, 9, generator=g) > 0.5}
    apply_masks(ours, masks)
    for name, mask in masks.items():
        prune.custom_from_mask(dict(theirs.named_modules())[name], "weight", mask)
    return ours, theirs, masks


def _loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (model(x) ** 2).mean()


def test_the_hook_is_a_torch_pruning_method_with_the_torch_layout():
    ours, _, _ = _pair()
    hooks = list(ours[0]._forward_pre_hooks.values())
    assert len(hooks) == 1 and isinstance(hooks[0], MaskHook) and isinstance(hooks[0], prune.BasePruningMethod)
    assert prune.is_pruned(ours)
    assert {k for k in ours.state_dict() if k.startswith("0.")} == {"0.weight_orig", "0.weight_mask", "0.bias"}


def test_forward_and_gradients_equal_torchs_custom_from_mask():
    ours, theirs, masks = _pair()
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    _loss(ours, x).backward()
    _loss(theirs, x).backward()
    for name in masks:
        a, b = dict(ours.named_modules())[name], dict(theirs.named_modules())[name]
        torch.testing.assert_close(a.weight_orig.grad, b.weight_orig.grad, rtol=0, atol=0)
        assert bool((a.weight_orig.grad[~masks[name]] == 0).all())


def test_training_matches_torchs_convention_step_for_step():
    ours, theirs, _ = _pair(3)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2) for m in (ours, theirs)]
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        x = torch.randn(8, 12, generator=g)
        for model, opt in zip((ours, theirs), opts, strict=True):
            opt.zero_grad()
            _loss(model, x).backward()
            opt.step()
    x = torch.randn(8, 12, generator=g)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)  # the same arithmetic on every kept entry


def test_masked_entries_stay_out_of_the_forward_whatever_the_optimizer_writes():
    ours, theirs, masks = _pair()
    x = torch.randn(4, 12)
    with torch.no_grad():  # an optimizer that fills every entry (a Frank-Wolfe vertex, stale momentum, ...)
        for model in (ours, theirs):
            for name in masks:
                dict(model.named_modules())[name].weight_orig.add_(1.0)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    assert bool((ours[0].weight[~masks["0"]] == 0).all())


def test_a_stale_momentum_buffer_cannot_revive_pruned_weights():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x = torch.randn(5, 6)
    _loss(model, x).backward()
    opt.step()  # momentum now nonzero everywhere
    mask = torch.rand(3, 6, generator=torch.Generator().manual_seed(1)) > 0.5
    apply_masks(model, {"": mask})
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    opt.state[model.weight_orig] = {"momentum_buffer": torch.ones(3, 6)}
    for _ in range(3):
        opt.zero_grad()
        _loss(model, x).backward()
        opt.step()
        model(x)
        assert bool((model.weight[~mask] == 0).all())


def test_copies_pickles_and_dtype_changes_keep_masking_the_gradient():
    ours, _, masks = _pair()
    copies = [copy_model(ours), copy.deepcopy(ours)]  # plain deepcopy too: the cached weight is a leaf here
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    copies.append(torch.load(buf, weights_only=False))
    copies.append(copy_model(ours).double())
    for model in copies:
        dtype = model[0].weight_orig.dtype
        _loss(model, torch.randn(3, 12, dtype=dtype)).backward()
        assert bool((model[0].weight_orig.grad[~masks["0"]] == 0).all())
        assert bool((model[0].weight_orig.grad[masks["0"]] != 0).any())
    assert ours[0].weight_orig.grad is None  # the copies' backward never reached the original


def test_two_forward_passes_before_one_backward():
    ours, theirs, _ = _pair()
    x1, x2 = torch.randn(4, 12), torch.randn(4, 12)
    (_loss(ours, x1) + _loss(ours, x2)).backward()
    (_loss(theirs, x1) + _loss(theirs, x2)).backward()
    torch.testing.assert_close(ours[0].weight_orig.grad, theirs[0].weight_orig.grad, rtol=0, atol=0)


def test_functional_call_takes_the_differentiable_product():
    ours, _, masks = _pair()
    w = torch.randn(9, 12, requires_grad=True)
    x = torch.randn(4, 12)
    out = functional_call(ours, {"0.weight_orig": w}, (x,))
    expected = ours[2](torch.relu(x @ (w * masks["0"]).T + ours[0].bias))
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert bool((w.grad[~masks["0"]] == 0).all()) and bool((w.grad[masks["0"]] != 0).any())
    assert ours[0].weight_orig.grad is None


def test_remove_masks_drops_the_gradient_hook_too():
    ours, _, masks = _pair()
    x = torch.randn(4, 12)
    ours(x)
    remove_masks(ours)
    assert not prune.is_pruned(ours) and isinstance(ours[0].weight, nn.Parameter)
    assert bool((ours[0].weight[~masks["0"]] == 0).all())
    _loss(ours, x).backward()
    assert bool((ours[0].weight.grad[~masks["0"]] != 0).any())  # a plain dense layer again


def test_pruning_further_rezeroes_at_the_next_forward():
    ours, _, masks = _pair()
    x = torch.randn(4, 12)
    ours(x)
    tighter = masks["0"] & (torch.rand(9, 12, generator=torch.Generator().manual_seed(9)) > 0.5)
    apply_masks(ours, {"0": tighter})
    ours(x)
    assert bool((ours[0].weight_orig[~tighter] == 0).all())
    with pytest.raises(ValueError, match="mask shape"):
        apply_masks(ours, {"0": torch.ones(3, 3, dtype=torch.bool)})


def test_frozen_masked_weights_and_unfreezing_later():
    ours, theirs, _ = _pair()
    ours[0].weight_orig.requires_grad_(False)
    x = torch.randn(4, 12)
    _loss(ours, x).backward()
    assert ours[0].weight_orig.grad is None and ours[2].weight_orig.grad is not None
    ours[0].weight_orig.requires_grad_(True)
    ours.zero_grad()
    _loss(ours, x).backward()
    _loss(theirs, x).backward()
    torch.testing.assert_close(ours[0].weight_orig.grad, theirs[0].weight_orig.grad, rtol=0, atol=0)
