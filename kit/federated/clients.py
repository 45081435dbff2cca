"""Clients of a federated run: private data splits (IID or Dirichlet non-IID) and local training, either
all clients at once as one stacked model (``torch.func`` over stacked parameters) or one client after
another (the fallback for models ``vmap`` cannot batch, e.g. with BatchNorm).

Both paths train with :func:`kit.train.fit`. The stacked model maps inputs ``(clients, batch, ...)`` to
outputs ``(clients, batch, classes)``; its loss is the sum of the clients' mean losses, so every
client's parameters get exactly the gradient they would get alone, and elementwise optimizers (SGD,
Adam) update each client as if it trained alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from ..models import MLP
from ..seeding import check_seed, generator
from ..train import classification_loss, fit
from ..validate import check_float, check_int


def partition(labels: torch.Tensor, clients: int, *, alpha: float | None = None, seed: int = 0
              ) -> list[torch.Tensor]:
    """Indices of each client's private data: IID (``alpha=None``) or Dirichlet(alpha) class proportions
    per client (small alpha: each client sees few classes). Every client gets at least one example."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        raise TypeError("labels must be a 1-D tensor of class indices")
    clients = check_int(clients, "clients", low=1, high=len(labels))
    if alpha is not None:
        alpha = check_float(alpha, "alpha (Dirichlet concentration)", low=0.0, low_open=True)
    gen = generator(check_seed(seed))
    if alpha is None:
        order = torch.randperm(len(labels), generator=gen)
        return [order[i::clients].sort().values for i in range(clients)]
    shares: list[list[torch.Tensor]] = [[] for _ in range(clients)]
    dirichlet = torch.distributions.Dirichlet(torch.full((clients,), float(alpha)))
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            p = dirichlet.sample()
        cuts = (torch.cumsum(p, 0) * len(idx)).round().long().tolist()
        start = 0
        for i, end in enumerate(cuts):
            shares[i].append(idx[start:end])
            start = end
    parts = [torch.cat(s) for s in shares]
    # a client left empty takes one example from the largest client, so every client can train
    for i, part in enumerate(parts):
        if not len(part):
            big = max(range(clients), key=lambda j: len(parts[j]))
            parts[i], parts[big] = parts[big][-1:], parts[big][:-1]
    return [p.sort().values for p in parts]


class Stacked(nn.Module):
    """Several copies of one architecture as one module: parameters with a leading client dimension."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models or not all(isinstance(m, nn.Module) for m in models):
            raise TypeError("models must be a non-empty sequence of nn.Module of one architecture")
        params, buffers = stack_module_state(list(models))
        self._names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[n].detach().clone()) for n in self._names])
        self._buffers_stacked = {n: b.clone() for n, b in buffers.items()}
        # the architecture only, on the meta device (no storage); kept out of the registered submodules so
        # that .to(device) does not try to move it
        self.__dict__["base"] = copy.deepcopy(models[0]).to("meta")
        self.clients = len(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = dict(zip(self._names, self.stacked, strict=True))
        if isinstance(self.base, MLP):
            return self._mlp_forward(params, x)

        def one(p: dict, b: dict, xi: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (xi,))

        buffers = {n: b.to(x.device) for n, b in self._buffers_stacked.items()}
        return torch.vmap(one)(params, buffers, x)

    def _mlp_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        # the kit's MLP is Flatten, then Linear and activation layers: batched matrix products are several
        # times faster than vmap's per-call overhead for models this small. Activations are kept as
        # (clients, features, batch) so that W @ h gives each weight's gradient in the weight's own layout,
        # which autograd then accumulates without a transposing copy.
        h = x.flatten(2).transpose(1, 2)
        for i, layer in enumerate(self.base.net):
            if isinstance(layer, nn.Linear):
                h = torch.baddbmm(params[f"net.{i}.bias"].unsqueeze(2), params[f"net.{i}.weight"], h)
            elif not isinstance(layer, nn.Flatten):
                h = layer(h)
        return h.transpose(1, 2)

    def state_dict_of(self, i: int) -> dict[str, torch.Tensor]:
        """Client ``i``'s parameters and buffers as an ordinary state dict."""
        state = {n: p[i].detach().clone() for n, p in zip(self._names, self.stacked, strict=True)}
        state.update({n: b[i].clone() for n, b in self._buffers_stacked.items()})
        return state


class _ClientBatches(IterableDataset):
    """Yields ``(x, y)`` of shape ``(clients, batch, ...)``: one batch per client per step, each client
    walking through its own shuffled data (reshuffled when exhausted) for ``steps`` steps."""

    def __init__(self, data: Dataset, parts: Sequence[torch.Tensor], batch_size: int, steps: int,
                 seeds: Sequence[int]) -> None:
        self.x, self.y = dataset_tensors(data)
        self.parts, self.batch_size, self.steps, self.seeds = list(parts), batch_size, steps, list(seeds)

    def __iter__(self):
        # one generator per client, so a client's batches do not depend on how many others train with it
        gens = [generator(s) for s in self.seeds]
        orders = [p[torch.randperm(len(p), generator=g)] for p, g in zip(self.parts, gens, strict=True)]
        pos = [0] * len(self.parts)
        for _ in range(self.steps):
            picks = []
            for i, p in enumerate(self.parts):
                take, have = [], 0
                while have < self.batch_size:
                    if pos[i] >= len(orders[i]):
                        orders[i], pos[i] = p[torch.randperm(len(p), generator=gens[i])], 0
                    n = min(self.batch_size - have, len(orders[i]) - pos[i])
                    take.append(orders[i][pos[i] : pos[i] + n])
                    pos[i], have = pos[i] + n, have + n
                picks.append(torch.cat(take) if len(take) > 1 else take[0])
            idx = torch.stack(picks)
            yield self.x[idx], self.y[idx]

    def __len__(self) -> int:
        return self.steps


def dataset_tensors(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All inputs and targets of a dataset as two tensors (no copy for a TensorDataset)."""
    if isinstance(data, TensorDataset):
        return data.tensors[0], data.tensors[1]
    xs, ys = zip(*(data[i] for i in range(len(data))), strict=True)
    return torch.stack(xs), torch.as_tensor(ys)


def local_steps(sizes: Sequence[int], batch_size: int, epochs: float) -> int:
    """Steps of local training: ``epochs`` passes over the mean client's data (at least one step)."""
    mean = sum(sizes) / len(sizes)
    return max(1, round(epochs * mean / batch_size))


def train_clients(models: Sequence[nn.Module], data: Dataset, parts: Sequence[torch.Tensor], *, epochs: float = 1.0,
                  lr: float = 0.05, batch_size: int = 32, optimizer: str = "sgd", momentum: float = 0.9,
                  seed: int = 0, seeds: Sequence[int] | None = None, steps: int | None = None, batched: bool = True,
                  device: str | torch.device | None = None, progress: bool = False) -> list[nn.Module]:
    """Train every client's model on its own part of ``data`` for the same number of local steps
    (``steps``, default ``epochs`` passes over the mean part).

    ``batched=True`` trains all clients as one :class:`Stacked` model (one optimizer step updates all),
    except for models with BatchNorm (see :func:`batchable`); ``batched=False`` trains them one after another.
    Both give the same result up to float rounding.
    Client ``i`` draws its batches from ``seeds[i]`` (default ``seed + i``). Returns the models, trained in place.
    """
    if len(models) != len(parts):
        raise ValueError(f"got {len(models)} models for {len(parts)} data parts; one model per client")
    seeds = [seed + i for i in range(len(parts))] if seeds is None else list(seeds)
    if len(seeds) != len(parts):
        raise ValueError(f"got {len(seeds)} seeds for {len(parts)} clients")
    batch_size = check_int(batch_size, "batch_size", low=1)
    epochs = check_float(epochs, "epochs", low=0.0, low_open=True)
    steps = local_steps([len(p) for p in parts], batch_size, epochs) if steps is None else check_int(steps, "steps",
                                                                                                      low=1)
    if batched and not batchable(models[0]):
        batched = False  # BatchNorm updates its running statistics in place, which vmap cannot batch
    if not batched:
        for i, (model, part) in enumerate(zip(models, parts, strict=True)):
            loader = DataLoader(_ClientBatches(data, [part], batch_size, steps, [seeds[i]]), batch_size=None)
            fit(_FirstClient(model), loader, epochs=1, lr=lr, optimizer=optimizer, momentum=momentum,
                loss_fn=classification_loss, seed=seeds[i], device=device, progress=progress, desc=f"client {i}")
        return list(models)
    stacked = Stacked(models)
    loader = DataLoader(_ClientBatches(data, parts, batch_size, steps, seeds), batch_size=None)
    n = len(models)

    def summed(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # sum of per-client mean losses: each client's gradient as if it trained alone
        return n * classification_loss(output, target)

    fit(stacked, loader, epochs=1, lr=lr, optimizer=optimizer, momentum=momentum, loss_fn=summed, seed=seed,
        device=device, progress=progress, desc="clients (stacked)")
    for i, model in enumerate(models):
        model.load_state_dict(stacked.state_dict_of(i))
    return list(models)


def batchable(model: nn.Module) -> bool:
    """Whether clients of this architecture can train as one :class:`Stacked` model (no BatchNorm)."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class _FirstClient(nn.Module):
    """Adapts a plain model to batches of shape (1, batch, ...) from :class:`_ClientBatches`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x[0]).unsqueeze(0)
