"""Planar geometry of the simulated room, written once (ROS-free, no MuJoCo): its size, the robot's radius,
angle wrapping, and the one collision rule that the simulator, the pose samplers and the evaluations share.

`clearance` (one point) and `clearances` (an array of points) are the free distance of the robot's disc: from a
robot-sized disc centred at (x, y) to the nearest wall or object footprint, so < 0 means a collision and
`collision_free` is `clearance >= 0`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

ROOM_HALF_SIZE = 3.0  # m: the walls' inner faces are at |x| = ROOM_HALF_SIZE and |y| = ROOM_HALF_SIZE
ROBOT_RADIUS = 0.2  # m: the chassis is a cylinder of this radius


class Footprint(Protocol):
    """An object's disc on the floor (vae_ros.sim.world.SimObject is one)."""

    @property
    def x(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def radius(self) -> float: ...


def wrap_angle(angle: float) -> float:
    """Angle (rad) in (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))


def wrap_angles(angles: np.ndarray) -> np.ndarray:
    """Angles (rad, any shape) in (-pi, pi], element-wise; wrap_angle for arrays."""
    angles = np.asarray(angles, dtype=np.float64)
    return np.arctan2(np.sin(angles), np.cos(angles))


def clearance(x: float, y: float, objects: Sequence[Footprint]) -> float:
    """Free distance (m) from the robot's disc centred at (x, y) to the nearest wall or object footprint;
    < 0 is a collision. Add ROBOT_RADIUS for the distance from the centre to the nearest surface."""
    walls = ROOM_HALF_SIZE - max(abs(x), abs(y)) - ROBOT_RADIUS
    return min(walls, min((math.hypot(x - o.x, y - o.y) - o.radius - ROBOT_RADIUS for o in objects),
                          default=math.inf))


def clearances(xy: np.ndarray, objects: Sequence[Footprint]) -> np.ndarray:
    """(..., 2) robot centres -> (...) clearance of each (the same distance, for arrays)."""
    xy = np.asarray(xy, dtype=np.float64)
    nearest = ROOM_HALF_SIZE - np.maximum(np.abs(xy[..., 0]), np.abs(xy[..., 1])) - ROBOT_RADIUS
    for obj in objects:
        nearest = np.minimum(nearest, np.hypot(xy[..., 0] - obj.x, xy[..., 1] - obj.y) - obj.radius - ROBOT_RADIUS)
    return nearest


def collision_free(xy: np.ndarray, objects: Sequence[Footprint]) -> np.ndarray:
    """(..., 2) robot centres -> (...) bool: True where the robot's disc touches no wall and no object
    (the rule SimWorld.set_pose enforces)."""
    return clearances(xy, objects) >= 0.0
