"""kit.hub: a saved artefact loads back as the same model (weights, exact masks, outputs), from a folder or from a
hub id through a hub cache the test writes (offline); bad artefacts are refused and nothing is half-loaded."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import kit
from kit import hub
from kit.models import MLP
from kit.operators import NPR, Heat
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
