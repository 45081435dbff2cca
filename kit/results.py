"""Headline numbers of a notebook run, recorded into a JSON file beside its executed copy.

``kit.record("test_accuracy", 0.94)`` keeps the number in memory and, when the run was started by
:mod:`kit.runner` (which sets ``$KIT_RESULTS_FILE``), writes it to that file at once, so sweeps can
collect it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

ENV_VAR = "KIT_RESULTS_FILE"
_values: dict[str, Any] = {}
_meta: dict[str, Any] = {}


def _check_value(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if hasattr(value, "item"):  # numpy and torch scalars
        try:
            return _check_value(name, value.item())
        except (ValueError, RuntimeError):
            pass
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str, bool)) for v in value):
        return list(value)
    raise TypeError(f"record({name!r}, ...) takes a number, string, bool or a flat list of them; "
                    f"got {type(value).__name__}")


def record(name: str, value: Any) -> Any:
    """Record a headline number under ``name``; returns the value so it can be printed inline."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name must be a non-empty string; got {name!r}")
    clean = _check_value(name, value)
    if isinstance(clean, float) and not math.isfinite(clean):
        raise ValueError(f"record({name!r}, ...) got a non-finite number {clean}")
    _values[name] = clean
    _write()
    return value


def set_meta(**meta: Any) -> None:
    """Attach run facts (budget, seed, device) to the results file."""
    _meta.update({k: _check_value(k, v) for k, v in meta.items()})
    _write()


def recorded() -> dict[str, Any]:
    """Everything recorded so far in this process."""
    return dict(_values)


def reset() -> None:
    """Forget what was recorded (a new run in the same process)."""
    _values.clear()
    _meta.clear()


def results_path() -> Path | None:
    """Where records are written, or None when only kept in memory."""
    path = os.environ.get(ENV_VAR)
    return Path(path) if path else None


def _write() -> None:
    path = results_path()
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # write-then-rename so a reader never sees a half-written file
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump({"meta": _meta, "values": _values}, f, indent=2, sort_keys=True)
    os.replace(f.name, path)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results file written by :func:`record` (keys 'meta' and 'values')."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file at {path}: did the notebook call kit.record?")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"results file {path} is truncated or not a kit results file: {err}") from err
    if not isinstance(data, dict) or "values" not in data:
        raise ValueError(f"results file {path} is not a kit results file (no 'values')")
    return data
