"""Stochastic Frank-Wolfe optimizers (torch.optim API) and projected SGD over the same constraint objects.

Each optimizer takes ``params`` the way every ``torch.optim.Optimizer`` does, plus one region per
parameter:

* a list of tensors and ``constraints``, one constraint per parameter in the same order; or
* parameter groups (dicts), each with its own options (``lr``, ``momentum``, ...) and its regions:
  ``constraints`` (one per parameter), or region options from which they are built:
  ``region`` (a name of :data:`kit.frankwolfe.KINDS`), ``k``, ``p``, and ``radius`` or ``width``
  (L2 diameter ``2 * width * ||theta||`` of each parameter as it is at construction).

A parameter without a gradient is skipped; its constraint stays paired with it (the pairing is by
position in the parameter group, never by position among the parameters that have gradients).
State dicts carry tensors and plain values only: the constraint objects stay with the optimizer,
and the reusable work buffers (vertices) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch.optim import Optimizer

from ..budget import reads_are_free
from ..validate import check_choice, check_float, check_int
from . import flat, kernels
from .constraints import Constraint, Unconstrained
from .regions import KINDS, build

RESCALE = ("diameter", "gradient", None)
REGION_OPTIONS = ("region", "k", "p", "radius", "width")
WORK_KEYS = ("vertex", "difference")  # per-parameter work buffers: reused across steps, never saved


def _regions_from_options(group: dict, where: str) -> list[Constraint]:
    kind = check_choice(group["region"], f"{where}['region']", KINDS)
    if "radius" in group and "width" in group:
        raise ValueError(f"{where}: give radius or width, not both")
    regions = []
    for param in group["params"]:
        region = build(kind, param.shape, 1.0, k=group.get("k"), p=group.get("p"))
        if "radius" in group:
            region.radius = check_float(group["radius"], f"{where}['radius']", low=0.0, low_open=True)
        elif not isinstance(region, Unconstrained):
            width = check_float(group.get("width", 10.0), f"{where}['width']", low=0.0, low_open=True)
            norm = float(param.detach().norm())
            region.radius = region.radius_for_diameter(2.0 * width * (norm if norm > 0 else 1.0))
        regions.append(region)
    return regions


def _paired_group(group: dict, where: str) -> dict:
    """``group`` with its params as a list and exactly one checked constraint per parameter."""
    params = group.get("params")
    params = [params] if isinstance(params, torch.Tensor) else list(params or [])
    if not params:
        raise ValueError(f"{where} has no parameters: give the model's parameters")
    for i, param in enumerate(params):
        if not isinstance(param, torch.Tensor):
            raise TypeError(f"{where}: params[{i}] must be a tensor; got {type(param).__name__}")
    group = {**group, "params": params}
    if "constraints" in group and "region" in group:
        raise ValueError(f"{where}: give constraints or region options, not both")
    if "constraints" in group:
        constraints = group["constraints"]
        if isinstance(constraints, Constraint) or not isinstance(constraints, Sequence):
            raise TypeError(f"{where}: constraints must be a list, one constraint per parameter")
        constraints = list(constraints)
    elif "region" in group:
        constraints = _regions_from_options(group, where)
    else:
        raise ValueError(f"{where} needs constraints (one per parameter) or a region (with k, p, radius or width)")
    if len(constraints) != len(params):
        raise ValueError(f"constraints must give one constraint per parameter: {len(params)} parameters, "
                         f"{len(constraints)} constraints")
    for i, (p, c) in enumerate(zip(params, constraints, strict=True)):
        if not isinstance(c, Constraint):
            raise TypeError(f"constraints[{i}] must be a kit.frankwolfe Constraint; got {type(c).__name__}")
        c.check(p, name=f"parameter {i}")
    group["constraints"] = constraints
    return group


def _param_groups(params: Iterable, constraints: Sequence[Constraint] | None) -> list[dict]:
    if isinstance(params, torch.Tensor):
        raise TypeError("params must be an iterable of tensors or of parameter groups (dicts), not one tensor")
    params = list(params)
    if not params:
        raise ValueError("params is empty: give the model's parameters")
    if all(isinstance(g, dict) for g in params):
        if constraints is not None:
            raise TypeError("with parameter groups, give each group its own constraints (or region options), "
                            "not the constraints argument")
        return params
    if any(isinstance(g, dict) for g in params):
        raise TypeError("params mixes tensors and parameter groups; give one or the other")
    if constraints is None:
        raise TypeError("constraints is required with a list of tensors (one constraint per parameter)")
    return [{"params": params, "constraints": constraints}]


def closure_loss(closure: Callable[[], Any] | None) -> Any:
    """The loss ``step(closure)`` re-evaluates, with gradients on (None without a closure)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class _ConstrainedOptimizer(Optimizer):
    """Keeps each parameter paired with its constraint; state dicts carry tensors and plain values only."""

    def __init__(self, params: Iterable, constraints: Sequence[Constraint] | None, defaults: dict[str, Any]) -> None:
        super().__init__(_param_groups(params, constraints), defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (as torch.optim does) with its ``constraints`` or region options."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict; got {type(param_group).__name__}")
        group = _paired_group(param_group, f"param_groups[{len(self.param_groups)}]")
        super().add_param_group(group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group: dict[str, Any]) -> None:
        """Check a group's own options, normalized in place (each optimizer checks its hyperparameters here)."""

    def state_dict(self):
        sd = super().state_dict()
        for group in sd["param_groups"]:
            group.pop("constraints", None)  # objects, not tensors: they stay with the optimizer
        sd["state"] = {k: {n: v for n, v in st.items() if n not in WORK_KEYS} for k, st in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict):
        constraints = [g["constraints"] for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, cons in zip(self.param_groups, constraints, strict=True):
            group["constraints"] = cons

    @torch.no_grad()
    def step(self, closure=None):
        """One optimizer step for every parameter that has a gradient (``closure`` re-evaluates the loss)."""
        loss = closure_loss(closure)
        self._update()
        return loss

    def _update(self) -> None:
        raise NotImplementedError

    def _pairs(self):
        for group in self.param_groups:
            for p, c in zip(group["params"], group["constraints"], strict=True):
                if p.grad is not None:
                    yield group, p, c

    def _buffer(self, name: str, p: torch.Tensor) -> torch.Tensor:
        # work tensors reused across steps (fresh large tensors cost page faults); in the state under
        # WORK_KEYS, which state_dict leaves out
        state = self.state[p]
        buf = state.get(name)
        if buf is None or buf.shape != p.shape or buf.dtype != p.dtype or buf.device != p.device:
            buf = state[name] = torch.empty_like(p)
        return buf


class SFW(_ConstrainedOptimizer):
    """Stochastic Frank-Wolfe with momentum: theta <- (1 - eta) theta + eta * LMO(m).

    ``rescale``: 'diameter' (eta = lr / D), 'gradient' (eta = lr * ||m|| / ||theta - v||) or None
    (eta = lr); eta is clipped to [0, 1]. ``step_schedule='decreasing'`` uses eta_t = 1 / (t + 1)
    instead; ``momentum_schedule='mokhtari'`` uses rho_t = (1 / (t + 1))^(1/3) in
    m <- (1 - rho) m + rho g instead of the constant 1 - momentum. Unconstrained parameters take a
    plain momentum-SGD step.
    """

    def __init__(self, params: Iterable, constraints: Sequence[Constraint] | None = None, lr: float = 0.1,
                 momentum: float = 0.9, rescale: str | None = "diameter", step_schedule: str = "constant",
                 momentum_schedule: str = "constant") -> None:
        defaults = {"lr": lr, "momentum": momentum, "rescale": rescale, "step_schedule": step_schedule,
                    "momentum_schedule": momentum_schedule}
        self._check_group(defaults)
        super().__init__(params, constraints, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_float(group["lr"], "lr", low=0.0, high=1.0)
        group["momentum"] = check_float(group["momentum"], "momentum", low=0.0, high=1.0, high_open=True)
        if group["rescale"] not in RESCALE:
            raise ValueError(f"unknown rescale {group['rescale']!r}; choose one of 'diameter', 'gradient', None")
        check_choice(group["step_schedule"], "step_schedule", ("constant", "decreasing"))
        check_choice(group["momentum_schedule"], "momentum_schedule", ("constant", "mokhtari"))

    def _update(self) -> None:
        for index, group in enumerate(self.param_groups):
            lr = group["lr"]
            if not 0.0 <= lr <= 1.0:
                raise ValueError(f"SFW needs lr in [0, 1]; the group's lr is {lr}")
            pairs = [(p, c) for p, c in zip(group["params"], group["constraints"], strict=True) if p.grad is not None]
            layout = self._flat_layout(index, pairs)  # before the momentum update, which then updates its buffer
            steps, norms = self._momentum(pairs, group)
            free = [(p, self.state[p]["momentum_buffer"]) for p, c in pairs if isinstance(c, Unconstrained)]
            if free:
                torch._foreach_add_([p for p, _ in free], [m for _, m in free], alpha=-lr)
            if layout is not None:
                self._flat_frank_wolfe_update(layout, group)
                continue
            bounded = [(p, c, self.state[p]["momentum_buffer"], t) for (p, c), t in zip(pairs, steps, strict=True)
                       if not isinstance(c, Unconstrained)]
            if bounded:
                self._frank_wolfe_update(bounded, group, norms)

    def _flat_layout(self, index: int, pairs: list) -> flat.FlatRegions | None:
        """The group's flat buffers (kit.frankwolfe.flat) on an accelerator, once every bounded parameter has its
        momentum buffer (the first step makes them); None on the CPU, where the fused kernels are faster."""
        bounded = [(p, c) for p, c in pairs if not isinstance(c, Unconstrained)]
        if not bounded or not flat.used_for(bounded[0][0]):
            return None
        params, regions = [p for p, _ in bounded], [c for _, c in bounded]
        momenta = [self.state[p].get("momentum_buffer") for p in params]
        if any(m is None for m in momenta) or not flat.suits(params):
            return None
        layouts = self.__dict__.setdefault("_flat", {})  # work buffers: never in the state dict
        layout = layouts.get(index)
        if layout is None or not layout.matches(params, regions, momenta):
            layout = layouts[index] = flat.FlatRegions(params, regions, momenta)
            for p, view in zip(params, layout.adopted, strict=True):
                self.state[p]["momentum_buffer"] = view
        return layout

    @staticmethod
    def _fixed_steps(group: dict, regions: list[Constraint], steps: list[int]) -> list[float] | None:
        """eta per parameter when it does not depend on the vertex: decreasing, diameter or plain lr (None for
        gradient rescaling)."""
        lr = group["lr"]
        if group["step_schedule"] == "decreasing":
            return [1.0 / (t + 1) for t in steps]
        if group["rescale"] == "gradient":
            return None
        if group["rescale"] == "diameter":
            return [min(lr / c.diameter, 1.0) for c in regions]
        return [lr] * len(regions)

    def _flat_frank_wolfe_update(self, layout: flat.FlatRegions, group: dict) -> None:
        layout.vertices()
        etas = self._fixed_steps(group, layout.constraints, [self.state[p]["step"] for p in layout.params])
        layout.lerp_(layout.gradient_steps(group["lr"]) if etas is None else etas)

    def _frank_wolfe_update(self, items: list, group: dict, norms: dict) -> None:
        # multi-tensor ops over all layers and reused vertex buffers: the step costs close to SGD's
        params = [p for p, _, _, _ in items]
        vertices = [c.lmo(m, out=self._buffer("vertex", p)) for p, c, m, _ in items]
        etas = self._fixed_steps(group, [c for _, c, _, _ in items], [t for _, _, _, t in items])
        if etas is None:
            etas = self._gradient_steps(items, vertices, group["lr"], norms)
            if isinstance(etas, torch.Tensor):  # on an accelerator: step sizes stay on the device
                for p, v, eta in zip(params, vertices, etas.to(params[0].dtype).unbind(), strict=True):
                    p.lerp_(v, eta)
                return
        torch._foreach_lerp_(params, vertices, etas)

    def _gradient_steps(self, items: list, vertices: list[torch.Tensor], lr: float,
                        norms: dict) -> list[float] | torch.Tensor:
        """eta = lr * ||m|| / ||theta - v|| per parameter, clipped to [0, 1] (0 when theta = v): numbers on the
        CPU, a tensor on the parameters' device elsewhere (reading it would wait for the accelerator)."""
        params, moms = [p for p, _, _, _ in items], [m for _, _, m, _ in items]
        known = [norms.get(p) for p in params]  # ||m|| measured by the fused momentum pass, where it ran
        if None not in known and kernels.all_apply(params + vertices):
            gaps = [kernels.gap(p, v) for p, v in zip(params, vertices, strict=True)]
            return [min(lr * m_norm / g, 1.0) if g > 0 else 0.0 for g, m_norm in zip(gaps, known, strict=True)]
        diffs = [self._buffer("difference", p) for p in params]
        torch._foreach_copy_(diffs, params)
        torch._foreach_sub_(diffs, vertices)
        gaps = torch.stack(torch._foreach_norm(diffs))
        m_norms = torch.stack(torch._foreach_norm(moms))
        etas = torch.where(gaps > 0, lr * m_norms / gaps.clamp_min(1e-30), 0.0).clamp(0.0, 1.0)
        return etas.tolist() if reads_are_free(params[0]) else etas

    def _momentum(self, pairs: list, group: dict) -> tuple[list[int], dict]:
        """Update every momentum buffer (m = g at a parameter's first step); return each step count, and
        ||m|| per parameter where the fused kernel measured it on the way."""
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
        norms: dict = {}
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
        return steps, norms


class AdaGradSFW(_ConstrainedOptimizer):
    """AdaGrad-SFW (Combettes et al. 2020): a few Frank-Wolfe steps on the AdaGrad quadratic model per step.

    With H = diag(delta + sqrt(sum of squared gradients)), it approximately solves
    min over the region of <m, y - x> + ||y - x||_H^2 / (2 lr) with ``inner_steps`` FW iterations
    (exact line search on the quadratic). Unconstrained parameters take the AdaGrad step.
    """

    def __init__(self, params: Iterable, constraints: Sequence[Constraint] | None = None, lr: float = 0.01,
                 momentum: float = 0.0, inner_steps: int = 5, delta: float = 1e-8) -> None:
        defaults = {"lr": lr, "momentum": momentum, "inner_steps": inner_steps, "delta": delta}
        self._check_group(defaults)
        super().__init__(params, constraints, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_float(group["lr"], "lr", low=0.0, low_open=True)
        group["momentum"] = check_float(group["momentum"], "momentum", low=0.0, high=1.0, high_open=True)
        group["inner_steps"] = check_int(group["inner_steps"], "inner_steps", low=1)
        group["delta"] = check_float(group["delta"], "delta", low=0.0, low_open=True)

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
            p.copy_(_adagrad_fw(p, m, h, lr, c, group["inner_steps"]))


def _adagrad_fw(p: torch.Tensor, m: torch.Tensor, h: torch.Tensor, lr: float, region: Constraint,
                inner_steps: int) -> torch.Tensor:
    """Frank-Wolfe with exact line search on q(y) = <m, y - p> + ||y - p||_H^2 / (2 lr) over the region.

    On the CPU it stops at the first step of size 0; on an accelerator the step size stays on the device
    and the loop runs all ``inner_steps`` (a step of size 0 leaves y, so the next one is 0 too: same y).
    """
    y = p.clone()
    on_host = reads_are_free(p)
    for _ in range(inner_steps):
        grad_q = m + (y - p) * h / lr
        d = region.lmo(grad_q) - y
        if on_host:
            curvature = float((d * d * h).sum()) / lr
            if curvature <= 0:
                break
            gamma = min(max(float(-(grad_q * d).sum()) / curvature, 0.0), 1.0)
            if gamma == 0.0:
                break
            y.add_(d, alpha=gamma)
        else:
            # curvature is 0 only where d is 0 (h > 0), where any step leaves y as it is
            curvature = (d * d * h).sum() / lr
            slope = -(grad_q * d).sum()
            gamma = torch.where(curvature > 0, slope / curvature.clamp_min(torch.finfo(y.dtype).tiny), 0.0)
            y.add_(d * gamma.clamp(0.0, 1.0))
    return y


class ProjectedSGD(_ConstrainedOptimizer):
    """SGD with momentum followed by the Euclidean projection onto each parameter's region (the baseline)."""

    def __init__(self, params: Iterable, constraints: Sequence[Constraint] | None = None, lr: float = 0.1,
                 momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        self._check_group(defaults)
        super().__init__(params, constraints, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_float(group["lr"], "lr", low=0.0)
        group["momentum"] = check_float(group["momentum"], "momentum", low=0.0, high=1.0, high_open=True)
        group["weight_decay"] = check_float(group["weight_decay"], "weight_decay", low=0.0)
        for i, c in enumerate(group.get("constraints", ())):
            if not c.supports_projection:
                raise ValueError(f"constraints[{i}] ({type(c).__name__}) has no cheap Euclidean projection; "
                                 f"ProjectedSGD supports L1, L2, L-inf, nuclear, simplex and unconstrained")

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

