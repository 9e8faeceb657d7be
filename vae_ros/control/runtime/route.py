"""A taught route (ROS-free): keyframes of latents with the odometry poses where they were seen.

Teaching (`teach_route`) walks a recording of stamped latents and odometry, pairs each latent with the
odometry pose interpolated at its stamp, and keeps a keyframe every `spacing_m` metres or `spacing_deg`
degrees of odometry (defaults 0.25 m / 10 deg: measured on the packaged latents, a servo on a keyframe's
latent converges from within about that distance, and place recognition picks the nearest keyframe to
within 0.3 m, so consecutive keyframes keep every step of a repeat within reach of one of them). The last
latent is always a keyframe: the route ends where the teacher stopped.

Poses are in the teach run's odometry frame, drift and all: the follower (route_follower) uses them only
relative to each other, and its own odometry only for increments between latent matches, so a route taught by
one robot is repeated by another whose odometry frame has a different origin.

Refusals are one clear line each (DataError): fewer than two keyframes, latents of two sizes, a stamp gap in
which the robot moved (the route would jump), latents outside the odometry's time span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vae_ros.core.errors import DataError, InputError
from vae_ros.sim.geometry import wrap_angle, wrap_angles

ROUTE_FORMAT_VERSION = 1
DEFAULT_SPACING_M = 0.25
DEFAULT_SPACING_DEG = 10.0
MAX_GAP_S = 1.0  # s between latents during which the robot moved: the route would jump there
ODOM_REACH_S = 0.25  # s a latent may lie outside the odometry's time span and still take its nearest pose
MAX_KEYFRAMES = 100_000  # 25 km at the default spacing


@dataclass(frozen=True)
class Route:
    """K keyframes: poses (K, 3) [x, y, yaw] in the teach run's odometry frame, latents (K, D) (means),
    logvars (K, D) or None, stamps_ns (K,), and `meta` (model digest, spacing, source topics, ...)."""

    poses: np.ndarray
    latents: np.ndarray
    stamps_ns: np.ndarray
    logvars: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # (V, K, D) latents each keyframe is matched against, views[0] = latents: the keyframes' latents and those
    # of their scans turned (turned_views in route_follower.py); None: the latents alone. Not stored in a file.
    views: np.ndarray | None = None

    def __post_init__(self) -> None:
        poses = np.asarray(self.poses, dtype=np.float64)
        latents = np.asarray(self.latents, dtype=np.float32)
        if poses.ndim != 2 or poses.shape[1] != 3:
            raise DataError(f"route poses must be (K, 3), got {poses.shape}")
        if latents.ndim != 2 or latents.shape[0] != poses.shape[0] or latents.shape[1] < 1:
            raise DataError(f"route latents must be (K, D) with K = {poses.shape[0]} keyframes, got {latents.shape}")
        if poses.shape[0] < 2:
            raise DataError(f"a route needs at least two keyframes, this one has {poses.shape[0]}")
        if poses.shape[0] > MAX_KEYFRAMES:
            raise DataError(f"a route holds at most {MAX_KEYFRAMES} keyframes, this one {poses.shape[0]}")
        if not (np.all(np.isfinite(poses)) and np.all(np.isfinite(latents))):
            raise DataError("route poses or latents hold NaN or inf")
        stamps = np.asarray(self.stamps_ns, dtype=np.int64).reshape(-1)
        if stamps.shape[0] != poses.shape[0]:
            raise DataError(f"route has {poses.shape[0]} keyframes but {stamps.shape[0]} stamps")
        object.__setattr__(self, "poses", poses)
        object.__setattr__(self, "latents", latents)
        object.__setattr__(self, "stamps_ns", stamps)
        if self.logvars is not None:
            logvars = np.asarray(self.logvars, dtype=np.float32)
            if logvars.shape != latents.shape or not np.all(np.isfinite(logvars)):
                raise DataError(f"route log-variances must be finite and {latents.shape}, got {logvars.shape}")
            object.__setattr__(self, "logvars", logvars)
        if self.views is not None:
            views = np.asarray(self.views, dtype=np.float32)
            if views.ndim != 3 or views.shape[1:] != latents.shape or not np.all(np.isfinite(views)):
                raise DataError(f"route views must be finite and (V, {latents.shape[0]}, {latents.shape[1]}), "
                                f"got {views.shape}")
            object.__setattr__(self, "views", views)
        steps = np.hypot(*np.diff(poses[:, :2], axis=0).T)
        object.__setattr__(self, "_arc", np.concatenate([[0.0], np.cumsum(steps)]))

    def __len__(self) -> int:
        return int(self.poses.shape[0])

    @property
    def latent_dim(self) -> int:
        return int(self.latents.shape[1])

    @property
    def arc(self) -> np.ndarray:
        """(K,) path length from the first keyframe to each keyframe, m."""
        return self._arc  # type: ignore[attr-defined, no-any-return]

    @property
    def length(self) -> float:
        return float(self.arc[-1])


def interpolate_poses(stamps: np.ndarray, odom_stamps: np.ndarray, odom_poses: np.ndarray) -> np.ndarray:
    """Odometry poses (N, 3) at `stamps` (N,), linear between odometry samples (yaw unwrapped); held at the
    ends. `odom_stamps` ascending."""
    yaw = np.unwrap(odom_poses[:, 2])
    out = np.stack([np.interp(stamps, odom_stamps, odom_poses[:, 0]), np.interp(stamps, odom_stamps, odom_poses[:, 1]),
                    np.interp(stamps, odom_stamps, yaw)], axis=1)
    out[:, 2] = wrap_angles(out[:, 2])
    return out


def teach_route(stamps_ns: np.ndarray, latents: np.ndarray, logvars: np.ndarray | None, odom_stamps_ns: np.ndarray,
                odom_poses: np.ndarray, spacing_m: float = DEFAULT_SPACING_M,
                spacing_deg: float = DEFAULT_SPACING_DEG, max_gap_s: float = MAX_GAP_S,
                meta: dict[str, Any] | None = None) -> Route:
    """Keyframes from a recording: latents (N, D) stamped `stamps_ns` and odometry poses (M, 3) stamped
    `odom_stamps_ns` (the sensor's clock, e.g. header stamps). See the module docstring."""
    if not (math.isfinite(spacing_m) and spacing_m > 0 and math.isfinite(spacing_deg) and spacing_deg > 0):
        raise DataError(f"keyframe spacing must be positive, got {spacing_m} m / {spacing_deg} deg")
    stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2 or latents.shape[0] != stamps.shape[0]:
        raise DataError(f"latents must be (N, D) beside N stamps, got {latents.shape} and {stamps.shape}")
    if len(stamps) == 0:
        raise DataError("no latents to teach from")
    odom_t = np.asarray(odom_stamps_ns, dtype=np.int64).reshape(-1)
    odom = np.asarray(odom_poses, dtype=np.float64)
    if len(odom_t) == 0:
        raise DataError("no odometry to teach from")
    order = np.argsort(odom_t, kind="stable")
    odom_t, odom = odom_t[order], odom[order]
    order = np.argsort(stamps, kind="stable")
    stamps, latents = stamps[order], latents[order]
    if logvars is not None:
        logvars = np.asarray(logvars, dtype=np.float32)[order]
    finite = np.all(np.isfinite(latents), axis=1) & (np.all(np.isfinite(logvars), axis=1) if logvars is not None else True)
    reach = int(ODOM_REACH_S * 1e9)
    inside = (stamps >= odom_t[0] - reach) & (stamps <= odom_t[-1] + reach) & finite
    if not inside.any():
        raise DataError("no latent lies within the odometry's time span (are the stamps of latents and odometry "
                        "from the same clock?)")
    stamps, latents = stamps[inside], latents[inside]
    logvars = logvars[inside] if logvars is not None else None
    t0 = float(odom_t[0])
    poses = interpolate_poses((stamps - t0) * 1e-9, (odom_t - t0) * 1e-9, odom)
    # A gap in the latents while the robot moved: the keyframes either side would not overlap.
    gaps = np.flatnonzero(np.diff(stamps) * 1e-9 > max_gap_s)
    for i in gaps.tolist():
        moved = math.hypot(*(poses[i + 1, :2] - poses[i, :2]))
        turned = abs(wrap_angle(poses[i + 1, 2] - poses[i, 2]))
        if moved > 0.5 * spacing_m or turned > math.radians(0.5 * spacing_deg):
            raise DataError(f"a {(stamps[i + 1] - stamps[i]) * 1e-9:.1f} s gap in the latents at "
                            f"t = {(stamps[i] - stamps[0]) * 1e-9:.1f} s into the recording, while the robot moved "
                            f"{moved:.2f} m and turned {math.degrees(turned):.0f} deg, breaks the route; record it again "
                            "or teach the parts as separate routes")
    keep = [0]
    spacing_rad = math.radians(spacing_deg)
    for i in range(1, len(stamps)):
        last = poses[keep[-1]]
        if (math.hypot(poses[i, 0] - last[0], poses[i, 1] - last[1]) >= spacing_m
                or abs(wrap_angle(poses[i, 2] - last[2])) >= spacing_rad):
            keep.append(i)
    final = len(stamps) - 1
    if keep[-1] != final:
        last = poses[keep[-1]]
        near = (math.hypot(poses[final, 0] - last[0], poses[final, 1] - last[1]) < 0.3 * spacing_m
                and abs(wrap_angle(poses[final, 2] - last[2])) < 0.3 * spacing_rad)
        if near and len(keep) > 1:
            keep[-1] = final  # the route ends where the teacher stopped
        elif not near:  # (near the only keyframe: the robot never moved a spacing, refused below)
            keep.append(final)
    if len(keep) < 2:
        raise DataError(f"the robot moved less than {spacing_m:g} m / {spacing_deg:g} deg while latents were "
                        "recorded: a route needs at least two keyframes")
    idx = np.asarray(keep)
    info = dict(meta or {})
    info.update({"format": ROUTE_FORMAT_VERSION, "spacing_m": float(spacing_m), "spacing_deg": float(spacing_deg),
                 "latent_dim": int(latents.shape[1]), "keyframes": len(idx)})
    route = Route(poses[idx], latents[idx], stamps[idx], logvars[idx] if logvars is not None else None, info)
    route.meta["length_m"] = route.length
    return route


def join_routes(routes: list[Route], max_join_m: float = 0.5) -> Route:
    """One route from consecutive parts (several bags of one drive): each part is moved so that it starts where
    the previous one ended (odometry of separate recordings has separate origins); parts of different latent
    sizes or models are refused."""
    if not routes:
        raise DataError("no route parts to join")
    first = routes[0]
    poses, latents, logvars, stamps = [first.poses], [first.latents], [first.logvars], [first.stamps_ns]
    for n, part in enumerate(routes[1:], start=1):
        if part.latent_dim != first.latent_dim:
            raise DataError(f"route part {n + 1} has {part.latent_dim}-D latents, part 1 {first.latent_dim}-D: "
                            "latents of two models")
        digest = part.meta.get("model_sha256")
        if digest and first.meta.get("model_sha256") and digest != first.meta["model_sha256"]:
            raise DataError(f"route part {n + 1} was taught with another model (weights sha256 {str(digest)[:12]}...)")
        end = poses[-1][-1]
        start = part.poses[0]
        # Part n begins where part n-1 ended, unless its own odometry continues the previous one.
        if math.hypot(start[0] - end[0], start[1] - end[1]) > max_join_m:
            dyaw = wrap_angle(end[2] - start[2])
            c, s = math.cos(dyaw), math.sin(dyaw)
            rel = part.poses[:, :2] - start[:2]
            moved = np.stack([end[0] + c * rel[:, 0] - s * rel[:, 1], end[1] + s * rel[:, 0] + c * rel[:, 1],
                              wrap_angles(part.poses[:, 2] + dyaw)], axis=1)
        else:
            moved = part.poses
        poses.append(moved[1:])
        latents.append(part.latents[1:])
        logvars.append(part.logvars[1:] if part.logvars is not None else None)
        stamps.append(part.stamps_ns[1:])
    keep_logvars = all(lv is not None for lv in logvars)
    meta = dict(first.meta)
    meta["parts"] = len(routes)
    route = Route(np.concatenate(poses), np.concatenate(latents), np.concatenate(stamps),
                  np.concatenate([lv for lv in logvars if lv is not None]) if keep_logvars else None, meta)
    route.meta["keyframes"] = len(route)
    route.meta["length_m"] = route.length
    return route


def relative_pose(a: np.ndarray | tuple[float, float, float], b: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """Pose b expressed in the frame of pose a: (dx, dy, dyaw)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    c, s = math.cos(a[2]), math.sin(a[2])
    return np.array([c * dx + s * dy, -s * dx + c * dy, wrap_angle(b[2] - a[2])])


def compose(a: np.ndarray | tuple[float, float, float], rel: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """Pose a moved by `rel` expressed in a's frame."""
    c, s = math.cos(a[2]), math.sin(a[2])
    return np.array([a[0] + c * rel[0] - s * rel[1], a[1] + s * rel[0] + c * rel[1], wrap_angle(a[2] + rel[2])])


def invert(rel: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """The inverse of a relative pose: where a sits seen from b, given b seen from a."""
    c, s = math.cos(rel[2]), math.sin(rel[2])
    return np.array([-(c * rel[0] + s * rel[1]), -(-s * rel[0] + c * rel[1]), wrap_angle(-rel[2])])


def check_latent(route: Route, z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float32).reshape(-1)
    if z.size != route.latent_dim:
        raise InputError(f"latent has {z.size} dimensions, the route's model {route.latent_dim}")
    if not np.all(np.isfinite(z)):
        raise InputError("latent holds NaN or inf")
    return z
