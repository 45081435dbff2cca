"""Patches of a scene for training: standardised bands and per-track sparse labels, ``(tracks, H, W)``.

Patch positions are drawn once (seeded), weighted toward tall canopy as the footprints show it (weight
1 + the mean footprint height in metres / 10, so patches of tall forest come up more often, as in the paper's
sampling); each item is rotated by a random multiple of 90 degrees, image and labels alike (``rotate``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..validate import check_int
from .scene import Scene


def band_stats(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and spread of a scene (computed on the training scene, applied to every scene)."""
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a kit.canopy Scene; got {type(scene).__name__}")
    flat = scene.bands.reshape(scene.bands.shape[0], -1).astype(np.float64)
    return flat.mean(axis=1), np.maximum(flat.std(axis=1), 1e-6)


def standardised(scene: Scene, stats: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
    """The scene's bands as a float32 tensor (C, H, W), each band standardised with ``stats``."""
    mean, std = stats
    if len(mean) != scene.bands.shape[0]:
        raise ValueError(f"stats are for {len(mean)} bands; the scene has {scene.bands.shape[0]}")
    return torch.from_numpy(((scene.bands - mean[:, None, None]) / std[:, None, None]).astype(np.float32))


class Patches(Dataset):
    """``count`` patches of ``size`` x ``size`` pixels from a scene: (bands (C, size, size), labels (tracks, size,
    size)), 0 = no footprint; ``tracks`` layers per patch (default: the most any drawn patch needs)."""

    def __init__(self, scene: Scene, *, size: int = 32, count: int = 256, seed: int = 0, weighted: bool = True,
                 rotate: bool = True, stats: tuple[np.ndarray, np.ndarray] | None = None,
                 tracks: int | None = None, multiple: int = 4) -> None:
        if not isinstance(scene, Scene):
            raise TypeError(f"scene must be a kit.canopy Scene; got {type(scene).__name__}")
        h, w = scene.shape
        multiple = check_int(multiple, "multiple", low=1)
        self.size = check_int(size, "size", low=multiple, high=min(h, w))
        if self.size % multiple:
            raise ValueError(f"size must be a multiple of {multiple} (the U-Net halves it {multiple.bit_length() - 1} "
                             f"times); got {size}")
        self.count = check_int(count, "count", low=1)
        self.rotate = bool(rotate)
        self.scene = scene
        self.image = standardised(scene, stats or band_stats(scene))
        stride = max(1, self.size // 4)
        starts = np.array([(r, c) for r in range(0, h - self.size + 1, stride)
                           for c in range(0, w - self.size + 1, stride)])
        weights = np.array([self._weight(r, c) for r, c in starts]) if weighted else np.ones(len(starts))
        rng = np.random.default_rng(check_int(seed, "seed", low=0))
        self.positions = starts[rng.choice(len(starts), size=self.count, p=weights / weights.sum())]
        needed = max((len(np.unique(scene.track[self._inside(r, c)])) for r, c in self.positions), default=0)
        self.tracks = max(1, needed) if tracks is None else check_int(tracks, "tracks", low=1)

    def _inside(self, r: int, c: int) -> np.ndarray:
        s = self.scene
        return (s.rows >= r) & (s.rows < r + self.size) & (s.cols >= c) & (s.cols < c + self.size)

    def _weight(self, r: int, c: int) -> float:
        values = self.scene.values[self._inside(r, c)]
        return 1.0 + (float(values.mean()) / 10.0 if len(values) else 0.0)

    def __len__(self) -> int:
        return self.count

    def labels_at(self, r: int, c: int) -> torch.Tensor:
        """The label layers (tracks, size, size) of the patch whose top-left pixel is (r, c); a patch crossed by
        more than ``tracks`` tracks keeps the ones with the most footprints."""
        s, inside = self.scene, self._inside(r, c)
        ids, counts = np.unique(s.track[inside], return_counts=True)
        kept = ids[np.argsort(-counts, kind="stable")][: self.tracks]
        layers = torch.zeros(self.tracks, self.size, self.size)
        for layer, t in enumerate(kept):
            mine = inside & (s.track == t)
            layers[layer, s.rows[mine] - r, s.cols[mine] - c] = torch.from_numpy(s.values[mine])
        return layers

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        r, c = (int(v) for v in self.positions[index])
        image = self.image[:, r : r + self.size, c : c + self.size]
        labels = self.labels_at(r, c)
        if self.rotate:  # torch's generator, which kit.train.fit seeds per epoch
            k = int(torch.randint(4, ()))
            image, labels = torch.rot90(image, k, (-2, -1)), torch.rot90(labels, k, (-2, -1))
        return image.contiguous(), labels.contiguous()
