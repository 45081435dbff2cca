"""PDE problems for operator learning: residuals, boundary terms, initial-condition samplers and reference
solvers with one signature, ``problem.solve(u0, t) -> array (len(t), n)`` on the problem's grid.

* :class:`Heat` ``u_t = alpha u_xx`` on [0, 1] with u = 0 at both ends: the exact sine-series solution.
* :class:`Burgers` ``u_t + u u_x = nu u_xx`` on [0, 1), periodic: pseudo-spectral in space, ETDRK4 in time
  (Kassam and Trefethen 2005; stiff-stable, the diffusion is integrated exactly), step halved until two
  step sizes agree.

An initial condition lives on the grid (``problem.grid(n)``); :meth:`Problem.coefficients` turns it into the
series that interpolates it, which :meth:`Problem.initial_value` evaluates (differentiably) anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import fft as sfft

from ..models import Rebuildable
from ..validate import check_choice, check_float, check_int

SAMPLERS = ("grf", "sines")


def _as_array(values: Sequence[float] | np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers; got {type(values).__name__}") from err
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values (nan or inf)")
    return array


class Problem(Rebuildable):
    """A 1-D time-dependent PDE on [0, 1]: see the module docstring."""

    name = "problem"
    periodic = False

    def grid(self, n: int) -> np.ndarray:
        """The n grid points on which initial conditions and reference solutions live."""
        raise NotImplementedError

    def min_points(self) -> int:
        """The fewest grid points the problem accepts."""
        return 4

    def check_initial(self, u0: Sequence[float] | np.ndarray | torch.Tensor, n: int | None = None) -> np.ndarray:
        """``u0`` as a float64 array of n grid values (n: its length unless given), or a clear error."""
        u0 = _as_array(u0, "u0")
        if u0.ndim != 1:
            raise ValueError(f"u0 must be one initial condition: a 1-D array of grid values; got shape {u0.shape}")
        if n is not None and len(u0) != n:
            raise ValueError(f"u0 must have {n} values (one per grid point); got {len(u0)}")
        if len(u0) < self.min_points():
            raise ValueError(f"u0 needs at least {self.min_points()} grid points; got {len(u0)}")
        return u0

    def check_times(self, t: Sequence[float] | np.ndarray | float) -> np.ndarray:
        """Times as a 1-D float64 array of values >= 0."""
        t = np.atleast_1d(_as_array(t, "t"))
        if t.ndim != 1:
            raise ValueError(f"t must be a 1-D array of times; got shape {t.shape}")
        if np.any(t < 0):
            raise ValueError(f"t must hold times >= 0; got {t.min()}")
        return t

    def solve(self, u0, t) -> np.ndarray:
        """The reference solution at times ``t`` on u0's grid: shape (len(t), len(u0))."""
        raise NotImplementedError

    # -- what physics-informed training needs, in torch
    def residual(self, u: torch.Tensor, u_t: torch.Tensor, u_x: torch.Tensor, u_xx: torch.Tensor) -> torch.Tensor:
        """The PDE's residual from u and its derivatives (0 on a solution)."""
        raise NotImplementedError

    def coefficients(self, u0, modes: int) -> torch.Tensor:
        """The series of ``modes`` terms interpolating u0 (float64)."""
        raise NotImplementedError

    def initial_value(self, coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The initial condition given by its series at points x (differentiable in x): coefficients (C,) with x
        (Np,), or (B, C) with x (B, Np)."""
        raise NotImplementedError


class Heat(Problem):
    """``u_t = alpha u_xx`` on [0, 1], u(0, t) = u(1, t) = 0; grid with both end points."""

    name = "heat"

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = check_float(alpha, "alpha", low=0.0, low_open=True)

    def __repr__(self) -> str:
        return f"Heat(alpha={self.alpha:g})"

    def grid(self, n: int) -> np.ndarray:
        return np.linspace(0.0, 1.0, check_int(n, "n", low=self.min_points()))

    def check_initial(self, u0, n=None):
        u0 = super().check_initial(u0, n)
        scale = max(1.0, float(np.abs(u0).max()))
        if abs(u0[0]) > 1e-9 * scale or abs(u0[-1]) > 1e-9 * scale:
            raise ValueError(f"u0 must vanish at both ends (u = 0 at x = 0 and x = 1); got u0[0] = {u0[0]:.3g}, "
                             f"u0[-1] = {u0[-1]:.3g}")
        return u0

    def sine_coefficients(self, u0) -> np.ndarray:
        """b_k, k = 1 .. n-2, with u0(x_j) = sum_k b_k sin(k pi x_j) at every grid point (a DST-I)."""
        u0 = self.check_initial(u0)
        return sfft.dst(u0[1:-1], type=1) / (len(u0) - 1)

    def solve(self, u0, t):
        u0 = self.check_initial(u0)
        t = self.check_times(t)
        b = self.sine_coefficients(u0)
        k = np.arange(1, len(b) + 1)
        decay = np.exp(-self.alpha * (k * math.pi) ** 2 * t[:, None])  # each mode decays on its own
        out = np.zeros((len(t), len(u0)))
        out[:, 1:-1] = sfft.dst(b * decay, type=1, axis=1) / 2
        return out

    def residual(self, u, u_t, u_x, u_xx):
        return u_t - self.alpha * u_xx

    def coefficients(self, u0, modes):
        modes = check_int(modes, "modes", low=1)
        b = self.sine_coefficients(u0)
        out = np.zeros(modes)
        out[: min(modes, len(b))] = b[:modes]
        return torch.from_numpy(out)

    def initial_value(self, coefficients, x):
        k = torch.arange(1, coefficients.shape[-1] + 1, dtype=x.dtype, device=x.device)
        return (coefficients.to(x.dtype)[..., None, :] * torch.sin(math.pi * k * x[..., None])).sum(-1)

    def sample(self, count: int, n: int, *, seed: int = 0, kind: str = "grf", modes: int = 8,
               decay: float = 2.0, peak: float | None = None) -> np.ndarray:
        """``count`` initial conditions on the n-point grid: sine series with ``modes`` terms whose amplitudes
        are Gaussian with standard deviation k^-decay ('grf') or uniform in [-1, 1] / k ('sines'), seeded; each
        scaled to a largest |value| of ``peak`` (None: of 1 at most)."""
        return _sample(self, count, n, seed, kind, modes, decay, peak)


class Burgers(Problem):
    """``u_t + u u_x = nu u_xx`` on [0, 1), periodic; grid x_j = j / n."""

    name = "burgers"
    periodic = True

    def __init__(self, nu: float = 0.01, tol: float = 1e-7) -> None:
        self.nu = check_float(nu, "nu", low=0.0, low_open=True)
        self.tol = check_float(tol, "tol", low=0.0, low_open=True)

    def __repr__(self) -> str:
        return f"Burgers(nu={self.nu:g})"

    def min_points(self) -> int:
        return 8

    def grid(self, n: int) -> np.ndarray:
        n = check_int(n, "n", low=self.min_points())
        return np.arange(n) / n

    def solve(self, u0, t):
        u0 = self.check_initial(u0)
        t = self.check_times(t)
        n = len(u0)
        k = 2 * math.pi * np.fft.rfftfreq(n, 1.0 / n)
        keep = np.abs(np.fft.rfftfreq(n, 1.0 / n)) < n / 3  # 2/3-rule dealiasing of u^2
        # a first step that the advection allows, then halved until two step sizes agree
        dt = min(0.01, 0.5 / ((np.abs(u0).max() + 1e-12) * k.max() + 1.0))
        coarse = self._march(u0, t, dt, k, keep)
        while True:
            fine = self._march(u0, t, dt / 2, k, keep)
            scale = max(1.0, float(np.abs(fine).max()))
            if float(np.abs(fine - coarse).max()) <= self.tol * scale or dt < 1e-7:
                return fine
            dt, coarse = dt / 2, fine

    def _march(self, u0: np.ndarray, t: np.ndarray, dt: float, k: np.ndarray, keep: np.ndarray) -> np.ndarray:
        n = len(u0)
        L = -self.nu * k**2
        g = -0.5j * k * keep

        def nonlinear(v: np.ndarray) -> np.ndarray:
            return g * np.fft.rfft(np.fft.irfft(v, n) ** 2)

        order = np.argsort(t)
        out = np.empty((len(t), n))
        v, now = np.fft.rfft(u0), 0.0
        coeffs: dict[float, tuple] = {}
        for i in order:
            while now < t[i] - 1e-14:
                h = min(dt, t[i] - now)
                if h not in coeffs:
                    coeffs[h] = _etdrk4_coefficients(L, h)
                e, e2, q, f1, f2, f3 = coeffs[h]
                nv = nonlinear(v)
                a = e2 * v + q * nv
                na = nonlinear(a)
                b = e2 * v + q * na
                nb = nonlinear(b)
                c = e2 * a + q * (2 * nb - nv)
                nc = nonlinear(c)
                v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
                now += h
            out[i] = np.fft.irfft(v, n)
        return out

    def residual(self, u, u_t, u_x, u_xx):
        return u_t + u * u_x - self.nu * u_xx

    def coefficients(self, u0, modes):
        """[a_0, a_1, b_1, ..., a_m, b_m] with u0(x) = a_0 + sum_k a_k cos(2 pi k x) + b_k sin(2 pi k x)."""
        modes = check_int(modes, "modes", low=1)
        u0 = self.check_initial(u0)
        n = len(u0)
        c = np.fft.rfft(u0) / n
        out = np.zeros(2 * modes + 1)
        out[0] = c[0].real
        for kk in range(1, min(modes, (n - 1) // 2) + 1):
            out[2 * kk - 1], out[2 * kk] = 2 * c[kk].real, -2 * c[kk].imag
        return torch.from_numpy(out)

    def initial_value(self, coefficients, x):
        modes = (coefficients.shape[-1] - 1) // 2
        k = torch.arange(1, modes + 1, dtype=x.dtype, device=x.device)
        phase = 2 * math.pi * k * x[..., None]
        c = coefficients.to(x.dtype)[..., None, :]  # one series per row of x
        return c[..., 0] + (c[..., 1::2] * torch.cos(phase) + c[..., 2::2] * torch.sin(phase)).sum(-1)

    def sample(self, count: int, n: int, *, seed: int = 0, kind: str = "grf", modes: int = 8,
               decay: float = 2.0, peak: float | None = None) -> np.ndarray:
        """``count`` periodic initial conditions on the n-point grid: Fourier series with ``modes`` harmonics,
        Gaussian amplitudes with standard deviation k^-decay ('grf') or uniform in [-1, 1] / k ('sines'),
        each scaled to a largest |value| of ``peak`` (None: of 1 at most); seeded."""
        return _sample(self, count, n, seed, kind, modes, decay, peak)


def _sample(problem: Problem, count: int, n: int, seed: int, kind: str, modes: int, decay: float,
            peak: float | None) -> np.ndarray:
    count = check_int(count, "count", low=1)
    x = problem.grid(n)
    check_choice(kind, "kind", SAMPLERS)
    modes = check_int(modes, "modes", low=1)
    decay = check_float(decay, "decay", low=0.0)
    if peak is not None:
        peak = check_float(peak, "peak", low=0.0, low_open=True)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    k = np.arange(1, modes + 1)
    if kind == "grf":
        amp = rng.standard_normal((count, 2, modes)) * k**-decay
    else:
        amp = rng.uniform(-1.0, 1.0, (count, 2, modes)) / k
    if isinstance(problem, Heat):
        u0 = amp[:, 0] @ np.sin(math.pi * np.outer(k, x))
        u0[:, 0] = u0[:, -1] = 0.0
    else:
        phase = 2 * math.pi * np.outer(k, x)
        u0 = amp[:, 0] @ np.cos(phase) + amp[:, 1] @ np.sin(phase)
    largest = np.abs(u0).max(axis=1, keepdims=True)
    if peak is None:
        return u0 / np.maximum(largest, 1.0)
    return u0 * (check_float(peak, "peak", low=0.0, low_open=True) / np.maximum(largest, 1e-12))


def _etdrk4_coefficients(L: np.ndarray, h: float, points: int = 32) -> tuple:
    """ETDRK4's exponentials and phi-functions for the diagonal linear part L and step h (contour integrals, so
    that small |hL| loses no digits)."""
    e, e2 = np.exp(h * L), np.exp(h * L / 2)
    r = np.exp(1j * math.pi * (np.arange(1, points + 1) - 0.5) / points)
    lr = h * L[:, None] + r[None, :]
    q = h * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = h * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = h * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1))
    f3 = h * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1))
    return e, e2, q, f1, f2, f3
