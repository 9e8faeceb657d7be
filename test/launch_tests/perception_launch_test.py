"""launch_testing test of `ros2 launch vae_ros perception.launch.py modality:=scan` (run by `launch_test`).

Not collected by the repository's pytest (its name does not start with test_, and `launch_testing` is
only importable where the real launch is): test/test_real_launch.py runs it with `launch_test` against the
launch wheels, and on a robot `launch_test` runs it as is:

    launch_test $(ros2 pkg prefix vae_ros)/../../src/vae_ros/test/launch_tests/perception_launch_test.py
"""

from __future__ import annotations

import time
import unittest

import launch
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import pytest
import rclpy
from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Float32MultiArray


@pytest.mark.launch_test
def generate_test_description() -> launch.LaunchDescription:
    perception = f"{get_package_share_directory('vae_ros')}/launch/perception.launch.py"
    return launch.LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(perception),
                                 launch_arguments={"modality": "scan", "namespace": "lt"}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestPipelineRuns(unittest.TestCase):
    """While the launch runs: the scan becomes latents, and latents become decoded scans."""

    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("perception_launch_probe")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def _wait_for(self, msg_type: type, topic: str, timeout: float = 60.0) -> object:
        received: list[object] = []
        subscription = self.node.create_subscription(msg_type, topic, received.append, qos_profile_sensor_data)
        try:
            end = time.monotonic() + timeout
            while not received and time.monotonic() < end:
                rclpy.spin_once(self.node, timeout_sec=0.1)
        finally:
            self.node.destroy_subscription(subscription)
        self.assertTrue(received, f"nothing on {topic} within {timeout:g} s")
        return received[0]

    def test_latents_arrive(self) -> None:
        latent = self._wait_for(Float32MultiArray, "/lt/vae/latent")
        self.assertEqual(latent.layout.dim[0].label, "latent")
        self.assertEqual(len(latent.data), latent.layout.dim[0].size)

    def test_decoded_scans_arrive(self) -> None:
        scan = self._wait_for(LaserScan, "/lt/vae/scan")
        self.assertGreater(len(scan.ranges), 0)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_node_exits_cleanly(self, proc_info: launch_testing.ProcInfoHandler) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
