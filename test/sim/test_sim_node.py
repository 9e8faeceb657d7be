"""sim_node in a real process: what arrives on the real topics, cmd_vel moves odometry, stale commands stop the
robot, and the robot can be placed at runtime through the `initial_pose` parameter."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import ros_env
from probe import Diagnostic, Probe, stop_processes, wait_for

from vae_ros.core.conversions.common import planar_pose

pytestmark = pytest.mark.ros

NODE_PARAMS = ["-p", "lidar:=both", "-p", "image_width:=32", "-p", "image_height:=24", "-p", "rate:=20.0",
               "-p", "seed:=2", "-p", "initial_pose:=[-0.5, -0.3, 0.0]", "-p", "cmd_timeout:=0.5"]


def stamp_s(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[subprocess.Popen[str], Probe]]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, LaserScan, PointCloud2

    proc = subprocess.Popen([sys.executable, "-m", "vae_ros.ros.nodes.sim_node", "--ros-args", *NODE_PARAMS],
                            env=ros_env.ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = Probe("sim_node_probe")
    # Sensors as the encoder subscribes to them (best effort), the clock as rclpy's TimeSource does.
    probe.record(Image, "camera/image_raw", qos_profile_sensor_data)
    probe.record(LaserScan, "scan", qos_profile_sensor_data)
    probe.record(PointCloud2, "lidar/points", qos_profile_sensor_data)
    probe.record(Odometry, "odom", 10)
    probe.record(Odometry, "ground_truth/odom", 10)
    probe.record(Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    probe.record(DiagnosticArray, "/diagnostics", 10)
    try:
        ready = wait_for(lambda: all(len(probe.messages(t)) >= 3 for t in probe.recorded if t != "/diagnostics"),
                         timeout=60.0)
        if not ready:
            proc.kill()
            pytest.fail(f"sim_node topics did not arrive: {[(t, len(probe.messages(t))) for t in probe.recorded]}\n"
                        f"{proc.communicate()[0]}")
        yield proc, probe
    finally:
        probe.close()
        rclpy.try_shutdown()
        stop_processes([proc])


def set_parameter(probe: Probe, name: str, value: Any) -> Any:
    """Set a parameter on /sim_node through its real parameter service; returns the SetParametersResult."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = probe.node.create_client(SetParameters, "/sim_node/set_parameters")
    try:
        assert client.wait_for_service(timeout_sec=10.0)
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        future = client.call_async(request)
        assert wait_for(future.done, timeout=10.0)
        return future.result().results[0]
    finally:
        probe.node.destroy_client(client)


def latest_odom_after(probe: Probe, sim_time: float, timeout: float = 20.0) -> Any:
    assert wait_for(lambda: stamp_s(probe.messages("odom")[-1].header.stamp) >= sim_time, timeout)
    return probe.messages("odom")[-1]


def yaw_of(odom: Any) -> float:
    return planar_pose(odom.pose.pose)[2]


def test_topics_arrive_with_the_right_types_sizes_and_frames(sim: tuple[subprocess.Popen[str], Probe]) -> None:
    _, probe = sim
    image = probe.messages("camera/image_raw")[-1]
    assert (image.width, image.height, image.encoding, image.step) == (32, 24, "rgb8", 96)
    assert image.header.frame_id == "camera_optical_frame" and len(image.data) == 24 * 96
    scan = probe.messages("scan")[-1]
    assert scan.header.frame_id == "lidar_link" and len(scan.ranges) == 360
    assert scan.angle_min == pytest.approx(-math.pi + math.pi / 360, abs=1e-6)
    assert scan.angle_increment == pytest.approx(2 * math.pi / 360, abs=1e-6)
    assert 0.2 < min(scan.ranges) and max(scan.ranges) < 10.0
    cloud = probe.messages("lidar/points")[-1]
    assert (cloud.height, cloud.width, cloud.header.frame_id) == (16, 256, "lidar_link")
    assert [f.name for f in cloud.fields] == ["x", "y", "z"]
    odom = probe.messages("odom")[-1]
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    # Sensor frames share their stamp with odometry, on the simulated time axis that /clock publishes.
    assert stamp_s(image.header.stamp) in {stamp_s(o.header.stamp) for o in probe.messages("odom")}
    clocks = [stamp_s(c.clock) for c in probe.messages("/clock")]
    assert clocks == sorted(clocks) and clocks[-1] > clocks[0]
    frame_stamps = sorted({stamp_s(o.header.stamp) for o in probe.messages("odom")})
    assert float(np.diff(frame_stamps).min()) == pytest.approx(0.05, abs=1e-6)


def test_other_nodes_run_on_simulated_time(sim: tuple[subprocess.Popen[str], Probe]) -> None:
    import rclpy
    from rclpy.parameter import Parameter

    _, probe = sim
    follower = rclpy.create_node("sim_time_follower",
                                 parameter_overrides=[Parameter("use_sim_time", value=True)])
    probe.executor.add_node(follower)
    try:
        assert wait_for(lambda: follower.get_clock().now().nanoseconds > 0, timeout=10.0)
        now = follower.get_clock().now().nanoseconds * 1e-9
        latest = stamp_s(probe.messages("/clock")[-1].clock)
        assert abs(now - latest) < 0.5
        assert now < time.time() - 1e6  # simulated time starts at 0, far from the wall clock
    finally:
        probe.executor.remove_node(follower)
        follower.destroy_node()


def test_diagnostics_report_the_simulation_and_count_rejected_commands(
        sim: tuple[subprocess.Popen[str], Probe]) -> None:
    from geometry_msgs.msg import Twist

    _, probe = sim

    def values() -> dict[str, str]:
        messages = probe.messages("/diagnostics")
        return Diagnostic.of(messages[-1].status[0]).values if messages else {}

    assert wait_for(lambda: bool(values()), timeout=10.0)
    assert probe.messages("/diagnostics")[-1].status[0].name.startswith("sim_node")
    assert int(values()["frames"]) > 0 and float(values()["real_time_factor"]) > 0.1
    assert {"commands", "rejected_commands", "stale_stops", "render_ms", "sim_time"} <= set(values())
    publisher = probe.node.create_publisher(Twist, "cmd_vel", 10)
    bad = Twist()
    bad.linear.x = float("nan")
    try:
        assert wait_for(lambda: publisher.get_subscription_count() > 0, timeout=10.0)
        publisher.publish(bad)
        assert wait_for(lambda: int(values().get("rejected_commands", 0)) >= 1, timeout=10.0)
        assert abs(probe.messages("odom")[-1].twist.twist.linear.x) < 0.01
    finally:
        probe.node.destroy_publisher(publisher)


def test_runtime_placement_through_the_initial_pose_parameter(sim: tuple[subprocess.Popen[str], Probe]) -> None:
    _, probe = sim
    result = set_parameter(probe, "initial_pose", [0.8, -0.4, 1.2])
    assert result.successful, result.reason
    now = stamp_s(probe.messages("/clock")[-1].clock)
    odom = latest_odom_after(probe, now + 0.2)
    assert odom.pose.pose.position.x == pytest.approx(0.8, abs=1e-3)
    assert odom.pose.pose.position.y == pytest.approx(-0.4, abs=1e-3)
    assert yaw_of(odom) == pytest.approx(1.2, abs=1e-3)

    outside = set_parameter(probe, "initial_pose", [5.0, 0.0, 0.0])
    assert not outside.successful and "outside the room" in outside.reason
    assert not set_parameter(probe, "initial_pose", [1.0, 2.0]).successful
    assert not set_parameter(probe, "seed", 5).successful  # read-only: needs a restart


def test_cmd_vel_moves_the_robot_and_a_stale_command_stops_it(sim: tuple[subprocess.Popen[str], Probe]) -> None:
    from geometry_msgs.msg import Twist

    _, probe = sim
    assert set_parameter(probe, "initial_pose", [-1.0, -0.3, 0.0]).successful
    publisher = probe.node.create_publisher(Twist, "cmd_vel", 10)
    command = Twist()
    command.linear.x = 0.3
    stop = threading.Event()

    def drive() -> None:
        while not stop.is_set():
            publisher.publish(command)
            time.sleep(0.05)

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        assert wait_for(lambda: probe.messages("odom")[-1].twist.twist.linear.x > 0.29, timeout=20.0)
        start = probe.messages("odom")[-1]
        end = latest_odom_after(probe, stamp_s(start.header.stamp) + 2.0)
    finally:
        stop.set()
        driver.join(2.0)
    elapsed = stamp_s(end.header.stamp) - stamp_s(start.header.stamp)
    moved = end.pose.pose.position.x - start.pose.pose.position.x
    assert moved == pytest.approx(0.3 * elapsed, abs=0.03)
    assert abs(end.pose.pose.position.y - start.pose.pose.position.y) < 0.01 and abs(yaw_of(end)) < 0.01

    # No fresh command for cmd_timeout (0.5 s): the robot stops by itself.
    stopped = latest_odom_after(probe, stamp_s(end.header.stamp) + 1.5)
    assert abs(stopped.twist.twist.linear.x) < 0.01
    later = latest_odom_after(probe, stamp_s(stopped.header.stamp) + 0.5)
    assert later.pose.pose.position.x == pytest.approx(stopped.pose.pose.position.x, abs=1e-3)
    probe.node.destroy_publisher(publisher)


def test_bad_parameters_at_start_give_one_clear_error() -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.ros.nodes.sim_node", "--ros-args", "-p", "lidar:=laser"],
                            env=ros_env.ros_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "lidar" in result.stderr and "scan" in result.stderr and "Traceback" not in result.stderr


def test_ideal_odometry_is_the_ground_truth_topic(sim: tuple[subprocess.Popen[str], Probe]) -> None:
    _, probe = sim
    assert wait_for(lambda: len(probe.messages("ground_truth/odom")) >= 3)
    truth = {stamp_s(m.header.stamp): planar_pose(m.pose.pose) for m in probe.messages("ground_truth/odom")}
    paired = [(planar_pose(m.pose.pose), truth[stamp_s(m.header.stamp)]) for m in probe.messages("odom")
              if stamp_s(m.header.stamp) in truth]
    assert len(paired) >= 3
    assert all(np.allclose(odom, true) for odom, true in paired)


def test_odom_error_drifts_odom_while_ground_truth_odom_stays_true() -> None:
    """odom_error:=1: after driving, `odom` is off the true pose by the documented scale error (+2 %), and
    `ground_truth/odom` moved exactly as the robot did; both start where the robot stands."""
    import rclpy
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry

    params = ["-p", "lidar:=none", "-p", "publish_camera:=false", "-p", "rate:=20.0", "-p", "odom_error:=1.0",
              "-p", "initial_pose:=[-1.5, -0.3, 0.0]", "-p", "seed:=2", "-r", "__ns:=/drift"]  # apart from `sim`
    proc = subprocess.Popen([sys.executable, "-m", "vae_ros.ros.nodes.sim_node", "--ros-args", *params],
                            env=ros_env.ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = Probe("odom_error_probe")
    probe.record(Odometry, "/drift/odom", 10)
    probe.record(Odometry, "/drift/ground_truth/odom", 10)
    publisher = probe.node.create_publisher(Twist, "/drift/cmd_vel", 10)
    stop = threading.Event()

    def drive() -> None:
        command = Twist()
        command.linear.x = 0.4
        while not stop.is_set():
            publisher.publish(command)
            time.sleep(0.05)

    try:
        assert wait_for(lambda: probe.messages("/drift/odom") and probe.messages("/drift/ground_truth/odom"), timeout=60.0), (
            "sim_node published no odometry")
        first_odom, first_truth = probe.messages("/drift/odom")[0], probe.messages("/drift/ground_truth/odom")[0]
        assert np.allclose(planar_pose(first_odom.pose.pose), planar_pose(first_truth.pose.pose))
        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        assert wait_for(lambda: probe.messages("/drift/ground_truth/odom")[-1].pose.pose.position.x > 0.5, timeout=60.0)
        stop.set()
        driver.join(2.0)
        truth = probe.messages("/drift/ground_truth/odom")[-1]
        odom = next(m for m in reversed(probe.messages("/drift/odom")) if m.header.stamp == truth.header.stamp)
        driven = truth.pose.pose.position.x - first_truth.pose.pose.position.x
        odom_driven = math.hypot(odom.pose.pose.position.x - first_odom.pose.pose.position.x,
                                 odom.pose.pose.position.y - first_odom.pose.pose.position.y)
        assert abs(truth.pose.pose.position.y - first_truth.pose.pose.position.y) < 0.01  # the robot drove straight
        assert odom_driven == pytest.approx(1.02 * driven, rel=0.01)  # the odometry did not quite
        assert abs(yaw_of(odom)) > 0.005  # heading drift while driving
    finally:
        stop.set()
        probe.close()
        rclpy.try_shutdown()
        stop_processes([proc])
