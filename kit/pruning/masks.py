"""The kit's one mask mechanism, built on ``torch.nn.utils.prune``'s convention.

A masked parameter ``weight`` becomes a trainable ``weight_orig`` plus a ``weight_mask`` buffer and a
forward pre-hook, exactly as ``torch.nn.utils.prune.custom_from_mask`` leaves it. So a pruned model is
still an ordinary ``nn.Module``: it trains with any optimizer (the gradient of a masked entry is zero
and the forward pass sees zeros there whatever the optimizer does to ``weight_orig``), saves with
``state_dict``, loads into ``torch.nn.utils.prune`` code and turns dense-with-zeros with
:func:`remove_masks`.

The reference is torch's own hook (``weight = weight_orig * weight_mask`` at every forward). The kit
attaches a speed path of it, :class:`~kit.pruning.mask_hook.MaskHook` (its own module), which gives
the same forward values and gradients for less work; the tests check it against
``torch.nn.utils.prune.custom_from_mask``.

Masks are keyed by module name (as in ``model.named_modules()``) and act on one parameter of that
module, ``weight`` by default; ``True``/1 keeps an entry, ``False``/0 removes it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import prune

from .mask_hook import MaskHook

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")


def _check_types(types: Iterable[type[nn.Module]]) -> tuple[type[nn.Module], ...]:
    types = tuple(types) if not isinstance(types, type) else (types,)
    if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
        raise TypeError(f"types must be a non-empty tuple of nn.Module classes; got {types!r}")
    return types


def _has_param(module: nn.Module, name: str) -> bool:
    return isinstance(getattr(module, name, None), torch.Tensor) and (
        isinstance(module._parameters.get(name), nn.Parameter) or is_masked(module, name))


def prunable(model: nn.Module, types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs whose ``weight`` may be pruned: every module of ``types``, in module order."""
    _check_model(model)
    types = _check_types(types)
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, types) and _has_param(m, "weight")]
    if not found:
        names = ", ".join(t.__name__ for t in types)
        raise ValueError(f"model has no prunable layers: no module of type {names} with a weight")
    return found


def is_masked(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module.<name>`` is held as ``<name>_orig`` times the buffer ``<name>_mask``."""
    return hasattr(module, f"{name}_mask") and isinstance(getattr(module, f"{name}_orig", None), nn.Parameter)


def effective_weight(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The parameter as the forward pass sees it (``orig * mask`` if masked), detached and up to date."""
    # module.<name> of a masked module is only refreshed at the next forward, so after an optimizer
    # step it is stale; recompute from the two stored tensors instead
    with torch.no_grad():
        if is_masked(module, name):
            return getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")
        return getattr(module, name).detach()


def _as_mask(mask: object, where: str, shape: torch.Size) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        try:
            mask = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{where}: a mask must be a tensor (bool or 0/1); got {type(mask).__name__}") from err
    if mask.shape != shape:
        raise ValueError(f"{where}: mask shape {tuple(mask.shape)} differs from the parameter's {tuple(shape)}")
    if mask.dtype != torch.bool:
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{where}: a mask must be bool or hold only 0 and 1")
        mask = mask != 0
    return mask


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor], param: str = "weight") -> nn.Module:
    """Mask ``module.<param>`` of every named module; an existing mask is combined by AND. Returns ``model``."""
    _check_model(model)
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict module name -> mask; got {type(masks).__name__}")
    if not isinstance(param, str) or not param:
        raise TypeError(f"param must be a parameter name such as 'weight'; got {param!r}")
    modules = dict(model.named_modules())
    checked = []
    # check every entry before touching the model: a bad mask must not leave it half-masked
    for name, mask in masks.items():
        if name not in modules:
            raise ValueError(f"masks: model has no module named {name!r}")
        module = modules[name]
        if not _has_param(module, param):
            raise ValueError(f"masks: module {name!r} ({type(module).__name__}) has no parameter {param!r}")
        shape = effective_weight(module, param).shape
        checked.append((module, _as_mask(mask, f"masks[{name!r}]", shape)))
    for module, mask in checked:
        current = effective_weight(module, param)
        mask = mask.to(current.device)
        if is_masked(module, param):
            # update the buffer in place rather than stacking a PruningContainer: the parameter
            # object stays the same, so an optimizer built earlier keeps working
            buffer = getattr(module, f"{param}_mask")
            buffer.mul_(mask.to(buffer.dtype))
        else:
            MaskHook.apply(module, param, mask=mask)
        _refresh(module)
    return model


def _pruning_hooks(module: nn.Module) -> list[prune.BasePruningMethod]:
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def _refresh(module: nn.Module) -> None:
    # run the pruning hooks now rather than at the next forward, so ``module.<name>`` is current
    for hook in _pruning_hooks(module):
        hook(module, ())


def refresh_masked(model: nn.Module) -> nn.Module:
    """Bring every masked ``module.<name>`` up to date after its ``_orig`` or mask changed; returns ``model``."""
    _check_model(model)
    for module in model.modules():
        _refresh(module)
    return model


def _masked_params(module: nn.Module) -> list[str]:
    return [h._tensor_name for h in _pruning_hooks(module)]


def masks_of(model: nn.Module, param: str = "weight") -> dict[str, torch.Tensor]:
    """Bool masks (copies) of every module whose ``param`` is masked, keyed by module name."""
    _check_model(model)
    return {n: getattr(m, f"{param}_mask").detach().bool().clone()
            for n, m in model.named_modules() if is_masked(m, param)}


def remove_masks(model: nn.Module) -> nn.Module:
    """Make every mask permanent: plain dense parameters holding zeros, no hooks or buffers. Returns ``model``."""
    _check_model(model)
    for module in model.modules():
        for name in _masked_params(module):
            prune.remove(module, name)
    return model


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy that also works for masked models (plain ``copy.deepcopy`` refuses them)."""
    _check_model(model)
    # the cached ``weight`` of a masked module may be a non-leaf tensor, which deepcopy rejects;
    # swap in a detached copy for the copy's sake (the hook sets it again at every forward). The swap
    # goes through the instance dict: the cached value may be ``weight_orig`` itself, and setattr with a
    # Parameter would register it under the plain name
    cached = []
    for module in model.modules():
        for name in _masked_params(module):
            cached.append((module, name, module.__dict__.get(name)))
            module.__dict__[name] = effective_weight(module, name)
    try:
        return copy.deepcopy(model)
    finally:
        for module, name, value in cached:
            module.__dict__[name] = value


def _check_loadable(model: nn.Module, modules: dict[str, nn.Module], state_dict: Mapping[str, torch.Tensor],
                    by_param: dict[str, dict[str, torch.Tensor]], strict: bool) -> None:
    # the keys and shapes the model will have once the masks exist, compared before anything changes
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for param, masks in by_param.items():
        for name in masks:
            key = f"{name}.{param}".lstrip(".")
            if not is_masked(modules[name], param):
                if key not in expected:
                    raise ValueError(f"state_dict masks {key!r}, which the model does not have")
                shape = expected.pop(key)
                expected[f"{key}_orig"] = expected[f"{key}_mask"] = shape
    wrong = [f"{k}: {tuple(v.shape)} in state_dict, {expected[k]} in the model" for k, v in state_dict.items()
             if k in expected and isinstance(v, torch.Tensor) and tuple(v.shape) != expected[k]]
    if wrong:
        raise ValueError(f"state_dict does not fit the model (size mismatch): {'; '.join(wrong[:5])}")
    if strict:
        missing, extra = [k for k in expected if k not in state_dict], [k for k in state_dict if k not in expected]
        if missing or extra:
            raise ValueError(f"state_dict does not fit the model: missing keys {missing[:5] or 'none'}, "
                             f"unexpected keys {extra[:5] or 'none'} (strict=False ignores them)")


def load_pruned_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True) -> nn.Module:
    """Load a state dict saved from a masked model (``*_orig``/``*_mask`` keys) into ``model``; returns it."""
    _check_model(model)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping; got {type(state_dict).__name__}")
    by_param: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf.endswith("_mask") and f"{prefix}.{leaf[:-5]}_orig".lstrip(".") in state_dict:
            by_param.setdefault(leaf[:-5], {})[prefix] = value
    modules = dict(model.named_modules())
    for masks in by_param.values():
        missing = [n for n in masks if n not in modules]
        if missing:
            raise ValueError(f"state_dict has masks for modules the model lacks: {', '.join(missing)}")
    _check_loadable(model, modules, state_dict, by_param, strict)
    # build the masks first so the keys match, then let load_state_dict copy every value (masks included)
    for param, masks in by_param.items():
        apply_masks(model, {n: torch.ones_like(effective_weight(modules[n], param), dtype=torch.bool)
                            for n in masks if not is_masked(modules[n], param)}, param)
    model.load_state_dict(state_dict, strict=strict)
    return model


@dataclass
class LayerSparsity:
    """Zero count of one layer's weight."""

    zeros: int
    total: int

    @property
    def sparsity(self) -> float:
        """Fraction of zero entries."""
        return self.zeros / self.total if self.total else 0.0


@dataclass
class SparsityReport:
    """Per-layer and global fraction of zero weights among the prunable weights."""

    layers: dict[str, LayerSparsity] = field(default_factory=dict)

    @property
    def zeros(self) -> int:
        """Zero weights over all prunable layers."""
        return sum(s.zeros for s in self.layers.values())

    @property
    def total(self) -> int:
        """Prunable weights over all layers."""
        return sum(s.total for s in self.layers.values())

    @property
    def sparsity(self) -> float:
        """Global fraction of zero prunable weights."""
        return self.zeros / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain numbers (for JSON results and tables)."""
        return {"sparsity": self.sparsity, "zeros": self.zeros, "total": self.total,
                "layers": {n: {"sparsity": s.sparsity, "zeros": s.zeros, "total": s.total}
                           for n, s in self.layers.items()}}

    def __str__(self) -> str:
        width = max(len(n) for n in self.layers) if self.layers else 5
        lines = [f"{n:<{width}}  {s.sparsity:7.2%}  ({s.zeros:,} / {s.total:,})" for n, s in self.layers.items()]
        lines.append(f"{'total':<{width}}  {self.sparsity:7.2%}  ({self.zeros:,} / {self.total:,})")
        return "\n".join(lines)


def sparsity_report(model: nn.Module, types: Iterable[type[nn.Module]] = PRUNABLE_TYPES) -> SparsityReport:
    """Count the zero entries of every prunable weight (masked or exactly zero), per layer and in total."""
    report = SparsityReport()
    for name, module in prunable(model, types):
        w = effective_weight(module)
        report.layers[name] = LayerSparsity(zeros=int((w == 0).sum()), total=w.numel())
    return report
