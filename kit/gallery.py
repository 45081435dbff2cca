"""The gallery of executed notebooks: ``reports/index.html``, one card per notebook with its title, its first figure
as a thumbnail, its recorded headline numbers, its wall time and its budget, linking to its HTML report.

``python -m kit.runner all`` writes it after running every notebook; :func:`write_gallery` builds it from any set of
executed notebooks. The page works offline: plotly.js is embedded once, and each thumbnail is the notebook's first
figure redrawn small and static (large heatmaps and scatters thinned, so the page stays light).
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runs import as_if_written
from .validate import check_float

PLOTLY_JSON = "application/vnd.plotly.v1+json"
MAX_CELLS = 64  # thumbnail heatmaps keep at most this many rows and columns
MAX_POINTS = 400  # and scatters this many points per trace


@dataclass
class Card:
    """What one notebook's card shows."""

    notebook: str
    title: str
    report: str | None
    budget: str
    seconds: float
    values: dict[str, Any] = field(default_factory=dict)
    figure: dict[str, Any] | None = None


def notebook_title(nb: dict[str, Any], fallback: str) -> str:
    """The first Markdown heading of a notebook (its title), else ``fallback``."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source", "")).splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return fallback


def first_figure(nb: dict[str, Any]) -> dict[str, Any] | None:
    """The first plotly figure among a notebook's outputs (its JSON) that is a plot rather than a table (else the
    first table), or None."""
    figures = [output["data"][PLOTLY_JSON] for cell in nb.get("cells", []) for output in cell.get("outputs", [])
               if PLOTLY_JSON in output.get("data", {})]
    plots = [f for f in figures if any(t.get("type") != "table" for t in f.get("data", []))]
    return (plots or figures or [None])[0]


def _thin(values: Any, keep: int) -> Any:
    if isinstance(values, list) and len(values) > keep:
        step = -(-len(values) // keep)
        return values[::step]
    return values


def thumbnail(figure: dict[str, Any]) -> dict[str, Any]:
    """A figure made small: heatmaps at most MAX_CELLS square, scatters at most MAX_POINTS points, no title, legend
    or margins."""
    traces = []
    for trace in figure.get("data", []):
        trace = dict(trace)
        if isinstance(trace.get("z"), list):
            trace["z"] = [_thin(row, MAX_CELLS) for row in _thin(trace["z"], MAX_CELLS)]
            for axis in ("x", "y"):  # the coordinates of a thinned heatmap are thinned alike
                if isinstance(trace.get(axis), list):
                    trace[axis] = _thin(trace[axis], MAX_CELLS)
            trace["showscale"] = False
        elif trace.get("type", "scatter") == "scatter":
            for key in ("x", "y"):
                trace[key] = _thin(trace.get(key), MAX_POINTS)
        traces.append(trace)
    layout = dict(figure.get("layout", {}))
    for key in ("title", "width", "height", "annotations", "updatemenus", "sliders"):
        layout.pop(key, None)
    layout.update(showlegend=False, margin={"l": 4, "r": 4, "t": 4, "b": 4}, height=180, autosize=True)
    return {"data": traces, "layout": layout}


def card(executed: str | os.PathLike, *, budget: str, seconds: float, results: dict[str, Any] | None = None,
         report: str | os.PathLike | None = None) -> Card:
    """The card of an executed notebook (its .ipynb), with the numbers it recorded and its report's path."""
    path = Path(executed)
    if not path.is_file():
        raise FileNotFoundError(f"executed notebook {path} does not exist; run it first (python -m kit.runner run)")
    seconds = check_float(seconds, "seconds", low=0.0)
    nb = json.loads(path.read_text())
    figure = first_figure(nb)
    return Card(notebook=path.stem, title=notebook_title(nb, path.stem), report=None if report is None else
                Path(report).name, budget=budget, seconds=seconds, values=dict(results or {}),
                figure=None if figure is None else thumbnail(figure))


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _card_html(index: int, c: Card) -> str:
    title = html.escape(c.title)
    heading = f'<a href="{html.escape(c.report)}">{title}</a>' if c.report else title
    numbers = "".join(f"<tr><td>{html.escape(k)}</td><td>{_number(v)}</td></tr>" for k, v in c.values.items())
    thumb = f'<div class="thumb" id="fig{index}"></div>' if c.figure else '<div class="thumb empty">no figure</div>'
    minutes, secs = divmod(round(c.seconds), 60)
    took = f"{minutes} min {secs} s" if minutes else f"{c.seconds:.1f} s"
    return (f'<div class="card"><h2>{heading}</h2>{thumb}<p class="meta">{html.escape(c.notebook)} · budget '
            f"<b>{html.escape(c.budget)}</b> · {took}</p>"
            + (f"<table>{numbers}</table>" if numbers else '<p class="meta">no recorded numbers</p>') + "</div>")


STYLE = """body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px}
.card h2{font-size:1.05em;margin:0 0 8px}.thumb{height:180px}.empty{color:#999;text-align:center;line-height:180px}
.meta{color:#555;font-size:.9em;margin:6px 0}table{font-size:.85em;border-collapse:collapse}
td{padding:1px 8px 1px 0}"""


def write_gallery(cards: Sequence[Card], out_dir: str | os.PathLike, *, title: str = "The kit: executed notebooks"
                  ) -> Path:
    """Write ``out_dir/index.html`` with one card per notebook (atomically: a failure leaves the old page)."""
    from .plots import plotly_js

    if not cards:
        raise ValueError("cards is empty: run at least one notebook first")
    for c in cards:
        if not isinstance(c, Card):
            raise TypeError(f"cards must be kit.gallery.Card objects; got {type(c).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {f"fig{i}": c.figure for i, c in enumerate(cards) if c.figure}
    script = "".join(f"Plotly.newPlot({json.dumps(k)},{json.dumps(f['data'])},{json.dumps(f['layout'])},"
                     "{staticPlot:true,displayModeBar:false,responsive:true});" for k, f in figures.items())
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{plotly_js()}</script></head><body><h1>{html.escape(title)}</h1>"
            f'<div class="grid">{"".join(_card_html(i, c) for i, c in enumerate(cards))}</div>'
            f"<script>{script}</script></body></html>")
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".index.", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        as_if_written(tmp)  # a page to serve and share, not a private temporary file
        os.replace(tmp, out / "index.html")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out / "index.html"
