"""config/gazebo: the SDF world and the ros_gz_bridge config. Gazebo cannot run here, so these check what
can be checked without it: both files parse; the bridge maps exactly the contract's topics with their
contract types and the right directions; every Gazebo topic the bridge reads or writes is one the world's
sensors and systems actually use; and the robot's sensors match the MuJoCo world's, so the packaged
models see the same geometry."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORLD = REPO / "config" / "gazebo" / "vae_world.sdf"
BRIDGE = REPO / "config" / "gazebo" / "bridge.yaml"

# The contract's topics (shared/CONTRACT.md) that a simulator provides or consumes, with their types.
CONTRACT_SIM_TOPICS = {
    "camera/image_raw": "sensor_msgs/msg/Image",
    "scan": "sensor_msgs/msg/LaserScan",
    "lidar/points": "sensor_msgs/msg/PointCloud2",
    "odom": "nav_msgs/msg/Odometry",
    "cmd_vel": "geometry_msgs/msg/Twist",
    "/clock": "rosgraph_msgs/msg/Clock",
}
# ros_gz_bridge's type pairs for these messages (Harmonic's gz.msgs names).
GZ_TYPES = {
    "sensor_msgs/msg/Image": "gz.msgs.Image",
    "sensor_msgs/msg/LaserScan": "gz.msgs.LaserScan",
    "sensor_msgs/msg/PointCloud2": "gz.msgs.PointCloudPacked",
    "nav_msgs/msg/Odometry": "gz.msgs.Odometry",
    "geometry_msgs/msg/Twist": "gz.msgs.Twist",
    "rosgraph_msgs/msg/Clock": "gz.msgs.Clock",
}


@pytest.fixture(scope="module")
def world() -> ElementTree.Element:
    return ElementTree.parse(WORLD).getroot()


@pytest.fixture(scope="module")
def bridge() -> list[dict[str, str]]:
    entries = yaml.safe_load(BRIDGE.read_text())
    assert isinstance(entries, list) and all(isinstance(e, dict) for e in entries)
    return entries


def _text(element: ElementTree.Element, path: str) -> str:
    found = element.find(path)
    assert found is not None and found.text is not None, f"missing <{path}>"
    return found.text.strip()


def _plugin(element: ElementTree.Element, system: str) -> ElementTree.Element:
    found = [p for p in element.findall("plugin") if p.get("name") == f"gz::sim::systems::{system}"]
    assert len(found) == 1, f"expected one {system} plugin"
    return found[0]


def _sensor(world: ElementTree.Element, name: str) -> ElementTree.Element:
    found = world.find(f".//model[@name='vae_bot']//sensor[@name='{name}']")
    assert found is not None, f"no sensor {name}"
    return found


def test_bridge_maps_exactly_the_contract_topics(bridge: list[dict[str, str]]) -> None:
    ros_topics = [entry["ros_topic_name"] for entry in bridge]
    assert sorted(ros_topics) == sorted(CONTRACT_SIM_TOPICS)
    for entry in bridge:
        ros_type = CONTRACT_SIM_TOPICS[entry["ros_topic_name"]]
        assert entry["ros_type_name"] == ros_type, entry
        assert entry["gz_type_name"] == GZ_TYPES[ros_type], entry
        expected = "ROS_TO_GZ" if entry["ros_topic_name"] == "cmd_vel" else "GZ_TO_ROS"
        assert entry["direction"] == expected, entry
        # Relative ROS names, so the bridge's namespace applies; only /clock is global.
        assert entry["ros_topic_name"].startswith("/") == (entry["ros_topic_name"] == "/clock")


def test_world_has_the_systems_sensors_need(world: ElementTree.Element) -> None:
    assert world.get("version") and world.find("world") is not None
    scene = world.find("world")
    assert scene is not None
    for system in ("Physics", "SceneBroadcaster", "UserCommands", "Sensors"):
        _plugin(scene, system)


def test_every_bridged_gazebo_topic_exists_in_the_world(world: ElementTree.Element,
                                                        bridge: list[dict[str, str]]) -> None:
    gz_topic = {entry["ros_topic_name"]: entry["gz_topic_name"] for entry in bridge}
    robot = world.find(".//model[@name='vae_bot']")
    assert robot is not None
    assert _text(_sensor(world, "camera"), "topic") == gz_topic["camera/image_raw"]
    assert _text(_sensor(world, "lidar_2d"), "topic") == gz_topic["scan"]
    # gpu_lidar publishes its point cloud on <topic>/points.
    assert _text(_sensor(world, "lidar_3d"), "topic") + "/points" == gz_topic["lidar/points"]
    drive = _plugin(robot, "DiffDrive")
    assert _text(drive, "topic") == gz_topic["cmd_vel"]
    odometry = _plugin(robot, "OdometryPublisher")
    assert _text(odometry, "odom_topic") == gz_topic["odom"]
    assert _text(drive, "odom_topic") != gz_topic["odom"]  # wheel odometry must not mix into ground truth
    assert gz_topic["/clock"] == "/clock"
    joints = {j.get("name") for j in robot.findall("joint")}
    assert {_text(drive, "left_joint"), _text(drive, "right_joint")} <= joints


def test_robot_sensors_match_the_mujoco_world(world: ElementTree.Element) -> None:
    from vae_ros.sim.world import CAMERA_FOVY_DEG, CAMERA_OFFSET, LIDAR_OFFSET, SimConfig

    config = SimConfig()
    camera = _sensor(world, "camera")
    assert [float(v) for v in _text(camera, "pose").split()[:3]] == pytest.approx(CAMERA_OFFSET)
    width, height = int(_text(camera, "camera/image/width")), int(_text(camera, "camera/image/height"))
    assert (width, height) == (config.image_width, config.image_height)
    assert float(_text(camera, "camera/horizontal_fov")) == pytest.approx(math.radians(CAMERA_FOVY_DEG))
    scan = _sensor(world, "lidar_2d")
    assert scan.get("type") == "gpu_lidar"
    assert [float(v) for v in _text(scan, "pose").split()[:3]] == pytest.approx(LIDAR_OFFSET)
    beams = int(_text(scan, "lidar/scan/horizontal/samples"))
    assert beams == config.scan_beams and int(_text(scan, "lidar/scan/vertical/samples")) == 1
    low, high = float(_text(scan, "lidar/scan/horizontal/min_angle")), float(
        _text(scan, "lidar/scan/horizontal/max_angle"))
    assert low == pytest.approx(-math.pi + math.pi / beams) and (high - low) / (beams - 1) == pytest.approx(
        2 * math.pi / beams)  # bin centres, as the simulator's beams
    assert float(_text(scan, "lidar/range/max")) == pytest.approx(config.scan_range_max)
    cloud = _sensor(world, "lidar_3d")
    assert int(_text(cloud, "lidar/scan/vertical/samples")) == config.cloud_rings
    assert int(_text(cloud, "lidar/scan/horizontal/samples")) == config.cloud_columns
    assert float(_text(cloud, "lidar/scan/vertical/max_angle")) == pytest.approx(
        math.radians(config.cloud_fov_up_deg))


def test_room_has_walls_and_distinctly_coloured_objects(world: ElementTree.Element) -> None:
    static = [m for m in world.iter("model") if (m.findtext("static") or "").strip() == "true"]
    walls = [m for m in static if (m.get("name") or "").startswith("wall_")]
    assert len(walls) == 4
    colours = {tuple(round(float(v), 2) for v in (m.findtext(".//visual/material/diffuse") or "").split()[:3])
               for m in static if not (m.get("name") or "").startswith(("wall_", "ground"))}
    assert len(colours) >= 6
