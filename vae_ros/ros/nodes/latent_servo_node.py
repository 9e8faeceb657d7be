"""latent_servo_node: drives the robot so that its current latent reaches a goal latent (geometry_msgs/Twist).

Inputs (relative names; remap as needed):
- `vae/latent_stamped` (sensor_msgs/Image 32FC1, from encoder_node running the same control model): the
  current latent z, stamped with its sensor message. Each fresh latent is one control step, so the node
  runs at the sensor rate.
- Goals, changeable while running (vae_ros.ros.nodes.control_base, shared with world_model_node):
  `servo/set_goal` (std_srvs/Trigger: the current latent becomes the goal — teach, then repeat),
  `servo/clear_goal` (forget it and stop), `servo/goal_latent` (std_msgs/Float32MultiArray, the contract's
  layout, e.g. a latent recorded earlier), and `servo/goal_image` / the `goal_image` parameter: the packaged
  control model reads LaserScans, so a goal image is looked up among the camera views the node has seen
  (`camera/image_raw`, each kept beside the latent of the same stamp; `view_memory`): the matching view's
  latent becomes the goal; until a view matches, the robot stays stopped. With a fused camera + LiDAR model the
  image is aligned with the live camera view through the live scan (`goal_align`), or, where that finds no sound
  match, the camera expert's joint latent of the image is the goal until a view matches (docs/FUSION.md).

The control law (vae_ros.control.runtime.servo): the model's servo head estimates where the goal lies in the robot
frame from (z, z*) (vae_ros.control.runtime.pose_head), and a coarse-to-fine differential-drive law with velocity
and acceleration limits drives there; convergence is declared from the latent error (`tolerance`, by
default the model's calibrated value meaning <= 0.10 m and 5 deg).

Outputs: `cmd_vel` (geometry_msgs/Twist), `servo/error` (std_msgs/Float32, latent error norm), and
/diagnostics with the servo state: idle (no goal), servoing, converged, lost, stale.

Every command passes the controllers' scan safety layer on the newest LaserScan on `scan`
(vae_ros.ros.nodes.control_base: it slows and stops the robot short of obstacles; no fresh scan, no motion,
unless `scan_safety:=false`); /diagnostics `blocked` says what it did.

Fail-safe: zero velocity when no goal is set, when the newest latent is older than `stale_timeout` (judged
by its header stamp against this node's clock: set use_sim_time with a simulator), when a step fails, on
convergence or loss, and on shutdown.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any

import numpy as np

from vae_ros.control.runtime.control_model import ControlModel, control_model_dir
from vae_ros.control.runtime.servo import CONVERGED, LOST, ServoConfig, ServoState, servo_step
from vae_ros.core.conversions.latent import stamped_msg_to_latent
from vae_ros.core.diagnostics import NodeStats
from vae_ros.ros.interface import SERVO_ERROR_TOPIC
from vae_ros.ros.kit.declare import declare_params, on_parameter_changes
from vae_ros.ros.kit.health import DiagnosticsPublisher
from vae_ros.ros.kit.params import ServoParams
from vae_ros.ros.kit.run import run_node
from vae_ros.ros.nodes.control_base import ControlNode, converged_tolerance
from vae_ros.ros.qos import LATENT_QOS

NODE_NAME = "latent_servo_node"


class LatentServoNode(ControlNode):
    """vae/latent_stamped + goal latent -> servo head + servo_step -> cmd_vel; zero on stale input, error, shutdown."""

    ACTIVE = "servoing"
    GOAL_DTYPE = np.float64

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.params: ServoParams = declare_params(self, ServoParams)
        self.model_dir = control_model_dir(self.params.model)
        self.model = ControlModel(self.model_dir)  # its encoder is never run here: latents come in
        self.servo_config = self._servo_config(self.params)
        from std_msgs.msg import Float32

        self._float32 = Float32
        self.state = ServoState()
        self._last_step_ns: int | None = None
        self.stats = NodeStats()
        self._start_control(self.model.latent_dim, self.model_dir, self.model.config.modality)
        self._error_pub = self.create_publisher(Float32, SERVO_ERROR_TOPIC, LATENT_QOS)
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: latent servo", hardware_id=str(self.model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        on_parameter_changes(self, lambda: self.params, self._apply_params)
        self._goal_image_parameter(self.params.goal_image)
        self.get_logger().info(
            f"control model {self.model_dir} (latent {self.model.latent_dim}, tolerance "
            f"{self.servo_config.tolerance:.4f}); {self._latent_sub.topic_name} -> {self._cmd_pub.topic_name}; "
            f"{'goal from ' + self.goal_source if self.goal is not None else 'waiting for a goal'}"
        )

    # -- controller state (ControlNode hooks) ----------------------------------------------------------------
    def _reset_for_goal(self) -> None:
        self.state = ServoState(command=self.state.command)

    def _reset_command(self) -> None:
        self.state = dataclasses.replace(self.state, command=(0.0, 0.0))

    def _goal_estimate(self, z: np.ndarray, goal: np.ndarray) -> np.ndarray | None:
        """goal_align's searches on the way look around where the servo head puts the goal (as the servo steers)."""
        return np.asarray(self.model.estimate(z, goal), dtype=np.float64)

    # -- control ---------------------------------------------------------------------------------------------
    def _on_latent(self, msg: Any) -> None:
        start = time.perf_counter()
        self.stats.on_received()
        mean, _, header = stamped_msg_to_latent(msg, expected_dim=self.model.latent_dim)
        stamp = self._record_latent(mean, header)
        if self.goal is None:
            self._publish_command(*self._idle_command())  # zero, or goal_align looking around
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
        sent = self._publish_command(v, w)  # through the scan safety layer
        if sent != (v, w):  # the servo carries what was sent (its acceleration limits, its goal estimate)
            self.state = dataclasses.replace(self.state, command=sent)
        self._error_pub.publish(self._float32(data=float(self.state.error)))
        self.stats.on_published(time.perf_counter() - start)

    # -- parameters and health -------------------------------------------------------------------------------
    def _servo_config(self, params: ServoParams) -> ServoConfig:
        return params.servo_config(converged_tolerance(params.tolerance, self.model_dir, self.model.config.training))

    def _apply_params(self, params: ServoParams) -> None:
        self.servo_config = self._servo_config(params)
        self.params = params

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        est = self.state.estimate
        return [
            ("state", self.status),
            ("phase", "backing off" if self.state.backoff else "aligning yaw" if self.state.fine else "approaching"),
            ("latent_error", f"{self.state.error:.4f}" if math.isfinite(self.state.error) else "none"),
            ("tolerance", f"{self.servo_config.tolerance:.4f}"),
            ("goal_source", self.goal_source or "none"),
            ("goal_estimate_robot_frame", f"{est[0]:.3f} m, {est[1]:.3f} m, {math.degrees(est[2]):.1f} deg"),
            ("command", f"{self.state.command[0]:.3f} m/s, {self.state.command[1]:.3f} rad/s"),
            ("model", str(self.model_dir)),
            *self._safety_diagnostics(),
            *self._link_diagnostics(),
            *self._view_diagnostics(),
        ]


def main(args: list[str] | None = None) -> int:
    """Console script / `python -m vae_ros.ros.nodes.latent_servo_node` entry point."""
    return run_node(LatentServoNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
