"""Frank-Wolfe at the cpu budget: step cost against SGD, and the accuracy table of notebook 01.

Part 1, speed: per region and rescaling mode, the time of ``optimizer.step()`` alone and of a whole
training step (forward, backward, step), each divided by the same for torch.optim.SGD with momentum
on the same MLP 784-300-100-10 and batch of 128, measured in one run with interleaved repetitions
(medians). The fused C++ kernels of kit.frankwolfe.kernels are used when built (``fused_kernels``
in the result; ``speed_torch_path`` repeats the measurement without them). ``kernels_per_step``: the
kernels one step launches on an accelerator (counted on the meta device, so measured here too), for
SGD and for SFW on its flat path (kit.frankwolfe.flat) and per parameter, on the three models. Part 2,
accuracy: SGD with momentum and weight decay against SFW over each region and rescaling mode on
MNIST-5k, 3 seeds, and the first-layer weight statistics of tight regions (the settings of notebook 01
at the cpu budget). Part 3, at convergence: SGD and SFW over L2, L-inf, k-sparse and k-support for 40
epochs, each with its learning rate picked from a small grid by validation accuracy; test accuracy and
the gap to SGD paired by seed.

    python bench/frank_wolfe.py [--skip-accuracy] [--only converged] [--repeats 200]
"""

from __future__ import annotations

import statistics

import common
import torch
from common import device, timed, use_device, write_result

import kit
from kit.budget import count_kernel_ops
from kit.frankwolfe import flat, kernels
from kit.recipes import frank_wolfe as fwx

TARGET_STEP = {"l1": 1.5, "l2": 1.5, "linf": 1.5, "k_sparse": 4.0, "k_support": 4.0}
TARGET_TRAIN_STEP = {"l1": 1.1, "l2": 1.1, "linf": 1.1, "k_sparse": 1.5, "k_support": 1.5}


# the models the speed part measures: the cpu budget's MLP; on CUDA also the paper-sized MLP and ResNet-20 (and
# ResNet-20 once more on the per-parameter path, to see what the flat path gains)
SPEED_MODELS = {
    "mlp": ("MLP 784-300-100-10", (1, 28, 28), 128, lambda: kit.models.MLP()),
    "mlp_1000": ("MLP 784-1000-1000-10", (1, 28, 28), 512, lambda: kit.models.MLP(widths=(1000, 1000))),
    "resnet20": ("ResNet-20", (3, 32, 32), 512, lambda: kit.models.resnet20()),
}


def _setup(name: str, rescale: str | None, build, on: torch.device):
    kit.seed_everything(0)
    model = build().to(on)
    if name == "sgd":
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    setup = kit.frankwolfe.sfw_setup(name, width=10.0, lr=0.1, rescale=rescale, k=0.05 if "k_" in name else None)
    return model, setup(model)


def speed(repeats: int, which: str = "mlp") -> dict:
    """Median step and training-step times per region and mode, as ratios to SGD measured alongside."""
    on = device()
    _, shape, batch, build = SPEED_MODELS[which]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *shape, generator=g).to(on)
    y = torch.randint(0, 10, (batch,), generator=g).to(on)
    results = {}
    for rescale in ("diameter", "gradient"):
        runs = {name: _setup(name, rescale, build, on) for name in ["sgd", *TARGET_STEP]}
        step_t = {name: [] for name in runs}
        train_t = {name: [] for name in runs}

        def train_step(model, opt):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        for _ in range(3 if on.type == "cpu" else 10):  # warm-up, and gradients for the step-alone timing
            for model, opt in runs.values():
                train_step(model, opt)
        for _ in range(repeats):
            for name, (model, opt) in runs.items():  # interleaved: all see the same machine state
                step_t[name].append(timed(opt.step, on))
                train_t[name].append(timed(lambda model=model, opt=opt: train_step(model, opt), on))
        base_step, base_train = statistics.median(step_t["sgd"]), statistics.median(train_t["sgd"])
        results[rescale] = {
            name: {"step_ms": 1e3 * statistics.median(step_t[name]),
                   "train_step_ms": 1e3 * statistics.median(train_t[name]),
                   "step_ratio": statistics.median(step_t[name]) / base_step,
                   "train_step_ratio": statistics.median(train_t[name]) / base_train,
                   "step_target": TARGET_STEP.get(name), "train_step_target": TARGET_TRAIN_STEP.get(name)}
            for name in runs}
        for name, r in results[rescale].items():
            print(f"{which:8s} {rescale:9s} {name:10s} step x{r['step_ratio']:.2f}  "
                  f"train step x{r['train_step_ratio']:.2f}")
    return results


def host_syncs(which: str = "mlp") -> dict:
    """Host synchronisations of one SFW step per region (gradient rescaling), counted by CUDA's sync debug mode."""
    import warnings

    on = device()
    if on.type != "cuda":
        return {}
    _, shape, batch, build = SPEED_MODELS[which]
    x, y = torch.rand(batch, *shape, device=on), torch.randint(0, 10, (batch,), device=on)
    counts = {}
    for name in ["sgd", *TARGET_STEP]:
        net, opt = _setup(name, "gradient", build, on)
        for _ in range(2):  # the first step makes the momentum buffers, the second SFW's flat layout
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                opt.step()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts[name] = sum("synchroniz" in str(w.message) for w in caught)
    print(f"{which}: host syncs per step {counts}")
    return counts


def kernel_ops(which: str) -> dict:
    """Kernels one step launches on an accelerator, counted on the ``meta`` device (so on any machine): SGD
    (foreach), and SFW per region and rescaling mode on the flat path and on the per-parameter path."""
    _, _, _, build = SPEED_MODELS[which]
    counts = {}
    for rescale in ("diameter", "gradient"):
        row = {}
        for name in ["sgd", *TARGET_STEP]:
            model, opt = _setup(name, rescale, build, torch.device("cpu"))
            regions = None if name == "sgd" else [c for g in opt.param_groups for c in g["constraints"]]
            model.to("meta")
            for p in model.parameters():
                p.grad = torch.empty_like(p)
            row[name] = {}
            for path, use in (("flat", True), ("per_parameter", False)):
                if name == "sgd":
                    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, foreach=True)
                else:
                    opt = kit.frankwolfe.SFW(model.parameters(), regions, lr=0.1, rescale=rescale)
                with flat.forced(use):
                    for _ in range(2):  # momentum buffers, then the flat layout
                        opt.step()
                    row[name][path] = sum(count_kernel_ops(opt.step).values())
            row[name] = row[name]["flat"] if name == "sgd" else row[name]
        counts[rescale] = row
        print(f"{which:8s} {rescale:9s} kernels per step: " + ", ".join(
            f"{n} {c}" if n == "sgd" else f"{n} {c['flat']} (per parameter {c['per_parameter']})"
            for n, c in row.items()))
    return {"parameters": sum(1 for _ in build().parameters()), "counts": counts}


def main() -> None:
    parser = common.parser()
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--only", choices=("converged", "speed"), help="measure only this part; keep the rest")
    args = parser.parse_args()
    on = use_device(args.device)
    keep = ("accuracy", "first_layer_weights_width_1", "converged", "verdicts")
    payload = {"model": "MLP 784-300-100-10", "batch": 128, "fused_kernels": kernels.enabled() and on.type == "cpu"}
    if args.only in (None, "speed"):
        payload["kernels_per_step"] = {SPEED_MODELS[m][0]: kernel_ops(m) for m in SPEED_MODELS}
        payload["speed"] = speed(args.repeats)
        if kernels.enabled() and on.type == "cpu":  # the same measurement on the pure-torch path, for comparison
            with kernels.switched_off():
                payload["speed_torch_path"] = speed(args.repeats)
        if on.type == "cuda":  # the paper-sized models at batch 512, and the host syncs of a step
            payload["speed_large"] = {SPEED_MODELS[m][0]: speed(args.repeats, m) for m in ("mlp_1000", "resnet20")}
            with flat.forced(False):  # the per-parameter path on the model with most parameters, for comparison
                payload["speed_resnet20_per_parameter"] = speed(args.repeats, "resnet20")
            payload["host_syncs_per_step"] = {SPEED_MODELS[m][0]: host_syncs(m) for m in SPEED_MODELS}
    else:
        keep += ("speed", "speed_torch_path", "kernels_per_step")
    if args.only == "speed":
        keep += ("converged", "verdicts")
        write_result("frank_wolfe", payload, keep=keep)
        return
    payload["converged"] = converged()
    payload["verdicts"] = verdicts(payload["converged"])
    if not args.skip_accuracy and args.only is None:
        epochs = fwx.EPOCHS["cpu"]
        result = fwx.compare((fwx.SGD, *fwx.REGIONS, *fwx.RESCALING[1:]), "mnist5k", seeds=(0, 1, 2), epochs=epochs,
                             progress=False)
        payload["accuracy"] = {"epochs": epochs, "seeds": result.seeds, "rows": result.rows()}
        for row in result.rows():
            print(f"{row['method']:34s} {row['mean']:.4f} +- {row['std']:.4f}")
        shape = fwx.compare(fwx.SHAPE, "mnist5k", seeds=(0,), epochs=epochs, progress=False)
        payload["first_layer_weights_width_1"] = {label: fwx.weight_statistics(runs[0].model)
                                                  for label, runs in shape.runs.items()}
        print(payload["first_layer_weights_width_1"])
    write_result("frank_wolfe", payload, keep=keep)


CONVERGED_THREADS = (2, 1)  # bits, and here conclusions, differ by thread count: measured at both


def converged() -> dict:
    """SGD against SFW at convergence, each at its validation-picked learning rate, at 2 and at 1 thread."""
    epochs = fwx.CONVERGED_EPOCHS["cpu"]
    out = {"epochs": epochs, "seeds": [0, 1, 2], "lr_grid": {k: list(v) for k, v in fwx.LR_GRID.items()},
           "by_threads": {}}
    before = torch.get_num_threads()
    for threads in CONVERGED_THREADS:
        torch.set_num_threads(threads)
        result = fwx.tuned(fwx.CONVERGED, "mnist5k", seeds=(0, 1, 2), epochs=epochs)
        gaps = result.paired_gaps()
        rows = [{**row, "lr": result.lrs[row["method"]],
                 "validation_by_lr": {str(k): v for k, v in result.validation[row["method"]].items()},
                 "gap_to_sgd": gaps.get(row["method"], [0.0] * len(row["values"]))}
                for row in result.comparison.rows()]
        for row in rows:
            print(f"{threads}T {row['method']:24s} lr {row['lr']:<5} {row['mean']:.4f} +- {row['std']:.4f} "
                  f"gap {row['gap_to_sgd']}", flush=True)
        out["by_threads"][str(threads)] = rows
    torch.set_num_threads(before)
    out["rows"] = out["by_threads"][str(CONVERGED_THREADS[0])]
    return out


def verdicts(conv: dict) -> dict:
    """Whether the paper's headline claim holds here, at every thread count measured (margin: 1 point)."""
    parts, holds, best_gap = [], True, None
    for threads, rows in conv["by_threads"].items():
        sfw = [r for r in rows if r["method"] != fwx.SGD.label]
        sgd = next(r for r in rows if r["method"] == fwx.SGD.label)
        best = min(sfw, key=lambda r: statistics.fmean(r["gap_to_sgd"]))
        gap = statistics.fmean(best["gap_to_sgd"])
        best_gap = gap if best_gap is None else best_gap
        holds &= gap <= 0.01
        parts.append(f"at {threads} thread{'s' if threads != '1' else ''} the best region ({best['method']}) is "
                     f"{100 * gap:.2f} points behind SGD (lr {sgd['lr']:g}; SGD per seed "
                     + ", ".join(f"{v:.1%}" for v in sgd["values"]) + ")")
    why = "; ".join(parts) + ("" if holds else "; 'matches' means within 1 point at every thread count")
    return {"sfw_matches_sgd": {"holds": holds, "why": why, "gap": best_gap}}


if __name__ == "__main__":
    main()
