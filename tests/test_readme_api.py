"""The README's "API at a glance" names only real kit functions, called with keyword arguments they take."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
ALIASES = {"ma": "kit.merlin_arthur", "op": "kit.operators", "cn": "kit.canopy"}
SECTION = README.split("## API at a glance", 1)[1].split("\n## ", 1)[0]
CALL = re.compile(r"\b((?:kit|ma|op|cn)(?:\.\w+)+)\(([^()]*(?:\([^()]*\)[^()]*)*)\)")
CALLS = [c for outer in CALL.findall(SECTION) for c in (outer, *CALL.findall(outer[1]))]


def resolve(dotted: str):
    head, *rest = dotted.split(".")
    obj = importlib.import_module(ALIASES.get(head, "kit"))
    path = ALIASES.get(head, "kit")
    for name in rest:
        try:
            obj = getattr(obj, name)
        except AttributeError:
            obj = importlib.import_module(f"{path}.{name}")
        path = f"{path}.{name}"
    return obj


def test_the_section_has_one_example_per_method_family():
    families = re.findall(r"^\| [^|]*\(`(kit\.\w+)`\) \|", SECTION, flags=re.M)
    assert set(families) == {"kit.frankwolfe", "kit.pruning", "kit.soups", "kit.perp", "kit.merlin_arthur",
                             "kit.federated", "kit.operators", "kit.canopy", "kit.hub"}
    assert len(CALLS) >= 15


@pytest.mark.parametrize("dotted, args", CALLS, ids=[c[0] for c in CALLS])
def test_each_call_names_a_real_function_and_its_keywords(dotted, args):
    fn = resolve(dotted)
    assert callable(fn), dotted
    if args.strip() in ("...", ""):
        return
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    own = re.sub(r"\([^()]*\)", "()", args)  # the keywords of nested calls are theirs
    for keyword in re.findall(r"(?:^|,\s*)(\w+)=", own):
        assert takes_any or keyword in params, f"{dotted} takes no keyword {keyword!r}"
