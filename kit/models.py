"""Models: an MLP with configurable widths, a small CNN, a ResNet-20-style CIFAR net, a small U-Net."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .validate import check_choice, check_int


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with requires_grad)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class Rebuildable:
    """Remembers the arguments of its outermost constructor call, so :func:`kit.hub.save` can write the recipe that
    rebuilds the object (``rebuild_args``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def recording(self, *args: Any, **kw: Any) -> None:
            # the most derived class's call comes first; the super().__init__ calls it makes are not the recipe
            self.__dict__.setdefault("_rebuild", (type(self), args, kw))
            init(self, *args, **kw)

        cls.__init__ = recording  # type: ignore[method-assign]

    def rebuild_args(self) -> tuple[type, tuple[Any, ...], dict[str, Any]] | None:
        """(class, positional, keyword arguments) of the call that built this object, or None."""
        return self.__dict__.get("_rebuild")


class KitModel(Rebuildable, nn.Module):
    """Base class: the repr ends with the parameter count; the constructor call is remembered (Rebuildable)."""

    def __repr__(self) -> str:
        return f"{super().__repr__()}\n[{type(self).__name__}: {count_parameters(self):,} parameters]"


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def _activation(name: str) -> type[nn.Module]:
    return ACTIVATIONS[check_choice(name, "activation", ACTIVATIONS)]


def _check_shape(input_shape: Sequence[int], name: str = "input_shape") -> tuple[int, ...]:
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    if not isinstance(input_shape, Sequence) or not input_shape:
        raise TypeError(f"{name} must be an int or a non-empty sequence of ints; got {input_shape!r}")
    return tuple(check_int(s, f"{name}[{i}]", low=1) for i, s in enumerate(input_shape))


class MLP(KitModel):
    """Flatten, then Linear layers of the given widths with an activation, then the classifier."""

    def __init__(self, input_shape: int | Sequence[int] = (1, 28, 28), widths: Sequence[int] = (300, 100),
                 num_classes: int = 10, activation: str = "relu") -> None:
        super().__init__()
        in_features = math.prod(_check_shape(input_shape))
        if not isinstance(widths, Sequence) or isinstance(widths, str):
            raise TypeError(f"widths must be a sequence of ints (may be empty); got {widths!r}")
        widths = [check_int(w, f"widths[{i}]", low=1) for i, w in enumerate(widths)]
        num_classes = check_int(num_classes, "num_classes", low=1)
        act = _activation(activation)
        layers: list[nn.Module] = [nn.Flatten()]
        for w in widths:
            layers += [nn.Linear(in_features, w), act()]
            in_features = w
        layers.append(nn.Linear(in_features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(KitModel):
    """Conv blocks (conv 3x3, optional BatchNorm, ReLU, 2x2 max-pool), then a linear head.

    The head reads the global average of each channel (``global_pool=True``, few parameters) or the
    whole flattened feature map (``global_pool=False``: learns much faster on small images).
    """

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), channels: Sequence[int] = (16, 32),
                 num_classes: int = 10, batchnorm: bool = True, global_pool: bool = True) -> None:
        super().__init__()
        shape = _check_shape(input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (channels, height, width); got {shape}")
        if not isinstance(channels, Sequence) or not channels:
            raise TypeError(f"channels must be a non-empty sequence of ints; got {channels!r}")
        channels = [check_int(c, f"channels[{i}]", low=1) for i, c in enumerate(channels)]
        if min(shape[1:]) < 2 ** len(channels):
            raise ValueError(f"input of size {shape[1:]} is too small for {len(channels)} pooling stages; "
                             f"use at most {int(math.log2(min(shape[1:])))} entries in channels")
        num_classes = check_int(num_classes, "num_classes", low=1)
        layers: list[nn.Module] = []
        c_in = shape[0]
        for c in channels:
            layers.append(nn.Conv2d(c_in, c, 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        if not isinstance(global_pool, bool):
            raise TypeError(f"global_pool must be True or False; got {type(global_pool).__name__}")
        if global_pool:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))
        else:
            side = [size // 2 ** len(channels) for size in shape[1:]]
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side[0] * side[1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(KitModel):
    """CIFAR-style ResNet-(6n+2): three stages of n basic blocks with widths w, 2w, 4w."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        depth = check_int(depth, "depth", low=8)
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110); got {depth}")
        num_classes = check_int(num_classes, "num_classes", low=1)
        in_channels = check_int(in_channels, "in_channels", low=1)
        width = check_int(width, "width", low=1)
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        blocks: list[nn.Module] = []
        c_in = width
        for stage, c in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(c_in, c, stride=2 if stage > 0 and i == 0 else 1))
                c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def resnet20(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> ResNet:
    """The ResNet-20 of He et al. (2016) for 32x32 inputs, about 0.27 M parameters at width 16."""
    return ResNet(20, num_classes, in_channels, width)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
                         nn.ReLU())


class UNet(KitModel):
    """A small U-Net: conv blocks that halve the resolution ``len(widths) - 1`` times, then upsample back,
    each stage joined with the encoder's map of the same size; one output map per ``out_channels``, at the
    input's height and width (any size: the decoder resizes to the skip connection it joins)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", low=1)
        out_channels = check_int(out_channels, "out_channels", low=1)
        if not isinstance(widths, Sequence) or isinstance(widths, str) or len(widths) < 2:
            raise TypeError(f"widths must be a sequence of at least two ints (one per resolution); got {widths!r}")
        widths = [check_int(w, f"widths[{i}]", low=1) for i, w in enumerate(widths)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for w in widths:
            self.down.append(_conv_block(c_in, w))
            c_in = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_skip in reversed(widths[:-1]):
            self.up.append(nn.Conv2d(c_in, w_skip, 1))
            self.merge.append(_conv_block(2 * w_skip, w_skip))
            c_in = w_skip
        self.head = nn.Conv2d(c_in, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            skip = skips.pop()
            x = up(nn.functional.interpolate(x, size=skip.shape[-2:], mode="nearest"))
            x = merge(torch.cat([x, skip], dim=1))
        return self.head(x)


MODELS = ("mlp", "cnn", "resnet20")


def create(name: str, input_shape: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """Build a model by name ('mlp', 'cnn', 'resnet20') for data of the given shape and classes."""
    check_choice(name, "name", MODELS)
    if name == "mlp":
        return MLP(input_shape, num_classes=num_classes, **kwargs)
    if name == "cnn":
        return SmallCNN(input_shape, num_classes=num_classes, **kwargs)
    return resnet20(num_classes=num_classes, in_channels=_check_shape(input_shape)[0], **kwargs)
