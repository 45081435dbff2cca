"""Scenes, patches, the GeoTIFF path and training of kit.canopy against independent computations: footprints read
the true map at their track's offset, the steep-slope error follows the footprint's relief, rotations move
images and labels alike, a GeoTIFF stack reads back into the same scene, a resumed training ends where an
uninterrupted one does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine

from kit.canopy import scene as sc
from kit.canopy.data import Patches, band_stats
from kit.canopy.terrain import write_raster
from kit.canopy.training import HeightLoss, evaluate, predict, train
from kit.models import UNet


@pytest.fixture(scope="module")
def small() -> sc.Scene:
    return sc.simulate("test_small", noise_m=20.0, seed=3)


def test_simulated_scenes_are_seeded(small):
    again = sc.simulate("test_small", noise_m=20.0, seed=3)
    other = sc.simulate("test_small", noise_m=20.0, seed=4)
    assert np.array_equal(small.bands, again.bands) and np.array_equal(small.values, again.values)
    assert not np.array_equal(small.height, other.height)
    # the land does not depend on the geolocation noise, only the labels do
    assert np.array_equal(sc.simulate("test_small", noise_m=0.0, seed=3).height, small.height)


def test_footprints_read_the_true_map_at_their_track_s_offset():
    rng = np.random.default_rng(0)
    height = rng.uniform(0, 30, (60, 50))
    flat = np.zeros_like(height)
    rows, cols, values, track, offsets = sc.gedi_tracks(height, flat, 10.0, rng, noise_m=15.0, label_noise_m=0.0,
                                                        steep_error=False)
    assert len(values) > 50 and len(offsets) == track.max() + 1
    assert np.abs(offsets).max() >= 1  # 15 m of noise on 10 m pixels moves some track
    dy, dx = offsets[track, 0], offsets[track, 1]
    assert np.allclose(values, np.maximum(height[rows + dy, cols + dx], sc.MIN_LABEL_M), atol=1e-5)


def test_steep_footprints_overestimate_by_the_relief_within_the_footprint():
    rng = np.random.default_rng(1)
    height = np.full((40, 40), 10.0)
    slope_deg = np.tile(np.linspace(0, 40, 40), (40, 1))
    rows, cols, values, _, _ = sc.gedi_tracks(height, slope_deg, 10.0, rng, noise_m=0.0, label_noise_m=0.0)
    relief = sc.FOOTPRINT_RADIUS_M * np.tan(np.radians(slope_deg[rows, cols]))
    excess = values - 10.0
    assert np.all(excess >= 0.5 * relief - 1e-4) and np.all(excess <= 1.5 * relief + 1e-4)


def test_canopy_is_absent_far_above_the_tree_line_and_lower_on_steep_slopes():
    rng = np.random.default_rng(2)
    elevation = np.tile(np.linspace(2600, 4200, 200)[:, None], (1, 200))
    flat = sc.canopy_height(elevation, np.zeros_like(elevation), np.random.default_rng(2))
    steep = sc.canopy_height(elevation, np.full_like(elevation, 40.0), np.random.default_rng(2))
    assert np.all(flat[elevation > 3450 + 60 * 6] == 0)
    assert steep.mean() < 0.6 * flat.mean()
    del rng


def test_label_layers_and_the_slope_filter(small):
    layers = small.label_layers()
    assert layers.shape == (small.tracks, *small.shape)
    assert np.allclose(layers[small.track, small.rows, small.cols], small.values)
    filtered = small.without_steep_labels(15.0)
    kept_slope = filtered.slope[filtered.rows, filtered.cols]
    assert np.all(kept_slope <= 15.0) and len(filtered.values) < len(small.values)
    dropped = len(small.values) - len(filtered.values)
    assert dropped == int((small.slope[small.rows, small.cols] > 15.0).sum())
    with pytest.raises(ValueError, match="threshold"):
        small.without_steep_labels(90.0)


def test_patches_rotate_images_and_labels_alike(small):
    plain = Patches(small, size=32, count=4, seed=0, rotate=False)
    turned = Patches(small, size=32, count=4, seed=0, rotate=True)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, labels = turned[1]
        ref_image, ref_labels = plain[1]
        ks = [k for k in range(4) if torch.equal(image, torch.rot90(ref_image, k, (-2, -1)))]
        assert len(ks) == 1 and torch.equal(labels, torch.rot90(ref_labels, ks[0], (-2, -1)))
        seen.add(ks[0])
    assert len(seen) > 1


def test_patch_labels_hold_each_track_s_footprints_in_its_own_layer(small):
    patches = Patches(small, size=32, count=8, seed=1, rotate=False)
    for r, c in patches.positions[:4]:
        labels = patches.labels_at(int(r), int(c))
        inside = (small.rows >= r) & (small.rows < r + 32) & (small.cols >= c) & (small.cols < c + 32)
        assert labels.shape[0] == patches.tracks
        assert np.isclose(float(labels.sum()), small.values[inside].sum(), rtol=1e-5)
        for layer in labels:  # one track per layer: its footprints lie on a straight line (collinear)
            pts = torch.nonzero(layer).double()
            if len(pts) >= 3:
                centred = pts - pts.mean(0)
                assert torch.linalg.svdvals(centred)[1] < 0.5 * np.sqrt(len(pts))


def test_sampling_prefers_tall_canopy(small):
    uniform = Patches(small, size=32, count=400, seed=0, weighted=False)
    weighted = Patches(small, size=32, count=400, seed=0, weighted=True)

    def mean_height(p):
        return np.mean([p._weight(int(r), int(c)) for r, c in p.positions])

    assert mean_height(weighted) > mean_height(uniform)


def test_a_geotiff_stack_reads_back_into_the_same_scene(tmp_path, small):
    transform = Affine(10.0, 0, 450000.0, 0, -10.0, 4470000.0)
    crs = "EPSG:32613"
    write_raster(tmp_path / "bands.tif", small.bands, transform, crs)
    paths = []
    for t, layer in enumerate(small.label_layers()):
        paths.append(write_raster(tmp_path / f"track{t}.tif", layer, transform, crs, nodata=0.0))
    write_raster(tmp_path / "dem.tif", small.elevation, transform, crs)
    back = sc.read_scene(tmp_path / "bands.tif", paths, dem=tmp_path / "dem.tif")
    assert np.allclose(back.bands, small.bands)
    assert back.pixel_size == pytest.approx(10.0)
    order = np.lexsort((small.cols, small.rows, small.track))
    back_order = np.lexsort((back.cols, back.rows, back.track))
    assert np.array_equal(back.track[back_order], small.track[order])
    assert np.allclose(back.values[back_order], small.values[order])
    # labels on another grid, or in another CRS, are refused before anything is built
    write_raster(tmp_path / "shifted.tif", small.label_layers()[0], transform @ Affine.translation(1, 0), crs)
    with pytest.raises(ValueError, match="labels"):
        sc.read_scene(tmp_path / "bands.tif", [tmp_path / "shifted.tif"])
    write_raster(tmp_path / "wgs.tif", small.label_layers()[0], transform, "EPSG:4326")
    with pytest.raises(ValueError, match="labels"):
        sc.read_scene(tmp_path / "bands.tif", [tmp_path / "wgs.tif"])
    # nodata in the bands is masked: not valid, a neutral value, its footprints dropped
    holes = small.bands.copy()
    r, c = int(small.rows[0]), int(small.cols[0])
    holes[0, r, c] = -9999.0
    write_raster(tmp_path / "holes.tif", holes, transform, crs, nodata=-9999.0)
    masked = sc.read_scene(tmp_path / "holes.tif", paths)
    assert not masked.valid[r, c] and masked.valid.sum() == masked.valid.size - 1
    assert np.isfinite(masked.bands).all()
    assert masked.bands[0, r, c] == pytest.approx(np.delete(small.bands[0].ravel(), r * small.shape[1] + c).mean(),
                                                  rel=1e-5)
    assert not ((masked.rows == r) & (masked.cols == c)).any()
    assert len(masked.values) == len(back.values) - int(((back.rows == r) & (back.cols == c)).sum())
    write_raster(tmp_path / "empty.tif", np.full((2, 4, 4), -9999.0), transform, crs, nodata=-9999.0)
    write_raster(tmp_path / "empty_labels.tif", np.zeros((4, 4)), transform, crs)
    with pytest.raises(ValueError, match="every pixel"):
        sc.read_scene(tmp_path / "empty.tif", tmp_path / "empty_labels.tif")


def test_a_resumed_training_ends_where_an_uninterrupted_one_does(tmp_path, small, device):
    stats = band_stats(small)

    def run(folder):
        patches = Patches(small, size=32, count=8, seed=0, stats=stats)
        torch.manual_seed(0)
        model = UNet(len(small.band_names), 1, (4, 8)).to(device)
        history = train(model, patches, epochs=2, batch_size=4, checkpoint_dir=folder, progress=False)
        return model, history

    a, ha = run(tmp_path / "a")
    run(tmp_path / "b")
    (tmp_path / "b" / "canopy-002.pt").unlink()
    b, hb = run(tmp_path / "b")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert ha["train_loss"] == hb["train_loss"]
    result = evaluate(a, small, stats)
    pred = predict(a, small, stats)
    assert pred.shape == small.shape
    assert result["map"]["mae"] == pytest.approx(np.abs(pred - small.height).mean(), rel=1e-6)


def test_bad_input_is_refused_with_the_parameter_named(small):
    with pytest.raises(ValueError, match="size must be a multiple of 4"):
        Patches(small, size=30)
    with pytest.raises(ValueError, match="size"):
        Patches(small, size=2)
    with pytest.raises(ValueError, match="radius"):
        HeightLoss(radius=-1)
    with pytest.raises(ValueError, match="noise_m"):
        sc.simulate("test_small", noise_m=-1.0)
    with pytest.raises(ValueError, match="unknown area"):
        sc.simulate("everest")
    with pytest.raises(ValueError, match="bands"):
        train(UNet(3, 1, (4, 8)), Patches(small, size=32, count=2), epochs=1, progress=False)
