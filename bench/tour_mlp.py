"""The tour's claim at the cpu budget: MLP test accuracy on MNIST-5k after 5 and 20 epochs, 3 seeds."""

from __future__ import annotations

import statistics

import common
from common import measure, use_device, write_result

from kit.recipes.common import train_classifier

SEEDS = (0, 1, 2)


def main() -> None:
    use_device(common.parser(__doc__.splitlines()[0]).parse_args().device)
    out = {}
    for epochs in (5, 20):
        seconds, acc = measure(lambda e=epochs: [
            train_classifier("mnist5k", seed=s, epochs=e, lr=0.1, progress=False).test["accuracy"] for s in SEEDS])
        out[f"epochs_{epochs}"] = {"test_accuracy": acc, "mean": statistics.mean(acc),
                                   "seconds_per_run": seconds / len(SEEDS)}
        print(epochs, acc)
    write_result("tour_mlp", {"budget": "cpu", "seeds": list(SEEDS), **out})


if __name__ == "__main__":
    main()
