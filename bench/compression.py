"""Compression-aware training at the cpu budget: the numbers notebook 02 states, and step-time ratios.

Part 1, accuracy (MNIST-5k, 10 epochs, seeds 0-2, no retraining after compression): on the MLP,
every method of ``compression.MLP_METHODS`` but spectral k-support pruned to each sparsity in
{0.5, 0.8, 0.9, 0.95, 0.98} by global magnitude, and ``LOW_RANK`` split by truncated SVD; on the small CNN,
``UNSTRUCTURED_CNN`` by global magnitude and ``FILTERS`` by L1 filter pruning. Part 2, speed: the
median time of one optimizer step on the MLP (batch 128) for SGD, the nuclear-norm penalty (a full
SVD per layer and step) and SFW in spectral k-support balls (top-k singular triplets), as ratios,
plus the spectral LMO alone against a full SVD of the 300x784 layer's momentum.

    python bench/compression.py [--skip-accuracy] [--seeds 0,1,2]
"""

from __future__ import annotations

import statistics

import common
import torch
from common import device, timed, use_device, write_result

import kit
from kit.frankwolfe import SpectralKSupportBall
from kit.recipes import compression as cx
from kit.recipes.frank_wolfe import SGD


def accuracy(seeds: list[int]) -> dict:
    """Every sweep of notebook 02 at the cpu budget."""
    epochs = cx.EPOCHS["cpu"]
    mlp_runs = cx.train(cx.MLP_METHODS, "mnist5k", seeds, epochs, progress=False)
    cnn_runs = cx.train(cx.CNN_METHODS, "mnist5k", seeds, epochs, model="cnn", progress=False, **cx.CNN)
    sweeps = {
        "mlp_global": cx.evaluate({m.label: mlp_runs[m.label] for m in cx.MLP_METHODS[:-1]}, "global", cx.SPARSITIES,
                                  seeds),
        "mlp_rank": cx.evaluate({m.label: mlp_runs[m.label] for m in cx.LOW_RANK}, "rank", cx.RANK_SPARSITIES, seeds),
        "cnn_global": cx.evaluate({m.label: cnn_runs[m.label] for m in cx.UNSTRUCTURED_CNN}, "global",
                                  cx.SPARSITIES, seeds),
        "cnn_filters": cx.evaluate({m.label: cnn_runs[m.label] for m in cx.FILTERS}, "filters", cx.FILTER_FRACTIONS,
                                   seeds),
    }
    out = {"epochs": epochs}
    for name, sweep in sweeps.items():
        out[name] = {"rows": sweep.rows(), **sweep.to_dict()}
        print(name)
        for row in sweep.rows():
            print("  " + "  ".join(f"{v:.3f}" if isinstance(v, float) else f"{v:34s}" for v in row.values()))
    return out


def speed(repeats: int) -> dict:
    """Optimizer-step times on the MLP, and the spectral LMO against a full SVD."""
    data = kit.data.load("mnist5k", seed=0)
    batch = next(iter(data.loaders(batch_size=128)["train"]))
    steps = {}
    for method in (SGD, cx.NUCLEAR, cx.SPECTRAL_K_SUPPORT):
        kit.seed_everything(0)
        steps[method.label] = cx.step_time(method, kit.models.MLP(data.input_shape), batch, repeats=repeats)
    base = steps[SGD.label]
    result = {"step_ms": {k: 1e3 * v for k, v in steps.items()},
              "step_ratio_to_sgd": {k: v / base for k, v in steps.items()},
              "spectral_step_over_nuclear_step": steps[cx.SPECTRAL_K_SUPPORT.label] / steps[cx.NUCLEAR.label]}
    # the LMO alone on a slowly changing momentum (warm start), against a full SVD of the same matrix
    g = torch.Generator().manual_seed(0)
    on = device()
    m = (torch.randn(300, 784, generator=g) * torch.logspace(0, -2, 784)).to(on)  # a decaying spectrum
    region = SpectralKSupportBall((300, 784), cx.K, 1.0)
    lmo_t, svd_t = [], []
    for _ in range(repeats):
        m.add_(torch.randn(300, 784, generator=g).to(on), alpha=1e-3)
        lmo_t.append(timed(lambda: region.lmo(m), on))
        svd_t.append(timed(lambda: torch.linalg.svd(m, full_matrices=False), on))
    result["spectral_lmo_ms"] = 1e3 * statistics.median(lmo_t)
    result["full_svd_ms"] = 1e3 * statistics.median(svd_t)
    result["spectral_lmo_over_full_svd"] = statistics.median(lmo_t) / statistics.median(svd_t)
    print({k: v for k, v in result.items() if not isinstance(v, dict)}, result["step_ms"])
    return result


def main() -> None:
    parser = common.parser()
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    use_device(args.device)
    payload = {"data": "mnist5k", "k": cx.K, "width": cx.WIDTH, "speed": speed(args.repeats)}
    if not args.skip_accuracy:
        payload["accuracy"] = accuracy([int(s) for s in args.seeds.split(",")])
        payload["verdicts"] = verdicts(payload["accuracy"])
    write_result("compression", payload, keep=("accuracy", "verdicts"))


def verdicts(acc: dict) -> dict:
    """The paper's claim: k-support SFW models survive unstructured pruning without retraining, unlike SGD."""
    rows = {r["method"]: r for r in acc["mlp_global"]["rows"]}
    ks, sgd = rows[cx.K_SUPPORT.label], rows["SGD + weight decay"]
    gaps = {s: ks[f"global {s}"] - sgd[f"global {s}"] for s in (0.95, 0.98)}
    best = max(rows.values(), key=lambda r: r["global 0.98"])
    holds = gaps[0.95] >= 0.02 and gaps[0.98] >= 0.10 and sgd["dense"] - ks["dense"] <= 0.015
    why = (f"k-support minus SGD after pruning without retraining: {100 * gaps[0.95]:+.1f} points at 95%, "
           f"{100 * gaps[0.98]:+.1f} at 98% (dense {100 * (ks['dense'] - sgd['dense']):+.1f}); the most robust "
           f"at 98% is {best['method']} ({best['global 0.98']:.1%})")
    return {"ksupport_survives_pruning": {"holds": holds, "why": why}}


if __name__ == "__main__":
    main()
