"""Figures of notebook 08: solution surfaces u(x, t) side by side as heatmaps, one colour scale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import TEMPLATE


def solution_maps(x: Sequence[float], t: Sequence[float], fields: Mapping[str, np.ndarray], *,
                  title: str | None = None, error_of: tuple[str, str] | None = None) -> go.Figure:
    """Heatmaps of fields (name -> array (len(t), len(x))) side by side on one colour scale; ``error_of``
    (prediction, reference) adds their difference on its own scale."""
    if not fields:
        raise ValueError("fields is empty: give at least one solution (name -> array (len(t), len(x)))")
    x, t = np.asarray(x), np.asarray(t)
    for name, field in fields.items():
        if np.shape(field) != (len(t), len(x)):
            raise ValueError(f"fields[{name!r}] has shape {np.shape(field)}; expected (len(t), len(x)) = "
                             f"({len(t)}, {len(x)})")
    panels = dict(fields)
    if error_of is not None:
        pred, ref = error_of
        panels[f"{pred} - {ref}"] = np.asarray(fields[pred]) - np.asarray(fields[ref])
    lo = min(float(np.min(f)) for f in fields.values())
    hi = max(float(np.max(f)) for f in fields.values())
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.06)
    for i, field in enumerate(panels.values()):
        is_error = error_of is not None and i == len(panels) - 1
        scale = float(np.abs(field).max()) or 1.0
        fig.add_trace(go.Heatmap(z=field, x=x, y=t, colorscale="RdBu_r" if is_error else "Viridis",
                                 zmin=-scale if is_error else lo, zmax=scale if is_error else hi,
                                 showscale=is_error or i == len(fields) - 1,
                                 colorbar={"x": 1.0 + 0.08 * is_error, "len": 0.8}), row=1, col=i + 1)
        fig.update_xaxes(title_text="x", row=1, col=i + 1)
    fig.update_yaxes(title_text="t", row=1, col=1)
    fig.update_layout(template=TEMPLATE, title=title, height=360, width=320 * len(panels) + 120)
    return fig
