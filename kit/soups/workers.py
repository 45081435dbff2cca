"""Training a phase's ingredients: one after another in this process, or in a pool of spawned processes.

The sequential path is the reference. ``workers > 1`` is the speed path: each worker process has
one intra-op thread; the data and the model's structure reach each worker once, at pool start,
and per task only weights travel, as bytes read back weights-only. Its results equal the
sequential ones whenever the sequential run also uses one intra-op thread (CPU kernels may sum in
an order that depends on the thread count); a test checks it.
"""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..budget import device_for
from ..data import RandomShift, Splits
from ..pruning import copy_model, load_pruned_state_dict, refresh_masked
from ..train import Callback, TrainState, fit


class TableSchedule:
    """A schedule given by its values at steps 0..n-1 (the last value after): exact, and picklable for workers."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = tuple(float(v) for v in values)

    def __call__(self, step: int) -> float:
        return self.values[min(step, len(self.values) - 1)]


class StopAfter(Callback):
    """Ends ``fit`` after ``steps`` optimizer steps (retraining lengths that are not whole epochs)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def after_step(self, state: TrainState) -> None:
        if state.step + 1 >= self.steps:  # state.step counts the steps before this one
            state.stop = True


@dataclass(frozen=True)
class IngredientTask:
    """How to retrain one ingredient: its varied value, batch seed, step count, learning rate per step, settings."""

    index: int
    value: float
    seed: int
    steps: int
    epochs: int
    lrs: tuple[float, ...]
    weight_decay: float
    momentum: float
    batch_size: int
    desc: str
    shift: int = 0  # random image shifts of up to this many pixels (kit.data.RandomShift); 0: none


def train_ingredient(model: nn.Module, train: Dataset, val: Dataset, task: IngredientTask,
                     device: str | torch.device | None, progress: bool) -> list[dict[str, float]]:
    """Retrain ``model`` in place with kit.train.fit as ``task`` says; the per-epoch history."""
    if task.shift:
        train = RandomShift(train, task.shift, seed=task.seed)
    return fit(model, train, epochs=task.epochs, lr=task.lrs[0], lr_schedule=TableSchedule(task.lrs),
               momentum=task.momentum, weight_decay=task.weight_decay, batch_size=task.batch_size, val_data=val,
               callbacks=[StopAfter(task.steps)], seed=task.seed, device=device, progress=progress,
               desc=task.desc).records


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _loads(payload: bytes) -> Any:
    # weights and numbers only travel as bytes; the model's structure and the data come once, at pool start
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


_WORKER: dict[str, Any] = {}


def _init_worker(template: nn.Module, train: Dataset, val: Dataset, device: str | torch.device | None) -> None:
    # one intra-op thread per worker: m workers share the cores, and the sums match a one-thread run
    torch.set_num_threads(1)
    _WORKER.update(template=template, train=train, val=val, device=device)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _train_in_worker(state: bytes, task: IngredientTask) -> bytes:
    model = load_pruned_state_dict(copy_model(_WORKER["template"]), _loads(state))
    history = train_ingredient(model, _WORKER["train"], _WORKER["val"], task, _WORKER["device"], progress=False)
    return _dumps({"state_dict": _state(model), "history": history})


class IngredientTrainer:
    """Trains a phase's ingredients one after another, or in a pool of spawned processes (created on first use)."""

    def __init__(self, data: Splits, workers: int, device: str | torch.device | None, progress: bool) -> None:
        self.data, self.workers, self.device, self.progress = data, workers, device, progress
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None

    def run(self, work: nn.Module, tasks: list[IngredientTask]) -> list[tuple[nn.Module, list[dict[str, float]]]]:
        """One retrained copy of ``work`` (and its history) per task, in task order."""
        if self.workers == 1 or len(tasks) == 1:
            out = []
            for task in tasks:
                model = copy_model(work)
                history = train_ingredient(model, self.data.train, self.data.val, task, self.device, self.progress)
                out.append((model, history))
            return out
        if self.pool is None:
            # the structure once per pool (multiprocessing pickles it); per task only the weights travel, and
            # the workers train where the model lives (the template travels on the CPU)
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                initargs=(copy_model(work).cpu(), self.data.train, self.data.val, device_for(work, self.device)))
        state = _dumps(_state(work))
        futures = [self.pool.submit(_train_in_worker, state, task) for task in tasks]
        out = []
        for future in futures:
            result = _loads(future.result())
            model = copy_model(work)
            model.load_state_dict(result["state_dict"])
            refresh_masked(model)
            out.append((model, result["history"]))
        return out

    def close(self) -> None:
        """Shut the worker pool down (if one was started)."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


__all__ = ["IngredientTask", "IngredientTrainer", "StopAfter", "TableSchedule", "train_ingredient"]
