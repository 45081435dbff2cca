"""Peak memory of a stretch of work: CUDA's allocator peak on a GPU, the process's resident-set peak on a CPU.

On Linux the resident-set high-water mark (``VmHWM``) can be reset by writing ``5`` to
``/proc/self/clear_refs``, so two phases of one process are measured separately.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def resident_bytes() -> int | None:
    """Current resident set size of this process (None where /proc is missing)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def _release_freed_memory() -> None:
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            # hand freed heap pages back to the OS so the baseline is the memory really in use
            ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Context manager: ``peak_bytes`` (highest memory while inside) and ``baseline_bytes`` (at entry).

    On CUDA devices the allocator's own counters are used; on the CPU the process RSS high-water mark.
    ``supported`` is False where neither is available (then both numbers are None).
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.baseline_bytes: int | None = None
        self.peak_bytes: int | None = None
        self.supported = True

    def __enter__(self) -> PeakMemory:
        _release_freed_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
            return self
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            self.supported = False
            return self
        self.baseline_bytes = resident_bytes()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        elif self.supported:
            kib = _status_kib("VmHWM")
            self.peak_bytes = None if kib is None else kib * 1024

    @property
    def extra_bytes(self) -> int | None:
        """Peak minus baseline: what the work inside added at its highest point."""
        if self.peak_bytes is None or self.baseline_bytes is None:
            return None
        return self.peak_bytes - self.baseline_bytes
