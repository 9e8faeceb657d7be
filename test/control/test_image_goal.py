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


# -- ImageGoalFinder: the method as the nodes and the evaluation run it (`align+camera`) ------------------------------
def _finder_case(size: int, fused: object) -> dict:
    """World 7919 (held out): the goal photo, and from a start 0.45 m behind it, 0.2 m aside and turned 15 deg (the
    views overlap) the live image and scan, all rendered at size x size; the fused latent of both sensors at the goal
    (the goal taught on the spot) and the camera expert's posterior of the photo."""
    from vae_ros.core.fused import fuse
    from vae_ros.core.preprocess import preprocess_image, preprocess_scan
    from vae_ros.sim.world import SimConfig, SimWorld

    goal = (0.3, -0.2, 0.4)
    c, s = math.cos(goal[2]), math.sin(goal[2])
    start = (goal[0] - 0.45 * c + 0.2 * s, goal[1] - 0.45 * s - 0.2 * c, goal[2] + math.radians(15))
    image_spec, scan_spec = fused.configs["camera"].image_spec, fused.configs["scan"].scan_spec  # type: ignore[attr-defined]
    with SimWorld(SimConfig(seed=7919, image_width=size, image_height=size)) as world:
        assert world.clearance(*goal[:2]) > 0.1 and world.clearance(*start[:2]) > 0.1
        geo = world.scan_geometry
        world.set_pose(*goal)
        photo, goal_ranges = world.render(), world.scan()
        world.set_pose(*start)
        live, ranges = world.render(), world.scan()
    encode = fused.encode_sensor  # type: ignore[attr-defined]
    camera = encode("camera", preprocess_image(photo, image_spec)[None])
    goal_scan = encode("scan", preprocess_scan(goal_ranges, geo.angle_min, geo.angle_increment, geo.range_min,
                                                geo.range_max, scan_spec)[None])
    return {"photo": photo, "live": live, "ranges": ranges, "geometry": geo, "camera_posterior": camera,
            "z_true": fuse({"scan": goal_scan, "camera": camera})[0][0],
            "truth": relative_pose(np.array(start), np.array(goal))}


@pytest.fixture(scope="module")
def fused_model() -> object:
    from vae_ros.core.fused import FusedModel, is_fused_model
    from vae_ros.resources import models_dir

    if not is_fused_model(models_dir() / "fused_default"):
        pytest.skip("models/fused_default not built")
    return FusedModel(models_dir() / "fused_default", "onnxruntime", threads=1)


def _finder(case: dict, fused: object) -> object:
    from vae_ros.control.runtime.image_goal import ImageGoalFinder
    from vae_ros.sim.world import CAMERA_FOVY_DEG, CAMERA_OFFSET, LIDAR_OFFSET

    height, width = case["live"].shape[:2]
    camera = CameraGeometry(width, height, CAMERA_FOVY_DEG, CAMERA_OFFSET, LIDAR_OFFSET[:2])
    return ImageGoalFinder(case["photo"], camera, case["camera_posterior"],
                           lambda batch: fused.encode_sensor("scan", batch),  # type: ignore[attr-defined]
                           fused.configs["scan"].scan_spec)  # type: ignore[attr-defined]


def test_the_finder_puts_the_goal_where_the_photo_was_taken_and_its_latent_near_the_taught_one(
        fused_model: object) -> None:
    from vae_ros.control.runtime.image_goal import ALIGN_ACCEPT_NCC

    case = _finder_case(128, fused_model)
    finder = _finder(case, fused_model)
    found = finder.wide(case["live"], case["ranges"], case["geometry"])  # type: ignore[attr-defined]
    error = found.pose - case["truth"]
    assert found.matched
    assert math.hypot(error[0], error[1]) < 0.10 and abs(error[2]) < math.radians(5), (found.pose, case["truth"])
    # Its goal latent lies much nearer the latent of both sensors at the goal than the camera expert's does.
    aligned_error = float(np.linalg.norm(found.latent - case["z_true"]))
    camera_error = float(np.linalg.norm(case["camera_posterior"][0][0] - case["z_true"]))
    assert aligned_error < 0.5 * camera_error, (aligned_error, camera_error)
    # On the way: a search around a slightly wrong estimate comes back to the same pose, with a sound match.
    near = finder.local(case["live"], case["ranges"], case["geometry"],  # type: ignore[attr-defined]
                        case["truth"] + np.array([0.08, -0.05, math.radians(4)]))
    assert near is not None and near.score >= ALIGN_ACCEPT_NCC
    error = near.pose - case["truth"]
    assert math.hypot(error[0], error[1]) < 0.10 and abs(error[2]) < math.radians(5), (near.pose, case["truth"])
    # Around a place the photo was not taken, nothing is accepted (the goal the controller has then stays).
    assert finder.local(case["live"], case["ranges"], case["geometry"],  # type: ignore[attr-defined]
                        case["truth"] + np.array([0.0, 0.6, math.radians(40)])) is None


def test_a_larger_camera_is_searched_at_the_working_size_and_finds_the_same_pose(fused_model: object) -> None:
    from vae_ros.control.runtime.image_goal import ALIGN_WORK_WIDTH

    small, large = _finder_case(128, fused_model), _finder_case(256, fused_model)
    found = {}
    for name, case in (("small", small), ("large", large)):
        finder = _finder(case, fused_model)
        assert finder.camera.width == ALIGN_WORK_WIDTH  # type: ignore[attr-defined]
        found[name] = finder.wide(case["live"], case["ranges"], case["geometry"])  # type: ignore[attr-defined]
    difference = found["large"].pose - found["small"].pose
    assert math.hypot(difference[0], difference[1]) < 0.04 and abs(difference[2]) < math.radians(2), found
    error = found["large"].pose - large["truth"]
    assert math.hypot(error[0], error[1]) < 0.10 and abs(error[2]) < math.radians(5)


def test_a_photo_of_another_aspect_is_refused() -> None:
    from vae_ros.control.runtime.image_goal import to_working_size, working_camera
    from vae_ros.core.errors import InputError

    camera = working_camera(CameraGeometry(640, 480, 60.0, (0.2, 0.0, 0.3)))
    assert (camera.width, camera.height) == (128, 96)
    assert to_working_size(np.zeros((480, 640, 3), np.uint8), camera).shape == (96, 128, 3)
    with pytest.raises(InputError, match="aspect"):
        to_working_size(np.zeros((128, 128, 3), np.uint8), camera)


def test_a_scan_of_many_beams_is_searched_in_bounded_memory_and_finds_the_same_pose(fused_model: object) -> None:
    """A LaserScan of 7200 beams (0.05 deg: what pointcloud_to_laserscan makes of a 3-D LiDAR at a fine increment, or
    anyone who publishes on `scan`) costs the search what a scan of a few hundred beams does: its memory grew with the
    beams (the ray casting) and with their square (the scan moved to a pose), gigabytes at 10 000 beams."""
    import tracemalloc

    from vae_ros.control.runtime.image_goal import ScanGeometry

    case = _finder_case(128, fused_model)
    geo, factor = case["geometry"], 20
    fine = geo.angle_increment / factor
    dense = np.repeat(np.asarray(case["ranges"], np.float32), factor)  # each beam as `factor` beams across its cell
    dense_geo = ScanGeometry(geo.angle_min - geo.angle_increment / 2 + fine / 2, fine, geo.range_min, geo.range_max)
    finder = _finder(case, fused_model)
    tracemalloc.start()
    try:
        found = finder.wide(case["live"], dense, dense_geo)  # type: ignore[attr-defined]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 400e6, f"{peak / 1e6:.0f} MB"
    error = found.pose - case["truth"]
    assert found.matched
    assert math.hypot(error[0], error[1]) < 0.10 and abs(error[2]) < math.radians(5), (found.pose, case["truth"])
