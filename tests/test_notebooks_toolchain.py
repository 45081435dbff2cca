"""Notebook toolchain: every .py source is paired with an in-sync, output-free .ipynb with one parameters cell."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
PAIRED = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
# a notebook explains and plots; loops, losses and optimizer steps belong in kit
FORBIDDEN = [r"\.backward\(", r"\.step\(\)", r"zero_grad", r"for\s+\w+\s+in\s+.*loader", r"cross_entropy\("]


def _cells(nb):
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_there_is_a_tour():
    assert (NOTEBOOKS / "00_tour.py").exists()


def test_every_source_has_a_twin_and_back():
    assert {p.stem for p in SOURCES} == {p.stem for p in PAIRED}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(source):
    text = jupytext.read(source)
    paired = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert _cells(text) == _cells(paired), f"{source.name} and its .ipynb differ: run `make sync`"


@pytest.mark.parametrize("notebook", PAIRED, ids=lambda p: p.stem)
def test_committed_without_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{notebook.name} carries outputs"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("notebook", PAIRED, ids=lambda p: p.stem)
def test_one_parameters_cell_reading_the_budget(notebook):
    nb = nbformat.read(notebook, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert re.search(r'^budget = os\.environ\.get\("KIT_BUDGET", "cpu"\)', tagged[0].source, re.M)


@pytest.mark.parametrize("notebook", PAIRED, ids=lambda p: p.stem)
def test_notebook_is_thin(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for pattern in FORBIDDEN:
        assert not re.search(pattern, code), f"{notebook.name} contains training code ({pattern}); move it to kit"
    assert "kit.setup(" in code, "every notebook prints its budget and device through kit.setup"
