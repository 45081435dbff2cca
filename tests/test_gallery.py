"""The gallery page (kit.gallery): one card per executed notebook with its title, first figure as a small static
thumbnail, recorded numbers, wall time and budget, linking to its report; offline and written atomically."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest

from kit import gallery


def executed_notebook(path, title="# 09 · Canopy height\nmore text", figure=True):
    fig = go.Figure(go.Heatmap(z=[[float(i + j) for j in range(200)] for i in range(150)]))
    fig.add_trace(go.Scatter(x=list(range(1000)), y=list(range(1000))))
    cells = [{"cell_type": "markdown", "metadata": {}, "source": title},
             {"cell_type": "code", "metadata": {}, "source": "print(1)", "execution_count": 1,
              "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}]}]
    if figure:  # a table first: the thumbnail should be the first plot, not a table
        cells.append({"cell_type": "code", "metadata": {}, "source": "t", "execution_count": 2, "outputs": [
            {"output_type": "display_data", "metadata": {},
             "data": {gallery.PLOTLY_JSON: json.loads(go.Figure(go.Table(cells={"values": [[1]]})).to_json())}}]})
        cells.append({"cell_type": "code", "metadata": {}, "source": "fig", "execution_count": 2, "outputs": [
            {"output_type": "display_data", "metadata": {},
             "data": {gallery.PLOTLY_JSON: json.loads(fig.to_json()), "text/html": "<div></div>"}}]})
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_a_card_holds_the_title_the_thinned_first_figure_and_the_numbers(tmp_path):
    nb = executed_notebook(tmp_path / "09_canopy_height.ipynb")
    card = gallery.card(nb, budget="cpu", seconds=128.4, results={"canopy_shift_mae": 5.1339},
                        report=tmp_path / "09_canopy_height.html")
    assert card.title == "09 · Canopy height" and card.report == "09_canopy_height.html"
    heat, line = card.figure["data"]
    assert len(heat["z"]) <= gallery.MAX_CELLS and len(heat["z"][0]) <= gallery.MAX_CELLS
    # every third row and fourth column: z[i][j] = i + j of the kept ones
    assert heat["z"][1][0] == -(-150 // gallery.MAX_CELLS) and heat["z"][0][1] == -(-200 // gallery.MAX_CELLS)
    assert len(line["x"]) <= gallery.MAX_POINTS and card.figure["layout"]["showlegend"] is False
    assert "title" not in card.figure["layout"]


def test_the_gallery_page_links_every_report_and_works_offline(tmp_path):
    a = gallery.card(executed_notebook(tmp_path / "00_tour.ipynb", "# 00 · The tour"), budget="cpu", seconds=14.9,
                     results={"accuracy": 0.91234}, report=tmp_path / "00_tour.html")
    b = gallery.card(executed_notebook(tmp_path / "05_perp.ipynb", "no heading", figure=False), budget="smoke",
                     seconds=75.0)
    page = gallery.write_gallery([a, b], tmp_path).read_text()
    assert page.count('class="card"') == 2
    assert '<a href="00_tour.html">00 · The tour</a>' in page
    assert "<td>accuracy</td><td>0.9123</td>" in page and "14.9 s" in page and "1 min 15 s" in page
    assert "budget <b>smoke</b>" in page and "05_perp" in page and "no figure" in page
    assert 'Plotly.newPlot("fig0"' in page and 'Plotly.newPlot("fig1"' not in page
    assert "<script src=" not in page and "<link " not in page  # nothing fetched: plotly.js is inline
    assert not list(tmp_path.glob(".index.*"))


def test_bad_input_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="run it first"):
        gallery.card(tmp_path / "missing.ipynb", budget="cpu", seconds=1.0)
    with pytest.raises(ValueError, match="seconds"):
        gallery.card(executed_notebook(tmp_path / "x.ipynb"), budget="cpu", seconds=-1.0)
    with pytest.raises(ValueError, match="cards is empty"):
        gallery.write_gallery([], tmp_path / "out")
    with pytest.raises(TypeError, match="Card"):
        gallery.write_gallery(["00_tour"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
