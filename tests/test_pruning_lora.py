"""kit.perp.lora, kit.perp.retraining and kit.memory: sparsity-preserving LoRA, the choice of trained
parameters, PERP retraining and peak memory.

The custom autograd function of LoRALinear is checked against plain autograd through an explicit
W_eff (float64), merging against the adapted model's outputs and the masks, retraining against
parameter snapshots (frozen ones bit for bit) and counts computed from the layer shapes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from kit.language import ByteTokenizer, TokenWindows, tiny_llama, tokenize
from kit.memory import PeakMemory
from kit.perp.llm_pruning import decoder_linears, decoder_sparsity, prune_llm
from kit.perp.lora import LoRALinear, add_lora, merge, set_trainable, trainable_parameters
from kit.perp.retraining import StepStats, retrain
from kit.pruning import apply_masks, effective_weight, masks_of

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings "
        "and arrows of outrageous fortune, or to take arms against a sea of troubles. ") * 12


def pruned_llama(seed: int = 0) -> nn.Module:
    model = tiny_llama(seed=seed)
    prune_llm(model, 0.5, method="magnitude", progress=False)
    return model


def windows() -> TokenWindows:
    return TokenWindows.from_ids(tokenize(ByteTokenizer(), [TEXT]), 32)


def randomize_adapters(model: nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_A.copy_(torch.randn(module.lora_A.shape, generator=g, dtype=module.lora_A.dtype) * scale)
                module.lora_B.copy_(torch.randn(module.lora_B.shape, generator=g, dtype=module.lora_B.dtype) * scale)


# --------------------------------------------------------------------------------------- the custom autograd

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("kind", ["mask", "scale"])
def test_lora_linear_matches_plain_autograd_through_an_explicit_effective_weight(kind, masked, bias):
    torch.manual_seed(0)
    holder = nn.Sequential(nn.Linear(7, 5, bias=bias).double())
    base = holder[0]
    dense = base.weight.detach().clone()
    mask = torch.rand(5, 7) > 0.4
    if masked:
        apply_masks(holder, {"0": mask})
    m = mask.double() if masked else torch.ones(5, 7, dtype=torch.float64)
    lora = LoRALinear(base, rank=3, alpha=6.0, kind=kind, generator=torch.Generator().manual_seed(1))
    randomize_adapters(lora, seed=2, scale=0.7)  # nonzero B, so every gradient path is exercised
    assert bool((lora.lora_B != 0).all())

    x = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 5, 5, dtype=torch.float64)  # a loss whose gradient differs per output
    y = lora(x)
    (y * weights).sum().backward()

    # reference: plain autograd through W_eff written out
    a = lora.lora_A.detach().clone().requires_grad_()
    b = lora.lora_B.detach().clone().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    w_eff = m * (dense + (6.0 / 3) * (b @ a)) if kind == "mask" else m * dense * (b @ a)
    y_ref = xr @ w_eff.T
    if bias:
        bias_ref = base.bias.detach().clone().requires_grad_()
        y_ref = y_ref + bias_ref
    (y_ref * weights).sum().backward()

    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lora.lora_A.grad, a.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lora.lora_B.grad, b.grad, rtol=1e-12, atol=1e-12)
    if bias:
        torch.testing.assert_close(base.bias.grad, bias_ref.grad, rtol=1e-12, atol=1e-12)
    weight_param = base.weight_orig if masked else base.weight
    assert weight_param.grad is None  # the base weight is frozen inside the adapter
    torch.testing.assert_close(lora.merged_weight(), w_eff.detach(), rtol=1e-12, atol=1e-12)


def test_lora_linear_saves_no_effective_weight_for_backward():
    holder = nn.Sequential(nn.Linear(64, 48).double())
    apply_masks(holder, {"0": torch.rand(48, 64) > 0.5})
    lora = LoRALinear(holder[0], rank=2)
    saved = []
    x = torch.randn(3, 64, dtype=torch.float64, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(tuple(t.shape)) or t, lambda t: t):
        lora(x).sum().backward()
    # the input, weight, mask and the two factors: no third (48, 64) tensor (W_eff) is kept
    assert sorted(saved) == sorted([(3, 64), (48, 64), (48, 64), (2, 64), (48, 2)])


# --------------------------------------------------------------------------------------- initialisation

@pytest.mark.parametrize("masked", [True, False])
def test_mask_lora_starts_at_the_base_output(masked):
    torch.manual_seed(0)
    holder = nn.Sequential(nn.Linear(16, 12))
    if masked:
        apply_masks(holder, {"0": torch.rand(12, 16) > 0.5})
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        expect = holder(x)
        lora = LoRALinear(holder[0], rank=4, alpha=8.0, kind="mask")
        got = lora(x)
    assert bool((lora.lora_B == 0).all()) and bool((lora.lora_A != 0).all())
    assert float(lora.lora_A.detach().abs().max()) <= 1 / 16**0.5  # torch's Linear bound for A
    torch.testing.assert_close(got, expect, rtol=0, atol=0)


@pytest.mark.parametrize("rank", [1, 4, 16])
def test_scale_lora_starts_with_an_all_ones_product_and_distinct_components(rank):
    torch.manual_seed(0)
    holder = nn.Sequential(nn.Linear(20, 12))
    apply_masks(holder, {"0": torch.rand(12, 20) > 0.5})
    x = torch.randn(2, 5, 20)
    with torch.no_grad():
        expect = holder(x)
        lora = LoRALinear(holder[0], rank=rank, kind="scale", generator=torch.Generator().manual_seed(3))
        got = lora(x)
        product = lora.lora_B @ lora.lora_A
    torch.testing.assert_close(product, torch.ones(12, 20), rtol=0, atol=1e-6)
    torch.testing.assert_close(got, expect, rtol=1e-6, atol=1e-6)
    a = lora.lora_A.detach()
    for i in range(rank):
        for j in range(i):
            assert not torch.allclose(a[i], a[j]), (i, j)


def test_lora_linear_follows_the_base_dtype_and_device():
    lora = LoRALinear(nn.Linear(6, 4).double(), rank=2, kind="scale")
    assert lora.lora_A.dtype == lora.lora_B.dtype == torch.float64
    assert lora.scale == 32.0 / 2 and "rank=2" in repr(lora)


# --------------------------------------------------------------------------------------- merge

@pytest.mark.parametrize("kind", ["mask", "scale"])
def test_merge_keeps_every_pruned_weight_at_zero_and_the_outputs(kind):
    model = pruned_llama()
    masks = masks_of(model)
    add_lora(model, rank=4, alpha=8.0, kind=kind, seed=0)
    randomize_adapters(model, seed=1, scale=0.3 if kind == "mask" else 1.0)
    wrapped = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    assert set(wrapped) == set(masks)
    # the merged weights, computed here before merging: M * (W + s B A) or M * W * (B A)
    expect = {}
    with torch.no_grad():
        for name, lora in wrapped.items():
            w, m = lora.base.weight_orig, lora.base.weight_mask
            ba = lora.lora_B @ lora.lora_A
            expect[name] = m * (w + 2.0 * ba) if kind == "mask" else m * w * ba
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids)
    assert merge(model) is model
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert masks_of(model).keys() == masks.keys()
    assert all(torch.equal(masks_of(model)[n], masks[n]) for n in masks)
    assert decoder_sparsity(model) == 0.5
    for name, module in decoder_linears(model).items():
        assert bool((module.weight_orig[~masks[name]] == 0).all())
        assert bool((effective_weight(module)[~masks[name]] == 0).all())
        torch.testing.assert_close(effective_weight(module), expect[name], rtol=0, atol=0)
    with torch.no_grad():
        after = model(ids)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(after, tiny_llama(seed=0)(ids))  # the adapters did change the model


# --------------------------------------------------------------------------------------- set_trainable

def trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_set_trainable_picks_exactly_the_chosen_groups():
    model = tiny_llama(seed=0)
    norms = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, LlamaRMSNorm)}
    assert len(norms) == 5  # two per block and the final norm
    assert set(set_trainable(model, ["norms"])) == trainable_names(model) == norms
    with pytest.raises(ValueError, match="select no parameters"):  # Llama has no biases
        set_trainable(model, ["biases"])
    assert trainable_names(model) == norms  # the refused call changed nothing
    everything = {n for n, _ in model.named_parameters()}
    assert set(set_trainable(model, ["all"])) == trainable_names(model) == everything
    add_lora(model, rank=2)
    adapters = {n for n, _ in model.named_parameters() if n.endswith(("lora_A", "lora_B"))}
    assert len(adapters) == 2 * 14
    assert set(set_trainable(model, ["lora"])) == trainable_names(model) == adapters
    assert set(set_trainable(model, ["lora", "norms"])) == trainable_names(model) == adapters | norms


def test_set_trainable_on_biases_of_a_model_with_biases():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2, bias=False))
    assert set(set_trainable(model, ("biases",))) == {"0.bias", "1.bias"}
    assert set(set_trainable(model, ("norms",))) == {"1.weight", "1.bias"}


def test_trainable_parameters_counts_match_a_manual_sum():
    model = tiny_llama(seed=0)
    add_lora(model, rank=4)
    set_trainable(model, ["norms", "lora"])
    counted = trainable_parameters(model)
    params = {id(p): p for p in model.parameters()}.values()  # the tied embedding counted once
    assert counted.trainable == sum(p.numel() for p in params if p.requires_grad)
    assert counted.total == sum(p.numel() for p in params)
    # from the shapes: 5 norms of 32; rank 4 adapters, 4 (32 -> 32) + 2 (32 -> 64) + 1 (64 -> 32) per block
    assert counted.trainable == 5 * 32 + 2 * 4 * (4 * 64 + 3 * 96)
    assert counted.percent == pytest.approx(100 * counted.trainable / counted.total)


def test_set_trainable_rejects_bad_groups():
    model = tiny_llama(seed=0, layers=1)
    with pytest.raises(ValueError, match="add_lora"):
        set_trainable(model, ["lora"])
    with pytest.raises(ValueError, match="biases, norms, lora, all"):
        set_trainable(model, ["heads"])
    with pytest.raises(ValueError, match="at least one"):
        set_trainable(model, [])


# --------------------------------------------------------------------------------------- retrain

def snapshot(model: nn.Module) -> dict[int, tuple[nn.Parameter, torch.Tensor]]:
    """Each parameter object with a copy of its values (the objects survive add_lora's wrapping)."""
    return {id(p): (p, p.detach().clone()) for p in model.parameters()}


def test_perp_retrain_changes_only_norms_and_adapters_and_keeps_masks():
    model = pruned_llama()
    before = snapshot(model)
    norms = {id(p) for m in model.modules() if isinstance(m, LlamaRMSNorm) for p in m.parameters()}
    linears = decoder_linears(model)
    masks = {n: m.weight_mask.detach().clone() for n, m in linears.items()}
    result = retrain(model, windows(), steps=5, groups=("norms", "lora"), rank=4, lr=1e-2, batch_size=4,
                     progress=False)
    assert len(result.losses) == 5 == len(result.seconds) and result.groups == ("norms", "lora")
    for key, (param, old) in before.items():
        if key in norms:
            assert not torch.equal(param, old)
        else:
            assert torch.equal(param, old)  # frozen: bit for bit
    for name, module in linears.items():
        assert torch.equal(module.weight_mask, masks[name])
    adapters = [m for m in model.modules() if isinstance(m, LoRALinear)]
    assert len(adapters) == 14 and all(not bool((m.lora_B == 0).all()) for m in adapters)  # the adapters trained
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert result.trainable.trainable == trained == 5 * 32 + 2 * 4 * (4 * 64 + 3 * 96)
    assert result.trainable.percent == pytest.approx(100 * trained / total)
    assert result.to_dict()["steps"] == 5 and result.settings["rank"] == 4
    merge(model)
    assert decoder_sparsity(model) == 0.5


def test_retrain_is_reproducible():
    data = windows()
    runs = [retrain(pruned_llama(), data, steps=4, groups=("norms", "lora"), rank=4, lr=1e-2, batch_size=4,
                    progress=False, seed=3).losses for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0][-1] < runs[0][0]  # a learning rate of 1e-2 lowers the loss on this repetitive text


def test_full_retraining_keeps_the_pruned_weights_at_zero():
    model = pruned_llama()
    linears = decoder_linears(model)
    masks = {n: m.weight_mask.detach().bool().clone() for n, m in linears.items()}
    before = {n: m.weight_orig.detach().clone() for n, m in linears.items()}
    result = retrain(model, windows(), steps=5, groups=("all",), lr=1e-2, batch_size=4, progress=False)
    assert result.trainable.percent == 100.0 and len(result.losses) == 5
    assert decoder_sparsity(model) == 0.5
    with torch.no_grad():
        model(torch.zeros(1, 4, dtype=torch.long))  # the forward pass the pruned weights would show up in
    for name, module in linears.items():
        assert torch.equal(module.weight_mask.bool(), masks[name])
        assert bool((module.weight_orig[~masks[name]] == 0).all())
        assert bool((module.weight[~masks[name]] == 0).all())
        assert not torch.equal(module.weight_orig[masks[name]], before[name][masks[name]])  # it did train


def test_retrain_and_step_stats_reject_bad_input():
    with pytest.raises(ValueError, match="unknown group 'heads'"):
        retrain(pruned_llama(), windows(), steps=2, groups=("heads",), progress=False)
    with pytest.raises(ValueError, match="steps"):
        retrain(pruned_llama(), windows(), steps=0, progress=False)
    with pytest.raises(ValueError, match="steps"):
        StepStats(0)


# --------------------------------------------------------------------------------------- bad LoRA input

@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"rank": 0}, ValueError, "rank must lie in"),
    ({"alpha": 0.0}, ValueError, "alpha must lie in"),
    ({"kind": "foo"}, ValueError, "unknown kind 'foo'; choose one of mask, scale"),
    ({"rank": 2.5}, TypeError, "rank must be an int"),
])
def test_lora_rejects_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        LoRALinear(nn.Linear(4, 4), **kwargs)
    model = tiny_llama(seed=0, layers=1)
    with pytest.raises(error, match=match):
        add_lora(model, **kwargs)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())


def test_lora_rejects_a_bad_base_and_unknown_targets():
    with pytest.raises(TypeError, match=r"base must be an nn\.Linear"):
        LoRALinear(nn.Conv2d(1, 1, 3))
    model = tiny_llama(seed=0, layers=1)
    with pytest.raises(ValueError, match=r"unknown: lm\.model\.layers\.0\.self_attn\.nope"):
        add_lora(model, targets=["lm.model.layers.0.self_attn.q_proj", "lm.model.layers.0.self_attn.nope"])
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # checked before wrapping anything
    assert add_lora(model, targets=["lm.model.layers.0.mlp.up_proj"]) == ["lm.model.layers.0.mlp.up_proj"]
    assert isinstance(model.get_submodule("lm.model.layers.0.mlp.up_proj"), LoRALinear)
    assert not isinstance(model.get_submodule("lm.model.layers.0.mlp.down_proj"), LoRALinear)


# --------------------------------------------------------------------------------------- peak memory

def test_peak_memory_sees_a_200mb_tensor_on_the_cpu():
    with PeakMemory("cpu") as memory:
        big = torch.ones(50_000_000)  # 200 MB, every page written
        big += 1
        del big
    if not memory.supported:
        pytest.skip("no /proc/self/clear_refs: the CPU peak cannot be reset here")
    assert memory.baseline_bytes > 0 and memory.peak_bytes >= memory.baseline_bytes
    assert memory.extra_bytes >= 150e6
    assert memory.extra_bytes < 400e6  # the peak of this block, not of earlier work in the process


def test_peak_memory_without_measurements_reports_none():
    memory = PeakMemory("cpu")
    assert memory.extra_bytes is None and memory.peak_bytes is None


def test_contradictory_or_empty_choices_are_refused_before_training():
    model = tiny_llama(seed=0)
    with pytest.raises(ValueError, match="select no parameters"):
        set_trainable(model, ["biases"])  # Llama has no biases
    add_lora(model, rank=2, alpha=4.0)
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        add_lora(model, rank=2, alpha=4.0)
    with pytest.raises(ValueError, match="group 'all'"):
        set_trainable(model, ["all", "lora"])
