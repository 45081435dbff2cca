"""Arthur, the verifier: a classifier with one extra output, "don't know", that sees only the chosen features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import models
from ..validate import check_float, check_int


def _last_width(module: nn.Module) -> int | None:
    """Out features of the module's last Linear or Conv layer (None when it has none)."""
    width = None
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            width = layer.out_features
        elif isinstance(layer, nn.modules.conv._ConvNd):
            width = layer.out_channels
    return width


class Arthur(models.Rebuildable, nn.Module):
    """The verifier: ``backbone`` gives ``classes + 1`` logits per input, the last one meaning "don't know".

    ``Arthur(kit.models.MLP(..., num_classes=classes + 1), classes)`` or :meth:`build`. A backbone
    without the extra output is refused (at construction when its last layer shows its width, else at
    the first forward). It remembers its constructor call, so :func:`kit.hub.save` needs no recipe.
    """

    def __init__(self, backbone: nn.Module, classes: int) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be a torch.nn.Module classifier; got {type(backbone).__name__}")
        self.classes = check_int(classes, "classes", low=2)
        width = _last_width(backbone)
        if width is not None and width != self.classes + 1:
            raise ValueError(f"Arthur needs classes + 1 = {self.classes + 1} outputs (the last one is \"don't "
                             f"know\"); the backbone's last layer has {width}. Build it with num_classes="
                             f"{self.classes + 1}")
        self.backbone = backbone

    @property
    def dont_know(self) -> int:
        """Index of the "don't know" output."""
        return self.classes

    @classmethod
    def build(cls, name: str, input_shape: Sequence[int], classes: int, **kwargs) -> Arthur:
        """Arthur on a kit model by name ('mlp', 'cnn', 'resnet20') with the extra output."""
        classes = check_int(classes, "classes", low=2)
        return cls(models.create(name, input_shape, classes + 1, **kwargs), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.backbone(x)
        if out.dim() != 2 or out.shape[-1] != self.classes + 1:
            raise ValueError(f"Arthur's backbone must return (batch, classes + 1 = {self.classes + 1}) logits, the "
                             f"last for \"don't know\"; got shape {tuple(out.shape)}")
        return out

    @torch.no_grad()
    def decide(self, x: torch.Tensor) -> torch.Tensor:
        """Arthur's answer per input: a class index, or ``dont_know``."""
        return self(x).argmax(dim=-1)


def check_mask(x: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise a clear error unless ``mask`` is a float tensor of ``x``'s shape (one weight per feature)."""
    if not isinstance(x, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise TypeError(f"x and mask must be tensors; got {type(x).__name__} and {type(mask).__name__}")
    if mask.shape != x.shape:
        raise ValueError(f"mask must have the shape of x {tuple(x.shape)} (one entry per feature); got "
                         f"{tuple(mask.shape)}")
    if not mask.is_floating_point():
        raise TypeError(f"mask must be a floating-point tensor of 0s and 1s (or weights in [0, 1]); got {mask.dtype}")


def mask_features(x: torch.Tensor, mask: torch.Tensor, baseline: float = 0.0) -> torch.Tensor:
    """What Arthur sees: ``x`` where ``mask`` is 1, ``baseline`` where it is 0 (blended in between)."""
    check_mask(x, mask)
    baseline = check_float(baseline, "baseline")
    return torch.lerp(torch.full_like(x, baseline), x, mask) if baseline else x * mask
