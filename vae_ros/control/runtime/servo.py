"""The latent servo's control law (ROS-free, pure): latent error -> differential-drive command (v, w).

Each step takes the current latent z, the goal latent z* and the goal's pose in the robot frame as the
servo head estimates it from the two latents (vae_ros.control.runtime.pose_head: the interaction model of this
latent space; a position-based law on a learned relative-pose estimate, as in Bateux et al., ICRA 2018).
A differential drive cannot move sideways, so the estimate is turned into (v, w) coarse-to-fine: far from
the goal position the robot turns toward it and drives while the heading error is small, forwards or
backwards, whichever keeps its heading nearer the goal's; close to it (with hysteresis) it aligns the yaw
in place, correcting the remaining offset along its heading. A sideways offset that is left once the yaw is
aligned cannot be turned away in place: the robot then backs off along the goal's heading until the goal is
`backoff_distance` ahead and approaches again (measured on 600 held-out episodes: 90.5 -> 92.0 %; the head
reads the offset well only once the yaw is aligned, so it often appears after the approach).
The estimate is made again from the sensor at every step and blended with the previous one carried through
the robot's last command (`smoothing`), so the head's pose-dependent errors average out over the path and
only bend it. A back-off that the scan safety layer holds back (vae_ros.control.runtime.safety: a wall behind the
robot) ends where it stands after `backoff_held_steps`, and the robot approaches again from there. Where the carried estimate puts the goal's yaw beyond `head_yaw_range` (60 deg; the head is
trained within about 70), readings are not blended in and the estimate is carried by the robot's motion
alone: a robot turned to drive to a goal beside it read an alias as a near goal and was led away
(92.0 -> 95.7 % on the same 600 episodes). Velocity and acceleration
limits apply last. Convergence is declared from the latent error alone (the model's `tolerance`,
calibrated on held-out data so that it means <= 0.10 m and 5 deg): the robot brakes as soon as the error
is under it, convergence is declared when it stays under for `settle_steps` consecutive steps, and
servoing resumes if the error grows past `resume_factor * tolerance` (or past the tolerance before that).

State is passed explicitly: `servo_step(state, z, z_goal, estimate, dt, config) -> (state, command)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from vae_ros.core.errors import ConfigError, InputError
from vae_ros.sim.geometry import wrap_angle

SERVOING = "servoing"
CONVERGED = "converged"
LOST = "lost"
IDLE = "idle"  # no goal yet
ALIGNED_YAW = math.radians(3.0)  # yaw error under which the in-place alignment is done
BACKOFF_HELD_STEPS = 3  # a back-off the scan safety layer held back (under half speed) this many steps ends


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
    fine_radius: float = 0.05  # m: closer than this the robot aligns yaw in place ...
    coarse_radius: float = 0.25  # m: ... until the position estimate leaves this radius (hysteresis)
    drive_heading: float = math.radians(35.0)  # drive only while the heading error is below this
    direction_hysteresis: float = math.radians(25.0)  # a forward/backward switch must gain this much
    smoothing: float = 0.5  # weight of the newest goal estimate against the motion-predicted previous one
    # The head is trained on goals within about 70 deg of yaw. Beyond this (turning to drive to a goal beside
    # the robot) its readings are not blended in: one there can read an alias as a near goal. The estimate is
    # then carried by the robot's own motion alone, until the yaw is back in range.
    head_yaw_range: float = math.radians(60.0)
    max_step_estimate: float = 1.5  # m: a goal estimate beyond this is scaled down (outside the training range)
    lateral_tolerance: float = 0.06  # m: a sideways offset left once the yaw is aligned (in place) beyond this ...
    backoff_distance: float = 0.3  # m: ... makes it back off until the goal is this far ahead and re-approach (0: never)
    settle_steps: int = 3  # consecutive steps under tolerance before declaring convergence
    resume_factor: float = 1.5  # leave CONVERGED when the error exceeds resume_factor * tolerance
    lost_after_s: float = 20.0  # LOST when the error has not improved by 5 % over this long

    def validate(self) -> None:
        positive = ("tolerance", "gain", "angular_gain", "max_linear", "max_angular", "max_linear_accel",
                    "max_angular_accel", "fine_radius", "coarse_radius", "drive_heading", "direction_hysteresis",
                    "max_step_estimate", "lost_after_s", "lateral_tolerance", "head_yaw_range")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"servo {name} must be a positive number, got {value}")
        if not (math.isfinite(self.backoff_distance) and self.backoff_distance >= 0):
            raise ConfigError(f"servo backoff_distance must be >= 0 (0: never back off), got {self.backoff_distance}")
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
    backwards: bool = False  # driving backwards toward the goal position
    backoff: bool = False  # backing off from a sideways offset, to approach the goal again
    settled: int = 0  # consecutive steps under tolerance
    best_error: float = math.inf  # lowest latent error seen in the current no-progress window
    since_progress: float = 0.0  # s since best_error last improved by 5 %
    error: float = math.inf  # latent error norm at the last step
    estimate: tuple[float, float, float] = (0.0, 0.0, 0.0)  # goal pose in the robot frame (dx, dy, dyaw)
    fused: tuple[float, float, float] | None = None  # the filtered goal estimate (robot frame)
    # (v, w) this law asked for last; `command` is what was sent, which the scan safety layer may have cut
    requested: tuple[float, float] = (0.0, 0.0)
    held: int = 0  # consecutive steps the linear motion asked for was held back (sent at under half its speed)


class _VerdictState(Protocol):  # ServoState, planner.MpcState
    @property
    def status(self) -> str: ...
    @property
    def settled(self) -> int: ...
    @property
    def best_error(self) -> float: ...
    @property
    def since_progress(self) -> float: ...


class _VerdictConfig(Protocol):  # ServoConfig, planner.MpcConfig
    @property
    def tolerance(self) -> float: ...
    @property
    def settle_steps(self) -> int: ...
    @property
    def resume_factor(self) -> float: ...
    @property
    def lost_after_s(self) -> float: ...


def verdict(state: _VerdictState, error: float, dt: float, config: _VerdictConfig) -> tuple[str, int, float, float]:
    """The goal controllers' shared convergence rule: (status, settled steps, best error, s since progress).

    CONVERGED after `settle_steps` consecutive errors under the tolerance, kept while the error stays within
    `resume_factor` tolerances; LOST when the error has not improved by 5 % for `lost_after_s` seconds.
    """
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
    return status, settled, best, since


def _fuse(previous: tuple[float, float, float] | None, command: tuple[float, float], estimate: np.ndarray,
          dt: float, weight: float, trusted_yaw: float = math.pi) -> np.ndarray:
    """Blend the new goal estimate with the previous one moved by the last command (the goal is fixed in the
    world, so its estimate in the robot frame moves opposite to the robot): pose-dependent errors of the
    head average out over the robot's path instead of steering it. Where the moved estimate puts the goal's
    yaw beyond `trusted_yaw`, the new one is not blended in at all."""
    if previous is None or weight >= 1.0:
        return estimate
    v, w = command
    dyaw = w * dt
    mx, my = v * dt * math.cos(dyaw / 2), v * dt * math.sin(dyaw / 2)  # the robot's motion (arc chord)
    c, s = math.cos(dyaw), math.sin(dyaw)
    px, py = previous[0] - mx, previous[1] - my
    predicted = np.array([c * px + s * py, -s * px + c * py, wrap_angle(previous[2] - dyaw)])
    if abs(predicted[2]) > trusted_yaw:
        return predicted  # the head is not trusted this far round: carried by the robot's own motion alone
    yaw = math.atan2(weight * math.sin(estimate[2]) + (1 - weight) * math.sin(predicted[2]),
                     weight * math.cos(estimate[2]) + (1 - weight) * math.cos(predicted[2]))
    return np.array([weight * estimate[0] + (1 - weight) * predicted[0],
                     weight * estimate[1] + (1 - weight) * predicted[1], yaw])


def limit_command(value: float, previous: float, limit: float, accel: float, dt: float) -> float:
    value = min(max(value, -limit), limit)
    step = accel * dt
    return min(max(value, previous - step), previous + step)


def unicycle_command(estimate: np.ndarray, fine: bool, backwards: bool,
              config: ServoConfig) -> tuple[float, float, bool, bool]:
    """(v, w, fine, backwards) that move a differential drive toward the goal pose `estimate` (robot frame)."""
    dx, dy, dyaw = (float(v) for v in estimate)
    rho = math.hypot(dx, dy)
    if rho > config.max_step_estimate:
        scale = config.max_step_estimate / rho
        dx, dy, rho = dx * scale, dy * scale, config.max_step_estimate
    fine = rho < (config.coarse_radius if fine else config.fine_radius)
    if fine:
        # Align the yaw in place; nudge along the heading to take out the forward offset.
        return config.gain * dx, config.angular_gain * wrap_angle(dyaw), True, backwards
    bearing = math.atan2(dy, dx)
    # Drive forwards or backwards, whichever keeps the heading nearer the goal's: the robot then never
    # turns much more than 90 deg away from the goal yaw on the way (and stays where the latent was
    # trained). The choice is sticky (hysteresis) so that near 90 deg it does not flip every step.
    forward_dev = abs(wrap_angle(bearing - dyaw))
    backward_dev = abs(wrap_angle(bearing - math.pi - dyaw))
    if backwards:
        backwards = backward_dev < forward_dev + config.direction_hysteresis
    else:
        backwards = backward_dev + config.direction_hysteresis < forward_dev
    heading_error = wrap_angle(bearing - math.pi) if backwards else bearing
    w = config.angular_gain * heading_error
    v = 0.0
    if abs(heading_error) < config.drive_heading:
        v = config.gain * rho * math.cos(heading_error) * (-1.0 if backwards else 1.0)
    return v, w, False, backwards


def servo_step(
    state: ServoState,
    z: np.ndarray,
    z_goal: np.ndarray,
    estimate: np.ndarray,
    dt: float,
    config: ServoConfig,
) -> tuple[ServoState, tuple[float, float]]:
    """One control step: (state, latent, goal latent, goal pose estimate (dx, dy, dyaw), dt) -> (state, (v, w))."""
    if not (math.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive number of seconds, got {dt}")
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    z_goal = np.asarray(z_goal, dtype=np.float64).reshape(-1)
    if z.shape != z_goal.shape:
        raise InputError(f"latent has {z.size} dimensions, the goal {z_goal.size}")
    error = float(np.linalg.norm(z - z_goal))
    if not math.isfinite(error):
        raise InputError("latent or goal latent holds NaN or inf")

    status, settled, best, since = verdict(state, error, dt, config)

    estimate = np.asarray(estimate, dtype=np.float64).reshape(-1)
    if estimate.shape != (3,) or not np.all(np.isfinite(estimate)):
        raise InputError(f"goal estimate must be three finite numbers (dx, dy, dyaw), got {estimate}")
    fused = _fuse(state.fused, state.command, estimate, dt, config.smoothing, config.head_yaw_range)
    held = state.held + 1 if abs(state.command[0]) < 0.5 * abs(state.requested[0]) else 0
    blocked = state.backoff and held >= BACKOFF_HELD_STEPS  # backing off into something: approach from here
    if status in (CONVERGED, LOST) or settled:
        # Under the tolerance the robot brakes at once and convergence is confirmed standing still: moving
        # on through the settle steps would carry it past the goal by (latency + settle time) x speed.
        target = (0.0, 0.0)
        fine, backwards, backoff = state.fine, state.backwards, False
    else:
        backoff = config.backoff_distance > 0 and not blocked and (
            state.backoff or (state.fine and abs(fused[2]) < ALIGNED_YAW and abs(fused[1]) > config.lateral_tolerance))
        if backoff and fused[0] < config.backoff_distance:
            # Turning in place cannot remove a sideways offset: back off along the goal's heading, then approach
            # again from behind, where the heading stays near the goal's and the offset is driven out.
            target = (-min(config.max_linear, config.gain * (config.backoff_distance - fused[0]) + 0.05),
                      config.angular_gain * wrap_angle(fused[2]))
            fine, backwards = False, False
        else:
            backoff = False
            v, w, fine, backwards = unicycle_command(fused, state.fine and not blocked, state.backwards, config)
            target = (v, w)
    prev_v, prev_w = state.command
    v = limit_command(target[0], prev_v, config.max_linear, config.max_linear_accel, dt)
    w = limit_command(target[1], prev_w, config.max_angular, config.max_angular_accel, dt)
    new_state = replace(state, status=status, command=(v, w), requested=(v, w), held=held, fine=fine, backwards=backwards, backoff=backoff,
                        settled=settled,
                        fused=(float(fused[0]), float(fused[1]), float(fused[2])), best_error=best,
                        since_progress=since, error=error,
                        estimate=(float(estimate[0]), float(estimate[1]), float(estimate[2])))
    return new_state, (v, w)
