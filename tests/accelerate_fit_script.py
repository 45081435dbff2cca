"""Helper for tests/test_train.py (not a test module): run ``kit.train.fit`` under HF Accelerate.

Usage: ``accelerate launch --cpu --num_processes N tests/accelerate_fit_script.py OUTDIR``, or plain
``python tests/accelerate_fit_script.py OUTDIR`` for a single process. Every process writes
``OUTDIR/rank{R}.json`` with its final weights (checksum and values), the history's train_loss and
step columns, the number of processes and the length of its prepared training loader.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

N_SAMPLES, BATCH_SIZE, EPOCHS, SEED, LR, MOMENTUM = 64, 8, 2, 0, 0.2, 0.0


def make_data(n: int = N_SAMPLES, seed: int = SEED) -> TensorDataset:
    """A linearly separable two-class problem in 4 dimensions, the same on every process."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 1.5]) > 0).long()
    return TensorDataset(x, y)


def make_model(seed: int = SEED) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def main(outdir: str) -> None:
    import accelerate

    from kit.train import Callback, fit

    class LoaderLength(Callback):
        def on_fit_start(self, state) -> None:
            self.steps_per_epoch = state.total_steps // state.epochs

    acc = accelerate.Accelerator(cpu=True)
    model = make_model()
    counter = LoaderLength()
    history = fit(model, make_data(), epochs=EPOCHS, lr=LR, momentum=MOMENTUM, batch_size=BATCH_SIZE, seed=SEED,
                  progress=False, accelerator=acc, callbacks=[counter])
    weights = torch.cat([p.detach().reshape(-1) for p in acc.unwrap_model(model).parameters()])
    record = {"rank": acc.process_index, "num_processes": acc.num_processes,
              "checksum": float(weights.double().sum()), "weights": weights.tolist(),
              "train_loss": history["train_loss"], "step": history["step"],
              "steps_per_epoch": counter.steps_per_epoch}
    Path(outdir, f"rank{acc.process_index}.json").write_text(json.dumps(record))
    acc.wait_for_everyone()
    acc.end_training()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import kit from the repository
    main(sys.argv[1])
    # The results are written and the process group is destroyed. torch's gloo backend can still abort
    # ("terminate called without an active exception", SIGABRT) while C++ threads are torn down at
    # interpreter exit (seen about 1 run in 10 on a busy 2-core box), so leave without running those destructors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
