"""Sparse Model Soups at the cpu budget: the accuracy table notebook 04 states, and parallel ingredient training.

Part 1, speed: one SMS phase (small CNN, MNIST-5k, 90% sparsity, m ingredients of 2 retraining epochs)
with workers=1 and workers=2 (spawned processes, one intra-op thread each; the sequential run also
uses one thread, so both give the same soup): wall time of each and whether the results agree.
Part 2, accuracy (MNIST-5k, 10 dense epochs, 3 ingredients x 2 retraining epochs in one phase, IMP
with 6, seeds 0-2, sparsities 80/90/95%): soup, best ingredient, output ensemble, IMP, ECE on the MLP
and the CNN (BatchNorm recalibrated everywhere), and uniform vs greedy on the CNN at 90%.
Part 3, the paper's mechanism in a setting fixed in advance (not searched): the CNN with BatchNorm on
MNIST-5k, 90% sparsity in one phase, 3 ingredients of 2 retraining epochs that differ in batch order,
weight decay and augmentation (vary='mixed'), SLR restarting at the original peak rate 0.1, IMP with
6 epochs; 5 seeds; soup minus best ingredient and soup minus IMP, paired by seed, with 95% t-intervals.

    python bench/soups.py [--skip-accuracy] [--only diverse] [--seeds 0,1,2] [--ingredients 3]
"""

from __future__ import annotations

import statistics

import common
import torch
from common import measure, use_device, write_result

from kit.recipes import imp as px
from kit.recipes import soups as sx

SPARSITIES = (0.8, 0.9, 0.95)


def speed(ingredients: int) -> dict:
    """Wall time of one SMS phase with ``ingredients`` copies, in two processes and in this one."""
    torch.set_num_threads(1)  # the sequential run sums like a worker does: same results
    dense = px.train_dense("mnist5k", 0, px.EPOCHS["cpu"], model="cnn", **px.CNN)
    out, results = {}, {}
    for workers in (1, 2):
        out[f"workers_{workers}_s"], results[workers] = measure(
            lambda w=workers: sx.sms(dense, 0.9, ingredients=ingredients, retrain_epochs=2, workers=w))
    a, b = (results[w].model.state_dict() for w in (1, 2))
    out.update(ingredients=ingredients, speedup=out["workers_1_s"] / out["workers_2_s"],
               same_soup=all(torch.equal(a[k], b[k]) for k in a),
               same_numbers=results[1].phases[-1].accuracy == results[2].phases[-1].accuracy)
    print(out)
    return out


def accuracy(seeds: list[int], ingredients: int) -> dict:
    """Notebook 04's tables at the cpu budget."""
    epochs, retrain = px.EPOCHS["cpu"], sx.RETRAIN_EPOCHS["cpu"]
    out = {"dense_epochs": epochs, "retrain_epochs_per_ingredient": retrain, "ingredients": ingredients,
           "imp_retrain_epochs": ingredients * retrain, "seeds": seeds, "vary": "seed", "schedule": sx.SCHEDULE}
    for name, kwargs in (("mlp", {}), ("cnn", {"model": "cnn", **px.CNN})):
        dense = [px.train_dense("mnist5k", s, epochs, **kwargs) for s in seeds]
        grid = sx.compare_sms_imp(dense, SPARSITIES, ingredients=ingredients, retrain_epochs=retrain)
        out[name] = grid.to_dict()
        out[name]["soup_minus_best"], out[name]["soup_minus_imp"] = sx.mean_gain(grid), sx.mean_gain(grid, "IMP")
        print(name)
        for row in grid.rows():
            print("  " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
        if name == "cnn":
            greedy = sx.compare_sms_imp(dense, (0.9,), ingredients=ingredients, retrain_epochs=retrain,
                                        merge="greedy", include_imp=False)
            out["cnn_greedy_90"] = greedy.to_dict()
            print("  greedy", greedy.rows())
    return out


def main() -> None:
    parser = common.parser()
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ingredients", type=int, default=sx.INGREDIENTS)
    parser.add_argument("--only", choices=("diverse",), help="measure only this part; keep the rest")
    args = parser.parse_args()
    use_device(args.device)
    payload = {"data": "mnist5k"}
    keep = ("accuracy", "diverse", "verdicts")
    if args.only is None:
        payload["speed"] = speed(args.ingredients)
        if not args.skip_accuracy:
            payload["accuracy"] = accuracy([int(s) for s in args.seeds.split(",")], args.ingredients)
    else:
        keep += ("speed",)
    payload["diverse"] = diverse()
    payload["verdicts"] = verdicts(payload["diverse"])
    write_result("soups", payload, keep=keep)


DIVERSE_SEEDS = (0, 1, 2, 3, 4)
T_975 = {4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # Student t, two-sided 95%, by degrees of freedom


def interval(values: list[float]) -> dict:
    """Mean and 95% t-interval of paired differences."""
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = T_975[len(values) - 1] * sd / len(values) ** 0.5
    return {"values": values, "mean": mean, "low": mean - half, "high": mean + half}


def diverse() -> dict:
    """SMS with diverse ingredients against its best ingredient and IMP, 5 seeds, fixed setting."""
    torch.set_num_threads(1)
    dense = [px.train_dense("mnist5k", s, px.EPOCHS["cpu"], model="cnn", **px.CNN) for s in DIVERSE_SEEDS]
    grid = sx.compare_sms_imp(dense, (0.9,), vary="mixed", retrain_epochs=sx.RETRAIN_EPOCHS["cpu"])
    out = {"model": "cnn (BatchNorm)", "sparsity": 0.9, "phases": 1, "ingredients": sx.INGREDIENTS,
           "retrain_epochs_per_ingredient": sx.RETRAIN_EPOCHS["cpu"], "vary": "mixed", "schedule": sx.SCHEDULE,
           "seeds": list(DIVERSE_SEEDS), "accuracy": {k: grid.accuracy.get(k, 0.9) for k in grid.accuracy.labels},
           "soup_minus_best": interval(grid.gain(0.9)), "soup_minus_imp": interval(grid.gain(0.9, "IMP")),
           "sparsity_equal": grid.sparsity_equal, "runs": grid.runs}
    print({k: v for k, v in out.items() if k != "runs"})
    return out


def verdicts(d: dict) -> dict:
    """The paper's claim: the soup beats its ingredients and IMP at equal compute."""
    best, imp = d["soup_minus_best"], d["soup_minus_imp"]
    holds = best["low"] > 0 and imp["low"] > 0
    why = (f"soup - best ingredient {100 * best['mean']:+.2f} points (95% CI {100 * best['low']:+.2f} to "
           f"{100 * best['high']:+.2f}), soup - IMP {100 * imp['mean']:+.2f} ({100 * imp['low']:+.2f} to "
           f"{100 * imp['high']:+.2f}), {len(d['seeds'])} seeds")
    return {"soup_beats_ingredients_and_imp": {"holds": holds, "why": why}}


if __name__ == "__main__":
    main()
