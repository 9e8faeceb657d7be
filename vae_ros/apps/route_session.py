"""Teach-and-repeat runs through the real ROS 2 nodes, for `vae-ros demo --route` (vae_ros.apps.route_demo).

A RouteSession starts sim_node (with its wheel-odometry error, `odom_error`) and an encoder_node on the
packaged control model (LaserScan -> `vae/latent_stamped`) as processes over DDS, as route.launch.py does, plus an
in-process probe node that drives the robot as a teacher would (on `ground_truth/odom`), places it (sim_node's
`initial_pose`), and records ground truth, odometry and route_follower_node's /diagnostics. The app starts the
recorder and the follower through `nodes` (vae_ros.apps.node_processes), so they are stopped with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.apps.sim_probe import SimProbe
from vae_ros.control.evaluation.routes import TEACH_SPEED, densify, teacher_step
from vae_ros.core.errors import RosError
from vae_ros.ros import interface

FOLLOWER = "route_follower_node"


@dataclass
class RouteSessionConfig:
    seed: int = 0
    rate: float = 10.0
    backend: str = "auto"
    odom_error: float = 1.0
    initial_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # where the robot starts (the teacher's start)
    log_dir: Path = Path("route_logs")
    startup_timeout: float = 90.0
    namespace: str = ""  # the robot's namespace (robot1): its nodes and topics live under it


class RouteSession(SimProbe):
    """sim_node + the control encoder as processes, and a probe node that teaches (drives on ground truth),
    places the robot and records what happens. Use as a context manager: every process started is stopped on
    exit, also after an error."""

    def __init__(self, config: RouteSessionConfig) -> None:
        super().__init__(config.log_dir)
        self.config = config
        self.truth: list[tuple[float, float, float, float]] = []  # (t, x, y, yaw) on ground_truth/odom
        self.odom: list[tuple[float, float, float, float]] = []  # (t, x, y, yaw) on odom (the drifting one)
        self.follower: dict[str, str] = {}  # route_follower_node's newest /diagnostics key-values
        self._follower_stamp_ns = 0
        self.follower_states: list[tuple[float, str]] = []  # (sim time, state) at each change
        # The teacher: (dense path (M, 2), its arc length (M,), progress m) while it drives; None otherwise.
        self._teacher: tuple[np.ndarray, np.ndarray, float] | None = None
        self.teach_end: float | None = None  # sim time the teacher stopped
        self._cmd_pub: Any = None

    # -- start and stop -------------------------------------------------------------------------------------
    def __enter__(self) -> RouteSession:
        from vae_ros.control.runtime.control_model import control_model_dir

        self._prepare()
        cfg = self.config
        x, y, yaw = cfg.initial_pose
        ns = self.node_args()
        try:
            self.nodes.start_node("sim_node", "vae_ros.ros.nodes.sim_node", [*ns,
                "-p", f"rate:={float(cfg.rate)}", "-p", f"seed:={cfg.seed}", "-p", "lidar:=scan",
                "-p", f"odom_error:={float(cfg.odom_error)}", "-p", f"initial_pose:=[{x:.6f}, {y:.6f}, {yaw:.6f}]"])
            # As route.launch.py: the encoder of the route's model (the packaged control model, a scan model).
            self.nodes.start_node("control_encoder_node", "vae_ros.ros.nodes.encoder_node", [
                *ns, "-p", "modality:=scan", "-p", f"model:={control_model_dir('')}", "-p", f"backend:={cfg.backend}",
                "-p", "use_sim_time:=true"])
            self._start_probe()
            self.wait("the first latent, odometry and ground truth", lambda: bool(
                self._latent_stamps and self.odom and self.truth), cfg.startup_timeout)
            self.wait("sim_node's parameter service", self._set_params.service_is_ready, cfg.startup_timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._cmd_pub is not None and self._teacher is not None:
                self._teacher = None
                self._publish(0.0, 0.0)
        finally:
            self._close()

    def _start_probe(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Image

        from vae_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, LATENT_QOS, STATE_QOS

        node = self._open_probe("vae_ros_route_demo_probe", self.config.namespace)
        # Ground truth: the teacher steers on it (it stands in for a human with a joystick, who sees where the
        # robot is) and the demo judges by it. The follower never reads it.
        node.create_subscription(Odometry, interface.GROUND_TRUTH_ODOM_TOPIC, self._on_truth, STATE_QOS)
        node.create_subscription(Odometry, interface.ODOM_TOPIC, self._on_odom, STATE_QOS)
        node.create_subscription(Image, interface.LATENT_STAMPED_TOPIC, self._on_latent, LATENT_QOS)
        node.create_subscription(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, self._on_diagnostics, DIAGNOSTICS_QOS)
        self._cmd_pub = node.create_publisher(Twist, interface.CMD_TOPIC, COMMAND_QOS)
        self._twist = Twist
        self._spin_probe()

    # -- callbacks ------------------------------------------------------------------------------------------
    def _on_truth(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import planar_pose, stamp_ns

        pose = planar_pose(msg.pose.pose)
        with self._lock:
            self.truth.append((stamp_ns(msg.header.stamp) * 1e-9, *pose))
            teacher = self._teacher
        if teacher is None:
            return
        dense, arc, progress = teacher
        progress, command = teacher_step(dense, arc, progress, pose, TEACH_SPEED)
        with self._lock:
            if command is None:
                self._teacher = None
                self.teach_end = stamp_ns(msg.header.stamp) * 1e-9
            else:
                self._teacher = (dense, arc, progress)
        self._publish(*(command or (0.0, 0.0)))

    def _on_odom(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import planar_pose, stamp_ns

        with self._lock:
            self.odom.append((stamp_ns(msg.header.stamp) * 1e-9, *planar_pose(msg.pose.pose)))

    def _on_latent(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import stamp_ns

        with self._lock:
            self._latent_stamps.append(stamp_ns(msg.header.stamp))

    def _on_diagnostics(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import stamp_ns

        for status in msg.status:
            if status.name.endswith(f"{FOLLOWER}: route follower"):
                values = {kv.key: kv.value for kv in status.values}
                with self._lock:
                    self.follower = values
                    self._follower_stamp_ns = stamp_ns(msg.header.stamp)
                    state = values.get("state", "")
                    if not self.follower_states or self.follower_states[-1][1] != state:
                        self.follower_states.append((self._follower_stamp_ns * 1e-9, state))

    def _publish(self, linear: float, angular: float) -> None:
        msg = self._twist()
        msg.linear.x, msg.angular.z = float(linear), float(angular)
        self._cmd_pub.publish(msg)

    # -- waiting and acting ---------------------------------------------------------------------------------
    def topic(self, name: str) -> str:
        """The full name of a relative topic in this robot's namespace (vae/latent_stamped -> /robot1/...)."""
        return name if name.startswith("/") else "/" + "/".join(p for p in (self.config.namespace, name) if p)

    def node_args(self) -> list[str]:
        """ROS arguments that put a node started for this robot into its namespace."""
        return ["-r", f"__ns:=/{self.config.namespace}"] if self.config.namespace else []

    def subscribed(self, node_name: str, topics: tuple[str, ...]) -> bool:
        """Whether the node `node_name` subscribes to every one of `topics` (full names; by the ROS graph)."""
        return all(any(info.node_name == node_name for info in self.node.get_subscriptions_info_by_topic(topic))
                   for topic in topics)

    def drive(self, waypoints: np.ndarray) -> float:
        """The teacher drives the robot along `waypoints` (pure pursuit on ground truth) until it stops at the end;
        the simulated time it stopped."""
        dense, arc = densify(waypoints)
        start = self.sim_time
        with self._lock:
            self.teach_end = None
            self._teacher = (dense, arc, 0.0)
        limit = float(arc[-1]) / TEACH_SPEED * 4 + 30  # simulated seconds (drive_teach's bound)
        self.wait("the teacher to reach the end of the path",
                  lambda: self.teach_end is not None or self.sim_time - start > limit, limit * 5 + 60)
        if self.teach_end is None:
            raise RosError(f"the teacher did not reach the end of the path in {limit:.0f} simulated seconds; logs in "
                           f"{self.nodes.log_dir}")
        return self.teach_end

    def mark(self) -> tuple[int, int]:
        """Where the ground truth and odometry records stand now (for records())."""
        with self._lock:
            return len(self.truth), len(self.odom)

    def records(self, since: float, mark: tuple[int, int]) -> tuple[tuple[list[Any], list[Any]], tuple[list[Any], list[Any]]]:
        """((ground truth, odometry) from simulated time `since` to `mark`, (both after `mark`)): (t, x, y, yaw)."""
        with self._lock:
            before = ([p for p in self.truth[:mark[0]] if p[0] >= since], [p for p in self.odom[:mark[1]] if p[0] >= since])
            return before, (self.truth[mark[0]:], self.odom[mark[1]:])

    def follower_record(self) -> tuple[dict[str, str], list[tuple[float, str]]]:
        """(the follower's newest /diagnostics values, its states with the simulated time each began)."""
        with self._lock:
            return dict(self.follower), list(self.follower_states)

    def follower_state(self, since: float) -> str:
        """The follower's state in diagnostics stamped after `since` (sim time), '' before any."""
        with self._lock:
            return self.follower.get("state", "") if self._follower_stamp_ns * 1e-9 > since else ""
