"""Federated clients, the in-process simulation (FedDistill, FedAvg), checkpoints, and the Flower adapter."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.federated import simulation as sim
from kit.federated.clients import Stacked, partition, train_clients
from kit.federated.defences import aggregate
from kit.models import MLP

SMALL = dict(dataset="digits", clients=4, rounds=2, public=300, widths=(32,), local_epochs=3, distill_epochs=3)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(20, 200), clients=st.integers(1, 8), alpha=st.one_of(st.none(), st.floats(0.05, 10.0)),
       seed=st.integers(0, 1000))
def test_partition_is_disjoint_covers_everything_and_leaves_no_client_empty(n, clients, alpha, seed):
    labels = torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(seed))
    parts = partition(labels, clients, alpha=alpha, seed=seed)
    assert len(parts) == clients and all(len(p) for p in parts)
    joined = torch.cat(parts).sort().values
    assert torch.equal(joined, torch.arange(n))
    if alpha is None:
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_dirichlet_with_small_alpha_gives_clients_fewer_classes_than_iid():
    labels = torch.arange(2000) % 10
    def classes_per_client(parts):
        return sum(len(labels[p].unique()) for p in parts) / len(parts)
    assert classes_per_client(partition(labels, 10, seed=0)) == 10
    assert classes_per_client(partition(labels, 10, alpha=0.1, seed=0)) < 5


def test_partition_rejects_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        partition(torch.zeros(10, dtype=torch.long), 2, alpha=0.0)
    with pytest.raises(ValueError, match="clients"):
        partition(torch.zeros(10, dtype=torch.long), 11)


def test_stacked_clients_train_exactly_like_one_after_another(device):
    torch.manual_seed(0)
    x, y = torch.randn(300, 12), torch.randint(0, 3, (300,))
    data = torch.utils.data.TensorDataset(x, y)
    parts = partition(y, 3, alpha=0.5, seed=1)
    start = MLP(12, (16,), 3).to(device)
    a = [MLP(12, (16,), 3).to(device) for _ in range(3)]
    b = [MLP(12, (16,), 3).to(device) for _ in range(3)]
    for m in a + b:
        m.load_state_dict(start.state_dict())
    train_clients(a, data, parts, epochs=2, lr=0.1, batch_size=16, seed=5, batched=True)
    train_clients(b, data, parts, epochs=2, lr=0.1, batch_size=16, seed=5, batched=False)
    for ma, mb in zip(a, b, strict=True):
        for pa, pb in zip(ma.parameters(), mb.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    # and training did something: the clients moved away from the start and from each other
    assert not torch.allclose(a[0].net[1].weight, start.net[1].weight)
    assert not torch.allclose(a[0].net[1].weight, a[1].net[1].weight)


def test_stacked_forward_equals_each_model(device):
    models = [MLP(5, (4,), 2).to(device) for _ in range(3)]
    x = torch.randn(3, 7, 5, device=device)
    out = Stacked(models)(x)
    for i, m in enumerate(models):
        torch.testing.assert_close(out[i], m(x[i]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(byzantine=1.0), "byzantine"),
    (dict(byzantine=-0.1), "byzantine"),
    (dict(clients=4, byzantine=0.9), "at least one client must be honest"),
    (dict(attack="nope"), "lma"),
    (dict(defence="nope"), "geometric_median"),
    (dict(public=0), "public"),
    (dict(alpha=0.0), "alpha"),
    (dict(protocol="fedavg", attack="lma"), "gaussian"),
    (dict(protocol="fedavg", expguard=True), "expguard"),
    (dict(model="transformer"), "resnet20"),
])
def test_config_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sim.FLConfig(**kwargs)


def test_batchnorm_clients_fall_back_to_the_loop_with_the_same_result():
    cfg = sim.FLConfig(**{**SMALL, "rounds": 1}, model="cnn")
    runs = [sim.simulate(replace(cfg, batched=b), progress=False) for b in (True, False)]
    assert runs[0].records == runs[1].records
    assert runs[0].accuracy > 0.2  # ten digit classes: the CNN server learned something in one round


def test_split_all_gives_honest_clients_the_shares_of_all_clients():
    honest = sim.setup(sim.FLConfig(**{**SMALL, "clients": 4}, byzantine=0.5, attack="lma"))
    everyone = sim.setup(sim.FLConfig(**{**SMALL, "clients": 4}, byzantine=0.5, attack="lma", split="all"))
    private = len(honest.train)
    assert len(honest.parts) == len(everyone.parts) == 2
    assert sum(len(p) for p in honest.parts) == private  # split among the 2 honest clients
    assert [len(p) for p in everyone.parts] == [len(p) for p in partition(honest.train.tensors[1], 4)[:2]]
    assert sum(len(p) for p in everyone.parts) <= private // 2 + 2  # the attackers' half is unused
    with pytest.raises(ValueError, match="split"):
        sim.FLConfig(**SMALL, split="some")


def test_target_flips_match_the_margin_rule_of_a_one_hot_attack():
    # with a fraction f of one-hot attackers on class j, the mean names another class than the honest mean's
    # top class t exactly where (1 - f) (p_t - p_j) < f (p_t, p_j: the honest mean's probabilities)
    cfg = sim.FLConfig(**{**SMALL, "clients": 5, "local_epochs": 6}, byzantine=0.4, attack="lma")
    fed = sim.setup(cfg)
    honest = sim.client_predictions(cfg, fed, 0)
    record, _ = sim.server_step(cfg, fed, honest, 0, None)
    p = honest.double().mean(0).cpu().numpy()
    margin = p.max(1) - p.min(1)  # LMA attacks the honest mean's least likely class
    f = cfg.n_byzantine / cfg.clients
    assert record["target_flips"] == pytest.approx(((1 - f) * margin < f).mean(), abs=1 / len(p))
    assert 0.1 < record["target_flips"] < 0.9  # measured 0.34: the rule is tested on both sides


def test_simulation_is_seeded_and_records_every_round():
    cfg = sim.FLConfig(**SMALL, byzantine=0.25, attack="lma", defence="mean", expguard=True)
    a, b = sim.simulate(cfg, progress=False), sim.simulate(cfg, progress=False)
    assert a.records == b.records
    assert [r["round"] for r in a.records] == [1, 2]
    for r in a.records:
        assert abs(sum(r["weights"]) - 1) < 1e-9 and len(r["weights"]) == 4
    # the attacker (the last client) loses weight from the first round on
    assert a.attacker_weight()[-1] < 0.25


def test_interrupted_run_resumes_with_the_same_history(tmp_path, monkeypatch):
    cfg = sim.FLConfig(**{**SMALL, "rounds": 3}, byzantine=0.25, attack="lma", expguard=True)
    whole = sim.simulate(cfg, progress=False)
    real_round = sim._round
    calls = {"n": 0}

    def crash_in_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_round(*args, **kwargs)

    monkeypatch.setattr(sim, "_round", crash_in_third)
    with pytest.raises(KeyboardInterrupt):
        sim.simulate(cfg, checkpoint=tmp_path, progress=False)
    monkeypatch.setattr(sim, "_round", real_round)
    resumed = sim.simulate(cfg, checkpoint=tmp_path, progress=False)
    assert resumed.records == whole.records


class Marker:
    """Unpickling this writes a file: what a crafted checkpoint could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_checkpoint_in_the_folder_is_refused_without_running_it(tmp_path):
    import pickle

    from kit.runs import CheckpointError

    cfg = sim.FLConfig(**{**SMALL, "rounds": 1})
    marker = tmp_path / "pwned"
    crafted = tmp_path / f"fl-{cfg.key()}-001.pt"
    crafted.write_bytes(pickle.dumps({"format": "kit.federated/2", "records": Marker(str(marker))}))
    with pytest.raises(CheckpointError, match=crafted.name):
        sim.simulate(cfg, checkpoint=tmp_path, progress=False)
    assert not marker.exists()


def test_fedavg_runs_and_a_scaled_attack_hurts_the_mean_not_the_median():
    clean = sim.simulate(sim.FLConfig(**SMALL, protocol="fedavg"), progress=False)
    hit = sim.simulate(sim.FLConfig(**SMALL, protocol="fedavg", byzantine=0.25, attack="scaled"), progress=False)
    held = sim.simulate(sim.FLConfig(**SMALL, protocol="fedavg", byzantine=0.25, attack="scaled", defence="median"),
                        progress=False)
    assert clean.accuracy > 0.5
    assert hit.accuracy < clean.accuracy - 0.2
    assert held.accuracy > hit.accuracy


def test_flower_run_aggregates_like_the_in_process_simulation():
    pytest.importorskip("flwr")
    pytest.importorskip("ray")
    from kit.federated.flower import run_flower

    cfg = sim.FLConfig(**{**SMALL, "clients": 3}, defence="median", batched=False)
    strategy = run_flower(cfg, cpus_per_client=1.0)
    assert len(strategy.rounds) == cfg.rounds
    fed = sim.setup(cfg, device="cpu")
    first = sim.client_predictions(cfg, fed, 0)  # the same clients from the same server model, in process
    torch.testing.assert_close(strategy.rounds[0]["predictions"], first, rtol=1e-4, atol=1e-5)
    for r in strategy.rounds:
        torch.testing.assert_close(r["aggregate"], aggregate("median", r["predictions"]).value)
