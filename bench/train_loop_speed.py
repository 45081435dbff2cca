"""Speed of the one training loop: an MLP 784-300-100-10 on 60,000 samples, seconds per epoch."""

from __future__ import annotations

import common
import torch
from common import measure, use_device, write_result
from torch.utils.data import TensorDataset

import kit


def main(samples: int = 60_000, epochs: int = 3) -> None:
    on = use_device(common.parser(__doc__.splitlines()[0]).parse_args().device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(samples, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (samples,), generator=g)
    kit.seed_everything(0)
    model = kit.models.MLP().to(on)
    total, history = measure(lambda: kit.train.fit(model, TensorDataset(x, y), epochs=epochs, batch_size=128,
                                                   progress=False))
    per_epoch = history["seconds"]
    write_result("train_loop_speed", {"samples": samples, "batch_size": 128, "seconds_per_epoch": per_epoch,
                                      "median_seconds_per_epoch": sorted(per_epoch)[len(per_epoch) // 2],
                                      "total_seconds": total})
    print(f"seconds per epoch: {per_epoch}")


if __name__ == "__main__":
    main()
