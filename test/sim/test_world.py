"""The MuJoCo world: LiDAR ranges against known geometry, camera content, physics-driven motion, determinism."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from vae_ros.core.config import PointCloudSpec, ScanSpec
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.core.preprocess import preprocess_pointcloud, preprocess_scan
from vae_ros.sim.geometry import ROBOT_RADIUS, ROOM_HALF_SIZE
from vae_ros.sim.world import LIDAR_OFFSET, SimConfig, SimObject, SimWorld


@pytest.fixture(scope="module")
def world() -> Iterator[SimWorld]:
    sim = SimWorld(SimConfig(seed=3, image_width=32, image_height=32))
    yield sim
    sim.close()


def _wall_distance(x: float, y: float, angle: np.ndarray) -> np.ndarray:
    """Distance from (x, y) along world angles to the inside faces of the square room's walls."""
    dx, dy = np.cos(angle), np.sin(angle)
    with np.errstate(divide="ignore"):
        tx = np.where(dx > 0, (ROOM_HALF_SIZE - x) / dx, (-ROOM_HALF_SIZE - x) / dx)
        ty = np.where(dy > 0, (ROOM_HALF_SIZE - y) / dy, (-ROOM_HALF_SIZE - y) / dy)
    return np.minimum(np.abs(tx), np.abs(ty))


def _ray_misses(obj: SimObject, x: float, y: float, angle: float, length: float) -> bool:
    """True when the segment from (x, y) cannot touch the object's footprint circle (with a margin)."""
    dx, dy = math.cos(angle), math.sin(angle)
    along = (obj.x - x) * dx + (obj.y - y) * dy
    along = min(max(along, 0.0), length)
    return math.hypot(x + along * dx - obj.x, y + along * dy - obj.y) > obj.radius + 0.05


def test_scan_ranges_match_the_walls_where_no_object_is_in_the_way(world: SimWorld) -> None:
    x, y, yaw = 0.4, -0.6, 0.7
    world.set_pose(x, y, yaw)
    ranges = world.scan()
    geometry = world.scan_geometry
    assert ranges.shape == (360,) and ranges.dtype == np.float32
    expected = _wall_distance(x, y, geometry.angles + yaw)
    clear = np.array([all(_ray_misses(o, x, y, a + yaw, d) for o in world.objects)
                      for a, d in zip(geometry.angles, expected, strict=True)])
    assert clear.sum() > 200  # most of the turn sees a wall
    np.testing.assert_allclose(ranges[clear], expected[clear], atol=0.01)
    # Beams that do hit an object see it before the wall.
    assert np.all(ranges[~clear] <= expected[~clear] + 0.01)
    assert np.any(ranges[~clear] < expected[~clear] - 0.3)


def test_scan_sees_the_wall_straight_ahead_at_a_known_distance(world: SimWorld) -> None:
    # 1.0 m from the lidar to the east wall; facing it, the two beams either side of 0 rad read
    # 1.0 / cos(0.5 deg). A point south of the orange box keeps the line of sight free.
    world.set_pose(ROOM_HALF_SIZE - 1.0, -1.2, 0.0)
    front = np.argsort(np.abs(world.scan_geometry.angles))[:2]
    ranges = world.scan()
    np.testing.assert_allclose(ranges[front], 1.0 / math.cos(math.radians(0.5)), atol=0.01)


def test_scan_fits_the_default_scan_model_bins_one_to_one(world: SimWorld) -> None:
    world.set_pose(0.0, 0.0, 0.0)
    geometry = world.scan_geometry
    ranges = world.scan()
    model_input = preprocess_scan(ranges, geometry.angle_min, geometry.angle_increment, geometry.range_min,
                                  geometry.range_max, ScanSpec())
    assert model_input[1].all()
    np.testing.assert_allclose(model_input[0], ranges / 10.0, rtol=1e-6)


def test_pointcloud_has_sixteen_rings_between_plus_and_minus_fifteen_degrees(world: SimWorld) -> None:
    world.set_pose(0.0, 0.0, 0.0)
    points = world.pointcloud()
    cfg = world.config
    assert points.shape == (cfg.cloud_rings * cfg.cloud_columns, 3) and points.dtype == np.float32
    finite = np.isfinite(points).all(axis=1)
    assert finite.mean() > 0.95
    organised = points.reshape(cfg.cloud_rings, cfg.cloud_columns, 3)
    elevation = np.degrees(np.arctan2(organised[..., 2], np.linalg.norm(organised[..., :2], axis=-1)))
    ring_elevation = np.nanmedian(elevation, axis=1)
    np.testing.assert_allclose(ring_elevation, np.linspace(15.0, -15.0, 16), atol=1e-3)
    # Downward rings hit the floor, which is LIDAR_OFFSET[2] below the sensor.
    floor_hits = organised[-1][np.isfinite(organised[-1]).all(axis=1)]
    np.testing.assert_allclose(floor_hits[:, 2], -LIDAR_OFFSET[2], atol=1e-3)
    # Every row and column of the default PointCloud2 model's range image is filled.
    image = preprocess_pointcloud(points[finite], PointCloudSpec())
    assert image[1].mean() > 0.95 and image[1].any(axis=1).all()


def test_camera_sees_a_known_object_in_front(world: SimWorld) -> None:
    colours = np.array([o.rgb for o in world.objects])
    for obj in world.objects:
        if obj.shape == "post":  # thin post: the centre of the image may look past it
            continue
        distance = math.hypot(obj.x, obj.y)
        ux, uy = obj.x / distance, obj.y / distance
        standoff = obj.radius + 0.8
        world.set_pose(obj.x - ux * standoff, obj.y - uy * standoff, math.atan2(uy, ux))
        image = world.render()
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        centre = image[12:20, 12:20].reshape(-1, 3).mean(axis=0) / 255.0
        # Shading scales the colour, so compare directions in RGB space.
        cosine = colours @ centre / (np.linalg.norm(colours, axis=1) * np.linalg.norm(centre))
        assert world.objects[int(np.argmax(cosine))].name == obj.name, (obj.name, centre)
        assert cosine.max() > 0.98


def test_commanded_motion_moves_the_robot_by_the_commanded_amount(world: SimWorld) -> None:
    world.set_pose(-0.5, -0.3, 0.0)
    for _ in range(20):
        world.step(0.3, 0.0, 0.1)
    pose = world.pose()
    assert abs(pose.x - (-0.5 + 0.6)) < 0.05 and abs(pose.y + 0.3) < 0.01 and abs(pose.yaw) < 0.01
    assert world.velocity().linear_x == pytest.approx(0.3, abs=0.01)
    world.set_pose(0.0, 0.0, 0.0)
    for _ in range(20):
        world.step(0.0, 0.5, 0.1)
    pose = world.pose()
    assert abs(pose.yaw - 1.0) < 0.05 and math.hypot(pose.x, pose.y) < 0.01
    assert world.time > 0


def test_driving_and_turning_never_slides_sideways(world: SimWorld) -> None:
    world.set_pose(0.0, -0.5, 0.0)
    lateral = []
    for _ in range(30):
        world.step(0.4, 0.8, 0.1)
        lateral.append(abs(world.velocity().linear_y))
    assert max(lateral) < 0.03
    # An arc of radius v / w = 0.5 m: the distance from its centre stays about 0.5 m.
    pose = world.pose()
    assert math.hypot(pose.x - 0.0, pose.y - 0.0) == pytest.approx(0.5, abs=0.05)


def test_walls_stop_the_robot(world: SimWorld) -> None:
    world.set_pose(ROOM_HALF_SIZE - 1.0, -1.2, 0.0)
    for _ in range(40):
        world.step(0.5, 0.0, 0.1)
    pose = world.pose()
    assert ROOM_HALF_SIZE - ROBOT_RADIUS - 0.1 < pose.x < ROOM_HALF_SIZE - ROBOT_RADIUS + 0.02
    assert abs(world.velocity().linear_x) < 0.05


def test_speed_is_clamped_to_the_base_limits(world: SimWorld) -> None:
    world.set_pose(-1.0, -0.3, 0.0)
    world.step(50.0, 0.0, 1.0)
    assert world.velocity().linear_x == pytest.approx(world.config.max_linear, abs=0.02)
    with pytest.raises(InputError):
        world.step(float("nan"), 0.0, 0.1)
    with pytest.raises(InputError):
        world.step(0.1, 0.0, 0.0)


def test_set_pose_rejects_poses_outside_the_room_or_inside_objects(world: SimWorld) -> None:
    with pytest.raises(ConfigError, match="outside the room"):
        world.set_pose(ROOM_HALF_SIZE, 0.0, 0.0)
    obj = world.objects[0]
    with pytest.raises(ConfigError, match=obj.name):
        world.set_pose(obj.x, obj.y, 0.0)


def _drive_and_render(config: SimConfig, steps: int = 5) -> tuple[np.ndarray, tuple[float, float, float]]:
    with SimWorld(config) as sim:
        for _ in range(steps):
            sim.step(0.3, 0.4, 0.1)
        pose = sim.pose()
        return sim.render(), (pose.x, pose.y, pose.yaw)


def test_same_seed_gives_the_same_images_and_other_seeds_or_poses_do_not() -> None:
    config = SimConfig(seed=7, image_width=32, image_height=32, initial_pose=(0.5, 0.0, 2.5))
    image_a, pose_a = _drive_and_render(config)
    image_b, pose_b = _drive_and_render(SimConfig(**vars(config)))
    assert np.array_equal(image_a, image_b) and pose_a == pose_b
    other_seed, _ = _drive_and_render(SimConfig(**{**vars(config), "seed": 8}))
    assert np.abs(other_seed.astype(int) - image_a).mean() > 2.0
    other_pose, _ = _drive_and_render(SimConfig(**{**vars(config), "initial_pose": (0.5, 0.0, -0.5)}))
    assert np.abs(other_pose.astype(int) - image_a).mean() > 10.0


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        SimWorld(SimConfig(image_width=2))
    with pytest.raises(ConfigError):
        SimWorld(SimConfig(initial_pose=(0.0, float("nan"), 0.0)))


def test_world_never_imports_rclpy() -> None:
    import subprocess

    code = ("import sys, vae_ros.sim.world, vae_ros.sim.policy, vae_ros.ros.sim_messages; "
            "print('rclpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_simulated_time_follows_dt_even_when_it_is_not_a_whole_number_of_physics_steps() -> None:
    with SimWorld(SimConfig(image_width=16, image_height=16)) as sim:
        times = []
        for _ in range(30):
            sim.step(0.0, 0.0, 1.0 / 30.0)  # 6.67 physics steps each
            times.append(sim.time)
        assert sim.time == pytest.approx(1.0, abs=1e-9)
        assert max(abs(t - (k + 1) / 30.0) for k, t in enumerate(times)) <= 0.0025 + 1e-9


def test_lighting_presets_change_what_the_camera_sees_and_nothing_else() -> None:
    """dim < default < bright in brightness; side tints the view warm; the scan is the same in every light."""
    views, scans = {}, {}
    for name in ("default", "dim", "bright", "side"):
        with SimWorld(SimConfig(seed=3, image_width=32, image_height=32, initial_pose=(0.5, 0.2, 0.4),
                                lighting=name)) as sim:
            views[name] = sim.render().astype(np.float64)
            scans[name] = sim.scan()
    mean = {name: image.mean() for name, image in views.items()}
    assert mean["dim"] < 0.75 * mean["default"] and mean["bright"] > 1.15 * mean["default"], mean
    red_minus_blue = {name: (image[..., 0] - image[..., 2]).mean() for name, image in views.items()}
    assert red_minus_blue["side"] > red_minus_blue["default"] + 5, red_minus_blue
    for name in ("dim", "bright", "side"):
        np.testing.assert_array_equal(scans[name], scans["default"])
    with pytest.raises(ConfigError, match="lighting must be one of"):
        SimConfig(lighting="disco").validate()
