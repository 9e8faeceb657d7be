"""Scan re-projection: what the LiDAR sees after a small motion, checked against the simulator itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ros.control.scan_warp import central_difference_jacobian, jacobian_displacements, warp_scans
from vae_ros.core.errors import InputError
from vae_ros.sim.world import SimConfig, SimWorld


@pytest.fixture(scope="module")
def world():
    with SimWorld(SimConfig(seed=3, image_width=16, image_height=16)) as w:
        yield w


def _valid_error(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.median(np.abs(a[ok] - b[ok])))


@pytest.mark.parametrize("motion", [(0.05, 0.0, 0.0), (0.0, -0.05, 0.0), (0.0, 0.0, math.radians(3)),
                                    (0.04, 0.03, math.radians(-2))])
def test_warped_scan_matches_the_scan_the_simulator_sees_after_the_motion(world, motion) -> None:
    x, y, yaw = 0.3, -0.4, 0.7
    world.set_pose(x, y, yaw)
    before = world.scan()
    geo = world.scan_geometry
    warped = warp_scans(before, geo.angle_min, geo.angle_increment, geo.range_max, np.array([motion]))[0]
    dx, dy, dyaw = motion  # robot frame -> world frame
    world.set_pose(x + dx * math.cos(yaw) - dy * math.sin(yaw), y + dx * math.sin(yaw) + dy * math.cos(yaw), yaw + dyaw)
    after = world.scan()
    unmoved = _valid_error(before, after)
    assert _valid_error(warped, after) < 0.02, "the re-projection should predict the new scan to ~cm"
    assert unmoved > 3 * _valid_error(warped, after), "the check must be able to fail: motion changes the scan"
    assert np.isfinite(warped).mean() > 0.95


def test_zero_motion_returns_the_scan_and_no_return_stays_no_return() -> None:
    angles_n = 360
    ranges = np.full(angles_n, 4.0, dtype=np.float32)
    ranges[10:20] = np.inf
    out = warp_scans(ranges, -math.pi + math.pi / angles_n, 2 * math.pi / angles_n, 10.0, np.zeros((1, 3)))[0]
    np.testing.assert_allclose(out[np.isfinite(ranges)], 4.0, atol=1e-4)
    assert np.all(~np.isfinite(out[11:19]))


def test_central_difference_jacobian_of_a_linear_map_is_exact() -> None:
    steps = (0.05, 0.05, 0.05)
    true = np.random.default_rng(0).normal(size=(5, 3))
    latents = jacobian_displacements(steps) @ true.T  # (6, 5): z = J d
    np.testing.assert_allclose(central_difference_jacobian(latents, steps), true, atol=1e-12)


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError):
        warp_scans(np.ones(2), 0.0, 0.1, 10.0, np.zeros((1, 3)))
    with pytest.raises(InputError):
        warp_scans(np.ones(10), 0.0, 0.0, 10.0, np.zeros((1, 3)))
    with pytest.raises(InputError):
        central_difference_jacobian(np.zeros((5, 3)))
