"""The goal photo's pose from the live image and scan (vae_ros.control.runtime.image_goal): ray casting against a
scan's outline, the scan moved to another pose, and the alignment finding where a simulator photo was taken."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ros.control.runtime.image_goal import (
    CameraGeometry,
    GoalAligner,
    ray_distances,
    scan_at,
    scan_segments,
    search_goal,
)
from vae_ros.control.runtime.route import relative_pose

BEAMS = 360
INCREMENT = 2 * math.pi / BEAMS
ANGLE_MIN = -math.pi + INCREMENT / 2


def _round_room(radius: float) -> np.ndarray:
    """A circular room of `radius` around the LiDAR: every beam `radius` long."""
    return np.full(BEAMS, radius, np.float32)


def test_rays_hit_the_nearest_segment_and_miss_where_there_is_none() -> None:
    a = np.array([[1.0, -1.0], [2.0, -1.0]])
    b = np.array([[1.0, 1.0], [2.0, 1.0]])
    origins = np.zeros((1, 2))
    dirs = np.array([[[1.0, 0.0], [-1.0, 0.0], [math.cos(0.5), math.sin(0.5)]]])
    t = ray_distances(origins, dirs, a, b)[0]
    assert t[0] == pytest.approx(1.0)
    assert np.isinf(t[1])
    assert t[2] == pytest.approx(1.0 / math.cos(0.5))


def test_the_scan_moved_to_a_pose_is_what_the_lidar_would_see_there() -> None:
    ranges = _round_room(2.0)
    same = scan_at(ranges, ANGLE_MIN, INCREMENT, 0.05, 10.0, np.zeros(3))
    np.testing.assert_allclose(same, 2.0, atol=2e-3)
    moved = scan_at(ranges, ANGLE_MIN, INCREMENT, 0.05, 10.0, np.array([0.5, 0.0, math.pi / 2]))
    angles = ANGLE_MIN + INCREMENT * np.arange(BEAMS)
    # Beam 0 of the moved LiDAR points along +y of the room (turned 90 deg): from (0.5, 0), sqrt(4 - 0.25) away.
    ahead = int(np.argmin(np.abs(angles)))
    behind = int(np.argmin(np.abs(angles - math.pi / 2)))  # along -x of the room
    assert moved[ahead] == pytest.approx(math.sqrt(4 - 0.25), abs=5e-3)
    assert moved[behind] == pytest.approx(2.5, abs=5e-3)


def test_segments_skip_gaps_and_missing_returns() -> None:
    ranges = _round_room(2.0)
    ranges[10:20] = np.inf  # no return: no surface there
    a, _ = scan_segments(ranges, ANGLE_MIN, INCREMENT, 0.05, 10.0)
    assert len(a) == BEAMS - 11


@pytest.fixture(scope="module")
def sim_pair() -> dict:
    """A goal photo and, 0.45 m behind it and turned 10 deg, the live image and scan (held-out world 7919)."""
    from vae_ros.sim.world import CAMERA_FOVY_DEG, CAMERA_OFFSET, LIDAR_OFFSET, SimConfig, SimWorld

    goal = (0.3, -0.2, 0.4)
    start = (goal[0] - 0.45 * math.cos(goal[2]), goal[1] - 0.45 * math.sin(goal[2]), goal[2] + math.radians(10))
    with SimWorld(SimConfig(seed=7919, image_width=128, image_height=128)) as world:
        assert world.clearance(*goal[:2]) > 0.1 and world.clearance(*start[:2]) > 0.1
        world.set_pose(*goal)
        photo = world.render()
        world.set_pose(*start)
        live, ranges, geo = world.render(), world.scan(), world.scan_geometry
    camera = CameraGeometry(128, 128, CAMERA_FOVY_DEG, CAMERA_OFFSET, LIDAR_OFFSET[:2])
    segments = scan_segments(ranges, geo.angle_min, geo.angle_increment, geo.range_min, geo.range_max,
                             camera.lidar_xy)
    return {"photo": photo, "live": live, "segments": segments, "camera": camera,
            "truth": relative_pose(np.array(start), np.array(goal))}


def test_the_true_goal_pose_draws_the_photo_best(sim_pair: dict) -> None:
    aligner = GoalAligner(sim_pair["photo"], sim_pair["camera"])
    truth = sim_pair["truth"]
    offsets = np.array([[0.0, 0.0, 0.0], [0.15, 0.0, 0.0], [-0.15, 0.0, 0.0], [0.0, 0.15, 0.0], [0.0, -0.15, 0.0],
                        [0.0, 0.0, math.radians(8)], [0.0, 0.0, -math.radians(8)]])
    ncc, share = aligner.score(sim_pair["live"], sim_pair["segments"], truth + offsets)
    assert share[0] > 0.5
    assert ncc[0] > 0.9 and np.all(ncc[0] > ncc[1:]), ncc


def test_the_search_finds_where_the_photo_was_taken(sim_pair: dict) -> None:
    aligner = GoalAligner(sim_pair["photo"], sim_pair["camera"])
    spans = ((0.8, math.radians(40), 9), (0.2, math.radians(10), 9), (0.05, math.radians(2.5), 7))
    pose, score = search_goal(aligner, sim_pair["live"], sim_pair["segments"], np.zeros(3), spans)
    error = pose - sim_pair["truth"]
    assert math.hypot(error[0], error[1]) < 0.05 and abs(error[2]) < math.radians(3), (pose, sim_pair["truth"], score)
