"""Teach-and-repeat episodes in the simulator, in-process and faster than real time (ROS-free).

An episode is one route in one world: a random path of straight legs and turns (5-15 m, clear of walls and
objects) that a teacher drives on ground truth (a human with a joystick, in effect) while the robot records
its latents and its drifting wheel odometry (vae_ros.sim.odometry, `odom_error`); the route is taught from
what the robot recorded (vae_ros.control.runtime.route.teach_route) exactly as `vae-ros teach` does from a bag.
The robot is then put down near the route's start (up to 0.15 m aside and 10 deg turned), with fresh odometry
of another seed, in the same world under the same or another lighting, and the route follower
(vae_ros.control.runtime.route_follower, what route_follower_node runs) repeats the route on each method's
latents. Every command passes the scan safety layer, as in the nodes. Judged by ground truth only:
success = the robot ends within 0.10 m / 5 deg of where the teacher stopped, touched nothing, never left the
taught path by more than 0.3 m, and passed within 0.3 m of 98 % of it (a follower that joins the route further on
cuts it short: that is a failure).

Methods side by side on the same routes and starts: `odometry` (replay on odometry alone, started as if
exactly at the route's start: the floor), `raw_scan` and `pixels` (similarity of raw sensor data),
`image` (the packaged camera latent), `control` (the packaged LiDAR control latent with its pose head).
Relocalisation is measured apart: from random poses within 0.5 m and 15 deg of a taught pose, the follower's
global place recognition either names a keyframe (correct when it lies within 0.5 m of that taught pose) or
declines; precision = correct / named, recall = correct / queries.

Over 500 lines: an episode's teacher, repeat, judge and success rule share the Teaching record, and
`vae-ros demo --route` (vae_ros.apps.route_demo) reuses the teacher, the judge and the rule over the real nodes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
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
MIN_COVERAGE = 0.98  # share of the taught path the repeat must pass within MAX_PATH_ERROR_M (no short cuts)
RELOCALISE_RADIUS_M = 0.5
CONTROL_RATE = 10.0  # Hz: the sensor rate the nodes run at
TEACH_SPEED = 0.2  # m/s: the teacher's pace


CAMERA_SIZE = 64  # px: rendered frames for the image and pixels methods (the image model's input size)


@dataclass(frozen=True)
class Method:
    """One way of repeating: `encode(world) -> latent` (None: odometry alone) and an optional pose head."""

    name: str
    encode: Callable[[Any], np.ndarray] | None
    head: PoseReader | None = None
    camera: bool = False  # needs the rendered camera (lighting matters)
    views: Callable[[np.ndarray], np.ndarray | None] | None = None  # keyframe latents -> (V, K, D) views (turned_views)
    repeat_encode: Callable[[Any], np.ndarray] | None = None  # the repeat's encoder when not the teach's (a cut sensor)
    frame_size: int = CAMERA_SIZE  # px the camera renders for this method (its model's preprocessing takes it)

    def repeater(self) -> Callable[[Any], np.ndarray] | None:
        """What encodes during the repeat and relocalisation: repeat_encode, else the teach's encoder."""
        return self.repeat_encode if self.repeat_encode is not None else self.encode


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


def densify(waypoints: np.ndarray, step: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Waypoints (N, 2) -> (points (M, 2) about `step` m apart along the legs, their arc length (M,))."""
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


def teacher_step(dense: np.ndarray, arc: np.ndarray, progress: float, pose: tuple[float, float, float],
                 speed: float = TEACH_SPEED) -> tuple[float, tuple[float, float] | None]:
    """The teacher's command on the true pose (pure pursuit 0.3 m ahead along the dense path (M, 2) with arc
    length (M,); on the spot where the point ahead is more than 40 deg round): (progress along the path (m),
    (v, w)), or None for the command once the end is within 3 cm. Pass the returned progress back next step."""
    here = np.array(pose[:2])
    near = np.flatnonzero(np.abs(arc - progress) < 0.5)
    progress = float(arc[near[int(np.argmin(np.linalg.norm(dense[near] - here, axis=1)))]])
    left = arc[-1] - progress
    if left < 0.03:
        return progress, None
    target = dense[min(int(np.searchsorted(arc, progress + 0.3)), len(dense) - 1)]
    rel = relative_pose(pose, (target[0], target[1], 0.0))
    alpha = math.atan2(rel[1], rel[0])
    v = 0.0 if abs(alpha) > math.radians(40) else speed * math.cos(alpha) * min(1.0, left / 0.3 + 0.2)
    w = float(np.clip(2.0 * alpha, -0.8, 0.8))
    return progress, (v, w)


def drive_teach(world: Any, waypoints: np.ndarray, methods: Sequence[Method], odom_error: float, seed: int,
                speed: float = TEACH_SPEED) -> Teaching:
    """The teacher drives the waypoints on ground truth (pure pursuit on the true pose) and the robot records."""
    dense, arc = densify(waypoints)
    first_heading = math.atan2(*(waypoints[1] - waypoints[0])[::-1])
    world.set_pose(float(waypoints[0][0]), float(waypoints[0][1]), first_heading)
    odometer = Odometer(odom_error, seed)
    dt = 1.0 / CONTROL_RATE
    true_poses: list[tuple[float, float, float]] = []
    odom_poses: list[Any] = []
    stamps: list[int] = []
    latents: dict[str, list[np.ndarray]] = {m.name: [] for m in methods if m.encode is not None}
    progress, t = 0.0, 0.0
    pose = world.pose()
    for _ in range(int(arc[-1] / speed * 4 / dt) + 200):
        true_poses.append((pose.x, pose.y, pose.yaw))
        odom_poses.append(odometer.pose)
        stamps.append(int(round(t * 1e9)))
        for m in methods:
            if m.encode is not None:
                latents[m.name].append(m.encode(world))
        progress, command = teacher_step(dense, arc, progress, (pose.x, pose.y, pose.yaw), speed)
        if command is None:
            break
        world.step(*command, dt)
        t += dt
        new = world.pose()
        odometer.update(pose, new, dt)
        pose = new
    world.step(0.0, 0.0, 0.5)
    return Teaching(np.array(true_poses), np.array(odom_poses), np.array(stamps, dtype=np.int64),
                    {k: np.array(v) for k, v in latents.items()}, dense)


def route_of(teaching: Teaching, method: Method) -> Route:
    """The method's route, taught from the recording as `vae-ros teach` would, with the views its follower
    matches (as route_follower_node adds them when it loads a route)."""
    latents = teaching.latents.get(method.name)
    if latents is None:  # odometry replay: the route's poses only
        latents = np.zeros((len(teaching.stamps_ns), 1), np.float32)
    route = teach_route(teaching.stamps_ns, latents, None, teaching.stamps_ns, teaching.odom_poses)
    return route if method.views is None else replace(route, views=method.views(route.latents))


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
        encode = method.repeater()
        z = encode(world) if encode is not None else dummy
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
    # The route must be driven, not cut short: every point of the taught path passed within MAX_PATH_ERROR_M.
    driven = np.asarray(trajectory, dtype=np.float64)[:, :2]
    taught = teaching.dense_path[::10]
    covered = float(np.mean([path_distance(driven, p) <= MAX_PATH_ERROR_M for p in taught])) if len(driven) > 1 else 0.0
    return {**result_args, "final_position_error": pos, "final_yaw_error": yaw, "max_path_error": float(max(errors)),
            "mean_path_error": float(np.mean(errors)), "coverage": covered}


def succeeded(judged: dict[str, Any], collided: bool) -> bool:
    """The success rule on judge()'s result: within SUCCESS_POSITION_M / SUCCESS_YAW_RAD of the taught end,
    never more than MAX_PATH_ERROR_M off the taught path, MIN_COVERAGE of it driven, nothing touched."""
    return bool(judged["final_position_error"] <= SUCCESS_POSITION_M and judged["final_yaw_error"] <= SUCCESS_YAW_RAD
                and not collided and judged["max_path_error"] <= MAX_PATH_ERROR_M
                and judged["coverage"] >= MIN_COVERAGE)


def relocalise(world: Any, route: Route, method: Method, teaching: Teaching, rng: np.random.Generator, count: int,
               config: FollowerConfig = FollowerConfig()) -> dict[str, int]:
    """Global place recognition from `count` random poses near the taught path: accepted / correct counts."""
    encode = method.repeater()
    if encode is None:
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
        match = match_keyframes(route, np.asarray(encode(world), np.float32), None, config.separation_m)
        if match.ratio < config.ratio and match.quality >= config.min_quality:
            accepted += 1
            k = key_truth[match.keyframe]  # right when it names the place on the route the query was drawn at
            correct += math.hypot(k[0] - base[0], k[1] - base[1]) <= RELOCALISE_RADIUS_M
    return {"queries": queries, "accepted": accepted, "correct": correct}


def summarise_repeats(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not results:
        return {"episodes": 0}
    ok = [r for r in results if r["success"]]
    return {
        "episodes": len(results),
        "successes": len(ok),
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


METHODS = ("odometry", "raw_scan", "pixels", "image", "control")
# A fused camera + LiDAR model (--fused-model): taught with both sensors and repeated with both, with the
# LiDAR cut (the camera alone), or with the camera cut (the LiDAR alone). Not in `all`: it renders other frames.
FUSED_METHODS = ("fused", "fused_scan_cut", "fused_camera_cut")
ALIASES = {"lidar": "control", "scan": "control", "camera": "image", "all": ""}


def method_names(names: Sequence[str]) -> list[str]:
    """Method names with aliases resolved (lidar/scan -> control, camera -> image, all -> every method)."""
    out: list[str] = []
    for name in names:
        if name == "all":
            out.extend(METHODS)
            continue
        name = ALIASES.get(name, name)
        if name not in METHODS + FUSED_METHODS:
            raise ConfigError(f"unknown method {name!r}; expected {', '.join(METHODS + FUSED_METHODS)} or "
                              f"{', '.join(ALIASES)}")
        out.append(name)
    return list(dict.fromkeys(out))


def build_methods(names: Sequence[str], control_model: str | None = None, image_model: str | None = None,
                  backend: str = "auto", threads: int | None = 1, fused_model: str | None = None) -> list[Method]:
    """The methods to compare: the packaged control and image models unless other directories are given."""
    from vae_ros.control.evaluation.representations import (
        ModelRepresentation,
        Observations,
        PixelsRepresentation,
        RawScanRepresentation,
    )
    from vae_ros.control.runtime.control_model import ControlModel
    from vae_ros.resources import models_dir

    def observe(world: Any, camera: bool) -> Any:
        return Observations(images=world.render()[None] if camera else None,
                            scans=None if camera else world.scan()[None], poses=np.zeros((1, 3)),
                            scan_geometry=world.scan_geometry)

    methods = []
    for name in method_names(names):
        if name == "odometry":
            methods.append(Method(name, None))
        elif name == "control":
            model = ControlModel(control_model or models_dir() / "control_default", backend, threads=threads)
            methods.append(Method(name, model.latent, model.estimate, views=model.turned_views))
        elif name in FUSED_METHODS:
            methods.append(_fused_method(name, fused_model or str(models_dir() / "fused_default"), backend, threads))
        else:
            rep: Any
            if name == "raw_scan":
                rep = RawScanRepresentation()
            elif name == "pixels":
                rep = PixelsRepresentation()
            else:
                rep = ModelRepresentation(image_model or models_dir() / "image_default", backend, threads=threads)
            methods.append(Method(name, _encoder(rep, observe, camera=name != "raw_scan"), camera=name != "raw_scan"))
    return methods


def _fused_method(name: str, model_dir: str, backend: str, threads: int | None) -> Method:
    """A fused model taught with both sensors; repeated with both or with one cut (FUSED_METHODS)."""
    from vae_ros.control.evaluation.fused_eval import IMAGE_SIZE, FusedServoModel

    model = FusedServoModel(model_dir, backend, threads=threads)

    def encoder(sensors: tuple[str, ...]) -> Callable[[Any], np.ndarray]:
        def encode(world: Any) -> np.ndarray:
            mean, _ = model.fused.encode(model.inputs(world, sensors))
            return np.asarray(mean[0], dtype=np.float64)
        return encode

    both = encoder(("camera", "scan"))
    repeat = {"fused": None, "fused_scan_cut": encoder(("camera",)), "fused_camera_cut": encoder(("scan",))}[name]
    return Method(name, both, model.estimate, camera=True, repeat_encode=repeat, frame_size=IMAGE_SIZE)


def _encoder(rep: Any, observe: Callable[[Any, bool], Any], camera: bool) -> Callable[[Any], np.ndarray]:
    """One representation's encoder of the world's current view (camera or scan)."""
    def encode(world: Any) -> np.ndarray:
        return np.asarray(rep.encode(observe(world, camera))[0])
    return encode


def displaced_start(teaching: Teaching, world: Any, rng: np.random.Generator, lateral: float = 0.15,
                    along: float = 0.1, yaw: float = math.radians(10.0)) -> tuple[float, float, float]:
    """A start near the route's (true) start: up to `along` m ahead/behind, `lateral` m aside, `yaw` turned."""
    x0, y0, yaw0 = (float(v) for v in teaching.true_poses[0])
    for _ in range(50):
        da, dl, dy = rng.uniform(-1, 1, 3) * np.array([along, lateral, yaw])
        c, s = math.cos(yaw0), math.sin(yaw0)
        x, y = x0 + c * da - s * dl, y0 + s * da + c * dl
        if world.clearance(x, y) >= 0.05:
            return (x, y, wrap_angle(yaw0 + dy))
    return (x0, y0, yaw0)


def run_route_episodes(seeds: Sequence[int], routes_per_seed: int, methods: Sequence[Method],
                       lightings: Sequence[str], odom_error: float, episode_seed: int = 0,
                       relocalise_queries: int = 20, config: FollowerConfig = FollowerConfig(),
                       progress: Callable[[str], None] | None = None,
                       keep_traces: bool = True) -> dict[str, Any]:
    """Every method on the same routes and starts; camera methods under every lighting, the others under the
    first (LiDAR does not see light). -> {"repeats": [...], "relocalise": [...], "routes": [...]}."""
    from vae_ros.sim.world import SimConfig, SimWorld

    if not lightings:
        raise ConfigError("give at least one repeat lighting")
    repeats: list[dict[str, Any]] = []
    reloc: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for seed in seeds:
        # One render size per run: the largest any camera method needs (a fused model's camera expert takes
        # sim_node's 128 px frames; the image model and pixels 64 px): compare those in separate runs.
        sizes = {m.frame_size for m in methods if m.camera}
        if len(sizes) > 1:
            raise ConfigError("the fused methods render 128 px frames, the image and pixels methods 64 px: "
                              "compare them in separate runs")
        size = sizes.pop() if sizes else 16
        teach_world = SimWorld(SimConfig(seed=seed, image_width=size, image_height=size, lighting="default"))
        worlds = {light: SimWorld(SimConfig(seed=seed, image_width=size, image_height=size, lighting=light))
                  for light in lightings}
        rng = np.random.default_rng([int(seed), int(episode_seed)])
        try:
            for index in range(routes_per_seed):
                started = time.perf_counter()
                waypoints = sample_route(teach_world, rng)
                teaching = drive_teach(teach_world, waypoints, methods, odom_error, seed=int(rng.integers(2**31)))
                start = displaced_start(teaching, teach_world, rng)
                odom_seed = int(rng.integers(2**31))
                record = {"seed": seed, "route": index, "waypoints": waypoints.tolist(),
                          "taught": teaching.true_poses.tolist() if keep_traces else [], "start": list(start)}
                length = 0.0
                for light_i, light in enumerate(lightings):
                    for method in methods:
                        if light_i > 0 and not method.camera:
                            continue
                        route = route_of(teaching, method)
                        length = route.length
                        status, trajectory, lost, collided = repeat_route(
                            worlds[light], route, method, teaching, start, odom_error, odom_seed, config)
                        out = judge({"seed": seed, "route": index, "method": method.name, "lighting": light,
                                     "status": status, "collided": collided, "lost_s": lost, "keyframes": len(route),
                                     "route_length": route.length, "time_s": 0.0}, trajectory, teaching)
                        out["success"] = succeeded(out, collided)
                        if keep_traces:
                            out["trajectory"] = [list(p) for p in trajectory[::5]] + [list(trajectory[-1])]
                        repeats.append(out)
                        if relocalise_queries and method.encode is not None:
                            counts = relocalise(worlds[light], route, method, teaching,
                                                np.random.default_rng([int(seed), index, 7]), relocalise_queries, config)
                            reloc.append({"seed": seed, "route": index, "method": method.name, "lighting": light,
                                          **counts})
                record["length_m"] = length
                routes.append(record)
                if progress is not None:
                    done = [r for r in repeats if r["seed"] == seed and r["route"] == index]
                    progress(f"seed {seed} route {index + 1}/{routes_per_seed}: {length:.1f} m, "
                             + ", ".join(f"{r['method']}@{r['lighting']} {'ok' if r['success'] else 'FAIL'}"
                                         for r in done) + f" ({time.perf_counter() - started:.0f} s)")
        finally:
            teach_world.close()
            for world in worlds.values():
                world.close()
    return {"repeats": repeats, "relocalise": reloc, "routes": routes}


def summarise_relocalisation(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    queries = sum(r["queries"] for r in rows)
    accepted = sum(r["accepted"] for r in rows)
    correct = sum(r["correct"] for r in rows)
    return {"queries": queries, "precision": correct / accepted if accepted else None,
            "recall": correct / queries if queries else None}


def summary_table(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per (method, lighting): route repeats and relocalisation."""
    table: dict[str, dict[str, Any]] = {}
    keys = list(dict.fromkeys((r["method"], r["lighting"]) for r in result["repeats"]))
    for method, light in keys:
        rows = [r for r in result["repeats"] if r["method"] == method and r["lighting"] == light]
        reloc = [r for r in result["relocalise"] if r["method"] == method and r["lighting"] == light]
        table[f"{method}@{light}"] = {"method": method, "lighting": light, **summarise_repeats(rows),
                                      "relocalise": summarise_relocalisation(reloc) if reloc else None}
    return table
