"""THE training loop: ``fit`` and ``evaluate``, with callbacks so methods plug in their strategies.

Strategies (pruning masks, SFW constraints, federated clients) hook in through :class:`Callback`;
no method writes its own loop. ``fit`` runs unchanged under HF Accelerate: pass an
``accelerate.Accelerator`` and launch with ``accelerate launch``.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .budget import KernelCounter, device_for, reads_are_free
from .data import make_loader
from .runs import Checkpoints, derive_seed
from .schedules import Schedule, as_schedule
from .seeding import check_seed, seed_everything
from .validate import check_choice, check_float, check_int

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OPTIMIZERS = ("sgd", "adam", "adamw")


def classification_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; sequence outputs (N, T, C) with targets (N, T) are flattened first."""
    if output.dim() > 2:
        output, target = output.reshape(-1, output.shape[-1]), target.reshape(-1)
    return nn.functional.cross_entropy(output, target)


def _counts_class(output: torch.Tensor, target: torch.Tensor) -> bool:
    return target.dtype in (torch.long, torch.int, torch.int32) and output.dim() >= 2


def _correct(output: torch.Tensor, target: torch.Tensor) -> tuple[int, int]:
    if not _counts_class(output, target):
        return 0, 0
    pred = output.argmax(dim=-1)
    return int((pred == target).sum()), target.numel()


@dataclass
class History:
    """Per-epoch records of one ``fit`` run: loss, accuracy, lr, time (train and validation)."""

    records: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        if not self.records or key not in self.records[0]:
            known = ", ".join(self.records[0]) if self.records else "none (empty history)"
            raise KeyError(f"no metric {key!r} in history; recorded: {known}")
        return [r[key] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: object) -> bool:
        return bool(self.records) and key in self.records[0]

    def last(self, key: str) -> float:
        """The metric's value after the last epoch."""
        return self[key][-1]

    def keys(self) -> list[str]:
        """Recorded metric names."""
        return list(self.records[0]) if self.records else []

    def to_dict(self) -> dict[str, list[float]]:
        """Column view: metric -> list over epochs."""
        return {k: self[k] for k in self.keys()}


@dataclass
class TrainState:
    """What callbacks see: the model and optimizer, counters, the current batch and loss."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    epochs: int
    total_steps: int
    history: History
    epoch: int = 0
    step: int = 0
    batch: Any = None
    output: torch.Tensor | None = None
    loss_tensor: torch.Tensor | None = None
    lr: float = float("nan")
    stop: bool = False
    accelerator: Any = None

    @property
    def loss(self) -> float:
        """The last step's loss as a number (reading it waits for the device; ``loss_tensor`` does not)."""
        return float("nan") if self.loss_tensor is None else float(self.loss_tensor)


class Callback:
    """Hooks into ``fit``; override any of them. Set ``state.stop = True`` to end training early."""

    def on_fit_start(self, state: TrainState) -> None: ...
    def before_step(self, state: TrainState) -> None: ...  # may replace state.batch: the step trains on that
    def after_step(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...


def make_optimizer(optimizer: str | torch.optim.Optimizer | Callable, params: Iterable[nn.Parameter],
                   lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """An optimizer from a name ('sgd', 'adam', 'adamw'), a factory ``params -> Optimizer``, or an instance."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        name = check_choice(optimizer, "optimizer", OPTIMIZERS)
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, weight_decay=weight_decay)
    if callable(optimizer):
        opt = optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer factory must return a torch.optim.Optimizer; got {type(opt).__name__}")
        return opt
    raise TypeError(f"optimizer must be one of {OPTIMIZERS}, an Optimizer or a factory; got {type(optimizer).__name__}")


_SHAPE_ERROR = re.compile(r"shape|size|dimension|mat1|mat2|channels|Expected .* input", re.IGNORECASE)


def _first_forward(model: nn.Module, inputs: Any, where: str) -> torch.Tensor:
    """The model's output on the first batch, with a clear error when the batch does not fit the model."""
    try:
        return model(inputs)
    except RuntimeError as err:
        if not _SHAPE_ERROR.search(str(err)):
            raise
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        dtype = f" {inputs.dtype}" if isinstance(inputs, torch.Tensor) else ""
        raise ValueError(f"{where}: the model cannot take a batch of inputs of shape {shape}{dtype} (batch first); "
                         f"check the data against the model's input shape. torch said: "
                         f"{str(err).strip().splitlines()[0]}") from err


def check_targets(output: torch.Tensor, targets: torch.Tensor, where: str) -> None:
    """For classification: targets are class indices in [0, classes) or probability rows of the output's shape."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"{where}: targets must be a tensor; got {type(targets).__name__}")
    classes = output.shape[-1] if output.dim() >= 2 else None
    if targets.is_floating_point():
        if targets.shape != output.shape:
            raise ValueError(f"{where}: classification targets must be class indices (integers) or probability "
                             f"vectors of the output's shape {tuple(output.shape)}; got {targets.dtype} targets of "
                             f"shape {tuple(targets.shape)}")
        return
    if targets.dtype == torch.bool or targets.is_complex():
        raise TypeError(f"{where}: classification targets must be integer class indices; got {targets.dtype}")
    if classes is not None and targets.numel():
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise ValueError(f"{where}: targets must be class indices in [0, {classes}) for a model with {classes} "
                             f"outputs; got {bad}")


def _check_schedule(schedule: Schedule | None, steps: int) -> None:
    # every rate the run will use, checked before the first step (a fixed schedule costs microseconds per step)
    if schedule is None:
        return
    for t in range(steps):
        _check_rate(schedule(t), t)


def _check_rate(rate: Any, step: int) -> float:
    try:
        value = float(rate)
    except (TypeError, ValueError) as err:
        raise TypeError(f"lr_schedule({step}) must return a number; got {type(rate).__name__}") from err
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"lr_schedule({step}) returned {value}; learning rates must be finite and >= 0")
    return value


def _check_owner(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    own = {id(p) for p in model.parameters()}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    foreign = sum(id(p) not in own for p in params)
    if foreign:
        raise ValueError(f"optimizer updates {foreign} of its {len(params)} parameters that are not the model's: "
                         "build it over this model's parameters (e.g. torch.optim.SGD(model.parameters(), ...))")


def _as_loader(data: Dataset | DataLoader, batch_size: int, shuffle: bool, seed: int, name: str) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Dataset):
        raise TypeError(f"{name} must be a torch Dataset or DataLoader; got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name} is empty")
    return make_loader(data, batch_size, shuffle=shuffle, seed=seed)


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


def fit(model: nn.Module, train_data: Dataset | DataLoader, *, epochs: int = 1, lr: float = 0.1,
        optimizer: str | torch.optim.Optimizer | Callable = "sgd", momentum: float = 0.9,
        weight_decay: float = 0.0, batch_size: int = 128, lr_schedule: Schedule | float | None = None,
        loss_fn: LossFn = classification_loss, val_data: Dataset | DataLoader | None = None,
        callbacks: Sequence[Callback] = (), seed: int = 0, device: str | torch.device | None = None,
        progress: bool = True, accelerator: Any = None, grad_clip: float | None = None,
        desc: str = "train") -> History:
    """Train ``model`` on ``train_data`` and return its per-epoch :class:`History`.

    ``lr_schedule`` is a callable ``step -> lr`` (see :mod:`kit.schedules`) applied before every
    optimizer step; without one the learning rate stays at ``lr``, except that an Optimizer instance
    or factory keeps its own learning rate(s). The run is seeded: the same seed, model
    initialisation and data give the same history. It runs where the model lives (batches follow it);
    ``device`` moves the model there first. On an accelerator no step waits for the device: loss and
    accuracy add up there and are read once per epoch, a non-finite loss is checked every
    ``SYNC_EVERY`` steps.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    epochs = check_int(epochs, "epochs", low=1)
    lr = check_float(lr, "lr", low=0.0)
    momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed)
    if grad_clip is not None:
        grad_clip = check_float(grad_clip, "grad_clip", low=0.0, low_open=True)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (output, target) -> loss; got {type(loss_fn).__name__}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be kit.train.Callback instances; got {type(cb).__name__}")
    schedule = as_schedule(lr_schedule, lr)
    if lr_schedule is None and not isinstance(optimizer, str):
        schedule = None  # an optimizer built by the caller keeps the learning rate(s) it was built with
    if isinstance(optimizer, torch.optim.Optimizer):
        _check_owner(optimizer, model)
    train_loader = _as_loader(train_data, batch_size, True, seed, "train_data")
    val_loader = None if val_data is None else _as_loader(val_data, max(batch_size, 512), False, seed, "val_data")
    _check_schedule(schedule, epochs * len(train_loader))

    seed_everything(seed)
    dev = accelerator.device if accelerator is not None else device_for(model, device)
    if device is not None:
        model.to(dev)  # the caller named a device; otherwise the model stays where it is
    opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad], lr, momentum,
                         weight_decay)
    if accelerator is not None:
        model, opt, train_loader = accelerator.prepare(model, opt, train_loader)
        if val_loader is not None:
            val_loader = accelerator.prepare(val_loader)
    main = accelerator is None or accelerator.is_main_process
    # on an accelerator the loop never waits for the device per step: loss and accuracy add up there and
    # are read once per epoch, a non-finite loss is noted there and checked every SYNC_EVERY steps
    check_every = 1 if reads_are_free(dev) else SYNC_EVERY

    history = History()
    state = TrainState(model=model, optimizer=opt, device=dev, epochs=epochs,
                       total_steps=epochs * len(train_loader), history=history, accelerator=accelerator)
    for cb in callbacks:
        cb.on_fit_start(state)
    bar = tqdm(total=state.total_steps, desc=desc, disable=not (progress and main), leave=False)
    for epoch in range(epochs):
        state.epoch = epoch
        model.train()
        start = time.perf_counter()
        losses = _LossLog(check_every, dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        n_seen, counted = 0, 0
        for loaded in train_loader:
            batch = loaded if accelerator is not None else _to(loaded, dev)
            state.batch = batch
            if schedule is None:
                state.lr = float(opt.param_groups[0]["lr"])
            else:
                state.lr = _check_rate(schedule(state.step), state.step)  # schedules may change during a run
                for group in opt.param_groups:
                    group["lr"] = state.lr
            for cb in callbacks:
                cb.before_step(state)
            replaced = state.batch is not batch  # a callback may replace the batch (e.g. show only chosen features)
            batch = state.batch
            inputs, targets = batch[0], batch[1]
            opt.zero_grad(set_to_none=True)
            if state.step == 0:
                output = _first_forward(model, inputs, "train_data")
                if loss_fn is classification_loss:  # the loader's targets where they are still on the host
                    check_targets(output, targets if replaced else loaded[1], "train_data")
            else:
                output = model(inputs)
            loss = loss_fn(output, targets)
            n = targets.shape[0]
            losses.add(loss, state.step, n)
            if losses.full():
                losses.read(epoch, state.lr)  # raises at the first non-finite loss
            if accelerator is not None:
                accelerator.backward(loss)
            else:
                loss.backward()
            if grad_clip is not None:  # the accelerator's version unscales mixed-precision gradients first
                clip = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_
                clip(model.parameters(), grad_clip)
            opt.step()
            state.output, state.loss_tensor = output.detach(), loss.detach()
            n_seen += n
            if _counts_class(state.output, targets):
                correct += (state.output.argmax(dim=-1) == targets).sum()
                counted += targets.numel()
            for cb in callbacks:
                cb.after_step(state)
            state.step += 1
            bar.update(1)
            if state.stop:
                break
        losses.read(epoch, state.lr)
        record = {"epoch": epoch + 1, "step": state.step, "lr": state.lr,
                  "train_loss": _mean_across(losses.total, n_seen, accelerator),
                  "train_accuracy": _mean_across(float(correct), counted, accelerator),
                  "seconds": time.perf_counter() - start}
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn=loss_fn, device=dev, accelerator=accelerator)
            record.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        history.records.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k in ("train_loss", "val_accuracy")})
        for cb in callbacks:
            cb.on_epoch_end(state)
        if state.stop:
            break
    bar.close()
    for cb in callbacks:
        cb.on_fit_end(state)
    return history


class _Stop(Exception):
    pass


def step_kernels(model: nn.Module, train_data: Dataset | DataLoader, *, step: int = 3, **options: Any) -> Counter:
    """The kernels one of :func:`fit`'s training steps launches on an accelerator, by aten operator.

    ``fit(copy of model on the meta device, train_data, **options)`` runs until step ``step`` (counted)
    and stops before the epoch's end: meta tensors hold no data, so this counts on any machine, and any
    read of a value on the host in those steps raises. ``step`` must lie below ``SYNC_EVERY``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    step = check_int(step, "step", low=0, high=SYNC_EVERY - 2)
    steps = len(_as_loader(train_data, options.get("batch_size", 128), False, 0, "train_data"))
    if step >= steps:  # the epoch's end reads its numbers, which meta tensors do not have
        raise ValueError(f"step: train_data gives {steps} steps in an epoch, fewer than {step + 1}; give more data "
                         f"or a lower step")
    counter, counting = KernelCounter(), []

    class Count(Callback):
        def before_step(self, state: TrainState) -> None:
            if state.step == step:
                counting.append(counter.__enter__())

        def after_step(self, state: TrainState) -> None:
            if state.step == step:
                raise _Stop

    meta = copy.deepcopy(model).to("meta")
    try:
        fit(meta, train_data, progress=False, callbacks=[*options.pop("callbacks", ()), Count()], **options)
    except _Stop:
        pass
    finally:
        if counting:  # the mode stays on torch's stack until left, whatever the step raised
            counter.__exit__(None, None, None)
    if not counting:
        raise ValueError(f"step: fit stopped before step {step} (a callback stopped it); give a lower step")
    return counter.ops


def fit_resumable(model: nn.Module, train_data: Dataset | DataLoader, *, optimizer: torch.optim.Optimizer,
                  epochs: int, seed: int, checkpoints: Checkpoints | None = None, config: Any = None,
                  state: Any = None, progress: bool = True, desc: str = "train",
                  lr_schedule: Schedule | None = None, **options: Any) -> History:
    """``fit`` one epoch at a time, epoch e seeded with ``derive_seed(seed, e)``, with a checkpoint after every
    epoch (model, optimizer, each object of ``state`` (name -> anything with ``state_dict`` and
    ``load_state_dict``) and the history); a rerun with the same ``config`` resumes from the last one and
    ends exactly where an uninterrupted run does. ``lr_schedule`` (step -> lr) counts steps over the whole run,
    not per epoch. ``options`` go to ``fit`` (loss_fn, callbacks, ...)."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer (its state is checkpointed); got "
                        f"{type(optimizer).__name__}")
    epochs = check_int(epochs, "epochs", low=1)
    state = dict(state or {})
    history, start = History(), 0
    saved = checkpoints.latest(config) if checkpoints is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        for name, obj in state.items():
            obj.load_state_dict(saved["state"][name])
        history.records = [dict(r) for r in saved["records"]]
        start = saved["number"]
    for epoch in tqdm(range(start, epochs), desc=desc, disable=not progress or epochs - start <= 1, leave=False):
        done = history.records[-1]["step"] if history.records else 0
        schedule = None if lr_schedule is None else (lambda step, done=done: lr_schedule(step + done))
        record = fit(model, train_data, epochs=1, optimizer=optimizer, seed=derive_seed(seed, epoch),
                     progress=progress, desc=f"{desc} epoch {epoch + 1}/{epochs}", lr_schedule=schedule,
                     **options).records[0]
        record["epoch"] = epoch + 1
        record["step"] = record["step"] + (history.records[-1]["step"] if history.records else 0)
        history.records.append(record)
        if checkpoints is not None:
            checkpoints.save(epoch + 1, config, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                                 "state": {n: o.state_dict() for n, o in state.items()},
                                                 "records": history.records})
    return history


SYNC_EVERY = 50  # steps between checks for a non-finite loss on an accelerator (a check waits for the device)


class _LossLog:
    """Each step's loss, kept on the device and read every ``every`` steps (at every step on the CPU, where a
    read is free): the epoch's loss sum in float64, added step by step as Python floats would be, and the
    first non-finite loss, found with its step. One kernel per step on an accelerator."""

    def __init__(self, every: int, device: torch.device) -> None:
        self.every = every
        # float64 holds a float16/32/64 loss exactly (MPS has no float64)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.window = None if reads_are_free(device) else torch.empty(every, dtype=dtype, device=device)
        self.pending: list[tuple[int, int, float | None]] = []  # (step, batch size, value if read) not added yet
        self.total = 0.0

    def add(self, loss: torch.Tensor, step: int, n: int) -> None:
        """Note the loss of ``step`` (a batch of ``n``)."""
        if self.window is None:
            self.pending.append((step, n, float(loss.detach())))
        else:
            self.window[len(self.pending)].copy_(loss.detach())
            self.pending.append((step, n, None))

    def full(self) -> bool:
        """True when ``every`` losses wait to be read."""
        return len(self.pending) >= self.every

    def read(self, epoch: int, lr: float) -> None:
        """Add the waiting losses to the total (one read of the device); raise at the first non-finite one."""
        if not self.pending:
            return
        values = ([v for _, _, v in self.pending] if self.window is None
                  else self.window[: len(self.pending)].tolist())
        pending, self.pending = self.pending, []
        for (step, n, _), value in zip(pending, values, strict=True):
            if not math.isfinite(value):
                raise FloatingPointError(f"loss became {value} at step {step} (epoch {epoch}); "
                                         f"lower lr (now {lr:g}) or check the data")
            self.total += value * n


def _mean_across(total: float, count: int, accelerator: Any) -> float:
    if accelerator is not None and accelerator.num_processes > 1:
        t = accelerator.reduce(torch.tensor([total, float(count)], device=accelerator.device), "sum")
        total, count = float(t[0]), int(t[1])
    return total / count if count else float("nan")


@torch.no_grad()
def predict(model: nn.Module, data: Dataset | DataLoader, *, batch_size: int = 512,
            device: str | torch.device | None = None, accelerator: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs and targets over ``data``, in order, on the CPU (model put in eval mode; it runs where it
    lives unless ``device`` names another)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    batch_size = check_int(batch_size, "batch_size", low=1)
    loader = _as_loader(data, batch_size, False, 0, "data")
    dev = accelerator.device if accelerator is not None else device_for(model, device)
    if accelerator is None and device is not None:
        model.to(dev)
    model.eval()
    outputs, targets = [], []
    for i, batch in enumerate(loader):
        batch = batch if accelerator is not None else _to(batch, dev)
        out, tgt = (_first_forward(model, batch[0], "data") if i == 0 else model(batch[0])), batch[1]
        if accelerator is not None:
            out, tgt = accelerator.gather_for_metrics((out, tgt))
        outputs.append(out.cpu())
        targets.append(tgt.cpu())
    return torch.cat(outputs), torch.cat(targets)


def evaluate(model: nn.Module, data: Dataset | DataLoader, *, loss_fn: LossFn = classification_loss,
             batch_size: int = 512, device: str | torch.device | None = None, accelerator: Any = None
             ) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``data`` (accuracy is NaN for non-class targets)."""
    was_training = model.training if isinstance(model, nn.Module) else False
    output, target = predict(model, data, batch_size=batch_size, device=device, accelerator=accelerator)
    if loss_fn is classification_loss:
        check_targets(output, target, "data")
    loss = float(loss_fn(output, target))
    correct, counted = _correct(output, target)
    model.train(was_training)
    return {"loss": loss, "accuracy": correct / counted if counted else float("nan")}
