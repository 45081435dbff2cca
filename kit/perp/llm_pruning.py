"""One-shot pruning of a causal language model: every Linear inside the decoder blocks (never the
embeddings or the LM head), per matrix, by magnitude, Wanda, SparseGPT or at random; unstructured or
N:M. Masks go through the kit's one mask mechanism (:func:`kit.pruning.apply_masks`).

Wanda and SparseGPT need calibration activations. They are collected block by block, sequentially:
the inputs of block ``l`` are the outputs of the already pruned blocks ``0 .. l-1`` (as in both
papers), so one pruning costs about two forward passes over the calibration data.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from ..language import check_token_ids
from ..pruning import apply_masks, check_sparsity, effective_weight, is_masked
from ..validate import check_choice, check_float, check_int

LLM_CRITERIA = ("magnitude", "wanda", "sparsegpt", "random")
NEEDS_CALIBRATION = ("wanda", "sparsegpt")


@dataclass(frozen=True)
class Pattern:
    """Which weights may be pruned together: unstructured at ``sparsity``, or N:M (N pruned in every
    group of M consecutive weights along the input dimension, sparsity N/M)."""

    sparsity: float
    n: int | None = None
    m: int | None = None

    @property
    def structured(self) -> bool:
        return self.n is not None

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.structured else f"{self.sparsity:.0%} unstructured"


def pattern(sparsity: float | None = None, nm: str | tuple[int, int] | None = None) -> Pattern:
    """Check and build a :class:`Pattern` from a sparsity in [0, 1) or an N:M spec ('2:4' or (2, 4))."""
    if nm is None:
        if sparsity is None:
            raise ValueError("give a sparsity in [0, 1) or an N:M pattern such as '2:4'")
        return Pattern(check_sparsity(sparsity))
    if isinstance(nm, str):
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", nm)
        if not match:
            raise ValueError(f"nm must look like 'N:M' (e.g. '2:4'); got {nm!r}")
        nm = (int(match[1]), int(match[2]))
    if not isinstance(nm, tuple) or len(nm) != 2:
        raise TypeError(f"nm must be 'N:M' or a pair (N, M); got {nm!r}")
    n, m = check_int(nm[0], "N (of N:M)", low=1), check_int(nm[1], "M (of N:M)", low=2)
    if n >= m:
        raise ValueError(f"N:M needs N < M (N weights pruned in every group of M); got {n}:{m}")
    if sparsity is not None and not math.isclose(check_sparsity(sparsity), n / m):
        raise ValueError(f"sparsity {sparsity} contradicts N:M {n}:{m} (sparsity N/M = {n / m:g}); give one of them")
    return Pattern(n / m, n, m)


# ---------------------------------------------------------------- where the prunable layers are

def decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder blocks: the longest ModuleList whose every element holds a Linear, with its name."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        holds_linears = isinstance(module, nn.ModuleList) and len(module) and all(
            any(isinstance(m, nn.Linear) for m in block.modules()) for block in module)
        if holds_linears and (best is None or len(module) > len(best[1])):
            best = (name, module)
    if best is None:
        raise ValueError(f"model ({type(model).__name__}) has no decoder Linear layers: no ModuleList of blocks "
                         f"holding nn.Linear was found")
    return best


def decoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every nn.Linear inside the decoder blocks, by its name in ``model`` (the pruning targets)."""
    prefix, blocks = decoder_blocks(model)
    return {f"{prefix}.{i}.{n}": m for i, block in enumerate(blocks)
            for n, m in block.named_modules() if isinstance(m, nn.Linear)}


# ---------------------------------------------------------------- per-matrix masks (True = keep)

def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep-mask removing the k lowest scores of the whole tensor (ties broken by position)."""
    flat = scores.reshape(-1)
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k:
        # kthvalue is an order of magnitude faster than a full sort on large matrices
        threshold = torch.kthvalue(flat, k).values
        drop = flat < threshold
        ties = torch.nonzero(flat == threshold).squeeze(1)[: k - int(drop.sum())]
        drop[ties] = True
        keep = ~drop
    return keep.reshape(scores.shape)


def _lowest_per_row(scores: torch.Tensor, k: int) -> torch.Tensor:
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k:
        keep.scatter_(1, torch.argsort(scores, dim=1, stable=True)[:, :k], False)
    return keep


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask pruning the ``n`` lowest scores in every group of ``m`` consecutive inputs of each row."""
    rows, cols = scores.shape
    if cols % m:
        raise ValueError(f"N:M needs the input size ({cols}) to be a multiple of M ({m})")
    groups = scores.reshape(rows, cols // m, m)
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(2, torch.argsort(groups, dim=2, stable=True)[..., :n], False)
    return keep.reshape(rows, cols)


def magnitude_mask(weight: torch.Tensor, spec: Pattern) -> torch.Tensor:
    """Keep-mask by |W|, thresholded over the whole matrix (or per N:M group)."""
    scores = weight.abs()
    if spec.structured:
        return nm_mask(scores, spec.n, spec.m)
    return _lowest(scores, round(spec.sparsity * scores.numel()))


def random_mask(weight: torch.Tensor, spec: Pattern, generator: torch.Generator) -> torch.Tensor:
    """Keep-mask pruning uniformly random weights (the floor every criterion must beat)."""
    scores = torch.rand(weight.shape, generator=generator).to(weight.device)
    if spec.structured:
        return nm_mask(scores, spec.n, spec.m)
    return _lowest(scores, round(spec.sparsity * scores.numel()))


def wanda_mask(weight: torch.Tensor, input_norm: torch.Tensor, spec: Pattern) -> torch.Tensor:
    """Wanda: score |W_ij| * ||X_j||_2, compared within each output row (or N:M group); no weight update."""
    if input_norm.shape != (weight.shape[1],):
        raise ValueError(f"input_norm must have one entry per input feature ({weight.shape[1]}); "
                         f"got shape {tuple(input_norm.shape)}")
    scores = weight.abs() * input_norm.to(weight.dtype)[None, :]
    if spec.structured:
        return nm_mask(scores, spec.n, spec.m)
    return _lowest_per_row(scores, round(spec.sparsity * weight.shape[1]))


def sparsegpt_prune(weight: torch.Tensor, hessian: torch.Tensor, spec: Pattern, *, blocksize: int = 128,
                    damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT on one matrix: ``(new weight, keep-mask)``.

    Columns are visited left to right in blocks. With ``U`` the upper Cholesky factor of the dampened
    inverse Hessian (``H = 2 X X^T / n``), the mask in each block is chosen by the OBS saliency
    ``w_ij^2 / U_jj^2``, and the error of every pruned weight is spread over the columns to its right
    along row ``j`` of ``U`` (sequential OBS updates without re-inverting ``H``).
    """
    blocksize = check_int(blocksize, "blocksize", low=1)
    damp = check_float(damp, "damp", low=0.0, low_open=True)
    _rows, cols = weight.shape
    if hessian.shape != (cols, cols):
        raise ValueError(f"hessian must be {cols}x{cols} for a weight with {cols} inputs; got {tuple(hessian.shape)}")
    if spec.structured and blocksize % spec.m:
        blocksize = spec.m * max(1, blocksize // spec.m)
    w = weight.detach().clone().float()
    h = hessian.detach().clone().float()
    dead = torch.diag(h) == 0  # inputs never active: their weights cannot matter, drop them
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * torch.diag(h).mean() * torch.eye(cols, device=h.device)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    pruned = torch.zeros_like(w, dtype=torch.bool)
    total_k = round(spec.sparsity * w.numel())
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        q1, err1 = torch.zeros_like(w1), torch.zeros_like(w1)
        d1 = torch.diag(hinv1)
        if spec.structured:
            p1 = torch.zeros_like(w1, dtype=torch.bool)
        else:
            # split the matrix's count over blocks by cumulative rounding, so the total is exact
            k = round(total_k * i2 / cols) - round(total_k * i1 / cols)
            p1 = ~_lowest(w1**2 / d1[None, :] ** 2, k)
        for i in range(i2 - i1):
            if spec.structured and i % spec.m == 0:
                group = w1[:, i : i + spec.m] ** 2 / d1[None, i : i + spec.m] ** 2
                p1[:, i : i + spec.m] = ~nm_mask(group, spec.n, spec.m)
            col = w1[:, i]
            q = torch.where(p1[:, i], torch.zeros_like(col), col)
            q1[:, i] = q
            err = (col - q) / d1[i]
            w1[:, i:] -= err[:, None] * hinv1[i, i:][None, :]
            err1[:, i] = err
        w[:, i1:i2] = q1
        pruned[:, i1:i2] = p1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    keep = ~pruned
    return (w * keep).to(weight.dtype), keep


# ---------------------------------------------------------------- calibration, block by block

class _Captured(Exception):
    """Stops the forward pass once the first block's inputs are captured."""


def _first_block_inputs(model: nn.Module, block: nn.Module, rows: torch.Tensor, batch_size: int,
                        progress: bool = False) -> list[tuple[tuple, dict]]:
    captured: list[tuple[tuple, dict]] = []

    def grab(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append((args, kwargs))
        raise _Captured

    handle = block.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        for start in range(0, len(rows), batch_size):
            with contextlib.suppress(_Captured):
                model(rows[start : start + batch_size])
    finally:
        handle.remove()
    return captured


def _run_block(block: nn.Module, inputs: list[tuple[tuple, dict]]) -> list[tuple[tuple, dict]]:
    outputs = []
    for args, kwargs in inputs:
        out = block(*args, **kwargs)
        hidden = out[0] if isinstance(out, (tuple, list)) else out
        if args:
            outputs.append(((hidden, *args[1:]), kwargs))
        else:
            outputs.append(((), {**kwargs, "hidden_states": hidden}))
    return outputs


class _Statistics:
    """Per-Linear input statistics over calibration tokens: squared norms (Wanda), X^T X (SparseGPT)."""

    def __init__(self, linears: dict[str, nn.Linear], hessian: bool) -> None:
        self.sq = {n: torch.zeros(m.in_features, device=m.weight.device) for n, m in linears.items()}
        self.xtx = ({n: torch.zeros(m.in_features, m.in_features, device=m.weight.device)
                     for n, m in linears.items()} if hessian else {})
        self.count = dict.fromkeys(linears, 0)
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in linears.items()]

    def _hook(self, name: str) -> Callable:
        def record(_module: nn.Module, args: tuple, _output: torch.Tensor) -> None:
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            self.sq[name] += (x * x).sum(0)
            if self.xtx:
                self.xtx[name] += x.T @ x
            self.count[name] += x.shape[0]
        return record

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def hessian(self, name: str) -> torch.Tensor:
        return 2.0 * self.xtx[name] / max(self.count[name], 1)


def _weight_param(module: nn.Linear) -> torch.Tensor:
    return module.weight_orig if is_masked(module) else module.weight


@torch.no_grad()
def prune_llm(model: nn.Module, sparsity: float | None = None, *, method: str = "magnitude",
              nm: str | tuple[int, int] | None = None, calibration: torch.Tensor | None = None,
              batch_size: int = 8, seed: int = 0, blocksize: int = 128, damp: float = 0.01,
              progress: bool = True) -> dict[str, torch.Tensor]:
    """Prune every decoder Linear of ``model`` in place; returns the keep-masks by module name.

    ``model`` maps token ids to logits (e.g. :class:`kit.language.CausalLM`). ``calibration`` is a
    ``(sequences, tokens)`` tensor of ids, needed by Wanda and SparseGPT. SparseGPT also updates the
    remaining weights.
    """
    method = check_choice(method, "method", LLM_CRITERIA)
    spec = pattern(sparsity, nm)
    batch_size = check_int(batch_size, "batch_size", low=1)
    prefix, blocks = decoder_blocks(model)
    if method in NEEDS_CALIBRATION and (
            not isinstance(calibration, torch.Tensor) or calibration.dim() != 2 or not len(calibration)
            or calibration.is_floating_point() or calibration.is_complex()):
        raise ValueError(f"method {method!r} needs calibration token ids: a non-empty integer "
                         f"(sequences, tokens) tensor; got {getattr(calibration, 'dtype', type(calibration).__name__)}")
    if method in NEEDS_CALIBRATION:
        check_token_ids(calibration, model, "calibration")
    if spec.structured:
        for name, linear in decoder_linears(model).items():
            if linear.in_features % spec.m:
                raise ValueError(f"N:M {spec}: layer {name} has {linear.in_features} inputs, not a multiple of "
                                 f"M = {spec.m}")
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = (_first_block_inputs(model, blocks[0], calibration.to(device), batch_size, progress)
              if method in NEEDS_CALIBRATION else [])
    masks: dict[str, torch.Tensor] = {}
    for b, block in enumerate(tqdm(blocks, desc=f"prune {method} {spec}", disable=not progress, leave=False)):
        linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        stats = None
        if method in NEEDS_CALIBRATION:
            stats = _Statistics(linears, hessian=method == "sparsegpt")
            try:
                _run_block(block, inputs)
            finally:
                stats.remove()
        block_masks = {}
        for n, linear in linears.items():
            weight = effective_weight(linear)
            if method == "magnitude":
                keep = magnitude_mask(weight, spec)
            elif method == "random":
                keep = random_mask(weight, spec, gen)
            elif method == "wanda":
                keep = wanda_mask(weight, stats.sq[n].sqrt(), spec)
            else:
                new, keep = sparsegpt_prune(weight, stats.hessian(n), spec, blocksize=blocksize, damp=damp)
                _weight_param(linear).copy_(new)
            block_masks[n] = keep
        apply_masks(block, block_masks)
        masks.update({f"{prefix}.{b}.{n}": keep for n, keep in block_masks.items()})
        if method in NEEDS_CALIBRATION and b + 1 < len(blocks):
            inputs = _run_block(block, inputs)  # the next block sees this block's pruned outputs
    model.train(was_training)
    return masks


def decoder_sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all decoder Linears."""
    weights = [effective_weight(m) for m in decoder_linears(model).values()]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
