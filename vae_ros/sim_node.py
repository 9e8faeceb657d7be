"""sim_node: the MuJoCo robot world as a ROS 2 node (camera, LiDAR, ground-truth odometry, /clock, cmd_vel).

Publishes `camera/image_raw` (sensor_msgs/Image rgb8, frame camera_optical_frame), `scan` (LaserScan) and/or
`lidar/points` (organised PointCloud2, x y z float32, frame lidar_link), `odom` (nav_msgs/Odometry odom ->
base_link, ground truth) and `/clock`, and subscribes `cmd_vel` (geometry_msgs/Twist).

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
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, LaserScan, PointCloud2

from vae_ros.core.errors import ConfigError, VaeRosError
from vae_ros.node_utils import MessageGuard, run_node
from vae_ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, sensor_qos
from vae_ros.sim import messages
from vae_ros.sim.world import SimConfig, SimWorld

LIDAR_MODES = ("scan", "pointcloud", "both", "none")
MIN_CLOCK_RATE = 50.0  # Hz: /clock and physics ticks, so sim-time timers elsewhere are not too coarse
MAX_RATE = 100.0

# Sensors: reliable keep-last 1 (the encoder's publisher-matching subscription then receives reliably).
SENSOR_PUBLISHER_QOS = sensor_qos(ReliabilityPolicy.RELIABLE)
# Odometry and /clock: reliable, small queue.
STATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)


@dataclass
class SimNodeParams:
    """The node's parameters, read once (the dynamic ones are updated by the on-set callback)."""

    rate: float = 10.0
    image_width: int = 128
    image_height: int = 128
    lidar: str = "scan"
    seed: int = 0
    initial_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    max_linear: float = 0.5
    max_angular: float = 1.5
    cmd_timeout: float = 0.5
    publish_camera: bool = True


def _descriptor(description: str, read_only: bool = False, **ranges: Any) -> ParameterDescriptor:
    return ParameterDescriptor(description=description, read_only=read_only, **ranges)


class SimNode(Node):
    """Thin shell around SimWorld: parameters -> world; a wall-clock timer steps it and publishes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim_node", **kwargs)
        self._world: SimWorld | None = None
        defaults = SimNodeParams()
        # Registered first so that start-up overrides go through the same validation as runtime sets.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        try:
            self._declare_parameters(defaults)
        except ParameterException as err:
            raise ConfigError(str(err)) from err
        self.params = self._read_params()
        self._build()

    def _declare_parameters(self, defaults: SimNodeParams) -> None:
        self.declare_parameter("rate", defaults.rate, _descriptor(
            "sensor frames per second (simulated time advances 1/rate per frame)", read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=MAX_RATE)]))
        self.declare_parameter("image_width", defaults.image_width, _descriptor(
            "camera image width in pixels", read_only=True,
            integer_range=[IntegerRange(from_value=8, to_value=4096)]))
        self.declare_parameter("image_height", defaults.image_height, _descriptor(
            "camera image height in pixels", read_only=True,
            integer_range=[IntegerRange(from_value=8, to_value=4096)]))
        self.declare_parameter("lidar", defaults.lidar, _descriptor(
            "LiDAR to publish: scan (LaserScan on `scan`), pointcloud (PointCloud2 on `lidar/points`), "
            "both, or none", read_only=True))
        self.declare_parameter("seed", defaults.seed, _descriptor(
            "world seed: object placement and colours", read_only=True))
        self.declare_parameter("initial_pose", list(defaults.initial_pose), _descriptor(
            "[x, y, yaw] of the robot in the odom frame (m, m, rad); setting it at runtime teleports the "
            "robot there at rest"))
        self.declare_parameter("max_linear", defaults.max_linear, _descriptor(
            "limit of |cmd_vel.linear.x| in m/s", floating_point_range=[FloatingPointRange(
                from_value=0.0, to_value=1.0)]))
        self.declare_parameter("max_angular", defaults.max_angular, _descriptor(
            "limit of |cmd_vel.angular.z| in rad/s", floating_point_range=[FloatingPointRange(
                from_value=0.0, to_value=2.0)]))
        self.declare_parameter("cmd_timeout", defaults.cmd_timeout, _descriptor(
            "seconds (simulated) without a fresh cmd_vel after which the robot stops"))
        self.declare_parameter("publish_camera", defaults.publish_camera, _descriptor(
            "publish camera/image_raw (rendering costs CPU)", read_only=True))

    def _build(self) -> None:
        p = self.params
        self._world = SimWorld(SimConfig(seed=p.seed, image_width=p.image_width, image_height=p.image_height,
                                         initial_pose=p.initial_pose))
        self._frame_period = 1.0 / p.rate
        self._ticks_per_frame = max(1, math.ceil(MIN_CLOCK_RATE / p.rate))
        self._tick_period = self._frame_period / self._ticks_per_frame
        self._tick = 0
        self._command = (0.0, 0.0)
        self._command_time = -math.inf  # sim time of the last accepted command
        self._counts = {"frames": 0, "commands": 0, "rejected_commands": 0, "stale_stops": 0, "errors": 0}
        self._errors_reported = 0
        self._render_seconds = 0.0
        self._stale = True

        self._clock_pub = self.create_publisher(ClockMsg, messages.CLOCK_TOPIC, STATE_QOS)
        self._odom_pub = self.create_publisher(Odometry, messages.ODOM_TOPIC, STATE_QOS)
        self._image_pub = (self.create_publisher(Image, messages.IMAGE_TOPIC, SENSOR_PUBLISHER_QOS)
                           if p.publish_camera else None)
        self._scan_pub = (self.create_publisher(LaserScan, messages.SCAN_TOPIC, SENSOR_PUBLISHER_QOS)
                          if p.lidar in ("scan", "both") else None)
        self._cloud_pub = (self.create_publisher(PointCloud2, messages.CLOUD_TOPIC, SENSOR_PUBLISHER_QOS)
                           if p.lidar in ("pointcloud", "both") else None)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        guard = MessageGuard(self, lambda _: self._count("rejected_commands"), lambda _: self._count("errors"))
        self.create_subscription(Twist, messages.CMD_TOPIC, guard.wrap("a cmd_vel message", self._on_cmd_vel),
                                 COMMAND_QOS)
        # Steady clock: the node must not wait on /clock, which it publishes itself.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(self._tick_period, self._on_tick, clock=steady)
        self._diag_timer = self.create_timer(1.0, self._on_diagnostics_timer, clock=steady)
        self._wall_start = time.monotonic()
        self._publish_frame()  # frame 0 at t = 0
        self.get_logger().info(
            f"sim_node: {p.rate:g} Hz, camera {p.image_width}x{p.image_height}"
            f"{'' if p.publish_camera else ' (off)'}, lidar {p.lidar}, seed {p.seed}, pose {list(p.initial_pose)}")

    # -- parameters --------------------------------------------------------------------------------------
    def _read_params(self) -> SimNodeParams:
        get = self.get_parameter
        pose = get("initial_pose").value
        return SimNodeParams(
            rate=float(get("rate").value), image_width=int(get("image_width").value),
            image_height=int(get("image_height").value), lidar=str(get("lidar").value),
            seed=int(get("seed").value), initial_pose=(float(pose[0]), float(pose[1]), float(pose[2])),
            max_linear=float(get("max_linear").value), max_angular=float(get("max_angular").value),
            cmd_timeout=float(get("cmd_timeout").value), publish_camera=bool(get("publish_camera").value))

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            reason = self._check_parameter(param)
            if reason:
                return SetParametersResult(successful=False, reason=f"{param.name}: {reason}")
        for param in params:
            if param.name == "initial_pose" and self._world is not None:
                x, y, yaw = (float(v) for v in param.value)
                try:
                    self._world.set_pose(x, y, yaw)
                except VaeRosError as err:
                    return SetParametersResult(successful=False, reason=f"initial_pose: {err}")
                self._command, self._command_time = (0.0, 0.0), -math.inf
                self.params.initial_pose = (x, y, yaw)
                self.get_logger().info(f"robot placed at x={x:.3f} y={y:.3f} yaw={yaw:.3f}")
            elif param.name in ("max_linear", "max_angular", "cmd_timeout") and self._world is not None:
                setattr(self.params, param.name, float(param.value))
        return SetParametersResult(successful=True)

    @staticmethod
    def _check_parameter(param: Parameter) -> str:
        """Why a parameter value is unacceptable, or '' when it is fine."""
        value = param.value
        if param.name == "lidar" and value not in LIDAR_MODES:
            return f"must be one of {LIDAR_MODES}, got {value!r}"
        if param.name == "rate" and not (isinstance(value, float) and 0 < value <= MAX_RATE):
            return f"must be a float in (0, {MAX_RATE:g}] Hz, got {value!r}"
        if param.name in ("image_width", "image_height") and not (isinstance(value, int) and 8 <= value <= 4096):
            return f"must be an integer in 8..4096, got {value!r}"
        if param.name == "initial_pose":
            if (not isinstance(value, (list, tuple)) and not hasattr(value, "__len__")) or len(value) != 3:
                return f"must be [x, y, yaw] (three floats), got {value!r}"
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
                return f"must hold three finite numbers, got {list(value)!r}"
        if param.name in ("max_linear", "max_angular") and not (isinstance(value, float) and value >= 0):
            return f"must be a non-negative float, got {value!r}"
        if param.name == "cmd_timeout" and not (isinstance(value, float) and value > 0):
            return f"must be a positive float (seconds), got {value!r}"
        return ""

    # -- callbacks ---------------------------------------------------------------------------------------
    def _on_cmd_vel(self, msg: Twist) -> None:
        linear, angular = float(msg.linear.x), float(msg.angular.z)
        if not (math.isfinite(linear) and math.isfinite(angular)):
            self._counts["rejected_commands"] += 1
            self.get_logger().warn("cmd_vel with NaN or infinite velocity rejected",
                                   throttle_duration_sec=5.0)
            return
        p = self.params
        self._command = (min(max(linear, -p.max_linear), p.max_linear),
                         min(max(angular, -p.max_angular), p.max_angular))
        self._command_time = self._sim_world.time
        self._counts["commands"] += 1

    def _count(self, name: str) -> None:
        self._counts[name] += 1

    @property
    def _sim_world(self) -> SimWorld:
        if self._world is None:  # only during construction
            raise RuntimeError("sim_node world not built yet")
        return self._world

    def _on_tick(self) -> None:
        world = self._sim_world
        fresh = world.time - self._command_time <= self.params.cmd_timeout + 1e-9
        if not fresh and not self._stale and self._command != (0.0, 0.0):
            self._counts["stale_stops"] += 1
            self.get_logger().warn(f"no cmd_vel for {self.params.cmd_timeout:g} s: stopping",
                                   throttle_duration_sec=5.0)
        self._stale = not fresh
        linear, angular = self._command if fresh else (0.0, 0.0)
        world.step(linear, angular, self._tick_period)
        self._tick += 1
        if self._tick % self._ticks_per_frame == 0:
            self._publish_frame()
        else:
            self._clock_pub.publish(messages.clock_msg(messages.time_msg(world.time)))

    def _publish_frame(self) -> None:
        world = self._sim_world
        stamp = messages.time_msg(world.time)
        self._clock_pub.publish(messages.clock_msg(stamp))
        self._odom_pub.publish(messages.odometry_msg(world.pose(), world.velocity(), stamp))
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
            self._render_seconds += time.perf_counter() - start
            self._image_pub.publish(messages.image_msg(image, stamp))
        self._counts["frames"] += 1

    def _on_diagnostics_timer(self) -> None:
        world = self._sim_world
        wall = max(time.monotonic() - self._wall_start, 1e-9)
        frames = max(self._counts["frames"], 1)
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name=f"{self.get_name()}: simulation",
                                  hardware_id="mujoco")
        status.message = "stale cmd_vel: stopped" if self._stale else "driving"
        if self._counts["errors"] > self._errors_reported:  # a cmd_vel callback failed unexpectedly
            status.level = DiagnosticStatus.ERROR
            status.message = f"{self._counts['errors'] - self._errors_reported} cmd_vel message(s) failed: see the log"
            self._errors_reported = self._counts["errors"]
        pose = world.pose()
        values = {
            "sim_time": f"{world.time:.3f}",
            "real_time_factor": f"{world.time / wall:.3f}",
            "frame_rate": f"{self._counts['frames'] / wall:.2f}",
            "render_ms": f"{1000 * self._render_seconds / frames:.2f}",
            "pose": f"{pose.x:.3f} {pose.y:.3f} {pose.yaw:.3f}",
            **{name: str(count) for name, count in self._counts.items()},
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = messages.time_msg(world.time)
        self._diag_pub.publish(array)

    def close(self) -> None:
        """Fail-safe on shutdown: zero the command and release the renderer."""
        self._command, self._command_time = (0.0, 0.0), -math.inf
        if self._world is not None:
            self._world.close()


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, "sim_node", args)


if __name__ == "__main__":
    sys.exit(main())
