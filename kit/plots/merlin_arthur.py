"""Figures of notebook 06: the pixels a prover shows Arthur, drawn over the digit."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import torch

from .common import image_grid

PROVER_COLORS = {"merlin": (0.12, 0.47, 0.71), "morgana": (0.84, 0.15, 0.16)}


def overlay(x: torch.Tensor, mask: torch.Tensor, rgb: Sequence[float]) -> torch.Tensor:
    """RGB images (N, 3, H, W) in [0, 1]: the digit in light grey, the chosen pixels in ``rgb`` (ink chosen:
    full colour; background chosen: pale)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"x must be grayscale images (N, 1, H, W); got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(mask, torch.Tensor) or mask.shape != x.shape:
        raise ValueError(f"mask must have the shape of x {tuple(x.shape)}")
    x, mask = x.detach().float().cpu(), mask.detach().float().cpu()
    ink = (x - x.amin()) / (x.amax() - x.amin()).clamp_min(1e-8)  # 0 background, 1 ink
    grey = (1.0 - 0.45 * ink).expand(-1, 3, -1, -1)
    colour = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)
    chosen = colour * (0.45 + 0.55 * ink) + (1.0 - (0.45 + 0.55 * ink))  # pale on background, full on ink
    return torch.where(mask.expand(-1, 3, -1, -1) > 0.5, chosen, grey)


def chosen_pixels(x: torch.Tensor, masks: dict[str, torch.Tensor], labels: dict[str, Sequence[str]] | None = None,
                  *, role: dict[str, str] | None = None, title: str | None = None) -> go.Figure:
    """One row of digits per prover (``masks``: name -> (N, 1, H, W) masks), each prover's pixels in its role's
    colour (``role``: name -> 'merlin' | 'morgana', default merlin), ``labels`` under the images."""
    if not masks:
        raise ValueError("masks is empty: give at least one prover's masks")
    role = role or {}
    images, names = [], []
    for name, mask in masks.items():
        images.append(overlay(x, mask, PROVER_COLORS[role.get(name, "merlin")]))
        names += [f"{name}: {lab}" for lab in labels[name]] if labels and name in labels else [name] * len(x)
    return image_grid(torch.cat(images), names, ncols=len(x), title=title)
