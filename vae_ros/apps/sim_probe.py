"""What the sessions that run the real nodes against sim_node share (vae_ros.apps.servo_session, route_session).

A SimProbe owns the node processes (vae_ros.apps.node_processes, stopped on close, also after an error) and an
in-process probe node spun on its own thread. It follows the simulated clock and the stamps of the control
latents, waits on a condition while checking that every process still runs, and places the robot through
sim_node's `initial_pose` parameter. The sessions add their own subscriptions and steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vae_ros.apps.node_processes import NodeProcesses
from vae_ros.core.conversions.common import stamp_ns
from vae_ros.core.errors import RosError, RosTimeoutError
from vae_ros.ros import interface


class SimProbe:
    def __init__(self, log_dir: Path) -> None:
        self.nodes = NodeProcesses(log_dir)  # the node processes, by node name
        self._lock = threading.Lock()
        self._clock_ns = 0
        self._latent_stamps: list[int] = []  # stamps (ns) of the control latents received, oldest first
        self.node: Any = None
        self._executor: Any = None
        self._set_params: Any = None

    # -- the probe node --------------------------------------------------------------------------------------
    @staticmethod
    def _prepare() -> None:
        """Before the first node process starts (they inherit this environment): DDS on this machine unless the
        user chose otherwise, and the nodes' Fast DDS large-data profile."""
        import os

        from vae_ros.ros.kit.run import use_large_data_profile

        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        use_large_data_profile()

    def _open_probe(self, name: str, namespace: str = "") -> Any:
        """The probe node, following /clock, with a client of sim_node's parameters; not spinning yet (the
        caller adds its subscriptions, then calls _spin_probe)."""
        import rclpy
        from rcl_interfaces.srv import SetParameters
        from rosgraph_msgs.msg import Clock

        from vae_ros.ros.qos import STATE_QOS

        if not rclpy.ok():
            rclpy.init()
        node = rclpy.create_node(name, namespace=f"/{namespace}" if namespace else "")
        self.node = node
        node.create_subscription(Clock, interface.CLOCK_TOPIC, self._on_clock, STATE_QOS)
        self._set_params = node.create_client(SetParameters, "sim_node/set_parameters")
        return node

    def _spin_probe(self) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        threading.Thread(target=self._executor.spin, daemon=True).start()

    def _close(self) -> None:
        """Stop the probe, then every node process (also when stopping the probe fails)."""
        try:
            if self._executor is not None:
                self._executor.shutdown()
            if self.node is not None:
                self.node.destroy_node()
        finally:
            self.nodes.stop_all()

    def _on_clock(self, msg: Any) -> None:
        with self._lock:
            self._clock_ns = stamp_ns(msg.clock)

    # -- waiting and placing ---------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        with self._lock:
            return self._clock_ns * 1e-9

    def check_alive(self) -> None:
        self.nodes.check_alive()

    def wait(self, what: str, condition: Callable[[], object], timeout: float) -> None:
        """Until `condition()` holds; RosTimeoutError after `timeout` wall seconds, RosError at once when a node
        process has died (both name the log directory)."""
        deadline = time.monotonic() + timeout
        while not condition():
            self.nodes.check_alive()
            if time.monotonic() > deadline:
                raise RosTimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; logs in "
                                      f"{self.nodes.log_dir}")
            time.sleep(0.02)

    def wait_sim(self, what: str, seconds: float) -> None:
        """Until `seconds` of simulated time have passed and a control latent stamped after that has arrived."""
        until = int((self.sim_time + seconds) * 1e9)
        self.wait(what, lambda: bool(self._latent_stamps) and self._latent_stamps[-1] >= until, seconds * 10 + 20)

    def call(self, client: Any, request: Any, what: str, timeout: float = 10.0) -> Any:
        """A service call, waited on; its response."""
        future = client.call_async(request)
        self.wait(what, future.done, timeout)
        return future.result()

    def place(self, pose: tuple[float, float, float], settle: float = 0.3) -> None:
        """Put the robot at `pose` (x, y, yaw; sim_node's initial_pose, its odometry starts again there) and wait
        until a latent from there, `settle` simulated seconds later, has arrived."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        request = SetParameters.Request()
        request.parameters = [Parameter(name="initial_pose", value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[float(v) for v in pose]))]
        result = self.call(self._set_params, request, "sim_node to place the robot")
        if not result.results[0].successful:
            raise RosError(f"sim_node refused the pose {pose}: {result.results[0].reason}")
        self.wait_sim("a latent after placing the robot", settle)
