"""Bad input to kit.perp, kit.language and notebook 05's recipe: refused before any side effect (the model keeps
its parameters, flags and modules), zero is a value and not "use the default", token ids outside the vocabulary
and mistyped model folders get clear errors, and nothing reaches for the network unless asked."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kit.language import ByteTokenizer, TokenWindows, load_causal_lm, perplexity, tiny_llama, tokenize
from kit.perp import LoRALinear, prune_llm, retrain
from kit.recipes import perp as pe

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "Now is the winter of our discontent made glorious summer by this sun of York. " * 8


def windows(window: int = 16) -> TokenWindows:
    return TokenWindows.from_ids(tokenize(ByteTokenizer(), [TEXT]), window)


def fingerprint(model: nn.Module) -> tuple:
    return (tuple(type(m).__name__ for m in model.modules()),
            tuple((n, p.requires_grad, p.detach().clone()) for n, p in model.named_parameters()))


def same(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and len(a[1]) == len(b[1]) and all(
        x[0] == y[0] and x[1] == y[1] and torch.equal(x[2], y[2]) for x, y in zip(a[1], b[1], strict=True))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"groups": ("norms", "colours")}, ValueError, "unknown group 'colours'"),
    ({"groups": "lora"}, TypeError, "sequence of group names"),
    ({"groups": ()}, ValueError, "at least one"),
    ({"groups": ("all", "lora")}, ValueError, "exclude each other"),
    ({"batch_size": 0}, ValueError, r"batch_size must lie in \[1"),
    ({"lr": -1.0}, ValueError, "lr must lie in"),
    ({"lr": 0.0}, ValueError, "lr must lie in"),
    ({"rank": 0}, ValueError, r"rank must lie in \[1"),
    ({"lora_kind": "wide"}, ValueError, "lora_kind"),
    ({"steps": 0}, ValueError, r"steps must lie in \[1"),
    ({"checkpointing": "yes"}, TypeError, "checkpointing"),
])
def test_retrain_refuses_bad_arguments_before_touching_the_model(kwargs, error, match):
    model = tiny_llama(seed=0)
    before = fingerprint(model)
    args = dict(steps=2, groups=("norms", "lora"), rank=2, batch_size=2, progress=False)
    with pytest.raises(error, match=match):
        retrain(model, windows(), **{**args, **kwargs})
    assert same(before, fingerprint(model))
    assert not any(isinstance(m, LoRALinear) for m in model.modules())


def test_the_recipe_treats_zero_as_a_value_not_as_the_default():
    setup = pe.load("smoke")
    model = tiny_llama(seed=0)
    for kwargs, match in (({"steps": 0}, "steps"), ({"rank": 0}, "rank"), ({"lr": 0.0}, "lr")):
        with pytest.raises(ValueError, match=match):
            pe.perp(setup, model, progress=False, **kwargs)


def test_token_ids_outside_the_vocabulary_are_named():
    model = tiny_llama(vocab_size=64, seed=0)  # byte ids go up to 255
    with pytest.raises(ValueError, match=r"windows holds token id \d+, outside the model's vocabulary \[0, 64\)"):
        perplexity(model, windows())
    before = fingerprint(model)
    with pytest.raises(ValueError, match=r"calibration holds token id \d+, outside .* \[0, 64\)"):
        prune_llm(model, 0.5, method="wanda", calibration=windows().rows[:2, :-1], progress=False)
    assert same(before, fingerprint(model))


def test_a_mistyped_local_folder_is_a_file_not_found_error_without_any_network(no_network, tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folder at /nonexistent/folder"):
        load_causal_lm("/nonexistent/folder")
    with pytest.raises(FileNotFoundError, match="no model folder"):
        load_causal_lm(tmp_path / "missing")
    # 'models/my-smollm' could be a hub id: only the local cache is asked at this budget, never the hub
    with pytest.raises(FileNotFoundError, match="only at the gpu budget or with allow_download=True"):
        load_causal_lm("models/my-smollm", budget="smoke")
    with pytest.raises(TypeError, match="allow_download"):
        load_causal_lm("gpt2", allow_download="yes")
