"""The scan safety layer (ROS-free, pure): every controller's command checked against the newest LaserScan.

One function, `guard_command`, runs on every command that leaves a controller: in latent_servo_node and
world_model_node (vae_ros.ros.nodes.control_base, before cmd_vel is published), in the world model's planner
(vae_ros.control.runtime.planner.safe_command, so that a plan knows what would be cut) and in the in-process
episodes that `vae-ros eval-control` measures (vae_ros.control.evaluation.episodes), so the evaluation measures what
runs on the robot.

The robot is a disc of `robot_radius` driven as a differential drive: the command (v, w) held for
`lookahead_s` sweeps the disc along an arc (backwards too: a reversing robot is checked behind it). The
linear speed is cut, in steps of 1/speed_steps of the command, until along that arc the robot's centre
stays robot_radius + margin from every scan point or, where it already is closer, comes no closer to
anything than it is now. Near an obstacle the robot therefore slows down (it may cover at most the free
distance within the lookahead) and stops where the free space along its arc is gone; it never pushes into
an obstacle. The turn rate is kept: a disc turning in place touches nothing. Without a scan there is no
command but zero.

Scan points are taken in the robot frame (the LiDAR at the robot's centre, x forward, as the simulator
mounts it); points inside the robot's own disc are its own body and ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vae_ros.core.errors import ConfigError, InputError

# The simulated robot's radius (vae_ros.sim.world.ROBOT_RADIUS; not imported, so that the robot-side
# code does not load the simulator module).
DEFAULT_ROBOT_RADIUS = 0.2  # m
# Beyond the radius: the scan plane (0.4 m up in the simulator) sees the 0.05 m post under the
# sphere-on-a-post object (footprint 0.25 m) and box faces up to 0.12 m inside the boxes' footprints.
DEFAULT_MARGIN = 0.2  # m
CLEAR, SLOWED, STOPPED, OFF = "clear", "slowed", "stopped", "off"
# Coming closer than now by less than this counts as not closer (sliding along a wall sampled by beams).
_NOT_CLOSER_TOLERANCE = 1e-4  # m
# Scan points checked against the arcs at a time: (speeds x arc steps x chunk x 2) float64, 15 MB at 19 x 24 x 2048.
# Unchunked, a scan of a million close beams needed about 7 GB per command.
_POINT_CHUNK = 2048


@dataclass(frozen=True)
class SafetyConfig:
    """The layer's settings. Units: m, s."""

    enabled: bool = True
    robot_radius: float = DEFAULT_ROBOT_RADIUS
    margin: float = DEFAULT_MARGIN  # kept beyond the radius, centre to scan point
    lookahead_s: float = 0.6  # the command held this long must stay clear
    arc_step_s: float = 0.025  # the arc is checked every this long (0.75 cm at 0.3 m/s)
    speed_steps: int = 20  # the linear speed is cut in 1/speed_steps of the command

    def validate(self) -> None:
        for name in ("robot_radius", "lookahead_s", "arc_step_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"scan safety {name} must be a positive number, got {value}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ConfigError(f"scan safety margin must be >= 0 (m beyond the robot's radius), got {self.margin}")
        if self.speed_steps < 1:
            raise ConfigError(f"scan safety speed_steps must be >= 1, got {self.speed_steps}")

    @property
    def keep(self) -> float:
        """Distance (m) from the robot's centre to any scan point that the layer keeps."""
        return self.robot_radius + self.margin


@dataclass(frozen=True)
class SafetyVerdict:
    """What the layer made of one command."""

    command: tuple[float, float]  # (v, w) to send
    state: str  # CLEAR, SLOWED, STOPPED or OFF
    requested: tuple[float, float]  # (v, w) the controller asked for
    free: float = math.inf  # m along the requested arc before the disc comes within the margin (inf: none in reach)
    reason: str = ""  # why a command was stopped without looking at the arc (no scan)

    @property
    def cut(self) -> bool:
        """True when the command sent differs from the one requested."""
        return self.command != self.requested

    def describe(self) -> str:
        """The /diagnostics value: 'no', 'slowed: 0.12 m free ahead', 'stopped: 0.00 m free behind',
        'stopped: no scan for 1.2 s', 'off'."""
        if self.state == OFF:
            return "off (scan_safety false)"
        if self.state == CLEAR:
            return "no"
        if self.reason:
            return f"{self.state}: {self.reason}"
        where = "behind" if self.requested[0] < 0 else "ahead"
        return f"{self.state}: {self.free:.2f} m free {where}"


def scan_points(ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float = 0.0,
                range_max: float = math.inf) -> np.ndarray:
    """A LaserScan's returns as points (P, 2) in the sensor frame. NaN and finite values outside
    [range_min, range_max] are no return; -inf (REP-117: closer than range_min) is a point at range_min."""
    r = np.asarray(ranges, np.float64).reshape(-1)
    if not (math.isfinite(angle_min) and math.isfinite(angle_increment)):
        raise InputError(f"scan angles must be finite, got angle_min {angle_min}, angle_increment {angle_increment}")
    low = range_min if math.isfinite(range_min) and range_min > 0 else 0.0
    high = range_max if range_max > 0 else math.inf  # some drivers leave range_max 0
    r = np.where(np.isneginf(r), low, r)
    keep = np.isfinite(r) & (r >= low) & (r <= high)
    angles = angle_min + angle_increment * np.arange(r.size, dtype=np.float64)
    return np.stack([r[keep] * np.cos(angles[keep]), r[keep] * np.sin(angles[keep])], axis=1)


def _arc(v: np.ndarray, w: float, t: np.ndarray) -> np.ndarray:
    """Positions (..., 2) of a unicycle from the origin (heading +x) after t s at (v, w), exact arcs."""
    theta = w * t
    # sin(th)/th and (1 - cos(th))/th = (th/2) (sin(th/2)/(th/2))^2, both without dividing by zero
    x = v * t * np.sinc(theta / np.pi)
    y = v * t * (theta / 2.0) * np.sinc(theta / (2.0 * np.pi)) ** 2
    return np.stack(np.broadcast_arrays(x, y), axis=-1)


def stop_without_scan(command: tuple[float, float], reason: str) -> SafetyVerdict:
    """Zero: the layer is on but has no (fresh) scan to judge the command by."""
    requested = (float(command[0]), float(command[1]))
    return SafetyVerdict((0.0, 0.0), STOPPED, requested, 0.0, reason)


def guard_command(command: tuple[float, float], points: np.ndarray | None,
                  config: SafetyConfig = SafetyConfig()) -> SafetyVerdict:
    """The command (v, w) as it may be sent given scan points (P, 2) in the robot frame (None: no scan)."""
    v, w = float(command[0]), float(command[1])
    requested = (v, w)
    if not config.enabled:
        return SafetyVerdict(requested, OFF, requested)
    if points is None:
        return stop_without_scan(requested, "no scan")
    if not (math.isfinite(v) and math.isfinite(w)):
        return SafetyVerdict((0.0, 0.0), STOPPED, requested, 0.0, "command not finite")
    if v == 0.0:
        return SafetyVerdict(requested, CLEAR, requested)  # turning in place: a disc touches nothing
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    dist = np.hypot(pts[:, 0], pts[:, 1])
    keep, horizon = config.keep, config.lookahead_s
    near = (dist >= config.robot_radius) & (dist <= abs(v) * horizon + keep)
    if not near.any():
        return SafetyVerdict(requested, CLEAR, requested)
    pts, now = pts[near], float(dist[near].min())
    floor = min(keep, now) - _NOT_CLOSER_TOLERANCE
    steps = max(2, int(math.ceil(horizon / config.arc_step_s)))
    t = np.arange(1, steps + 1) * (horizon / steps)  # (S,)

    def gaps(speeds: np.ndarray) -> np.ndarray:
        """(K,) speeds -> (K, S) distance from the centre to the nearest point along each arc; the points taken
        _POINT_CHUNK at a time, so memory stays bounded whatever the scan's beam count."""
        pos = _arc(speeds[:, None], w, t[None, :])  # (K, S, 2)
        nearest = np.full(pos.shape[:2], np.inf)
        for first in range(0, len(pts), _POINT_CHUNK):
            diff = pos[:, :, None, :] - pts[None, None, first:first + _POINT_CHUNK]  # (K, S, <=chunk, 2)
            np.minimum(nearest, (diff**2).sum(-1).min(-1), out=nearest)
        return np.sqrt(nearest)

    along = gaps(np.array([v]))[0]  # (S,) on the requested arc
    inside = np.flatnonzero(along < keep)
    free = 0.0 if now < keep else (math.inf if not inside.size else abs(v) * float(t[inside[0] - 1] if inside[0] else 0.0))
    if along.min() >= floor:
        return SafetyVerdict(requested, CLEAR, requested, free)
    scales = np.arange(config.speed_steps - 1, 0, -1) / config.speed_steps  # (K,) below 1
    ok = np.flatnonzero(gaps(v * scales).min(1) >= floor)
    if ok.size:
        return SafetyVerdict((v * float(scales[ok[0]]), w), SLOWED, requested, free)
    return SafetyVerdict((0.0, w), STOPPED, requested, free)
