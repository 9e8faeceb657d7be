"""Repeating a taught route on live latents (ROS-free, pure): localise by latent similarity, drive the path.

The follower keeps one estimate: the robot's pose in the route's frame (the teach run's odometry frame).
Each control step
1. moves the estimate by the odometry increment since the last step (odometry is trusted only for short
   increments; its frame and its drift do not matter);
2. matches the live latent against the keyframes within `window_m` of path length around the estimate's
   progress (the whole route when there is no estimate yet: place recognition, accepted only when the best
   match is distinctive, by a ratio test against the best match elsewhere on the route; the first time, a
   confident match near the route's start is preferred, see `start_factor`);
3. turns the match into a measured pose: the keyframe's pose moved by the relative pose the representation's
   pose head reads from (live latent, keyframe latent) (vae_ros.control.runtime.pose_head; offset and
   heading); a representation without a head measures the keyframe's own pose (progress and heading only);
4. blends the measurement into the estimate (`correction`) unless it is an outlier (`gate_m`, `gate_rad`);
5. drives a pure-pursuit arc toward the point `lookahead` metres further along the taught path, and on the
   last stretch a coarse-to-fine approach of the last keyframe (the servo's unicycle law,
   vae_ros.control.runtime.servo.unicycle_command), until the estimate is within `goal_tolerance` /
   `yaw_tolerance` of it for `settle_steps` steps: DONE.
Without a confident match for `lost_timeout` seconds the follower is LOST and commands zero; it keeps
matching (in the window and over the whole route) and resumes when a confident match returns. Velocity and
acceleration limits apply last. `follower_step(state, route, z, odom, dt, config, head) -> (state, command)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vae_ros.control.runtime.route import Route, check_latent, compose, invert, relative_pose
from vae_ros.control.runtime.servo import ServoConfig, limit_command, unicycle_command
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.sim.geometry import wrap_angle

LOCALISING = "localising"  # no place on the route yet (place recognition over all keyframes)
FOLLOWING = "following"
LOST = "lost"  # no confident match for lost_timeout: stopped, still matching
DONE = "done"

# (live latent, keyframe latent) -> the keyframe's pose in the robot frame (dx, dy, dyaw); e.g. a pose head
PoseReader = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Turns (degrees) of each keyframe's scan that the follower also matches (turned_views): a robot turned by up
# to about 15 degrees from where the teacher looked still finds the keyframe. Measured on development seeds
# (docs/CONTROL.md, "Measured: vae-ros eval-route"): relocalisation recall 80 % -> 92 %, precision 94 % -> 97 %;
# +-20 or +-30 degrees did worse.
TURNS_DEG = (-15.0, -10.0, -5.0, 5.0, 10.0, 15.0)


def turned_views(latents: np.ndarray, decode: Callable[[np.ndarray], np.ndarray],
                 encode: Callable[[np.ndarray], np.ndarray], turns_deg: tuple[float, ...] = TURNS_DEG,
                 free: float = 0.999) -> np.ndarray:
    """(1 + T, K, D): the keyframes' latents and the latents their scans would have seen turned by each angle.

    For a full-turn LiDAR model: each latent is decoded to its scan (K, 1, beams) of normalised ranges, the
    scan is turned (rolled by whole beams), and encoded again (`encode` takes the model's (K, 2, beams) input:
    range and validity, bins at `free` or beyond read as no return); the decode-encode round trip's own offset
    (latent - encode(decode(latent))) is added back, so that a turn of 0 gives the latent itself."""
    latents = np.asarray(latents, dtype=np.float32)
    ranges = np.asarray(decode(latents), dtype=np.float32).reshape(len(latents), -1)  # (K, beams)
    beams = ranges.shape[1]

    def encoded(r: np.ndarray) -> np.ndarray:
        x = np.stack([r, (r < free).astype(np.float32)], axis=1)
        return np.asarray(encode(x), dtype=np.float32).reshape(latents.shape)

    offset = latents - encoded(ranges)
    views = [latents]
    for turn in turns_deg:
        shift = int(round(turn / 360.0 * beams))
        views.append(encoded(np.roll(ranges, shift, axis=1)) + offset)
    return np.stack(views)


def full_turn_scan_model(config: Any) -> bool:
    """True for a LiDAR (scan) model whose bins cover the full turn: only its scans can be turned (a turned
    scan of a partial one would need beams it never saw)."""
    spec = getattr(config, "scan_spec", None)
    if getattr(config, "modality", None) != "scan" or spec is None:
        return False
    return abs((spec.angle_max - spec.angle_min) - 2.0 * math.pi) <= 2.0 * math.pi / spec.beams


def scan_turned_views(backend: Any, config: Any, latents: np.ndarray,
                      turns_deg: tuple[float, ...] = TURNS_DEG) -> np.ndarray | None:
    """turned_views for a model directory's backend (vae_ros.core.backends) and config, or None unless it is a
    full-turn LiDAR model (full_turn_scan_model)."""
    if not full_turn_scan_model(config):
        return None
    return turned_views(latents, backend.decode, lambda x: backend.encode(x)[0], turns_deg)


def keyframe_distances(route: Route, z: np.ndarray) -> np.ndarray:
    """(K,) latent distance of z to each keyframe: to its nearest view where the route has views."""
    if route.views is None:
        return np.asarray(np.linalg.norm(route.latents - z[None, :], axis=1))
    return np.asarray(np.linalg.norm(route.views - z[None, None, :], axis=2).min(axis=0))


@dataclass(frozen=True)
class FollowerConfig:
    max_linear: float = 0.25  # m/s
    max_angular: float = 0.8  # rad/s
    max_linear_accel: float = 0.5  # m/s^2
    max_angular_accel: float = 2.0  # rad/s^2
    lookahead: float = 0.35  # m along the path ahead of the robot's projection
    angular_gain: float = 2.0  # 1/s on the heading error to the lookahead point
    turn_in_place: float = math.radians(50.0)  # a lookahead point further round than this: turn on the spot
    window_m: float = 1.0  # path length each side of the estimate searched for the match
    correction: float = 0.3  # weight of a match's measured pose against the odometry prediction, per step
    gate_m: float = 0.5  # a measured pose further than this from the prediction is an outlier ...
    gate_rad: float = math.radians(35.0)  # ... or turned further than this
    min_quality: float = 0.25  # match quality (1 - best / median keyframe distance) that counts as confident
    ratio: float = 0.8  # place recognition: best distance / best distance elsewhere (> separation) must be under
    separation_m: float = 0.75  # "elsewhere" on the route for the ratio test
    # The first localisation prefers the route's start (a repeat starts at the beginning, and a route that
    # passes its start again looks the same there): a confident match within window_m of the start is taken
    # when its distance is within start_factor of the best anywhere. 0: place recognition over all keyframes.
    start_factor: float = 3.0
    lost_timeout: float = 3.0  # s without a confident match before stopping
    final_radius: float = 0.45  # m of path left where the approach of the last keyframe takes over
    goal_tolerance: float = 0.04  # m: the estimate this close to the last keyframe ...
    yaw_tolerance: float = math.radians(2.5)  # ... and turned this little, for settle_steps steps: done
    settle_steps: int = 3
    max_odom_step: float = 0.5  # m (or rad) of odometry in one step beyond which odometry jumped: relocalise

    def validate(self) -> None:
        for name in ("max_linear", "max_angular", "max_linear_accel", "max_angular_accel", "lookahead",
                     "angular_gain", "turn_in_place", "window_m", "gate_m", "gate_rad", "separation_m",
                     "lost_timeout", "final_radius", "goal_tolerance", "yaw_tolerance", "max_odom_step"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"route follower {name} must be a positive number, got {value}")
        for name in ("correction", "min_quality", "ratio"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 1):
                raise ConfigError(f"route follower {name} must be in (0, 1], got {value}")
        if self.settle_steps < 1:
            raise ConfigError("route follower settle_steps must be >= 1")


@dataclass(frozen=True)
class FollowerState:
    status: str = LOCALISING
    pose: tuple[float, float, float] | None = None  # the robot in the route frame (None: not localised)
    odom: tuple[float, float, float] | None = None  # the odometry pose at the last step
    progress: float = 0.0  # m of path up to the robot's projection on it
    lateral: float = 0.0  # m from the path (left positive)
    keyframe: int = 0  # best-matching keyframe at the last step
    quality: float = 0.0  # that match's quality (1 - best / median distance over the route), 0 when none
    confident: bool = False
    since_match: float = 0.0  # s since the last confident match
    command: tuple[float, float] = (0.0, 0.0)
    final: bool = False  # approaching the last keyframe
    fine: bool = False
    backwards: bool = False
    settled: int = 0
    localised: bool = False  # found its place on the route once (the start prior applies only before)
    reason: str = ""  # why the last step commanded zero, for logs


@dataclass(frozen=True)
class Match:
    keyframe: int
    distance: float
    quality: float
    ratio: float  # best / best elsewhere on the route (1: not distinctive)


def match_keyframes(route: Route, z: np.ndarray, candidates: np.ndarray | None, separation_m: float) -> Match:
    """The best keyframe among `candidates` (indices; None = all) by latent distance, with its quality against
    the whole route and the ratio against the best keyframe further than `separation_m` along the path."""
    dist = keyframe_distances(route, z)
    pool = np.arange(len(route)) if candidates is None else candidates
    best = int(pool[int(np.argmin(dist[pool]))])
    median = float(np.median(dist))
    quality = 1.0 - float(dist[best]) / median if median > 0 else 0.0
    far = np.abs(route.arc - route.arc[best]) > separation_m
    ratio = float(dist[best] / dist[far].min()) if far.any() and dist[far].min() > 0 else 1.0
    return Match(best, float(dist[best]), quality, ratio)


def measured_pose(route: Route, match: Match, z: np.ndarray, head: PoseReader | None) -> np.ndarray:
    """The robot's pose in the route frame that the match says: the keyframe's pose moved by the inverse of the
    keyframe's pose in the robot frame (head), or the keyframe's pose itself without a head."""
    key = route.poses[match.keyframe]
    if head is None:
        return key.copy()
    rel = np.asarray(head(z, route.latents[match.keyframe]), dtype=np.float64).reshape(-1)
    if rel.shape != (3,) or not np.all(np.isfinite(rel)):
        raise InputError("pose head gave no finite relative pose")
    return compose(key, invert(rel))


def project(route: Route, pose: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """(progress, lateral offset): the nearest point of the taught path between path lengths lo and hi."""
    arc, xy = route.arc, route.poses[:, :2]
    first = max(int(np.searchsorted(arc, lo, side="right")) - 1, 0)
    last = min(int(np.searchsorted(arc, hi, side="left")), len(route) - 1)
    best = (math.inf, 0.0, 0.0)
    for i in range(first, max(last, first + 1)):
        a, b = xy[i], xy[min(i + 1, len(route) - 1)]
        seg = b - a
        length2 = float(seg @ seg)
        t = 0.0 if length2 == 0 else min(max(float((pose[:2] - a) @ seg) / length2, 0.0), 1.0)
        point = a + t * seg
        gap = float(np.hypot(*(pose[:2] - point)))
        if gap < best[0]:
            cross = float(seg[0] * (pose[1] - a[1]) - seg[1] * (pose[0] - a[0]))
            side = 1.0 if cross >= 0 else -1.0
            best = (gap, arc[i] + t * math.sqrt(length2), side * gap)
    return best[1], best[2]


def point_at(route: Route, s: float) -> np.ndarray:
    """(x, y) of the taught path at path length s (clamped to the route)."""
    arc = route.arc
    s = min(max(s, 0.0), float(arc[-1]))
    i = min(max(int(np.searchsorted(arc, s, side="right")) - 1, 0), len(route) - 2)
    span = arc[i + 1] - arc[i]
    t = 0.0 if span <= 0 else (s - arc[i]) / span
    return route.poses[i, :2] + t * (route.poses[i + 1, :2] - route.poses[i, :2])


def _blend(pose: np.ndarray, measured: np.ndarray, weight: float) -> np.ndarray:
    return np.array([pose[0] + weight * (measured[0] - pose[0]), pose[1] + weight * (measured[1] - pose[1]),
                     wrap_angle(pose[2] + weight * wrap_angle(measured[2] - pose[2]))])


def _stopped(state: FollowerState, config: FollowerConfig, dt: float, **changes: object) -> tuple[FollowerState, tuple[float, float]]:
    v = limit_command(0.0, state.command[0], config.max_linear, config.max_linear_accel * 4, dt)
    w = limit_command(0.0, state.command[1], config.max_angular, config.max_angular_accel * 4, dt)
    new = replace(state, command=(v, w), **changes)  # type: ignore[arg-type]
    return new, (v, w)


def follower_step(state: FollowerState, route: Route, z: np.ndarray, odom: tuple[float, float, float] | None,
                  dt: float, config: FollowerConfig, head: PoseReader | None = None) -> tuple[FollowerState, tuple[float, float]]:
    """One control step on the live latent `z` and the odometry pose `odom` (any frame; None: no odometry)."""
    if not (math.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive number of seconds, got {dt}")
    z = check_latent(route, z)
    if state.status == DONE:
        return _stopped(state, config, dt, reason="route done")
    odom_pose = None if odom is None else np.asarray(odom, dtype=np.float64).reshape(3)
    if odom_pose is not None and not np.all(np.isfinite(odom_pose)):
        raise InputError("odometry pose holds NaN or inf")
    pose = None if state.pose is None else np.asarray(state.pose)
    if pose is not None and state.odom is not None and odom_pose is not None:
        step = relative_pose(np.asarray(state.odom), odom_pose)
        if math.hypot(step[0], step[1]) > config.max_odom_step or abs(step[2]) > config.max_odom_step:
            # An odometry jump (reset, another source): the increment is meaningless; find the place again.
            return _stopped(state, config, dt, pose=None, odom=tuple(odom_pose), status=LOCALISING, confident=False,
                            reason=f"odometry jumped {math.hypot(step[0], step[1]):.2f} m / "
                                   f"{math.degrees(abs(step[2])):.0f} deg in one step: finding the place on the route again")
        pose = compose(pose, step)
    odom_t = None if odom_pose is None else (float(odom_pose[0]), float(odom_pose[1]), float(odom_pose[2]))

    if pose is None:
        match = match_keyframes(route, z, None, config.separation_m)
        if config.start_factor > 0 and not state.localised:
            start = match_keyframes(route, z, np.flatnonzero(route.arc <= config.window_m), config.separation_m)
            if start.quality >= config.min_quality and start.distance <= config.start_factor * match.distance:
                match = replace(start, ratio=0.0)
        if match.ratio >= config.ratio or match.quality < config.min_quality:
            return _stopped(state, config, dt, odom=odom_t, keyframe=match.keyframe, quality=match.quality,
                            confident=False, since_match=state.since_match + dt, status=LOCALISING,
                            reason="no distinctive match on the route yet")
        pose = measured_pose(route, match, z, head)
        progress = float(route.arc[match.keyframe])
        confident = True
        state = replace(state, localised=True)
    else:
        lo, hi = state.progress - config.window_m, state.progress + config.window_m
        window = np.flatnonzero((route.arc >= lo) & (route.arc <= hi))
        if window.size == 0:
            window = np.array([int(np.argmin(np.abs(route.arc - state.progress)))])
        match = match_keyframes(route, z, window, config.separation_m)
        confident = match.quality >= config.min_quality
        if state.status == LOST and not confident:
            # Lost: the place may be anywhere; a distinctive match over the whole route also brings it back.
            wide = match_keyframes(route, z, None, config.separation_m)
            if wide.quality >= config.min_quality and wide.ratio < config.ratio:
                match, confident = wide, True
                pose = measured_pose(route, match, z, head)
        if confident:
            measured = measured_pose(route, match, z, head)
            gap = math.hypot(measured[0] - pose[0], measured[1] - pose[1])
            if gap <= config.gate_m and abs(wrap_angle(measured[2] - pose[2])) <= config.gate_rad:
                weight = config.correction
                pose = _blend(pose, measured, weight)
            elif state.status != LOST:
                confident = False  # an outlier: odometry carries the estimate
            else:
                pose = measured
        progress = state.progress
    since = 0.0 if confident else state.since_match + dt
    progress, lateral = project(route, pose, progress - 0.5 * config.window_m, progress + config.window_m)
    pose_t = (float(pose[0]), float(pose[1]), float(pose[2]))
    common = dict(pose=pose_t, odom=odom_t, progress=progress, lateral=lateral, keyframe=match.keyframe,
                  quality=match.quality, confident=confident, since_match=since)
    if since > config.lost_timeout:
        return _stopped(state, config, dt, status=LOST, reason=f"no confident match for {since:.1f} s", **common)

    # Drive: pure pursuit along the path, then the approach of the last keyframe.
    left = route.length - progress
    final = state.final or left <= config.final_radius
    goal = route.poses[-1]
    if final:
        estimate = relative_pose(pose, goal)  # the last keyframe in the robot frame
        servo = ServoConfig(gain=1.0, angular_gain=config.angular_gain, max_linear=config.max_linear,
                            max_angular=config.max_angular)
        v, w, fine, backwards = unicycle_command(estimate, state.fine, state.backwards, servo)
        close = math.hypot(estimate[0], estimate[1]) <= config.goal_tolerance and abs(estimate[2]) <= config.yaw_tolerance
        settled = state.settled + 1 if close else 0
        if settled >= config.settle_steps:
            return _stopped(state, config, dt, status=DONE, final=True, settled=settled, reason="route done", **common)
        if close:
            v, w = 0.0, 0.0
        state = replace(state, fine=fine, backwards=backwards, settled=settled, final=True)
    else:
        target = point_at(route, progress + config.lookahead)
        rel = relative_pose(pose, np.array([target[0], target[1], 0.0]))
        alpha = math.atan2(rel[1], rel[0])
        distance = math.hypot(rel[0], rel[1])
        if abs(alpha) > config.turn_in_place:
            v, w = 0.0, config.angular_gain * alpha
        else:
            v = config.max_linear * max(math.cos(alpha), 0.0) * min(1.0, left / config.final_radius + 0.3)
            w = 2.0 * v * math.sin(alpha) / max(distance, 1e-3) + 0.5 * config.angular_gain * alpha * (1.0 - v / config.max_linear)
    v = limit_command(v, state.command[0], config.max_linear, config.max_linear_accel, dt)
    w = limit_command(w, state.command[1], config.max_angular, config.max_angular_accel, dt)
    return replace(state, status=FOLLOWING, command=(v, w), final=final, reason="", **common), (v, w)  # type: ignore[arg-type]
