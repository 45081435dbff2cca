"""Merlin-Arthur (kit.merlin_arthur): each piece against an independent computation.

The polytope's LMO against brute-force enumeration of its vertices; the Frank-Wolfe and saliency provers
against the optimum worked out by hand for an Arthur whose true-class logit is linear in the features;
the losses against their direct formulas (extreme logits included); feature precision against a
plain-Python count; the bounds against hand values; a resumed game against an uninterrupted one.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kit import models
from kit.frankwolfe import SFW, NonnegativeKSparsePolytope, build
from kit.merlin_arthur import (
    PROVERS,
    Arthur,
    GameLoss,
    class_priors,
    completeness,
    digit_task,
    feature_precision,
    information_from_precision,
    make_prover,
    mask_features,
    merlin_loss,
    morgana_loss,
    mutual_information_bound,
    play,
    precision_bound,
    prover_objective,
    soundness,
    top_k_mask,
)
from kit.runs import CheckpointError

SEEDS = st.integers(0, 2**31 - 1)


# ---------------------------------------------------------------- the polytope


def brute_force_min(g: torch.Tensor, k: int) -> float:
    """min <v, g> over every 0/1 vector with at most k ones (the polytope's vertices)."""
    d = g.numel()
    best = 0.0
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(d), size):
            best = min(best, float(g[list(subset)].sum()))
    return best


@settings(max_examples=200, deadline=None)
@given(d=st.integers(1, 7), data=st.data(), seed=SEEDS)
def test_lmo_attains_the_brute_force_minimum_over_the_vertices(d, data, seed):
    k = data.draw(st.integers(1, d))
    g = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    region = NonnegativeKSparsePolytope((d,), k)
    v = region.lmo(g)
    assert set(v.unique().tolist()) <= {0.0, 1.0} and int(v.sum()) <= k  # a vertex
    assert float((v * g).sum()) == pytest.approx(brute_force_min(g, k), abs=1e-12)
    assert bool(((v == 1) <= (g < 0)).all())  # ones only where the gradient is negative


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 4), d=st.integers(1, 6), data=st.data(), seed=SEEDS, radius=st.floats(0.5, 3.0))
def test_per_sample_lmo_is_each_rows_own_brute_force_vertex(rows, d, data, seed, radius):
    k = data.draw(st.integers(1, d))
    g = torch.randn(rows, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v = NonnegativeKSparsePolytope((rows, d), k, radius=radius, per_sample=True).lmo(g)
    for r in range(rows):
        assert float((v[r] * g[r]).sum()) == pytest.approx(radius * brute_force_min(g[r], k), abs=1e-9)
        assert int((v[r] != 0).sum()) <= k


def test_the_region_is_built_by_name_and_knows_what_it_holds():
    region = build("nonnegative_k_sparse", (2, 4), k=2)
    assert isinstance(region, NonnegativeKSparsePolytope) and not region.per_sample
    inside = torch.tensor([[1.0, 0.5, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])  # sum 2 = k, every entry <= 1
    assert region.contains(inside)
    assert not region.contains(inside * 1.2)
    assert not region.contains(torch.tensor([[0.5, -0.1, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert region.diameter == pytest.approx(math.sqrt(4))  # two disjoint 2-subsets
    per_row = NonnegativeKSparsePolytope((3, 4), 1, per_sample=True)
    assert per_row.contains(torch.eye(3, 4)) and not region.contains(torch.ones(2, 4))
    assert per_row.diameter == pytest.approx(math.sqrt(3 * 2))


@settings(max_examples=50, deadline=None)
@given(seed=SEEDS, k=st.integers(1, 5), steps=st.integers(1, 15))
def test_frank_wolfe_iterates_stay_in_every_samples_polytope(seed, k, steps):
    gen = torch.Generator().manual_seed(seed)
    m = NonnegativeKSparsePolytope((3, 6), k, per_sample=True).make_feasible(torch.randn(3, 6, generator=gen))
    region = NonnegativeKSparsePolytope((3, 6), k, per_sample=True)
    assert region.contains(m)
    m.requires_grad_(True)
    opt = SFW([m], [region], lr=1.0, momentum=0.5, rescale=None, step_schedule="decreasing")
    for _ in range(steps):
        m.grad = torch.randn(3, 6, generator=gen)
        opt.step()
        assert region.contains(m.detach())
        assert bool((m.detach().sum(1) <= k + 1e-6).all())


def test_polytope_refuses_bad_settings():
    with pytest.raises(ValueError, match="k must lie"):
        NonnegativeKSparsePolytope((2, 5), 6, per_sample=True)
    with pytest.raises(TypeError, match="per_sample"):
        NonnegativeKSparsePolytope((5,), 2, per_sample=1)


# ---------------------------------------------------------------- Arthur and what he sees


def test_arthur_needs_the_dont_know_output():
    with pytest.raises(ValueError, match=r"classes \+ 1 = 3 outputs"):
        Arthur(models.MLP(4, (8,), num_classes=2), 2)
    arthur = Arthur(models.MLP(4, (8,), num_classes=3), 2)
    assert arthur.dont_know == 2 and arthur(torch.zeros(5, 4)).shape == (5, 3)
    hidden = Arthur(nn.Sequential(nn.Flatten(), nn.Identity()), 2)  # the width shows only at the forward
    with pytest.raises(ValueError, match=r"\(batch, classes \+ 1 = 3\) logits"):
        hidden(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="classes must lie"):
        Arthur(models.MLP(4, (8,), num_classes=2), 1)
    with pytest.raises(TypeError, match="backbone"):
        Arthur("mlp", 2)


def test_mask_features_shows_x_on_the_mask_and_the_baseline_elsewhere():
    x = torch.arange(6.0).reshape(2, 3) + 1
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert torch.equal(mask_features(x, mask), torch.tensor([[1.0, 0.0, 3.0], [0.0, 0.0, 6.0]]))
    assert torch.equal(mask_features(x, mask, baseline=-1.0), torch.tensor([[1.0, -1.0, 3.0], [-1.0, -1.0, 6.0]]))
    with pytest.raises(ValueError, match="shape of x"):
        mask_features(x, mask[:, :2])
    with pytest.raises(TypeError, match="floating-point"):
        mask_features(x, mask.bool())


# ---------------------------------------------------------------- losses


def direct_morgana(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits.double(), dim=1)
    return -torch.log(p.gather(1, y[:, None]).squeeze(1) + p[:, -1]).mean()


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, classes=st.integers(2, 5), n=st.integers(1, 6), scale=st.floats(0.1, 8.0))
def test_morgana_loss_is_the_direct_formula(seed, classes, n, scale):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes + 1, generator=gen, dtype=torch.float64) * scale
    y = torch.randint(classes, (n,), generator=gen)
    assert float(morgana_loss(logits, y)) == pytest.approx(float(direct_morgana(logits, y)), rel=1e-9, abs=1e-12)


def test_morgana_loss_stays_finite_at_extreme_logits():
    logits = torch.tensor([[1e4, -1e4, -1e4], [-1e4, 1e4, -1e4], [-1e4, -1e4, 1e4], [3e38, -3e38, 0.0]])
    y = torch.tensor([1, 1, 0, 1])
    per = morgana_loss(logits, y, reduction="none")
    assert bool(torch.isfinite(per).all())
    # sample 0: the wrong class leads the true class and "don't know" (tied) by 2e4: loss 2e4 - log 2;
    # 1: the true class, 2: "don't know" win (loss 0)
    assert per[0].item() == pytest.approx(2e4 - math.log(2), abs=0.01)
    assert per[1].item() == pytest.approx(0.0, abs=1e-6) and per[2].item() == pytest.approx(0.0, abs=1e-6)
    logits.requires_grad_(True)
    morgana_loss(logits, y).backward()
    assert bool(torch.isfinite(logits.grad).all())


def test_prover_objectives_are_the_right_log_probabilities():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(3, (7,), generator=gen)
    p = torch.softmax(logits, dim=1)
    assert torch.allclose(prover_objective(logits, y, "merlin"), -torch.log(p.gather(1, y[:, None]).squeeze(1)))
    wrong = 1 - p.gather(1, y[:, None]).squeeze(1) - p[:, -1]
    assert torch.allclose(prover_objective(logits, y, "morgana"), -torch.log(wrong))
    assert float(merlin_loss(logits, y)) == pytest.approx(float(nn.functional.cross_entropy(logits, y)))


def test_game_loss_adds_gamma_times_morgana_on_the_second_half():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(2, (8,), generator=gen)
    want = nn.functional.cross_entropy(logits[:4], y[:4]) + 2.0 * direct_morgana(logits[4:], y[4:])
    assert float(GameLoss(2.0)(logits, y)) == pytest.approx(float(want))
    assert float(GameLoss(0.0)(logits, y)) == pytest.approx(float(nn.functional.cross_entropy(logits[:4], y[:4])))


# ---------------------------------------------------------------- provers


class LinearTrueClass(nn.Module):
    """Logits (w . x, 0, 0): only class 0's logit depends on the features (two classes and "don't know")."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        z = (x.flatten(1) * self.w).sum(1)
        return torch.stack([z, torch.zeros_like(z), torch.zeros_like(z)], dim=1)


def linear_arthur(d: int, seed: int, device) -> tuple[Arthur, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    arthur = Arthur(LinearTrueClass(torch.randn(d, generator=gen)), 2).to(device)
    x = torch.randn(5, d, generator=gen).to(device)
    return arthur, x, torch.zeros(5, dtype=torch.long, device=device)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frank_wolfe_merlin_picks_the_k_features_that_raise_the_true_logit_most(seed, device):
    # Merlin's loss falls as w . (x * m) rises: the best mask holds the k largest positive w_i x_i
    arthur, x, y = linear_arthur(12, seed, device)
    contribution = (arthur.backbone.w * x).detach()
    k = 3
    # Morgana wants the true logit low: the k most negative contributions. Where fewer than k contributions
    # have the wanted sign the rest of the mask is free (any pixel adds nothing), so only those are asserted.
    for role, sign in (("merlin", 1.0), ("morgana", -1.0)):
        mask = make_prover("sfw", k, role, steps=200)(x, y, arthur)
        for i in range(len(x)):
            top = torch.topk(sign * contribution[i], k)
            best = {j for j, v in zip(top.indices.tolist(), top.values.tolist(), strict=True) if v > 0}
            chosen = set(mask[i].nonzero().flatten().tolist())
            assert best <= chosen and len(chosen) == k, (role, i, best, chosen)


def test_saliency_picks_the_largest_gradient_times_input(device):
    # d loss / d x_i = -(1 - p_0) w_i for Merlin, so |gradient x input| ranks features by |w_i x_i|
    arthur, x, y = linear_arthur(10, 3, device)
    mask = make_prover("saliency", 4, "merlin")(x, y, arthur)
    for i in range(len(x)):
        want = set(torch.topk((arthur.backbone.w * x[i]).abs(), 4).indices.tolist())
        assert set(mask[i].nonzero().flatten().tolist()) == want


@pytest.mark.parametrize("name", PROVERS)
@pytest.mark.parametrize("role", ["merlin", "morgana"])
def test_every_prover_shows_exactly_k_features_per_sample(name, role, device):
    torch.manual_seed(0)
    arthur = Arthur.build("mlp", (1, 8, 8), 2, widths=(16,)).to(device)
    x = torch.randn(6, 1, 8, 8, device=device)
    y = torch.randint(2, (6,), device=device)
    options = {"input_shape": (1, 8, 8), "widths": (4, 8)} if name == "network" else {}
    prover = make_prover(name, 5, role, **options).to(device)
    mask = prover(x, y, arthur)
    assert mask.shape == x.shape and mask.device == x.device
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask.flatten(1).sum(1).tolist() == [5.0] * 6
    assert arthur.training  # a prover leaves Arthur's mode as it found it


def test_top_k_mask_breaks_ties_by_the_lower_index():
    scores = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    assert top_k_mask(scores, 2).tolist() == [[0, 1, 1, 0, 0], [1, 1, 0, 0, 0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_network_prover_learns_to_please_a_fixed_arthur(seed):
    # only pixels 0-3 (always bright) carry the true-class logit; four dark distractors elsewhere: a learned
    # Merlin must come to pick exactly pixels 0-3 on every image, whatever its initial choice
    torch.manual_seed(seed)
    w = torch.zeros(16)
    w[:4] = 1.0
    arthur = Arthur(LinearTrueClass(w), 2)
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(32, 16)
    x[:, :4] = 1.0
    for i in range(32):
        x[i, 4 + torch.randperm(12, generator=gen)[:4]] = -1.0
    x = x.view(32, 1, 4, 4)
    y = torch.zeros(32, dtype=torch.long)
    prover = make_prover("network", 4, "merlin", input_shape=(1, 4, 4), widths=(4, 8), lr=1e-2, seed=seed)
    for _ in range(150):
        prover.update(x, y, arthur)
    assert torch.equal(prover(x, y, arthur).flatten(1)[:, :4], torch.ones(32, 4))


def test_provers_refuse_bad_settings():
    with pytest.raises(ValueError, match="unknown prover 'oracle'; choose one of sfw, network, saliency, random"):
        make_prover("oracle", 3)
    with pytest.raises(ValueError, match="k must lie"):
        make_prover("sfw", 0)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 16\]"):
        make_prover("network", 17, input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="unknown role"):
        make_prover("random", 3, "arthur")
    arthur = Arthur.build("mlp", (4,), 2, widths=(8,))
    with pytest.raises(ValueError, match=r"k must lie in \[1, 4\]"):
        make_prover("random", 5)(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), arthur)
    with pytest.raises(TypeError, match=r"kit\.merlin_arthur\.Arthur"):
        make_prover("random", 2)(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), nn.Linear(4, 3))


# ---------------------------------------------------------------- metrics and bounds


def plain_precision(x: list[list[int]], y: list[int], chosen: list[list[int]]) -> float:
    out = []
    for i, features in enumerate(chosen):
        same = [j for j in range(len(x)) if all(x[j][f] == x[i][f] for f in features)]
        out.append(sum(y[j] == y[i] for j in same) / len(same))
    return sum(out) / len(out)


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, n=st.integers(1, 12), d=st.integers(1, 6), values=st.integers(1, 3), data=st.data())
def test_feature_precision_is_the_plain_count(seed, n, d, values, data):
    k = data.draw(st.integers(1, d))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(values, (n, d), generator=gen).float()
    y = torch.randint(2, (n,), generator=gen)
    chosen = [torch.randperm(d, generator=gen)[:k].tolist() for _ in range(n)]
    masks = torch.zeros(n, d)
    for i, features in enumerate(chosen):
        masks[i, features] = 1.0
    want = plain_precision(x.int().tolist(), y.tolist(), chosen)
    assert float(feature_precision(x, y, masks, chunk=data.draw(st.integers(1, 5)))) == pytest.approx(want)


def test_feature_precision_quantises_with_levels_and_counts_matches():
    x = torch.tensor([[0.0, 0.1], [0.2, 1.0], [0.9, 0.95]])
    y = torch.tensor([0, 0, 1])
    masks = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    # as values: every sample matches only itself; as dark/bright: samples 0 and 1 match (both dark)
    assert float(feature_precision(x, y, masks)) == 1.0
    precision, matches = feature_precision(x, y, masks, levels=2, reduction="none", matches=True)
    assert precision.tolist() == [1.0, 1.0, 1.0] and matches.tolist() == [2.0, 2.0, 1.0]
    y = torch.tensor([0, 1, 1])
    assert feature_precision(x, y, masks, levels=2, reduction="none").tolist() == [0.5, 0.5, 1.0]
    with pytest.raises(ValueError, match="same number of features"):
        feature_precision(x, y, torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]))


def test_bounds_are_the_hand_values():
    assert precision_bound(0.9, 0.8) == pytest.approx(1 - 0.1 - 0.2 / 0.9)
    assert precision_bound(0.9, 0.8, kappa=2.0) == pytest.approx(1 - 0.1 - 0.4 / 0.9)
    assert precision_bound(1.0, 1.0) == 1.0 and precision_bound(0.5, 0.0) == 0.0
    assert information_from_precision(1.0, [0.5, 0.5]) == pytest.approx(1.0)
    assert information_from_precision(0.5, [0.5, 0.5]) == 0.0
    h = lambda q: -q * math.log2(q) - (1 - q) * math.log2(1 - q)  # noqa: E731
    assert information_from_precision(0.9, [0.5, 0.5]) == pytest.approx(1 - h(0.9))
    # ten classes: Fano adds (1 - Q) log2(9)
    assert information_from_precision(0.9, [0.1] * 10) == pytest.approx(math.log2(10) - h(0.9) - 0.1 * math.log2(9))
    assert mutual_information_bound(0.9, 0.8, [0.5, 0.5]) == pytest.approx(
        information_from_precision(precision_bound(0.9, 0.8), [0.5, 0.5]))
    assert class_priors(torch.tensor([0, 0, 1, 1, 1]), 3) == pytest.approx([0.4, 0.6, 0.0])
    with pytest.raises(ValueError, match="completeness must lie"):
        precision_bound(1.2, 0.5)
    with pytest.raises(ValueError, match="priors"):
        information_from_precision(0.9, [0.5, 0.4])


def test_completeness_and_soundness_count_arthurs_answers():
    # an Arthur that always says class 0 (logits fixed): complete on class-0 samples, sound only there too
    class Constant(nn.Module):
        def forward(self, x):
            return torch.tensor([[2.0, 0.0, 0.0]]).expand(len(x), 3)

    arthur = Arthur(Constant(), 2)
    data = torch.utils.data.TensorDataset(torch.randn(10, 4), torch.tensor([0] * 7 + [1] * 3))
    prover = make_prover("random", 2)
    assert completeness(arthur, data, prover, batch_size=3) == pytest.approx(0.7)
    assert soundness(arthur, data, make_prover("random", 2, "morgana")) == pytest.approx(0.7)


# ---------------------------------------------------------------- the game


def tiny_game(tmp_path, epochs: int, kind: str = "network"):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 1, 6, 6, generator=gen)
    y = (x[:, 0, :3].sum((1, 2)) > 0).long()
    data = torch.utils.data.TensorDataset(x, y)
    arthur = Arthur.build("mlp", (1, 6, 6), 2, widths=(16,))
    options = {"input_shape": (1, 6, 6), "widths": (4, 8)} if kind == "network" else {"steps": 5}
    merlin = make_prover(kind, 6, "merlin", **options)
    morgana = make_prover(kind, 6, "morgana", **options | ({"seed": 1} if kind == "network" else {}))
    history = play(arthur, data, merlin, morgana, epochs=epochs, batch_size=16, seed=3, checkpoint_dir=tmp_path,
                   progress=False)
    return arthur, merlin, morgana, history


@pytest.mark.parametrize("kind", ["network", "sfw"])
def test_a_resumed_game_ends_exactly_where_an_uninterrupted_one_does(tmp_path, kind):
    arthur, merlin, morgana, history = tiny_game(tmp_path / "straight", 3, kind)
    tiny_game(tmp_path / "resumed", 3, kind)
    (tmp_path / "resumed" / "game-003.pt").unlink()  # as if killed during the last epoch
    again, merlin2, morgana2, history2 = tiny_game(tmp_path / "resumed", 3, kind)
    for a, b in zip(arthur.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for p, q in ((merlin, merlin2), (morgana, morgana2)):
        for a, b in zip(p.state_dict().get("net", {}).values(), q.state_dict().get("net", {}).values(), strict=True):
            assert torch.equal(a, b)
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h.records]  # noqa: E731
    assert drop(history) == drop(history2)
    assert set(history.keys()) >= {"completeness", "soundness", "train_loss"}
    if kind == "network":
        assert "merlin_loss" in history and "morgana_loss" in history


def test_a_checkpoint_of_another_game_is_refused(tmp_path):
    tiny_game(tmp_path, 1, "sfw")
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(40, 1, 6, 6), torch.zeros(40, dtype=torch.long))
    with pytest.raises(CheckpointError, match="different Merlin-Arthur game"):
        play(Arthur.build("mlp", (1, 6, 6), 2, widths=(16,)), data, make_prover("sfw", 6, steps=5),
             make_prover("sfw", 6, "morgana", steps=5), epochs=1, checkpoint_dir=tmp_path, progress=False)


def test_game_refuses_bad_input_before_any_work(tmp_path):
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
    arthur = Arthur.build("mlp", (4,), 2, widths=(8,))
    before = [p.detach().clone() for p in arthur.parameters()]
    merlin, morgana = make_prover("random", 2), make_prover("random", 2, "morgana")
    with pytest.raises(ValueError, match="gamma must lie"):
        play(arthur, data, merlin, morgana, gamma=-1.0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 4\]"):
        play(arthur, data, make_prover("random", 5), morgana, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="role='merlin'"):
        play(arthur, data, morgana, merlin, checkpoint_dir=tmp_path)
    with pytest.raises(TypeError, match=r"kit\.merlin_arthur\.Arthur"):
        play(models.MLP(4, (8,), num_classes=3), data, merlin, morgana)
    with pytest.raises(ValueError, match="train_data is empty"):
        play(arthur, torch.utils.data.TensorDataset(torch.zeros(0, 4), torch.zeros(0)), merlin, morgana)
    assert all(torch.equal(a, b) for a, b in zip(before, arthur.parameters(), strict=True))
    assert not any(tmp_path.iterdir())  # nothing written


# ---------------------------------------------------------------- tasks and the mask network's U-Net


def test_digit_task_keeps_the_pair_relabelled_in_minus_one_to_one():
    task = digit_task((4, 9), budget="smoke")
    assert task.num_classes == 2 and task.classes == ["4", "9"]
    for part in (task.train, task.val, task.test):
        assert set(part.targets.unique().tolist()) == {0, 1}
        assert float(part.inputs.min()) == -1.0 and float(part.inputs.max()) == 1.0
    total = sum(len(p) for p in (task.train, task.val, task.test))
    assert total == 1000  # 500 fours and 500 nines in MNIST-5k
    ten = digit_task(None, budget="smoke", n_train=50)
    assert ten.num_classes == 10 and len(ten.train) == 50


@pytest.mark.parametrize("pair, error, match", [((4, 4), ValueError, "two different digits"),
                                                 ((4, 10), ValueError, r"digits\[1\] must lie in \[0, 9\]"),
                                                 ("49", TypeError, "pair of digits"),
                                                 ((1, 2, 3), TypeError, "pair of digits")])
def test_digit_task_refuses_bad_pairs(pair, error, match):
    with pytest.raises(error, match=match):
        digit_task(pair, budget="smoke")


@pytest.mark.parametrize("size", [(28, 28), (27, 30), (8, 8)])
def test_unet_returns_a_map_of_the_inputs_size(size):
    net = models.UNet(2, 3, (4, 8, 16))
    assert net(torch.randn(2, 2, *size)).shape == (2, 3, *size)
    with pytest.raises(TypeError, match="at least two"):
        models.UNet(1, 1, (8,))
