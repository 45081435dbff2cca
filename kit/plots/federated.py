"""Figures of method 7 (byzantine-resilient distillation-based FL): who sends what to whom."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..validate import check_int
from .common import COLORS, TEMPLATE, diagram_arrow, diagram_box, rgba


def exchange_diagram(panels: Mapping[str, Mapping[str, str]], *, clients: int = 5, attackers: int = 1,
                     title: str | None = None) -> go.Figure:
    """Hub-and-spoke schemes side by side: a server, its clients (the last ``attackers`` drawn as attackers),
    what every client sends up and what comes back down (e.g. FedAvg against FedDistill).

    Each panel maps ``server``, ``up``, ``down`` and ``attack`` (what an attacker can send) to a label, and
    optionally ``shared`` (data every party sees, drawn beside the server).
    """
    if not isinstance(panels, Mapping) or not panels:
        raise TypeError("panels must be a non-empty mapping title -> {'server', 'up', 'down', 'attack'[, 'shared']}")
    clients = check_int(clients, "clients", low=1)
    attackers = check_int(attackers, "attackers", low=0, high=clients)
    for name, panel in panels.items():
        missing = [k for k in ("server", "up", "down", "attack") if k not in panel]
        if missing:
            raise ValueError(f"panel {name!r} lacks {', '.join(missing)}")
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.06)
    xs = np.linspace(0.1, 0.9, clients)
    honest, attacker = COLORS[0], COLORS[1]
    for col, panel in enumerate(panels.values(), start=1):
        ref = "" if col == 1 else str(col)
        xref, yref = f"x{ref}", f"y{ref}"
        box = functools.partial(diagram_box, fig, xref, yref)
        arrow = functools.partial(diagram_arrow, fig, xref, yref)
        box(0.5, 0.85, panel["server"], COLORS[2], 0.5)
        if "shared" in panel:
            fig.add_annotation(x=0.5, y=0.5, text=f"<i>{panel['shared']}</i>", showarrow=False, xref=xref,
                               yref=yref, font={"size": 11, "color": COLORS[7]}, bgcolor="white")
        for i, x in enumerate(xs):
            bad = i >= clients - attackers
            color = attacker if bad else honest
            box(x, 0.12, "attacker" if bad else f"client {i + 1}", color, 0.8 / clients * 0.9)
            arrow(x, 0.2, 0.5 + (x - 0.5) * 0.35, 0.77, color)  # up to the server
            arrow(0.5 + (x - 0.5) * 0.5, 0.77, x + 0.03, 0.2, rgba(COLORS[7], 0.35))  # back down
        fig.add_annotation(x=0.02, y=0.62, xref=xref, yref=yref, text=f"↑ {panel['up']}", showarrow=False,
                           xanchor="left", font={"color": honest, "size": 11}, bgcolor="white")
        fig.add_annotation(x=0.98, y=0.62, xref=xref, yref=yref, text=f"↓ {panel['down']}", showarrow=False,
                           xanchor="right", font={"color": COLORS[7], "size": 11}, bgcolor="white")
        fig.add_annotation(x=0.5, y=-0.04, xref=xref, yref=yref, text=f"attacker: {panel['attack']}",
                           showarrow=False, font={"color": attacker, "size": 11})
        fig.update_xaxes(visible=False, range=[0, 1], row=1, col=col)
        fig.update_yaxes(visible=False, range=[-0.1, 1], row=1, col=col)
    fig.update_layout(template=TEMPLATE, title=title, height=380, showlegend=False, margin={"l": 10, "r": 10})
    return fig


__all__ = ["exchange_diagram"]
