"""Figures of notebook 08: solution surfaces u(x, t) side by side as heatmaps, one colour scale; the hypernetwork
as a diagram."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..validate import check_int
from .common import COLORS, TEMPLATE, diagram_arrow, diagram_box, heatmaps


def solution_maps(x: Sequence[float], t: Sequence[float], fields: Mapping[str, np.ndarray], *,
                  title: str | None = None, error_of: tuple[str, str] | None = None) -> go.Figure:
    """Heatmaps of fields (name -> array (len(t), len(x))) side by side on one colour scale; ``error_of``
    (prediction, reference) adds their difference on its own scale."""
    return heatmaps(fields, x=x, y=t, xlabel="x", ylabel="t", title=title, error_of=error_of)


def hypernetwork_diagram(sensors: int, hidden: Sequence[int], blocks: Mapping[str, int], *,
                         u0: tuple[Sequence[float], Sequence[float]] | None = None, title: str | None = None
                         ) -> go.Figure:
    """NPR as a picture: u0 read at ``sensors`` points, a hypernetwork of ``hidden`` widths, the regressed
    parameter blocks (name -> count) of the solution network N(x, t), and u = u0 + t g(x) N. ``u0``: (x, values)
    of an initial condition to draw with its sensors."""
    sensors = check_int(sensors, "sensors", low=1)
    if not blocks:
        raise ValueError("blocks is empty: give the regressed parameter blocks (name -> count)")
    fig = go.Figure()
    box = lambda *a, **k: diagram_box(fig, "x", "y", *a, **k)  # noqa: E731
    arrow = lambda *a: diagram_arrow(fig, "x", "y", *a)  # noqa: E731
    if u0 is not None:  # the initial condition squeezed into the left panel, its sensors marked
        x, v = np.asarray(u0[0], dtype=float), np.asarray(u0[1], dtype=float)
        scale = float(np.abs(v).max()) or 1.0
        px, py = 0.02 + 0.16 * x, 0.55 + 0.18 * v / scale
        idx = np.linspace(0, len(x) - 1, sensors + 2)[1:-1].round().astype(int)
        fig.add_trace(go.Scatter(x=px, y=py, mode="lines", line={"color": COLORS[0]}, name="u0"))
        fig.add_trace(go.Scatter(x=px[idx], y=py[idx], mode="markers", marker={"color": COLORS[1], "size": 6},
                                 name=f"{sensors} sensors"))
    fig.add_annotation(x=0.1, y=0.88, text=f"u0 at m = {sensors} sensors", showarrow=False, font={"size": 12})
    widths = " → ".join(str(w) for w in (sensors, *hidden, sum(blocks.values())))
    box(0.36, 0.55, f"hypernetwork<br>{widths}", COLORS[2], 0.22, 0.22)
    arrow(0.19, 0.55, 0.25, 0.55, COLORS[7])
    ys = np.linspace(0.92, 0.18, len(blocks))
    step = 0.74 / max(len(blocks) - 1, 1)
    for y, (name, count) in zip(ys, blocks.items(), strict=True):
        box(0.6, y, f"{name}: {count:,}", COLORS[3], 0.16, min(0.1, 0.85 * step))
        arrow(0.47, 0.55, 0.52, y, COLORS[7])
    fig.add_annotation(x=0.6, y=1.02, text=f"θ: {sum(blocks.values()):,} regressed numbers", showarrow=False,
                       font={"size": 12})
    box(0.86, 0.55, "N<sub>θ</sub>(x, t)<br>low-rank layers<br>W = U Vᵀ", COLORS[4], 0.2, 0.24)
    for y in ys:
        arrow(0.68, y, 0.76, 0.55, "rgba(120,120,120,0.35)")
    box(0.86, 0.1, "(x, t)", COLORS[7], 0.12, 0.1)
    arrow(0.86, 0.15, 0.86, 0.43, COLORS[7])
    fig.add_annotation(x=0.86, y=0.86, text="u = u0(x) + t·g(x)·N<sub>θ</sub>(x, t)", showarrow=False,
                       font={"size": 12})
    arrow(0.86, 0.67, 0.86, 0.8, COLORS[7])
    fig.update_xaxes(visible=False, range=[0, 1])
    fig.update_yaxes(visible=False, range=[0, 1.08])
    fig.update_layout(template=TEMPLATE, title=title, height=420, width=900, showlegend=False,
                      margin={"l": 10, "r": 10})
    return fig
