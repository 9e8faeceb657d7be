"""latent_servo_node: drives the robot so that its current latent reaches a goal latent (geometry_msgs/Twist).

Inputs (relative names; remap as needed):
- `vae/latent_stamped` (sensor_msgs/Image 32FC1, from encoder_node running the same control model): the
  current latent z, stamped with its sensor message. Each fresh latent is one control step, so the node
  runs at the sensor rate.
- Goals, changeable while running: `servo/set_goal` (std_srvs/Trigger: the current latent becomes the
  goal — teach, then repeat), `servo/goal_latent` (std_msgs/Float32MultiArray, the contract's layout, e.g.
  a latent recorded earlier). `servo/goal_image` and the `goal_image` parameter need a camera control
  model; the packaged control model reads LaserScans, so image goals are refused with a clear message.

The control law (vae_ros.control.servo): the model's servo head estimates where the goal lies in the robot
frame from (z, z*) (vae_ros.control.pose_head), and a coarse-to-fine differential-drive law with velocity
and acceleration limits drives there; convergence is declared from the latent error (`tolerance`, by
default the model's calibrated value meaning <= 0.10 m and 5 deg).

Outputs: `cmd_vel` (geometry_msgs/Twist), `servo/error` (std_msgs/Float32, latent error norm), and
/diagnostics with the servo state: idle (no goal), servoing, converged, lost, stale.

Fail-safe: zero velocity when no goal is set, when the newest latent is older than `stale_timeout` (judged
by its header stamp against this node's clock: set use_sim_time with a simulator), when a step fails, on
convergence or loss, and on shutdown.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.signals import uninstall_signal_handlers

from vae_ros.control.control_model import ControlModel, control_model_dir
from vae_ros.control.servo import CONVERGED, IDLE, LOST, ServoConfig, ServoState, servo_step
from vae_ros.conversions import msg_to_latent, stamped_msg_to_latent
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.node_utils import DiagnosticsPublisher, MessageGuard, ParamSpec, declare_parameters, run_node
from vae_ros.qos import COMMAND_QOS, LATENT_QOS

NODE_NAME = "latent_servo_node"
LATENT_TOPIC = "vae/latent_stamped"
CMD_TOPIC = "cmd_vel"
ERROR_TOPIC = "servo/error"
GOAL_LATENT_TOPIC = "servo/goal_latent"
GOAL_IMAGE_TOPIC = "servo/goal_image"
SET_GOAL_SERVICE = "servo/set_goal"
CLEAR_GOAL_SERVICE = "servo/clear_goal"
STALE = "stale"
WARN_THROTTLE_S = 2.0

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
    ParamSpec("backend", "auto", "Runtime of the control model's encoder where the servo encodes an observation "
              "itself (camera goal images, with camera control models): auto, torch, onnxruntime or tensorrt.",
              read_only=True),
    ParamSpec("device", "cpu", "cpu or cuda, for that encoder.", read_only=True),
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

    def servo_config(self, tolerance: float) -> ServoConfig:
        config = ServoConfig(
            tolerance=tolerance, gain=self.gain, angular_gain=self.angular_gain,
            max_linear=self.max_linear, max_angular=self.max_angular, max_linear_accel=self.max_linear_accel,
            max_angular_accel=self.max_angular_accel)
        config.validate()
        return config


class LatentServoNode(Node):
    """vae/latent_stamped + goal latent -> servo head + servo_step -> cmd_vel; zero on stale input, error, shutdown."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # rclpy's signal handlers shut the context down before Python sees Ctrl-C / SIGTERM, and then the
        # final zero command (close) could no longer be published: let the signal reach Python as
        # KeyboardInterrupt instead (run_node's handlers), so close() still has a valid context. The
        # watchdog timer wakes the executor for it.
        uninstall_signal_handlers()
        self.params = ServoParams(**declare_parameters(self, PARAMETERS))
        self.params.validate()
        self.model_dir = control_model_dir(self.params.model)
        self.model = ControlModel(self.model_dir, self.params.backend, self.params.device)
        self.servo_config = self._servo_config(self.params)

        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image
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
        self._closed = False

        self._cmd_pub = self.create_publisher(Twist, CMD_TOPIC, COMMAND_QOS)
        self._error_pub = self.create_publisher(Float32, ERROR_TOPIC, LATENT_QOS)
        self.stats = NodeStats()
        # One bad message is logged, counted and dropped, and the robot is stopped (fail safe).
        guard = MessageGuard(self, self._on_rejected, self._on_error)
        self._latent_sub = self.create_subscription(Image, LATENT_TOPIC, guard.wrap("a latent", self._on_latent),
                                                    LATENT_QOS)
        self._goal_latent_sub = self.create_subscription(
            Float32MultiArray, GOAL_LATENT_TOPIC, guard.wrap("a goal latent", self._on_goal_latent), LATENT_QOS)
        self._goal_image_sub = self.create_subscription(
            Image, GOAL_IMAGE_TOPIC, guard.wrap("a goal image", self._on_goal_image), LATENT_QOS)
        self._set_goal_srv = self.create_service(Trigger, SET_GOAL_SERVICE, self._on_set_goal)
        self._clear_goal_srv = self.create_service(Trigger, CLEAR_GOAL_SERVICE, self._on_clear_goal)
        # On the steady clock: it also wakes the executor at least every 0.1 s, so Ctrl-C is handled (see above)
        # even when no input arrives (a stopped simulator stops the sim-time clock too).
        self._watchdog = self.create_timer(0.1, self._on_watchdog, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: latent servo", hardware_id=str(self.model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.params.goal_image:
            raise ConfigError(f"goal_image {self.params.goal_image!r}: {self._image_goal_refusal()}")
        self.get_logger().info(
            f"control model {self.model_dir} (latent {self.model.latent_dim}, tolerance "
            f"{self.servo_config.tolerance:.4f}); {self._latent_sub.topic_name} -> {self._cmd_pub.topic_name}; "
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
        return (f"goal images need a control model of the camera; {self.model_dir} is a {self.model.config.modality} "
                f"model: teach the goal with {SET_GOAL_SERVICE} or send its latent on {GOAL_LATENT_TOPIC}")

    def _on_goal_image(self, _msg: Any) -> None:
        raise InputError(self._image_goal_refusal())

    def _on_goal_latent(self, msg: Any) -> None:
        mean, _ = msg_to_latent(msg, expected_dim=self.model.latent_dim)
        if not np.all(np.isfinite(mean)):
            raise InputError("goal latent holds NaN or inf")
        self._set_goal(mean, GOAL_LATENT_TOPIC)

    def _on_set_goal(self, _request: Any, response: Any) -> Any:
        if self._latest is None or self._is_stale():
            response.success = False
            response.message = f"no fresh latent on {self._latent_sub.topic_name} to take as the goal"
            return response
        self._set_goal(self._latest, SET_GOAL_SERVICE)
        response.success = True
        response.message = f"goal set from the latent stamped {self._latest_stamp_ns} ns"
        return response

    def _on_clear_goal(self, _request: Any, response: Any) -> Any:
        """Forget the goal and stop: the servo is idle until the next goal (e.g. before moving the robot)."""
        had = self.goal is not None
        self.goal, self.goal_source, self.status = None, "", IDLE
        self._stop()
        self.state = ServoState()
        response.success = True
        response.message = "goal cleared; stopped" if had else "no goal was set"
        return response

    # -- control ---------------------------------------------------------------------------------------------
    def _on_latent(self, msg: Any) -> None:
        start = time.perf_counter()
        self.stats.on_received()
        mean, _, header = stamped_msg_to_latent(msg, expected_dim=self.model.latent_dim)
        stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        self._latest, self._latest_stamp_ns = mean, stamp
        if self.goal is None:
            self._publish_command(0.0, 0.0)
            return
        if self._is_stale():
            # An old latent (a delayed link, a bag replayed late) is no basis for a command.
            self._on_watchdog()
            return
        estimate = self.model.estimate(mean, self.goal)
        dt = 0.1 if self._last_step_ns is None else min(max((stamp - self._last_step_ns) * 1e-9, 0.01), 0.5)
        self.state, (v, w) = servo_step(self.state, mean, self.goal, estimate, dt, self.servo_config)
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
            self._stop()

    def _publish_command(self, linear: float, angular: float) -> None:
        msg = self._twist()
        msg.linear.x = float(linear)
        msg.angular.z = float(angular)
        self._cmd_pub.publish(msg)

    def _stop(self) -> None:
        self.state = dataclasses.replace(self.state, command=(0.0, 0.0))
        self._publish_command(0.0, 0.0)

    def _on_rejected(self, reason: str) -> None:
        self.stats.on_rejected(reason)
        if self.goal is not None:
            self._stop()

    def _on_error(self, reason: str) -> None:
        self.stats.on_error(reason)
        self._stop()

    # -- parameters and health -------------------------------------------------------------------------------
    def _servo_config(self, params: ServoParams) -> ServoConfig:
        tolerance = params.tolerance or self.model.tolerance
        if not tolerance:
            raise ConfigError(f"{self.model_dir} has no calibrated servo tolerance (model.json "
                              "training.control.tolerance); set the `tolerance` parameter")
        return params.servo_config(tolerance)

    def _on_set_parameters(self, parameters: list[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        names = {f.name for f in dataclasses.fields(ServoParams)}
        updates = {p.name: p.value for p in parameters if p.name in names}
        try:
            candidate = dataclasses.replace(self.params, **updates)
            candidate.validate()
            servo_config = self._servo_config(candidate)
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
            ("model", str(self.model_dir)),
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
