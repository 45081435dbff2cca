"""kit.train: fit/evaluate against independent computations (manual SGD/Adam steps, argmax accuracy),
callbacks and schedules, determinism, History, argument checks, and a 2-process HF Accelerate run."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from devices import DEVICE
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kit.models import MLP
from kit.schedules import Constant, Cosine, Linear, StepDecay, steps_per_epoch
from kit.train import Callback, History, TrainState, classification_loss, evaluate, fit, predict

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("accelerate_fit_script.py")
W_TRUE = torch.tensor([1.0, -2.0, 0.5, 1.5])


pytestmark = pytest.mark.usefixtures("one_thread")


def separable(n: int = 128, seed: int = 0) -> TensorDataset:
    """Two classes split by the hyperplane W_TRUE . x = 0 (linearly separable), from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x @ W_TRUE > 0).long())


def linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(4, 2)


def flat(model: nn.Module) -> torch.Tensor:
    """All parameters as one CPU vector (the model may have trained on the suite's device)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu()


def no_seconds(history: History) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


def run(model: nn.Module, data, **kwargs) -> History:
    # on the suite's device (CUDA on a GPU machine): fit moves the model there because the test names it
    kwargs = {"progress": False, "device": DEVICE, **kwargs}
    return fit(model, data, **kwargs)


class Recorder(Callback):
    """Counts every hook and records, at each step, the step, state.lr and the optimizer's lr."""

    def __init__(self) -> None:
        self.calls = {h: 0 for h in ("on_fit_start", "before_step", "after_step", "on_epoch_end", "on_fit_end")}
        self.steps: list[int] = []
        self.state_lr: list[float] = []
        self.opt_lr: list[float] = []
        self.epochs_ended: list[int] = []
        self.total_steps = -1

    def on_fit_start(self, state: TrainState) -> None:
        self.calls["on_fit_start"] += 1
        self.total_steps = state.total_steps

    def before_step(self, state: TrainState) -> None:
        self.calls["before_step"] += 1
        self.steps.append(state.step)
        self.state_lr.append(state.lr)
        self.opt_lr.append(state.optimizer.param_groups[0]["lr"])

    def after_step(self, state: TrainState) -> None:
        self.calls["after_step"] += 1
        assert state.optimizer.param_groups[0]["lr"] == state.lr  # the lr the step actually used
        assert math.isfinite(state.loss) and state.output is not None

    def on_epoch_end(self, state: TrainState) -> None:
        self.calls["on_epoch_end"] += 1
        self.epochs_ended.append(state.epoch)

    def on_fit_end(self, state: TrainState) -> None:
        self.calls["on_fit_end"] += 1


# ---------------------------------------------------------------- learning and evaluate

def test_fit_learns_separable_task_and_evaluate_matches_argmax():
    train, test = separable(256, seed=0), separable(200, seed=1)
    torch.manual_seed(0)
    model = MLP(input_shape=4, widths=(16,), num_classes=2)
    history = run(model, train, epochs=8, lr=0.1, momentum=0.9, batch_size=32, val_data=test)
    losses = history["train_loss"]
    assert len(losses) == 8
    assert losses[-1] < 0.3 * losses[0]
    assert history.last("train_accuracy") > 0.95

    model.train()
    result = evaluate(model, test)
    assert model.training  # evaluate restores the mode it found
    with torch.no_grad():
        model.eval()
        logits = model(test.tensors[0].to(DEVICE)).cpu()
    expected_acc = (logits.argmax(dim=1) == test.tensors[1]).double().mean().item()
    assert result["accuracy"] == pytest.approx(expected_acc, abs=1e-12)
    assert result["accuracy"] > 0.9
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, test.tensors[1]).item(), rel=1e-5)
    # the per-epoch validation columns are the same computation
    assert history.last("val_accuracy") == pytest.approx(expected_acc, abs=1e-12)
    assert history.last("val_loss") == pytest.approx(result["loss"], rel=1e-6)

    out, tgt = predict(model, test, batch_size=64)  # in order, across batches
    assert torch.allclose(out, logits, atol=1e-6) and torch.equal(tgt, test.tensors[1])


def test_train_accuracy_is_fraction_of_correct_predictions_in_the_step():
    data = separable(40)
    model = linear()
    reference = copy.deepcopy(model)
    history = run(model, data, epochs=1, batch_size=40, momentum=0.0)  # one full batch: predictions before the step
    with torch.no_grad():
        acc = (reference(data.tensors[0]).argmax(1) == data.tensors[1]).double().mean().item()
    assert history.last("train_accuracy") == pytest.approx(acc, abs=1e-12)


def test_regression_targets_give_nan_accuracy_and_loss_decreases():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([[2.0], [-1.0], [0.5]])
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    history = run(model, TensorDataset(x, y), epochs=8, lr=0.1, batch_size=16, loss_fn=F.mse_loss)
    assert all(math.isnan(a) for a in history["train_accuracy"])
    assert history.last("train_loss") < 0.1 * history["train_loss"][0]
    assert math.isnan(evaluate(model, TensorDataset(x, y), loss_fn=F.mse_loss)["accuracy"])


# ---------------------------------------------------------------- determinism

def test_same_seed_same_history_and_weights_different_seed_differs():
    data = separable(96)
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))  # dropout: global RNG too
    a, b, c = copy.deepcopy(base), copy.deepcopy(base), copy.deepcopy(base)
    torch.manual_seed(123)  # the global RNG state before fit must not matter: fit seeds it
    ha = run(a, data, epochs=3, batch_size=16, seed=7)
    torch.manual_seed(999)
    hb = run(b, data, epochs=3, batch_size=16, seed=7)
    hc = run(c, data, epochs=3, batch_size=16, seed=8)
    assert no_seconds(ha) == no_seconds(hb)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name  # same device: bit for bit
    assert ha["train_loss"] != hc["train_loss"]
    assert not torch.equal(flat(a), flat(c))


# ---------------------------------------------------------------- exact optimizer steps

def manual_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    params = list(model.parameters())
    return list(torch.autograd.grad(F.cross_entropy(model(x), y), params))


def test_one_full_batch_sgd_step_is_w_minus_lr_grad():
    data = separable(32)
    x, y = data.tensors
    model = linear(1)
    reference = copy.deepcopy(model)
    lr = 0.5
    history = run(model, data, epochs=1, lr=lr, momentum=0.0, batch_size=len(data))
    grads = manual_grad(reference, x, y)
    expected = [p.detach() - lr * g for p, g in zip(reference.parameters(), grads, strict=True)]
    for new, exp, old in zip(model.parameters(), expected, reference.parameters(), strict=True):
        new = new.detach().cpu()
        assert (new - old).abs().max() > 1e-3  # the step is far larger than the tolerance
        torch.testing.assert_close(new, exp.detach(), atol=1e-6, rtol=1e-5)
    assert history["step"] == [1]
    assert history.last("train_loss") == pytest.approx(F.cross_entropy(reference(x), y).item(), rel=1e-5)


def test_momentum_weight_decay_and_schedule_match_manual_sgd():
    """Four full-batch epochs re-implemented by hand: g += wd*w; buf = m*buf + g; w -= lr(step)*buf."""
    data = separable(48)
    x, y = data.tensors
    model = linear(2)
    reference = copy.deepcopy(model)
    schedule, m, wd = Linear(0.4, 0.1, total_steps=3), 0.9, 0.01
    run(model, data, epochs=4, momentum=m, weight_decay=wd, batch_size=len(data), lr_schedule=schedule)
    bufs = None
    with torch.no_grad():
        for step in range(4):
            with torch.enable_grad():
                grads = manual_grad(reference, x, y)
            grads = [g + wd * p for g, p in zip(grads, reference.parameters(), strict=True)]
            bufs = grads if bufs is None else [m * b + g for b, g in zip(bufs, grads, strict=True)]
            for p, b in zip(reference.parameters(), bufs, strict=True):
                p -= schedule(step) * b
    torch.testing.assert_close(flat(model), flat(reference), atol=1e-5, rtol=1e-4)


def test_grad_clip_scales_the_gradient_to_the_max_norm():
    data = separable(32)
    x, y = data.tensors
    model = linear(3)
    reference = copy.deepcopy(model)
    clip, lr = 0.05, 1.0
    run(model, data, epochs=1, lr=lr, momentum=0.0, batch_size=len(data), grad_clip=clip)
    grads = manual_grad(reference, x, y)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    assert norm > 2 * clip  # clipping is active
    expected = torch.cat([(p.detach() - lr * g * clip / norm).reshape(-1)
                          for p, g in zip(reference.parameters(), grads, strict=True)])
    torch.testing.assert_close(flat(model), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_named_optimizers_first_step_closed_form(name):
    """First step of each: SGD w - lr(g + wd w); Adam (bias-corrected m/sqrt(v) = g/|g|) on g + wd w;
    AdamW decays w by (1 - lr wd) and steps by g/|g|."""
    data = separable(32)
    x, y = data.tensors
    model = linear(4)
    reference = copy.deepcopy(model)
    lr, wd, m = 0.01, 0.1, 0.5
    types = []

    class Grab(Callback):
        def on_fit_start(self, state):
            types.append(state.optimizer)

    run(model, data, epochs=1, lr=lr, optimizer=name, momentum=m, weight_decay=wd, batch_size=len(data),
        callbacks=[Grab()])
    opt = types[0]
    assert type(opt) is {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    assert opt.param_groups[0]["weight_decay"] == wd
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == m
    grads = manual_grad(reference, x, y)
    expected = []
    for p, g in zip(reference.parameters(), grads, strict=True):
        w = p.detach()
        if name == "sgd":
            expected.append(w - lr * (g + wd * w))
        elif name == "adam":
            gw = g + wd * w
            expected.append(w - lr * gw / (gw.abs() + 1e-8))
        else:
            expected.append(w * (1 - lr * wd) - lr * g / (g.abs() + 1e-8))
    torch.testing.assert_close(flat(model), torch.cat([e.detach().reshape(-1) for e in expected]), atol=1e-6,
                               rtol=1e-5)


def test_optimizer_instance_and_factory():
    data = separable(32)
    x, y = data.tensors
    # an instance is used as given and keeps its own lr when there is no lr_schedule
    model = linear(5)
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    seen = []

    class Grab(Callback):
        def before_step(self, state):
            seen.append((state.optimizer, state.lr))

    run(model, data, epochs=1, lr=0.9, optimizer=opt, batch_size=len(data), callbacks=[Grab()])
    assert seen == [(opt, 0.05)]
    grads = manual_grad(reference, x, y)
    expected = torch.cat([(p.detach() - 0.05 * g).reshape(-1) for p, g in zip(reference.parameters(), grads,
                                                                               strict=True)])
    torch.testing.assert_close(flat(model), expected, atol=1e-6, rtol=1e-5)
    # ... but an explicit lr_schedule drives it
    run(model, data, epochs=1, optimizer=opt, batch_size=len(data), lr_schedule=0.02)
    assert opt.param_groups[0]["lr"] == 0.02

    # a factory is called once with the model's trainable parameters
    model = linear(6)
    model.bias.requires_grad_(False)
    calls = []

    def factory(params):
        params = list(params)
        calls.append(params)
        return torch.optim.Adam(params, lr=0.003)

    history = run(model, data, epochs=2, optimizer=factory, batch_size=16)
    assert len(calls) == 1 and len(calls[0]) == 1 and calls[0][0] is model.weight  # .to() keeps the Parameter
    assert history["lr"] == [0.003, 0.003]

    with pytest.raises(TypeError, match="factory must return"):
        run(linear(), data, optimizer=lambda params: "sgd")
    with pytest.raises(ValueError, match="sgd, adam, adamw"):
        run(linear(), data, optimizer="rmsprop")
    with pytest.raises(TypeError, match="optimizer"):
        run(linear(), data, optimizer=3)


# ---------------------------------------------------------------- schedules and callbacks

def test_schedule_applied_every_step_and_callback_counts():
    n, bs, epochs = 50, 16, 3
    data = separable(n)
    per_epoch = math.ceil(n / bs)
    assert per_epoch == 4 == steps_per_epoch(n, bs)
    total = epochs * per_epoch
    schedule = Cosine(0.2, total, lr_min=0.01)
    rec = Recorder()
    history = run(linear(), data, epochs=epochs, batch_size=bs, lr_schedule=schedule, callbacks=[rec])
    expected = [schedule(k) for k in range(total)]
    assert rec.steps == list(range(total))
    assert rec.state_lr == expected and rec.opt_lr == expected
    assert rec.calls == {"on_fit_start": 1, "before_step": total, "after_step": total, "on_epoch_end": epochs,
                         "on_fit_end": 1}
    assert rec.total_steps == total
    assert rec.epochs_ended == [0, 1, 2]
    assert history["step"] == [4, 8, 12]
    assert history["lr"] == [schedule(3), schedule(7), schedule(11)]  # the lr of each epoch's last step


def test_no_schedule_means_constant_lr_and_dataloader_accepted():
    data = separable(30)
    loader = DataLoader(data, batch_size=7)  # 5 batches, used as given
    rec = Recorder()
    history = run(linear(), loader, epochs=2, lr=0.07, batch_size=999, callbacks=[rec])
    assert rec.state_lr == [0.07] * 10 == rec.opt_lr
    assert history["step"] == [5, 10]


def test_step_decay_schedule_in_fit():
    rec = Recorder()
    schedule = StepDecay(0.1, milestones=[2, 5], gamma=0.1)
    run(linear(), separable(24), epochs=3, batch_size=8, lr_schedule=schedule, callbacks=[rec])
    assert len(rec.opt_lr) == 9  # 3 steps per epoch
    assert rec.opt_lr == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001], rel=1e-12)


def test_stop_in_after_step_ends_training_early():
    class StopAt(Recorder):
        def after_step(self, state):
            super().after_step(state)
            if state.step == 5:  # the sixth step, inside the second epoch (4 steps per epoch)
                state.stop = True

    rec = StopAt()
    history = run(linear(), separable(50), epochs=5, batch_size=16, callbacks=[rec])
    assert len(history) == 2 < 5
    assert history["step"] == [4, 6]
    assert rec.calls["after_step"] == 6 and rec.calls["on_epoch_end"] == 2 and rec.calls["on_fit_end"] == 1


def test_stop_in_on_epoch_end():
    class StopAfterFirstEpoch(Recorder):
        def on_epoch_end(self, state):
            super().on_epoch_end(state)
            state.stop = True

    rec = StopAfterFirstEpoch()
    history = run(linear(), separable(50), epochs=5, batch_size=16, callbacks=[rec])
    assert len(history) == 1 and history["step"] == [4] and rec.calls["before_step"] == 4


# ---------------------------------------------------------------- History

def test_history_api():
    h = History([{"epoch": 1, "train_loss": 0.9, "acc": 0.5}, {"epoch": 2, "train_loss": 0.4, "acc": 0.8}])
    assert h["train_loss"] == [0.9, 0.4]
    assert h.last("train_loss") == 0.4 and h.last("acc") == 0.8
    assert h.keys() == ["epoch", "train_loss", "acc"]
    assert h.to_dict() == {"epoch": [1, 2], "train_loss": [0.9, 0.4], "acc": [0.5, 0.8]}
    assert "acc" in h and "val_loss" not in h and 3 not in h
    assert len(h) == 2
    with pytest.raises(KeyError, match="val_loss") as err:
        h["val_loss"]
    assert "epoch, train_loss, acc" in str(err.value)
    empty = History()
    assert len(empty) == 0 and empty.keys() == [] and empty.to_dict() == {} and "train_loss" not in empty
    with pytest.raises(KeyError, match="empty"):
        empty.last("train_loss")


def test_history_from_fit_has_documented_columns():
    history = run(linear(), separable(32), epochs=2, batch_size=16, val_data=separable(16, seed=1))
    assert history.keys() == ["epoch", "step", "lr", "train_loss", "train_accuracy", "seconds", "val_loss",
                              "val_accuracy"]
    assert history["epoch"] == [1, 2]
    assert all(s >= 0 for s in history["seconds"])
    assert history.to_dict()["train_loss"] == history["train_loss"]


# ---------------------------------------------------------------- sequence outputs

@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), t=st.integers(1, 6), c=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_classification_loss_flattens_sequences(n, t, c, seed):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(n, t, c, generator=g)
    tgt = torch.randint(0, c, (n, t), generator=g)
    expected = F.cross_entropy(out.reshape(n * t, c), tgt.reshape(n * t))
    manual = -torch.log_softmax(out, dim=-1).gather(-1, tgt.unsqueeze(-1)).mean()  # mean NLL over all tokens
    got = classification_loss(out, tgt)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, manual, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(classification_loss(out[:, 0], tgt[:, 0]), F.cross_entropy(out[:, 0], tgt[:, 0]))


class TokenModel(nn.Module):
    def __init__(self, vocab: int = 5) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(x))  # (N, T, vocab)


def test_fit_on_sequence_outputs_counts_tokens():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (64, 6), generator=g)
    data = TensorDataset(x, (x + 1) % 5)  # next symbol, token by token
    torch.manual_seed(0)
    model = TokenModel()
    history = run(model, data, epochs=6, lr=0.5, batch_size=16)
    assert history.last("train_loss") < 0.5 * history["train_loss"][0]
    result = evaluate(model, data)
    with torch.no_grad():
        logits = model(x.to(DEVICE)).cpu()
    acc = (logits.argmax(-1) == (x + 1) % 5).double().mean().item()  # over all N*T tokens
    assert result["accuracy"] == pytest.approx(acc, abs=1e-12) and acc > 0.9
    assert result["loss"] == pytest.approx(F.cross_entropy(logits.reshape(-1, 5), ((x + 1) % 5).reshape(-1)).item(),
                                           rel=1e-5)


# ---------------------------------------------------------------- failures

class InfModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * float("inf")


def test_non_finite_loss_raises_helpful_error():
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 0 \(epoch 0\).*lower lr \(now 0.1\)"):
        run(InfModel(), separable(16), lr=0.1, batch_size=8)


def test_huge_lr_diverges_to_floating_point_error():
    """Least squares with lr far above 1/curvature: |w| grows geometrically until the loss overflows."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match=r"loss became (inf|nan) at step \d+ .*lower lr \(now 100\)"):
        run(nn.Linear(4, 1), TensorDataset(x, x.sum(1, keepdim=True)), epochs=20, lr=100.0, batch_size=32,
            momentum=0.0, loss_fn=F.mse_loss)


EMPTY = TensorDataset(torch.empty(0, 4), torch.empty(0, dtype=torch.long))


@pytest.mark.parametrize(("kwargs", "exc", "name"), [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"epochs": 1.5}, TypeError, "epochs"),
    ({"lr": -1}, ValueError, "lr"),
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"momentum": 1.0}, ValueError, "momentum"),
    ({"momentum": -0.1}, ValueError, "momentum"),
    ({"weight_decay": -1e-4}, ValueError, "weight_decay"),
    ({"grad_clip": 0.0}, ValueError, "grad_clip"),
    ({"seed": -1}, ValueError, "seed"),
    ({"model": "mlp"}, TypeError, "model"),
    ({"train_data": [(torch.zeros(4), 0)]}, TypeError, "train_data"),
    ({"train_data": EMPTY}, ValueError, "train_data"),
    ({"val_data": EMPTY}, ValueError, "val_data"),
    ({"callbacks": [object()]}, TypeError, "callbacks"),
    ({"loss_fn": "cross_entropy"}, TypeError, "loss_fn"),
    ({"lr_schedule": "cosine"}, TypeError, "lr_schedule"),
    ({"lr_schedule": -0.5}, ValueError, "lr"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
])
def test_bad_arguments_name_the_parameter(kwargs, exc, name):
    model = linear()
    before = flat(model).clone()
    args = {"model": model, "train_data": separable(16), **kwargs}
    with pytest.raises(exc, match=name):
        fit(args.pop("model"), args.pop("train_data"), progress=False, device="cpu", **args)
    assert torch.equal(flat(model), before)  # rejected before training touched the model


def test_evaluate_and_predict_reject_bad_input():
    with pytest.raises(TypeError, match="model"):
        evaluate("model", separable(8))
    with pytest.raises(TypeError, match="data"):
        predict(linear(), [1, 2, 3])
    with pytest.raises(ValueError, match="batch_size"):
        predict(linear(), separable(8), batch_size=0)


# ---------------------------------------------------------------- HF Accelerate, 2 CPU processes

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("accelerate_fit_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_fit_under_accelerate_with_two_cpu_processes(tmp_path):
    pytest.importorskip("accelerate")
    script = _load_script()
    # `accelerate launch --cpu` starts a single process; 2 CPU processes go through the torchrun launcher
    # (--multi_gpu), and the script's Accelerator(cpu=True) makes them gloo/CPU ranks.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(SCRIPT), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf"),  # no user accelerate config
           "ACCELERATE_USE_CPU": "true", "KIT_BUDGET": "smoke",
           "CUDA_VISIBLE_DEVICES": ""}  # two CPU ranks (gloo) on a GPU machine too: torchrun would pick NCCL
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"accelerate launch failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["num_processes"] == 2 for r in ranks)

    # DDP keeps the replicas in sync; the reported loss is reduced over both ranks
    assert ranks[0]["weights"] == ranks[1]["weights"] and ranks[0]["checksum"] == ranks[1]["checksum"]
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"]
    loss = ranks[0]["train_loss"]
    assert len(loss) == script.EPOCHS and loss[-1] < 0.9 * loss[0]

    def one_process(batch_size: int) -> tuple[History, nn.Module]:
        model = script.make_model()
        history = fit(model, script.make_data(), epochs=script.EPOCHS, lr=script.LR, momentum=script.MOMENTUM,
                      batch_size=batch_size, seed=script.SEED, progress=False, device="cpu")
        return history, model

    # each rank sees half the batches of a single-process run ...
    h1, _ = one_process(script.BATCH_SIZE)
    per_epoch_1 = h1["step"][0]
    assert per_epoch_1 == steps_per_epoch(script.N_SAMPLES, script.BATCH_SIZE) == 8
    assert ranks[0]["steps_per_epoch"] == ranks[1]["steps_per_epoch"] == per_epoch_1 // 2
    assert ranks[0]["step"] == [per_epoch_1 // 2 * (e + 1) for e in range(script.EPOCHS)]

    # ... and averaging the two ranks' gradients is SGD on their union. Accelerate shards the seeded
    # shuffled batches round-robin (rank r takes batches r, r + 2, ...), so step k of the 2-process run
    # sees batches 2k and 2k + 1: exactly one process with twice the batch size and the same seed.
    h2, double = one_process(2 * script.BATCH_SIZE)
    torch.testing.assert_close(torch.tensor(ranks[0]["weights"]), flat(double), atol=1e-5, rtol=1e-5)
    assert loss == pytest.approx(h2["train_loss"], rel=1e-5)


def test_constant_schedule_object_in_fit():
    rec = Recorder()
    run(linear(), separable(16), epochs=1, batch_size=8, lr=0.9, lr_schedule=Constant(0.03), callbacks=[rec])
    assert rec.opt_lr == [0.03, 0.03]  # the schedule wins over lr
