"""Bad input to kit.federated: no experiment silently becomes another, nothing runs before the arguments are checked,
and the robust aggregators drop exactly what they say however the scores tie."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.federated import FLConfig, aggregate, attack, simulate
from kit.federated import simulation as sim

SMALL = dict(dataset="digits", clients=4, rounds=1, public=200, widths=(16,), local_epochs=1.0, distill_epochs=1)


def test_an_attacker_fraction_that_rounds_to_no_attacker_is_refused():
    with pytest.raises(ValueError, match=r"byzantine=0.1 of clients=4 rounds to 0 attackers.*byzantine=0.25"):
        FLConfig(clients=4, byzantine=0.1, attack="lma")
    assert FLConfig(clients=4, byzantine=0.0, attack="lma").n_byzantine == 0  # the attack-free point is fine


def test_a_rounded_attacker_fraction_warns_and_is_recorded():
    with pytest.warns(UserWarning, match=r"rounded to 2 attackers, an actual fraction of 0.2"):
        cfg = FLConfig(clients=10, byzantine=0.25, attack="lma")
    assert cfg.n_byzantine == 2 and cfg.byzantine_fraction == 0.2


@pytest.mark.parametrize(("field", "value"), [("expguard", "no"), ("expguard", 1), ("batched", "yes"),
                                              ("batched", None)])
def test_switches_must_be_booleans(field, value):
    with pytest.raises(TypeError, match=f"{field} must be True or False"):
        FLConfig(**{field: value})


def test_unknown_presets_and_splits_are_refused_by_name():
    from kit.recipes import federated as fx

    with pytest.raises(ValueError, match=r"preset.*kit.*reference"):
        fx.config("smoke", preset="paper")
    with pytest.raises(ValueError, match="split"):
        FLConfig(split="byzantine")
    assert fx.config("smoke", preset="reference").split == "all"


def test_a_checkpoint_path_that_is_a_file_fails_before_any_data_or_round(tmp_path, monkeypatch):
    target = tmp_path / "a_file"
    target.write_text("x")
    monkeypatch.setattr(sim, "setup", lambda *a, **k: pytest.fail("data loaded before the checkpoint was checked"))
    with pytest.raises(NotADirectoryError, match="a_file"):
        simulate(FLConfig(**SMALL), checkpoint=target, progress=False)
    assert target.read_text() == "x"


def honest(clients: int, samples: int = 50, classes: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.softmax(torch.randn(1, samples, classes, generator=g, dtype=torch.float64) * 3, -1)
    noise = torch.randn(clients, samples, classes, generator=g, dtype=torch.float64) * 0.3
    return torch.softmax(base.log() + noise, -1)


def test_cronus_drops_exactly_its_count_when_identical_attackers_tie():
    good = honest(7)
    bad = attack("lma", good, 3)  # three identical crafted predictions: their scores tie exactly
    assert torch.equal(bad[0], bad[1]) and torch.equal(bad[1], bad[2])
    got = aggregate("cronus", torch.cat([good, bad]))
    assert (got.kept.sum(1) == 10 - 3 - 2).all()  # round(0.3 * 10) = 3, then round(0.3 * 7) = 2 dropped
    # the reference: drop exactly n - k by score, ties broken by position (identical clients: any one)
    reference = []
    for s in range(good.shape[1]):
        x = torch.cat([good, bad])[:, s].numpy()
        alive = np.arange(10)
        for _ in range(2):
            centred = x[alive] - x[alive].mean(0)
            scores = np.abs(centred @ np.linalg.svd(centred)[2][0])
            alive = alive[np.argsort(scores, kind="stable")[: len(alive) - round(0.3 * len(alive))]]
        reference.append(x[alive].mean(0))
    np.testing.assert_allclose(got.value.numpy(), np.stack(reference), atol=1e-9)
    # almost the honest mean, where keeping every tied attacker moved it far away
    assert float((got.value - good.mean(0)).abs().sum(-1).mean()) < 0.2


def test_filter_finds_the_top_direction_when_the_top_two_eigenvalues_lie_within_one_percent():
    rng = np.random.default_rng(0)
    clients, classes = 8, 6
    # centred rows with singular values 1 and 0.995: orthonormal columns, orthogonal to the ones vectors
    u = np.linalg.qr(np.c_[np.ones(clients), rng.normal(size=(clients, 2))])[0][:, 1:]
    w = np.linalg.qr(np.c_[np.ones(classes), rng.normal(size=(classes, 2))])[0][:, 1:]
    centred = 0.02 * u @ np.diag([1.0, 0.995]) @ w.T
    p = torch.from_numpy(1.0 / classes + centred)[:, None]  # probability rows, one sample
    got = aggregate("filter", p)
    want = np.abs(centred @ np.linalg.svd(centred)[2][0])
    np.testing.assert_allclose(got.scores.numpy(), want, rtol=1e-6)
