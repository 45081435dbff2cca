"""Training a height model on scene patches (on the kit's one training loop), prediction and evaluation.

As in the paper: AdamW (lr 1e-3, weight decay 1e-2), a linear warm-up over the first 10% of the steps and then a
linear decay to 0; the loss is the shift-resilient loss (``radius`` 0 is the plain loss).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..budget import model_device
from ..runs import Checkpoints, fingerprint, fingerprint_model
from ..schedules import Linear, Warmup
from ..seeding import check_seed
from ..train import History, fit_resumable, make_optimizer
from ..validate import check_float, check_int
from .data import Patches, standardised
from .loss import BASES, shift_resilient_loss
from .metrics import footprint_errors, map_errors
from .scene import Scene

FORMAT = "kit.canopy.training/1"


@dataclass(frozen=True)
class HeightLoss:
    """The loss ``fit`` calls on (U-Net output (B, 1, H, W), labels (B, T, H, W)): the shift-resilient loss."""

    radius: int = 1
    base: str = "huber"
    delta: float = 3.0
    min_footprints: int = 5

    def __post_init__(self) -> None:
        check_int(self.radius, "radius", low=0)
        if self.base not in BASES:
            raise ValueError(f"unknown base {self.base!r}; choose one of {', '.join(BASES)}")
        check_float(self.delta, "delta", low=0.0, low_open=True)
        check_int(self.min_footprints, "min_footprints", low=0)

    def __call__(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return shift_resilient_loss(output, labels, radius=self.radius, base=self.base, delta=self.delta,
                                    min_footprints=self.min_footprints)


def train(model: nn.Module, patches: Patches, *, epochs: int = 10, loss: HeightLoss | None = None,
          lr: float = 1e-3, weight_decay: float = 1e-2, warmup: float = 0.1, batch_size: int = 16, seed: int = 0,
          checkpoint_dir: str | os.PathLike | None = None, progress: bool = True, start_at_mean: bool = True
          ) -> History:
    """Train ``model`` (bands -> height map) on ``patches`` with AdamW and warm-up then linear decay; a checkpoint
    per epoch in ``checkpoint_dir`` lets an interrupted run resume with identical results. ``start_at_mean``: the
    output layer's bias starts at the mean footprint height, so the first steps learn the map, not its level."""
    if not isinstance(patches, Patches):
        raise TypeError(f"patches must be kit.canopy.Patches; got {type(patches).__name__}")
    epochs = check_int(epochs, "epochs", low=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    warmup = check_float(warmup, "warmup", low=0.0, high=1.0, high_open=True)
    batch_size = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed)
    loss = HeightLoss() if loss is None else loss
    if not isinstance(loss, HeightLoss):
        raise TypeError(f"loss must be a kit.canopy.HeightLoss; got {type(loss).__name__}")
    if patches.image.shape[0] != _in_channels(model):
        raise ValueError(f"the model reads {_in_channels(model)} bands; the patches have {patches.image.shape[0]}")
    if start_at_mean:
        _start_at_mean(model, patches)
    opt = make_optimizer("adamw", model.parameters(), lr, 0.0, weight_decay)
    total = epochs * -(-len(patches) // batch_size)
    schedule = Warmup(Linear(lr, 0.0, total), int(warmup * total))
    config = {"fingerprint": fingerprint({"epochs": epochs, "lr": lr, "weight_decay": weight_decay, "warmup": warmup,
                                          "batch_size": batch_size, "seed": seed, "loss": repr(loss),
                                          "model": fingerprint_model(model),
                                          "positions": patches.positions.tolist(), "tracks": patches.tracks}),
              "epochs": epochs, "seed": seed}
    checkpoints = None if checkpoint_dir is None else Checkpoints(checkpoint_dir, prefix="canopy", format=FORMAT,
                                                                 kind="canopy training")
    return fit_resumable(model, patches, optimizer=opt, epochs=epochs, seed=seed, checkpoints=checkpoints,
                         config=config, progress=progress, desc="canopy", loss_fn=loss, batch_size=batch_size,
                         lr_schedule=schedule)


def _start_at_mean(model: nn.Module, patches: Patches) -> None:
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    if last.bias is not None and len(patches.scene.values):
        with torch.no_grad():
            last.bias.fill_(float(np.mean(patches.scene.values)))


def _in_channels(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise TypeError("model must contain a Conv2d (a U-Net from bands to a height map)")


@torch.no_grad()
def predict(model: nn.Module, scene: Scene, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The model's height map (H, W) in metres for the whole scene (bands standardised with ``stats``)."""
    was_training = model.training
    model.eval()
    try:
        out = model(standardised(scene, stats)[None].to(model_device(model)))
    finally:
        model.train(was_training)
    return out[0, 0].double().cpu().numpy()


def evaluate(model: nn.Module, scene: Scene, stats: tuple[np.ndarray, np.ndarray], *, steep: float = 20.0
             ) -> dict[str, Any]:
    """Errors of the model's map: against the true map (overall, > 5 m in the ``_tall`` keys) and in steep terrain
    (slope > ``steep`` degrees), and against the scene's footprints (the paper's way); masked pixels (``valid``
    False) are left out."""
    steep = check_float(steep, "steep", low=0.0, high=90.0, low_open=True, high_open=True)
    pred = predict(model, scene, stats)
    footprints = footprint_errors(pred[None], scene.label_layers()[None])
    out: dict[str, Any] = {"footprints": footprints, "prediction": pred}
    if scene.height is not None:
        valid = np.ones(scene.shape, dtype=bool) if scene.valid is None else scene.valid
        out["map"] = map_errors(pred, scene.height, mask=valid)
        out["steep"] = map_errors(pred, scene.height, mask=valid & (scene.slope > steep))
    return out
