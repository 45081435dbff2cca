"""Old import paths kept for one release: they warn (DeprecationWarning) and hand over the new module or name.

The moves of the layout change (0.2) are listed in the README (section "Moved in 0.2").
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

REMOVED_IN = "0.3"


def alias_module(old: str, new: str) -> ModuleType:
    """Make the module ``old`` (being imported) the module ``new``, with a DeprecationWarning at the importer."""
    warnings.warn(f"{old} moved to {new}; the old path goes in kit {REMOVED_IN}", DeprecationWarning, stacklevel=3)
    module = importlib.import_module(new)
    sys.modules[old] = module
    return module


def moved_names(package: str, moves: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving names that moved (name -> new module) with a DeprecationWarning."""

    def __getattr__(name: str) -> Any:
        if name not in moves:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(f"{package}.{name} moved to {moves[name]}.{name}; the old path goes in kit {REMOVED_IN}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(moves[name]), name)

    return __getattr__
