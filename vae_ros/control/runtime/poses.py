"""Planar poses in the simulated room: which are free for the robot, how far they are from obstacles.

The collision rule is SimWorld.set_pose's (inside the walls by the robot radius, off every object's footprint
by the robot radius), vectorised, so a pose this module calls free is one the simulator accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vae_ros.core.errors import ConfigError
from vae_ros.sim.world import ROBOT_RADIUS, ROOM_HALF_SIZE, SimObject


def collision_free(xy: np.ndarray, objects: Sequence[SimObject]) -> np.ndarray:
    """(..., 2) positions -> (...) bool: True where SimWorld.set_pose accepts the robot's centre."""
    xy = np.asarray(xy, dtype=np.float64)
    limit = ROOM_HALF_SIZE - ROBOT_RADIUS
    free = (np.abs(xy[..., 0]) <= limit) & (np.abs(xy[..., 1]) <= limit)
    for obj in objects:
        free &= np.hypot(xy[..., 0] - obj.x, xy[..., 1] - obj.y) >= obj.radius + ROBOT_RADIUS
    return free


def clearance(xy: np.ndarray, objects: Sequence[SimObject]) -> np.ndarray:
    """(..., 2) positions -> (...) distance from the robot's centre to the nearest wall or object surface (m)."""
    xy = np.asarray(xy, dtype=np.float64)
    nearest = np.minimum(ROOM_HALF_SIZE - np.abs(xy[..., 0]), ROOM_HALF_SIZE - np.abs(xy[..., 1]))
    for obj in objects:
        nearest = np.minimum(nearest, np.hypot(xy[..., 0] - obj.x, xy[..., 1] - obj.y) - obj.radius)
    return nearest


def sample_free_poses(objects: Sequence[SimObject], count: int, rng: np.random.Generator,
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
        ok = (clearance(xy, objects) >= min_clearance) & collision_free(xy, objects)
        yaw = rng.uniform(-np.pi, np.pi, size=(int(ok.sum()), 1))
        poses = np.concatenate([poses, np.concatenate([xy[ok], yaw], axis=1)])
    if len(poses) < count:
        raise ConfigError(f"the room has no pose with {min_clearance:.2f} m clearance; ask for less clearance")
    return poses[:count]
