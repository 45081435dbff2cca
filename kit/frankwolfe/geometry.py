"""The idea in two and three dimensions: what one Frank-Wolfe step does on each region, and the k-support balls.

Plain numbers only; the figures are drawn by :mod:`kit.plots.frank_wolfe` (``lmo_step_figure`` and
``ksupport_ball_figure`` here compute and draw in one call).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import plots
from ..validate import check_float, check_int
from .constraints import Constraint, L1Ball, L2Ball, LinfBall, LpBall, ProbabilitySimplex, ksupport_norm

DEFAULT_REGIONS = (L1Ball((2,)), L2Ball((2,)), LinfBall((2,)), LpBall((2,), 3.0), ProbabilitySimplex((2,)))
TITLES = {"L1Ball": "L1 ball", "L2Ball": "L2 ball", "LinfBall": "L-inf ball", "LpBall": "Lp ball (p=3)",
          "ProbabilitySimplex": "simplex"}


def boundary(region: Constraint, points: int = 361) -> torch.Tensor:
    """Points on the boundary of a 2-D region, from its gauge: r d / norm(d) for directions d."""
    if region.shape != torch.Size([2]):
        raise ValueError(f"region must be 2-D (shape (2,)); got shape {tuple(region.shape)}")
    points = check_int(points, "points", low=3)
    if isinstance(region, ProbabilitySimplex):
        return torch.tensor([[region.radius, 0.0], [0.0, region.radius]])
    angles = torch.linspace(0, 2 * math.pi, points, dtype=torch.float64)
    dirs = torch.stack([angles.cos(), angles.sin()], dim=1)
    return torch.stack([d * region.radius / region.norm(d) for d in dirs])


@dataclass
class StepPanel:
    """One Frank-Wolfe step on a 2-D region: its boundary, the iterate, the gradient, the LMO vertex, the step."""

    title: str
    boundary: np.ndarray
    point: np.ndarray
    gradient: np.ndarray
    vertex: np.ndarray
    step: np.ndarray


def _inside(region: Constraint) -> torch.Tensor:
    if isinstance(region, ProbabilitySimplex):
        return torch.tensor([0.7, 0.3], dtype=torch.float64) * region.radius
    return torch.tensor([-0.25, 0.3], dtype=torch.float64) * region.radius


def step_panels(gradient: Sequence[float] = (1.0, 0.45), point: Sequence[float] | None = None,
                regions: Sequence[Constraint] = DEFAULT_REGIONS, eta: float = 0.5) -> list[StepPanel]:
    """Per region: theta' = theta + eta (v - theta), v = LMO(gradient) the vertex minimizing <v, gradient>."""
    g = torch.tensor(gradient, dtype=torch.float64)
    if g.shape != (2,) or not torch.isfinite(g).all() or g.norm() == 0:
        raise ValueError(f"gradient must be a non-zero 2-vector; got {gradient!r}")
    eta = check_float(eta, "eta", low=0.0, high=1.0)
    panels = []
    for region in regions:
        theta = torch.tensor(point, dtype=torch.float64) if point is not None else _inside(region)
        v = region.lmo(g)
        panels.append(StepPanel(TITLES.get(type(region).__name__, repr(region)), boundary(region).numpy(),
                                theta.numpy(), g.numpy(), v.numpy(), (theta + eta * (v - theta)).numpy()))
    return panels


def ksupport_ball_points(ks: Sequence[int] = (1, 2, 3), directions: int = 2000, seed: int = 0
                         ) -> dict[int, np.ndarray]:
    """Boundary points u / ||u||_(k) of the unit k-support ball in 3-D for random directions u, per k."""
    directions = check_int(directions, "directions", low=100)
    if not ks or any(not 1 <= int(k) <= 3 for k in ks):
        raise ValueError(f"ks must be counts in [1, 3] (the balls live in three dimensions); got {ks!r}")
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(directions, 3, generator=g, dtype=torch.float64)
    corners = torch.eye(3, dtype=torch.float64)
    u = torch.cat([u, corners, -corners])  # the L1 ball's vertices, so its hull is exact
    return {int(k): torch.stack([d / ksupport_norm(d, int(k)) for d in u]).numpy() for k in ks}


def lmo_step_figure(gradient: Sequence[float] = (1.0, 0.45), point: Sequence[float] | None = None,
                    regions: Sequence[Constraint] = DEFAULT_REGIONS, eta: float = 0.5) -> Any:
    """:func:`step_panels` drawn side by side: a plotly figure (:func:`kit.plots.frank_wolfe.lmo_steps`)."""
    return plots.frank_wolfe.lmo_steps(step_panels(gradient, point, regions, eta), eta=eta)


def ksupport_ball_figure(ks: Sequence[int] = (1, 2, 3), directions: int = 2000, seed: int = 0) -> Any:
    """The unit k-support balls in three dimensions: a plotly figure (:func:`kit.plots.frank_wolfe.ksupport_balls`)."""
    return plots.frank_wolfe.ksupport_balls(ksupport_ball_points(ks, directions, seed))


__all__ = ["DEFAULT_REGIONS", "StepPanel", "boundary", "ksupport_ball_figure", "ksupport_ball_points",
           "lmo_step_figure", "step_panels"]
