"""Bad input to kit.runner: unknown parameters and budgets refused before a kernel starts, the source notebook never
overwritten, a failed run leaves a clearly named failure report and nothing stale, sweep values may hold '/'."""

from __future__ import annotations

import csv

import nbformat
import pytest

from kit import runner


def write_notebook(path, body: str = "kit.record('square', x * x)") -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('import os\nbudget = os.environ.get("KIT_BUDGET", "cpu")\nx = 2\nname = "a"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(f"import kit\nkit.setup(budget)\n{body}")]
    nbformat.write(nb, str(path))


@pytest.fixture
def no_kernel(monkeypatch):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))


def test_parameters_are_read_from_the_parameters_cell(tmp_path):
    nb = tmp_path / "n.ipynb"
    write_notebook(nb)
    assert runner.notebook_parameters(nb) == {"budget": 'os.environ.get("KIT_BUDGET", "cpu")', "x": "2",
                                              "name": '"a"'}


def test_unknown_parameters_and_budgets_are_refused_before_a_kernel_starts(tmp_path, no_kernel):
    nb = tmp_path / "n.ipynb"
    write_notebook(nb)
    with pytest.raises(ValueError, match="has no parameter 'nonexistent_param'; its parameters cell sets budget, x"):
        runner.sweep(nb, "nonexistent_param", [1, 2], out_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="has no parameter 'y'"):
        runner.execute(nb, out_dir=tmp_path / "out", parameters={"y": 1})
    with pytest.raises(ValueError, match="budget"):
        runner.sweep(nb, "x", [1], out_dir=tmp_path / "out", budget="huge")
    assert not (tmp_path / "out").exists()


def test_the_source_notebook_is_never_overwritten(tmp_path, no_kernel):
    nb = tmp_path / "n.ipynb"
    write_notebook(nb)
    before = nb.read_bytes()
    with pytest.raises(ValueError, match="would overwrite the notebook itself"):
        runner.execute(nb, out_dir=tmp_path)
    assert nb.read_bytes() == before


@pytest.mark.slow
def test_a_failed_run_leaves_a_failure_report_and_nothing_stale(tmp_path):
    nb = tmp_path / "n.ipynb"
    write_notebook(nb, "assert x != 0, 'x must not be 0'\nkit.record('square', x * x)")
    out = tmp_path / "reports"
    good = runner.execute(nb, out_dir=out, budget="smoke", parameters={"x": 3})
    assert good.results == {"square": 9} and good.html.exists()
    with pytest.raises(Exception, match="x must not be 0"):
        runner.execute(nb, out_dir=out, budget="smoke", parameters={"x": 0})
    assert sorted(p.name for p in out.iterdir()) == ["n.FAILED.ipynb"]  # the old report is gone, nothing half-done
    report = nbformat.read(str(out / "n.FAILED.ipynb"), as_version=4)
    assert any(o.get("ename") == "AssertionError" for c in report.cells for o in c.get("outputs", []))
    again = runner.execute(nb, out_dir=out, budget="smoke", parameters={"x": 2})
    assert again.results == {"square": 4}
    assert sorted(p.name for p in out.iterdir()) == ["n.html", "n.ipynb", "n.json"]  # the failure report is cleared


@pytest.mark.slow
def test_sweep_values_may_hold_slashes_and_a_failed_sweep_leaves_no_old_csv(tmp_path):
    nb = tmp_path / "n.ipynb"
    write_notebook(nb, "assert name != 'bad', 'bad name'\nkit.record('length', len(name))")
    out = tmp_path / "reports"
    csv_path, chart = runner.sweep(nb, "name", ["facebook/opt-125m", "../x", "a"], out_dir=out, budget="smoke")
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], r["length"]) for r in rows] == [("facebook/opt-125m", "17"), ("../x", "4"), ("a", "1")]
    assert all(p.parent == out / "sweeps" / "n_name" for p in (out / "sweeps" / "n_name").iterdir())
    with pytest.raises(Exception, match="bad name"):
        runner.sweep(nb, "name", ["a", "bad"], out_dir=out, budget="smoke")
    assert not csv_path.exists() and not chart.exists()
