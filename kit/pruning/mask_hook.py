"""The speed path of the mask mechanism: a cheaper ``torch.nn.utils.prune`` custom-mask hook.

It computes the same forward values and gradients as torch's hook (the reference, tested equal):
torch's recomputes ``weight_orig * weight_mask`` into a fresh tensor at every forward and multiplies
the gradient into another fresh tensor in the backward, which made a masked training step of the MNIST
MLP about 1.2x the dense one here. For a module's own parameter, this hook instead zeroes the masked
entries of ``weight_orig`` in place when it or the mask changed since (their version counters tell),
hands ``weight_orig`` itself to the forward pass, and zeroes the masked gradient entries in place once
the gradient is accumulated. So ``weight_orig`` holds zeros at masked entries from the first forward
pass on (torch's keeps the pre-pruning values there, which nothing reads). Any other tensor in
``weight_orig``'s place (``torch.func.functional_call``) takes torch's own path. Writes that bypass the
version counter (``param.data.add_(...)``) are not seen until the next in-place op or mask change:
update parameters under ``torch.no_grad()``, as ``torch.optim`` does.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.nn.utils import prune


class MaskHook(prune.CustomFromMask):
    """``torch.nn.utils.prune``'s custom-mask hook, with the in-place forward described in the module docstring."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask)
        self._transient()

    def _transient(self) -> None:
        # what the last zeroing left: (orig, mask) versions and storages; the gradient hook's handle and
        # the parameter it sits on (a copy or a loaded model has neither, and gets both at its first forward)
        self._clean: tuple | None = None
        self._handle = None
        self._hooked: weakref.ref | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_clean", "_handle", "_hooked"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._transient()

    def __call__(self, module: nn.Module, inputs: object) -> None:
        name = self._tensor_name
        orig, mask = module._parameters[f"{name}_orig"], module._buffers[f"{name}_mask"]
        if not isinstance(orig, nn.Parameter):
            module.__dict__[name] = orig * mask  # functional_call and friends: torch's differentiable product
            return
        now = (orig._version, mask._version, orig.data_ptr(), mask.data_ptr())
        if now != self._clean:
            with torch.no_grad():
                orig.mul_(mask)
            self._clean = (orig._version, mask._version, orig.data_ptr(), mask.data_ptr())
        if orig.requires_grad and (self._hooked is None or self._hooked() is not orig):
            self._hook_gradient(module, orig)  # frozen weights (PERP) get no gradient and need no hook
        module.__dict__[name] = orig  # the instance attribute torch's hook sets, bypassing Module.__setattr__

    def _hook_gradient(self, module: nn.Module, orig: nn.Parameter) -> None:
        if self._handle is not None:
            self._handle.remove()
        owner, key = weakref.ref(module), f"{self._tensor_name}_mask"

        def mask_gradient(param: torch.Tensor) -> None:
            # look the mask up at call time: .to(device) replaces buffers, and remove() drops it
            mask = getattr(owner(), "_buffers", {}).get(key)
            if mask is not None and param.grad is not None:
                param.grad.mul_(mask)

        self._handle = orig.register_post_accumulate_grad_hook(mask_gradient)
        self._hooked = weakref.ref(orig)

    def remove(self, module: nn.Module) -> None:
        """torch's remove (the weight becomes dense with zeros), and the gradient hook with it."""
        if self._handle is not None:
            self._handle.remove()
        self._transient()
        super().remove(module)


__all__ = ["MaskHook"]
