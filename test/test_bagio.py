"""BagWriter: real messages in, the same messages back out through rosbags; standard metadata; safe close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from std_msgs.msg import Float32MultiArray, String

from vae_ros.core.conversions.image import array_to_image_msg
from vae_ros.core.errors import DataError
from vae_ros.ros.bagio import BagWriter, bag_version, normalise_msgtype, reliable_qos


def _read(path: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path]) as reader:
        for connection, timestamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append((timestamp, reader.deserialize(raw, connection.msgtype)))
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_messages_read_back_identically(tmp_path: Path, storage: str) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8) for _ in range(3)]
    path = tmp_path / "bag"
    with BagWriter(path, storage=storage) as bag:
        assert bag.add_topic("camera/image_raw", "sensor_msgs/msg/Image", reliable_qos(depth=1)) == "/camera/image_raw"
        bag.add_topic("/chatter", "std_msgs/String", reliable_qos())
        for index, image in enumerate(images):
            bag.write("camera/image_raw", 1_000 + index, serialize_message(array_to_image_msg(image, "rgb8")))
        bag.write("/chatter", 5_000, serialize_message(String(data="hello")))
        assert bag.counts == {"/camera/image_raw": 3, "/chatter": 1}
    assert not bag.is_open

    messages = _read(path)
    assert [t for t, _ in messages["/camera/image_raw"]] == [1_000, 1_001, 1_002]
    for (_, msg), image in zip(messages["/camera/image_raw"], images, strict=True):
        assert (msg.height, msg.width, msg.encoding) == (6, 5, "rgb8")
        assert np.array_equal(np.asarray(msg.data).reshape(6, 5, 3), image)
    assert messages["/chatter"][0][1].data == "hello"

    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == storage and info["message_count"] == 4
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert topics["/camera/image_raw"]["message_count"] == 3
    assert topics["/camera/image_raw"]["topic_metadata"]["type"] == "sensor_msgs/msg/Image"
    assert topics["/camera/image_raw"]["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
    qos = topics["/camera/image_raw"]["topic_metadata"]["offered_qos_profiles"]
    assert (qos[0]["reliability"], qos[0]["depth"]) == ("reliable", 1)  # the profile given, not a default
    assert topics["/chatter"]["topic_metadata"]["offered_qos_profiles"][0]["reliability"] == "reliable"
    assert info["relative_file_paths"][0] in {p.name for p in path.iterdir()}


def test_qos_given_as_rosbag2_yaml(tmp_path: Path) -> None:
    profiles = ("- history: 1\n  depth: 7\n  reliability: 2\n  durability: 2\n"
                "  deadline: {sec: 0, nsec: 0}\n  lifespan: {sec: 0, nsec: 0}\n  liveliness: 1\n"
                "  liveliness_lease_duration: {sec: 0, nsec: 0}\n  avoid_ros_namespace_conventions: false\n")
    with BagWriter(tmp_path / "bag") as bag:
        bag.add_topic("/x", "std_msgs/msg/String", profiles)
        with pytest.raises(DataError, match="QoS"):
            bag.add_topic("/y", "std_msgs/msg/String", "- {not: a profile}")
    info = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    qos = info["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"][0]
    assert (qos["depth"], qos["reliability"]) == (7, "best_effort")


def test_an_exception_or_ctrl_c_in_the_block_still_closes_the_bag(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    with pytest.raises(KeyboardInterrupt), BagWriter(path) as bag:
        bag.add_topic("/vae/latent", "std_msgs/msg/Float32MultiArray")
        for index in range(5):
            bag.write("/vae/latent", index, serialize_message(Float32MultiArray(data=[float(index)])))
        raise KeyboardInterrupt
    assert (path / "metadata.yaml").exists()
    latents = _read(path)["/vae/latent"]
    assert [list(msg.data) for _, msg in latents] == [[float(i)] for i in range(5)]


def test_refuses_to_overwrite_and_reports_misuse(tmp_path: Path) -> None:
    existing = tmp_path / "exists"
    existing.mkdir()
    with pytest.raises(DataError, match="already exists"):
        BagWriter(existing).open()
    with pytest.raises(DataError, match="storage"):
        BagWriter(tmp_path / "b", storage="rosbag1")
    with BagWriter(tmp_path / "bag") as bag:
        bag.add_topic("/a", "std_msgs/String")
        with pytest.raises(DataError, match="already added"):
            bag.add_topic("a", "std_msgs/msg/String")
        with pytest.raises(DataError, match="unknown"):
            bag.add_topic("/b", "my_pkg/msg/Nope")
        with pytest.raises(DataError, match="not added"):
            bag.write("/c", 0, b"")
        with pytest.raises(DataError, match="look like"):
            bag.add_topic("/d", "String")
    with pytest.raises(DataError, match="not open"):
        bag.write("/a", 0, b"")


def test_custom_type_by_definition(tmp_path: Path) -> None:
    # A type the store does not know, given as record would get it from a live publisher.
    with BagWriter(tmp_path / "bag") as bag:
        bag.add_topic("/custom", "my_pkg/msg/Value", msgdef="float32 value\n")
        bag.write("/custom", 3, b"\x00\x01\x00\x00\x00\x00\x80\x3f")
        with pytest.raises(DataError, match="definition"):
            bag.add_topic("/broken", "my_pkg/msg/Broken", msgdef="float32[ value\n")
    info = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["topics_with_message_count"][0]["topic_metadata"]["type"] == "my_pkg/msg/Value"
    with AnyReader([tmp_path / "bag"]) as reader:
        (connection, _, raw), = list(reader.messages())
        assert reader.deserialize(raw, connection.msgtype).value == 1.0


def test_normalise_msgtype() -> None:
    assert normalise_msgtype("sensor_msgs/Image") == "sensor_msgs/msg/Image"
    assert normalise_msgtype("sensor_msgs/msg/Image") == "sensor_msgs/msg/Image"


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_flushed_messages_survive_a_writer_that_never_closes(tmp_path: Path, storage: str) -> None:
    """What is on disk when a recorder is killed: everything up to its last flush(). `repair_bag` turns it
    into a bag every reader opens; messages after the flush (still in memory) are gone, nothing else."""
    import shutil

    from vae_ros.ros.bagio import repair_bag

    live = tmp_path / "live"
    bag = BagWriter(live, storage=storage).open()
    bag.add_topic("/vae/latent", "std_msgs/msg/Float32MultiArray", reliable_qos())
    for i in range(10):
        bag.write("/vae/latent", 1_000 + i, serialize_message(Float32MultiArray(data=[float(i)])))
    bag.flush()
    assert yaml.safe_load((live / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["message_count"] == 10
    for i in range(10, 15):  # after the last flush: lost with the process
        bag.write("/vae/latent", 1_000 + i, serialize_message(Float32MultiArray(data=[float(i)])))
    killed = tmp_path / "killed"
    shutil.copytree(live, killed)  # the disk as a SIGKILL would leave it
    bag.close()

    summary = repair_bag(killed)
    assert "metadata.yaml rebuilt: 10 messages on 1 topic(s)" in summary
    assert [float(msg.data[0]) for _, msg in _read(killed)["/vae/latent"]] == [float(i) for i in range(10)]
    info = yaml.safe_load((killed / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["message_count"] == 10 and info["duration"]["nanoseconds"] == 9
    topic = info["topics_with_message_count"][0]["topic_metadata"]
    assert topic["type_description_hash"].startswith("RIHS01_")
    assert topic["offered_qos_profiles"][0]["reliability"] == "reliable"
    # The closed original needs nothing, and repairing it changes nothing.
    before = (live / "metadata.yaml").read_text()
    assert repair_bag(live) == f"{live} is complete and readable; nothing to repair"
    assert (live / "metadata.yaml").read_text() == before and len(_read(live)["/vae/latent"]) == 15


@pytest.mark.parametrize(("ros_distro", "version"), [("humble", 8), ("Iron", 8), ("jazzy", 9), ("kilted", 9),
                                                     ("rolling", 9), ("", 9)])
def test_bag_version_follows_the_target_distribution(monkeypatch: pytest.MonkeyPatch, ros_distro: str,
                                                     version: int) -> None:
    assert bag_version(ros_distro) == version
    monkeypatch.setenv("ROS_DISTRO", ros_distro)
    assert bag_version() == version and BagWriter("unused").version == version
    monkeypatch.delenv("ROS_DISTRO")
    assert bag_version() == 9


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_version_8_metadata_is_what_humble_reads(tmp_path: Path, storage: str) -> None:
    # Humble's rosbag2 (metadata version <= 8) reads offered_qos_profiles as ONE YAML string; version 9 as a list.
    forms = {}
    for version in (8, 9):
        path = tmp_path / f"bag{version}"
        with BagWriter(path, storage=storage, version=version) as bag:
            bag.add_topic("/chatter", "std_msgs/msg/String", reliable_qos())
            bag.write("/chatter", 7, serialize_message(String(data="hi")))
        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        assert info["version"] == version
        forms[version] = info["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"]
        assert _read(path)["/chatter"][0][1].data == "hi"  # and rosbags reads both
    assert isinstance(forms[8], str) and isinstance(forms[9], list)
    (profile,) = yaml.safe_load(forms[8])
    assert profile["reliability"] == 1  # Humble's enum numbers inside the string (1 = reliable)
    assert forms[9][0]["reliability"] == "reliable"
    with pytest.raises(DataError, match="8 .Humble. or 9"):
        BagWriter(tmp_path / "x", version=10)  # type: ignore[arg-type]
