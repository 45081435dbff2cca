"""Plotly figures, the only place the kit draws.

``common``: the figure factories every notebook uses (training curves, bands over seeds, lines,
bars, histograms, image grids, tables, sweep charts) and the offline renderer. A method's own
figures live in ``kit/plots/<method>.py`` (``frank_wolfe``, ``merlin_arthur``, ``operators``,
``federated``, ``canopy``) and draw plain numbers that the method's package computes.
"""

from . import canopy, federated, frank_wolfe, merlin_arthur, operators
from .canopy import composite, footprints_map, terrain_map
from .common import (
    COLORS,
    EXTERNAL_SCRIPT,
    OFFLINE_RENDERER,
    TEMPLATE,
    OfflineNotebookRenderer,
    band_curves,
    bars,
    color,
    diagram_arrow,
    diagram_box,
    heatmaps,
    histogram_counts,
    image_grid,
    lines,
    mean_and_spread,
    mosaic,
    plotly_js,
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
from .operators import hypernetwork_diagram, solution_maps

__all__ = ["COLORS", "EXTERNAL_SCRIPT", "OFFLINE_RENDERER", "TEMPLATE", "OfflineNotebookRenderer", "band_curves",
           "bars", "canopy", "chosen_pixels", "color", "composite", "diagram_arrow", "diagram_box",
           "exchange_diagram", "federated", "footprints_map", "frank_wolfe", "heatmaps", "histogram_counts",
           "hypernetwork_diagram", "image_grid", "ksupport_balls", "lines", "lmo_steps", "mean_and_spread",
           "merlin_arthur", "mosaic", "operators", "plotly_js", "rgba", "solution_maps", "sweep_chart", "table",
           "terrain_map", "training_curves", "use_offline_renderer", "weight_histogram"]
