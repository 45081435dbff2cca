"""Structured k-support regions for compression-aware training, and the delayed switch of k.

- :class:`GroupKSupportBall`: conv{x : at most k nonzero groups, ||x||_2 <= r}, groups being the slices
  along dim 0 (conv filters, output neurons; each entry of a 1-D parameter). Its gauge is the k-support
  norm of the vector of group L2 norms; after training, whole filters can be pruned.
- :class:`SpectralKSupportBall`: conv{X : rank X <= k, ||X||_F <= r} on the parameter as a matrix (as in
  :class:`~kit.frankwolfe.NuclearBall`); its gauge is the k-support norm of the singular values. Its LMO
  needs only the top-k singular triplets (:func:`top_k_singular`, warm-started block power iteration),
  not the full SVD that a nuclear-norm penalty pays every step.
- :class:`DelayedK`: a training callback that starts every k-support-type region at k = n and switches
  to the target k partway through, rescaling the weights into the smaller ball.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import torch

from ..budget import reads_are_free
from ..train import Callback, TrainState
from ..validate import check_float, check_int
from .constraints import (
    EPS,
    LOW_PRECISION,
    Constraint,
    KSupportBall,
    as_matrix,
    check_shape,
    ksupport_norm,
    resolve_k,
    scaled_to_radius,
)
from .singular import top_k, top_k_projection


def _resolve_count(k: int | float, limit: int, what: str, shape: torch.Size, name: str = "k") -> int:
    # resolve_k's message speaks of entries; here the count is of groups or of singular values
    if isinstance(k, Integral) and not isinstance(k, bool) and not 1 <= int(k) <= limit:
        raise ValueError(f"{name} must lie in [1, {limit}] as a count of {what} for shape {tuple(shape)}; got "
                         f"{int(k)} (or give a fraction in (0, 1])")
    try:
        return resolve_k(k, limit)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err).replace("k ", f"{name} ", 1)) from None


class GroupKSupportBall(Constraint):
    """conv{x : at most k nonzero groups, ||x||_2 <= r}; groups are the slices along dim 0.

    Conv kernels (out, in, kh, kw) have one group per filter, linear weights one per output neuron, a
    1-D parameter one per entry (there the region is the plain k-support ball). The gauge is the
    k-support norm of the group L2 norms: the group-lasso norm at k = 1, the L2 norm at k = groups.
    ``k`` is a count of groups or a fraction of them.
    """

    name = "group_k_support"

    def __init__(self, shape: Sequence[int] | torch.Size, k: int | float, radius: float = 1.0) -> None:
        super().__init__(shape, radius)
        self.groups = self.shape[0] if len(self.shape) else 1
        self.k = _resolve_count(k, self.groups, "groups (slices along dim 0)", self.shape)
        # broadcasts a per-group factor over a group's entries
        self._group_shape = (self.groups,) + (1,) * max(0, len(self.shape) - 1) if len(self.shape) else ()

    @property
    def k_max(self) -> int:
        """The largest k: the number of groups."""
        return self.groups

    def group_norms(self, x: torch.Tensor) -> torch.Tensor:
        """The L2 norm of each group (slice along dim 0) of x, as a vector."""
        return torch.linalg.vector_norm(x.reshape(self.groups, -1), dim=1)

    def _lmo(self, x, out):
        g = self.group_norms(x)
        # stable sort: among equal group norms the lower index wins, so the vertex is deterministic
        order = torch.sort(g, descending=True, stable=True).indices[: self.k]
        keep = torch.zeros_like(g).index_fill_(0, order, 1.0)
        top = torch.mul(x, keep.view(self._group_shape), out=out)
        if not reads_are_free(x):
            return scaled_to_radius(top, top.norm(), self.radius, out)
        norm = float(top.norm())
        return out.zero_() if norm <= EPS else top.mul_(-self.radius / norm)

    def _norm(self, x):
        return ksupport_norm(self.group_norms(x), self.k)

    def unit_diameter(self):
        return 2.0

    def __repr__(self):
        return f"GroupKSupportBall(shape={tuple(self.shape)}, k={self.k}, radius={self.radius:.4g})"


def _matrix_shape(shape: torch.Size) -> tuple[int, int]:
    # as as_matrix reshapes: (out, in*kh*kw) for conv kernels, one row for vectors and scalars
    if len(shape) >= 2:
        return shape[0], math.prod(shape[1:])
    return 1, math.prod(shape)


class SpectralKSupportBall(Constraint):
    """conv{X : rank X <= k, ||X||_F <= r} on the parameter as a matrix (conv kernels: out x in*kh*kw).

    The gauge is the k-support norm of the singular values: the nuclear norm at k = 1, the Frobenius
    norm at k = rank. ``k`` is a count or a fraction of min(rows, columns). The LMO takes the top-k
    singular triplets by :func:`top_k_singular`, warm-started from the previous call's subspace;
    ``last_method`` ('power', 'svd' or 'zero') and ``last_iters`` tell how the last call got them. On an
    accelerator it spends exactly ``power_iters`` warm-started iterations per call instead
    (:func:`~kit.frankwolfe.singular.top_k_projection`), so that nothing is read on the host.
    """

    name = "spectral_k_support"

    def __init__(self, shape: Sequence[int] | torch.Size, k: int | float, radius: float = 1.0, power_iters: int = 10,
                 tol: float = 1e-3, oversample: int | None = None, seed: int = 0) -> None:
        shape = check_shape(shape)
        self.rows, self.cols = _matrix_shape(shape)
        self.rank = min(self.rows, self.cols)
        k = _resolve_count(k, self.rank, f"singular values (the {self.rows} x {self.cols} matrix)", shape)
        super().__init__(shape, radius)
        self.k = k
        self.power_iters = check_int(power_iters, "power_iters", low=1)
        self.tol = check_float(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
        self.oversample = None if oversample is None else check_int(oversample, "oversample", low=0)
        self.seed = check_int(seed, "seed", low=0)
        self.last_method, self.last_iters = "", 0

    @property
    def k_max(self) -> int:
        """The largest k: the rank bound min(rows, columns)."""
        return self.rank

    def _lmo(self, x, out):
        a = as_matrix(x)
        a = a.float() if a.dtype in LOW_PRECISION else a
        if not reads_are_free(x):  # a fixed number of warm-started iterations: nothing read on the host
            left, coeff, self._buffers["basis"] = top_k_projection(a, self.k, iters=self.power_iters,
                                                                   start=self._buffers.get("basis"), seed=self.seed)
            self.last_method, self.last_iters = "power", self.power_iters
            return scaled_to_radius((left @ coeff).reshape(x.shape), coeff.norm(), self.radius, out)
        if float(torch.linalg.matrix_norm(a)) <= EPS:
            self.last_method, self.last_iters = "zero", 0
            return out.zero_()
        u, s, vh, basis, self.last_method, self.last_iters = top_k(
            a, self.k, iters=self.power_iters, tol=self.tol, oversample=self.oversample,
            start=self._buffers.get("basis"), seed=self.seed)
        self._buffers["basis"] = basis
        size = float(s.norm())
        if size <= EPS:
            return out.zero_()
        return out.copy_(((u * (s * (-self.radius / size))) @ vh).reshape(x.shape))

    def _norm(self, x):
        return ksupport_norm(torch.linalg.svdvals(as_matrix(x.detach()).double()), self.k).to(x.dtype)

    def unit_diameter(self):
        return 2.0

    def __repr__(self):
        return f"SpectralKSupportBall(shape={tuple(self.shape)}, k={self.k}, radius={self.radius:.4g})"


K_SUPPORT_REGIONS = (KSupportBall, GroupKSupportBall, SpectralKSupportBall)


def _unit(region: Constraint) -> str:
    return {GroupKSupportBall: "groups (slices along dim 0)", SpectralKSupportBall: "singular values"}.get(
        next(c for c in K_SUPPORT_REGIONS if isinstance(region, c)), "entries")


def k_limit(region: Constraint) -> int:
    """The largest k of a k-support-type region (entries, groups, or rank bound)."""
    if isinstance(region, KSupportBall):
        return region.n
    if isinstance(region, (GroupKSupportBall, SpectralKSupportBall)):
        return region.k_max
    raise TypeError(f"{type(region).__name__} is not a k-support-type region "
                    f"({', '.join(c.__name__ for c in K_SUPPORT_REGIONS)})")


class DelayedK(Callback):
    """Train at k = n, then switch every k-support-type region to ``target_k`` at step round(at * total_steps).

    At the switch each paired parameter is rescaled into its new (smaller) ball. ``target_k`` is a count
    or a fraction, resolved per region. ``constraints`` are the regions the optimizer holds (others in the
    list are left alone); ``switched_at`` is the step of the switch once it happened.
    """

    def __init__(self, constraints: Sequence[Constraint], target_k: int | float, at: float = 0.5) -> None:
        if isinstance(constraints, Constraint) or not isinstance(constraints, Sequence):
            raise TypeError(f"constraints must be a list of regions (one per parameter); got "
                            f"{type(constraints).__name__}")
        for i, c in enumerate(constraints):
            if not isinstance(c, Constraint):
                raise TypeError(f"constraints[{i}] must be a kit.frankwolfe Constraint; got {type(c).__name__}")
        self.regions = [c for c in constraints if isinstance(c, K_SUPPORT_REGIONS)]
        if not self.regions:
            raise ValueError("constraints hold no k-support-type region (KSupportBall, GroupKSupportBall, "
                             "SpectralKSupportBall): there is no k to switch")
        self.at = check_float(at, "at", low=0.0, high=1.0)
        # resolved now, so a k too large for some layer fails before training starts
        self.targets = [_resolve_count(target_k, k_limit(c), _unit(c), c.shape, "target_k") for c in self.regions]
        self.target_k = target_k
        self.switch_step = 0
        self.switched_at: int | None = None

    def on_fit_start(self, state: TrainState) -> None:
        """Set every region to its largest k and find the step of the switch."""
        self._pairs(state.optimizer)  # fail now, not at the switch, if a region has no parameter
        for region in self.regions:
            region.k = k_limit(region)
        self.switch_step = round(self.at * state.total_steps)
        self.switched_at = None

    def before_step(self, state: TrainState) -> None:
        """Switch once ``switch_step`` steps are done."""
        if self.switched_at is None and state.step >= self.switch_step:
            self._switch(state)

    def on_fit_end(self, state: TrainState) -> None:
        """At at = 1 the switch falls after the last step."""
        if self.switched_at is None and state.step >= self.switch_step:
            self._switch(state)

    def _pairs(self, optimizer: torch.optim.Optimizer) -> list[tuple[torch.Tensor, Constraint]]:
        pairs, mine = [], {id(r) for r in self.regions}  # by identity: regions of equal shape are distinct
        for group in optimizer.param_groups:
            if "constraints" not in group:
                raise TypeError(f"DelayedK needs a constrained optimizer (SFW); {type(optimizer).__name__} "
                                f"holds no constraints")
            pairs += [(p, c) for p, c in zip(group["params"], group["constraints"], strict=True) if id(c) in mine]
        held = {id(c) for _, c in pairs}
        missing = [r for r in self.regions if id(r) not in held]
        if missing:
            raise ValueError(f"{len(missing)} region(s) given to DelayedK are not held by the optimizer, e.g. "
                             f"{missing[0]!r}: give the constraints the SFW optimizer was built with")
        return pairs

    @torch.no_grad()
    def _switch(self, state: TrainState) -> None:
        for region, k in zip(self.regions, self.targets, strict=True):
            region.k = k
        for param, region in self._pairs(state.optimizer):
            param.copy_(region.make_feasible(param))
        self.switched_at = state.step
