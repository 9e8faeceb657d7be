"""Teach-and-repeat episodes in the simulator, in-process and faster than real time (ROS-free).

An episode is one route in one world: a random path of straight legs and turns (5-15 m, clear of walls and
objects) that a teacher drives on ground truth (a human with a joystick, in effect) while the robot records
its latents and its drifting wheel odometry (vae_ros.sim.odometry, `odom_error`); the route is taught from
what the robot recorded (vae_ros.control.runtime.route.teach_route) exactly as `vae-ros teach` does from a bag.
The robot is then put down near the route's start (up to 0.15 m aside and 10 deg turned), with fresh odometry
of another seed, in the same world under the same or another lighting, and the route follower
(vae_ros.control.runtime.route_follower, what route_follower_node runs) repeats the route on each method's
latents. Every command passes the scan safety layer, as in the nodes. Judged by ground truth only:
success = the robot ends within 0.10 m / 5 deg of where the teacher stopped, touched nothing, and never left
the taught path by more than 0.3 m.

Methods side by side on the same routes and starts: `odometry` (replay on odometry alone, started as if
exactly at the route's start: the floor), `raw_scan` and `pixels` (similarity of raw sensor data),
`image` (the packaged camera latent), `control` (the packaged LiDAR control latent with its pose head).
Relocalisation is measured apart: from random poses within 0.5 m and 15 deg of a route, the follower's global
place recognition either names a keyframe (a match within 0.5 m of the truth is correct) or declines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vae_ros.control.runtime.route import Route, relative_pose, teach_route
from vae_ros.control.runtime.route_follower import (
    DONE,
    FollowerConfig,
    FollowerState,
    PoseReader,
    follower_step,
    match_keyframes,
)
from vae_ros.control.runtime.safety import SafetyConfig, guard_command, scan_points
from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import wrap_angle

SUCCESS_POSITION_M = 0.10
SUCCESS_YAW_RAD = math.radians(5.0)
MAX_PATH_ERROR_M = 0.3
RELOCALISE_RADIUS_M = 0.5
CONTROL_RATE = 10.0  # Hz: the sensor rate the nodes run at
TEACH_SPEED = 0.2  # m/s: the teacher's pace


@dataclass(frozen=True)
class Method:
    """One way of repeating: `encode(world) -> latent` (None: odometry alone) and an optional pose head."""

    name: str
    encode: Callable[[Any], np.ndarray] | None
    head: PoseReader | None = None
    camera: bool = False  # needs the rendered camera (lighting matters)


@dataclass
class RepeatResult:
    seed: int
    route: int
    method: str
    lighting: str
    success: bool
    status: str
    final_position_error: float
    final_yaw_error: float
    max_path_error: float
    mean_path_error: float
    collided: bool
    time_s: float
    lost_s: float  # s spent LOST
    keyframes: int
    route_length: float
    trajectory: list[tuple[float, float, float]] = field(default_factory=list, repr=False)

    def to_dict(self, with_traces: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_traces:
            out.pop("trajectory")
        return out


def _free(world: Any, a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    samples = max(2, int(np.hypot(*(b - a)) / 0.05) + 1)
    return all(world.clearance(*(a + t * (b - a))) >= margin for t in np.linspace(0.0, 1.0, samples))


def sample_route(world: Any, rng: np.random.Generator, min_length: float = 5.0, max_length: float = 15.0,
                 margin: float = 0.25) -> np.ndarray:
    """(N, 2) waypoints of a path of straight legs (0.8-2.5 m) joined by 30-120 deg turns, 0.25 m clear of
    everything (robot disc to surface), between min_length and max_length long."""
    for _ in range(500):
        target = float(rng.uniform(min_length, max_length))
        start = rng.uniform(-2.4, 2.4, size=2)
        if world.clearance(*start) < margin + 0.1:
            continue
        points = [start]
        heading = float(rng.uniform(-math.pi, math.pi))
        length = 0.0
        for _leg in range(60):
            for _try in range(40):
                turn = float(rng.uniform(math.radians(30), math.radians(120))) * rng.choice([-1.0, 1.0])
                new_heading = heading + (turn if len(points) > 1 else float(rng.uniform(-math.pi, math.pi)))
                leg = float(rng.uniform(0.8, 2.5))
                leg = min(leg, target - length) if target - length > 0.8 else leg
                end = points[-1] + leg * np.array([math.cos(new_heading), math.sin(new_heading)])
                if _free(world, points[-1], end, margin):
                    points.append(end)
                    heading = new_heading
                    length += leg
                    break
            else:
                break
            if length >= target:
                return np.array(points)
    raise ConfigError(f"could not lay a {min_length:g}-{max_length:g} m route in world seed {world.config.seed}")


def _densify(waypoints: np.ndarray, step: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    points = [waypoints[0]]
    for a, b in zip(waypoints[:-1], waypoints[1:], strict=True):
        n = max(1, int(np.hypot(*(b - a)) / step))
        points.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
    pts = np.array(points)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    return pts, arc


def path_distance(points: np.ndarray, xy: np.ndarray) -> float:
    """Distance (m) from xy to the polyline `points` (dense)."""
    a, b = points[:-1], points[1:]
    seg = b - a
    length2 = np.maximum((seg ** 2).sum(1), 1e-12)
    t = np.clip(((xy - a) * seg).sum(1) / length2, 0.0, 1.0)
    near = a + t[:, None] * seg
    return float(np.min(np.hypot(*(near - xy).T)))


class Odometer:
    """Wheel odometry for an in-process world: the true motion of each control step through the error model."""

    def __init__(self, level: float, seed: int, start: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        from vae_ros.sim.odometry import OdomErrorModel, WheelOdometry
        from vae_ros.sim.world import Pose2D

        self._odometry = WheelOdometry(OdomErrorModel(level=level), Pose2D(*start), seed=seed)

    def update(self, before: Any, after: Any, dt: float) -> tuple[float, float, float]:
        from vae_ros.sim.world import Velocity2D

        rel = relative_pose((before.x, before.y, before.yaw), (after.x, after.y, after.yaw))
        pose, _ = self._odometry.update(Velocity2D(float(rel[0]) / dt, 0.0, float(rel[2]) / dt), dt)
        return (pose.x, pose.y, pose.yaw)

    @property
    def pose(self) -> tuple[float, float, float]:
        p = self._odometry.pose
        return (p.x, p.y, p.yaw)


@dataclass
class Teaching:
    """What one teach run recorded: true and odometry poses and each method's latents, per control step."""

    true_poses: np.ndarray  # (N, 3)
    odom_poses: np.ndarray  # (N, 3)
    stamps_ns: np.ndarray  # (N,)
    latents: dict[str, np.ndarray]  # method -> (N, D)
    dense_path: np.ndarray  # (M, 2) the taught true path, for the path error


def drive_teach(world: Any, waypoints: np.ndarray, methods: Sequence[Method], odom_error: float, seed: int,
                speed: float = TEACH_SPEED) -> Teaching:
    """The teacher drives the waypoints on ground truth (pure pursuit on the true pose) and the robot records."""
    dense, arc = _densify(waypoints)
    first_heading = math.atan2(*(waypoints[1] - waypoints[0])[::-1])
    world.set_pose(float(waypoints[0][0]), float(waypoints[0][1]), first_heading)
    odometer = Odometer(odom_error, seed)
    dt = 1.0 / CONTROL_RATE
    true_poses, odom_poses, stamps, latents = [], [], [], {m.name: [] for m in methods if m.encode is not None}
    progress, t = 0.0, 0.0
    pose = world.pose()
    for _ in range(int(arc[-1] / speed * 4 / dt) + 200):
        true_poses.append((pose.x, pose.y, pose.yaw))
        odom_poses.append(odometer.pose)
        stamps.append(int(round(t * 1e9)))
        for m in methods:
            if m.encode is not None:
                latents[m.name].append(m.encode(world))
        here = np.array([pose.x, pose.y])
        near = np.flatnonzero(np.abs(arc - progress) < 0.5)
        progress = float(arc[near[np.argmin(np.hypot(*(dense[near] - here).T))]])
        left = arc[-1] - progress
        if left < 0.03:
            break
        target = dense[min(np.searchsorted(arc, progress + 0.3), len(dense) - 1)]
        rel = relative_pose((pose.x, pose.y, pose.yaw), (target[0], target[1], 0.0))
        alpha = math.atan2(rel[1], rel[0])
        v = 0.0 if abs(alpha) > math.radians(40) else speed * math.cos(alpha) * min(1.0, left / 0.3 + 0.2)
        w = float(np.clip(2.0 * alpha, -0.8, 0.8))
        world.step(v, w, dt)
        t += dt
        new = world.pose()
        odometer.update(pose, new, dt)
        pose = new
    world.step(0.0, 0.0, 0.5)
    return Teaching(np.array(true_poses), np.array(odom_poses), np.array(stamps, dtype=np.int64),
                    {k: np.array(v) for k, v in latents.items()}, dense)


def route_of(teaching: Teaching, method: str) -> Route:
    """The method's route, taught from the recording as `vae-ros teach` would."""
    return teach_route(teaching.stamps_ns, teaching.latents[method], None, teaching.stamps_ns, teaching.odom_poses)


def repeat_route(world: Any, route: Route, method: Method, teaching: Teaching, start: tuple[float, float, float],
                 odom_error: float, odom_seed: int, config: FollowerConfig = FollowerConfig(),
                 safety: SafetyConfig = SafetyConfig(), time_limit: float | None = None) -> tuple[str, list[tuple[float, float, float]], float, bool]:
    """Run the follower from `start` (true pose) -> (final status, true trajectory, s lost, collided)."""
    world.set_pose(*start)
    odometer = Odometer(odom_error, odom_seed, start=(1.0, -2.0, 0.5))  # the repeat's own odometry frame
    dt = 1.0 / CONTROL_RATE
    limit = time_limit if time_limit is not None else route.length / 0.1 + 30.0
    state = FollowerState()
    if method.encode is None:  # odometry replay: starts as if exactly at the route's start, never corrected
        state = FollowerState(status="following", pose=tuple(route.poses[0]), odom=odometer.pose)
        config = FollowerConfig(**{**asdict(config), "min_quality": 1.0, "lost_timeout": 1e9})
    pose = world.pose()
    trajectory = [(pose.x, pose.y, pose.yaw)]
    lost = 0.0
    collided = False
    t = 0.0
    dummy = route.latents[0]
    while t < limit:
        z = method.encode(world) if method.encode is not None else dummy
        state, (v, w) = follower_step(state, route, z, odometer.pose, dt, config, method.head)
        if state.status == DONE:
            break
        lost += dt if state.status == "lost" else 0.0
        if safety.enabled:
            geo = world.scan_geometry
            verdict = guard_command((v, w), scan_points(world.scan(), geo.angle_min, geo.angle_increment,
                                                        geo.range_min, geo.range_max), safety)
            if verdict.cut:
                v, w = verdict.command
                state = FollowerState(**{**state.__dict__, "command": (v, w)})
        world.step(v, w, dt)
        t += dt
        new = world.pose()
        odometer.update(pose, new, dt)
        pose = new
        trajectory.append((pose.x, pose.y, pose.yaw))
        collided = collided or world.clearance(pose.x, pose.y) < 0.0
    world.step(0.0, 0.0, 0.5)
    pose = world.pose()
    trajectory.append((pose.x, pose.y, pose.yaw))
    return state.status, trajectory, lost, collided


def judge(result_args: dict[str, Any], trajectory: list[tuple[float, float, float]], teaching: Teaching) -> dict[str, Any]:
    end = teaching.true_poses[-1]
    final = trajectory[-1]
    pos = math.hypot(final[0] - end[0], final[1] - end[1])
    yaw = abs(wrap_angle(final[2] - end[2]))
    errors = [path_distance(teaching.dense_path, np.array(p[:2])) for p in trajectory[::2]]
    return {**result_args, "final_position_error": pos, "final_yaw_error": yaw, "max_path_error": float(max(errors)),
            "mean_path_error": float(np.mean(errors))}


def relocalise(world: Any, route: Route, method: Method, teaching: Teaching, rng: np.random.Generator, count: int,
               config: FollowerConfig = FollowerConfig()) -> dict[str, int]:
    """Global place recognition from `count` random poses near the taught path: accepted / correct counts."""
    if method.encode is None:
        return {"queries": 0, "accepted": 0, "correct": 0}
    truth = teaching.true_poses
    # The keyframes' true poses: the route keeps the recording's stamps.
    index = {int(s): i for i, s in enumerate(teaching.stamps_ns)}
    key_truth = np.array([truth[index[int(s)]] for s in route.stamps_ns])
    accepted = correct = queries = 0
    for _ in range(count * 20):
        if queries >= count:
            break
        i = int(rng.integers(len(truth)))
        base = truth[i]
        offset = rng.uniform(-1, 1, size=2) * RELOCALISE_RADIUS_M
        if math.hypot(*offset) > RELOCALISE_RADIUS_M:
            continue
        x, y = base[0] + offset[0], base[1] + offset[1]
        yaw = wrap_angle(base[2] + float(rng.uniform(-1, 1)) * math.radians(15))
        if world.clearance(x, y) < 0.05:
            continue
        world.set_pose(x, y, yaw)
        queries += 1
        match = match_keyframes(route, np.asarray(method.encode(world), np.float32), None, config.separation_m)
        if match.ratio < config.ratio and match.quality >= config.min_quality:
            accepted += 1
            k = key_truth[match.keyframe]
            correct += math.hypot(k[0] - x, k[1] - y) <= RELOCALISE_RADIUS_M
    return {"queries": queries, "accepted": accepted, "correct": correct}


def summarise_repeats(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not results:
        return {"episodes": 0}
    ok = [r for r in results if r["success"]]
    return {
        "episodes": len(results),
        "success_rate": len(ok) / len(results),
        "collisions": sum(r["collided"] for r in results),
        "done_rate": sum(r["status"] == DONE for r in results) / len(results),
        "mean_path_error_m": float(np.mean([r["mean_path_error"] for r in results])),
        "max_path_error_m": {"median": float(np.median([r["max_path_error"] for r in results])),
                             "max": float(np.max([r["max_path_error"] for r in results]))},
        "final_position_error_m": {"median": float(np.median([r["final_position_error"] for r in results])),
                                   "p90": float(np.percentile([r["final_position_error"] for r in results], 90))},
        "final_yaw_error_deg": {"median": float(np.degrees(np.median([r["final_yaw_error"] for r in results])))},
    }


def timer() -> float:
    return time.perf_counter()
