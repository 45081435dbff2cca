"""Figures of methods 1-2 (Frank-Wolfe training): one step on 2-D regions, and the k-support balls in 3-D.

They draw plain numbers computed by :mod:`kit.frankwolfe.geometry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import COLORS, TEMPLATE


def lmo_steps(panels: Sequence[Any], eta: float) -> go.Figure:
    """One panel per region: the region, the iterate, -gradient, the LMO vertex and the step toward it.

    ``panels`` hold ``title``, ``boundary`` (points, 2 columns), ``point``, ``gradient``, ``vertex``
    and ``step`` (2-vectors), as :func:`kit.frankwolfe.geometry.step_panels` returns them.
    """
    if not panels:
        raise ValueError("panels is empty")
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p.title for p in panels])
    for col, p in enumerate(panels, start=1):
        edge, theta, g, v, step = (np.asarray(a, dtype=float) for a in (p.boundary, p.point, p.gradient, p.vertex,
                                                                         p.step))
        show = col == 1
        fig.add_trace(go.Scatter(x=edge[:, 0], y=edge[:, 1], mode="lines", fill="toself" if len(edge) > 2 else None,
                                 line={"color": COLORS[0]}, name="region", showlegend=show), row=1, col=col)
        arrow = theta - 0.6 * g / np.linalg.norm(g)
        fig.add_trace(go.Scatter(x=[theta[0], arrow[0]], y=[theta[1], arrow[1]], mode="lines+markers",
                                 marker={"symbol": "arrow", "angleref": "previous", "size": 11},
                                 line={"color": COLORS[7], "dash": "dot"}, name="-gradient", showlegend=show),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=[theta[0], v[0]], y=[theta[1], v[1]], mode="lines", line={"color": COLORS[1]},
                                 name="Frank-Wolfe direction", showlegend=show), row=1, col=col)
        fig.add_trace(go.Scatter(x=[theta[0]], y=[theta[1]], mode="markers", marker={"color": "black", "size": 9},
                                 name="iterate theta", showlegend=show), row=1, col=col)
        fig.add_trace(go.Scatter(x=[v[0]], y=[v[1]], mode="markers", marker={"color": COLORS[1], "size": 11,
                                                                              "symbol": "star"},
                                 name="v = LMO(gradient)", showlegend=show), row=1, col=col)
        fig.add_trace(go.Scatter(x=[step[0]], y=[step[1]], mode="markers", marker={"color": COLORS[2], "size": 9},
                                 name=f"next iterate (eta={eta:g})", showlegend=show), row=1, col=col)
        fig.update_xaxes(range=[-1.35, 1.35], row=1, col=col, zeroline=True)
        fig.update_yaxes(range=[-1.35, 1.35], row=1, col=col, scaleanchor=f"x{col if col > 1 else ''}")
    fig.update_layout(template=TEMPLATE, height=330, title="One Frank-Wolfe step: move toward the vertex that "
                                                           "minimizes <v, gradient>; no projection needed")
    return fig


def ksupport_balls(points: Mapping[int, np.ndarray]) -> go.Figure:
    """The unit k-support balls in three dimensions, each the convex hull of its boundary points (per k)."""
    if not points:
        raise ValueError("points is empty")
    names = {1: "k = 1 (L1 ball)", 3: "k = 3 (L2 ball)"}
    fig = make_subplots(rows=1, cols=len(points), specs=[[{"type": "scene"}] * len(points)],
                        subplot_titles=[names.get(k, f"k = {k}") for k in points])
    for col, (k, pts) in enumerate(points.items(), start=1):
        pts = np.asarray(pts, dtype=float)
        fig.add_trace(go.Mesh3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], alphahull=0, opacity=0.55,
                                color=[COLORS[0], COLORS[2], COLORS[3]][col % 3], flatshading=True,
                                name=f"k = {k}"), row=1, col=col)
    fig.update_layout(template=TEMPLATE, height=380, showlegend=False,
                      title="unit k-support balls in 3-D: pointed like L1 at k = 1, round like L2 at k = n")
    fig.update_scenes(aspectmode="cube", xaxis_range=[-1.1, 1.1], yaxis_range=[-1.1, 1.1], zaxis_range=[-1.1, 1.1])
    return fig


__all__ = ["ksupport_balls", "lmo_steps"]
