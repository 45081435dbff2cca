"""Execute notebooks headless with Papermill, write HTML reports, and sweep a parameter.

    python -m kit.runner run notebooks/00_tour.ipynb --budget cpu --out reports
    python -m kit.runner all --budget cpu --out reports
    python -m kit.runner sweep notebooks/00_tour.ipynb --param epochs --values 2,5,10 --budget smoke

A run writes ``<out>/<name>.ipynb`` (executed), ``<out>/<name>.html`` (figures embedded, no CDN)
and ``<out>/<name>.json`` (the numbers the notebook recorded with ``kit.record``); ``all`` adds the gallery
``<out>/index.html`` (:mod:`kit.gallery`).
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import gallery
from . import results as results_mod
from .budget import BUDGETS, get_budget
from .plots import EXTERNAL_SCRIPT, sweep_chart

KERNEL = "python3"


@dataclass
class Run:
    """Paths and recorded numbers of one executed notebook."""

    notebook: Path
    executed: Path
    html: Path | None
    results_file: Path
    results: dict[str, Any]
    budget: str = "cpu"
    seconds: float = 0.0


def _check_notebook(notebook: str | os.PathLike) -> Path:
    path = Path(notebook)
    if path.suffix != ".ipynb":
        raise ValueError(f"notebook must be an .ipynb file (the paired copy); got {path}")
    if not path.exists():
        raise FileNotFoundError(f"notebook {path} does not exist")
    return path


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, Any]:
    """The names and default values (source text) assigned in the notebook's cell tagged ``parameters``."""
    import nbformat

    nb = nbformat.read(str(_check_notebook(notebook)), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise ValueError(f"{notebook} has no cell tagged 'parameters', so it takes no parameters")
    names: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name):
                names[target.id] = ast.get_source_segment(cells[0].source, node.value) if node.value else None
    return names


def _check_parameters(nb: Path, params: dict[str, Any]) -> None:
    if not all(isinstance(k, str) and k.isidentifier() for k in params):
        raise ValueError(f"parameter names must be Python identifiers; got {list(params)}")
    known = notebook_parameters(nb) if params else {}
    unknown = [k for k in params if k not in known]
    if unknown:
        raise ValueError(f"{nb.name} has no parameter {', '.join(map(repr, unknown))}; its parameters cell sets "
                         f"{', '.join(known) or 'nothing'}")


def _replace(source: Path, target: Path) -> Path:
    os.replace(source, target)
    return target


def execute(notebook: str | os.PathLike, *, out_dir: str | os.PathLike = "reports", budget: str | None = None,
            parameters: dict[str, Any] | None = None, html: bool = True, name: str | None = None) -> Run:
    """Run a notebook headless at a budget; write the executed copy, its HTML report and its results JSON.

    Everything is checked before a kernel starts (notebook, budget, parameter names against the
    notebook's parameters cell, that nothing would overwrite the source). Outputs are written under
    temporary names and renamed on success; a failed or interrupted run leaves ``<name>.FAILED.ipynb``
    (the notebook as far as it ran) and removes the previous run's outputs of that name, so nothing
    stale looks current.
    """
    import papermill

    nb = _check_notebook(notebook)
    budget = get_budget(budget)
    params = dict(parameters or {})
    _check_parameters(nb, params)
    out = Path(out_dir)
    stem = name or nb.stem
    if not isinstance(stem, str) or not stem or stem != safe_name(stem):
        raise ValueError(f"name must be a plain file name (letters, digits, '_', '-', '.', '='); got {stem!r}")
    executed, results_file, html_file = out / f"{stem}.ipynb", out / f"{stem}.json", out / f"{stem}.html"
    if executed.resolve() == nb.resolve():
        raise ValueError(f"out_dir {out} and name {stem!r} would overwrite the notebook itself; choose another "
                         "out_dir (e.g. reports)")
    out.mkdir(parents=True, exist_ok=True)
    failed = out / f"{stem}.FAILED.ipynb"
    partial, partial_results = out / f".{stem}.running.ipynb", out / f".{stem}.running.json"
    for stale in (failed, partial, partial_results):
        stale.unlink(missing_ok=True)
    env = {"KIT_BUDGET": budget, results_mod.ENV_VAR: str(partial_results.resolve()), "KIT_INTERACTIVE": "0"}
    started = time.perf_counter()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(str(nb), str(partial), parameters={"budget": budget, **params},
                                   kernel_name=KERNEL, cwd=str(nb.parent), progress_bar=False)
        html_partial = write_html(partial, out / f".{stem}.running.html") if html else None
    except BaseException:
        # the previous run's outputs must not sit beside this failure looking current
        for stale in (executed, results_file, html_file, partial_results, out / f".{stem}.running.html"):
            stale.unlink(missing_ok=True)
        if partial.exists():
            os.replace(partial, failed)
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    values = results_mod.load(partial_results)["values"] if partial_results.exists() else {}
    if partial_results.exists():
        _replace(partial_results, results_file)
    else:
        results_file.unlink(missing_ok=True)  # a stale file must not pass for this run's numbers
    html_path = _replace(html_partial, html_file) if html_partial is not None else None
    if html_partial is None:
        html_file.unlink(missing_ok=True)
    return Run(nb, _replace(partial, executed), html_path, results_file, values, budget,
               time.perf_counter() - started)


def safe_name(text: str) -> str:
    """``text`` as a file name: every character other than letters, digits, '_', '-', '.', '=' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", text).lstrip(".") or "_"


def write_html(executed: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Export an executed notebook to a self-contained HTML report (figures included)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    # the template links require.js and MathJax from CDNs; reports must render offline without them
    body = EXTERNAL_SCRIPT.sub("", body)
    target = Path(target)
    target.write_text(body, encoding="utf-8")
    return target


def parse_value(text: str) -> Any:
    """A sweep value from the command line: a Python literal if it parses as one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def sweep(notebook: str | os.PathLike, param: str, values: Sequence[Any], *,
          out_dir: str | os.PathLike = "reports", budget: str | None = None) -> tuple[Path, Path]:
    """Run the notebook once per value of ``param``; write a CSV of recorded numbers and a chart.

    The parameter name and the budget are checked before any kernel starts; the previous sweep's CSV
    and chart are removed first, so a failed sweep leaves none behind. Values may hold any
    characters (hub ids, paths): run files get sanitised names, the CSV the real values.
    """
    nb = _check_notebook(notebook)
    if not isinstance(param, str) or not param.isidentifier():
        raise ValueError(f"param must be a notebook parameter name; got {param!r}")
    if isinstance(values, str) or not values:
        raise ValueError("values must be a non-empty list of parameter values")
    budget = get_budget(budget)
    _check_parameters(nb, {param: values[0]})
    out = Path(out_dir)
    runs_dir = out / "sweeps" / f"{nb.stem}_{param}"
    csv_path = out / f"{nb.stem}_sweep_{param}.csv"
    chart_path = out / f"{nb.stem}_sweep_{param}.html"
    csv_path.unlink(missing_ok=True)
    chart_path.unlink(missing_ok=True)
    rows, names_used = [], set()
    for i, v in enumerate(values):
        name = safe_name(f"{param}={v}")
        if name in names_used:
            name = f"{name}_{i}"
        names_used.add(name)
        run = execute(nb, out_dir=runs_dir, budget=budget, parameters={param: v}, html=False, name=name)
        rows.append({param: v, **run.results})
    names = sorted({k for r in rows for k in r if k != param})
    partial = csv_path.with_name(f".{csv_path.name}.partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[param, *names])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, csv_path)
    numeric = {n: [r.get(n, float("nan")) for r in rows] for n in names
               if all(isinstance(r.get(n), (int, float)) and not isinstance(r.get(n), bool) for r in rows)}
    sweep_chart(param, list(values), numeric).write_html(str(chart_path), include_plotlyjs=True)
    return csv_path, chart_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m kit.runner", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute one notebook")
    run_p.add_argument("notebook")
    run_p.add_argument("-p", "--param", action="append", default=[], help="name=value (repeatable)")
    all_p = sub.add_parser("all", help="execute every notebooks/*.ipynb")
    all_p.add_argument("--notebooks", default="notebooks")
    sweep_p = sub.add_parser("sweep", help="run a notebook once per parameter value")
    sweep_p.add_argument("notebook")
    sweep_p.add_argument("--param", required=True)
    sweep_p.add_argument("--values", required=True, help="comma-separated, e.g. 2,5,10")
    for p in (run_p, all_p, sweep_p):
        p.add_argument("--budget", default=None, choices=BUDGETS)
        p.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    if args.command == "run":
        params = {}
        for item in args.param:
            if "=" not in item:
                parser.error(f"--param takes name=value; got {item!r}")
            k, v = item.split("=", 1)
            params[k] = parse_value(v)
        run = execute(args.notebook, out_dir=args.out, budget=args.budget, parameters=params)
        print(f"wrote {run.executed}, {run.html}, {run.results_file}")
        for k, v in run.results.items():
            print(f"  {k}: {v}")
    elif args.command == "all":
        notebooks = sorted(Path(args.notebooks).glob("[0-9][0-9]_*.ipynb"))
        if not notebooks:
            parser.error(f"no NN_*.ipynb notebooks in {args.notebooks}")
        cards = []
        for nb in notebooks:
            run = execute(nb, out_dir=args.out, budget=args.budget)
            print(f"wrote {run.html} ({run.seconds:.0f} s)")
            cards.append(gallery.card(run.executed, budget=run.budget, seconds=run.seconds, results=run.results,
                                      report=run.html))
        print(f"wrote {gallery.write_gallery(cards, args.out)}")
    else:
        values = [parse_value(v.strip()) for v in args.values.split(",") if v.strip()]
        csv_path, chart = sweep(args.notebook, args.param, values, out_dir=args.out, budget=args.budget)
        print(f"wrote {csv_path} and {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
