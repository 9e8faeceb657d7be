"""latent_servo_node: drives the robot so that its current latent reaches a goal latent (geometry_msgs/Twist).

Inputs (relative names; remap as needed):
- `vae/latent_stamped` (sensor_msgs/Image 32FC1, from encoder_node): the current latent z, stamped with
  its sensor message. Each fresh latent is one control step (the node runs at the sensor rate).
- `scan` (sensor_msgs/LaserScan): the scan each latent was made from (matched by header stamp). It gives
  the interaction matrix J = dz/d(pose) at the current pose: the scan is re-projected into six slightly
  displaced sensor frames and encoded (vae_ros.control.sensing); the control law
  (vae_ros.control.servo) is Levenberg-Marquardt on the latent error through J, then coarse-to-fine
  differential-drive steering.
- Goals, changeable while running: `servo/set_goal` (std_srvs/Trigger: the current latent becomes the goal,
  teach-and-repeat, any modality), `servo/goal_latent` (std_msgs/Float32MultiArray, the contract's layout),
  `servo/goal_image` (sensor_msgs/Image) and the `goal_image` parameter (an image file) — goal images need
  a control model of the image modality; the packaged control model is a LaserScan model, for which image
  goals are refused with a clear message (use set_goal).

Outputs: `cmd_vel` (geometry_msgs/Twist), `servo/error` (std_msgs/Float32, latent error norm), and
/diagnostics with the servo state: idle (no goal), servoing, converged, lost, stale.

Fail-safe: zero velocity when no goal is set, when the newest latent is older than `stale_timeout` (judged
by its header stamp against this node's clock: set use_sim_time with a simulator), when a step fails, on
convergence and on shutdown.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node

from vae_ros.control.sensing import ScanLatentSensor, model_scan_encoder
from vae_ros.control.servo import CONVERGED, IDLE, LOST, ServoConfig, ServoState, servo_step
from vae_ros.conversions import msg_to_latent, stamped_msg_to_latent
from vae_ros.core.backends import create_backend, load_config
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError, InputError, VaeRosError
from vae_ros.node_utils import DiagnosticsPublisher, ParamSpec, declare_parameters, run_node
from vae_ros.qos import COMMAND_QOS, LATENT_QOS, sensor_qos

NODE_NAME = "latent_servo_node"
LATENT_TOPIC = "vae/latent_stamped"
SCAN_TOPIC = "scan"
CMD_TOPIC = "cmd_vel"
ERROR_TOPIC = "servo/error"
GOAL_LATENT_TOPIC = "servo/goal_latent"
GOAL_IMAGE_TOPIC = "servo/goal_image"
SET_GOAL_SERVICE = "servo/set_goal"
CONTROL_MODEL = "control_default"
STALE = "stale"
WARN_THROTTLE_S = 2.0
SCAN_HISTORY = 20  # scans kept to match latents by stamp (2 s at 10 Hz)

PARAMETERS = [
    ParamSpec("model", "", "Control model directory (a LaserScan VAE trained with `vae-ros train --pose-topic`); "
              "empty = the packaged models/control_default.", read_only=True),
    ParamSpec("goal_image", "", "Image file whose latent is the goal at start (image control models only); "
              "empty = wait for a goal on servo/goal_latent, servo/goal_image or servo/set_goal.", read_only=True),
    ParamSpec("gain", 1.0, "Proportional gain on the estimated distance to the goal (1/s)."),
    ParamSpec("angular_gain", 2.0, "Gain on heading and final yaw errors (1/s)."),
    ParamSpec("max_linear", 0.3, "Speed limit (m/s)."),
    ParamSpec("max_angular", 0.8, "Turn-rate limit (rad/s)."),
    ParamSpec("max_linear_accel", 0.8, "Linear acceleration limit (m/s^2)."),
    ParamSpec("max_angular_accel", 3.0, "Angular acceleration limit (rad/s^2)."),
    ParamSpec("stale_timeout", 0.5, "Seconds since the newest latent's header stamp after which the node "
              "publishes zero velocity."),
    ParamSpec("tolerance", 0.0, "Latent error norm that counts as converged; 0 = the model's calibrated value "
              "(model.json training.control.tolerance: <= 0.10 m and 5 deg)."),
    ParamSpec("backend", "auto", "Inference runtime for the interaction matrix: auto, torch, onnxruntime or "
              "tensorrt.", read_only=True),
    ParamSpec("device", "cpu", "cpu or cuda.", read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics reports.", read_only=True),
]


@dataclass(frozen=True)
class ServoParams:
    """The servo's parameters, read once at start-up; runtime changes swap in a validated copy."""

    model: str = ""
    goal_image: str = ""
    gain: float = 1.0
    angular_gain: float = 2.0
    max_linear: float = 0.3
    max_angular: float = 0.8
    max_linear_accel: float = 0.8
    max_angular_accel: float = 3.0
    stale_timeout: float = 0.5
    tolerance: float = 0.0
    backend: str = "auto"
    device: str = "cpu"
    diagnostics_period: float = 1.0

    def validate(self) -> None:
        from vae_ros.core.backends import BACKENDS, DEVICES

        for name in ("gain", "angular_gain", "max_linear", "max_angular", "max_linear_accel", "max_angular_accel",
                     "stale_timeout", "diagnostics_period"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ConfigError(f"tolerance must be >= 0 (0 = the model's calibrated value), got {self.tolerance}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")

    def servo_config(self, calibrated_tolerance: float) -> ServoConfig:
        config = ServoConfig(
            tolerance=self.tolerance or calibrated_tolerance, gain=self.gain, angular_gain=self.angular_gain,
            max_linear=self.max_linear, max_angular=self.max_angular, max_linear_accel=self.max_linear_accel,
            max_angular_accel=self.max_angular_accel)
        config.validate()
        return config


def control_model_dir(path: str) -> Path:
    """The `model` parameter -> a directory: empty means the packaged control model."""
    if path.strip():
        return Path(path.strip()).expanduser()
    from vae_ros.resources import models_dir

    return models_dir() / CONTROL_MODEL


def calibrated_tolerance(training: dict[str, Any]) -> float:
    """training.control.tolerance of a control model's model.json, or ConfigError saying how to get one."""
    try:
        value = float(training["control"]["tolerance"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError("the model has no calibrated servo tolerance (model.json training.control.tolerance: "
                          "train it with `vae-ros train --pose-topic odom`), so set the `tolerance` parameter") from err
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"model.json training.control.tolerance must be positive, got {value}")
    return value


class LatentServoNode(Node):
    """vae/latent_stamped + scan + goal -> servo_step -> cmd_vel; zero on stale input, error and shutdown."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.params = ServoParams(**declare_parameters(self, PARAMETERS))
        self.params.validate()
        self.model_dir = control_model_dir(self.params.model)
        self.config = load_config(self.model_dir)
        if self.config.modality != "scan":
            raise ConfigError(f"{self.model_dir} is a {self.config.modality!r} model; this servo estimates its "
                              "interaction matrix from LaserScans and needs a scan control model")
        self._calibrated = calibrated_tolerance(self.config.training) if not self.params.tolerance else 0.0
        self.servo_config = self.params.servo_config(self._calibrated)
        self.backend = create_backend(self.model_dir, self.params.backend, self.params.device)

        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image, LaserScan
        from std_msgs.msg import Float32, Float32MultiArray
        from std_srvs.srv import Trigger

        self._twist = Twist
        self._float32 = Float32
        self.state = ServoState()
        self.goal: np.ndarray | None = None
        self.goal_source = ""
        self.status = IDLE
        self._latest: np.ndarray | None = None  # newest latent, for set_goal
        self._latest_stamp_ns: int | None = None
        self._last_step_ns: int | None = None
        self._scans: OrderedDict[int, Any] = OrderedDict()  # stamp ns -> LaserScan
        self._sensor: ScanLatentSensor | None = None
        self._geometry: tuple[float, float, float, float, int] | None = None
        self._closed = False

        self._cmd_pub = self.create_publisher(Twist, CMD_TOPIC, COMMAND_QOS)
        self._error_pub = self.create_publisher(Float32, ERROR_TOPIC, LATENT_QOS)
        self.stats = NodeStats()
        self._latent_sub = self.create_subscription(Image, LATENT_TOPIC, self._on_latent, LATENT_QOS)
        # Best effort matches reliable and best-effort scan publishers; depth 5 so no scan is lost before its latent.
        self._scan_sub = self.create_subscription(LaserScan, SCAN_TOPIC, self._on_scan, sensor_qos(depth=5))
        self._goal_latent_sub = self.create_subscription(Float32MultiArray, GOAL_LATENT_TOPIC, self._on_goal_latent,
                                                         LATENT_QOS)
        self._goal_image_sub = self.create_subscription(Image, GOAL_IMAGE_TOPIC, self._on_goal_image, LATENT_QOS)
        self._set_goal_srv = self.create_service(Trigger, SET_GOAL_SERVICE, self._on_set_goal)
        self._watchdog = self.create_timer(0.1, self._on_watchdog)
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: latent servo", hardware_id=str(self.model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.params.goal_image:
            raise ConfigError(f"goal_image {self.params.goal_image!r}: {self._image_goal_refusal()}")
        self.get_logger().info(
            f"control model {self.model_dir} (latent {self.config.latent_dim}, tolerance "
            f"{self.servo_config.tolerance:.4f}) on {self.backend.name}; {self._latent_sub.topic_name} + "
            f"{self._scan_sub.topic_name} -> {self._cmd_pub.topic_name}; "
            f"{'goal from ' + self.goal_source if self.goal is not None else 'waiting for a goal'}"
        )

    # -- goals -----------------------------------------------------------------------------------------------
    def _set_goal(self, latent: np.ndarray, source: str) -> None:
        self.goal = np.asarray(latent, dtype=np.float64).copy()
        self.goal_source = source
        self.state = ServoState(command=self.state.command)
        self.status = "servoing"
        self.get_logger().info(f"new goal from {source}")

    def _image_goal_refusal(self) -> str:
        return (f"goal images need a control model of the camera; {self.model_dir} is a {self.config.modality} "
                f"model: teach the goal with {SET_GOAL_SERVICE} or send its latent on {GOAL_LATENT_TOPIC}")

    def _on_goal_image(self, _msg: Any) -> None:
        self._reject(f"goal image: {self._image_goal_refusal()}")

    def _on_goal_latent(self, msg: Any) -> None:
        try:
            mean, _ = msg_to_latent(msg, expected_dim=self.config.latent_dim)
            if not np.all(np.isfinite(mean)):
                raise InputError("goal latent holds NaN or inf")
            self._set_goal(mean, GOAL_LATENT_TOPIC)
        except InputError as err:
            self._reject(f"goal latent: {err}")

    def _on_set_goal(self, _request: Any, response: Any) -> Any:
        if self._latest is None or self._is_stale():
            response.success = False
            response.message = f"no fresh latent on {self._latent_sub.topic_name} to take as the goal"
            return response
        self._set_goal(self._latest, SET_GOAL_SERVICE)
        response.success = True
        response.message = f"goal set from the latent stamped {self._latest_stamp_ns} ns"
        return response

    # -- control ---------------------------------------------------------------------------------------------
    def _on_scan(self, msg: Any) -> None:
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        self._scans[stamp] = msg
        while len(self._scans) > SCAN_HISTORY:
            self._scans.popitem(last=False)

    def _sensor_for(self, scan: Any) -> ScanLatentSensor:
        geometry = (float(scan.angle_min), float(scan.angle_increment), float(scan.range_min),
                    float(scan.range_max), len(scan.ranges))
        if self._sensor is None or geometry != self._geometry:
            encode = model_scan_encoder(self.backend, self.config, *geometry[:4])
            self._sensor = ScanLatentSensor(encode, geometry[0], geometry[1], geometry[3])
            self._geometry = geometry
        return self._sensor

    def _on_latent(self, msg: Any) -> None:
        start = time.perf_counter()
        self.stats.on_received()
        try:
            mean, _, header = stamped_msg_to_latent(msg, expected_dim=self.config.latent_dim)
        except InputError as err:
            self._reject(f"latent: {err}")
            return
        stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        self._latest, self._latest_stamp_ns = mean, stamp
        if self.goal is None:
            self._publish_command(0.0, 0.0)
            return
        scan = self._scans.get(stamp)
        if scan is None:
            self._reject(f"no scan with the latent's stamp {stamp} ns on {self._scan_sub.topic_name} "
                         "(remap `scan` to the encoder's input)")
            self._publish_command(0.0, 0.0)
            return
        try:
            sensor = self._sensor_for(scan)
            ranges = np.asarray(scan.ranges, dtype=np.float32)
            _, jacobian = sensor.latent_and_jacobian(ranges)
            dt = 0.1 if self._last_step_ns is None else min(max((stamp - self._last_step_ns) * 1e-9, 0.01), 0.5)
            self.state, (v, w) = servo_step(self.state, mean, self.goal, jacobian, dt, self.servo_config)
        except VaeRosError as err:
            self._reject(f"servo step: {err}")
            self._publish_command(0.0, 0.0)
            return
        self._last_step_ns = stamp
        self.status = self.state.status
        if self.status in (CONVERGED, LOST):
            v, w = 0.0, 0.0
        self._publish_command(v, w)
        self._error_pub.publish(self._float32(data=float(self.state.error)))
        self.stats.on_published(time.perf_counter() - start)

    def _is_stale(self) -> bool:
        if self._latest_stamp_ns is None:
            return True
        age = (self.get_clock().now().nanoseconds - self._latest_stamp_ns) * 1e-9
        return age > self.params.stale_timeout

    def _on_watchdog(self) -> None:
        """Zero velocity while the newest latent is older than stale_timeout (or none came yet)."""
        if self._is_stale():
            if self.goal is not None and self.status != STALE:
                self.get_logger().warning(f"no fresh latent for {self.params.stale_timeout} s: stopping",
                                          throttle_duration_sec=WARN_THROTTLE_S)
            if self.goal is not None:
                self.status = STALE
            self.state = dataclasses.replace(self.state, command=(0.0, 0.0))
            self._publish_command(0.0, 0.0)

    def _publish_command(self, linear: float, angular: float) -> None:
        msg = self._twist()
        msg.linear.x = float(linear)
        msg.angular.z = float(angular)
        self._cmd_pub.publish(msg)

    def _reject(self, reason: str) -> None:
        self.stats.on_rejected(reason)
        self.get_logger().warning(f"rejected {reason}", throttle_duration_sec=WARN_THROTTLE_S)

    # -- parameters and health -------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters: list[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        names = {f.name for f in dataclasses.fields(ServoParams)}
        updates = {p.name: p.value for p in parameters if p.name in names}
        try:
            candidate = dataclasses.replace(self.params, **updates)
            candidate.validate()
            if not candidate.tolerance and not self._calibrated:
                self._calibrated = calibrated_tolerance(self.config.training)
            servo_config = candidate.servo_config(self._calibrated)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self.params, self.servo_config = candidate, servo_config
        return SetParametersResult(successful=True)

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        est = self.state.estimate
        return [
            ("state", self.status),
            ("latent_error", f"{self.state.error:.4f}" if math.isfinite(self.state.error) else "none"),
            ("tolerance", f"{self.servo_config.tolerance:.4f}"),
            ("goal_source", self.goal_source or "none"),
            ("goal_estimate_robot_frame", f"{est[0]:.3f} m, {est[1]:.3f} m, {math.degrees(est[2]):.1f} deg"),
            ("command", f"{self.state.command[0]:.3f} m/s, {self.state.command[1]:.3f} rad/s"),
            ("backend", self.backend.name),
        ]

    def close(self) -> None:
        """Fail safe on the way out: a last zero command (run_node calls this in its finally)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._publish_command(0.0, 0.0)
        except Exception as err:  # noqa: BLE001 - the context may already be gone; nothing else to do
            print(f"{NODE_NAME}: could not publish the final zero command: {err}", file=sys.stderr)


def main(args: list[str] | None = None) -> int:
    """Console script / `python -m vae_ros.latent_servo_node` entry point."""
    return run_node(LatentServoNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
