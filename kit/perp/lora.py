"""Sparsity-preserving LoRA and the choice of what PERP retrains (biases, norms, adapters).

* MaskLoRA: ``W_eff = M * (W + (alpha / r) B A)``, with ``B = 0`` at the start;
* ScaleLoRA: ``W_eff = M * W * (B A)``, with ``B A`` exactly one at the start.

Both keep every pruned zero, so :func:`merge` folds them into the weights without losing sparsity.
The adapted product is formed inside a custom autograd function that recomputes ``W_eff`` in the
backward pass instead of storing it: the stored tensors per layer are the input and the two small
factors, so a PERP step needs far less memory than storing one dense matrix per layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..models import count_parameters
from ..pruning import is_masked
from ..validate import check_choice, check_float, check_int
from .llm_pruning import decoder_linears

LORA_KINDS = ("mask", "scale")
GROUPS = ("biases", "norms", "lora", "all")


def _effective(weight: torch.Tensor, mask: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor, kind: str,
               scale: float) -> torch.Tensor:
    product = b @ a
    w = weight * product if kind == "scale" else weight + scale * product
    return w if mask is None else w * mask


class _AdaptedLinear(torch.autograd.Function):
    """y = x W_eff^T + bias, storing x, W, M, A, B (not W_eff) for the backward pass."""

    @staticmethod
    def forward(ctx, x, weight, mask, a, b, bias, kind, scale):
        ctx.kind, ctx.scale, ctx.has_mask = kind, scale, mask is not None
        ctx.save_for_backward(x, weight, mask if mask is not None else torch.empty(0), a, b)
        with torch.no_grad():
            return F.linear(x, _effective(weight, mask, a, b, kind, scale), bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mask, a, b = ctx.saved_tensors
        mask = mask if ctx.has_mask else None
        grad_x = grad_a = grad_b = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad @ _effective(weight, mask, a, b, ctx.kind, ctx.scale)
        if ctx.needs_input_grad[3] or ctx.needs_input_grad[4]:
            g = grad.reshape(-1, grad.shape[-1]).T @ x.reshape(-1, x.shape[-1])  # dL/dW_eff
            if mask is not None:
                g = g * mask
            g = g * weight if ctx.kind == "scale" else g * ctx.scale  # dL/d(BA)
            grad_a, grad_b = b.T @ g, g @ a.T
        if ctx.needs_input_grad[5]:
            grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0)
        return grad_x, None, None, grad_a, grad_b, grad_bias, None, None


class LoRALinear(nn.Module):
    """A (possibly masked) Linear with a sparsity-preserving low-rank adapter; ``base`` is left frozen."""

    def __init__(self, base: nn.Linear, rank: int = 16, alpha: float = 32.0, kind: str = "mask",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear; got {type(base).__name__}")
        self.rank = check_int(rank, "rank", low=1)
        self.alpha = check_float(alpha, "alpha", low=0.0, low_open=True)
        self.kind = check_choice(kind, "kind", LORA_KINDS)
        self.base = base
        out_f, in_f = base.out_features, base.in_features
        dev, dtype = self._weight().device, self._weight().dtype
        if self.kind == "mask":
            a = torch.empty(self.rank, in_f, dtype=dtype)
            bound = 1 / math.sqrt(in_f)  # torch's default Linear init scale, as LoRA does for A
            a.uniform_(-bound, bound, generator=generator)
            b = torch.zeros(out_f, self.rank, dtype=dtype)
        else:
            # B A = 1 exactly: B and the mean of A are constants, and A gets a perturbation whose
            # columns sum to zero, so the rank components differ and receive different gradients
            noise = torch.randn(self.rank, in_f, generator=generator, dtype=dtype) * 0.1
            a = 1 / math.sqrt(self.rank) + (noise - noise.mean(0, keepdim=True))
            b = torch.full((out_f, self.rank), 1 / math.sqrt(self.rank), dtype=dtype)
        self.lora_A = nn.Parameter(a.to(dev))
        self.lora_B = nn.Parameter(b.to(dev))

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def _weight(self) -> torch.Tensor:
        return self.base.weight_orig if is_masked(self.base) else self.base.weight

    def _mask(self) -> torch.Tensor | None:
        return self.base.weight_mask if is_masked(self.base) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _AdaptedLinear.apply(x, self._weight().detach(), self._mask(), self.lora_A, self.lora_B,
                                    self.base.bias, self.kind, self.scale)

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """The weight with the adapter folded in (pruned entries stay exactly zero)."""
        return _effective(self._weight(), self._mask(), self.lora_A, self.lora_B, self.kind, self.scale)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, rank={self.rank}, alpha={self.alpha:g}"


def _set_child(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def add_lora(model: nn.Module, rank: int = 16, alpha: float = 32.0, kind: str = "mask", seed: int = 0,
             targets: Iterable[str] | None = None) -> list[str]:
    """Wrap every decoder Linear (or the named ones) in a :class:`LoRALinear`; returns the wrapped names."""
    rank = check_int(rank, "rank", low=1)
    alpha = check_float(alpha, "alpha", low=0.0, low_open=True)
    kind = check_choice(kind, "kind", LORA_KINDS)
    linears = decoder_linears(model)
    names = list(linears) if targets is None else list(targets)
    unknown = [n for n in names if n not in linears]
    if unknown:
        raise ValueError(f"targets must be decoder Linear names; unknown: {', '.join(unknown[:5])}")
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("model already has LoRA adapters; fold them in with kit.perp.merge(model) first")
    gen = torch.Generator().manual_seed(seed)
    for name in names:
        _set_child(model, name, LoRALinear(linears[name], rank, alpha, kind, gen))
    return names


def adapter_settings(model: nn.Module) -> dict[str, object] | None:
    """The adapters of ``model`` as ``add_lora`` would add them again (targets, rank, alpha, kind), or None."""
    adapted = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    if not adapted:
        return None
    shapes = {(m.rank, m.alpha, m.kind) for m in adapted.values()}
    if len(shapes) > 1:
        raise ValueError(f"the model's adapters differ in (rank, alpha, kind): {sorted(shapes)}; one add_lora call "
                         "adds them all alike, and only such adapters are saved")
    rank, alpha, kind = shapes.pop()
    return {"targets": sorted(adapted), "rank": rank, "alpha": alpha, "kind": kind}


def restore_adapters(model: nn.Module, settings: dict[str, object]) -> nn.Module:
    """Add the adapters that :func:`adapter_settings` described (their values are loaded afterwards)."""
    add_lora(model, rank=settings["rank"], alpha=settings["alpha"], kind=settings["kind"],
             targets=settings["targets"])
    return model


@torch.no_grad()
def merge(model: nn.Module) -> nn.Module:
    """Fold every adapter into its Linear and put the plain (masked) Linear back; returns ``model``."""
    wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, lora in wrapped:
        merged = lora.merged_weight()
        lora._weight().copy_(merged)  # masked entries of merged are zero, so the mask stays exact
        _set_child(model, name, lora.base)
    return model


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d)) or "Norm" in type(module).__name__


def set_trainable(model: nn.Module, groups: Iterable[str]) -> list[str]:
    """Freeze everything, then unfreeze the chosen groups ('biases', 'norms', 'lora', 'all'); returns the
    trainable parameter names. 'lora' needs adapters added first (:func:`add_lora`)."""
    groups = [check_choice(g, "groups", GROUPS) for g in groups]
    if not groups:
        raise ValueError(f"groups must name at least one of {', '.join(GROUPS)}")
    has_lora = any(isinstance(m, LoRALinear) for m in model.modules())
    if "lora" in groups and not has_lora:
        raise ValueError("group 'lora' chosen but the model has no adapters; call add_lora(model, ...) first")
    if "all" in groups and has_lora:
        raise ValueError("group 'all' trains every weight, but adapted weights are frozen inside their adapters; "
                         "merge the adapters first (kit.perp.merge) or choose groups without 'all'")
    norm_params = {id(p) for m in model.modules() if _is_norm(m) for p in m.parameters(recurse=False)}
    chosen = {}
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        chosen[name] = ("all" in groups
                        or ("biases" in groups and leaf == "bias")
                        or ("norms" in groups and id(param) in norm_params)
                        or ("lora" in groups and leaf in ("lora_A", "lora_B")))
    if not any(chosen.values()):  # checked before any flag changes, so a refused call leaves the model as it was
        raise ValueError(f"groups {groups} select no parameters of this model (e.g. Llama models have no biases)")
    for name, param in model.named_parameters():
        param.requires_grad_(chosen[name])
    return [n for n, on in chosen.items() if on]


@dataclass(frozen=True)
class Trainable:
    """How much of a model is trained: counts and percent (adapters count as trained and as total)."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total

    def __str__(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({self.percent:.3g}%)"


def trainable_parameters(model: nn.Module) -> Trainable:
    """Trainable and total parameter counts (shared tensors counted once)."""
    return Trainable(count_parameters(model, trainable_only=True), count_parameters(model))


def parameter_groups(model: nn.Module) -> list[dict[str, object]]:
    """Rows (group, parameters, trainable) for embeddings, attention and MLP weights, norms, biases,
    adapters and anything else: the picture of what PERP trains."""
    counts: dict[str, list[int]] = {}
    seen: set[int] = set()
    norm_params = {id(p) for m in model.modules() if _is_norm(m) for p in m.parameters(recurse=False)}
    embeddings = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("lora_A", "lora_B"):
            group = "LoRA adapters"
        elif id(param) in norm_params:
            group = "norms"
        elif leaf == "bias":
            group = "biases"
        elif id(param) in embeddings:
            group = "embeddings (tied LM head)"
        elif "attn" in name or "attention" in name:
            group = "attention weights"
        elif "mlp" in name or "fc" in name:
            group = "MLP weights"
        else:
            group = "other"
        total, trained = counts.setdefault(group, [0, 0])
        counts[group] = [total + param.numel(), trained + (param.numel() if param.requires_grad else 0)]
    return [{"group": g, "parameters": c[0], "trainable": c[1]} for g, c in counts.items()]
