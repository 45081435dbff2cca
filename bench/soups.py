"""Sparse Model Soups at the cpu budget: the accuracy table notebook 04 states, and parallel ingredient training.

Part 1, speed: one SMS phase (small CNN, MNIST-5k, 90% sparsity, m ingredients of 2 retraining epochs)
with workers=1 and workers=2 (spawned processes, one intra-op thread each; the sequential run also
uses one thread, so both give the same soup): wall time of each and whether the results agree.
Part 2, accuracy (MNIST-5k, 10 dense epochs, 3 ingredients x 2 retraining epochs in one phase, IMP
with 6, seeds 0-2, sparsities 80/90/95%): soup, best ingredient, output ensemble, IMP, ECE on the MLP
and the CNN (BatchNorm recalibrated everywhere), and uniform vs greedy on the CNN at 90%.

    python bench/soups.py [--skip-accuracy] [--seeds 0,1,2] [--ingredients 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import write_result

from kit.recipes import imp as px
from kit.recipes import soups as sx

SPARSITIES = (0.8, 0.9, 0.95)


def speed(ingredients: int) -> dict:
    """Wall time of one SMS phase with ``ingredients`` copies, in two processes and in this one."""
    torch.set_num_threads(1)  # the sequential run sums like a worker does: same results
    dense = px.train_dense("mnist5k", 0, px.EPOCHS["cpu"], model="cnn", **px.CNN)
    out, results = {}, {}
    for workers in (1, 2):
        start = time.perf_counter()
        results[workers] = sx.sms(dense, 0.9, ingredients=ingredients, retrain_epochs=2, workers=workers)
        out[f"workers_{workers}_s"] = time.perf_counter() - start
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ingredients", type=int, default=sx.INGREDIENTS)
    args = parser.parse_args()
    payload = {"data": "mnist5k", "speed": speed(args.ingredients)}
    if not args.skip_accuracy:
        payload["accuracy"] = accuracy([int(s) for s in args.seeds.split(",")], args.ingredients)
    write_result("soups", payload, keep=("accuracy",))


if __name__ == "__main__":
    main()
