"""Speed of the one training loop: an MLP 784-300-100-10 on 60,000 samples, seconds per epoch.

Also the kernels one step launches on an accelerator (counted on the meta device, so on any machine):
fit's step against a bare forward, backward and SGD step, the difference being fit's own bookkeeping.
"""

from __future__ import annotations

import common
import torch
from common import measure, use_device, write_result
from torch.utils.data import TensorDataset

import kit
from kit.budget import count_kernel_ops


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
    kernels = kernels_per_step(x[:1280], y[:1280])
    write_result("train_loop_speed", {"samples": samples, "batch_size": 128, "seconds_per_epoch": per_epoch,
                                      "median_seconds_per_epoch": sorted(per_epoch)[len(per_epoch) // 2],
                                      "total_seconds": total, "kernels_per_step": kernels})
    print(f"seconds per epoch: {per_epoch}; kernels per step: {kernels}")


def kernels_per_step(x: torch.Tensor, y: torch.Tensor) -> dict:
    """Kernels of one fit step and of a bare step (forward, backward, SGD with momentum), on the meta device."""
    kit.seed_everything(0)
    model = kit.models.MLP()
    fitted = sum(kit.train.step_kernels(model, TensorDataset(x, y), batch_size=128).values())
    bare = model.to("meta")
    opt = torch.optim.SGD(bare.parameters(), lr=0.1, momentum=0.9)
    xb, yb = x[:128].to("meta"), y[:128].to("meta")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(bare(xb), yb).backward()
        opt.step()

    step()  # momentum buffers
    return {"fit": fitted, "bare_step": sum(count_kernel_ops(step).values())}


if __name__ == "__main__":
    main()
