"""Parameter groups for the constrained optimizers, as every torch.optim.Optimizer takes them; no side channels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kit.frankwolfe import SFW, AdaGradSFW, KSupportBall, L1Ball, L2Ball, LinfBall, ProjectedSGD, build


def model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))


def loss_step(net: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    opt.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()


def test_region_options_build_the_regions_each_group_asks_for():
    net = model()
    w1, b1, w2, b2 = net.parameters()
    opt = SFW([{"params": [w1, w2], "region": "k_support", "k": 0.5, "width": 3.0},
               {"params": [b1, b2], "region": "l2", "radius": 0.7, "lr": 0.2}], lr=0.5)
    weights, biases = opt.param_groups
    for p, c in zip(weights["params"], weights["constraints"], strict=True):
        want = build("k_support", p.shape, 1.0, k=0.5)
        want.radius = want.radius_for_diameter(2.0 * 3.0 * float(p.detach().norm()))
        assert isinstance(c, KSupportBall) and c.k == want.k and c.radius == pytest.approx(want.radius)
        assert c.diameter == pytest.approx(6.0 * float(p.detach().norm()))
    assert all(isinstance(c, L2Ball) and c.radius == 0.7 for c in biases["constraints"])
    assert (weights["lr"], biases["lr"]) == (0.5, 0.2)


@pytest.mark.parametrize("cls, options", [(SFW, {"rescale": "gradient", "momentum": 0.9}),
                                          (AdaGradSFW, {"momentum": 0.5}), (ProjectedSGD, {"momentum": 0.9})])
def test_two_groups_step_like_two_optimizers_one_per_group(cls, options):
    regions = {"weights": lambda ps: [LinfBall(p.shape, 0.5) for p in ps],
               "biases": lambda ps: [L2Ball(p.shape, 1.0) for p in ps]}
    grouped, split = model(), model()
    gw, gb = [grouped[0].weight, grouped[2].weight], [grouped[0].bias, grouped[2].bias]
    sw, sb = [split[0].weight, split[2].weight], [split[0].bias, split[2].bias]
    opt = cls([{"params": gw, "constraints": regions["weights"](gw), "lr": 0.3},
               {"params": gb, "constraints": regions["biases"](gb), "lr": 0.05}], **options)
    first = cls(sw, regions["weights"](sw), lr=0.3, **options)
    second = cls(sb, regions["biases"](sb), lr=0.05, **options)
    for seed in range(3):
        loss_step(grouped, opt, seed)
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        first.zero_grad()
        second.zero_grad()
        nn.functional.cross_entropy(split(x), y).backward()
        first.step()
        second.step()
    for a, b in zip(grouped.parameters(), split.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_add_param_group_pairs_the_new_parameters():
    net = model()
    opt = SFW([net[0].weight], [L1Ball(net[0].weight.shape)], lr=0.1)
    opt.add_param_group({"params": [net[2].weight], "region": "linf", "radius": 2.0, "lr": 0.4})
    assert isinstance(opt.param_groups[1]["constraints"][0], LinfBall) and opt.param_groups[1]["lr"] == 0.4
    assert opt.param_groups[1]["momentum"] == 0.9  # the defaults fill what the group leaves out
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [net[2].bias], "region": "l2", "lr": 3.0})


def test_the_optimizer_keeps_no_hidden_state_outside_torch_s_own_attributes():
    net = model()
    opt = SFW(net.parameters(), [L2Ball(p.shape, 5.0) for p in net.parameters()], lr=0.5, rescale="gradient")
    other = model()
    plain = torch.optim.SGD(other.parameters(), lr=0.1)
    for seed in range(2):
        loss_step(net, opt, seed)
        loss_step(other, plain, seed)
    assert set(vars(opt)) <= set(vars(plain))
    saved = opt.state_dict()
    assert all(set(s) == {"step", "momentum_buffer"} for s in saved["state"].values())  # work buffers stay out
    assert all("constraints" not in g for g in saved["param_groups"])


@pytest.mark.parametrize(("params", "kwargs", "error", "match"), [
    (lambda n: [{"params": list(n.parameters())}], {}, ValueError, "needs constraints"),
    (lambda n: [{"params": list(n.parameters()), "region": "l2"}], {"constraints": []}, TypeError, "each group"),
    (lambda n: [n[0].weight, {"params": [n[0].bias], "region": "l2"}], {}, TypeError, "mixes"),
    (lambda n: list(n.parameters()), {}, TypeError, "constraints is required"),
    (lambda n: [{"params": [n[0].weight], "region": "l7"}], {}, ValueError, "region"),
    (lambda n: [{"params": [n[0].weight], "region": "l2", "radius": 1.0, "width": 2.0}], {}, ValueError,
     "radius or width"),
    (lambda n: [{"params": [n[0].weight], "region": "l2", "constraints": [L2Ball((5, 6))]}], {}, ValueError,
     "not both"),
    (lambda n: [{"params": [n[0].weight], "region": "k_support"}], {}, ValueError, "needs k"),
    (lambda n: n[0].weight, {"constraints": [L2Ball((5, 6))]}, TypeError, "not one tensor"),
])
def test_bad_groups_are_refused_clearly(params, kwargs, error, match):
    with pytest.raises(error, match=match):
        SFW(params(model()), **kwargs)
