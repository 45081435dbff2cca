"""kit.hub: a saved artefact loads back as the same model (weights, exact masks, outputs), from a folder or from a
hub id through a hub cache the test writes (offline); a PERP-retrained language model is saved as adapters, masks
and changed tensors on a base the recipe rebuilds; bad artefacts are refused and nothing is half-loaded."""

from __future__ import annotations

import json
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import kit
from kit import frankwolfe, hub
from kit.language import CausalLM, TokenWindows, tiny_llama
from kit.models import MLP
from kit.operators import NPR, Heat
from kit.perp import add_lora, decoder_sparsity, merge, prune_llm, retrain
from kit.pruning import apply_masks, global_magnitude_masks, masks_of


@pytest.fixture()
def pruned():
    torch.manual_seed(0)
    model = MLP((1, 8, 8), widths=(16,), num_classes=3)
    apply_masks(model, global_magnitude_masks(model, 0.75))
    return model


def save_pruned(model, folder):
    return hub.save(model, folder, build=hub.recipe("kit.models:MLP", input_shape=[1, 8, 8], widths=[16],
                                                    num_classes=3),
                    method="imp", parameters={"sparsity": 0.75, "schedule": "ALLR"}, metrics={"test_accuracy": 0.91})


def test_a_pruned_model_loads_back_with_exact_masks_and_outputs(tmp_path, pruned):
    folder = save_pruned(pruned, tmp_path / "imp")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    umask = os.umask(0)
    os.umask(umask)  # written for sharing (the staging folder's private 0700 is not kept)
    assert [f.stat().st_mode & 0o777 for f in (folder, folder / "model.safetensors")] == [0o777 & ~umask,
                                                                                       0o666 & ~umask]
    loaded = hub.load(folder)
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(loaded.model(x), pruned(x))
    before, after = masks_of(pruned), masks_of(loaded.model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert loaded.config["sparsity"] == pytest.approx(0.75, abs=0.01) and loaded.config["method"] == "imp"
    assert "library_name: kit" in loaded.card and "| test_accuracy | 0.91 |" in loaded.card
    # the masks keep working: a training step leaves pruned weights at zero
    loaded.model(x).sum().backward()
    with torch.no_grad():
        for p in loaded.model.parameters():
            p -= 0.1 * p.grad
    assert all(torch.equal(m.weight[after[n] == 0], torch.zeros_like(m.weight[after[n] == 0]))
               for n, m in loaded.model.named_modules() if n in after)


def test_nested_recipes_rebuild_an_npr_operator(tmp_path):
    torch.manual_seed(1)
    npr = NPR(Heat(0.05), sensors=8, modes=6, width=8, rank=2, hidden=(16,))
    build = hub.recipe("kit.operators:NPR", problem=hub.recipe("kit.operators:Heat", alpha=0.05), sensors=8, modes=6,
                       width=8, rank=2, hidden=[16])
    loaded = hub.load(hub.save(npr, tmp_path / "npr", build=build, method="npr", metrics={"heat_error": 0.01}))
    coeffs, x, t = torch.randn(2, 6), torch.rand(2, 10), torch.rand(2, 10)
    assert torch.equal(loaded.model(coeffs, x, t), npr(coeffs, x, t))
    assert loaded.model.problem.alpha == 0.05


def test_a_hub_id_loads_from_the_hub_cache_offline(tmp_path, pruned, monkeypatch):
    source = save_pruned(pruned, tmp_path / "source")
    cache = tmp_path / "cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--kit-examples--tiny-imp" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in source.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (cache / "models--kit-examples--tiny-imp" / "refs").mkdir()
    (cache / "models--kit-examples--tiny-imp" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = hub.load("kit-examples/tiny-imp", cache_dir=cache)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(loaded.model(x), pruned(x)) and loaded.folder == snapshot


def test_bad_artefacts_are_refused_with_a_reason(tmp_path, pruned):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"not a kit artefact: it lacks model\.safetensors, config\.json"):
        hub.load(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        hub.load(tmp_path / "nowhere")
    folder = save_pruned(pruned, tmp_path / "a")
    config = json.loads((folder / "config.json").read_text())

    def write(**changes):
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    write(format="someone-else/1")
    with pytest.raises(ValueError, match="not a kit artefact"):
        hub.load(folder)
    write(kit_version="9.0.0")
    with pytest.raises(ValueError, match=r"written by kit 9\.0\.0"):
        hub.load(folder)
    write(model={"build": "os:system", "kwargs": {"command": "true"}})
    with pytest.raises(ValueError, match="outside the kit"):
        hub.load(folder)
    write()
    state = load_file(str(folder / "model.safetensors"))
    key = next(k for k in state if k.endswith("weight_mask"))
    bad = dict(state)
    bad[key] = state[key][:, :-1].contiguous()
    save_file(bad, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="does not match the weights"):
        hub.load(folder)
    bad[key] = torch.full_like(state[key], 0.5)
    save_file(bad, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="other than 0 and 1"):
        hub.load(folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        hub.load(folder)


def test_bad_input_to_save_writes_nothing(tmp_path, pruned):
    good = hub.recipe("kit.models:MLP", input_shape=[1, 8, 8], widths=[16], num_classes=3)
    with pytest.raises(TypeError, match="JSON"):
        hub.save(pruned, tmp_path / "x", build=good, method="imp", parameters={"schedule": object()})
    with pytest.raises(ValueError, match="outside the kit"):
        hub.recipe("torch.nn:Linear", in_features=2, out_features=2)
    with pytest.raises(ValueError, match="method"):
        hub.save(pruned, tmp_path / "x", build=good, method="")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        hub.save("model", tmp_path / "x", build=good, method="imp")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))
    assert kit.hub is hub


def test_kit_models_and_problems_remember_their_recipe(tmp_path):
    model = kit.models.create("mlp", (1, 8, 8), 3, widths=(16, 4))
    assert hub.recipe_of(model) == {"build": "kit.models:MLP", "kwargs": {"input_shape": [1, 8, 8],
                                                                           "num_classes": 3, "widths": [16, 4]}}
    npr = NPR(Heat(0.05), sensors=8, modes=6, width=8, rank=2, hidden=(16,))
    assert hub.recipe_of(npr)["kwargs"]["problem"] == {"build": "kit.operators.problems:Heat",
                                                       "kwargs": {"alpha": 0.05}}
    loaded = hub.load(hub.save(model, tmp_path / "auto", method="dense"))
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(loaded.model(x), model(x))
    with pytest.raises(TypeError, match="does not remember"):
        hub.save(torch.nn.Linear(2, 2), tmp_path / "plain", method="dense")
    assert not (tmp_path / "plain").exists()


# ---------------------------------------------------------------- PERP adapters on a language model


@pytest.fixture()
def perp_model(device):
    """A tiny random Llama pruned by Wanda and retrained by PERP (norms + MaskLoRA), adapters not merged."""
    ids = torch.randint(0, 64, (8, 17), generator=torch.Generator().manual_seed(0))
    model = tiny_llama(vocab_size=64, hidden=16, layers=2, heads=2, seed=3).to(device)
    prune_llm(model, 0.5, method="wanda", calibration=ids[:4, :16].to(device), progress=False)
    retrain(model, TokenWindows(ids), steps=3, groups=("norms", "lora"), rank=2, alpha=4.0, lr=1e-2, batch_size=2,
            progress=False, device=device)
    return model, ids[:2, :12].to(device)


def test_perp_adapters_are_saved_without_the_base_weights_and_load_back_exactly(tmp_path, perp_model, device):
    model, x = perp_model
    folder = hub.save(model, tmp_path / "perp", method="perp", metrics={"perplexity": 12.5})
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == {"build": "kit.language:tiny_llama",
                               "kwargs": {"vocab_size": 64, "hidden": 16, "layers": 2, "heads": 2, "seed": 3}}
    # stored: exactly what PERP trained (adapters and norm weights); the pruned weights come from the base
    trained = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trained and config["stored"] == trained
    state = load_file(str(folder / "model.safetensors"))
    assert not any(k.endswith("weight_orig") for k in state)
    masks = masks_of(model)
    assert len(config["masks"]) == len(masks) == 2 * 7
    for key in config["masks"]:  # eight mask entries to a byte
        assert state[key].dtype == torch.uint8 and state[key].numel() == -(-masks[key[: -len(".weight_mask")]].numel()
                                                                         // 8)
    assert "LoRA of rank 2" in (folder / "README.md").read_text()
    loaded = hub.load(folder, device=device)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    after = masks_of(loaded.model)
    assert after.keys() == masks.keys() and all(torch.equal(after[k].cpu(), masks[k].cpu()) for k in masks)
    merge(model), merge(loaded.model)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert decoder_sparsity(loaded.model) == 0.5


def test_sparsegpt_weights_are_stored_because_the_base_cannot_give_them(tmp_path, device):
    ids = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(1))
    model = tiny_llama(vocab_size=64, hidden=16, layers=1, heads=2, seed=0).to(device)
    prune_llm(model, 0.5, method="sparsegpt", calibration=ids.to(device), progress=False)
    add_lora(model, rank=2)
    config = json.loads((hub.save(model, tmp_path / "sgpt", method="perp") / "config.json").read_text())
    assert {k for k in config["stored"] if k.endswith("weight_orig")} == {
        f"{name}.base.weight_orig" for name in config["adapters"]["targets"]}
    assert torch.equal(hub.load(tmp_path / "sgpt", device=device).model(ids[:1].to(device)), model(ids[:1].to(device)))


def test_a_base_at_hand_gives_the_same_artefact_as_a_rebuilt_one(tmp_path, perp_model):
    model, _ = perp_model
    rebuilt = hub.save(model, tmp_path / "rebuilt", method="perp")
    at_hand = hub.save(model, tmp_path / "at_hand", method="perp",
                       base=tiny_llama(vocab_size=64, hidden=16, layers=2, heads=2, seed=3))
    assert (rebuilt / "config.json").read_text() == (at_hand / "config.json").read_text()
    a, b = load_file(str(rebuilt / "model.safetensors")), load_file(str(at_hand / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="not by the model's recipe"):
        hub.save(model, tmp_path / "x", method="perp", base=tiny_llama(vocab_size=64, hidden=16, layers=2, heads=2))
    with pytest.raises(ValueError, match="only for models with PERP adapters"):
        hub.save(tiny_llama(), tmp_path / "x", method="dense", base=tiny_llama())
    with pytest.raises(TypeError, match="does not remember"):
        hub.save(CausalLM(tiny_llama().lm), tmp_path / "x", method="dense")
    assert not (tmp_path / "x").exists()


def test_an_adapter_artefact_on_another_base_or_tampered_is_refused(tmp_path, perp_model):
    model, _ = perp_model
    folder = hub.save(model, tmp_path / "perp", method="perp")
    config = json.loads((folder / "config.json").read_text())
    state = load_file(str(folder / "model.safetensors"))

    def write(config=config, state=state):
        (folder / "config.json").write_text(json.dumps(config))
        save_file(state, str(folder / "model.safetensors"))

    write({**config, "model": {**config["model"], "kwargs": {**config["model"]["kwargs"], "seed": 4}}})
    with pytest.raises(ValueError, match=r"not the one the adapters .* were trained on"):
        hub.load(folder)
    key = config["masks"][0]
    write(state={**state, key: state[key][:-1].contiguous()})
    with pytest.raises(ValueError, match=f"mask {key} does not match the weights"):
        hub.load(folder)
    write({**config, "stored": config["stored"][1:]})
    with pytest.raises(ValueError, match=r"does not hold what its config\.json lists"):
        hub.load(folder)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_packed_masks_unpack_to_the_same_bits(shape, seed):
    mask = (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.5).float()
    packed = hub._pack(mask)
    assert packed.numel() == -(-mask.numel() // 8)
    assert torch.equal(hub._unpack(packed, shape, "m"), mask)


# ---------------------------------------------------------------- a model trained in constraint sets


def test_an_sfw_model_is_saved_with_its_regions_as_they_are_now(tmp_path):
    torch.manual_seed(0)
    model = MLP((1, 8, 8), widths=(16,), num_classes=3)
    opt = frankwolfe.sfw_setup("k_support", width=5.0, k=0.25, by_dims={1: "l2"})(model)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    regions = dict(zip((n for n, _ in model.named_parameters()), opt.param_groups[0]["constraints"], strict=True))
    regions["net.1.weight"].k = 7  # as DelayedK raises k during training: saved as it is now, not as built
    folder = hub.save(model, tmp_path / "sfw", method="sfw", constraints=opt,
                      parameters={"region": "k_support", "width": 5.0, "k": 0.25})
    loaded = hub.load(folder)
    assert loaded.constraints.keys() == regions.keys()
    for name, region in regions.items():
        again = loaded.constraints[name]
        assert type(again) is type(region) and again.radius == region.radius
        assert getattr(again, "k", None) == getattr(region, "k", None)
    assert loaded.constraints["net.1.weight"].k == 7 and "L2Ball x 2, KSupportBall x 2" in loaded.card
    # the rebuilt regions train the loaded model exactly as the originals train the original
    steps = []
    for net, regs in ((model, regions), (loaded.model, loaded.constraints)):
        sfw = frankwolfe.SFW(net.parameters(), [regs[n] for n, _ in net.named_parameters()], lr=0.1)
        sfw.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        sfw.step()
        steps.append(net(x))
    assert torch.equal(steps[0], steps[1])


def test_bad_constraints_are_refused_before_anything_is_written(tmp_path):
    model = MLP((1, 8, 8), widths=(16,), num_classes=3)
    with pytest.raises(ValueError, match="holds no regions"):
        hub.save(model, tmp_path / "x", method="sfw", constraints=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="no parameters named"):
        hub.save(model, tmp_path / "x", method="sfw", constraints={"nope": frankwolfe.L2Ball((2,))})
    with pytest.raises(TypeError, match=r"must be a kit\.frankwolfe region"):
        hub.save(model, tmp_path / "x", method="sfw", constraints={"net.1.bias": "l2"})
    with pytest.raises(ValueError, match="has shape"):
        hub.save(model, tmp_path / "x", method="sfw", constraints={"net.1.bias": frankwolfe.L2Ball((3,))})
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))


def test_a_merlin_arthur_verifier_loads_back_with_its_backbone(tmp_path):
    torch.manual_seed(2)
    from kit.merlin_arthur import Arthur

    arthur = Arthur.build("mlp", (1, 8, 8), 3, widths=(16,))
    assert hub.recipe_of(arthur)["kwargs"]["backbone"]["build"] == "kit.models:MLP"
    loaded = hub.load(hub.save(arthur, tmp_path / "arthur", method="merlin_arthur", metrics={"completeness": 0.9}))
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(loaded.model(x), arthur(x)) and loaded.model.dont_know == 3
