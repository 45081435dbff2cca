"""The shape of the house: dependencies point one way, no private name crosses a module, plotting only in
kit.plots, each algorithm found by its paper's name in its method's package, old paths still work (warning)."""

from __future__ import annotations

import ast
import importlib
import re
import warnings
from pathlib import Path

import pytest

from kit.source import source as source_of

KIT = Path(__file__).resolve().parent.parent / "kit"
NOTEBOOKS = KIT.parent / "notebooks"
METHODS = ("frankwolfe", "pruning", "soups", "perp", "federated", "merlin_arthur", "operators", "canopy")
# one method built on another: its public API only (DESIGN.md)
BUILT_ON = {"soups": {"pruning"}, "perp": {"pruning"}, "frankwolfe": set(), "pruning": set(), "federated": set(),
            "merlin_arthur": {"frankwolfe"}, "operators": set(), "canopy": set()}
SHIMS = {"deprecation"}  # old paths of 0.1, kept one release
TOP = {"recipes", "hub"}  # the layers over every family (the notebooks' experiments, saving artefacts)


def modules() -> list[Path]:
    return sorted(p for p in KIT.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(KIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_shim(path: Path) -> bool:
    return "alias_module(__name__" in path.read_text()


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module name an ImportFrom refers to."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".")
    package = package[: len(package) - node.level + (1 if module_is_package(module) else 0)]
    return ".".join([*package, *([node.module] if node.module else [])])


def module_is_package(module: str) -> bool:
    return (KIT.parent / Path(*module.split(".")) / "__init__.py").exists()


def kit_imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported kit module, names imported from it, line) of every import of a kit module in ``path``."""
    module = dotted(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            if target == "kit" or target.startswith("kit."):
                found.append((target, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("kit")]
    return found


def family(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in (*METHODS, *TOP) else None


def test_no_private_name_is_imported_across_kit_modules():
    offences = []
    for path in modules():
        for target, names, line in kit_imports(path):
            for name in names:
                is_module = module_is_package(target) and (KIT.parent / Path(*target.split("."), f"{name}.py")).exists()
                if name.startswith("_") and not name.startswith("__") and not is_module:
                    offences.append(f"{path.relative_to(KIT.parent)}:{line} imports {name} from {target}")
    assert not offences, "\n".join(offences)


def test_no_private_attribute_of_another_kit_module_is_used():
    offences = []
    for path in modules():
        tree = ast.parse(path.read_text())
        bound = set()  # names bound to kit modules in this file
        for target, names, _ in kit_imports(path):
            for name in names:
                if module_is_package(target) and (KIT.parent / Path(*target.split(".")) / f"{name}.py").exists():
                    bound.add(name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                offences.append(f"{path.relative_to(KIT.parent)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not offences, "\n".join(offences)


def test_dependencies_point_one_way():
    offences = []
    for path in modules():
        if is_shim(path) or (path.parent == KIT and path.stem in ("__init__", *SHIMS)):
            continue
        mine = family(dotted(path))
        for target, _, line in kit_imports(path):
            theirs = family(target)
            if theirs is None or theirs == mine or mine in TOP:
                continue
            allowed = BUILT_ON.get(mine, set()) if mine else set()
            if theirs not in allowed:
                where = mine or f"core module {dotted(path)}"
                offences.append(f"{path.relative_to(KIT.parent)}:{line}: {where} imports {target}")
    assert not offences, "\n".join(offences)


def test_only_kit_plots_imports_plotly():
    offences = [f"{p.relative_to(KIT.parent)}:{n.lineno}" for p in modules() if p.parent.name != "plots"
                for n in ast.walk(ast.parse(p.read_text()))
                if (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("plotly"))
                or (isinstance(n, ast.Import) and any(a.name.startswith("plotly") for a in n.names))]
    assert not offences, offences


# paper name -> (definition name pattern, the package it must live in)
ALGORITHMS = {
    "stochastic Frank-Wolfe": (r"SFW", "kit/frankwolfe/"),
    "k-support norm ball": (r"KSupportBall", "kit/frankwolfe/"),
    "iterative magnitude pruning": (r"imp", "kit/pruning/"),
    "gradual magnitude pruning": (r"gmp", "kit/pruning/"),
    "ALLR": (r"allr_peak|ALLR", "kit/pruning/"),
    "sparse model soups": (r"sparse_model_soup|greedy_soup|uniform_soup", "kit/soups/"),
    "Wanda": (r"wanda_mask", "kit/perp/"),
    "SparseGPT": (r"sparsegpt_prune", "kit/perp/"),
    "PERP": (r"retrain", "kit/perp/"),
    "ExpGuard": (r"ExpGuard", "kit/federated/"),
    "Merlin-Arthur game": (r"play|morgana_loss|Arthur", "kit/merlin_arthur/"),
    "nonnegative k-sparse polytope": (r"NonnegativeKSparsePolytope", "kit/frankwolfe/"),
    "Neural Parameter Regression": (r"NPR|DeepONet|LowRankSolution", "kit/operators/"),
    "shift-resilient loss": (r"shift_resilient_loss|best_shifts", "kit/canopy/"),
    "slope filter": (r"slope|slope_filter", "kit/canopy/"),
}


@pytest.mark.parametrize("paper_name", list(ALGORITHMS))
def test_each_algorithm_is_defined_once_in_its_method_package(paper_name):
    pattern, package = ALGORITHMS[paper_name]
    found = [f"{p.relative_to(KIT.parent)}" for p in modules() if not is_shim(p)
             for n in ast.walk(ast.parse(p.read_text()))
             if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and re.fullmatch(pattern, n.name)
             and n.col_offset == 0]
    assert found, f"no definition of {paper_name} ({pattern})"
    assert all(f.startswith(package) for f in found), (paper_name, found)


METHOD_NOTEBOOKS = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.py") if not p.name.startswith("00_"))


@pytest.mark.parametrize("notebook", METHOD_NOTEBOOKS, ids=lambda p: p.stem)
def test_every_method_notebook_shows_its_core_algorithm(notebook):
    calls = re.findall(r"^kit\.show\(([\w.]+)\)", notebook.read_text(), flags=re.M)
    assert calls, f"{notebook.name} never shows an algorithm with kit.show"
    for call in calls:  # each names a kit object with Python source
        parts = call.split(".")
        depth = len(parts)
        while depth > 1:
            try:
                obj = importlib.import_module(".".join(parts[:depth]))
                break
            except ImportError:
                depth -= 1
        for name in parts[depth:]:
            obj = getattr(obj, name)
        assert source_of(obj)[0].startswith("kit/"), call


OLD_PATHS = [
    ("kit.pruning.soups", "greedy_soup", "kit.soups"),
    ("kit.pruning.llm", "prune_llm", "kit.perp"),
    ("kit.pruning.lora", "merge", "kit.perp"),
    ("kit.pruning.perp", "retrain", "kit.perp"),
    ("kit.pruning.experiments", "train_dense", "kit.recipes.imp"),
    ("kit.pruning.soup_experiments", "compare_sms_imp", "kit.recipes.soups"),
    ("kit.pruning.perp_experiments", "sweep", "kit.recipes.perp"),
    ("kit.frankwolfe.experiments", "compare", "kit.recipes.frank_wolfe"),
    ("kit.frankwolfe.compression", "sweep", "kit.recipes.compression"),
    ("kit.frankwolfe.recipes", "sfw_setup", "kit.frankwolfe"),
    ("kit.frankwolfe.picture", "lmo_step_figure", "kit.frankwolfe.geometry"),
    ("kit.federated.experiments", "config", "kit.recipes.federated"),
    ("kit.experiments", "train_classifier", "kit.recipes"),
]


@pytest.mark.parametrize(("old", "name", "new"), OLD_PATHS, ids=[o for o, _, _ in OLD_PATHS])
def test_old_module_paths_warn_and_give_the_same_objects(old, name, new):
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=re.escape(old)):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize(("name", "new"), [("greedy_soup", "kit.soups"), ("VARY", "kit.soups"),
                                           ("prune_llm", "kit.perp"), ("LORA_KINDS", "kit.perp")])
def test_old_names_in_kit_pruning_warn_and_give_the_same_objects(name, new):
    import kit.pruning

    with pytest.warns(DeprecationWarning, match=f"kit.pruning.{name} moved to {new}"):
        value = getattr(kit.pruning, name)
    assert value is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        kit.pruning.nonsense  # noqa: B018


def test_importing_the_new_layout_raises_no_deprecation_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in ("kit", "kit.pruning", "kit.soups", "kit.perp", "kit.frankwolfe", "kit.federated", "kit.recipes",
                     "kit.recipes.imp", "kit.recipes.soups", "kit.recipes.perp", "kit.recipes.compression",
                     "kit.recipes.frank_wolfe", "kit.recipes.federated", "kit.runs", "kit.plots", "kit.merlin_arthur",
                     "kit.recipes.merlin_arthur", "kit.operators", "kit.recipes.operators"):
            importlib.import_module(name)
