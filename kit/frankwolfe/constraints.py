"""Convex regions for one parameter tensor: linear minimization oracles, diameters, feasibility, projections.

Every region has the same interface (the one constraint interface of the kit):

- ``lmo(x)``: a vertex ``v`` minimizing ``<v, x>`` over the region (what Frank-Wolfe uses);
- ``diameter``: its L2 diameter; ``radius``;
- ``norm(x)``: the region's own gauge, so ``x`` is inside iff ``norm(x) <= radius`` (the simplex,
  which holds only points summing to r, overrides ``contains``);
- ``make_feasible(x)``: ``x`` rescaled into the region (unchanged if already inside);
- ``project(x)``: the Euclidean projection, where one is cheap (else NotImplementedError).

Regions are built for a parameter's shape; ``k`` may be a fraction of the entries or a count.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from numbers import Integral, Real

import torch

from ..budget import reads_are_free
from ..models import Rebuildable
from ..validate import check_float, check_int
from . import kernels
from .singular import EPS, LOW_PRECISION, top_k, top_k_projection


def check_shape(shape: Sequence[int] | torch.Size) -> torch.Size:
    """A parameter shape (positive ints) as a torch.Size, or a clear error."""
    if isinstance(shape, int) or not isinstance(shape, (Sequence, torch.Size)):
        raise TypeError(f"shape must be a sequence of ints (a parameter's shape); got {shape!r}")
    return torch.Size(check_int(s, f"shape[{i}]", low=1) for i, s in enumerate(shape))


def resolve_k(k: int | float, n: int) -> int:
    """k as a count: an int in [1, n], or a fraction in (0, 1] of n (rounded, clamped to [1, n])."""
    if isinstance(k, bool) or not isinstance(k, Real):
        raise TypeError(f"k must be an int count or a float fraction; got {type(k).__name__}")
    if isinstance(k, Integral):
        k = int(k)
        if not 1 <= k <= n:
            raise ValueError(f"k must lie in (0, n] = (0, {n}] as a count; got {k}")
        return k
    k = float(k)
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k as a fraction must lie in (0, 1]; got {k}")
    return min(n, max(1, round(k * n)))


_EXACT_BELOW = 65536  # entries; below this a plain top-k is as fast as the selection below


def _scratch(buffers: dict | None, name: str, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    # reused work tensors: a fresh large tensor per step costs page faults that dwarf the arithmetic
    dtype = dtype or like.dtype
    if buffers is None:
        return torch.empty(like.shape, dtype=dtype, device=like.device)
    buf = buffers.get(name)
    if buf is None or buf.shape != like.shape or buf.dtype != dtype or buf.device != like.device:
        buf = buffers[name] = torch.empty(like.shape, dtype=dtype, device=like.device)
    return buf


def radius_scale(norm: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """-radius / norm, 0 where norm <= EPS (no direction), computed on the device without reading norm."""
    return torch.where(norm > EPS, -radius / norm.clamp_min(EPS), 0.0)


def scaled_to_radius(x: torch.Tensor, norm: torch.Tensor, radius: float, out: torch.Tensor) -> torch.Tensor:
    """-radius * x / norm into ``out`` (0 where norm <= EPS), without reading norm on the host."""
    return torch.mul(x, radius_scale(norm, radius), out=out)


def _signed_vertex(x: torch.Tensor, index: torch.Tensor, value: float, out: torch.Tensor) -> torch.Tensor:
    """``out`` = 0 except ``value * sign(x[index])`` at the flat ``index`` (a 0-d tensor), on the device."""
    flat = x.reshape(-1)
    entry = torch.sign(flat.gather(0, index.reshape(1))).mul_(value)
    out.zero_().view(-1).scatter_(0, index.reshape(1), entry)
    return out


def _exact_top_k(a: torch.Tensor, k: int, out: torch.Tensor) -> torch.Tensor:
    return out.zero_().index_fill_(0, torch.topk(a, k, sorted=False).indices, 1.0)


def _coprime_stride(n: int, target: int) -> int:
    # a stride sharing no factor with n (hence with any dimension): a sample that is not aligned
    # with rows or columns, e.g. not always the same input pixels of a 28x28 image
    stride = target
    while math.gcd(stride, n) != 1:
        stride += 1
    return stride


def _argmax_abs(flat: torch.Tensor) -> int:
    """Index of the largest |entry|, by row maxima first (a plain argmax on CPU is not vectorized)."""
    n = flat.numel()
    width = max(1, math.isqrt(n))
    rows = n // width
    body = flat[: rows * width].view(rows, width)
    peaks = torch.maximum(body.amax(1), body.amin(1).neg())  # (aminmax along a dim is not vectorized)
    r = int(peaks.argmax())
    best = r * width + int(body[r].abs().argmax())
    if rows * width < n:
        tail = flat[rows * width :]
        j = int(tail.abs().argmax())
        if tail[j].abs() > flat[best].abs():
            best = rows * width + j
    return best


def _threshold(a: torch.Tensor, k: int, buffers: dict | None) -> torch.Tensor | None:
    """The k-th largest of a (flat, >= 0) when exactly k entries reach it, found without a full top-k.

    A strided sample gives a value just below the k-th largest; only the entries above it are ranked
    exactly. None when the sample missed or there is a tie at the threshold (use the exact top-k).
    """
    n = a.numel()
    stride = _coprime_stride(n, max(1, n // 8192))
    sample = a[::stride]
    m = sample.numel()
    expected = k * m / n
    spread = 3.5 * math.sqrt(expected * (1.0 - k / n) + 1.0) + 2.0  # about 3.5 binomial standard deviations
    lo_rank = min(m, int(expected + spread) + 1)
    lower = torch.topk(sample, lo_rank).values[-1]  # below the k-th largest, with high probability
    candidates = a[torch.ge(a, lower, out=_scratch(buffers, "candidate", a, torch.bool))]
    if candidates.numel() < k:
        return None
    tau = torch.kthvalue(candidates, candidates.numel() - k + 1).values
    return tau if int((candidates >= tau).sum()) == k else None


def top_k_indicator(x: torch.Tensor, k: int, buffers: dict | None = None) -> torch.Tensor:
    """Float 0/1 tensor shaped like x with ones at exactly k entries of largest |x|.

    Large tensors avoid a full top-k pass (see ``_threshold``) and build the result in one
    thresholding pass of float arithmetic, which runs vectorized where boolean comparisons do not.
    ``buffers`` (a dict) keeps work tensors between calls; the result lives in it then.
    """
    flat = x.detach().reshape(-1)
    n = flat.numel()
    out = _scratch(buffers, "indicator", flat)
    if k == n:
        return out.fill_(1.0).view(x.shape)
    a = torch.abs(flat, out=_scratch(buffers, "abs", flat))
    # the sampled threshold reads counts on the host; an accelerator's top-k is fast and never waits
    tau = _threshold(a, k, buffers) if n >= _EXACT_BELOW and reads_are_free(flat) else None
    if tau is not None:
        return torch.sub(a, tau, out=out).sign_().add_(1.0).clamp_max_(1.0).view(x.shape)  # |x| >= tau
    return _exact_top_k(a, k, out).view(x.shape)


def ksupport_norm(x: torch.Tensor, k: int | float) -> torch.Tensor:
    """The k-support norm (Argyriou et al. 2012), exactly, by sorting; equals L1 at k=1 and L2 at k=n."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor; got {type(x).__name__}")
    z = x.detach().abs().flatten().double().sort(descending=True).values
    n = z.numel()
    k = resolve_k(k, n)
    tail = torch.cumsum(z.flip(0), 0).flip(0)  # tail[i] = sum_{j >= i} z_j (0-based)
    slack = 1e-12 * float(tail[0]) if n else 0.0  # ties meet the conditions with equality, up to round-off
    # find r in 0..k-1 with z_{k-r-1} > tail_{k-r} / (r+1) >= z_{k-r} (1-based; z_0 = +inf)
    for r in range(k):
        head_end = k - r - 1  # number of entries kept as they are
        avg = tail[head_end] / (r + 1)
        upper = math.inf if head_end == 0 else z[head_end - 1]
        if upper > avg - slack and avg >= z[head_end] - slack:
            head = z[:head_end]
            return torch.sqrt((head * head).sum() + (r + 1) * avg * avg).to(x.dtype)
    return z.norm().to(x.dtype)  # unreachable for exact arithmetic; guards round-off


DTYPES = (torch.float32, torch.float64, *LOW_PRECISION)


class Constraint(Rebuildable):
    """A convex region for one parameter tensor of a fixed shape.

    The public methods check their input first (a floating-point tensor of the region's shape;
    ``out``: a contiguous tensor of the same shape, dtype and device that shares no memory with
    ``x``) and then call the region's own ``_lmo`` / ``_norm`` / ``_project`` ... on valid input only,
    so neither the torch reference nor the fused kernels ever see a tensor of the wrong size.
    """

    name = "constraint"
    supports_projection = False

    def __init__(self, shape: Sequence[int] | torch.Size, radius: float = 1.0) -> None:
        self.shape = check_shape(shape)
        self.n = math.prod(self.shape)
        self.radius = check_float(radius, "radius", low=0.0, low_open=True)
        self._buffers: dict = {}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_buffers"} | {"_buffers": {}}

    def rebuild_args(self) -> tuple[type, tuple, dict] | None:
        """The constructor call with the region's current values (shape, radius, k as a count, ...): a k that
        DelayedK raised since is saved as it is now (:func:`kit.hub.save` with ``constraints``)."""
        recorded = super().rebuild_args()
        if recorded is None:
            return None
        cls, args, kwargs = recorded
        bound = inspect.signature(cls).bind(*args, **kwargs)
        bound.apply_defaults()
        return cls, (), {name: getattr(self, name, value) for name, value in bound.arguments.items()}

    # -- the interface, checked
    def lmo(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """A vertex v of the region minimizing <v, x> (written into ``out`` if given)."""
        self.check(x)
        if out is None:
            out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        else:
            self.check_out(out, x)
        x = x.detach()
        if x.dtype in LOW_PRECISION:
            work = x.float()
            return out.copy_(self._lmo(work, torch.empty(work.shape, dtype=work.dtype, device=work.device)))
        return self._lmo(x, out)

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """The region's gauge scaled by the radius: x is feasible iff norm(x) <= radius."""
        self.check(x)
        return self._norm(x.float()).to(x.dtype) if x.dtype in LOW_PRECISION else self._norm(x)

    def contains(self, x: torch.Tensor, tol: float = 1e-5) -> bool:
        """True if x lies in the region (up to a relative tolerance)."""
        self.check(x)
        tol = check_float(tol, "tol", low=0.0)
        return self._contains(x.float() if x.dtype in LOW_PRECISION else x, tol)

    def make_feasible(self, x: torch.Tensor) -> torch.Tensor:
        """x scaled toward the origin just enough to lie inside (unchanged if already inside)."""
        self.check(x)
        if x.dtype in LOW_PRECISION:
            return self._make_feasible(x.float()).to(x.dtype)
        return self._make_feasible(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Euclidean projection onto the region."""
        self.check(x)
        if not self.supports_projection:
            raise NotImplementedError(f"{type(self).__name__} has no cheap Euclidean projection; use SFW instead")
        return self._project(x.float()).to(x.dtype) if x.dtype in LOW_PRECISION else self._project(x)

    def check(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise a clear error unless ``x`` is a floating-point tensor of this region's shape."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a tensor; got {type(x).__name__}")
        if x.dtype not in DTYPES:
            raise TypeError(f"{name} must be a floating-point tensor (float32, float64, float16 or bfloat16); "
                            f"got dtype {x.dtype}")
        if x.shape != self.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but this {type(self).__name__} was built for "
                             f"shape {tuple(self.shape)}")

    def check_out(self, out: torch.Tensor, x: torch.Tensor) -> None:
        """Raise a clear error unless ``out`` can receive the vertex for ``x`` (see the class docstring)."""
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"out must be a tensor or None; got {type(out).__name__}")
        if out.shape != x.shape or out.dtype != x.dtype or out.device != x.device:
            raise ValueError(f"out must match x: shape {tuple(x.shape)}, dtype {x.dtype}, device {x.device}; got "
                             f"shape {tuple(out.shape)}, dtype {out.dtype}, device {out.device}")
        if not out.is_contiguous():
            raise ValueError("out must be contiguous (e.g. torch.empty_like(x))")
        if out.numel() > 0 and out.device.type != "meta" and (  # meta tensors have no memory to share
                out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()):
            raise ValueError("out shares memory with x; pass a separate tensor (the vertex overwrites out)")

    # -- what each region defines (called on checked input only)
    def _lmo(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unit_diameter(self) -> float:
        """L2 diameter at radius 1."""
        raise NotImplementedError

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no cheap Euclidean projection; use SFW instead")

    def _contains(self, x: torch.Tensor, tol: float) -> bool:
        return bool(self._norm(x) <= self.radius * (1 + tol) + tol * 1e-3)

    def _make_feasible(self, x: torch.Tensor) -> torch.Tensor:
        size = float(self._norm(x))
        return x if size <= self.radius else x * (self.radius / size)

    # -- shared behaviour
    @property
    def diameter(self) -> float:
        """L2 diameter of the region."""
        return self.radius * self.unit_diameter()

    def radius_for_diameter(self, diameter: float) -> float:
        """The radius at which this region has the given L2 diameter."""
        return diameter / self.unit_diameter()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={tuple(self.shape)}, radius={self.radius:.4g})"


class L2Ball(Constraint):
    """{x : ||x||_2 <= r}."""

    name = "l2"
    supports_projection = True

    def _lmo(self, x, out):
        if kernels.applies(x, out):
            return kernels.l2_vertex(x, self.radius, out)
        if not reads_are_free(x):
            return scaled_to_radius(x, x.norm(), self.radius, out)
        norm = float(x.norm())
        return out.zero_() if norm <= EPS else torch.mul(x, -self.radius / norm, out=out)

    def _norm(self, x):
        return x.norm()

    def unit_diameter(self):
        return 2.0

    def _project(self, x):
        if not reads_are_free(x):
            return x * (self.radius / x.norm().clamp_min(self.radius))  # a factor of 1 inside the ball
        return self._make_feasible(x)


class LinfBall(Constraint):
    """{x : ||x||_inf <= r}. Zero entries of x get 0 in the vertex, so dead inputs do not drift to +-r."""

    name = "linf"
    supports_projection = True

    def _lmo(self, x, out):
        if kernels.applies(x, out):
            return kernels.linf_vertex(x, self.radius, out)
        return torch.sign(x, out=out).mul_(-self.radius)

    def _norm(self, x):
        return x.abs().max()

    def unit_diameter(self):
        return 2.0 * math.sqrt(self.n)

    def _project(self, x):
        return x.clamp(-self.radius, self.radius)


def project_l1(x: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection onto the L1 ball (Duchi et al. 2008, by sorting)."""
    flat = x.flatten()
    on_host = reads_are_free(x)
    if on_host and flat.abs().sum() <= radius:
        return x.clone()
    u = flat.abs().sort(descending=True).values
    excess = u.cumsum(0) - radius
    ks = torch.arange(1, u.numel() + 1, device=x.device, dtype=u.dtype)
    theta = _threshold_at_last(u * ks > excess, excess)
    if not on_host:
        theta = theta.clamp_min(0)  # inside the ball theta <= 0, and x stays where it is
    return (torch.sign(flat) * (flat.abs() - theta).clamp_min(0)).view_as(x)


def _threshold_at_last(holds: torch.Tensor, excess: torch.Tensor) -> torch.Tensor:
    """excess[rho] / (rho + 1) at the last index rho where ``holds`` (the sorting projections' rule), as a
    tensor: nothing is read on the host, so an accelerator does not wait."""
    positions = torch.arange(1, holds.numel() + 1, device=holds.device)
    rho = torch.where(holds, positions, 0).amax().sub(1).clamp_min(0)
    return excess.gather(0, rho.reshape(1))[0] / (rho + 1)


class L1Ball(Constraint):
    """{x : ||x||_1 <= r}: vertices are +-r e_i."""

    name = "l1"
    supports_projection = True

    def _lmo(self, x, out):
        if kernels.applies(x, out):
            return kernels.l1_vertex(x, self.radius, out)
        if not reads_are_free(x):
            return _signed_vertex(x, x.reshape(-1).abs().argmax(), -self.radius, out)
        flat = x.reshape(-1)
        i = _argmax_abs(flat) if flat.numel() >= 4096 else int(flat.abs().argmax())  # argmax is not vectorized
        value = float(flat[i])
        out.zero_().view(-1)[i] = -self.radius * math.copysign(1.0, value) if value != 0 else 0.0
        return out

    def _norm(self, x):
        return x.abs().sum()

    def unit_diameter(self):
        return 2.0

    def _project(self, x):
        return project_l1(x, self.radius)


class LpBall(Constraint):
    """{x : ||x||_p <= r} for p >= 1 (p = inf allowed)."""

    name = "lp"

    def __init__(self, shape, p: float, radius: float = 1.0) -> None:
        super().__init__(shape, radius)
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise TypeError(f"p must be a number >= 1; got {type(p).__name__}")
        if not p >= 1:
            raise ValueError(f"p must lie in [1, inf]; got {p}")
        self.p = float(p)
        self.q = math.inf if self.p == 1 else (1.0 if math.isinf(self.p) else self.p / (self.p - 1))

    def _lmo(self, x, out):
        if self.p == 1:  # the formula degenerates at the ends; those balls have their own vertices
            return L1Ball._lmo(self, x, out)
        if math.isinf(self.p):
            return LinfBall._lmo(self, x, out)
        # v = -r sign(x) |x|^(q-1) / ||x||_q^(q-1): equality in Hoelder's inequality
        dual = x.norm(p=self.q)
        if not reads_are_free(x):
            vertex = -self.radius * torch.sign(x) * (x.abs() / dual.clamp_min(EPS)) ** (self.q - 1)
            return out.copy_(torch.where(dual > EPS, vertex, torch.zeros_like(vertex)))
        if dual <= EPS:
            return out.zero_()
        return out.copy_(-self.radius * torch.sign(x) * (x.abs() / dual) ** (self.q - 1))

    def _norm(self, x):
        return x.norm(p=self.p)

    def unit_diameter(self):
        return 2.0 * self.n ** (0.5 - 1.0 / self.p) if self.p >= 2 else 2.0

    def __repr__(self):
        return f"LpBall(shape={tuple(self.shape)}, p={self.p:g}, radius={self.radius:.4g})"


class _TopKRegion(Constraint):
    """A region whose vertices use the k largest entries (k a count, or a fraction of the entries)."""

    def __init__(self, shape, k: int | float, radius: float = 1.0) -> None:
        super().__init__(shape, radius)
        self.k = resolve_k(k, self.n)

    def __repr__(self):
        return f"{type(self).__name__}(shape={tuple(self.shape)}, k={self.k}, radius={self.radius:.4g})"


class KSparsePolytope(_TopKRegion):
    """conv{vectors with k entries +-r}: = {x : ||x||_inf <= r, ||x||_1 <= k r}."""

    name = "k_sparse"

    def _lmo(self, x, out):
        if kernels.applies(x, out):
            return kernels.topk_vertex(x, self.k, self.radius, False, out)
        return torch.sign(x, out=out).mul_(top_k_indicator(x, self.k, self._buffers)).mul_(-self.radius)

    def _norm(self, x):
        return torch.maximum(x.abs().max(), x.abs().sum() / self.k)

    def unit_diameter(self):
        return 2.0 * math.sqrt(self.k)


class KSupportBall(_TopKRegion):
    """The k-support norm ball: conv{x : |supp x| <= k, ||x||_2 <= r}; between the L1 (k=1) and L2 (k=n) balls."""

    name = "k_support"

    def _lmo(self, x, out):
        if kernels.applies(x, out):
            return kernels.topk_vertex(x, self.k, self.radius, True, out)
        top = torch.mul(x, top_k_indicator(x, self.k, self._buffers), out=out)  # x on the top k, 0 elsewhere
        if not reads_are_free(x):
            return scaled_to_radius(top, top.norm(), self.radius, out)
        norm = float(top.norm())
        return out.zero_() if norm <= EPS else top.mul_(-self.radius / norm)

    def _norm(self, x):
        return ksupport_norm(x, self.k)

    def unit_diameter(self):
        return 2.0



class NonnegativeKSparsePolytope(Constraint):
    """{m : 0 <= m <= r, sum m <= k r}: the masks of at most k features (vertices: k-subsets scaled by r).

    With ``per_sample=True`` the first dimension indexes samples and every sample has a polytope of its
    own (the region is their product, so one Frank-Wolfe step moves every sample's mask at once); ``k``
    then counts (or is a fraction of) each sample's features. Merlin-Arthur's provers optimise masks here.
    """

    name = "nonnegative_k_sparse"

    def __init__(self, shape, k: int | float, radius: float = 1.0, per_sample: bool = False) -> None:
        super().__init__(shape, radius)
        if not isinstance(per_sample, bool):
            raise TypeError(f"per_sample must be True or False; got {type(per_sample).__name__}")
        self.per_sample = per_sample
        self.rows = self.shape[0] if per_sample else 1
        self.features = self.n // self.rows
        self.k = resolve_k(k, self.features)

    def _by_row(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.rows, self.features)

    def _lmo(self, x, out):
        # 1 (times r) on each row's k most negative entries, where they are negative; 0 elsewhere
        values, index = torch.topk(self._by_row(x).neg(), self.k, dim=1)
        ones = (values > 0).to(out.dtype).mul_(self.radius)
        out.zero_().view(self.rows, self.features).scatter_(1, index, ones)
        return out

    def _row_gauges(self, x: torch.Tensor) -> torch.Tensor:
        rows = self._by_row(x)
        return torch.maximum(rows.amax(1), rows.sum(1) / self.k).clamp_min(0)

    def _norm(self, x):
        # the gauge of a region holding only nonnegative points: infinite wherever an entry is negative
        if bool((x < 0).any()):
            return x.new_tensor(math.inf)
        return self._row_gauges(x).max()

    def _contains(self, x, tol):
        return bool((x >= -tol).all()) and bool(self._row_gauges(x).max() <= self.radius * (1 + tol) + tol * 1e-3)

    def _make_feasible(self, x):
        # negative entries to 0, then each row scaled toward 0 just enough to fit
        clipped = x.clamp_min(0)
        scale = (self.radius / self._row_gauges(clipped).clamp_min(self.radius)).reshape(-1, 1)
        return (self._by_row(clipped) * scale).reshape(x.shape)

    def unit_diameter(self):
        return math.sqrt(self.rows * min(2 * self.k, self.features))

    def __repr__(self):
        rows = f", per_sample ({self.rows} samples)" if self.per_sample else ""
        return f"{type(self).__name__}(shape={tuple(self.shape)}, k={self.k}, radius={self.radius:.4g}{rows})"


def as_matrix(x: torch.Tensor) -> torch.Tensor:
    """A parameter as a matrix: conv kernels (out, in, kh, kw) become (out, in*kh*kw), vectors one row."""
    return x.reshape(x.shape[0], -1) if x.dim() >= 2 else x.reshape(1, -1)


class NuclearBall(Constraint):
    """{X : ||X||_* <= r} on the parameter reshaped to a matrix (conv kernels: out x in*kh*kw)."""

    name = "nuclear"
    supports_projection = True

    def __init__(self, shape, radius: float = 1.0, power_iters: int = 50, tol: float = 1e-4) -> None:
        super().__init__(shape, radius)
        self.power_iters = check_int(power_iters, "power_iters", low=1)
        self.tol = check_float(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)

    def _lmo(self, x, out):
        # v = -r u1 v1^T, the top singular pair to a residual tolerance (top_k with k = 1, warm-started);
        # a fixed number of plain power iterations lands off the optimum when sigma_1 and sigma_2 are close,
        # so only an accelerator, where the residual test would stall every step, takes a fixed number
        m = as_matrix(x)
        if not reads_are_free(x):  # a fixed number of warm-started iterations: nothing read on the host
            left, coeff, self._buffers["basis"] = top_k_projection(m, 1, iters=self.power_iters,
                                                                   start=self._buffers.get("basis"), seed=0)
            return scaled_to_radius((left @ coeff).reshape(x.shape), coeff.norm(), self.radius, out)
        if m.norm() <= EPS:
            return out.zero_()
        u, _, vh, basis, _, _ = top_k(m, 1, iters=self.power_iters, tol=self.tol, oversample=None,
                                      start=self._buffers.get("basis"), seed=0)
        self._buffers["basis"] = basis
        return out.copy_((-self.radius * torch.outer(u[:, 0], vh[0])).reshape(x.shape))

    def _norm(self, x):
        return torch.linalg.matrix_norm(as_matrix(x), ord="nuc")

    def unit_diameter(self):
        return 2.0

    def _project(self, x):
        u, s, vh = torch.linalg.svd(as_matrix(x), full_matrices=False)
        return ((u * project_l1(s, self.radius).clamp_min(0)) @ vh).reshape(x.shape)


def project_simplex(x: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection onto {x >= 0, sum x = radius} (by sorting)."""
    flat = x.flatten()
    u = flat.sort(descending=True).values
    excess = u.cumsum(0) - radius
    ks = torch.arange(1, u.numel() + 1, device=x.device, dtype=u.dtype)
    return (flat - _threshold_at_last(u - excess / ks > 0, excess)).clamp_min(0).view_as(x)


class ProbabilitySimplex(Constraint):
    """{x >= 0, sum x = r}: the probability simplex scaled by r; vertices r e_i."""

    name = "simplex"
    supports_projection = True

    def _lmo(self, x, out):
        if not reads_are_free(x):
            index = x.reshape(-1).argmin().reshape(1)
            out.zero_().view(-1).index_fill_(0, index, self.radius)
            return out
        out.zero_().view(-1)[int(x.reshape(-1).argmin())] = self.radius
        return out

    def _norm(self, x):
        # gauge of the simplex: its sum where x >= 0, infinite elsewhere
        return x.sum() if bool((x >= 0).all()) else x.new_tensor(math.inf)

    def _contains(self, x, tol):
        return bool((x >= -tol).all()) and abs(float(x.sum()) - self.radius) <= tol * max(1.0, self.radius)

    def _make_feasible(self, x):
        return x if self._contains(x, 1e-5) else self._project(x)

    def unit_diameter(self):
        return math.sqrt(2.0)

    def _project(self, x):
        return project_simplex(x, self.radius)


class Unconstrained(Constraint):
    """The whole space: SFW takes a plain momentum-SGD step on such parameters."""

    name = "unconstrained"
    supports_projection = True

    def __init__(self, shape, radius: float = 1.0) -> None:
        super().__init__(shape, radius)

    def _lmo(self, x, out):
        raise NotImplementedError("an unconstrained parameter has no LMO; SFW takes a gradient step for it")

    def _norm(self, x):
        return x.new_zeros(())

    def unit_diameter(self):
        return math.inf

    def _contains(self, x, tol):
        return True

    def _make_feasible(self, x):
        return x

    def _project(self, x):
        return x

    def __repr__(self):
        return f"Unconstrained(shape={tuple(self.shape)})"
