"""What a 2-D LiDAR would see after a small motion: a LaserScan re-projected into a displaced sensor frame.

Latent servoing needs the interaction matrix J = dz/d(pose) at the robot's current pose, and no pose is
known at run time. For a LiDAR the sensor itself tells how the world moves under a motion: the scan's
points are re-expressed in the frame of a robot displaced by (dx, dy, dyaw) and binned again into beams,
which gives the scan that the displaced robot would (nearly) see; encoding a few such scans gives J by
central differences. What a re-projection cannot know — surfaces hidden at the original pose — only
matters for large motions, and the differences used here are a few centimetres and degrees.
"""

from __future__ import annotations

import math

import numpy as np

from vae_ros.core.errors import InputError

# Default finite-difference steps (m, m, rad): large enough to move points by more than a beam's width
# at typical ranges, small enough that occlusion changes stay rare.
DEFAULT_STEPS = (0.05, 0.05, math.radians(3.0))


def warp_scans(
    ranges: np.ndarray,
    angle_min: float,
    angle_increment: float,
    range_max: float,
    displacements: np.ndarray,
) -> np.ndarray:
    """Scans (K, beams) seen from K robot frames displaced by (dx, dy, dyaw) in the scan's own frame.

    ranges (beams,): +inf / NaN / values beyond range_max are "no return" and stay so. The output uses the
    input's beam geometry; each output beam takes the nearest re-projected point that falls in it, and a
    beam that no point falls into takes the mean of its two neighbours when both have a return (closing
    the one-beam gaps that re-sampling leaves), else +inf. The sensor is assumed at the base's rotation
    axis (true for vae_ros's simulator and most mobile bases; mount offsets are a TF concern upstream).
    """
    ranges = np.asarray(ranges, dtype=np.float64).reshape(-1)
    disp = np.asarray(displacements, dtype=np.float64).reshape(-1, 3)
    beams = ranges.size
    if beams < 3 or not (math.isfinite(angle_increment) and angle_increment > 0):
        raise InputError(f"scan warp needs >= 3 beams and a positive angle_increment, got {beams}, {angle_increment}")
    angles = angle_min + angle_increment * np.arange(beams)
    ok = np.isfinite(ranges) & (ranges > 0) & (ranges <= range_max)
    px = ranges[ok] * np.cos(angles[ok])  # (P,) points in the original frame
    py = ranges[ok] * np.sin(angles[ok])
    out = np.full((disp.shape[0], beams), np.inf)
    full_turn = abs(angle_increment * beams - 2 * math.pi) < 1e-3
    for k, (dx, dy, dyaw) in enumerate(disp):
        c, s = math.cos(dyaw), math.sin(dyaw)
        qx, qy = px - dx, py - dy  # into the displaced frame: translate, then rotate by -dyaw
        x, y = c * qx + s * qy, -s * qx + c * qy
        r = np.hypot(x, y)
        a = np.arctan2(y, x)
        idx = np.floor((a - angle_min) / angle_increment + 0.5).astype(np.int64)
        if full_turn:
            idx %= beams
        keep = (idx >= 0) & (idx < beams) & (r <= range_max)
        row = out[k]
        np.minimum.at(row, idx[keep], r[keep])
        hole = ~np.isfinite(row)
        if full_turn:
            left, right = np.roll(row, 1), np.roll(row, -1)
        else:
            left = np.concatenate([[np.inf], row[:-1]])
            right = np.concatenate([row[1:], [np.inf]])
        fill = hole & np.isfinite(left) & np.isfinite(right) & ok.any()
        row[fill] = 0.5 * (left[fill] + right[fill])
    return out.astype(np.float32)


def jacobian_displacements(steps: tuple[float, float, float] = DEFAULT_STEPS) -> np.ndarray:
    """(6, 3) displacements for central differences: +x, -x, +y, -y, +yaw, -yaw."""
    out = np.zeros((6, 3))
    for axis, step in enumerate(steps):
        out[2 * axis, axis] = step
        out[2 * axis + 1, axis] = -step
    return out


def central_difference_jacobian(latents: np.ndarray, steps: tuple[float, float, float] = DEFAULT_STEPS) -> np.ndarray:
    """(D, 3) dz/d(dx, dy, dyaw) from the (6, D) latents of jacobian_displacements(steps), in latent units per m / rad."""
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2 or latents.shape[0] != 6:
        raise InputError(f"need the (6, D) latents of the six displaced scans, got shape {latents.shape}")
    cols = [(latents[2 * a] - latents[2 * a + 1]) / (2.0 * steps[a]) for a in range(3)]
    return np.stack(cols, axis=1)
