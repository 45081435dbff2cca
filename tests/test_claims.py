"""kit.claims: numbers in prose come from bench/results, and no notebook types a measured number by hand."""

from __future__ import annotations

import ast
import json
import re
import statistics
from pathlib import Path

import jupytext
import pytest

from kit import claims

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

# Settings are written as code (`98%` sparsity, `lr = 1.0`); links, maths and rendered blocks are skipped.
NOT_PROSE = re.compile(r"`[^`]*`|\$[^$]*\$|\]\([^)]*\)|<sub>.*?</sub>|https?://\S+|\b\d{4}\.\d{4,5}\b", re.S)
MEASURED = re.compile(
    r"(?<![\w.-])\d+(?:[.,]\d+)?\s?(?:%|pp\b|points?\b|percentage points\b|x\b|×|ms\b|s\b|seconds?\b|minutes?\b"
    r"|min\b|GB\b|MB\b)"
    r"|(?<![\w.-])\d+\.\d+(?![\w.])")


def measured_numbers(markdown: str) -> list[str]:
    """Numbers that read as measurements (percentages, points, ratios, times, decimals) outside code."""
    return [m.group(0) for m in MEASURED.finditer(NOT_PROSE.sub(" ", markdown))]


@pytest.fixture
def result_dir(tmp_path, monkeypatch):
    payload = {"benchmark": "toy", "machine": {"date": "2026-01-02 03:04:05", "threads": 2, "torch": "2.x"},
               "budget": "cpu",
               "accuracy": {"seeds": [0, 1, 2], "rows": [{"method": "SGD", "mean": 0.9, "values": [0.8, 0.9, 1.0]},
                                                         {"method": "SFW L2", "mean": 0.875, "values": [0.875]}]},
               "verdicts": {"toy": {"holds": False, "why": "too few epochs"}}}
    (tmp_path / "toy.json").write_text(json.dumps(payload))
    monkeypatch.setenv(claims.ENV_VAR, str(tmp_path))
    return tmp_path


def test_fields_reach_rows_by_name_and_list_statistics(result_dir):
    m = claims.load("toy")
    values = [0.8, 0.9, 1.0]
    assert m["accuracy.rows[SGD].values.mean"] == pytest.approx(sum(values) / 3)
    assert m["accuracy.rows[SGD].values.std"] == pytest.approx(statistics.stdev(values))
    assert m["accuracy.rows[1].method"] == "SFW L2"
    text = m.say("SGD {accuracy.rows[SGD].mean:.1%}, gap {gap:.2pp} points over {accuracy.seeds.n} seeds",
                 gap=0.9 - 0.875)
    assert text.startswith("SGD 90.0%, gap 2.50 points over 3 seeds\n")
    assert "2026-01-02" in text and "cpu budget" in text and "bench/results/toy.json" in text
    assert text._repr_markdown_() == str(text)


def test_table_renders_one_line_per_row(result_dir):
    m = claims.load("toy")
    table = m.table(m["accuracy.rows"], {"method": "{method}", "accuracy": "{mean:.1%}"})
    assert "| SGD | 90.0% |" in table and "| SFW L2 | 87.5% |" in table


def test_unknown_fields_and_results_name_what_exists(result_dir):
    m = claims.load("toy")
    with pytest.raises(KeyError, match="accuracy"):
        m.format("{acuracy.seeds}")
    with pytest.raises(KeyError, match="rows 'SGD', 'SFW L2'"):
        m.format("{accuracy.rows[Adam].mean}")
    with pytest.raises(FileNotFoundError, match="toy"):
        claims.load("missing")
    with pytest.raises(ValueError, match="benchmark name"):
        claims.load("../etc/passwd")
    (result_dir / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="rerun"):
        claims.load("broken")


def test_claims_table_reports_the_bench_verdict(result_dir):
    claim = claims.PaperClaim("01", "SFW matches SGD", "toy", "{accuracy.rows[SFW L2].mean:.1%}", "verdicts.toy")
    table = claims.claims_table([claim])
    assert "| 01 | SFW matches SGD | 87.5% (toy.json, 2026-01-02) | no: too few epochs |" in table


def test_claims_table_dates_a_claim_by_the_oldest_part_it_quotes(result_dir):
    data = json.loads((result_dir / "toy.json").read_text())
    data["carried_over"] = {"accuracy": "2025-12-31 23:00:00"}  # kept by a later `--only` run
    (result_dir / "toy.json").write_text(json.dumps(data))
    m = claims.load("toy")
    assert m.measured_on("{accuracy.rows[SGD].mean:.1%} and {verdicts.toy}") == "2025-12-31"
    assert m.measured_on("{verdicts.toy.why}") == m.measured_on("no fields") == "2026-01-02"
    claim = claims.PaperClaim("01", "SFW matches SGD", "toy", "{accuracy.rows[SFW L2].mean:.1%}", "verdicts.toy")
    assert "87.5% (toy.json, 2025-12-31)" in claims.claims_table([claim])
    with pytest.raises(TypeError, match="template"):
        m.measured_on(None)


def test_scanner_flags_measured_numbers_and_spares_settings_in_code():
    assert measured_numbers("SGD reaches 93.9% and trails by 1.3 points, 2.5x faster in 20 ms") == [
        "93.9%", "1.3 points", "2.5x", "20 ms"]
    assert measured_numbers("at `98%` sparsity with `lr = 0.1`, 3 seeds, 10 epochs, MLP 784-300-100-10") == []
    assert measured_numbers("<sub>measured 2026 with 0.5</sub> see [x](a/b-1.5.md)") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_prose_types_no_measured_number(path):
    """Measured numbers in a notebook come from its own run or from kit.claims, never from its markdown."""
    found = {}
    for i, cell in enumerate(jupytext.read(path).cells):
        if cell.cell_type == "markdown" and (hits := measured_numbers(cell.source)):
            found[i] = hits
    assert not found, f"{path.name}: markdown cells type measured numbers {found}; render them with kit.claims"


def test_every_bench_result_loads_and_names_its_machine():
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        m = claims.load(path.stem)
        assert m.data["machine"]["date"], path
        assert "measured" in m.source()


def test_readme_claims_table_is_rendered_from_the_current_results():
    readme = (ROOT / "README.md").read_text()
    assert claims.render_readme(readme) == readme, "README's claims table is stale: run `python -m kit.claims readme`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_measured_cells_render_on_their_own(path):
    """Every cell tagged `measured` runs after `import kit` alone and renders Markdown with its source line."""
    for cell in jupytext.read(path).cells:
        if cell.cell_type != "code" or "measured" not in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        last = tree.body.pop()
        assert isinstance(last, ast.Expr), f"{path.name}: a measured cell must end with the rendered expression"
        scope: dict = {}
        exec(compile(ast.parse("import kit"), "<measured>", "exec"), scope)
        exec(compile(tree, "<measured>", "exec"), scope)
        rendered = eval(compile(ast.Expression(last.value), "<measured>", "eval"), scope)
        assert isinstance(rendered, claims.Rendered) and "bench/results/" in rendered, path.name


def _bound_at_top_level(tree: ast.AST) -> set[str]:
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda)):
            return  # their variables do not leak
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_measured_cells_leave_the_notebooks_variables_alone(path):
    """A measured cell runs in the notebook's namespace: it must not rebind a name the notebook's code uses."""
    measured, used = set(), set()
    for cell in jupytext.read(path).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        if "measured" in cell.metadata.get("tags", []):
            measured |= _bound_at_top_level(tree)
        else:
            used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    clashes = sorted(measured & used - {"kit", "statistics", "math"})
    assert not clashes, f"{path.name}: measured cells rebind {clashes}, which the notebook's code uses"
