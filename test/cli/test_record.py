"""`vae-ros record` in real processes: a publisher process, the recorder as a subprocess, SIGINT/SIGTERM,
then the bag read back with rosbags. Nothing is faked."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import ros_env
from probe import stop_processes

pytestmark = pytest.mark.ros

# Publishes N numbered messages on vae/latent (Float32MultiArray, reliable) and cmd_vel (Twist, best
# effort), but only after "go" on stdin, which the test sends once both sides of discovery are done: the
# publishers have matched the recorder's readers ("matched" here) and its readers the publishers (the
# recorder's "matched" lines). Prints "done" when all N are out.
PUBLISHER = textwrap.dedent("""
    import sys, threading, time
    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float32MultiArray

    count = int(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node("record_test_publisher")
    latent = node.create_publisher(Float32MultiArray, "vae/latent", QoSProfile(depth=10))
    twist = node.create_publisher(
        Twist, "cmd_vel", QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    go = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), go.set()), daemon=True).start()
    while not (latent.get_subscription_count() and twist.get_subscription_count()):
        rclpy.spin_once(node, timeout_sec=0.05)
    print("matched", flush=True)
    while not go.is_set():
        rclpy.spin_once(node, timeout_sec=0.05)
    for seq in range(count):
        latent.publish(Float32MultiArray(data=[float(seq), 0.5]))
        message = Twist()
        message.linear.x = float(seq)
        twist.publish(message)
        time.sleep(0.005)
    print("done", flush=True)
    while True:
        rclpy.spin_once(node, timeout_sec=0.1)
""")


def _wait_for_line(stream, wanted: str | list[str], timeout: float, seen: list[str]) -> None:
    """Read lines from a process pipe into `seen` until, for each of `wanted`, a line seen contains it (on a
    thread, so a timeout can apply)."""
    wanted = [wanted] if isinstance(wanted, str) else wanted
    found = threading.Event()

    def all_seen() -> bool:
        return all(any(w in line for line in seen) for w in wanted)

    def reader() -> None:
        if all_seen():
            found.set()
            return
        for line in stream:
            seen.append(line)
            if all_seen():
                found.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    if not found.wait(timeout):
        raise AssertionError(f"no lines with {wanted!r} within {timeout} s; got {''.join(seen)!r}")


def _read_bag(path: Path) -> dict[str, tuple[str, list, list]]:
    """topic -> (msgtype, messages, offered QoS reliabilities) via rosbags."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    found: dict[str, tuple[str, list, list]] = {}
    with Reader(path) as reader:
        for connection in reader.connections:
            qos = [profile.reliability.name for profile in connection.ext.offered_qos_profiles]
            found[connection.topic] = (connection.msgtype, [], qos)
        for connection, _, raw in reader.messages():
            found[connection.topic][1].append(store.deserialize_cdr(raw, connection.msgtype))
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_record_writes_every_message_sent_after_matching(tmp_path: Path, stop_signal: signal.Signals) -> None:
    count = 60
    out = tmp_path / "bag"
    env = ros_env.ros_env()
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(count)], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    recorder = subprocess.Popen([sys.executable, "-m", "vae_ros.apps.cli", "record", "--out", str(out),
                                 "vae/latent", "/cmd_vel"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        publisher_lines: list[str] = []
        recorder_lines: list[str] = []
        _wait_for_line(recorder.stderr, ["/vae/latent: matched", "/cmd_vel: matched"], 60, recorder_lines)
        _wait_for_line(publisher.stdout, "matched", 30, publisher_lines)
        publisher.stdin.write("go\n")
        publisher.stdin.flush()
        _wait_for_line(publisher.stdout, "done", 30, publisher_lines)
        recorder.send_signal(stop_signal)
        stdout, _ = recorder.communicate(timeout=30)
    finally:
        stop_processes((recorder, publisher), signal.SIGKILL)
    assert recorder.returncode == 0, "".join(recorder_lines)
    assert f"stopped by {stop_signal.name}" in stdout
    assert (out / "metadata.yaml").is_file()

    bag = _read_bag(out)
    assert set(bag) == {"/vae/latent", "/cmd_vel"}
    latent_type, latents, latent_qos = bag["/vae/latent"]
    twist_type, twists, twist_qos = bag["/cmd_vel"]
    assert latent_type == "std_msgs/msg/Float32MultiArray"
    assert twist_type == "geometry_msgs/msg/Twist"
    assert [float(m.data[0]) for m in latents] == [float(i) for i in range(count)]
    assert [m.linear.x for m in twists] == [float(i) for i in range(count)]
    assert latent_qos == ["RELIABLE"] and twist_qos == ["BEST_EFFORT"]  # offered QoS, as rosbag2 stores it


def test_record_with_no_publisher_fails_cleanly_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bag"
    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "record", "--out", str(out), "--duration",
                             "1.5", "--quiet", "nobody/publishes/this"], env=ros_env.ros_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "nothing recorded" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--duration", "-1", "cmd_vel"], "--duration"),
    (["cmd vel"], "not a topic name"),
])
def test_record_rejects_bad_arguments_in_one_line(tmp_path: Path, argv: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "record", "--out", str(tmp_path / "b"),
                             *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_record_refuses_an_existing_output(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "record", "--out", str(tmp_path),
                             "cmd_vel"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "already exists" in result.stderr


def test_message_definition_of_a_custom_type_comes_from_the_ament_prefix(tmp_path: Path) -> None:
    from vae_ros.apps.cli.record import message_definition

    msg_dir = tmp_path / "share" / "my_robot_msgs" / "msg"
    msg_dir.mkdir(parents=True)
    (msg_dir / "Wheel.msg").write_text("float64 speed\nstring name\n")
    (msg_dir / "Status.msg").write_text("std_msgs/Header header\nWheel[2] wheels\nfloat32 battery\n")
    msgdef, rihs01 = message_definition("my_robot_msgs/msg/Status", prefixes=[str(tmp_path)])
    assert msgdef.startswith("std_msgs/Header header")
    assert "MSG: my_robot_msgs/Wheel" in msgdef and "MSG: std_msgs/Header" in msgdef
    assert rihs01.startswith("RIHS01_")
    from vae_ros.core.errors import DataError

    with pytest.raises(DataError, match="my_robot_msgs/msg/Missing"):
        message_definition("my_robot_msgs/msg/Missing", prefixes=[str(tmp_path)])


# Publishes numbered latents and 32x32 images at 50 Hz after "go" on stdin (sent once discovery is done on
# both sides, as above), forever, printing "sent N" every 10.
STEADY_PUBLISHER = textwrap.dedent("""
    import sys, time
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32MultiArray

    rclpy.init()
    node = rclpy.create_node("record_kill_test_publisher")
    latent = node.create_publisher(Float32MultiArray, "vae/latent", QoSProfile(depth=100))
    image = node.create_publisher(Image, "camera/image_raw", QoSProfile(depth=100))
    while not (latent.get_subscription_count() and image.get_subscription_count()):
        rclpy.spin_once(node, timeout_sec=0.05)
    print("matched", flush=True)
    sys.stdin.readline()
    seq, start = 0, time.monotonic()
    while True:
        latent.publish(Float32MultiArray(data=[float(seq)]))
        picture = Image(height=32, width=32, encoding="rgb8", step=96)
        picture.data = bytes([seq % 256]) * (32 * 96)
        image.publish(picture)
        seq += 1
        if seq % 10 == 0:
            print(f"sent {seq}", flush=True)
        time.sleep(max(0.0, start + seq / 50 - time.monotonic()))
""")
RATE_HZ = 50


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_recorder_killed_hard_loses_at_most_about_a_second_and_repair_makes_the_bag_whole(
        tmp_path: Path, storage: str) -> None:
    """Issue 10: after SIGKILL the MCAP had no footer and no metadata.yaml (rosbags, train and eval refused
    it; its chunks of up to 1 MiB were lost), and sqlite3 kept 0 rows (one open transaction)."""
    from rosbags.rosbag2 import Reader

    from vae_ros.core.config import ImageSpec, ModelConfig
    from vae_ros.core.data import iter_samples, open_source

    out = tmp_path / "bag"
    env = ros_env.ros_env()
    recorder = subprocess.Popen([sys.executable, "-m", "vae_ros.apps.cli", "record", "--out", str(out), "--storage",
                                 storage, "vae/latent", "camera/image_raw"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    publisher = subprocess.Popen([sys.executable, "-c", STEADY_PUBLISHER], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sent = [0]
    try:
        lines: list[str] = []
        _wait_for_line(recorder.stdout, ["/vae/latent: matched", "/camera/image_raw: matched"], 60, [])
        _wait_for_line(publisher.stdout, "matched", 60, lines)
        publisher.stdin.write("go\n")  # type: ignore[union-attr]
        publisher.stdin.flush()  # type: ignore[union-attr]

        def count() -> None:
            for line in publisher.stdout:  # type: ignore[union-attr]
                if line.startswith("sent "):
                    sent[0] = int(line.split()[1])

        threading.Thread(target=count, daemon=True).start()
        deadline = time.monotonic() + 60
        while sent[0] < 4 * RATE_HZ and time.monotonic() < deadline:  # four seconds of recording
            time.sleep(0.02)
        sent_at_kill = sent[0]
        recorder.kill()  # SIGKILL: nothing runs after this, as on a power cut
        recorder.wait(10)
    finally:
        stop_processes((recorder, publisher), signal.SIGKILL)
    assert sent_at_kill >= 4 * RATE_HZ
    assert (out / "metadata.yaml").is_file()  # written early, rewritten every second
    if storage == "mcap":
        with pytest.raises(Exception, match="magic"):  # no footer yet: what repair is for
            with Reader(out) as reader:
                list(reader.messages())

    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "repair", str(out)], env=env, text=True,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and "metadata.yaml rebuilt" in result.stdout

    bag = _read_bag(out)
    latents = [int(m.data[0]) for m in bag["/vae/latent"][1]]
    images = bag["/camera/image_raw"][1]
    assert latents == list(range(len(latents)))  # everything up to the last flush, in order, nothing invented
    lost = sent_at_kill - len(latents)
    assert lost <= 1.8 * RATE_HZ, f"lost {lost} of {sent_at_kill} messages ({lost / RATE_HZ:.1f} s)"
    assert len(images) >= len(latents) - 1
    # Train-style reading: the image topic through vae_ros.core.data, as `vae-ros train` reads it.
    source = open_source(bag=str(out), topic="/camera/image_raw")
    config = ModelConfig("image", image=ImageSpec(height=32, width=32, channels=3))
    samples = sum(1 for _ in iter_samples(source, config, split="train")) + \
        sum(1 for _ in iter_samples(source, config, split="val"))
    assert samples == len(images) == len(source)

    again = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "repair", str(out)], env=env, text=True,
                           capture_output=True, timeout=120)
    assert again.returncode == 0 and "nothing to repair" in again.stdout, again.stdout
    assert [int(m.data[0]) for m in _read_bag(out)["/vae/latent"][1]] == latents


def test_repair_of_something_that_is_not_a_bag_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "repair", str(tmp_path / "nothing")],
                            env=ros_env.ros_env(), text=True, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"vae-ros repair: error: bag {tmp_path / 'nothing'} does not exist (expected a bag folder)"
