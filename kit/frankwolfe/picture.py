"""The idea in two dimensions: one Frank-Wolfe step on each region (what the LMO returns, where the step goes)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..plots import TEMPLATE
from .constraints import Constraint, L1Ball, L2Ball, LinfBall, LpBall, ProbabilitySimplex, ksupport_norm

DEFAULT_REGIONS = (L1Ball((2,)), L2Ball((2,)), LinfBall((2,)), LpBall((2,), 3.0), ProbabilitySimplex((2,)))
TITLES = {"L1Ball": "L1 ball", "L2Ball": "L2 ball", "LinfBall": "L-inf ball", "LpBall": "Lp ball (p=3)",
          "ProbabilitySimplex": "simplex"}


def boundary(region: Constraint, points: int = 361) -> torch.Tensor:
    """Points on the boundary of a 2-D region, from its gauge: r d / norm(d) for directions d."""
    if region.shape != torch.Size([2]):
        raise ValueError(f"region must be 2-D (shape (2,)); got shape {tuple(region.shape)}")
    if isinstance(region, ProbabilitySimplex):
        return torch.tensor([[region.radius, 0.0], [0.0, region.radius]])
    angles = torch.linspace(0, 2 * math.pi, points, dtype=torch.float64)
    dirs = torch.stack([angles.cos(), angles.sin()], dim=1)
    return torch.stack([d * region.radius / region.norm(d) for d in dirs])


def lmo_step_figure(gradient: Sequence[float] = (1.0, 0.45), point: Sequence[float] | None = None,
                    regions: Sequence[Constraint] = DEFAULT_REGIONS, eta: float = 0.5) -> go.Figure:
    """One panel per region: the region, the iterate, -gradient, the LMO vertex and the step toward it."""
    g = torch.tensor(gradient, dtype=torch.float64)
    if g.shape != (2,) or not torch.isfinite(g).all() or g.norm() == 0:
        raise ValueError(f"gradient must be a non-zero 2-vector; got {gradient!r}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1]; got {eta}")
    fig = make_subplots(rows=1, cols=len(regions), subplot_titles=[TITLES.get(type(r).__name__, repr(r))
                                                                    for r in regions])
    for col, region in enumerate(regions, start=1):
        edge = boundary(region)
        theta = torch.tensor(point, dtype=torch.float64) if point is not None else _inside(region)
        v = region.lmo(g)
        step = theta + eta * (v - theta)
        show = col == 1
        fig.add_trace(go.Scatter(x=edge[:, 0], y=edge[:, 1], mode="lines", fill="toself" if len(edge) > 2 else None,
                                 line={"color": "#1f77b4"}, name="region", showlegend=show), row=1, col=col)
        arrow = theta - 0.6 * g / g.norm()
        fig.add_trace(go.Scatter(x=[theta[0], arrow[0]], y=[theta[1], arrow[1]], mode="lines+markers",
                                 marker={"symbol": "arrow", "angleref": "previous", "size": 11},
                                 line={"color": "#7f7f7f", "dash": "dot"}, name="-gradient", showlegend=show),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=[theta[0], v[0]], y=[theta[1], v[1]], mode="lines", line={"color": "#d62728"},
                                 name="Frank-Wolfe direction", showlegend=show), row=1, col=col)
        fig.add_trace(go.Scatter(x=[theta[0]], y=[theta[1]], mode="markers", marker={"color": "black", "size": 9},
                                 name="iterate theta", showlegend=show), row=1, col=col)
        fig.add_trace(go.Scatter(x=[v[0]], y=[v[1]], mode="markers", marker={"color": "#d62728", "size": 11,
                                                                              "symbol": "star"},
                                 name="v = LMO(gradient)", showlegend=show), row=1, col=col)
        fig.add_trace(go.Scatter(x=[step[0]], y=[step[1]], mode="markers", marker={"color": "#2ca02c", "size": 9},
                                 name=f"next iterate (eta={eta:g})", showlegend=show), row=1, col=col)
        fig.update_xaxes(range=[-1.35, 1.35], row=1, col=col, zeroline=True)
        fig.update_yaxes(range=[-1.35, 1.35], row=1, col=col, scaleanchor=f"x{col if col > 1 else ''}")
    fig.update_layout(template=TEMPLATE, height=330, title="One Frank-Wolfe step: move toward the vertex that "
                                                           "minimizes <v, gradient>; no projection needed")
    return fig


def _inside(region: Constraint) -> torch.Tensor:
    if isinstance(region, ProbabilitySimplex):
        return torch.tensor([0.7, 0.3], dtype=torch.float64) * region.radius
    return torch.tensor([-0.25, 0.3], dtype=torch.float64) * region.radius


def ksupport_ball_figure(ks: Sequence[int] = (1, 2, 3), directions: int = 2000, seed: int = 0) -> go.Figure:
    """The unit k-support balls in three dimensions: k = 1 is the L1 ball, k = 3 the L2 ball, k = 2 between.

    Each ball is drawn as the convex hull of boundary points u / ||u||_(k) for random directions u.
    """
    directions = int(directions)
    if directions < 100:
        raise ValueError(f"directions must be at least 100; got {directions}")
    if not ks or any(not 1 <= int(k) <= 3 for k in ks):
        raise ValueError(f"ks must be counts in [1, 3] (the balls live in three dimensions); got {ks!r}")
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(directions, 3, generator=g, dtype=torch.float64)
    corners = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64)
    u = torch.cat([u, corners, -corners])  # the L1 ball's vertices, so its hull is exact
    names = {1: "k = 1 (L1 ball)", 3: "k = 3 (L2 ball)"}
    fig = make_subplots(rows=1, cols=len(ks), specs=[[{"type": "scene"}] * len(ks)],
                        subplot_titles=[names.get(int(k), f"k = {int(k)}") for k in ks])
    for col, k in enumerate(ks, start=1):
        pts = torch.stack([d / ksupport_norm(d, int(k)) for d in u]).numpy()
        fig.add_trace(go.Mesh3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], alphahull=0, opacity=0.55,
                                color=["#1f77b4", "#2ca02c", "#ff7f0e"][col % 3], flatshading=True,
                                name=f"k = {int(k)}"), row=1, col=col)
    fig.update_layout(template=TEMPLATE, height=380, showlegend=False,
                      title="unit k-support balls in 3-D: pointed like L1 at k = 1, round like L2 at k = n")
    fig.update_scenes(aspectmode="cube", xaxis_range=[-1.1, 1.1], yaxis_range=[-1.1, 1.1], zaxis_range=[-1.1, 1.1])
    return fig
