"""`vae-ros collect`: a short run gives a readable rosbag2 with the simulator's topics, and trains a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader

from vae_ros.apps.cli import main
from vae_ros.core.config import ModelConfig
from vae_ros.core.conversions.image import image_msg_to_array

EXPECTED_TYPES = {
    "/camera/image_raw": "sensor_msgs/msg/Image",
    "/scan": "sensor_msgs/msg/LaserScan",
    "/lidar/points": "sensor_msgs/msg/PointCloud2",
    "/odom": "nav_msgs/msg/Odometry",
    "/cmd_vel": "geometry_msgs/msg/Twist",
    "/clock": "rosgraph_msgs/msg/Clock",
}


def _collect(out: Path, *extra: str) -> int:
    return main(["collect", "--out", str(out), "--duration", "2", "--rate", "10", "--image-width", "32",
                 "--image-height", "32", "--quiet", *extra])


def _read(path: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path]) as reader:
        for connection, timestamp, raw in reader.messages():
            assert connection.msgtype == EXPECTED_TYPES[connection.topic]
            out.setdefault(connection.topic, []).append((timestamp, reader.deserialize(raw, connection.msgtype)))
    return out


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("collect") / "bag"
    assert _collect(path, "--lidar", "both", "--seed", "4") == 0
    return path


def test_bag_has_every_topic_at_the_frame_rate_with_sim_time_stamps(bag: Path) -> None:
    messages = _read(bag)
    assert set(messages) == set(EXPECTED_TYPES)
    for topic, items in messages.items():
        assert len(items) == 20, topic
        assert [t for t, _ in items] == [k * 100_000_000 for k in range(20)], topic
    for topic in ("/camera/image_raw", "/scan", "/lidar/points", "/odom"):
        for timestamp, msg in messages[topic]:
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == timestamp

    image_msg = messages["/camera/image_raw"][5][1]
    assert (image_msg.encoding, image_msg.header.frame_id) == ("rgb8", "camera_optical_frame")
    image = image_msg_to_array(image_msg)
    assert image.shape == (32, 32, 3) and image.std() > 5  # a real view, not a blank frame

    scan = messages["/scan"][0][1]
    assert scan.header.frame_id == "lidar_link" and len(scan.ranges) == 360
    assert np.isfinite(scan.ranges).all() and 0.2 < np.min(scan.ranges) < 10.0

    cloud = messages["/lidar/points"][0][1]
    assert (cloud.height, cloud.width, cloud.point_step) == (16, 256, 12)
    assert [f.name for f in cloud.fields] == ["x", "y", "z"]

    odom = [msg for _, msg in messages["/odom"]]
    assert (odom[0].header.frame_id, odom[0].child_frame_id) == ("odom", "base_link")
    xy = np.array([[m.pose.pose.position.x, m.pose.pose.position.y] for m in odom])
    travelled = np.linalg.norm(np.diff(xy, axis=0), axis=1).sum()
    commands = np.array([[m.linear.x, m.angular.z] for _, m in messages["/cmd_vel"]])
    # The robot moves by what it was told: odometry distance ~ integral of the commanded speed.
    assert travelled > 0.2
    assert travelled == pytest.approx(commands[:-1, 0].sum() * 0.1, rel=0.15)

    clocks = [m.clock.sec * 10**9 + m.clock.nanosec for _, m in messages["/clock"]]
    assert clocks == [k * 100_000_000 for k in range(20)]


def test_metadata_is_standard_rosbag2(bag: Path) -> None:
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap" and info["message_count"] == 6 * 20
    assert {t["topic_metadata"]["name"] for t in info["topics_with_message_count"]} == set(EXPECTED_TYPES)
    settings = json.loads(info["custom_data"]["vae_ros.collect"])
    assert settings["seed"] == 4 and settings["lidar"] == "both"


def test_same_seed_gives_the_same_bag_content(tmp_path: Path, bag: Path) -> None:
    again = tmp_path / "again"
    assert _collect(again, "--lidar", "both", "--seed", "4") == 0
    first, second = _read(bag), _read(again)
    for topic in ("/camera/image_raw", "/cmd_vel", "/odom"):
        for (_, a), (_, b) in zip(first[topic], second[topic], strict=True):
            assert repr(a) == repr(b), topic


def test_policy_seed_changes_the_trajectory_but_not_the_world(tmp_path: Path, bag: Path) -> None:
    other = tmp_path / "other"
    assert _collect(other, "--seed", "4", "--policy-seed", "5", "--lidar", "none") == 0
    first, second = _read(bag), _read(other)
    assert repr(first["/camera/image_raw"][0][1]) == repr(second["/camera/image_raw"][0][1])  # same world
    assert [repr(m) for _, m in first["/cmd_vel"]] != [repr(m) for _, m in second["/cmd_vel"]]


def test_camera_and_lidar_can_be_left_out(tmp_path: Path) -> None:
    out = tmp_path / "lidar_only"
    assert _collect(out, "--no-camera", "--lidar", "none", "--storage", "sqlite3") == 0
    assert set(_read(out)) == {"/odom", "/cmd_vel", "/clock"}


def test_refuses_to_overwrite_and_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "exists"
    existing.mkdir()
    assert _collect(existing) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["collect", "--out", str(tmp_path / "x"), "--duration", "-1"]) == 2
    assert "--duration" in capsys.readouterr().err
    assert main(["collect", "--out", str(tmp_path / "y"), "--duration", "1", "--image-width", "2"]) == 2
    assert "image_width" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_collected_bag_trains_a_model(tmp_path: Path, bag: Path) -> None:
    out = tmp_path / "model"
    status = main(["train", "--bag", str(bag), "--topic", "/camera/image_raw", "--out", str(out), "--epochs", "1",
                   "--image-size", "32", "--arch-channels", "8,16", "--latent-dim", "4", "--batch-size", "8",
                   "--quiet"])
    assert status == 0
    config = ModelConfig.load(out / "model.json")
    assert config.modality == "image" and config.input_shape == (3, 32, 32)
    assert (out / "weights.safetensors").exists()
