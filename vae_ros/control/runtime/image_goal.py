"""Where a goal photo was taken, from the live camera image and the live LaserScan (pure NumPy; ROS-free).

A goal given as a camera image alone: the camera's expert gives the joint latent of the photo, but only to within
about 0.5 of latent norm (docs/FUSION.md), five times the servo's tolerance. This module finds the goal's pose
relative to the robot by direct image alignment with the LiDAR's depth: for a candidate goal pose, every pixel of
the goal photo is cast as a ray from the goal's camera into the room as the live scan outlines it (vertical walls
at the scan's hit points, a flat floor), the 3-D point projected into the live camera, and the live image sampled
there: the goal view as the robot would see it from that pose, drawn from what it sees now. The candidate whose
drawn view best matches the photo (normalised cross-correlation over the pixels both views share) is the goal
pose. The live scan moved into that pose (`scan_at`) is then the goal's scan, and its latent (the LiDAR expert's)
the goal latent: one the servo can reach to its tolerance, since the live scan there will be that scan.

Assumptions, true of the simulator's room and of most indoor floors: the surfaces the scan sees are vertical and
the floor flat; the camera's intrinsics and its pose on the robot are known (`CameraGeometry`).

`ImageGoalFinder` is the method as the controllers run it (`align+camera`, docs/FUSION.md): one implementation for
latent_servo_node / world_model_node (vae_ros.ros.nodes.goal_align) and the in-process evaluation
(vae_ros.control.evaluation.fused_goal), so that the evaluation measures what the nodes run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vae_ros.core.errors import InputError

# (half-width x, y in m, half-width yaw in rad, points per axis) of each level of the grid search: at the start (the
# whole neighbourhood of the servo's starts: 0.3-1.0 m from the goal, turned at most 45 deg) and on the way (around
# where the servo head estimates the goal).
ALIGN_WIDE = ((1.2, math.radians(60.0), 13), (0.2, math.radians(10.0), 9), (0.05, math.radians(2.5), 7))
ALIGN_LOCAL = ((0.15, math.radians(8.0), 7), (0.04, math.radians(2.0), 7))
# The wide search's best matches are told apart by how far the goal latent each gives lies from the camera expert's
# posterior of the goal image (squared Mahalanobis distance per latent dimension, times this): periodic textures
# (striped walls, a checkered floor) match in several places, the camera's latent tells them apart.
ALIGN_CAMERA_WEIGHT = 0.05
# Looking around before the search at the start (`align+look`, docs/FUSION.md): from where it starts the robot often
# sees too little of the photo's view (its heading up to 45 deg from the goal's), so it turns in place by
# +LOOK_AROUND_DEG, then to -LOOK_AROUND_DEG, at LOOK_TURN_RATE rad/s, taking a camera frame and its scan at each of
# the three headings; the wide search runs on each and the best match (its NCC less the camera's penalty) wins. Each
# view is searched on its own, so the angles need not be known: the goal latent does not depend on the view.
LOOK_AROUND_DEG = 40.0
LOOK_TURN_RATE = 0.6
# A search on the way replaces the goal only where its match is at least this good (turning toward the goal, the
# robot may see too little of the photo's view for a sound match; the goal it has then stays).
ALIGN_ACCEPT_NCC = 0.9
# Images wider than this are searched at this width (aspect kept, same vertical field of view): the search then costs
# what it costs on the simulator's 128 x 128 camera (1-3 s on a 2-core CPU) whatever the robot's camera.
ALIGN_WORK_WIDTH = 128
# Scans of more beams than this are searched with every k-th beam (the fewest k that brings them within it): the
# search's time and memory grow with the beams (its ray casting) and with their square (`scan_at`), so a scan of
# 10 000 beams (a 3-D LiDAR through pointcloud_to_laserscan at a fine increment, or a hostile publisher) would take
# gigabytes. 1440 = 0.25 deg over a full turn, finer than the 2-D LiDARs the controllers serve.
ALIGN_MAX_BEAMS = 1440
# The score of a search in which no candidate saw enough of the photo (AlignConfig.min_shared): nothing found.
NO_MATCH = -1.0


@dataclass(frozen=True)
class CameraGeometry:
    """A forward pinhole camera on the robot: image size, vertical field of view, its position in base_link
    (x forward, y left, z up; looking along +x), and the LiDAR's position in base_link (the scan's origin)."""

    width: int
    height: int
    fovy_deg: float
    offset: tuple[float, float, float]
    lidar_xy: tuple[float, float] = (0.0, 0.0)

    @property
    def focal(self) -> float:
        return (self.height / 2.0) / math.tan(math.radians(self.fovy_deg) / 2.0)


def scan_segments(ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float, range_max: float,
                  lidar_xy: tuple[float, float] = (0.0, 0.0), max_gap: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A LaserScan -> the surfaces it outlines: segments (a (S, 2), b (S, 2)) in base_link between consecutive
    returns no further than `max_gap` apart (a circular scan closes on itself)."""
    r = np.asarray(ranges, dtype=np.float64)
    angles = angle_min + angle_increment * np.arange(r.size)
    ok = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    r = np.where(ok, r, 0.0)
    pts = np.stack([lidar_xy[0] + r * np.cos(angles), lidar_xy[1] + r * np.sin(angles)], axis=1)
    nxt = np.roll(np.arange(r.size), -1)
    keep = ok & ok[nxt] & (np.linalg.norm(pts - pts[nxt], axis=1) <= max_gap)
    return pts[keep], pts[nxt][keep]


def ray_distances(origins: np.ndarray, dirs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance along unit rays (origins (K, 2), dirs (K, U, 2)) to the first segment (a, b (S, 2)); inf: none."""
    if a.shape[0] == 0:
        return np.full(dirs.shape[:2], np.inf)
    e = (b - a)[None, None]  # (1, 1, S, 2)
    d = dirs[:, :, None, :]  # (K, U, 1, 2)
    w = (a[None, :, :] - origins[:, None, :])[:, None]  # (K, 1, S, 2)
    denom = d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0]  # (K, U, S)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (w[..., 0] * e[..., 1] - w[..., 1] * e[..., 0]) / denom
        s = (w[..., 0] * d[..., 1] - w[..., 1] * d[..., 0]) / denom
    hit = (np.abs(denom) > 1e-12) & (t > 1e-3) & (s >= 0.0) & (s <= 1.0)
    return np.where(hit, t, np.inf).min(axis=2)


def _bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """image (H, W) sampled at pixel-index coordinates (u column, v row), clipped to the image."""
    h, w = image.shape
    u = np.clip(u, 0.0, w - 1.001)
    v = np.clip(v, 0.0, h - 1.001)
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - u0, v - v0
    return ((1 - fu) * (1 - fv) * image[v0, u0] + fu * (1 - fv) * image[v0, u0 + 1]
            + (1 - fu) * fv * image[v0 + 1, u0] + fu * fv * image[v0 + 1, u0 + 1])


def grey(image: np.ndarray, blur: float = 1.0, highpass: float = 0.0) -> np.ndarray:
    """(H, W[, C]) image -> (H, W) float64 grey, lightly blurred (a smoother match landscape); with highpass > 0
    less its blur at that sigma (shading that varies slowly across the image, e.g. a headlight's, drops out)."""
    import cv2

    array: np.ndarray = np.asarray(image, dtype=np.float32)
    if array.ndim == 3:
        array = array[:, :, :3].mean(axis=2, dtype=np.float32)
    if blur > 0:
        array = np.asarray(cv2.GaussianBlur(array, (0, 0), blur))
    if highpass > 0:
        array = array - np.asarray(cv2.GaussianBlur(array, (0, 0), highpass))
    return array.astype(np.float64)


@dataclass(frozen=True)
class AlignConfig:
    step: int = 4  # goal photo pixels used: every step-th row and column
    min_shared: float = 0.3  # share of those pixels the live view must see for a candidate to count
    min_range: float = 0.05  # m: points nearer the live camera than this are not drawn
    highpass: float = 0.0  # px: sigma of the slow shading removed from both images before matching (0: none)


class GoalAligner:
    """Scores candidate goal poses (x, y, yaw of the goal's base_link in the robot's, (K, 3)) by how well the live
    image, moved there through the live scan's geometry, matches the goal photo."""

    def __init__(self, goal_image: np.ndarray, camera: CameraGeometry, config: AlignConfig = AlignConfig()) -> None:
        self.camera, self.config = camera, config
        goal = grey(goal_image, highpass=config.highpass)
        if goal.shape != (camera.height, camera.width):
            import cv2

            goal = cv2.resize(goal, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
        rows = np.arange(config.step // 2, camera.height, config.step)
        cols = np.arange(config.step // 2, camera.width, config.step)
        f, cx, cy = camera.focal, camera.width / 2.0, camera.height / 2.0
        self._a = (cx - (cols + 0.5)) / f  # (U,) leftward slope of each sampled column's ray
        self._b = (cy - (rows + 0.5)) / f  # (V,) upward slope of each sampled row's ray
        self._goal = goal[np.ix_(rows, cols)]  # (V, U)

    def score(self, live_image: np.ndarray, segments: tuple[np.ndarray, np.ndarray], poses: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """(NCC (K,), share of the photo's pixels the live view sees (K,)); NCC -1 below min_shared."""
        cam = self.camera
        live = grey(live_image, highpass=self.config.highpass)
        poses = np.atleast_2d(np.asarray(poses, dtype=np.float64))
        cos, sin = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        origin = poses[:, :2] + np.stack([cos * cam.offset[0] - sin * cam.offset[1],
                                          sin * cam.offset[0] + cos * cam.offset[1]], axis=1)  # (K, 2)
        norm = np.sqrt(1.0 + self._a ** 2)  # (U,)
        local = np.stack([1.0 / norm, self._a / norm], axis=1)  # (U, 2) unit horizontal directions
        dirs = np.stack([cos[:, None] * local[None, :, 0] - sin[:, None] * local[None, :, 1],
                         sin[:, None] * local[None, :, 0] + cos[:, None] * local[None, :, 1]], axis=2)  # (K, U, 2)
        wall = ray_distances(origin, dirs, *segments)  # (K, U) horizontal distance to the wall
        b = self._b[None, :, None]  # (1, V, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            floor = np.where(b < 0, -cam.offset[2] * norm[None, None, :] / b, np.inf)  # (1, V, U)
        t = np.minimum(wall[:, None, :], floor)  # (K, V, U)
        up = b * t / norm[None, None, :]  # height above the camera
        x = origin[:, 0, None, None] + t * dirs[:, None, :, 0]
        y = origin[:, 1, None, None] + t * dirs[:, None, :, 1]
        # Into the live camera (at offset, looking along +x).
        fwd, left = x - cam.offset[0], y - cam.offset[1]
        f = cam.focal
        with np.errstate(divide="ignore", invalid="ignore"):
            u = cam.width / 2.0 - f * left / fwd - 0.5
            v = cam.height / 2.0 - f * up / fwd - 0.5
        seen = np.isfinite(t) & (fwd > self.config.min_range) & (u >= 0) & (u <= cam.width - 1) \
            & (v >= 0) & (v <= cam.height - 1)
        # Hidden from the live camera: something the live scan sees is nearer along that bearing.
        live_dirs = np.stack([fwd, left], axis=-1)
        dist = np.hypot(fwd, left)
        seen &= self._visible(segments, live_dirs, dist, seen)
        drawn = _bilinear(live, np.where(seen, u, 0.0), np.where(seen, v, 0.0))  # (K, V, U)
        goal = np.broadcast_to(self._goal, drawn.shape)
        n = seen.sum(axis=(1, 2)).astype(np.float64)
        share = n / self._goal.size
        nn = np.maximum(n, 1.0)
        gm = (goal * seen).sum(axis=(1, 2)) / nn
        dm = (drawn * seen).sum(axis=(1, 2)) / nn
        gc = np.where(seen, goal - gm[:, None, None], 0.0)
        dc = np.where(seen, drawn - dm[:, None, None], 0.0)
        ncc = (gc * dc).sum(axis=(1, 2)) / np.sqrt((gc ** 2).sum(axis=(1, 2)) * (dc ** 2).sum(axis=(1, 2)) + 1e-12)
        ncc = np.where(share >= self.config.min_shared, ncc, -1.0)
        return ncc, share

    def _visible(self, segments: tuple[np.ndarray, np.ndarray], dirs: np.ndarray, dist: np.ndarray,
                 seen: np.ndarray) -> np.ndarray:
        """Whether each point (horizontal offset from the live camera `dirs`, distance `dist`) is the first
        surface along its bearing from the live camera (a 2-cm allowance; floor points too)."""
        cam = self.camera
        bins = cam.width  # one bearing per live image column
        f = cam.focal
        cols = np.arange(bins) + 0.5
        slope = (cam.width / 2.0 - cols) / f
        norm = np.sqrt(1.0 + slope ** 2)
        column_dirs = np.stack([1.0 / norm, slope / norm], axis=1)[None]  # (1, W, 2)
        depth = ray_distances(np.array([[cam.offset[0], cam.offset[1]]]), column_dirs, *segments)[0]  # (W,)
        with np.errstate(divide="ignore", invalid="ignore"):
            col = np.clip((cam.width / 2.0 - f * dirs[..., 1] / dirs[..., 0]).astype(np.int64), 0, bins - 1)
        return ~seen | (dist <= depth[col] + 0.02)


def search_goal(aligner: GoalAligner, live_image: np.ndarray, segments: tuple[np.ndarray, np.ndarray],
                center: np.ndarray, spans: tuple[tuple[float, float, float], ...], share_weight: float = 0.0,
                penalty: Callable[[np.ndarray], np.ndarray] | None = None, rerank: int = 64
                ) -> tuple[np.ndarray, float]:
    """Coarse-to-fine grid search around `center` (x, y, yaw): each (half-width xy m, half-width yaw rad, points
    per axis) level centred on the best of the one before. The score is the NCC less share_weight x the share of
    the photo the live view does not see. With `penalty` (poses (N, 3) -> (N,)), the first level's `rerank` best
    are scored again less their penalty (e.g. how far the goal latent they give lies from the camera expert's:
    periodic textures match in several places, the camera's latent tells them apart). Returns (best pose, its
    score)."""
    best = np.asarray(center, dtype=np.float64)
    best_score = -1.0
    for level, (half_xy, half_yaw, points) in enumerate(spans):
        xs = np.linspace(-half_xy, half_xy, int(points))
        ys = np.linspace(-half_yaw, half_yaw, int(points))
        grid = np.stack(np.meshgrid(xs, xs, ys, indexing="ij"), axis=-1).reshape(-1, 3) + best
        parts = [aligner.score(live_image, segments, chunk) for chunk in np.array_split(grid, max(1, len(grid) // 128))]
        scores = np.concatenate([ncc - share_weight * (1.0 - share) for ncc, share in parts])
        if penalty is not None and level == 0:
            top = np.argsort(-scores)[:rerank]
            top = top[scores[top] > -1.0]
            if top.size:
                scores = np.full_like(scores, -np.inf)
                scores[top] = np.concatenate([ncc - share_weight * (1.0 - share) for ncc, share in parts])[top] \
                    - penalty(grid[top])
        i = int(np.argmax(scores))
        if scores[i] > best_score:
            best, best_score = grid[i], float(scores[i])
    return best, best_score


def scan_at(ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float, range_max: float,
            pose: np.ndarray, lidar_xy: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The live scan as the LiDAR would see it from `pose` (x, y, yaw of the robot there, in the robot's frame):
    the surfaces the live scan outlines, ray-cast from there on the same beams. Beams that hit none of them
    (a surface the live scan did not see) take the nearest beam's range that did."""
    a, b = scan_segments(ranges, angle_min, angle_increment, range_min, range_max, lidar_xy)
    n = np.asarray(ranges).size
    angles = angle_min + angle_increment * np.arange(n) + pose[2]
    c, s = math.cos(pose[2]), math.sin(pose[2])
    origin = np.array([[pose[0] + c * lidar_xy[0] - s * lidar_xy[1], pose[1] + s * lidar_xy[0] + c * lidar_xy[1]]])
    dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)[None]
    out = ray_distances(origin, dirs, a, b)[0]
    known = np.isfinite(out) & (out <= range_max)
    if known.any() and not known.all():
        idx = np.arange(n)
        kidx = idx[known]
        # Nearest known beam around the circle.
        d = np.abs(idx[:, None] - kidx[None, :])
        d = np.minimum(d, n - d)
        out = np.where(known, out, out[kidx[np.argmin(d, axis=1)]])
    return out.astype(np.float32)


class LaserGeometry(Protocol):
    """What a LaserScan's geometry is to the search (sensor_msgs/LaserScan has these fields)."""

    @property
    def angle_min(self) -> float: ...
    @property
    def angle_increment(self) -> float: ...
    @property
    def range_min(self) -> float: ...
    @property
    def range_max(self) -> float: ...


@dataclass(frozen=True)
class ScanGeometry:
    """A LaserScan's geometry (its message fields): beam i at angle_min + i * angle_increment."""

    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float


@dataclass(frozen=True)
class AlignedGoal:
    """A search's outcome: the goal's pose (x, y, yaw of the goal's base_link in the robot's frame when the live image
    and scan were taken), its score (the NCC of the match; the wide search with the camera's prior less its penalty;
    NO_MATCH: the photo shares too little with the live view) and the goal latent (D,): the joint latent of the live
    scan moved to that pose (the LiDAR expert) and the photo (the camera expert)."""

    pose: np.ndarray
    score: float
    latent: np.ndarray
    penalty: float = 0.0  # the wide search with the camera's prior: the penalty of the pose found

    @property
    def matched(self) -> bool:
        return self.score > NO_MATCH

    @property
    def rank(self) -> float:
        """What tells two searches' results apart (looking around): the NCC less the camera's penalty."""
        return self.score - self.penalty if self.matched else -math.inf


def best_aligned(results: list[AlignedGoal]) -> AlignedGoal:
    """Of the wide searches from several views of the same place (looking around), the best match (`rank`)."""
    if not results:
        raise ValueError("best_aligned needs at least one search result")
    return max(results, key=lambda r: r.rank)


def working_camera(camera: CameraGeometry, max_width: int = ALIGN_WORK_WIDTH) -> CameraGeometry:
    """The camera as the search sees it: at most `max_width` pixels wide, the aspect and the vertical field of view
    kept (the focal length in pixels scales with the image)."""
    if camera.width <= max_width:
        return camera
    scale = max_width / camera.width
    return CameraGeometry(max_width, max(1, int(round(camera.height * scale))), camera.fovy_deg, camera.offset,
                          camera.lidar_xy)


def to_working_size(image: np.ndarray, camera: CameraGeometry) -> np.ndarray:
    """An image (H, W[, C]) resized (area averaging) to the working camera's size; as it is when already that size.
    InputError for an image whose aspect is not the camera's (another camera, or a crop: it cannot be aligned)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"an image to align must be (H, W) or (H, W, C), got shape {image.shape}")
    height, width = image.shape[:2]
    if (height, width) == (camera.height, camera.width):
        return image
    if abs(width / height - camera.width / camera.height) > 0.02 * camera.width / camera.height:
        raise InputError(f"image of {width}x{height} pixels does not have the camera's aspect ({camera.width}x"
                         f"{camera.height} at the working size): a photo from another camera, or cropped, cannot "
                         "be aligned with the live view")
    import cv2

    return np.asarray(cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_AREA))


ScanEncoder = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class ImageGoalFinder:
    """The goal latent of a goal photo, from the live camera image and LaserScan (`align+camera`, docs/FUSION.md).

    Holds the photo's GoalAligner (at the working size), the camera expert's posterior (mean, logvar) of the photo,
    `encode_scans` (a batch of preprocessed scans (K, C, beams) -> the LiDAR expert's (mean, logvar) (K, D)) and
    `scan_spec` (the LiDAR expert's input spec). `camera`: the live camera at its own size (`working_camera` sets
    the search's). `camera_prior`: the wide search tells its best matches apart by the camera expert's posterior
    (`align+camera`); False: by the NCC alone (`align`)."""

    def __init__(self, goal_image: np.ndarray, camera: CameraGeometry, camera_posterior: tuple[np.ndarray, np.ndarray],
                 encode_scans: ScanEncoder, scan_spec: Any, camera_prior: bool = True,
                 config: AlignConfig = AlignConfig()) -> None:
        self.camera = working_camera(camera)
        self.aligner = GoalAligner(to_working_size(goal_image, self.camera), self.camera, config)
        mean, logvar = camera_posterior
        self.camera_posterior = (np.asarray(mean).reshape(1, -1), np.asarray(logvar).reshape(1, -1))  # (1, D) each
        self.encode_scans = encode_scans
        self.scan_spec = scan_spec
        self.camera_prior = camera_prior

    def wide(self, live_image: np.ndarray, ranges: np.ndarray, geometry: LaserGeometry) -> AlignedGoal:
        """The search at the start: ALIGN_WIDE around the robot, its best matches re-ranked by the camera's prior
        (camera_prior). Its score is NO_MATCH where no candidate saw enough of the photo."""
        live, segments, goal_scans = self._live(live_image, ranges, geometry)

        def camera_penalty(poses: np.ndarray) -> np.ndarray:
            mean, _ = self.encode_scans(goal_scans(poses))
            cam_mean, cam_logvar = self.camera_posterior
            d2 = np.sum((mean - cam_mean) ** 2 / np.exp(cam_logvar), axis=1) / mean.shape[1]
            return np.asarray(ALIGN_CAMERA_WEIGHT * d2)

        pose, score = search_goal(self.aligner, live, segments, np.zeros(3), ALIGN_WIDE,
                                  penalty=camera_penalty if self.camera_prior else None)
        penalty = float(camera_penalty(pose[None])[0]) if self.camera_prior and score > NO_MATCH else 0.0
        return AlignedGoal(pose, score, self._goal_latent(goal_scans, pose), penalty)

    def local(self, live_image: np.ndarray, ranges: np.ndarray, geometry: LaserGeometry, center: np.ndarray
              ) -> AlignedGoal | None:
        """The search on the way: ALIGN_LOCAL around `center` (where the controller estimates the goal, x, y, yaw in
        the robot's frame); None unless its match reaches ALIGN_ACCEPT_NCC."""
        live, segments, goal_scans = self._live(live_image, ranges, geometry)
        pose, score = search_goal(self.aligner, live, segments, np.asarray(center, dtype=np.float64), ALIGN_LOCAL)
        if score < ALIGN_ACCEPT_NCC:
            return None
        return AlignedGoal(pose, score, self._goal_latent(goal_scans, pose))

    def _live(self, live_image: np.ndarray, ranges: np.ndarray, geometry: LaserGeometry
              ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]:
        """The live image at the working size, the scan's surfaces, and poses (K, 3) -> the live scan moved to each,
        preprocessed for the LiDAR expert (K, C, beams). A scan of more than ALIGN_MAX_BEAMS beams is taken every
        k-th beam."""
        from vae_ros.core.preprocess import preprocess_scan

        live = to_working_size(live_image, self.camera)
        ranges = np.asarray(ranges, dtype=np.float32).reshape(-1)
        stride = max(1, -(-ranges.size // ALIGN_MAX_BEAMS))  # ceil: every stride-th beam (ALIGN_MAX_BEAMS)
        ranges = ranges[::stride]
        g = (float(geometry.angle_min), float(geometry.angle_increment) * stride, float(geometry.range_min),
             float(geometry.range_max))
        lidar_xy = self.camera.lidar_xy
        segments = scan_segments(ranges, *g, lidar_xy)

        def goal_scans(poses: np.ndarray) -> np.ndarray:
            return np.stack([preprocess_scan(scan_at(ranges, *g, p, lidar_xy), *g, self.scan_spec) for p in poses])

        return live, segments, goal_scans

    def _goal_latent(self, goal_scans: Callable[[np.ndarray], np.ndarray], pose: np.ndarray) -> np.ndarray:
        from vae_ros.core.fused import fuse

        experts = {"scan": self.encode_scans(goal_scans(pose[None])), "camera": self.camera_posterior}
        return np.asarray(fuse(experts)[0][0], dtype=np.float64)
