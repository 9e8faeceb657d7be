"""Wheel odometry with error (ROS-free): ideal at level 0, drifts with the distance driven, never at rest."""

from __future__ import annotations

import math

import pytest

from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import wrap_angle
from vae_ros.sim.odometry import OdomErrorModel, WheelOdometry
from vae_ros.sim.world import Pose2D, Velocity2D

DT = 0.02


def _drive(odometry: WheelOdometry, seconds: float, v: float, w: float, truth: Pose2D) -> Pose2D:
    """Integrate the true motion exactly beside the odometry; returns the true end pose."""
    x, y, yaw = truth.x, truth.y, truth.yaw
    for _ in range(int(round(seconds / DT))):
        odometry.update(Velocity2D(v, 0.0, w), DT)
        mid = yaw + 0.5 * w * DT
        x, y, yaw = x + v * math.cos(mid) * DT, y + v * math.sin(mid) * DT, yaw + w * DT
    return Pose2D(x, y, wrap_angle(yaw))


def _error(a: Pose2D, b: Pose2D) -> tuple[float, float]:
    return math.hypot(a.x - b.x, a.y - b.y), abs(wrap_angle(a.yaw - b.yaw))


def test_level_zero_is_the_true_motion() -> None:
    start = Pose2D(0.5, -0.2, 0.3)
    odometry = WheelOdometry(OdomErrorModel(level=0.0), start, seed=1)
    truth = _drive(odometry, 10.0, 0.3, 0.2, start)
    position, yaw = _error(odometry.pose, truth)
    assert position < 1e-9 and yaw < 1e-9


def test_typical_error_drifts_about_a_degree_per_metre_and_a_metre_over_ten() -> None:
    start = Pose2D(0.0, 0.0, 0.0)
    odometry = WheelOdometry(OdomErrorModel(level=1.0), start, seed=1)
    truth = _drive(odometry, 33.3, 0.3, 0.0, start)  # 10 m straight
    position, yaw = _error(odometry.pose, truth)
    assert 0.1 < yaw < 0.35, yaw  # 0.02 rad/m x 10 m, with noise
    assert 0.4 < position < 2.0, position
    doubled = WheelOdometry(OdomErrorModel(level=2.0), start, seed=1)
    _drive(doubled, 33.3, 0.3, 0.0, start)
    assert _error(doubled.pose, truth)[1] > 1.5 * yaw  # the level scales the error


def test_no_drift_at_rest_and_the_same_seed_gives_the_same_odometry() -> None:
    start = Pose2D(1.0, 1.0, 1.0)
    odometry = WheelOdometry(OdomErrorModel(level=1.0), start, seed=4)
    _drive(odometry, 20.0, 0.0, 0.0, start)
    assert odometry.pose == start
    a, b, c = (WheelOdometry(OdomErrorModel(level=1.0), start, seed=s) for s in (4, 4, 5))
    for odo in (a, b, c):
        _drive(odo, 5.0, 0.2, 0.5, start)
    assert a.pose == b.pose and a.pose != c.pose


def test_reset_puts_the_odometry_where_the_robot_was_placed() -> None:
    odometry = WheelOdometry(OdomErrorModel(level=1.0), Pose2D(0.0, 0.0, 0.0), seed=0)
    _drive(odometry, 5.0, 0.3, 0.1, Pose2D(0.0, 0.0, 0.0))
    odometry.reset(Pose2D(-1.0, 2.0, 0.5))
    assert odometry.pose == Pose2D(-1.0, 2.0, 0.5)


@pytest.mark.parametrize("level", [-0.1, 11.0, float("nan"), float("inf")])
def test_bad_levels_are_refused(level: float) -> None:
    with pytest.raises(ConfigError, match="odom_error must be in"):
        WheelOdometry(OdomErrorModel(level=level), Pose2D(0.0, 0.0, 0.0))
