"""The top singular triplets of a matrix, for the spectral regions' LMOs (nuclear ball, spectral k-support ball).

Block power iteration with Rayleigh-Ritz extraction, warm-started, stopped by a residual tolerance,
with the full SVD as the answer when it is cheaper or the iteration does not converge fast enough:
the LMO is as accurate as the tolerance says however close the top singular values lie.

On an accelerator the regions call :func:`top_k_projection` instead: a fixed number of warm-started
iterations, orthonormalized by Cholesky QR, with no residual test and no SVD, whose checks would make
the host wait for the device at every step. Its error shrinks geometrically over calls on slowly
changing matrices (the momentum of a training run); a clustered spectrum needs more ``power_iters``.
"""

from __future__ import annotations

import math

import torch

from ..validate import check_float, check_int

EPS = 1e-12  # below this a singular value counts as zero
LOW_PRECISION = (torch.float16, torch.bfloat16)  # no QR / SVD for these on the CPU: work in float32
SVD_UP_TO = 32  # rank bound up to which a full SVD is cheaper than the iteration's overhead


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


def top_k(a: torch.Tensor, k: int, *, iters: int, tol: float, oversample: int | None, start: torch.Tensor | None,
          seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str, int]:
    """Unchecked :func:`top_k_singular` for the regions: (U, S, Vh, basis for the next warm start, 'power'
    or 'svd', power iterations spent)."""
    rank = min(a.shape)
    p = _block_size(k, rank, oversample)
    if 2 * p > rank or rank <= SVD_UP_TO:  # the full SVD costs about as much then
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


def _orthonormal(y: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning those of y (m x p) by shifted Cholesky QR, twice: matrix products and a
    triangular solve, with no error check that reads a value on the host (QR and SVD wait for the device)."""
    if y.shape[1] == 1:  # one column: its normalization (a zero column stays zero)
        return y / torch.linalg.vector_norm(y).clamp_min(torch.finfo(y.dtype).tiny)
    eye = torch.eye(y.shape[1], device=y.device, dtype=y.dtype)
    for _ in range(2):  # the second pass restores orthogonality the first loses to the Gram's conditioning
        gram = y.T @ y
        shift = gram.diagonal().sum() * (torch.finfo(y.dtype).eps * (y.shape[0] + y.shape[1]))
        factor = torch.linalg.cholesky_ex(gram + (shift + torch.finfo(y.dtype).tiny) * eye).L
        y = torch.linalg.solve_triangular(factor.T, y, upper=True, left=False)  # y R^-1 with R = L^T
    return y


def top_k_projection(a: torch.Tensor, k: int, *, iters: int, start: torch.Tensor | None, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U_k U_k^T a as (left basis Q: m x k, Q^T a: k x n) and the right basis for the next warm start, after
    ``iters`` block power iterations from ``start`` (or a seeded random basis), for an accelerator.

    No residual test and no SVD (both read values on the host): a fixed number of iterations, whose error
    shrinks like (s_{k+1} / s_k)^(2 iters) and, warm-started from the last call, keeps shrinking over calls.
    """
    n = a.shape[1]
    if start is None or start.shape != (n, k):
        have = 0 if start is None or start.shape[0] != n else min(k, start.shape[1])
        gen = torch.Generator(device=a.device).manual_seed(seed) if a.device.type != "meta" else None
        extra = torch.randn(n, k - have, generator=gen, device=a.device, dtype=a.dtype)
        start = torch.cat([start[:, :have].to(a.dtype), extra], 1) if have else extra
    basis = _orthonormal(start.to(a.dtype))
    for _ in range(iters):
        basis = _orthonormal(a.T @ _orthonormal(a @ basis))
    left = _orthonormal(a @ basis)
    return left, left.T @ a, basis


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
    a = a.float() if a.dtype in LOW_PRECISION else a
    u, s, vh, _, _, _ = top_k(a, k, iters=iters, tol=tol, oversample=oversample, start=start, seed=seed)
    return u.to(m.dtype), s.to(m.dtype), vh.to(m.dtype)


__all__ = ["top_k", "top_k_projection", "top_k_singular"]
