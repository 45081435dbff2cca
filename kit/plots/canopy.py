"""Figures of notebook 09 (canopy height): the terrain with the scene windows, a band composite, footprints on a map
with their tracks' geolocation offsets. Height and error maps use :func:`kit.plots.heatmaps`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .common import COLORS, TEMPLATE, color


def stretch(image: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """An image (3, H, W) of any range as uint8 (H, W, 3), each channel stretched between two percentiles."""
    image = np.asarray(image, dtype=float)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must have shape (3, H, W); got {image.shape}")
    out = np.empty((*image.shape[1:], 3), dtype=np.uint8)
    for c in range(3):
        lo, hi = np.nanpercentile(image[c], [low, high])
        out[..., c] = (np.clip((image[c] - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)
    return out


def terrain_map(shade: np.ndarray, *, windows: Mapping[str, tuple[int, int, int, int]] | None = None,
                title: str | None = None) -> go.Figure:
    """A hillshade (H, W) in grey with named windows (row, col, rows, cols) outlined."""
    shade = np.asarray(shade, dtype=float)
    if shade.ndim != 2:
        raise ValueError(f"shade must be 2-D (H, W); got shape {shade.shape}")
    fig = go.Figure(go.Heatmap(z=shade, colorscale="gray", showscale=False, hoverinfo="skip"))
    for i, (name, (r, c, h, w)) in enumerate((windows or {}).items()):
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + w - 0.5, y0=r - 0.5, y1=r + h - 0.5,
                      line={"color": color(i + 1), "width": 2})
        fig.add_annotation(x=c + w / 2, y=r - 1.5, text=name, showarrow=False, font={"color": color(i + 1)})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(template=TEMPLATE, title=title, height=480, width=460)
    return fig


def footprints_map(background: np.ndarray, rows: Sequence[int], cols: Sequence[int], track: Sequence[int], *,
                   offsets: np.ndarray | None = None, shifts: np.ndarray | None = None, title: str | None = None,
                   unit: str = "m") -> go.Figure:
    """Footprints (recorded pixels, coloured by track) over a map; ``offsets`` (tracks, 2) draws each track's true
    geolocation error as an arrow from its first footprint to where it measured, ``shifts`` (tracks, 2) the shift
    the loss chose (dashed), both in pixels (dy, dx)."""
    background = np.asarray(background, dtype=float)
    rows, cols, track = (np.asarray(v) for v in (rows, cols, track))
    if not (len(rows) == len(cols) == len(track)):
        raise ValueError("rows, cols and track must have one entry per footprint")
    fig = go.Figure(go.Heatmap(z=background, colorscale="Greens", colorbar={"title": unit}, hoverinfo="skip"))
    for t in np.unique(track):
        mine = track == t
        fig.add_trace(go.Scatter(x=cols[mine], y=rows[mine], mode="markers", name=f"track {t}", showlegend=False,
                                 marker={"size": 5, "color": color(int(t)), "line": {"width": 0.5, "color": "white"}}))
        first = np.flatnonzero(mine)[0]
        for table, dash in ((offsets, "solid"), (shifts, "dot")):
            if table is None:
                continue
            dy, dx = (float(v) for v in np.asarray(table)[t])
            if dy or dx:
                fig.add_annotation(x=cols[first] + dx, y=rows[first] + dy, ax=cols[first], ay=rows[first], xref="x",
                                   yref="y", axref="x", ayref="y", text="", showarrow=True, arrowhead=2,
                                   arrowwidth=2, arrowcolor=COLORS[1] if dash == "solid" else COLORS[7])
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(template=TEMPLATE, title=title, height=500, width=560, margin={"t": 80})
    return fig


def composite(image: np.ndarray, *, title: str | None = None) -> go.Figure:
    """A band composite (3, H, W), e.g. true colour (B4, B3, B2), stretched and drawn as an image."""
    fig = go.Figure(go.Image(z=stretch(image)))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(template=TEMPLATE, title=title, height=420, width=420)
    return fig


__all__ = ["composite", "footprints_map", "stretch", "terrain_map"]
