"""kit.results and kit.runner: recorded numbers, headless execution with papermill, HTML reports, sweeps."""

from __future__ import annotations

import csv
import json

import nbformat
import numpy as np
import pytest
import torch

from kit import results, runner


@pytest.fixture
def fresh_results(monkeypatch, tmp_path):
    results.reset()
    path = tmp_path / "out" / "nb.json"
    monkeypatch.setenv(results.ENV_VAR, str(path))
    yield path
    results.reset()


def test_record_writes_json_at_once(fresh_results):
    assert results.record("accuracy", np.float32(0.5)) == np.float32(0.5)
    results.record("epochs", torch.tensor(7))
    results.set_meta(budget="smoke")
    data = json.loads(fresh_results.read_text())
    assert data == {"meta": {"budget": "smoke"}, "values": {"accuracy": 0.5, "epochs": 7}}
    assert results.load(fresh_results)["values"]["epochs"] == 7


def test_record_in_memory_without_a_file(monkeypatch):
    monkeypatch.delenv(results.ENV_VAR, raising=False)
    results.reset()
    results.record("x", [1, 2])
    assert results.recorded() == {"x": [1, 2]} and results.results_path() is None
    results.reset()


@pytest.mark.parametrize(("name", "value", "error"), [
    ("", 1.0, TypeError), (3, 1.0, TypeError), ("x", float("nan"), ValueError),
    ("x", {"a": 1}, TypeError), ("x", torch.zeros(3), TypeError),
])
def test_record_rejects_bad_input(name, value, error, fresh_results):
    with pytest.raises(error):
        results.record(name, value)
    assert not fresh_results.exists()  # nothing half-written


def test_parse_value():
    assert [runner.parse_value(v) for v in ["3", "0.5", "'a'", "relu", "[1, 2]"]] == [3, 0.5, "a", "relu", [1, 2]]


def _write_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('import os\nbudget = os.environ.get("KIT_BUDGET", "cpu")\nx = 2')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import kit, os\n"
        "budget, device = kit.setup(budget)\n"
        "kit.record('square', x * x)\n"
        "kit.record('budget_seen', os.environ['KIT_BUDGET'])\n"
        "kit.plots.lines([0, 1], {'x': [0, x]}, xlabel='t', ylabel='x')")
    nb.cells = [params, body]
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_execute_writes_executed_copy_html_and_results(tmp_path):
    nb = tmp_path / "99_echo.ipynb"
    _write_notebook(nb)
    run = runner.execute(nb, out_dir=tmp_path / "reports", budget="smoke", parameters={"x": 5})
    assert run.results == {"square": 25, "budget_seen": "smoke"}
    assert json.loads(run.results_file.read_text())["meta"]["budget"] == "smoke"
    html = run.html.read_text()
    assert html.count("class=\"plotly-graph-div\"") == 1
    assert html.count("* plotly.js v") == 1  # the library itself is embedded, once
    assert "<script src=" not in html.replace("<script src=\"data:", "")  # nothing loaded from a CDN


@pytest.mark.slow
def test_sweep_writes_csv_and_chart(tmp_path):
    nb = tmp_path / "99_echo.ipynb"
    _write_notebook(nb)
    csv_path, chart = runner.sweep(nb, "x", [1, 3], out_dir=tmp_path / "reports", budget="smoke")
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["x"], r["square"], r["budget_seen"]) for r in rows] == [("1", "1", "smoke"), ("3", "9", "smoke")]
    assert "plotly.js v" in chart.read_text()


def test_runner_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\.ipynb"):
        runner.execute(tmp_path / "a.py")
    with pytest.raises(FileNotFoundError):
        runner.execute(tmp_path / "missing.ipynb")
    nb = tmp_path / "n.ipynb"
    _write_notebook(nb)
    with pytest.raises(ValueError, match="budget"):
        runner.execute(nb, budget="huge")
    with pytest.raises(ValueError, match="identifiers"):
        runner.execute(nb, parameters={"not a name": 1})
    with pytest.raises(ValueError, match="values"):
        runner.sweep(nb, "x", [])
    with pytest.raises(SystemExit):
        runner.main(["run", str(nb), "--param", "novalue"])
