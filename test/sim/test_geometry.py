"""vae_ros.sim.geometry: angle wrapping, the robot-disc clearance and the collision rule SimWorld enforces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import (
    ROBOT_RADIUS,
    ROOM_HALF_SIZE,
    clearance,
    clearances,
    collision_free,
    wrap_angle,
    wrap_angles,
)
from vae_ros.sim.world import SimConfig, SimObject, SimWorld

POST = SimObject("post", "post", 1.0, 0.5, 0.0, 0.3, 1.0, (1.0, 0.0, 0.0))


@pytest.mark.parametrize(("angle", "wrapped"), [(0.0, 0.0), (math.pi, math.pi), (2.5, 2.5),
                                                (3 * math.pi / 2, -math.pi / 2), (-5 * math.pi / 2, -math.pi / 2),
                                                (7.0, 7.0 - 2 * math.pi)])
def test_wrap_angle_lands_in_minus_pi_to_pi(angle: float, wrapped: float) -> None:
    assert wrap_angle(angle) == pytest.approx(wrapped, abs=1e-12)


def test_wrap_angles_matches_the_scalar_form_on_arrays() -> None:
    angles = np.random.default_rng(0).uniform(-20.0, 20.0, size=(4, 50))
    wrapped = wrap_angles(angles)
    assert wrapped.shape == angles.shape
    assert np.all((wrapped > -math.pi) & (wrapped <= math.pi))
    np.testing.assert_allclose(wrapped, np.vectorize(wrap_angle)(angles), atol=1e-12)
    np.testing.assert_allclose(np.cos(wrapped), np.cos(angles), atol=1e-9)  # the same direction


def test_clearance_is_the_robot_discs_free_distance() -> None:
    assert clearance(0.0, 0.0, []) == pytest.approx(ROOM_HALF_SIZE - ROBOT_RADIUS)
    # next to the post: centre distance 0.5, minus the post's 0.3 and the robot's radius
    assert clearance(1.0, 0.0, [POST]) == pytest.approx(0.5 - 0.3 - ROBOT_RADIUS)
    assert clearance(ROOM_HALF_SIZE - 0.1, 0.0, [POST]) == pytest.approx(0.1 - ROBOT_RADIUS)
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 7), np.linspace(-3, 3, 5)), axis=-1)  # (5, 7, 2)
    many = clearances(grid, [POST])
    assert many.shape == (5, 7)
    np.testing.assert_allclose(many, [[clearance(x, y, [POST]) for x, y in row] for row in grid], atol=1e-12)


def test_collision_free_is_clearance_at_least_zero_and_agrees_with_the_simulator() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(-ROOM_HALF_SIZE, ROOM_HALF_SIZE, size=(400, 2))
    free = collision_free(xy, [POST])
    np.testing.assert_array_equal(free, clearances(xy, [POST]) >= 0.0)
    assert free.any() and not free.all()
    world = SimWorld(SimConfig(seed=2, image_width=16, image_height=16))
    try:
        free = collision_free(xy, world.objects)
        for (x, y), ok in zip(xy[:80], free[:80], strict=True):
            assert world.clearance(float(x), float(y)) == pytest.approx(clearance(float(x), float(y), world.objects))
            if ok:
                world.set_pose(float(x), float(y), 0.0)
            else:
                with pytest.raises(ConfigError):
                    world.set_pose(float(x), float(y), 0.0)
    finally:
        world.close()
