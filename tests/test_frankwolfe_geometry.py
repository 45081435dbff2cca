"""kit.frankwolfe.geometry: the 2-D step pictures and 3-D k-support balls are computed right (plain numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.frankwolfe import KSupportBall, L1Ball, L2Ball, LinfBall, LpBall, ksupport_norm
from kit.frankwolfe.geometry import boundary, ksupport_ball_points, lmo_step_figure, step_panels

REGIONS = (L1Ball((2,), 0.8), L2Ball((2,)), LinfBall((2,), 0.5), LpBall((2,), 3.0), KSupportBall((2,), 1, 1.0))


@pytest.mark.parametrize("region", REGIONS, ids=repr)
def test_boundary_points_lie_on_the_boundary(region):
    pts = boundary(region, points=73)
    norms = torch.stack([region.norm(p) for p in pts])
    torch.testing.assert_close(norms, torch.full_like(norms, region.radius), rtol=1e-9, atol=1e-12)


def test_each_panel_steps_toward_the_boundary_point_minimizing_the_inner_product():
    g = (1.0, 0.45)
    for region, panel in zip(REGIONS, step_panels(g, regions=REGIONS, eta=0.25), strict=True):
        dense = boundary(region, points=20001).numpy()
        brute = (dense @ np.asarray(g)).min()  # a vertex of a convex region lies on its boundary
        assert panel.vertex @ np.asarray(g) == pytest.approx(brute, abs=1e-6)
        np.testing.assert_allclose(panel.step, panel.point + 0.25 * (panel.vertex - panel.point))


def test_ksupport_points_lie_on_the_unit_ball_and_k_1_is_l1():
    pts = ksupport_ball_points((1, 2, 3), directions=200)
    for k, p in pts.items():
        norms = [float(ksupport_norm(torch.from_numpy(x), k)) for x in p[:50]]
        np.testing.assert_allclose(norms, 1.0, rtol=1e-9)
    np.testing.assert_allclose(np.abs(pts[1]).sum(1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(pts[3], axis=1), 1.0, rtol=1e-9)


def test_figure_has_one_panel_per_region_and_bad_input_is_refused():
    fig = lmo_step_figure(regions=REGIONS[:2])
    assert len(fig.layout.annotations) == 2  # subplot titles
    with pytest.raises(ValueError, match="gradient"):
        step_panels((0.0, 0.0))
    with pytest.raises(ValueError, match="eta"):
        step_panels(eta=1.5)
    with pytest.raises(ValueError, match="ks"):
        ksupport_ball_points((4,))
