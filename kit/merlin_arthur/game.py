"""The Merlin-Arthur game on the one training loop: Arthur minimises L_Merlin + gamma * L_Morgana.

Each step of :func:`play` is a step of ``kit.train.fit``: a callback asks both provers for their features
on the batch and hands Arthur the batch twice (first Merlin's view, then Morgana's); Arthur takes his
optimizer step on :class:`~kit.merlin_arthur.losses.GameLoss`; then each learned prover takes one step
against the updated Arthur (alternating updates). A checkpoint after every epoch lets a rerun resume
with identical results.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import Dataset

from ..budget import device_for
from ..runs import Checkpoints, fingerprint, fingerprint_data, fingerprint_model
from ..seeding import check_seed
from ..train import Callback, History, TrainState, fit_resumable, make_optimizer
from ..validate import check_float, check_int
from .arthur import Arthur, mask_features
from .losses import GameLoss
from .provers import Prover, check_k

FORMAT = "kit.merlin_arthur.game/1"


class GameCallback(Callback):
    """Shows Arthur each batch through Merlin's and Morgana's features, counts completeness and soundness
    on the way (on the device, read once per epoch), and steps the learned provers after Arthur."""

    def __init__(self, merlin: Prover, morgana: Prover) -> None:
        self.merlin, self.morgana = merlin, morgana

    def on_fit_start(self, state: TrainState) -> None:
        self._zero(state.device)

    def _zero(self, device: torch.device) -> None:
        self.complete = torch.zeros((), dtype=torch.int64, device=device)
        self.sound = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0
        self.prover_losses: dict[str, list[torch.Tensor]] = {"merlin": [], "morgana": []}

    def before_step(self, state: TrainState) -> None:
        x, y = state.batch[0], state.batch[1]
        arthur = state.model
        self.x, self.y = x, y
        shown = [mask_features(x, prover(x, y, arthur), prover.baseline) for prover in (self.merlin, self.morgana)]
        state.batch = (torch.cat(shown), torch.cat([y, y]))

    def after_step(self, state: TrainState) -> None:
        n = self.y.shape[0]
        answer = state.output.argmax(dim=-1)
        self.complete += (answer[:n] == self.y).sum()
        morgana = answer[n:]
        self.sound += ((morgana == self.y) | (morgana == state.output.shape[-1] - 1)).sum()
        self.seen += n
        for role, prover in (("merlin", self.merlin), ("morgana", self.morgana)):
            if prover.trainable:
                self.prover_losses[role].append(prover.update(self.x, self.y, state.model))

    def on_epoch_end(self, state: TrainState) -> None:
        record = state.history.records[-1]
        record["completeness"] = int(self.complete) / self.seen
        record["soundness"] = int(self.sound) / self.seen
        for role, losses in self.prover_losses.items():
            if losses:
                record[f"{role}_loss"] = float(torch.stack(losses).mean())
        self._zero(state.device)


def _check_data(data: Any, name: str) -> Dataset:
    if not isinstance(data, Dataset):
        raise TypeError(f"{name} must be a torch Dataset of (features, class) pairs; got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name} is empty")
    return data


def _features(data: Dataset) -> int:
    return data[0][0].numel()


def play(arthur: Arthur, train_data: Dataset, merlin: Prover, morgana: Prover, *, gamma: float = 2.0,
         epochs: int = 5, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
         checkpoint_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
         progress: bool = True) -> History:
    """Train Arthur in the game against ``merlin`` and ``morgana`` for ``epochs`` (Adam at ``lr``); returns the
    per-epoch History with ``train_loss``, ``completeness`` and ``soundness`` on the training batches
    (``train_accuracy`` counts both provers' views together) and each learned prover's loss.

    ``gamma = 0`` trains Arthur on Merlin's features only (Morgana is still asked, so soundness is
    measured). With ``checkpoint_dir`` an interrupted run resumes from its last finished epoch.
    """
    if not isinstance(arthur, Arthur):
        raise TypeError(f"arthur must be a kit.merlin_arthur.Arthur (a classifier with a \"don't know\" output); "
                        f"got {type(arthur).__name__}")
    for name, prover in (("merlin", merlin), ("morgana", morgana)):
        if not isinstance(prover, Prover):
            raise TypeError(f"{name} must be a kit.merlin_arthur prover; got {type(prover).__name__}")
    if merlin.role != "merlin" or morgana.role != "morgana":
        raise ValueError(f"merlin needs role='merlin' and morgana role='morgana'; got {merlin.role!r} and "
                         f"{morgana.role!r}")
    gamma = check_float(gamma, "gamma", low=0.0)
    epochs = check_int(epochs, "epochs", low=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    batch_size = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed)
    train_data = _check_data(train_data, "train_data")
    for prover in (merlin, morgana):
        check_k(prover.k, _features(train_data))

    dev = device_for(arthur, device)
    if device is not None:
        arthur.to(dev)
    for prover in (merlin, morgana):
        prover.to(dev)
    opt = make_optimizer("adam", arthur.parameters(), lr, 0.0, 0.0)
    config = {"gamma": gamma, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
              "merlin": merlin.describe(), "morgana": morgana.describe(),
              "arthur": fingerprint_model(arthur), "data": fingerprint_data(train_data)}
    config = {"fingerprint": fingerprint(config), **{k: config[k] for k in ("gamma", "epochs", "seed")}}
    checkpoints = None if checkpoint_dir is None else Checkpoints(checkpoint_dir, prefix="game", format=FORMAT,
                                                                 kind="Merlin-Arthur game")
    return fit_resumable(arthur, train_data, optimizer=opt, epochs=epochs, seed=seed, checkpoints=checkpoints,
                         config=config, state={"merlin": merlin, "morgana": morgana}, progress=progress,
                         desc="game", loss_fn=GameLoss(gamma), batch_size=batch_size,
                         callbacks=[GameCallback(merlin, morgana)])
