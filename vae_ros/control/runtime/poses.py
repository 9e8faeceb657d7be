"""Planar poses in the simulated room: random ones where the robot fits, with a chosen clearance.

Free means vae_ros.sim.geometry.collision_free (SimWorld.set_pose's rule), so a pose drawn here is one the
simulator accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import ROBOT_RADIUS, ROOM_HALF_SIZE, Footprint, clearances


def sample_free_poses(objects: Sequence[Footprint], count: int, rng: np.random.Generator,
                      min_clearance: float = ROBOT_RADIUS) -> np.ndarray:
    """(count, 3) poses [x, y, yaw] drawn uniformly over the room with at least min_clearance (centre to
    obstacle surface, >= the robot radius so the robot fits) and yaw uniform in [-pi, pi)."""
    if count < 0:
        raise ConfigError(f"pose count must be >= 0, got {count}")
    min_clearance = max(float(min_clearance), ROBOT_RADIUS)
    poses = np.empty((0, 3))
    for _ in range(1000):
        if len(poses) >= count:
            break
        batch = max(4 * (count - len(poses)), 64)
        xy = rng.uniform(-ROOM_HALF_SIZE, ROOM_HALF_SIZE, size=(batch, 2))
        ok = clearances(xy, objects) + ROBOT_RADIUS >= min_clearance  # centre to surface; >= radius: free
        yaw = rng.uniform(-np.pi, np.pi, size=(int(ok.sum()), 1))
        poses = np.concatenate([poses, np.concatenate([xy[ok], yaw], axis=1)])
    if len(poses) < count:
        raise ConfigError(f"the room has no pose with {min_clearance:.2f} m clearance; ask for less clearance")
    return poses[:count]
