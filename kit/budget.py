"""The three compute budgets (smoke | cpu | gpu) and the one place that picks the device."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode

BUDGETS: tuple[str, ...] = ("smoke", "cpu", "gpu")
DEFAULT_BUDGET = "cpu"
ENV_VAR = "KIT_BUDGET"
DEVICE_TYPES = ("cpu", "cuda", "mps")

T = TypeVar("T")


@dataclass(frozen=True)
class BudgetInfo:
    """What a budget is for and roughly what it costs."""

    name: str
    purpose: str
    wall_time: str
    data: str


BUDGET_INFO: dict[str, BudgetInfo] = {
    "smoke": BudgetInfo("smoke", "CI and nbval: proves the notebook runs end to end", "seconds",
                        "tiny subsets, one or two epochs, offline data only"),
    "cpu": BudgetInfo("cpu", "a laptop: the numbers each notebook states are measured here", "minutes",
                      "offline data (MNIST-5k, digits, MNIST-1D, Shakespeare, SmolLM2)"),
    "gpu": BudgetInfo("gpu", "paper scale: full datasets, larger models, many epochs", "hours",
                      "may download (MNIST, Fashion-MNIST, CIFAR-10) into data/cache/"),
}


def budget_table() -> list[dict[str, str]]:
    """The three budgets as rows (name, purpose, wall time, data) for a table."""
    return [{"budget": b.name, "purpose": b.purpose, "wall time": b.wall_time, "data": b.data}
            for b in BUDGET_INFO.values()]


class UnknownBudgetError(ValueError):
    """Raised for a budget name that is not one of BUDGETS."""


def get_budget(budget: str | None = None) -> str:
    """Return the budget: the argument if given, else $KIT_BUDGET, else 'cpu'."""
    if budget is None:
        budget = os.environ.get(ENV_VAR) or DEFAULT_BUDGET
        source = f"environment variable {ENV_VAR}" if os.environ.get(ENV_VAR) else "default"
    else:
        source = "argument 'budget'"
    if not isinstance(budget, str):
        raise TypeError(f"budget must be a string, one of {BUDGETS}; got {type(budget).__name__}")
    name = budget.strip().lower()
    if name not in BUDGETS:
        raise UnknownBudgetError(f"unknown budget {budget!r} (from {source}); choose one of {', '.join(BUDGETS)}")
    return name


def choose(budget: str | None = None, *, smoke: T, cpu: T, gpu: T) -> T:
    """Pick the value that belongs to the budget, e.g. ``choose(b, smoke=1, cpu=10, gpu=200)`` epochs."""
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[get_budget(budget)]


@dataclass(frozen=True)
class PerBudget(Generic[T]):
    """One value per budget, read through :func:`choose`: ``EPOCHS = PerBudget(smoke=1, cpu=10, gpu=100)``,
    then ``EPOCHS(budget)`` (None: $KIT_BUDGET, else cpu) or ``EPOCHS["cpu"]``."""

    smoke: T
    cpu: T
    gpu: T

    def __call__(self, budget: str | None = None) -> T:
        return choose(budget, smoke=self.smoke, cpu=self.cpu, gpu=self.gpu)

    def __getitem__(self, budget: str) -> T:
        return self(budget)


def accelerator_available() -> bool:
    """True when CUDA or Apple MPS can be used."""
    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps is not None and mps.is_available())


DEVICE_VAR = "KIT_DEVICE"


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The kit's device choice: ``prefer`` if given, else $KIT_DEVICE if set, else CUDA if present, else
    Apple MPS, else the CPU."""
    what = "prefer"
    if prefer is None and os.environ.get(DEVICE_VAR):
        prefer, what = os.environ[DEVICE_VAR], f"${DEVICE_VAR}"
    if prefer is not None:
        if not isinstance(prefer, (str, torch.device)):
            raise TypeError(f"{what} must be a device name such as 'cpu' or 'cuda'; got {type(prefer).__name__}")
        try:
            device = torch.device(prefer)
        except RuntimeError as err:
            raise ValueError(f"{what} must be 'cpu', 'cuda', 'cuda:N' or 'mps'; got {prefer!r}") from err
        if device.type not in DEVICE_TYPES:
            raise ValueError(f"{what} must be 'cpu', 'cuda', 'cuda:N' or 'mps'; got {prefer!r}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{what}='cuda' but CUDA is not available; use 'cpu' or leave it unset")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{what}={prefer!r} but only {torch.cuda.device_count()} CUDA device(s) are present")
        mps = getattr(torch.backends, "mps", None)
        if device.type == "mps" and not (mps is not None and mps.is_available()):
            raise ValueError(f"{what}='mps' but Apple MPS is not available; use 'cpu' or leave it unset")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model lives: the device of its first parameter (or buffer); the CPU for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def reads_are_free(where: torch.Tensor | torch.device) -> bool:
    """True for a CPU tensor (or device), whose values cost nothing to read; on an accelerator a read waits for
    the device, so the hot paths (fit, SFW, the LMOs) keep such values there, at the price of a few more
    small kernels."""
    device = where.device if isinstance(where, torch.Tensor) else torch.device(where)
    return device.type == "cpu"


def device_for(model: torch.nn.Module, device: str | torch.device | None = None) -> torch.device:
    """The device a step on ``model`` runs on: ``device`` when the caller names one, else the model's own.

    The kit's one device rule: data, masks, buffers and metrics follow the model, and nothing moves a
    user's model unless the caller asks for a device (recipes that build their models place them on
    :func:`get_device`).
    """
    return model_device(model) if device is None else get_device(device)


def resolve(budget: str | None = None, device: str | torch.device | None = None) -> tuple[str, torch.device]:
    """Budget and device together; warns when the gpu budget has no accelerator (it still runs)."""
    name = get_budget(budget)
    dev = get_device(device)
    if name == "gpu" and dev.type == "cpu":
        warnings.warn(
            "budget 'gpu' asks for paper-scale runs but no CUDA/MPS device was found: running on the CPU, "
            "which will take a very long time. Use budget='cpu' for laptop-sized runs.",
            RuntimeWarning,
            stacklevel=2,
        )
    return name, dev


def describe(budget: str, device: torch.device) -> str:
    """One line that every notebook prints: budget, device, torch version, threads."""
    threads = torch.get_num_threads()
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    return (f"kit: budget={budget} device={device.type}{gpu} torch={torch.__version__} "
            f"threads={threads}")


NO_KERNEL = ("empty", "detach", "lift_fresh", "scalar_tensor", "_record_function")


class KernelCounter(TorchDispatchMode):
    """Within ``with KernelCounter() as seen:``, ``seen.ops`` counts the aten operators that run a kernel, by name.

    Views, allocations, wrapped Python numbers and profiler marks launch nothing and are left out. On a GPU
    each counted operator launches at least one kernel, whose host-side cost (a few microseconds)
    dominates a small model's step; on the ``meta`` device (tensors without data) they are counted on
    any machine.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not (func.is_view or func.__name__.startswith(NO_KERNEL)):
            self.ops[func.__name__] += 1
        return func(*args, **(kwargs or {}))


def count_kernel_ops(fn: Callable[[], object]) -> Counter:
    """The kernel-running aten operators one call of ``fn`` dispatches, by name (see :class:`KernelCounter`)."""
    with KernelCounter() as seen:
        fn()
    return seen.ops
