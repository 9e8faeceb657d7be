"""Wheel odometry with the errors of a small differential-drive robot (ROS-free), for sim_node's `odom`.

Ideal odometry would hand any controller the answer (a taught route repeated on odometry alone would always
succeed), so sim_node integrates the true body velocity through this error model and publishes the result on
`odom`, and the true pose on `ground_truth/odom` for evaluations only. The errors are those of encoder
odometry on a small indoor robot (TurtleBot-class, 3-5 cm wheels), and they arise only while the wheels turn:
a robot at rest does not drift.

At `odom_error` = 1 (`level`), per unit of motion:
- linear scale +2 %: the wheel radius assumed 2 % larger than it is (tyre wear, load);
- angular scale -3 %: the effective wheel base off by 3 % (wheel slip on turns, tyre width);
- heading drift 0.02 rad (1.1 deg) per metre driven: unequal wheel radii and slip on the floor;
- noise, white per integration step: 2 % of the speed on both velocities, plus 0.01 rad/s per m/s of forward
  speed on the turn rate.
Over a 10 m route that is about 11 deg of heading error and, from it, about 1 m of position error at the end:
the drift a place-recognition controller must correct. Other levels scale every term (0 = ideal: `odom`
equals the ground truth exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import wrap_angle
from vae_ros.sim.world import Pose2D, Velocity2D

MAX_ODOM_ERROR = 10.0  # the `odom_error` range: 10x the typical error is already a broken robot


@dataclass(frozen=True)
class OdomErrorModel:
    """The error terms at level 1 (see the module docstring) and the level that scales them."""

    level: float = 0.0
    linear_scale: float = 0.02  # relative
    angular_scale: float = -0.03  # relative
    drift_per_metre: float = 0.02  # rad of heading per metre driven
    speed_noise: float = 0.02  # std, relative to the speed
    turn_noise_per_speed: float = 0.01  # std of the turn rate (rad/s) per m/s of forward speed

    def validate(self) -> None:
        if not (math.isfinite(self.level) and 0.0 <= self.level <= MAX_ODOM_ERROR):
            raise ConfigError(f"odom_error must be in 0..{MAX_ODOM_ERROR:g} (0 = ideal odometry, 1 = typical), "
                              f"got {self.level}")


class WheelOdometry:
    """Integrates the true body velocity through OdomErrorModel into an odometry pose (odom frame).

    `reset(pose)` puts the odometry at a pose (start, or the robot placed by hand); `update(velocity, dt)`
    integrates one step and returns the odometry pose and the measured velocity. Seeded: the same seed and
    motion give the same odometry."""

    def __init__(self, model: OdomErrorModel, start: Pose2D, seed: int = 0) -> None:
        model.validate()
        self.model = model
        self._rng = np.random.default_rng([int(seed), 0x0D0])
        self.pose = start
        self.velocity = Velocity2D(0.0, 0.0, 0.0)

    def reset(self, pose: Pose2D) -> None:
        self.pose = pose
        self.velocity = Velocity2D(0.0, 0.0, 0.0)

    def measure(self, true: Velocity2D) -> Velocity2D:
        """The velocity the wheel encoders report for the true body velocity."""
        m, level = self.model, self.model.level
        v, w = true.linear_x, true.angular_z
        if level == 0.0:
            return true
        noise_v, noise_w = self._rng.standard_normal(2)
        v_odom = v * (1.0 + level * m.linear_scale) + level * m.speed_noise * abs(v) * noise_v
        w_odom = (w * (1.0 + level * m.angular_scale) + level * m.drift_per_metre * abs(v)
                  + level * (m.speed_noise * abs(w) + m.turn_noise_per_speed * abs(v)) * noise_w)
        return Velocity2D(float(v_odom), 0.0, float(w_odom))  # encoders see no sideways motion

    def update(self, true: Velocity2D, dt: float) -> tuple[Pose2D, Velocity2D]:
        """One integration step of dt seconds (midpoint heading) -> (odometry pose, measured velocity)."""
        measured = self.measure(true)
        p = self.pose
        mid = p.yaw + 0.5 * measured.angular_z * dt
        yaw = wrap_angle(p.yaw + measured.angular_z * dt)
        self.pose = Pose2D(p.x + measured.linear_x * math.cos(mid) * dt, p.y + measured.linear_x * math.sin(mid) * dt,
                           yaw)
        self.velocity = measured
        return self.pose, measured
