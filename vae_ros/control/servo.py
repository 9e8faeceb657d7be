"""The latent servo's control law (ROS-free, pure): latent error -> differential-drive command (v, w).

Each step solves for the robot-frame displacement that would bring the current latent z to the goal z*
through the interaction matrix J = dz/d(dx, dy, dyaw) at the current observation, by Levenberg-Marquardt
(damped Gauss-Newton, the classic visual-servoing step):

    delta = (J^T J + lambda * diag(J^T J))^-1 J^T (z* - z)

`delta` estimates where the goal pose lies in the robot frame. A differential drive cannot move sideways,
so the estimate is turned into (v, w) coarse-to-fine: far from the goal position the robot turns toward
it (driving backwards when it lies behind) and drives while the heading error is small; close to it
(with hysteresis) it aligns the yaw in place, correcting the remaining forward offset. The estimate is
re-made from the sensor at every step, so a poor linearisation far away only bends the path.
Velocity and acceleration limits apply last. Convergence is declared from the latent error alone (the
model's `tolerance`, calibrated on training worlds so that it means <= 0.10 m and 5 deg), held for
`settle_steps` consecutive steps; the robot then stops and servoing resumes if the error grows past
`resume_factor * tolerance`.

State is passed explicitly: `servo_step(state, z, z_goal, jacobian, dt, config) -> (state, command)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from vae_ros.core.errors import ConfigError, InputError

SERVOING = "servoing"
CONVERGED = "converged"
LOST = "lost"
IDLE = "idle"  # no goal yet


@dataclass(frozen=True)
class ServoConfig:
    """Gains, limits and the convergence rule. Units: m, rad, s; `tolerance` in latent units."""

    tolerance: float = 1.0  # latent error norm that counts as "at the goal" (from model.json when calibrated)
    gain: float = 1.0  # proportional gain on the estimated goal distance (1/s)
    angular_gain: float = 2.0  # on heading and final yaw errors (1/s)
    max_linear: float = 0.3  # m/s
    max_angular: float = 0.8  # rad/s
    max_linear_accel: float = 0.8  # m/s^2
    max_angular_accel: float = 3.0  # rad/s^2
    damping: float = 1e-2  # Levenberg-Marquardt lambda (relative to diag(J^T J))
    fine_radius: float = 0.04  # m: closer than this the robot aligns yaw in place ...
    coarse_radius: float = 0.08  # m: ... until the position estimate leaves this radius (hysteresis)
    drive_heading: float = math.radians(35.0)  # drive only while the heading error is below this
    max_step_estimate: float = 1.5  # m: a displacement estimate beyond this is scaled down (linearisation)
    settle_steps: int = 3  # consecutive steps under tolerance before declaring convergence
    resume_factor: float = 1.5  # leave CONVERGED when the error exceeds resume_factor * tolerance
    lost_after_s: float = 20.0  # LOST when the error has not improved by 5 % over this long

    def validate(self) -> None:
        positive = ("tolerance", "gain", "angular_gain", "max_linear", "max_angular", "max_linear_accel",
                    "max_angular_accel", "fine_radius", "coarse_radius", "drive_heading", "max_step_estimate",
                    "lost_after_s")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"servo {name} must be a positive number, got {value}")
        if self.damping < 0 or not math.isfinite(self.damping):
            raise ConfigError(f"servo damping must be >= 0, got {self.damping}")
        if self.coarse_radius < self.fine_radius:
            raise ConfigError("servo coarse_radius must be >= fine_radius")
        if self.settle_steps < 1:
            raise ConfigError("servo settle_steps must be >= 1")
        if self.resume_factor < 1:
            raise ConfigError("servo resume_factor must be >= 1")


@dataclass(frozen=True)
class ServoState:
    """What the servo carries from step to step (the node owns it)."""

    status: str = SERVOING
    command: tuple[float, float] = (0.0, 0.0)  # last (v, w) sent, for the acceleration limits
    fine: bool = False  # in the in-place yaw alignment phase
    settled: int = 0  # consecutive steps under tolerance
    best_error: float = math.inf  # lowest latent error seen in the current no-progress window
    since_progress: float = 0.0  # s since best_error last improved by 5 %
    error: float = math.inf  # latent error norm at the last step
    estimate: tuple[float, float, float] = (0.0, 0.0, 0.0)  # goal pose in the robot frame (dx, dy, dyaw)


def wrap_angle(angle: float) -> float:
    """Angle in (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))


def goal_estimate(z: np.ndarray, z_goal: np.ndarray, jacobian: np.ndarray, damping: float) -> np.ndarray:
    """(3,) Levenberg-Marquardt estimate of the goal's (dx, dy, dyaw) in the robot frame."""
    jac = np.asarray(jacobian, dtype=np.float64)
    err = np.asarray(z_goal, dtype=np.float64) - np.asarray(z, dtype=np.float64)  # (D,)
    if jac.ndim != 2 or jac.shape != (err.size, 3):
        raise InputError(f"interaction matrix must be (D, 3) with D = {err.size}, got {jac.shape}")
    if not (np.all(np.isfinite(jac)) and np.all(np.isfinite(err))):
        raise InputError("latent or interaction matrix holds NaN or inf")
    jtj = jac.T @ jac  # (3, 3)
    lhs = jtj + damping * np.diag(np.diag(jtj)) + 1e-9 * np.eye(3)
    return np.linalg.solve(lhs, jac.T @ err)


def _limit(value: float, previous: float, limit: float, accel: float, dt: float) -> float:
    value = min(max(value, -limit), limit)
    step = accel * dt
    return min(max(value, previous - step), previous + step)


def _unicycle(estimate: np.ndarray, fine: bool, config: ServoConfig) -> tuple[float, float, bool]:
    """(v, w, fine) that move a differential drive toward the goal pose `estimate` (robot frame)."""
    dx, dy, dyaw = (float(v) for v in estimate)
    rho = math.hypot(dx, dy)
    if rho > config.max_step_estimate:
        scale = config.max_step_estimate / rho
        dx, dy, rho = dx * scale, dy * scale, config.max_step_estimate
    fine = rho < (config.coarse_radius if fine else config.fine_radius)
    if fine:
        # Align the yaw in place; nudge along the heading to take out the forward offset.
        return config.gain * dx, config.angular_gain * wrap_angle(dyaw), True
    bearing = math.atan2(dy, dx)
    backwards = abs(bearing) > math.pi / 2
    heading_error = wrap_angle(bearing - math.pi) if backwards else bearing
    w = config.angular_gain * heading_error
    v = 0.0
    if abs(heading_error) < config.drive_heading:
        v = config.gain * rho * math.cos(heading_error) * (-1.0 if backwards else 1.0)
    return v, w, False


def servo_step(
    state: ServoState,
    z: np.ndarray,
    z_goal: np.ndarray,
    jacobian: np.ndarray,
    dt: float,
    config: ServoConfig,
) -> tuple[ServoState, tuple[float, float]]:
    """One control step: (state, latent, goal latent, J (D, 3) at this observation, dt) -> (state, (v, w))."""
    if not (math.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive number of seconds, got {dt}")
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    z_goal = np.asarray(z_goal, dtype=np.float64).reshape(-1)
    if z.shape != z_goal.shape:
        raise InputError(f"latent has {z.size} dimensions, the goal {z_goal.size}")
    error = float(np.linalg.norm(z - z_goal))
    if not math.isfinite(error):
        raise InputError("latent or goal latent holds NaN or inf")

    # Progress bookkeeping for LOST.
    best, since = state.best_error, state.since_progress + dt
    if error < 0.95 * best:
        best, since = error, 0.0

    settled = state.settled + 1 if error < config.tolerance else 0
    status = state.status
    if status == CONVERGED and error <= config.resume_factor * config.tolerance:
        settled = max(settled, config.settle_steps)
    elif settled >= config.settle_steps:
        status = CONVERGED
    else:
        status = LOST if since > config.lost_after_s else SERVOING

    estimate = goal_estimate(z, z_goal, jacobian, config.damping)
    if status in (CONVERGED, LOST):
        target = (0.0, 0.0)
        fine = state.fine
    else:
        v, w, fine = _unicycle(estimate, state.fine, config)
        target = (v, w)
    prev_v, prev_w = state.command
    v = _limit(target[0], prev_v, config.max_linear, config.max_linear_accel, dt)
    w = _limit(target[1], prev_w, config.max_angular, config.max_angular_accel, dt)
    new_state = replace(state, status=status, command=(v, w), fine=fine, settled=settled, best_error=best,
                        since_progress=since, error=error,
                        estimate=(float(estimate[0]), float(estimate[1]), float(estimate[2])))
    return new_state, (v, w)
