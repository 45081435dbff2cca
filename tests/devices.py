"""The device the test suite runs on (see the ``device`` fixture in conftest), for module-level helpers."""

from __future__ import annotations

import os

import torch

import kit

DEVICE: torch.device = kit.get_device(os.environ.get("KIT_TEST_DEVICE") or None)
ON_CUDA = DEVICE.type == "cuda"


def to_device(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors on the suite's device (for comparisons with a model that lives there)."""
    return tuple(t.to(DEVICE) for t in tensors)
