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

from ..train import Callback, TrainState
from ..validate import check_float, check_int
from .constraints import EPS, Constraint, KSupportBall, as_matrix, check_shape, ksupport_norm, resolve_k

_LOW_PRECISION = (torch.float16, torch.bfloat16)  # no QR / SVD for these on the CPU: work in float32
_SVD_UP_TO = 32  # rank bound up to which a full SVD is cheaper than the iteration's overhead


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
        norm = float(top.norm())
        return out.zero_() if norm <= EPS else top.mul_(-self.radius / norm)

    def norm(self, x):
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


def _block_size(k: int, rank: int, oversample: int | None) -> int:
    extra = max(4, k // 2) if oversample is None else oversample
    return min(rank, k + extra)


def _random_basis(n: int, p: int, like: torch.Tensor, seed: int) -> torch.Tensor:
    # a seeded generator of its own: the global RNG is untouched and the first start is reproducible
    gen = torch.Generator(device=like.device).manual_seed(seed)
    start = torch.randn(n, p, generator=gen, device=like.device, dtype=like.dtype)
    return torch.linalg.qr(start).Q


def _exact_top(a: torch.Tensor, k: int, p: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    return u[:, :k], s[:k], vh[:k], vh[:p].T


def _subspace_iteration(a: torch.Tensor, k: int, basis: torch.Tensor, iters: int, tol: float
                        ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None, int]:
    """Top-k triplets of a by block power iteration with Rayleigh-Ritz from ``basis`` (n x p, orthonormal).

    Returns ((U, S, Vh, new basis), iterations), or (None, iterations) when every residual
    ||a v_i - s_i u_i|| did not fall below ``tol`` * s_1, or would not within ``iters`` at the rate seen.
    """
    rank = min(a.shape)
    energy = float(torch.linalg.matrix_norm(a)) ** 2
    y = a @ basis
    previous = 0.0
    for it in range(1, iters + 1):
        left = torch.linalg.qr(y).Q  # m x p
        z = a.T @ left  # n x p; z^T = left^T a exactly, so a^T u = s v holds for every Ritz triplet
        w, s, ubt = torch.linalg.svd(z, full_matrices=False)
        u = left @ ubt.T
        y = a @ w  # the next iteration's product, and the residual a v - s u for free
        top = float(s[0])
        residual = float(torch.linalg.vector_norm(y[:, :k] - u[:, :k] * s[:k], dim=0).max()) / max(top, EPS)
        captured = float((s[:k] * s[:k]).sum())
        # the true top k hold at least k/rank of the energy: a block stuck off the dominant subspace fails this
        if residual <= tol and captured >= (1.0 - 1e-3) * energy * k / rank:
            return (u[:, :k], s[:k], w[:, :k].T, w), it
        # a clustered spectrum converges too slowly to beat the full SVD: stop paying for iterations early
        if residual > tol and it > 1:
            rate = residual / previous
            if rate >= 1.0 or it + math.log(tol / residual) / math.log(rate) > iters:
                return None, it
        previous = residual
    return None, iters


def _top_k(a: torch.Tensor, k: int, *, iters: int, tol: float, oversample: int | None, start: torch.Tensor | None,
           seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str, int]:
    """(U, S, Vh, basis for the next warm start, 'power' or 'svd', power iterations spent)."""
    rank = min(a.shape)
    p = _block_size(k, rank, oversample)
    if 2 * p > rank or rank <= _SVD_UP_TO:  # the full SVD costs about as much then
        return (*_exact_top(a, k, p), "svd", 0)
    n = a.shape[1]
    if start is None or start.shape[0] != n:
        start = _random_basis(n, p, a, seed)
    elif start.shape[1] != p:  # k changed (a delayed switch): keep what is known, fill up with random columns
        extra = p - start.shape[1]
        start = start[:, :p] if extra < 0 else torch.cat([start.to(a.dtype), _random_basis(n, extra, a, seed)], 1)
    found, spent = _subspace_iteration(a, k, start.to(a.dtype), iters, tol)
    if found is None:
        return (*_exact_top(a, k, p), "svd", spent)
    return (*found, "power", spent)


def top_k_singular(m: torch.Tensor, k: int, *, iters: int = 10, tol: float = 1e-3, oversample: int | None = None,
                   start: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k largest singular triplets (U: m x k, S: k, Vh: k x n) of a matrix, S descending.

    Block power iteration on p = k + ``oversample`` vectors (default max(4, k // 2)) with Rayleigh-Ritz
    extraction, from ``start`` (n rows, e.g. last step's right singular vectors; its columns are cut or
    filled up with random ones to p) or a seeded random basis. It stops once every residual
    ||m v_i - s_i u_i|| is below ``tol`` * s_1 (the Ritz values then err by
    about tol^2 s_1 over the relative spectral gap). The
    full SVD answers instead when p exceeds half the rank, the rank is at most 32, or the iteration
    has not converged, or would not within ``iters`` steps at the rate seen.
    """
    if not isinstance(m, torch.Tensor) or m.dim() != 2:
        raise TypeError(f"m must be a 2-D tensor (a matrix); got {getattr(m, 'shape', type(m).__name__)}")
    k = check_int(k, "k", low=1, high=min(m.shape))
    iters = check_int(iters, "iters", low=1)
    tol = check_float(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    if oversample is not None:
        oversample = check_int(oversample, "oversample", low=0)
    seed = check_int(seed, "seed", low=0)
    if start is not None and (not isinstance(start, torch.Tensor) or start.dim() != 2 or start.shape[0] != m.shape[1]):
        raise ValueError(f"start must be a basis of {m.shape[1]} rows (one per column of m), shaped "
                         f"({m.shape[1]}, p); got {getattr(start, 'shape', type(start).__name__)}")
    a = m.detach()
    a = a.float() if a.dtype in _LOW_PRECISION else a
    u, s, vh, _, _, _ = _top_k(a, k, iters=iters, tol=tol, oversample=oversample, start=start, seed=seed)
    return u.to(m.dtype), s.to(m.dtype), vh.to(m.dtype)


class SpectralKSupportBall(Constraint):
    """conv{X : rank X <= k, ||X||_F <= r} on the parameter as a matrix (conv kernels: out x in*kh*kw).

    The gauge is the k-support norm of the singular values: the nuclear norm at k = 1, the Frobenius
    norm at k = rank. ``k`` is a count or a fraction of min(rows, columns). The LMO takes the top-k
    singular triplets by :func:`top_k_singular`, warm-started from the previous call's subspace;
    ``last_method`` ('power', 'svd' or 'zero') and ``last_iters`` tell how the last call got them.
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
        a = a.float() if a.dtype in _LOW_PRECISION else a
        if float(torch.linalg.matrix_norm(a)) <= EPS:
            self.last_method, self.last_iters = "zero", 0
            return out.zero_()
        u, s, vh, basis, self.last_method, self.last_iters = _top_k(
            a, self.k, iters=self.power_iters, tol=self.tol, oversample=self.oversample,
            start=self._buffers.get("basis"), seed=self.seed)
        self._buffers["basis"] = basis
        size = float(s.norm())
        if size <= EPS:
            return out.zero_()
        return out.copy_(((u * (s * (-self.radius / size))) @ vh).reshape(x.shape))

    def norm(self, x):
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
