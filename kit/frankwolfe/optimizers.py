"""Stochastic Frank-Wolfe optimizers (torch.optim API) and projected SGD over the same constraint objects.

Each optimizer takes ``params`` and ``constraints``, one constraint per parameter in the same order.
A parameter without a gradient is skipped; its constraint stays paired with it (the pairing is by
position in the parameter group, never by position among the parameters that have gradients).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch.optim import Optimizer

from ..validate import check_choice, check_float, check_int
from . import kernels
from .constraints import Constraint, Unconstrained

RESCALE = ("diameter", "gradient", None)


def _pair(params: Iterable, constraints: Sequence[Constraint]) -> list[dict]:
    params = list(params)
    if not params:
        raise ValueError("params is empty: give the model's parameters")
    if isinstance(params[0], dict):
        raise TypeError("give params as a list of tensors (one constraint each), not parameter groups")
    constraints = list(constraints)
    if len(constraints) != len(params):
        raise ValueError(f"constraints must give one constraint per parameter: {len(params)} parameters, "
                         f"{len(constraints)} constraints")
    for i, (p, c) in enumerate(zip(params, constraints, strict=True)):
        if not isinstance(c, Constraint):
            raise TypeError(f"constraints[{i}] must be a kit.frankwolfe Constraint; got {type(c).__name__}")
        c.check(p, name=f"parameter {i}")
    return [{"params": params, "constraints": constraints}]


class _ConstrainedOptimizer(Optimizer):
    """Keeps each parameter paired with its constraint; state dicts carry tensors only."""

    def state_dict(self):
        sd = super().state_dict()
        for group in sd["param_groups"]:
            group.pop("constraints", None)  # objects, not tensors: they stay with the optimizer
        return sd

    def load_state_dict(self, state_dict):
        constraints = [g["constraints"] for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, cons in zip(self.param_groups, constraints, strict=True):
            group["constraints"] = cons

    @torch.no_grad()
    def step(self, closure=None):
        """One optimizer step for every parameter that has a gradient (``closure`` re-evaluates the loss)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._update()
        return loss

    def _update(self) -> None:
        raise NotImplementedError

    def _pairs(self):
        for group in self.param_groups:
            for p, c in zip(group["params"], group["constraints"], strict=True):
                if p.grad is not None:
                    yield group, p, c


class SFW(_ConstrainedOptimizer):
    """Stochastic Frank-Wolfe with momentum: theta <- (1 - eta) theta + eta * LMO(m).

    ``rescale``: 'diameter' (eta = lr / D), 'gradient' (eta = lr * ||m|| / ||theta - v||) or None
    (eta = lr); eta is clipped to [0, 1]. ``step_schedule='decreasing'`` uses eta_t = 1 / (t + 1)
    instead; ``momentum_schedule='mokhtari'`` uses rho_t = (1 / (t + 1))^(1/3) in
    m <- (1 - rho) m + rho g instead of the constant 1 - momentum. Unconstrained parameters take a
    plain momentum-SGD step.
    """

    def __init__(self, params: Iterable[torch.Tensor], constraints: Sequence[Constraint], lr: float = 0.1,
                 momentum: float = 0.9, rescale: str | None = "diameter", step_schedule: str = "constant",
                 momentum_schedule: str = "constant") -> None:
        lr = check_float(lr, "lr", low=0.0, high=1.0)
        momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        if rescale not in RESCALE:
            raise ValueError(f"unknown rescale {rescale!r}; choose one of 'diameter', 'gradient', None")
        check_choice(step_schedule, "step_schedule", ("constant", "decreasing"))
        check_choice(momentum_schedule, "momentum_schedule", ("constant", "mokhtari"))
        defaults = {"lr": lr, "momentum": momentum, "rescale": rescale, "step_schedule": step_schedule,
                    "momentum_schedule": momentum_schedule}
        super().__init__(_pair(params, constraints), defaults)

    def _update(self) -> None:
        for group in self.param_groups:
            lr = group["lr"]
            if not 0.0 <= lr <= 1.0:
                raise ValueError(f"SFW needs lr in [0, 1]; the group's lr is {lr}")
            pairs = [(p, c) for p, c in zip(group["params"], group["constraints"], strict=True) if p.grad is not None]
            steps = self._momentum(pairs, group)
            free = [(p, self.state[p]["momentum_buffer"]) for p, c in pairs if isinstance(c, Unconstrained)]
            if free:
                torch._foreach_add_([p for p, _ in free], [m for _, m in free], alpha=-lr)
            bounded = [(p, c, self.state[p]["momentum_buffer"], t) for (p, c), t in zip(pairs, steps, strict=True)
                       if not isinstance(c, Unconstrained)]
            if bounded:
                self._frank_wolfe_update(bounded, group)

    def _frank_wolfe_update(self, items: list, group: dict) -> None:
        # multi-tensor ops over all layers and reused vertex buffers: the step costs close to SGD's
        params = [p for p, _, _, _ in items]
        vertices = [c.lmo(m, out=self._buffer("vertex", p)) for p, c, m, _ in items]
        lr = group["lr"]
        if group["step_schedule"] == "decreasing":
            etas = [1.0 / (t + 1) for _, _, _, t in items]
        elif group["rescale"] == "gradient":
            etas = self._gradient_steps(items, vertices, lr)
        elif group["rescale"] == "diameter":
            etas = [min(lr / c.diameter, 1.0) for _, c, _, _ in items]
        else:
            etas = [lr] * len(items)
        torch._foreach_lerp_(params, vertices, etas)

    def _gradient_steps(self, items: list, vertices: list[torch.Tensor], lr: float) -> list[float]:
        """eta = lr * ||m|| / ||theta - v|| per parameter, clipped to [0, 1] (0 when theta = v)."""
        params, moms = [p for p, _, _, _ in items], [m for _, _, m, _ in items]
        known = [self.__dict__.get("_momentum_norms", {}).get(p) for p in params]  # from the momentum pass
        if None not in known and kernels.all_apply(params + vertices):
            gaps = [kernels.gap(p, v) for p, v in zip(params, vertices, strict=True)]
            return [min(lr * m_norm / g, 1.0) if g > 0 else 0.0 for g, m_norm in zip(gaps, known, strict=True)]
        diffs = [self._buffer("difference", p) for p in params]
        torch._foreach_copy_(diffs, params)
        torch._foreach_sub_(diffs, vertices)
        gaps = torch.stack(torch._foreach_norm(diffs))
        m_norms = torch.stack(torch._foreach_norm(moms))
        return torch.where(gaps > 0, lr * m_norms / gaps.clamp_min(1e-30), 0.0).clamp(0.0, 1.0).tolist()

    def _buffer(self, name: str, p: torch.Tensor) -> torch.Tensor:
        # work tensors reused across steps (fresh large tensors cost page faults); kept out of self.state
        # so state dicts stay small
        buffers = self.__dict__.setdefault("_work", {})
        buf = buffers.get((name, p))
        if buf is None or buf.shape != p.shape or buf.dtype != p.dtype or buf.device != p.device:
            buf = buffers[(name, p)] = torch.empty_like(p)
        return buf

    def _momentum(self, pairs: list, group: dict) -> list[int]:
        """Update every momentum buffer (m = g at a parameter's first step); return each step count."""
        steps, owners, bufs, grads, rhos = [], [], [], [], []
        for p, _ in pairs:
            state = self.state[p]
            t = state["step"] = state.get("step", 0) + 1
            steps.append(t)
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = p.grad.detach().clone()
                continue
            owners.append(p)
            bufs.append(state["momentum_buffer"])
            grads.append(p.grad)
            rhos.append((1.0 / (t + 1)) ** (1 / 3) if group["momentum_schedule"] == "mokhtari"
                        else 1.0 - group["momentum"])
        norms = self.__dict__.setdefault("_momentum_norms", {})
        norms.clear()
        if bufs and group["rescale"] == "gradient" and kernels.all_apply(bufs + grads):
            # fused: the pass that updates m also measures ||m||, which gradient rescaling needs
            for p, buf, grad, rho in zip(owners, bufs, grads, rhos, strict=True):
                norms[p] = kernels.momentum_(buf, grad, rho)
        elif bufs:
            if len(set(rhos)) == 1:
                torch._foreach_lerp_(bufs, grads, rhos[0])  # m <- (1 - rho) m + rho g, all layers at once
            else:
                for buf, grad, rho in zip(bufs, grads, rhos, strict=True):
                    buf.lerp_(grad, rho)
        return steps


class AdaGradSFW(_ConstrainedOptimizer):
    """AdaGrad-SFW (Combettes et al. 2020): a few Frank-Wolfe steps on the AdaGrad quadratic model per step.

    With H = diag(delta + sqrt(sum of squared gradients)), it approximately solves
    min over the region of <m, y - x> + ||y - x||_H^2 / (2 lr) with ``inner_steps`` FW iterations
    (exact line search on the quadratic). Unconstrained parameters take the AdaGrad step.
    """

    def __init__(self, params: Iterable[torch.Tensor], constraints: Sequence[Constraint], lr: float = 0.01,
                 momentum: float = 0.0, inner_steps: int = 5, delta: float = 1e-8) -> None:
        lr = check_float(lr, "lr", low=0.0, low_open=True)
        momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        inner_steps = check_int(inner_steps, "inner_steps", low=1)
        delta = check_float(delta, "delta", low=0.0, low_open=True)
        super().__init__(_pair(params, constraints),
                         {"lr": lr, "momentum": momentum, "inner_steps": inner_steps, "delta": delta})

    def _update(self) -> None:
        for group, p, c in self._pairs():
            state = self.state[p]
            g = p.grad
            if "sum_sq" not in state:
                state["sum_sq"] = torch.zeros_like(p)
                state["momentum_buffer"] = g.detach().clone()
            state["sum_sq"].addcmul_(g, g)
            m = state["momentum_buffer"].lerp_(g, 1.0 - group["momentum"])
            h = state["sum_sq"].sqrt().add_(group["delta"])
            lr = group["lr"]
            if isinstance(c, Unconstrained):
                p.addcdiv_(m, h, value=-lr)
                continue
            y = p.clone()
            for _ in range(group["inner_steps"]):
                grad_q = m + (y - p) * h / lr
                d = c.lmo(grad_q) - y
                curvature = float((d * d * h).sum()) / lr
                if curvature <= 0:
                    break
                gamma = min(max(float(-(grad_q * d).sum()) / curvature, 0.0), 1.0)
                if gamma == 0.0:
                    break
                y.add_(d, alpha=gamma)
            p.copy_(y)


class ProjectedSGD(_ConstrainedOptimizer):
    """SGD with momentum followed by the Euclidean projection onto each parameter's region (the baseline)."""

    def __init__(self, params: Iterable[torch.Tensor], constraints: Sequence[Constraint], lr: float = 0.1,
                 momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        lr = check_float(lr, "lr", low=0.0)
        momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
        groups = _pair(params, constraints)
        for i, c in enumerate(groups[0]["constraints"]):
            if not c.supports_projection:
                raise ValueError(f"constraints[{i}] ({type(c).__name__}) has no cheap Euclidean projection; "
                                 f"ProjectedSGD supports L1, L2, L-inf, nuclear, simplex and unconstrained")
        super().__init__(groups, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def _update(self) -> None:
        for group, p, c in self._pairs():
            g = p.grad if group["weight_decay"] == 0 else p.grad.add(p, alpha=group["weight_decay"])
            state = self.state[p]
            if group["momentum"] > 0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.detach().clone()
                else:
                    buf.mul_(group["momentum"]).add_(g)
                g = buf
            p.add_(g, alpha=-group["lr"])
            p.copy_(c.project(p))

