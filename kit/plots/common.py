"""Plotly figure factories every notebook uses (one helper per kind of plot).

:func:`use_offline_renderer` makes executed notebooks carry their figures with plotly.js embedded
once (no CDN), so the HTML reports show them offline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.io._base_renderers import NotebookRenderer
from plotly.subplots import make_subplots
from torch import nn

from ..train import History
from ..validate import check_choice, check_int

TEMPLATE = "plotly_white"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf")
OFFLINE_RENDERER = "plotly_mimetype+kit_notebook"
# plotly's notebook renderer always links MathJax from a CDN; the kit's figures use no LaTeX
EXTERNAL_SCRIPT = re.compile(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>')


class OfflineNotebookRenderer(NotebookRenderer):
    """plotly's notebook renderer (plotly.js embedded once) without links to external scripts."""

    def to_mimebundle(self, fig_dict):
        bundle = super().to_mimebundle(fig_dict)
        bundle["text/html"] = EXTERNAL_SCRIPT.sub("", bundle["text/html"])
        return bundle


def plotly_js() -> str:
    """plotly.js itself, to embed once in a page that must work offline (the gallery)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def use_offline_renderer() -> str:
    """Render figures as plotly JSON (for JupyterLab) plus HTML with plotly.js embedded once (for reports)."""
    pio.renderers["kit_notebook"] = OfflineNotebookRenderer()
    pio.renderers.default = OFFLINE_RENDERER
    return OFFLINE_RENDERER


def color(i: int) -> str:
    """The kit's i-th line color (cycling)."""
    return COLORS[i % len(COLORS)]


def rgba(hex_color: str, alpha: float) -> str:
    """A '#rrggbb' color as a plotly 'rgba(r,g,b,alpha)' string (for bands and fills)."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def diagram_box(fig: go.Figure, xref: str, yref: str, x: float, y: float, text: str, color: str, width: float,
                height: float = 0.14) -> None:
    """A labelled, tinted box centred at (x, y) in axis coordinates: the building block of the kit's diagrams."""
    fig.add_shape(type="rect", x0=x - width / 2, x1=x + width / 2, y0=y - height / 2, y1=y + height / 2, xref=xref,
                  yref=yref, line={"color": color, "width": 2}, fillcolor=rgba(color, 0.12))
    fig.add_annotation(x=x, y=y, text=text, showarrow=False, xref=xref, yref=yref, font={"size": 12})


def diagram_arrow(fig: go.Figure, xref: str, yref: str, x0: float, y0: float, x1: float, y1: float,
                  color: str) -> None:
    """An arrow from (x0, y0) to (x1, y1) in axis coordinates."""
    fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref=xref, yref=yref, axref=xref, ayref=yref, text="",
                       showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=1.6, arrowcolor=color)


def _as_histories(histories: History | Mapping[str, History]) -> dict[str, History]:
    if isinstance(histories, History):
        return {"run": histories}
    if not isinstance(histories, Mapping) or not all(isinstance(h, History) for h in histories.values()):
        raise TypeError("histories must be a kit.train.History or a mapping label -> History")
    if not histories:
        raise ValueError("histories is empty")
    return dict(histories)


def training_curves(histories: History | Mapping[str, History],
                    metrics: Sequence[str] = ("train_loss", "val_accuracy"), title: str | None = None
                    ) -> go.Figure:
    """One panel per metric, one line per run, against the epoch."""
    runs = _as_histories(histories)
    if isinstance(metrics, str) or not metrics:
        raise TypeError(f"metrics must be a non-empty sequence of metric names; got {metrics!r}")
    for label, h in runs.items():
        missing = [m for m in metrics if m not in h]
        if missing:
            raise ValueError(f"run {label!r} has no metric {missing[0]!r}; it recorded {', '.join(h.keys())}")
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m.replace("_", " ") for m in metrics])
    for i, (label, h) in enumerate(runs.items()):
        for j, m in enumerate(metrics):
            fig.add_trace(go.Scatter(x=h["epoch"], y=h[m], mode="lines+markers", name=label,
                                     legendgroup=label, showlegend=j == 0, line={"color": color(i)}),
                          row=1, col=j + 1)
        for j in range(len(metrics)):
            fig.update_xaxes(title_text="epoch", row=1, col=j + 1)
    fig.update_layout(template=TEMPLATE, title=title, height=360)
    return fig


def mean_and_spread(values: Sequence[Sequence[float]] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over seeds (axis 0) of an array (seeds, points)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"values must have shape (seeds, points); got {arr.shape}")
    std = arr.std(axis=0, ddof=1) if arr.shape[0] > 1 else np.zeros(arr.shape[1])
    return arr.mean(axis=0), std


def band_curves(x: Sequence[float], ys: Mapping[str, Sequence[Sequence[float]]], *, xlabel: str, ylabel: str,
                title: str | None = None, log_x: bool = False) -> go.Figure:
    """Mean curve with a +-1 standard deviation band over seeds, one per label (e.g. accuracy vs sparsity)."""
    x = np.asarray(x, dtype=float)
    if not isinstance(ys, Mapping) or not ys:
        raise TypeError("ys must be a non-empty mapping label -> array of shape (seeds, len(x))")
    fig = go.Figure()
    for i, (label, values) in enumerate(ys.items()):
        mean, std = mean_and_spread(values)
        if mean.shape != x.shape:
            raise ValueError(f"ys[{label!r}] has {mean.shape[0]} points per seed but x has {x.shape[0]}")
        line_color = color(i)
        fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([mean + std, (mean - std)[::-1]]),
                                 fill="toself", fillcolor=rgba(line_color, 0.18), line={"width": 0},
                                 hoverinfo="skip", showlegend=False, legendgroup=label))
        n = np.asarray(values).shape[0]
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=f"{label} (n={n})",
                                 legendgroup=label, line={"color": line_color}))
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title=xlabel, yaxis_title=ylabel, height=380)
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def lines(x: Sequence[float], ys: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str,
          title: str | None = None, log_y: bool = False, markers: bool = False) -> go.Figure:
    """Plain lines, one per label (e.g. learning rate against the iteration)."""
    if not isinstance(ys, Mapping) or not ys:
        raise TypeError("ys must be a non-empty mapping label -> values")
    fig = go.Figure()
    for i, (label, y) in enumerate(ys.items()):
        if len(y) != len(x):
            raise ValueError(f"ys[{label!r}] has {len(y)} values but x has {len(x)}")
        fig.add_trace(go.Scatter(x=list(x), y=list(y), mode="lines+markers" if markers else "lines", name=label,
                                 line={"color": color(i)}))
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title=xlabel, yaxis_title=ylabel, height=360)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def bars(categories: Sequence[str], series: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str,
         title: str | None = None, log_y: bool = False) -> go.Figure:
    """Grouped bars: one bar per series in every category (e.g. total vs trainable parameters per group)."""
    if not isinstance(series, Mapping) or not series:
        raise TypeError("series must be a non-empty mapping label -> values")
    fig = go.Figure()
    for i, (label, values) in enumerate(series.items()):
        if len(values) != len(categories):
            raise ValueError(f"series[{label!r}] has {len(values)} values but there are {len(categories)} categories")
        fig.add_trace(go.Bar(x=list(categories), y=list(values), name=label, marker_color=color(i)))
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title=xlabel, yaxis_title=ylabel, height=380,
                      barmode="group")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def _weights(source: nn.Module | Mapping[str, torch.Tensor] | torch.Tensor) -> dict[str, np.ndarray]:
    if isinstance(source, torch.Tensor):
        return {"weights": source.detach().cpu().flatten().numpy()}
    if isinstance(source, nn.Module):
        # weights of Linear/Conv layers, not biases or norms: those are what methods constrain or prune
        return {name: p.detach().cpu().flatten().numpy() for name, p in source.named_parameters() if p.dim() > 1}
    if isinstance(source, Mapping):
        return {k: v.detach().cpu().flatten().numpy() if isinstance(v, torch.Tensor) else np.ravel(v)
                for k, v in source.items()}
    raise TypeError(f"weights must be a Module, a tensor or a mapping label -> tensor; got {type(source).__name__}")


def histogram_counts(values: np.ndarray, bins: int, value_range: tuple[float, float] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres and counts (NumPy's histogram) for one set of values."""
    counts, edges = np.histogram(values, bins=bins, range=value_range)
    return (edges[:-1] + edges[1:]) / 2, counts


def weight_histogram(weights: nn.Module | Mapping[str, torch.Tensor] | torch.Tensor, *, bins: int = 60,
                     per_layer: bool = False, log_y: bool = False, title: str | None = None) -> go.Figure:
    """Histogram of weight values: all layers pooled, or one overlaid histogram per layer/label."""
    bins = check_int(bins, "bins", low=1)
    groups = _weights(weights)
    if not groups:
        raise ValueError("no weights to plot (a module needs parameters with 2 or more dimensions)")
    empty = [label for label, values in groups.items() if np.size(values) == 0]
    if empty:
        raise ValueError(f"no weights to plot in {', '.join(map(repr, empty[:3]))} (empty tensor)")
    if not per_layer and not (isinstance(weights, Mapping) and not isinstance(weights, nn.Module)):
        groups = {"all weights": np.concatenate(list(groups.values()))}
    lo = min(float(v.min()) for v in groups.values())
    hi = max(float(v.max()) for v in groups.values())
    fig = go.Figure()
    for i, (label, values) in enumerate(groups.items()):
        centres, counts = histogram_counts(values, bins, (lo, hi) if hi > lo else None)
        fig.add_trace(go.Bar(x=centres, y=counts, name=label, opacity=0.6, marker_color=color(i)))
    fig.update_layout(template=TEMPLATE, title=title, barmode="overlay", bargap=0, xaxis_title="weight value",
                      yaxis_title="count", height=360)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def mosaic(images: torch.Tensor, ncols: int) -> np.ndarray:
    """Tile images (N, C, H, W) into one array (rows*H, ncols*W, C), padding with ones."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor of shape (N, C, H, W); got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    ncols = check_int(ncols, "ncols", low=1)
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("images is empty: nothing to tile")
    rows = -(-n // ncols)
    grid = np.ones((rows * h, ncols * w, c), dtype=np.float32) * float(images.max())
    for i in range(n):
        r, k = divmod(i, ncols)
        grid[r * h : (r + 1) * h, k * w : (k + 1) * w] = images[i].permute(1, 2, 0).cpu().numpy()
    return grid


def image_grid(images: torch.Tensor, labels: Sequence | None = None, *, ncols: int = 8,
               title: str | None = None) -> go.Figure:
    """A grid of images (grayscale or RGB), with optional labels under each."""
    ncols = check_int(ncols, "ncols", low=1)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty tensor of shape (N, C, H, W); got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    ncols = min(ncols, len(images))
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"labels has {len(labels)} entries but images has {len(images)}")
    grid = mosaic(images, ncols)
    h, w = images.shape[2], images.shape[3]
    if grid.shape[2] == 1:
        fig = go.Figure(go.Heatmap(z=grid[::-1, :, 0], colorscale="gray_r", showscale=False, hoverinfo="skip"))
        fig.update_yaxes(scaleanchor="x")
        y_of = lambda r: grid.shape[0] - (r + 1) * h - 0.5  # noqa: E731 (heatmap rows run bottom-up)
    else:
        lo, hi = float(grid.min()), float(grid.max())
        fig = go.Figure(go.Image(z=(grid - lo) / max(hi - lo, 1e-8) * 255))
        y_of = lambda r: (r + 1) * h - 0.5  # noqa: E731 (image rows run top-down)
    if labels is not None:
        for i, label in enumerate(labels):
            r, k = divmod(i, ncols)
            # inside the tile's bottom edge, so labels never cover the next row
            fig.add_annotation(x=k * w + w - 0.5, y=y_of(r), text=str(label), showarrow=False, xanchor="right",
                               yanchor="bottom", font={"size": 10, "color": "crimson"},
                               bgcolor="rgba(255,255,255,0.75)", borderpad=0)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    rows = -(-len(images) // ncols)
    fig.update_layout(template=TEMPLATE, title=title, height=120 + 70 * rows, width=100 + 70 * ncols,
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return fig


def heatmaps(fields: Mapping[str, np.ndarray], *, x: Sequence[float] | None = None, y: Sequence[float] | None = None,
             xlabel: str | None = None, ylabel: str | None = None, title: str | None = None,
             error_of: tuple[str, str] | None = None, colorscale: str = "Viridis", unit: str | None = None,
             image: bool = False, width: int = 320, centred: bool = False) -> go.Figure:
    """2-D fields (name -> array (len(y), len(x))) as heatmaps side by side on one colour scale; ``error_of``
    (prediction, reference) adds their difference on its own diverging scale. ``image``: pixel maps (row 0 on
    top, square pixels, no axes). ``centred``: the shared scale is symmetric about 0 (for error maps)."""
    if not fields:
        raise ValueError("fields is empty: give at least one map (name -> 2-D array)")
    shapes = {name: np.shape(f) for name, f in fields.items()}
    first = next(iter(shapes.values()))
    expected = (len(y), len(x)) if x is not None and y is not None else first
    for name, shape in shapes.items():
        if len(shape) != 2 or shape != expected:
            raise ValueError(f"fields[{name!r}] has shape {shape}; expected {expected}"
                             + (" = (len(y), len(x))" if x is not None and y is not None else " like the first"))
    panels = {name: np.asarray(f, dtype=float) for name, f in fields.items()}
    if error_of is not None:
        pred, ref = error_of
        for key in error_of:
            if key not in panels:
                raise ValueError(f"error_of names {key!r}, which is not among the fields ({', '.join(panels)})")
        panels[f"{pred} - {ref}"] = panels[pred] - panels[ref]
    lo = min(float(np.nanmin(f)) for name, f in panels.items() if name in fields)
    hi = max(float(np.nanmax(f)) for name, f in panels.items() if name in fields)
    if centred:
        hi = max(abs(lo), abs(hi)) or 1.0
        lo = -hi
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.06)
    for i, field in enumerate(panels.values()):
        is_error = error_of is not None and i == len(panels) - 1
        scale = float(np.nanmax(np.abs(field))) or 1.0
        fig.add_trace(go.Heatmap(z=field, x=None if x is None else np.asarray(x),
                                 y=None if y is None else np.asarray(y),
                                 colorscale="RdBu_r" if is_error else colorscale,
                                 zmin=-scale if is_error else lo, zmax=scale if is_error else hi,
                                 showscale=is_error or i == len(fields) - 1,
                                 colorbar={"x": 1.0 + 0.08 * is_error, "len": 0.8, "title": unit}), row=1, col=i + 1)
        if xlabel:
            fig.update_xaxes(title_text=xlabel, row=1, col=i + 1)
        if image:
            fig.update_xaxes(visible=False, row=1, col=i + 1)
            fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", row=1,
                             col=i + 1)
    if ylabel:
        fig.update_yaxes(title_text=ylabel, row=1, col=1)
    fig.update_layout(template=TEMPLATE, title=title, height=360, width=width * len(panels) + 120)
    return fig


def table(rows: Sequence[Mapping[str, object]], title: str | None = None) -> go.Figure:
    """A table from a list of dicts, one column per key any row has (first-seen order; blank where a row
    lacks it); numbers shown with 4 significant digits."""
    if not rows:
        raise ValueError("rows is empty")
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def cell(row: Mapping[str, object], key: str) -> str:
        value = row.get(key, "")
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    cells = [[cell(r, k) for r in rows] for k in keys]
    fig = go.Figure(go.Table(header={"values": keys, "align": "left"}, cells={"values": cells, "align": "left"}))
    fig.update_layout(template=TEMPLATE, title=title, height=120 + 45 * len(rows), margin={"t": 40 if title else 10})
    return fig


def sweep_chart(param: str, values: Sequence, results: Mapping[str, Sequence[float]],
                kind: str = "lines") -> go.Figure:
    """Recorded numbers against a swept notebook parameter, one panel per number."""
    check_choice(kind, "kind", ("lines",))
    names = list(results)
    if not names:
        raise ValueError("results is empty: the swept notebook recorded no numbers")
    fig = make_subplots(rows=len(names), cols=1, subplot_titles=names, shared_xaxes=True)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    x = list(values) if numeric else [str(v) for v in values]
    for i, name in enumerate(names):
        fig.add_trace(go.Scatter(x=x, y=list(results[name]), mode="lines+markers", name=name,
                                 line={"color": color(i)}), row=i + 1, col=1)
    fig.update_xaxes(title_text=param, row=len(names), col=1)
    fig.update_layout(template=TEMPLATE, height=220 * len(names) + 80, showlegend=False,
                      title=f"sweep over {param}")
    return fig
