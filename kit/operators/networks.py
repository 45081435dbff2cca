"""Operators from an initial condition to a solution field u(x, t), all with the same two steps:
``parameters(coefficients)`` (one parameter vector per initial condition) and ``field(parameters, coefficients,
x, t)`` (the solution at points). The initial condition is met exactly: u = u0(x) + t * g(x) * N(x, t), with
g(x) = x (1 - x) on a Dirichlet problem (the boundary condition is met too) and 1 on a periodic one, whose
network reads (sin 2 pi x, cos 2 pi x, t) and so is periodic by construction.

* :class:`NPR` (Neural Parameter Regression): a hypernetwork maps u0 at m sensor points to the parameters of
  a small solution network whose hidden layers are low rank (W = U V^T).
* :class:`DeepONet` (physics-informed): branch(u0 at the sensors) . trunk(x, t).
* :class:`PINN`: one solution network per initial condition, its own parameters (the per-instance baseline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..models import KitModel, count_parameters
from ..validate import check_int
from .problems import Problem


def _features(problem: Problem, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    if problem.periodic:
        return torch.stack([torch.sin(2 * math.pi * x), torch.cos(2 * math.pi * x), t], dim=-1)
    return torch.stack([x, t], dim=-1)


def _envelope(problem: Problem, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return t if problem.periodic else t * x * (1 - x)


class LowRankSolution(nn.Module):
    """The solution network N(x, t): input layer, ``depth`` hidden layers W = U V^T of rank ``rank``, tanh, a
    scalar output. Its parameters are what NPR regresses (and what a PINN trains)."""

    def __init__(self, in_features: int, width: int = 32, rank: int = 4, depth: int = 2) -> None:
        super().__init__()
        self.width = check_int(width, "width", low=1)
        self.rank = check_int(rank, "rank", low=1, high=self.width)
        self.depth = check_int(depth, "depth", low=0)
        self.inp = nn.Linear(in_features, self.width)
        self.u = nn.ParameterList(nn.Parameter(torch.randn(self.width, self.rank) / math.sqrt(self.rank))
                                  for _ in range(self.depth))
        self.v = nn.ParameterList(nn.Parameter(torch.randn(self.width, self.rank) / math.sqrt(self.width))
                                  for _ in range(self.depth))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(self.width)) for _ in range(self.depth))
        self.out = nn.Linear(self.width, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(features))
        for u, v, b in zip(self.u, self.v, self.b, strict=True):
            h = torch.tanh((h @ v) @ u.T + b)  # W h with W = U V^T, never formed
        return self.out(h).squeeze(-1)


class Operator(KitModel):
    """Initial condition (series coefficients) -> solution field; see the module docstring."""

    def __init__(self, problem: Problem, sensors: int, modes: int) -> None:
        super().__init__()
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a kit.operators problem; got {type(problem).__name__}")
        self.problem = problem
        self.sensors = check_int(sensors, "sensors", low=1)
        self.modes = check_int(modes, "modes", low=1)
        x = torch.linspace(0.0, 1.0, self.sensors + 2)[1:-1] if not problem.periodic else \
            torch.arange(self.sensors) / self.sensors
        self.register_buffer("sensor_x", x, persistent=False)

    def sensor_values(self, coefficients: torch.Tensor) -> torch.Tensor:
        """u0 at the m sensor points, per initial condition: (B, m)."""
        x = self.sensor_x.to(coefficients.dtype).expand(coefficients.shape[0], -1)
        return self.problem.initial_value(coefficients, x).float()

    def parameters_for(self, coefficients: torch.Tensor) -> torch.Tensor:
        """One parameter vector per initial condition: (B, P)."""
        raise NotImplementedError

    def network(self, params: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """N(features) for one parameter vector (P,) at points (Np, F)."""
        raise NotImplementedError

    def field(self, params: torch.Tensor, coefficients: torch.Tensor, x: torch.Tensor, t: torch.Tensor
              ) -> torch.Tensor:
        """u at points (B, Np) for each initial condition: u0(x) + t g(x) N(x, t), batched with torch.func.vmap
        over the parameter vectors."""
        n = vmap(self.network)(params, _features(self.problem, x, t))
        return self.problem.initial_value(coefficients, x).to(n.dtype) + _envelope(self.problem, x, t) * n

    def forward(self, coefficients: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """u at points x, t (B, Np) for initial conditions given by their coefficients (B, C)."""
        return self.field(self.parameters_for(coefficients), coefficients, x, t)

    def solution_network(self) -> LowRankSolution | None:
        """The low-rank network whose parameters this operator gives each initial condition (None: no such
        network, as in a DeepONet)."""
        return None

    def solution_blocks(self) -> dict[str, int]:
        """The solution network's parameters per block (input layer, U1, V1, b1, ..., output layer): what a
        hypernetwork regresses or a fine-tuning step trains; empty without a solution network."""
        template = self.solution_network()
        if template is None:
            return {}
        blocks = {"input layer": count_parameters(template.inp)}
        for i, (u, v, b) in enumerate(zip(template.u, template.v, template.b, strict=True), start=1):
            blocks |= {f"U{i}": u.numel(), f"V{i}": v.numel(), f"b{i}": b.numel()}
        blocks["output layer"] = count_parameters(template.out)
        return blocks


class _Unpacked(nn.Module):
    """Slices one flat parameter vector into a LowRankSolution's named tensors (for functional_call)."""

    def __init__(self, template: LowRankSolution) -> None:
        super().__init__()
        self.template = template
        self.names = [n for n, _ in template.named_parameters()]
        self.shapes = [p.shape for p in template.parameters()]
        self.sizes = [p.numel() for p in template.parameters()]

    def __call__(self, flat: torch.Tensor, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tensors = {n: t.reshape(s) for n, t, s in zip(self.names, flat.split(self.sizes), self.shapes, strict=True)}
        return functional_call(self.template, tensors, (features,))


class NPR(Operator):
    """Neural Parameter Regression: hypernetwork(u0 at the sensors) -> the low-rank solution network's parameters."""

    def __init__(self, problem: Problem, *, sensors: int = 32, modes: int = 16, width: int = 32, rank: int = 4,
                 depth: int = 2, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__(problem, sensors, modes)
        template = LowRankSolution(3 if problem.periodic else 2, width, rank, depth)
        for p in template.parameters():
            p.requires_grad_(False)  # a shape only: NPR's parameters are the hypernetwork's
        self.unpack = _Unpacked(template)
        self.regressed = sum(self.unpack.sizes)
        layers: list[nn.Module] = []
        size = self.sensors
        for h in hidden:
            layers += [nn.Linear(size, check_int(h, "hidden", low=1)), nn.Tanh()]
            size = h
        last = nn.Linear(size, self.regressed)
        with torch.no_grad():  # start at the template's own initialisation, whatever the input
            last.weight.mul_(0.01)
            last.bias.copy_(torch.cat([p.detach().reshape(-1) for p in template.parameters()]))
        self.hyper = nn.Sequential(*layers, last)
        self.hidden = tuple(int(h) for h in hidden)

    def parameters_for(self, coefficients):
        return self.hyper(self.sensor_values(coefficients))

    def solution_network(self) -> LowRankSolution:
        """The low-rank network whose parameters the hypernetwork regresses."""
        return self.unpack.template

    def network(self, params, features):
        return self.unpack(params, features)

    def parameter_counts(self) -> dict[str, int]:
        """Trained parameters (the hypernetwork's) and the regressed parameters per initial condition."""
        return {"trained": count_parameters(self, trainable_only=True), "regressed_per_solution": self.regressed}


class DeepONet(Operator):
    """Physics-informed DeepONet: u = u0 + t g(x) (branch(u0 at the sensors) . trunk(x, t) + bias)."""

    def __init__(self, problem: Problem, *, sensors: int = 32, modes: int = 16, latent: int = 64,
                 hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__(problem, sensors, modes)
        self.latent = check_int(latent, "latent", low=1)

        def mlp(size: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for h in hidden:
                layers += [nn.Linear(size, check_int(h, "hidden", low=1)), nn.Tanh()]
                size = h
            return nn.Sequential(*layers, nn.Linear(size, self.latent))

        self.branch = mlp(self.sensors)
        self.trunk = mlp(3 if problem.periodic else 2)
        self.bias = nn.Parameter(torch.zeros(()))

    def parameters_for(self, coefficients):
        return self.branch(self.sensor_values(coefficients))

    def network(self, params, features):
        return self.trunk(features) @ params + self.bias

    def parameter_counts(self) -> dict[str, int]:
        """Trained parameters (branch, trunk, bias)."""
        return {"trained": count_parameters(self, trainable_only=True)}


class PINN(Operator):
    """One low-rank solution network trained for one initial condition: the per-instance baseline (and what
    fine-tuning trains, started from NPR's regressed parameters)."""

    def __init__(self, problem: Problem, *, modes: int = 16, width: int = 32, rank: int = 4, depth: int = 2,
                 start: torch.Tensor | None = None) -> None:
        super().__init__(problem, 1, modes)
        template = LowRankSolution(3 if problem.periodic else 2, width, rank, depth)
        for p in template.parameters():
            p.requires_grad_(False)
        self.unpack = _Unpacked(template)
        flat = torch.cat([p.detach().reshape(-1) for p in template.parameters()]) if start is None else \
            start.detach().reshape(-1).clone()
        if flat.numel() != sum(self.unpack.sizes):
            raise ValueError(f"start must hold {sum(self.unpack.sizes)} parameters for this network; got "
                             f"{flat.numel()}")
        self.theta = nn.Parameter(flat.float())

    def parameters_for(self, coefficients):
        return self.theta.expand(coefficients.shape[0], -1)

    def solution_network(self) -> LowRankSolution:
        """The low-rank network whose parameters theta holds."""
        return self.unpack.template

    def network(self, params, features):
        return self.unpack(params, features)

    def factor_mask(self) -> torch.Tensor:
        """1 on the entries of theta that are low-rank factors (the U and V of the hidden layers), 0 elsewhere."""
        parts = [torch.full((size,), float(name.split(".")[0] in ("u", "v")))
                 for name, size in zip(self.unpack.names, self.unpack.sizes, strict=True)]
        return torch.cat(parts).to(self.theta.device)

    def train_factors_only(self) -> None:
        """From now on only the low-rank factors learn: the other entries' gradients are zeroed."""
        mask = self.factor_mask()
        self.theta.register_hook(lambda grad: grad * mask)

    def parameter_counts(self) -> dict[str, int]:
        """Trained parameters: the one solution network's."""
        return {"trained": self.theta.numel()}
