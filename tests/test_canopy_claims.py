"""Notebook 09's claims at the smoke budget (the smoke scenes, seeds 0-2, geolocation noise 20 m per axis; about
20 s):

1. The slope filter (20 degrees, 7 x 7 window) lowers the shift-resilient model's MAE against the true map in steep
   terrain on every seed, by at least MARGIN metres (seen: 1.1 to 2.7 m).

Not asserted, because it does not hold reliably at any setting tried here: that the shift-resilient loss beats the
plain loss under geolocation noise. At this setting its gain was +0.35, +0.05 and +0.03 m on seeds 0-2; with twice
the patches and epochs, +0.03 m on seed 1; at the cpu budget bench/canopy.py measures it (see the
notebook and the README's claims table).
"""

from __future__ import annotations

import pytest

from kit.recipes import canopy as cx

SEEDS = (0, 1, 2)
NOISE_M = 20.0
MARGIN = 0.5  # metres

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def results():
    return [cx.compare(NOISE_M, s, "smoke", variants=("shift", "shift + slope filter")) for s in SEEDS]


def test_the_slope_filter_lowers_the_error_in_steep_terrain(results):
    for seed, result in zip(SEEDS, results, strict=True):
        shift, filtered = (cx.summary_row(result, v)["steep_mae"] for v in ("shift", "shift + slope filter"))
        assert filtered <= shift - MARGIN, (seed, shift, filtered)
