"""Plotly figures, the only place the kit draws.

``common``: the figure factories every notebook uses (training curves, bands over seeds, lines,
bars, histograms, image grids, tables, sweep charts) and the offline renderer. A method's own
figures live in ``kit/plots/<method>.py`` (``frank_wolfe``, ``merlin_arthur``, ``operators``,
``federated``) and draw plain numbers that the method's package computes.
"""

from . import federated, frank_wolfe, merlin_arthur, operators
from .common import (
    COLORS,
    EXTERNAL_SCRIPT,
    OFFLINE_RENDERER,
    TEMPLATE,
    OfflineNotebookRenderer,
    band_curves,
    bars,
    color,
    histogram_counts,
    image_grid,
    lines,
    mean_and_spread,
    mosaic,
    rgba,
    sweep_chart,
    table,
    training_curves,
    use_offline_renderer,
    weight_histogram,
)
from .federated import exchange_diagram
from .frank_wolfe import ksupport_balls, lmo_steps
from .merlin_arthur import chosen_pixels
from .operators import solution_maps

__all__ = ["COLORS", "EXTERNAL_SCRIPT", "OFFLINE_RENDERER", "TEMPLATE", "OfflineNotebookRenderer", "band_curves",
           "bars", "chosen_pixels", "color", "exchange_diagram", "federated", "frank_wolfe", "histogram_counts",
           "image_grid", "ksupport_balls", "lines", "lmo_steps", "mean_and_spread", "merlin_arthur", "mosaic",
           "operators", "rgba", "solution_maps", "sweep_chart", "table", "training_curves", "use_offline_renderer",
           "weight_histogram"]
