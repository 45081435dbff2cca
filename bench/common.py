"""Shared by the benchmark scripts: where results go and what machine facts travel with them."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

import kit
from kit.runs import as_if_written

RESULTS = Path(__file__).resolve().parent / "results"
_DEVICE: dict[str, torch.device] = {}
T = TypeVar("T")


def parser(description: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with the ``--device`` every benchmark takes (default: kit.get_device())."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: kit.get_device())")
    return p


def parts_parser(description: str | None, parts: tuple[str, ...]) -> argparse.ArgumentParser:
    """:func:`parser` plus ``--only PART`` (measure one part, keep the others from the last result)."""
    p = parser(description)
    p.add_argument("--only", choices=parts, help="measure only this part; keep the rest")
    return p


def write_with_verdicts(name: str, payload: dict, keep: tuple[str, ...], verdicts: Callable[[dict], dict],
                        only: str | None) -> Path:
    """Add ``verdicts`` (computed over the parts measured now and, with ``only``, those kept from the last
    result) to the payload and write it (:func:`write_result`)."""
    on = device()
    previous = (RESULTS if on.type == "cpu" else RESULTS / on.type) / f"{name}.json"
    kept = json.loads(previous.read_text()) if previous.exists() and only is not None else {}
    payload["verdicts"] = verdicts({**{k: kept[k] for k in keep if k in kept}, **payload})
    print(payload["verdicts"])
    return write_result(name, payload, keep=keep)


def use_device(name: str | None) -> torch.device:
    """Make ``name`` the device of every recipe this process runs ($KIT_DEVICE) and the one results record."""
    device = kit.get_device(name)
    os.environ["KIT_DEVICE"] = str(device)
    _DEVICE["device"] = device
    return device


def device() -> torch.device:
    """The benchmark's device (set by :func:`use_device`, else kit.get_device())."""
    return _DEVICE.get("device") or kit.get_device()


def measure(fn: Callable[[], T], on: torch.device | None = None) -> tuple[float, T]:
    """Wall seconds of ``fn()`` with the device's queue drained at both ends, and what it returned
    (for whole runs, where launch and work overlap and the result is wanted too)."""
    on = on or device()
    _drain(on)
    begin = time.perf_counter()
    value = fn()
    _drain(on)
    return time.perf_counter() - begin, value


def _drain(on: torch.device) -> None:
    if on.type == "cuda":
        torch.cuda.synchronize(on)
    elif on.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], object], on: torch.device | None = None) -> float:
    """Seconds ``fn()`` takes on ``on``: CUDA events around it on a GPU (the work, not its launch), the wall
    clock elsewhere. Warm up before timing: the first calls include allocation and kernel selection."""
    on = on or device()
    if on.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    return measure(fn, on)[0]


def _device_facts(on: torch.device) -> dict:
    facts = {"device": on.type}
    if on.type == "cuda":
        facts["device_name"] = torch.cuda.get_device_name(on)
    return facts


def write_result(name: str, payload: dict, keep: tuple[str, ...] = (), budget: str = "cpu") -> Path:
    """Write bench/results/<name>.json with the payload plus the machine it was measured on.

    Measured on an accelerator, it goes to bench/results/<device type>/<name>.json instead. Keys in
    ``keep`` that the payload lacks are carried over from the previous file (e.g. the
    accuracy part when only the speed part was re-measured), with the date they were measured.
    """
    on = device()
    # numbers measured on an accelerator go beside the cpu-budget ones that notebooks render, never over them
    folder = RESULTS if on.type == "cpu" else RESULTS / on.type
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    if path.exists() and any(key not in payload for key in keep):
        try:
            previous = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a run killed mid-write by an older version
            print(f"warning: {path} is unreadable ({err}); nothing carried over from it")
            previous = {}
        for key in keep:
            if key not in payload and key in previous:
                payload[key] = previous[key]
                # a part kept twice keeps the date it was measured, not the date of the run that kept it
                when = (previous.get("carried_over") or {}).get(key) or previous.get("machine", {}).get("date")
                payload.setdefault("carried_over", {})[key] = when
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version(),
            **_device_facts(on), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    # write beside the target, then rename: a killed run never leaves a truncated result
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"benchmark": name, "budget": budget, "machine": meta, **payload}, f, indent=2)
    as_if_written(tmp)
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path
