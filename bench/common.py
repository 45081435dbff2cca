"""Shared by the benchmark scripts: where results go and what machine facts travel with them."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, payload: dict, keep: tuple[str, ...] = (), budget: str = "cpu") -> Path:
    """Write bench/results/<name>.json with the payload plus the machine it was measured on.

    Keys in ``keep`` that the payload lacks are carried over from the previous file (e.g. the
    accuracy part when only the speed part was re-measured), with the date they were measured.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    if path.exists() and any(key not in payload for key in keep):
        try:
            previous = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a run killed mid-write by an older version
            print(f"warning: {path} is unreadable ({err}); nothing carried over from it")
            previous = {}
        for key in keep:
            if key not in payload and key in previous:
                payload[key] = previous[key]
                payload.setdefault("carried_over", {})[key] = previous.get("machine", {}).get("date")
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    # write beside the target, then rename: a killed run never leaves a truncated result
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{name}.", suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"benchmark": name, "budget": budget, "machine": meta, **payload}, f, indent=2)
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path
