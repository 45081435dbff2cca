"""The one run mechanism every long run uses (IMP phases, soups, federated rounds, and the methods to come).

* :func:`derive_seed` gives each part of a run (a phase, an ingredient, a round, a client) a seed of
  its own from the run's seed, so a run resumed from a checkpoint draws exactly what an
  uninterrupted one draws.
* :func:`fingerprint` and its helpers hash what a run depends on by *content*: settings as JSON,
  models and data as the bytes of their tensors (not their repr), schedules by their values.
* :class:`Checkpoints` keeps numbered checkpoints of one run in a folder: atomic writes (a killed
  run never leaves a half-written file), weights-only loads (a checkpoint cannot run code), a clear
  error naming the file for a foreign checkpoint or one of another run, and a fall back, with a
  warning, to the last intact checkpoint when the newest is truncated or unreadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from .seeding import check_seed
from .validate import check_int


def derive_seed(seed: int, *keys: int) -> int:
    """A seed in [0, 2**63) for the part ``keys`` (e.g. phase, ingredient) of the run seeded with ``seed``.

    NumPy's SeedSequence mixes (seed, *keys), so neighbouring keys give unrelated seeds and the
    result depends on nothing but its arguments.
    """
    seed = check_seed(seed)
    keys = tuple(check_int(k, f"keys[{i}]", low=0) for i, k in enumerate(keys))
    state = np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


# ---------------------------------------------------------------- fingerprints

def _update_tensor(h: Any, name: str, tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def hash_tensors(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 of named tensors: names, dtypes, shapes and bytes, in the mapping's order."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping name -> tensor; got {type(tensors).__name__}")
    h = hashlib.sha256()
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensors[{name!r}] must be a tensor; got {type(tensor).__name__}")
        _update_tensor(h, name, tensor)
    return h.hexdigest()


def fingerprint_model(model: nn.Module) -> str:
    """sha256 of a model's state dict (parameters, buffers and masks), by content."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return hash_tensors(model.state_dict())


def _dataset_tensors(dataset: Dataset, prefix: str) -> Iterable[tuple[str, torch.Tensor]]:
    if isinstance(dataset, TensorDataset):
        yield from ((f"{prefix}.{i}", t) for i, t in enumerate(dataset.tensors))
    elif isinstance(dataset, Subset):
        yield f"{prefix}.indices", torch.as_tensor(list(dataset.indices))
        yield from _dataset_tensors(dataset.dataset, f"{prefix}.dataset")
    elif isinstance(getattr(dataset, "codes", None), torch.Tensor):  # kit.data.TextDataset
        yield f"{prefix}.codes", dataset.codes
        yield f"{prefix}.block_size", torch.tensor(int(getattr(dataset, "block_size", 0)))
    else:  # any other map-style dataset: item by item
        for i in range(len(dataset)):
            item = dataset[i]
            for j, part in enumerate(item if isinstance(item, (tuple, list)) else (item,)):
                yield f"{prefix}[{i}].{j}", torch.as_tensor(part)


def fingerprint_data(data: Any) -> str:
    """sha256 of a dataset's content: a Dataset, or anything with ``train``/``val``/``test`` datasets (Splits)."""
    h = hashlib.sha256()
    parts = [(name, getattr(data, name)) for name in ("train", "val", "test") if hasattr(data, name)]
    if isinstance(data, Dataset):
        parts = [("data", data)]
    if not parts:
        raise TypeError(f"data must be a torch Dataset or kit.data.Splits; got {type(data).__name__}")
    for name, dataset in parts:
        for key, tensor in _dataset_tensors(dataset, name):
            _update_tensor(h, key, tensor)
    return h.hexdigest()


def fingerprint_schedule(schedule: Callable[[int], float], steps: int) -> str:
    """sha256 of a learning-rate schedule's values at up to 4,096 of its ``steps`` (a lambda's repr changes)."""
    steps = check_int(steps, "steps", low=1)
    points = range(steps) if steps <= 4096 else sorted({round(i * (steps - 1) / 4095) for i in range(4096)})
    return hashlib.sha256(",".join(float(schedule(t)).hex() for t in points).encode()).hexdigest()


def fingerprint(config: Mapping[str, Any]) -> str:
    """sha256 of a configuration (plain numbers, strings, lists and dicts) as canonical JSON."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping; got {type(config).__name__}")
    try:
        text = json.dumps(config, sort_keys=True, default=list)
    except TypeError as err:
        raise TypeError(f"config must hold plain values (numbers, strings, lists, dicts): {err}") from err
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- checkpoints

class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, foreign, or of another run."""


def as_if_written(path: str | os.PathLike) -> None:
    """Give a file or folder made by ``tempfile`` (private: 0600 / 0700) the permissions a plain write gives it
    under the process umask, before it is renamed into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        as_if_written(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_weights_only(path: str | os.PathLike) -> Any:
    """Load a checkpoint holding only tensors, numbers, strings, lists and dicts; never runs code from it.

    A missing, empty, truncated or foreign file raises :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for bad files: name the file whatever it was
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"cannot read checkpoint {path} as a weights-only file "
                              f"(truncated, corrupt or not a kit checkpoint): {reason}") from err


class Checkpoints:
    """Numbered checkpoints ``<prefix>-NNN.pt`` of one run in ``directory``.

    Each file is a dict ``{"format", "config", "number", **payload}``. :meth:`latest` returns the
    newest intact checkpoint whose config equals the run's, or None when there is none yet; it
    raises :class:`CheckpointError` for a checkpoint of another format or of other settings
    (naming the settings that differ), and falls back, with a warning, past files it cannot read.
    ``keep`` bounds how many checkpoints stay on disk (None: all).
    """

    def __init__(self, directory: str | os.PathLike, *, prefix: str, format: str, kind: str = "run",
                 keep: int | None = None) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"checkpoint_dir must be a folder path; got {type(directory).__name__}")
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"checkpoint_dir {self.directory} exists and is not a directory")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"prefix must be letters, digits, '_', '.' or '-'; got {prefix!r}")
        self.prefix, self.format, self.kind = prefix, format, kind
        self.keep = None if keep is None else check_int(keep, "keep", low=1)
        self._name = re.compile(rf"^{re.escape(prefix)}-(\d+)\.pt$")

    def path(self, number: int) -> Path:
        """Where checkpoint ``number`` lives."""
        return self.directory / f"{self.prefix}-{check_int(number, 'number', low=0):03d}.pt"

    def numbers(self) -> list[int]:
        """The numbers of the checkpoints on disk, ascending."""
        if not self.directory.is_dir():
            return []
        found = (self._name.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save(self, number: int, config: Mapping[str, Any], payload: Mapping[str, Any]) -> Path:
        """Write checkpoint ``number`` atomically (tensors are copied to the CPU); prune beyond ``keep``."""
        reserved = {"format", "config", "number"} & set(payload)
        if reserved:
            raise ValueError(f"payload must not use the reserved keys {', '.join(sorted(reserved))}")
        obj = {"format": self.format, "config": dict(config), "number": number, **_to_cpu(payload)}
        path = save_atomic(obj, self.path(number))
        if self.keep is not None:
            for old in self.numbers()[: -self.keep]:
                self.path(old).unlink(missing_ok=True)
        return path

    def latest(self, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """The newest intact checkpoint of this run (config equal), or None; see the class docstring."""
        numbers = self.numbers()
        skipped = []
        for number in reversed(numbers):
            path = self.path(number)
            try:
                ckpt = load_weights_only(path)
            except CheckpointError as err:
                skipped.append(str(err))
                continue
            self._check(path, ckpt, config)
            if skipped:
                warnings.warn(f"skipped unreadable checkpoint(s), resuming from {path.name}: " + "; ".join(skipped),
                              RuntimeWarning, stacklevel=2)
            return ckpt
        if skipped:
            raise CheckpointError(f"checkpoint_dir {self.directory} holds no readable {self.prefix} checkpoint: "
                                  + "; ".join(skipped) + ". Delete these files to start the run afresh")
        return None

    def _check(self, path: Path, ckpt: Any, config: Mapping[str, Any]) -> None:
        if not isinstance(ckpt, dict) or ckpt.get("format") != self.format:
            raise CheckpointError(f"{path} is not a {self.kind} checkpoint of format {self.format!r}")
        saved = ckpt.get("config", {})
        differ = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        if differ:
            details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {config.get(k)!r}" for k in differ)
            raise CheckpointError(f"checkpoint_dir {self.directory} holds a checkpoint of a different {self.kind} run "
                                  f"({details}); pass the same arguments, model and data to resume, or use "
                                  "another directory")


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_cpu(v) for v in value]
    return value


__all__ = ["CheckpointError", "Checkpoints", "derive_seed", "fingerprint", "fingerprint_data", "fingerprint_model",
           "fingerprint_schedule", "hash_tensors", "load_weights_only", "save_atomic"]
