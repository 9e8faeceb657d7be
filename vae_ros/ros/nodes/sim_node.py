"""sim_node: the MuJoCo robot world as a ROS 2 node (camera, LiDAR, ground-truth odometry, /clock, cmd_vel).

Publishes `camera/image_raw` (sensor_msgs/Image rgb8, frame camera_optical_frame), `scan` (LaserScan) and/or
`lidar/points` (organised PointCloud2, x y z float32, frame lidar_link), `odom` (nav_msgs/Odometry odom ->
base_link: wheel odometry, ideal unless `odom_error` > 0, vae_ros.sim.odometry), `ground_truth/odom` (the true
pose, always: for evaluations, never for controllers) and `/clock`, and subscribes `cmd_vel`
(geometry_msgs/Twist). `lighting` picks the room's light (vae_ros.sim.world.LIGHTING).

Time: simulated time starts at 0 and advances by exactly 1/rate per sensor frame; /clock is published at
>= 50 Hz, so other nodes run with `use_sim_time:=true`. The node paces itself on the wall clock (it never
uses sim time itself); when rendering cannot keep up, simulated time runs slower than real time.
Commands are clamped to `max_linear` / `max_angular`; with no fresh command for `cmd_timeout` seconds of
simulated time the robot is commanded to stop (fail-safe). Non-finite commands are rejected and counted.

Placing the robot while running (evaluations): set `initial_pose`, e.g.
    ros2 param set /sim_node initial_pose "[1.0, -0.5, 1.57]"
teleports the robot there at rest (and it is where the robot starts); a pose outside the room or inside
an object is rejected with the reason.

QoS: sensors are published reliable, keep-last depth 1 (reliable writers serve both best-effort and
reliable readers; depth 1 never queues stale frames); odom, /clock and diagnostics are reliable depth 10.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, LaserScan, PointCloud2

from vae_ros.core.diagnostics import ERROR, OK
from vae_ros.core.errors import ConfigError, VaeRosError
from vae_ros.ros import interface
from vae_ros.ros import sim_messages as messages
from vae_ros.ros.kit.declare import declare_params, on_parameter_changes
from vae_ros.ros.kit.guard import MessageGuard
from vae_ros.ros.kit.health import DiagnosticsPublisher
from vae_ros.ros.kit.params import SimNodeParams
from vae_ros.ros.kit.run import run_node
from vae_ros.ros.qos import COMMAND_QOS, STATE_QOS, sensor_qos
from vae_ros.sim.odometry import OdomErrorModel, WheelOdometry
from vae_ros.sim.world import Pose2D, SimConfig, SimWorld

NODE_NAME = "sim_node"
MIN_CLOCK_RATE = 50.0  # Hz: /clock and physics ticks, so sim-time timers elsewhere are not too coarse

# Sensors: reliable keep-last 1 (the encoder's publisher-matching subscription then receives reliably).
SENSOR_PUBLISHER_QOS = sensor_qos(ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class SimReport:
    """One /diagnostics report of the simulation (vae_ros.ros.kit.run.HealthReport)."""

    level: int
    message: str
    pairs: list[tuple[str, str]]

    def values(self) -> list[tuple[str, str]]:
        return self.pairs


@dataclass
class SimHealth:
    """The simulation's counters and the report made from them (vae_ros.ros.kit.run.HealthSource)."""

    world: SimWorld
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("frames", "commands", "rejected_commands", "stale_stops", "errors"), 0))
    render_seconds: float = 0.0
    stale: bool = True
    wall_start: float = field(default_factory=time.monotonic)
    errors_reported: int = 0

    def count(self, name: str) -> None:
        self.counts[name] += 1

    def snapshot(self) -> SimReport:
        level, message = OK, "stale cmd_vel: stopped" if self.stale else "driving"
        if self.counts["errors"] > self.errors_reported:  # a cmd_vel callback failed unexpectedly
            level = ERROR
            message = f"{self.counts['errors'] - self.errors_reported} cmd_vel message(s) failed: see the log"
            self.errors_reported = self.counts["errors"]
        wall = max(time.monotonic() - self.wall_start, 1e-9)
        pose = self.world.pose()
        pairs = {
            "sim_time": f"{self.world.time:.3f}",
            "real_time_factor": f"{self.world.time / wall:.3f}",
            "frame_rate": f"{self.counts['frames'] / wall:.2f}",
            "render_ms": f"{1000 * self.render_seconds / max(self.counts['frames'], 1):.2f}",
            "pose": f"{pose.x:.3f} {pose.y:.3f} {pose.yaw:.3f}",
            **{name: str(count) for name, count in self.counts.items()},
        }
        return SimReport(level, message, list(pairs.items()))


class SimNode(Node):
    """Thin shell around SimWorld: parameters -> world; a wall-clock timer steps it and publishes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.params = p = declare_params(self, SimNodeParams)
        self._world = SimWorld(SimConfig(seed=p.seed, image_width=p.image_width, image_height=p.image_height,
                                         initial_pose=p.initial_pose, lighting=p.lighting))
        # Wheel odometry integrated at every physics tick (None: ideal, `odom` is the ground truth).
        self._odometry = (WheelOdometry(OdomErrorModel(level=p.odom_error), self._world.pose(), seed=p.seed)
                          if p.odom_error > 0 else None)
        self._frame_period = 1.0 / p.rate
        self._ticks_per_frame = max(1, math.ceil(MIN_CLOCK_RATE / p.rate))
        self._tick_period = self._frame_period / self._ticks_per_frame
        self._tick = 0
        self._command = (0.0, 0.0)
        self._command_time = -math.inf  # sim time of the last accepted command
        self.health = SimHealth(self._world)

        self._clock_pub = self.create_publisher(ClockMsg, interface.CLOCK_TOPIC, STATE_QOS)
        self._odom_pub = self.create_publisher(Odometry, interface.ODOM_TOPIC, STATE_QOS)
        self._truth_pub = self.create_publisher(Odometry, interface.GROUND_TRUTH_ODOM_TOPIC, STATE_QOS)
        self._image_pub = (self.create_publisher(Image, interface.CAMERA_TOPIC, SENSOR_PUBLISHER_QOS)
                           if p.publish_camera else None)
        self._scan_pub = (self.create_publisher(LaserScan, interface.SCAN_TOPIC, SENSOR_PUBLISHER_QOS)
                          if p.lidar in ("scan", "both") else None)
        self._cloud_pub = (self.create_publisher(PointCloud2, interface.CLOUD_TOPIC, SENSOR_PUBLISHER_QOS)
                           if p.lidar in ("pointcloud", "both") else None)
        guard = MessageGuard(self, lambda _: self.health.count("rejected_commands"),
                             lambda _: self.health.count("errors"))
        self.create_subscription(Twist, interface.CMD_TOPIC, guard.wrap("a cmd_vel message", self._on_cmd_vel),
                                 COMMAND_QOS)
        # Steady clock: the node must not wait on /clock, which it publishes itself.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(self._tick_period, self._on_tick, clock=steady)
        # Stamped in simulated time, the axis of everything else the simulator publishes.
        self._diagnostics = DiagnosticsPublisher(
            self, self.health, f"{self.get_name()}: simulation", hardware_id="mujoco", clock=steady,
            stamp=lambda: messages.time_msg(self._world.time))
        on_parameter_changes(self, lambda: self.params, self._apply_params)
        self._publish_frame()  # frame 0 at t = 0
        self.get_logger().info(
            f"sim_node: {p.rate:g} Hz, camera {p.image_width}x{p.image_height}"
            f"{'' if p.publish_camera else ' (off)'}, lidar {p.lidar}, seed {p.seed}, pose {list(p.initial_pose)}")

    # -- parameters --------------------------------------------------------------------------------------
    def _apply_params(self, params: SimNodeParams) -> None:
        """Runtime changes: limits and timeout take effect at once; a new initial_pose teleports the robot."""
        if params.initial_pose != self.params.initial_pose:
            x, y, yaw = params.initial_pose
            try:
                self._world.set_pose(x, y, yaw)
            except VaeRosError as err:
                raise ConfigError(f"initial_pose: {err}") from err
            self._command, self._command_time = (0.0, 0.0), -math.inf
            if self._odometry is not None:  # placed by hand: the odometry starts again where it stands
                self._odometry.reset(Pose2D(x, y, yaw))
            self.get_logger().info(f"robot placed at x={x:.3f} y={y:.3f} yaw={yaw:.3f}")
        self.params = params

    # -- callbacks ---------------------------------------------------------------------------------------
    def _on_cmd_vel(self, msg: Twist) -> None:
        linear, angular = float(msg.linear.x), float(msg.angular.z)
        if not (math.isfinite(linear) and math.isfinite(angular)):
            self.health.count("rejected_commands")
            self.get_logger().warn("cmd_vel with NaN or infinite velocity rejected",
                                   throttle_duration_sec=5.0)
            return
        p = self.params
        self._command = (min(max(linear, -p.max_linear), p.max_linear),
                         min(max(angular, -p.max_angular), p.max_angular))
        self._command_time = self._world.time
        self.health.count("commands")

    def _on_tick(self) -> None:
        world = self._world
        fresh = world.time - self._command_time <= self.params.cmd_timeout + 1e-9
        if not fresh and not self.health.stale and self._command != (0.0, 0.0):
            self.health.count("stale_stops")
            self.get_logger().warn(f"no cmd_vel for {self.params.cmd_timeout:g} s: stopping",
                                   throttle_duration_sec=5.0)
        self.health.stale = not fresh
        linear, angular = self._command if fresh else (0.0, 0.0)
        world.step(linear, angular, self._tick_period)
        if self._odometry is not None:
            self._odometry.update(world.velocity(), self._tick_period)
        self._tick += 1
        if self._tick % self._ticks_per_frame == 0:
            self._publish_frame()
        else:
            self._clock_pub.publish(messages.clock_msg(messages.time_msg(world.time)))

    def _publish_frame(self) -> None:
        world = self._world
        stamp = messages.time_msg(world.time)
        self._clock_pub.publish(messages.clock_msg(stamp))
        truth = messages.odometry_msg(world.pose(), world.velocity(), stamp)
        self._truth_pub.publish(truth)
        odometry = self._odometry
        self._odom_pub.publish(truth if odometry is None else
                               messages.odometry_msg(odometry.pose, odometry.velocity, stamp))
        if self._scan_pub is not None:
            self._scan_pub.publish(messages.scan_msg(world.scan(), world.scan_geometry, stamp,
                                                     self._frame_period))
        if self._cloud_pub is not None:
            cfg = world.config
            self._cloud_pub.publish(messages.cloud_msg(world.pointcloud(), cfg.cloud_rings,
                                                       cfg.cloud_columns, stamp))
        if self._image_pub is not None:
            start = time.perf_counter()
            image = world.render()
            self.health.render_seconds += time.perf_counter() - start
            self._image_pub.publish(messages.image_msg(image, stamp))
        self.health.count("frames")

    def close(self) -> None:
        """Fail-safe on shutdown: zero the command and release the renderer."""
        self._command, self._command_time = (0.0, 0.0), -math.inf
        self._world.close()


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
