"""Constraint sets for a whole model: one region per parameter, radius from the initialization."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..validate import check_choice, check_float, check_int
from . import constraints as cons
from . import structured
from .constraints import Constraint, Unconstrained

KINDS = ("l1", "l2", "linf", "lp", "k_sparse", "k_support", "group_k_support", "spectral_k_support", "nuclear",
         "simplex", "nonnegative_k_sparse", "unconstrained")
NEEDS_K = ("k_sparse", "k_support", "group_k_support", "spectral_k_support", "nonnegative_k_sparse")


def build(kind: str, shape: torch.Size, radius: float = 1.0, k: int | float | None = None,
          p: float | None = None) -> Constraint:
    """A region by name for a parameter shape (the k-sparse / k-support kinds need k, 'lp' needs p)."""
    check_choice(kind, "kind", KINDS)
    if kind in NEEDS_K and k is None:
        unit = {"group_k_support": "groups", "spectral_k_support": "rank bound"}.get(kind, "entries")
        raise ValueError(f"kind {kind!r} needs k (a count, or a fraction of each layer's {unit})")
    if kind == "lp" and p is None:
        raise ValueError("kind 'lp' needs p >= 1")
    simple = {"l1": cons.L1Ball, "l2": cons.L2Ball, "linf": cons.LinfBall, "nuclear": cons.NuclearBall,
              "simplex": cons.ProbabilitySimplex, "unconstrained": cons.Unconstrained}
    if kind in simple:
        return simple[kind](shape, radius)
    if kind == "lp":
        return cons.LpBall(shape, p, radius)
    with_k = {"k_sparse": cons.KSparsePolytope, "k_support": cons.KSupportBall,
              "nonnegative_k_sparse": cons.NonnegativeKSparsePolytope,
              "group_k_support": structured.GroupKSupportBall, "spectral_k_support": structured.SpectralKSupportBall}
    return with_k[kind](shape, k, radius)


@torch.no_grad()
def expected_init_norms(model: nn.Module, samples: int = 10, seed: int = 0) -> dict[str, float]:
    """E||theta_0||_2 per parameter name, from re-running each layer's own initializer on a copy.

    The live weights and the global random state are untouched. Layers without ``reset_parameters``
    report their current norm.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    samples = check_int(samples, "samples", low=1)
    norms: dict[str, float] = {}
    for mod_name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not own:
            continue
        prefix = f"{mod_name}." if mod_name else ""
        if not hasattr(module, "reset_parameters"):
            norms.update({prefix + n: float(t.norm()) for n, t in own.items()})
            continue
        twin = copy.copy(module)  # shallow: only this layer's own tensors are replaced below
        # copies on the CPU (BN running stats included): the live layer and the CUDA RNG stay untouched
        twin._parameters = {n: None if t is None else nn.Parameter(t.detach().to("cpu", copy=True))
                            for n, t in module._parameters.items()}
        twin._buffers = {n: None if b is None else b.to("cpu", copy=True) for n, b in module._buffers.items()}
        totals = dict.fromkeys(own, 0.0)
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            for _ in range(samples):
                twin.reset_parameters()
                for n in own:
                    totals[n] += float(twin._parameters[n].norm())
        norms.update({prefix + n: total / samples for n, total in totals.items()})
    return norms


def constraints_from_init(model: nn.Module, kind: str | Callable[[str, nn.Parameter], str], *, width: float = 10.0,
                          k: int | float | None = None, p: float | None = None, samples: int = 10,
                          seed: int = 0) -> list[Constraint]:
    """One region per parameter (model.parameters() order), with L2 diameter 2 * width * E||theta_0||.

    ``kind`` is a region name or a function (parameter name, parameter) -> name. Parameters whose
    initial norm is zero (BatchNorm biases) use E||theta_0|| = 1.
    """
    width = check_float(width, "width", low=0.0, low_open=True)
    norms = expected_init_norms(model, samples, seed)
    regions = []
    for name, param in model.named_parameters():
        region_kind = kind(name, param) if callable(kind) else kind
        region = build(region_kind, param.shape, 1.0, k=k, p=p)
        expected = norms[name] if norms[name] > 0 else 1.0
        if not isinstance(region, Unconstrained):
            region.radius = region.radius_for_diameter(2.0 * width * expected)
        regions.append(region)
    return regions


@torch.no_grad()
def make_feasible_(model: nn.Module, constraints: list[Constraint]) -> nn.Module:
    """Rescale each parameter into its region, in place (the starting point SFW needs)."""
    params = list(model.parameters())
    if len(params) != len(constraints):
        raise ValueError(f"constraints must give one region per parameter: {len(params)} parameters, "
                         f"{len(constraints)} constraints")
    for i, (param, region) in enumerate(zip(params, constraints, strict=True)):
        region.check(param, name=f"parameter {i}")
        param.copy_(region.make_feasible(param))
    return model
