"""kit.plots: figure data checked against NumPy, offline rendering without CDN links."""

from __future__ import annotations

import numpy as np
import plotly.io as pio
import pytest
import torch

from kit import plots
from kit.train import History


def _history(values):
    return History([{"epoch": i + 1, "train_loss": v, "val_accuracy": 1 - v} for i, v in enumerate(values)])


def test_band_curves_mean_and_band_match_numpy():
    x = [0.5, 0.9, 0.95]
    ys = np.array([[0.9, 0.8, 0.6], [0.92, 0.78, 0.5], [0.88, 0.82, 0.7]])
    fig = plots.band_curves(x, {"IMP": ys}, xlabel="sparsity", ylabel="accuracy")
    band, line = fig.data
    np.testing.assert_allclose(line.y, ys.mean(axis=0))
    std = ys.std(axis=0, ddof=1)
    np.testing.assert_allclose(band.y[:3], ys.mean(axis=0) + std)
    np.testing.assert_allclose(band.y[3:], (ys.mean(axis=0) - std)[::-1])
    assert line.name == "IMP (n=3)"


def test_band_curves_checks_shapes():
    with pytest.raises(ValueError, match="points per seed"):
        plots.band_curves([1, 2], {"a": [[1, 2, 3]]}, xlabel="x", ylabel="y")
    with pytest.raises(TypeError, match="ys"):
        plots.band_curves([1, 2], {}, xlabel="x", ylabel="y")


def test_single_seed_has_zero_band():
    mean, std = plots.mean_and_spread([[1.0, 2.0]])
    assert list(mean) == [1.0, 2.0] and list(std) == [0.0, 0.0]


def test_training_curves_one_trace_per_run_and_metric():
    fig = plots.training_curves({"a": _history([0.5, 0.3]), "b": _history([0.6, 0.2])})
    assert len(fig.data) == 4
    assert list(fig.data[1].y) == [0.5, 0.7]  # run a, val_accuracy
    with pytest.raises(ValueError, match="no metric 'val_loss'"):
        plots.training_curves(_history([0.1]), metrics=("val_loss",))
    with pytest.raises(TypeError, match="History"):
        plots.training_curves({"a": [0.1]})


def test_weight_histogram_counts_match_numpy():
    torch.manual_seed(0)
    layer = torch.nn.Linear(20, 30)
    fig = plots.weight_histogram(layer, bins=10)
    (bar,) = fig.data
    w = layer.weight.detach().numpy().ravel()  # the bias is not a weight matrix
    counts, _ = np.histogram(w, bins=10, range=(w.min(), w.max()))
    assert list(bar.y) == list(counts) and sum(bar.y) == 600


def test_weight_histogram_per_label_shares_bins():
    fig = plots.weight_histogram({"L1": torch.zeros(5), "Linf": torch.ones(5)}, bins=4)
    assert [t.name for t in fig.data] == ["L1", "Linf"]
    assert list(fig.data[0].x) == list(fig.data[1].x)
    assert list(fig.data[0].y) == [5, 0, 0, 0] and list(fig.data[1].y) == [0, 0, 0, 5]


def test_mosaic_places_each_image():
    images = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 1, 2, 3).clone()
    grid = plots.mosaic(images, ncols=3)
    assert grid.shape == (4, 9, 1)
    assert grid[0, 3, 0] == 1 and grid[2, 0, 0] == 3 and grid[3, 5, 0] == 4
    assert grid[3, 8, 0] == 4  # padding takes the max value (blank)


def test_image_grid_labels_and_errors():
    fig = plots.image_grid(torch.rand(6, 1, 8, 8), labels=list("abcdef"), ncols=4)
    assert [a.text for a in fig.layout.annotations] == list("abcdef")
    rgb = plots.image_grid(torch.rand(2, 3, 4, 4))
    assert rgb.data[0].type == "image"
    with pytest.raises(ValueError, match="labels"):
        plots.image_grid(torch.rand(2, 1, 4, 4), labels=["a"])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        plots.image_grid(torch.rand(4, 4))


def test_table_and_sweep_chart():
    fig = plots.table([{"name": "a", "acc": 0.91234}, {"name": "b", "acc": 0.5}])
    assert list(fig.data[0].cells.values[1]) == ["0.9123", "0.5"]
    # rows with different keys: every key gets a column, in first-seen order, blank where a row lacks it
    fig = plots.table([{"byzantine": 0.0}, {"byzantine": 0.3, "attack": "lma", "weight": 0.25}])
    assert list(fig.data[0].header.values) == ["byzantine", "attack", "weight"]
    assert list(fig.data[0].cells.values[1]) == ["", "lma"] and list(fig.data[0].cells.values[2]) == ["", "0.25"]
    chart = plots.sweep_chart("width", [10, 100], {"acc": [0.8, 0.9], "loss": [0.5, 0.3]})
    assert len(chart.data) == 2 and list(chart.data[1].y) == [0.5, 0.3]
    with pytest.raises(ValueError, match="recorded no numbers"):
        plots.sweep_chart("width", [1], {})


def test_offline_renderer_embeds_plotly_and_links_no_cdn():
    default = pio.renderers.default
    try:
        plots.use_offline_renderer()
        renderer = pio.renderers["kit_notebook"]
        html = renderer.to_mimebundle(plots.lines([0, 1], {"a": [1, 2]}, xlabel="x", ylabel="y").to_dict())["text/html"]
        assert "Plotly.newPlot" in html
        assert "cdn" not in html.lower() and "<script src=" not in html
        assert renderer.include_plotlyjs is False and renderer.connected is False  # plotly.js embedded once, offline
    finally:
        pio.renderers.default = default


def test_exchange_diagram_draws_every_client_and_marks_the_attackers():
    panel = {"server": "s", "up": "u", "down": "d", "attack": "a"}
    fig = plots.exchange_diagram({"A": panel, "B": {**panel, "shared": "public"}}, clients=4, attackers=1)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 2 * (1 + 4)  # a server and four clients per panel
    assert sum(s.line.color == plots.COLORS[1] for s in rects) == 2  # one attacker per panel
    texts = [a.text for a in fig.layout.annotations]
    assert texts.count("attacker") == 2 and "<i>public</i>" in texts
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == 2 * 4 * 2  # up and down per client
    with pytest.raises(ValueError, match="lacks attack"):
        plots.exchange_diagram({"A": {"server": "s", "up": "u", "down": "d"}})
    with pytest.raises(ValueError, match="attackers"):
        plots.exchange_diagram({"A": panel}, clients=2, attackers=3)


def test_hypernetwork_diagram_draws_one_box_per_regressed_block_and_the_sensors():
    blocks = {"input layer": 96, "U1": 128, "V1": 128, "b1": 32, "output layer": 33}
    x = np.linspace(0, 1, 33)
    fig = plots.hypernetwork_diagram(8, (64, 64), blocks, u0=(x, np.sin(np.pi * x)))
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == len(blocks) + 3  # the blocks, the hypernetwork, N and (x, t)
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "8 → 64 → 64 → 417" in texts and "U1: 128" in texts and "417 regressed numbers" in texts
    assert len(fig.data[1].x) == 8  # the sensors
    with pytest.raises(ValueError, match="blocks is empty"):
        plots.hypernetwork_diagram(8, (64,), {})
    with pytest.raises(ValueError, match="sensors"):
        plots.hypernetwork_diagram(0, (64,), blocks)


def test_heatmaps_share_one_scale_and_add_the_error_panel():
    a, b = np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[1.0, 1.0], [1.0, 5.0]])
    fig = plots.heatmaps({"a": a, "b": b}, error_of=("a", "b"), image=True)
    assert [t.zmin for t in fig.data] == [0.0, 0.0, -2.0] and [t.zmax for t in fig.data] == [5.0, 5.0, 2.0]
    assert np.array_equal(fig.data[2].z, a - b)
    centred = plots.heatmaps({"e": np.array([[-1.0, 3.0]])}, centred=True)
    assert (centred.data[0].zmin, centred.data[0].zmax) == (-3.0, 3.0)
    with pytest.raises(ValueError, match="expected"):
        plots.heatmaps({"a": a, "c": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="error_of"):
        plots.heatmaps({"a": a}, error_of=("a", "z"))


def test_footprints_map_draws_each_track_and_its_offset_arrow():
    rows, cols, track = np.array([1, 2, 5, 6]), np.array([1, 2, 1, 2]), np.array([0, 0, 1, 1])
    offsets = np.array([[1, -1], [0, 0]])
    fig = plots.footprints_map(np.zeros((8, 8)), rows, cols, track, offsets=offsets, shifts=np.array([[1, -1], [0, 1]]))
    markers = [t for t in fig.data if t.type == "scatter"]
    assert len(markers) == 2 and list(markers[0].x) == [1, 2]
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    # track 0: its true offset and the chosen shift; track 1: only the chosen shift (its offset is zero)
    assert len(arrows) == 3
    assert (arrows[0].x, arrows[0].y, arrows[0].ax, arrows[0].ay) == (0, 2, 1, 1)
    with pytest.raises(ValueError, match="one entry per footprint"):
        plots.footprints_map(np.zeros((8, 8)), rows, cols[:2], track)


def test_stretch_maps_percentiles_to_the_byte_range():
    image = np.stack([np.linspace(0, 1, 100).reshape(10, 10)] * 3)
    out = plots.canopy.stretch(image, 0, 100)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    with pytest.raises(ValueError, match="3, H, W"):
        plots.canopy.stretch(image[:2])
