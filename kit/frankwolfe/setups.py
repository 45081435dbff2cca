"""Ready-made optimizer set-ups for a model: regions from its initialization, feasible start, SFW or PSGD."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..validate import check_choice, check_float, check_int
from .constraints import Unconstrained
from .optimizers import SFW, ProjectedSGD
from .regions import KINDS, build, constraints_from_init, make_feasible_

PROJECTABLE = ("l1", "l2", "linf", "nuclear", "simplex", "unconstrained")


def sfw_setup(region: str, *, width: float = 10.0, lr: float = 0.1, momentum: float = 0.9,
              rescale: str | None = "gradient", k: int | float | None = None, p: float | None = None,
              by_dims: dict[int, str] | None = None, **sfw_options) -> Callable[[nn.Module], SFW]:
    """A function model -> SFW: one ``region`` per parameter (radius from init, ``width``), start made feasible.

    ``by_dims`` overrides ``region`` by parameter dimensionality, e.g. ``{1: "l2", 2: "k_support"}``
    keeps biases and normalization scales in L2 balls and linear weights in k-support balls when
    ``region='group_k_support'`` is meant for the conv filters.
    """
    check_choice(region, "region", KINDS)
    by_dims = dict(by_dims or {})
    for dims, kind in by_dims.items():
        check_int(dims, "by_dims key (a parameter dimensionality)", low=1)
        check_choice(kind, f"by_dims[{dims}]", KINDS)
    width = check_float(width, "width", low=0.0, low_open=True)
    # every optimizer option checked now, by SFW itself on a stand-in parameter: a bad momentum or an
    # unknown option fails here, before any data is loaded or model built
    SFW([torch.zeros(1)], [Unconstrained((1,))], lr=lr, momentum=momentum, rescale=rescale, **sfw_options)
    # a probe on a huge (never allocated) matrix shape, so a k valid for big layers passes for every kind
    # (entries, groups along dim 0, rank bound): bad k or p fail here, early
    for kind in {region, *by_dims.values()}:
        build(kind, (2**20, 2**20), k=k, p=p)

    def setup(model: nn.Module) -> SFW:
        constraints = constraints_from_init(model, lambda _, param: by_dims.get(param.dim(), region), width=width,
                                            k=k, p=p)
        make_feasible_(model, constraints)
        return SFW(model.parameters(), constraints, lr=lr, momentum=momentum, rescale=rescale, **sfw_options)

    return setup


def projected_sgd_setup(region: str, *, width: float = 10.0, lr: float = 0.1, momentum: float = 0.9,
                        weight_decay: float = 0.0) -> Callable[[nn.Module], ProjectedSGD]:
    """A function model -> ProjectedSGD over the same regions as :func:`sfw_setup` (the baseline)."""
    check_choice(region, "region", KINDS)
    if region not in PROJECTABLE:
        raise ValueError(f"region {region!r} has no cheap Euclidean projection; ProjectedSGD supports "
                         f"{', '.join(PROJECTABLE)}")
    width = check_float(width, "width", low=0.0, low_open=True)

    def setup(model: nn.Module) -> ProjectedSGD:
        constraints = constraints_from_init(model, region, width=width)
        make_feasible_(model, constraints)
        return ProjectedSGD(model.parameters(), constraints, lr=lr, momentum=momentum, weight_decay=weight_decay)

    return setup
