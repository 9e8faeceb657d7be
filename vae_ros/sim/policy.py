"""Driving policies for data collection (ROS-free, pure): a smooth exploring random walk that avoids obstacles,
pose coverage (`CoverPolicy`) and random held commands for dynamics data (`DrivePolicy`).

The explorer's turn rate wanders as an Ornstein-Uhlenbeck process (smooth, zero-mean, correlated over a few seconds);
forward speed drops as the corridor ahead (the robot's width plus a margin) gets shorter, the robot steers
towards the side with more room, and when something is closer than `stop_distance` it turns in place, in
one committed direction, until the way ahead is clear. Commands are rate-limited (bounded accelerations).
State is passed explicitly: `step(state, ranges, angles, dt) -> (state, (linear, angular))`; the noise is
drawn from (seed, step index), so a run is reproducible from its seed alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError, InputError
from vae_ros.sim.geometry import wrap_angle


@dataclass(frozen=True)
class PolicyConfig:
    """Speeds (m/s, rad/s), accelerations (per s^2) and distances (m, from the LiDAR) of the explorer."""

    cruise_linear: float = 0.35
    max_linear: float = 0.5
    max_angular: float = 1.2
    linear_accel: float = 0.8
    angular_accel: float = 3.0
    wander_std: float = 0.5  # stationary std of the wandering turn rate
    wander_time: float = 2.0  # its correlation time in seconds
    half_width: float = 0.3  # robot radius plus a margin: the corridor checked ahead
    slow_distance: float = 1.2
    stop_distance: float = 0.5
    avoid_gain: float = 1.0  # rad/s of steering towards open space when an obstacle is at stop_distance

    def validate(self) -> None:
        if not 0 < self.cruise_linear <= self.max_linear:
            raise ConfigError("cruise_linear must be positive and <= max_linear")
        if not (self.max_angular > 0 and self.linear_accel > 0 and self.angular_accel > 0):
            raise ConfigError("max_angular and the accelerations must be positive")
        if not 0 < self.stop_distance < self.slow_distance:
            raise ConfigError("stop_distance must be positive and below slow_distance")
        if self.wander_std < 0 or self.wander_time <= 0:
            raise ConfigError("wander_std must be >= 0 and wander_time positive")


@dataclass(frozen=True)
class PolicyState:
    """What the policy carries from one step to the next."""

    step: int = 0
    wander: float = 0.0  # current wandering turn rate (rad/s)
    linear: float = 0.0  # last command
    angular: float = 0.0
    escape: int = 0  # 0: driving; +1 / -1: turning in place to the left / right until clear


def _approach(current: float, target: float, max_change: float) -> float:
    return current + min(max(target - current, -max_change), max_change)


class ExplorationPolicy:
    """Wall-avoiding smoothed random walk driven by a 2-D scan."""

    def __init__(self, config: PolicyConfig | None = None, seed: int = 0) -> None:
        self.config = config if config is not None else PolicyConfig()
        self.config.validate()
        self.seed = int(seed)

    def initial_state(self) -> PolicyState:
        return PolicyState()

    def step(self, state: PolicyState, ranges: np.ndarray, angles: np.ndarray,
             dt: float) -> tuple[PolicyState, tuple[float, float]]:
        """Next command from a scan: ranges (N,) in metres (inf = no return) at angles (N,) in radians."""
        cfg = self.config
        ranges = np.asarray(ranges, dtype=np.float64).reshape(-1)
        angles = np.asarray(angles, dtype=np.float64).reshape(-1)
        if ranges.shape != angles.shape or ranges.size == 0:
            raise InputError(f"ranges and angles must be equal-length 1-D arrays, got {ranges.shape} and {angles.shape}")
        if not (math.isfinite(dt) and dt > 0):
            raise InputError(f"dt must be positive, got {dt}")
        # NaN and -inf carry no distance; +inf is open space.
        usable = np.where(np.isnan(ranges) | (ranges < 0), np.inf, ranges)

        ahead = _corridor_clearance(usable, angles, cfg.half_width)
        left = _side_space(usable, angles, 1.0)
        right = _side_space(usable, angles, -1.0)
        open_side = 1.0 if left >= right else -1.0

        rng = np.random.default_rng([self.seed, state.step])
        decay = math.exp(-dt / cfg.wander_time)
        wander = state.wander * decay + cfg.wander_std * math.sqrt(1.0 - decay * decay) * float(rng.standard_normal())

        escape = state.escape
        if escape == 0 and ahead < cfg.stop_distance:
            escape = int(open_side)
        elif escape != 0 and ahead > cfg.slow_distance:
            escape = 0

        if escape != 0:
            target_linear, target_angular = 0.0, escape * 0.8 * cfg.max_angular
            wander = 0.0
        else:
            closeness = min(max((cfg.slow_distance - ahead) / (cfg.slow_distance - cfg.stop_distance), 0.0), 1.0)
            target_linear = cfg.cruise_linear * (1.0 - closeness)
            target_angular = wander + cfg.avoid_gain * closeness * open_side
        target_angular = min(max(target_angular, -cfg.max_angular), cfg.max_angular)
        linear = _approach(state.linear, target_linear, cfg.linear_accel * dt)
        angular = _approach(state.angular, target_angular, cfg.angular_accel * dt)
        new_state = replace(state, step=state.step + 1, wander=wander, linear=linear, angular=angular, escape=escape)
        return new_state, (linear, angular)


def _corridor_clearance(ranges: np.ndarray, angles: np.ndarray, half_width: float) -> float:
    """Distance ahead to the nearest return inside the straight corridor |y| <= half_width, x > 0."""
    finite = np.isfinite(ranges)
    x = ranges[finite] * np.cos(angles[finite])
    y = ranges[finite] * np.sin(angles[finite])
    inside = (x > 0) & (np.abs(y) <= half_width)
    # Returns beside the robot (x ~ 0) also block turning into them; they count through _side_space.
    return float(x[inside].min()) if inside.any() else math.inf


def _side_space(ranges: np.ndarray, angles: np.ndarray, side: float) -> float:
    """Mean free distance (capped at 5 m) over the quarter turn from 20 to 110 degrees on one side."""
    lateral = side * angles
    sector = (lateral > math.radians(20)) & (lateral < math.radians(110))
    if not sector.any():
        return 0.0
    return float(np.minimum(ranges[sector], 5.0).mean())


@dataclass(frozen=True)
class CoverConfig:
    """Pose sampling of the `cover` collection mode (m, rad)."""

    per_anchor: int = 50  # poses drawn around each anchor
    neighbourhood: float = 1.3  # m: radius of an anchor's neighbourhood (servo starts are up to 1 m away)
    yaw_spread: float = math.radians(70.0)  # yaw drawn within +/- this of the anchor's heading
    anchor_clearance: float = 0.4  # m of free space around an anchor (a goal one can servo to)
    pose_clearance: float = 0.02  # m of free space around every pose

    def validate(self) -> None:
        if self.per_anchor < 1 or not (self.neighbourhood > 0 and 0 < self.yaw_spread <= math.pi):
            raise ConfigError("cover: per_anchor >= 1, neighbourhood > 0 and yaw_spread in (0, pi]")
        if self.anchor_clearance < 0 or self.pose_clearance < 0:
            raise ConfigError("cover: clearances must be >= 0")


class CoverPolicy:
    """Where to place the robot, frame by frame, so that a recording covers what a servo crosses.

    Poses come in clusters: an anchor (a free pose, like a goal) and `per_anchor` poses within
    `neighbourhood` of it, headings within `yaw_spread` of the anchor's, so that every region of the
    room is seen from many nearby poses and headings — what a pose-metric training term needs, and what a
    driving policy covers only sparsely. Pure and seeded: `pose(index)` depends on (seed, index) only.
    `clearance(x, y)` is the world's free distance (SimWorld.clearance).
    """

    def __init__(self, clearance: Any, config: CoverConfig | None = None, seed: int = 0,
                 half_size: float = 2.8) -> None:
        self.config = config if config is not None else CoverConfig()
        self.config.validate()
        self.clearance = clearance
        self.seed = seed
        self.half_size = half_size

    def _free_point(self, rng: np.random.Generator, near: tuple[float, float] | None, clearance: float) -> tuple[float, float]:
        for _ in range(10_000):
            if near is None:
                x, y = rng.uniform(-self.half_size, self.half_size, size=2)
            else:
                radius = self.config.neighbourhood * math.sqrt(rng.uniform())
                angle = rng.uniform(-math.pi, math.pi)
                x, y = near[0] + radius * math.cos(angle), near[1] + radius * math.sin(angle)
            if self.clearance(float(x), float(y)) >= clearance:
                return float(x), float(y)
        raise ConfigError("cover: found no free pose in 10000 draws; the world is too cluttered")

    def pose(self, index: int) -> tuple[float, float, float]:
        """The index-th pose (x, y, yaw) of the recording."""
        cfg = self.config
        anchor_index = index // cfg.per_anchor
        anchor_rng = np.random.default_rng([self.seed, anchor_index])
        ax, ay = self._free_point(anchor_rng, None, cfg.anchor_clearance)
        heading = float(anchor_rng.uniform(-math.pi, math.pi))
        rng = np.random.default_rng([self.seed, anchor_index, index % cfg.per_anchor + 1])
        x, y = self._free_point(rng, (ax, ay), cfg.pose_clearance)
        yaw = heading + float(rng.uniform(-cfg.yaw_spread, cfg.yaw_spread))
        return x, y, wrap_angle(yaw)


@dataclass(frozen=True)
class DriveConfig:
    """Command repertoire of the `drive` collection mode (m/s, rad/s, s, m): a planner's limits."""

    max_linear: float = 0.3
    max_angular: float = 0.8
    linear_accel: float = 0.8
    angular_accel: float = 3.0
    min_segment: float = 0.5  # s a drawn command is held (at least) ...
    max_segment: float = 2.5  # ... and at most
    lookahead: float = 0.8  # s: a command is kept only while driving it this long stays clear of everything
    margin: float = 0.05  # m of free space kept around the robot's disc

    def validate(self) -> None:
        if not (self.max_linear > 0 and self.max_angular > 0 and self.linear_accel > 0 and self.angular_accel > 0):
            raise ConfigError("drive: limits and accelerations must be positive")
        if not 0 < self.min_segment <= self.max_segment or self.lookahead <= 0 or self.margin < 0:
            raise ConfigError("drive: 0 < min_segment <= max_segment, lookahead > 0 and margin >= 0")


@dataclass(frozen=True)
class DriveState:
    step: int = 0
    target: tuple[float, float] = (0.0, 0.0)  # the command being held
    remaining: float = 0.0  # s it is still held
    linear: float = 0.0  # last command sent
    angular: float = 0.0


class DrivePolicy:
    """Random held commands for dynamics data: turns in place, straight runs and arcs, forwards and
    backwards, and stops, each held 0.5-2.5 s, rate-limited like a controller's output.

    A world model learns only the motions it was shown; the explorer never reverses or turns in place, the
    moves a differential drive's planner uses near a goal. A command is drawn again whenever driving it for
    `lookahead` seconds would bring the robot within `margin` of an obstacle (`clearance(x, y)`: the
    world's free distance, SimWorld.clearance); turning in place is always safe for a round robot. Pure and
    seeded: `step(state, pose, dt) -> (state, (linear, angular))` draws from (seed, step index).
    """

    def __init__(self, clearance: Any, config: DriveConfig | None = None, seed: int = 0) -> None:
        self.config = config if config is not None else DriveConfig()
        self.config.validate()
        self.clearance = clearance
        self.seed = int(seed)

    def initial_state(self) -> DriveState:
        return DriveState()

    def _draw(self, rng: np.random.Generator) -> tuple[float, float]:
        cfg = self.config
        kind = rng.choice(4, p=[0.3, 0.3, 0.3, 0.1])  # turn, straight, arc, stop
        sign_v = 1.0 if rng.uniform() < 0.5 else -1.0
        sign_w = 1.0 if rng.uniform() < 0.5 else -1.0
        if kind == 0:
            return 0.0, sign_w * float(rng.uniform(0.3, 1.0)) * cfg.max_angular
        if kind == 1:
            return sign_v * float(rng.uniform(0.25, 1.0)) * cfg.max_linear, float(rng.uniform(-0.2, 0.2)) * cfg.max_angular
        if kind == 2:
            return (sign_v * float(rng.uniform(0.15, 1.0)) * cfg.max_linear,
                    sign_w * float(rng.uniform(0.25, 1.0)) * cfg.max_angular)
        return 0.0, 0.0

    def _safe(self, pose: tuple[float, float, float], command: tuple[float, float]) -> bool:
        x, y, yaw = pose
        steps = 8
        h = self.config.lookahead / steps
        for _ in range(steps):
            yaw += command[1] * h * 0.5
            x += command[0] * h * math.cos(yaw)
            y += command[0] * h * math.sin(yaw)
            yaw += command[1] * h * 0.5
            if self.clearance(x, y) < self.config.margin:
                return False
        return True

    def step(self, state: DriveState, pose: tuple[float, float, float],
             dt: float) -> tuple[DriveState, tuple[float, float]]:
        """Next command from the robot's pose (x, y, yaw) in the world frame."""
        cfg = self.config
        if not (math.isfinite(dt) and dt > 0):
            raise InputError(f"dt must be positive, got {dt}")
        if len(pose) != 3 or not all(math.isfinite(float(p)) for p in pose):
            raise InputError(f"pose must be three finite numbers (x, y, yaw), got {pose}")
        pose = (float(pose[0]), float(pose[1]), float(pose[2]))
        target, remaining = state.target, state.remaining - dt
        if remaining <= 0 or not self._safe(pose, target):
            rng = np.random.default_rng([self.seed, state.step])
            remaining = float(rng.uniform(cfg.min_segment, cfg.max_segment))
            for _ in range(20):
                target = self._draw(rng)
                if self._safe(pose, target):
                    break
            else:
                target = (0.0, (1.0 if rng.uniform() < 0.5 else -1.0) * cfg.max_angular)
        linear = _approach(state.linear, target[0], cfg.linear_accel * dt)
        angular = _approach(state.angular, target[1], cfg.angular_accel * dt)
        new_state = replace(state, step=state.step + 1, target=target, remaining=remaining, linear=linear,
                            angular=angular)
        return new_state, (linear, angular)
