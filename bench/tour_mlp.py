"""The tour's claim at the cpu budget: MLP test accuracy on MNIST-5k after 5 and 20 epochs, 3 seeds."""

from __future__ import annotations

import statistics
import time

from common import write_result

from kit.recipes.common import train_classifier

SEEDS = (0, 1, 2)


def main() -> None:
    out = {}
    for epochs in (5, 20):
        start = time.perf_counter()
        acc = [train_classifier("mnist5k", seed=s, epochs=epochs, lr=0.1, progress=False).test["accuracy"]
               for s in SEEDS]
        out[f"epochs_{epochs}"] = {"test_accuracy": acc, "mean": statistics.mean(acc),
                                   "seconds_per_run": (time.perf_counter() - start) / len(SEEDS)}
        print(epochs, acc)
    write_result("tour_mlp", {"budget": "cpu", "seeds": list(SEEDS), **out})


if __name__ == "__main__":
    main()
