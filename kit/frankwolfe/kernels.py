"""Fused CPU kernels for Frank-Wolfe: L1, L2, L-inf and top-k vertices, momentum and gap norms.

Built from ``_kernels.cpp`` with g++ on first use (cached by source hash; no torch headers) and called
through ctypes. The torch implementations in ``constraints`` and ``optimizers`` stay the reference:
the kernels serve only contiguous float32 CPU tensors, only when a compiler built them, never when
``KIT_KERNELS=0`` at import, and not inside ``switched_off()``. They change speed, not results (the
tests compare both paths entry by entry).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch

_SOURCE = Path(__file__).with_name("_kernels.cpp")
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-fopenmp"]


def _cache_dir() -> Path:
    if os.environ.get("KIT_KERNEL_DIR"):
        return Path(os.environ["KIT_KERNEL_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kit-kernels"


def _build() -> Path | None:
    source = _SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(_FLAGS).encode()).hexdigest()[:16]
    target = _cache_dir() / f"kit_kernels_{digest}.so"
    if target.exists():
        return target
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target, then rename: concurrent processes never load a half-written library
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([compiler, *_FLAGS, str(_SOURCE), "-o", tmp], check=True, capture_output=True, timeout=120)
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as err:
        warnings.warn(f"kit: fused Frank-Wolfe kernels not built ({err}); using the torch implementation",
                      RuntimeWarning, stacklevel=3)
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


@cache
def _library() -> ctypes.CDLL | None:
    path = _build()
    if path is None:
        return None
    lib = ctypes.CDLL(str(path))
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    for name in ("kit_l1_vertex_f32", "kit_l2_vertex_f32", "kit_linf_vertex_f32"):
        getattr(lib, name).argtypes = [ptr, i64, f32, ptr, i64]
        getattr(lib, name).restype = i64
    lib.kit_topk_vertex_f32.argtypes = [ptr, i64, i64, f32, ctypes.c_int, ptr, i64]
    lib.kit_topk_vertex_f32.restype = i64
    lib.kit_momentum_f32.argtypes = [ptr, ptr, f32, i64, i64]
    lib.kit_momentum_f32.restype = ctypes.c_double
    lib.kit_gap_f32.argtypes = [ptr, ptr, i64, i64]
    lib.kit_gap_f32.restype = ctypes.c_double
    return lib


_switch = {"on": os.environ.get("KIT_KERNELS", "1") != "0"}


def enabled() -> bool:
    """True when the fused kernels are built and switched on (KIT_KERNELS=0 at import switches them off)."""
    return _switch["on"] and _library() is not None


@contextmanager
def switched_off() -> Iterator[None]:
    """Within the block every region uses its torch implementation (to compare the two paths)."""
    previous, _switch["on"] = _switch["on"], False
    try:
        yield
    finally:
        _switch["on"] = previous


def _suits(t: torch.Tensor) -> bool:
    return t.dtype == torch.float32 and t.is_cpu and t.is_contiguous()


def applies(x: torch.Tensor, out: torch.Tensor) -> bool:
    """True when x and out suit the kernels (distinct contiguous float32 CPU tensors) and the kernels are on."""
    return _switch["on"] and _suits(x) and _suits(out) and x.data_ptr() != out.data_ptr() and enabled()


def all_apply(tensors: list[torch.Tensor]) -> bool:
    """True when every tensor suits the kernels (contiguous float32 on the CPU) and the kernels are on."""
    return _switch["on"] and all(_suits(t) for t in tensors) and enabled()


def _pair(a: torch.Tensor, b: torch.Tensor, what: str) -> int:
    # the C entry points check sizes too; this turns a misuse into a Python error before any call
    if not (_suits(a) and _suits(b)) or a.numel() != b.numel() or a.numel() < 1:
        raise ValueError(f"kernels.{what} needs two contiguous float32 CPU tensors of one size; got "
                         f"{a.dtype} {tuple(a.shape)} and {b.dtype} {tuple(b.shape)}")
    return a.numel()


def _status(code: int, what: str) -> None:
    if code == -2:
        raise ValueError(f"kernels.{what}: sizes refused by the kernel")


def _norm(square: float, what: str) -> float:
    if square < 0:
        raise ValueError(f"kernels.{what}: sizes refused by the kernel")
    return square ** 0.5


def momentum_(m: torch.Tensor, g: torch.Tensor, rho: float) -> float:
    """m <- m + rho (g - m) in place; returns ||m||_2 after the update."""
    n = _pair(m, g, "momentum_")
    return _norm(_library().kit_momentum_f32(m.data_ptr(), g.data_ptr(), rho, n, g.numel()), "momentum_")


def gap(theta: torch.Tensor, vertex: torch.Tensor) -> float:
    """||theta - vertex||_2 without forming the difference."""
    n = _pair(theta, vertex, "gap")
    return _norm(_library().kit_gap_f32(theta.data_ptr(), vertex.data_ptr(), n, vertex.numel()), "gap")


def l1_vertex(x: torch.Tensor, radius: float, out: torch.Tensor) -> torch.Tensor:
    """-radius * sign(x_i) e_i at the first entry of largest |x| (zero for x = 0), written into out."""
    n = _pair(x, out, "l1_vertex")
    _status(_library().kit_l1_vertex_f32(x.data_ptr(), n, radius, out.data_ptr(), out.numel()), "l1_vertex")
    return out


def l2_vertex(x: torch.Tensor, radius: float, out: torch.Tensor) -> torch.Tensor:
    """-radius * x / ||x||_2 (zero for x = 0), written into out."""
    n = _pair(x, out, "l2_vertex")
    _status(_library().kit_l2_vertex_f32(x.data_ptr(), n, radius, out.data_ptr(), out.numel()), "l2_vertex")
    return out


def linf_vertex(x: torch.Tensor, radius: float, out: torch.Tensor) -> torch.Tensor:
    """-radius * sign(x) with sign(0) = 0, written into out."""
    n = _pair(x, out, "linf_vertex")
    _status(_library().kit_linf_vertex_f32(x.data_ptr(), n, radius, out.data_ptr(), out.numel()), "linf_vertex")
    return out


def topk_vertex(x: torch.Tensor, k: int, radius: float, support: bool, out: torch.Tensor) -> torch.Tensor:
    """The k-sparse (support=False) or k-support (support=True) vertex for x, written into out."""
    n = _pair(x, out, "topk_vertex")
    if not 1 <= k <= n:
        raise ValueError(f"kernels.topk_vertex: k must lie in [1, {n}]; got {k}")
    _status(_library().kit_topk_vertex_f32(x.data_ptr(), n, k, radius, int(support), out.data_ptr(), out.numel()),
            "topk_vertex")
    return out
