"""world_model_node: a learned latent world model on the robot: one-step predictions and MPC toward a goal.

Inputs (relative names; remap as needed):
- `vae/latent_stamped` (sensor_msgs/Image 32FC1, from encoder_node): the current latent z_t, stamped with
  its sensor message. Each fresh latent is one model step.
- `cmd_vel` (geometry_msgs/Twist): the executed commands (this node's own while it plans, another
  controller's or a joystick's while it has no goal): the action the one-step prediction is made for.
- `scan` (sensor_msgs/LaserScan, optional): the newest scan gives obstacle points for the planner's
  collision cost (parameter `collision`).
- Goals, changeable while running, exactly as latent_servo_node takes them: `servo/set_goal`
  (std_srvs/Trigger: the current latent becomes the goal), `servo/goal_latent`
  (std_msgs/Float32MultiArray), and for camera models `servo/goal_image` / the `goal_image` parameter.
  Goal images are refused with a clear message for LiDAR models (use set_goal).

Outputs: `world_model/predicted_latent` (the one-step prediction z_{t+1} = f(z_t, a_t) in the stamped
layout: row 0 the ensemble mean, row 1 the log of its predictive variance, stamped t + dt, the time it
predicts), `cmd_vel` (the first command of each plan) and /diagnostics: state (idle, planning,
converged, lost, stale), the running one-step prediction error, planning time (p50/p99/max), plan cost.

The planner (vae_ros.control.planner.plan_step: the cross-entropy method over the ensemble) is pure and
ROS-free; this file is its shell. Fail-safe as the servo: zero velocity when no goal is set, when the
newest latent is older than `stale_timeout` (by its header stamp against this node's clock: set
use_sim_time with a simulator), when a step fails, on convergence and on shutdown.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node

from vae_ros.control.control_model import calibrated_tolerance, control_model_dir
from vae_ros.control.dynamics import LatentDynamics, load_dynamics_dir
from vae_ros.control.planner import CONVERGED, LOST, MpcConfig, MpcState, plan_step, scan_obstacles
from vae_ros.control.servo import ServoConfig
from vae_ros.conversions import latent_to_stamped_msg, msg_to_latent, stamped_msg_to_latent
from vae_ros.core.backends import load_config
from vae_ros.core.diagnostics import NodeStats, ValueWindow
from vae_ros.core.errors import ConfigError, InputError, VaeRosError
from vae_ros.latent_servo_node import GOAL_IMAGE_TOPIC, GOAL_LATENT_TOPIC, SET_GOAL_SERVICE
from vae_ros.node_utils import DiagnosticsPublisher, LatestWorker, ParamSpec, declare_parameters, run_node
from vae_ros.qos import COMMAND_QOS, LATENT_QOS, sensor_qos

NODE_NAME = "world_model_node"
LATENT_TOPIC = "vae/latent_stamped"
CMD_TOPIC = "cmd_vel"
SCAN_TOPIC = "scan"
PREDICTED_TOPIC = "world_model/predicted_latent"
DYNAMICS_SUBDIR = "dynamics"  # `dynamics` '' = <model>/dynamics
IDLE, PLANNING, STALE = "idle", "planning", "stale"
WARN_THROTTLE_S = 2.0
ERROR_LEVEL = 2  # diagnostic_msgs/DiagnosticStatus.ERROR

PARAMETERS = [
    ParamSpec("model", "", "VAE model directory whose latents this node receives; empty = the packaged "
              "models/control_default.", read_only=True),
    ParamSpec("dynamics", "", "Dynamics directory (`vae-ros train-dynamics --out`) trained on that model's "
              "latents; empty = <model>/dynamics.", read_only=True),
    ParamSpec("goal_image", "", "Image file whose latent is the goal at start (camera models only); empty = "
              "wait for a goal on servo/goal_latent, servo/goal_image or servo/set_goal.", read_only=True),
    ParamSpec("horizon", 12, "Planning horizon in model steps (each the dynamics' dt, e.g. 0.1 s)."),
    ParamSpec("samples", 400, "Candidate command sequences per CEM iteration."),
    ParamSpec("iterations", 4, "CEM iterations per plan."),
    ParamSpec("elites", 40, "Cheapest candidates the CEM refits to (at most samples)."),
    ParamSpec("max_linear", 0.3, "Speed limit (m/s)."),
    ParamSpec("max_angular", 0.8, "Turn-rate limit (rad/s)."),
    ParamSpec("max_linear_accel", 0.8, "Linear acceleration limit (m/s^2)."),
    ParamSpec("max_angular_accel", 3.0, "Angular acceleration limit (rad/s^2)."),
    ParamSpec("stale_timeout", 0.5, "Seconds since the newest latent's header stamp after which the node "
              "publishes zero velocity."),
    ParamSpec("tolerance", 0.0, "Latent error norm that counts as converged; 0 = the model's calibrated value "
              "(model.json training.control.tolerance)."),
    ParamSpec("collision", True, "Add a collision cost from the newest LaserScan on `scan` to the plan."),
    ParamSpec("collision_radius", 0.3, "Robot radius plus margin for the collision cost (m)."),
    ParamSpec("seed", 0, "Seed of the planner's sampling (each plan is reproducible from it and its step)."),
    ParamSpec("cost", "latent", "Plan cost: latent (squared latent distance to the goal) or pose (the control "
              "model's relative-pose head on the predicted latents, shaped for a differential drive).",
              read_only=True),
    ParamSpec("action_repeat", 1, "Model steps each planned command is held (horizon / action_repeat decisions).",
              read_only=True),
    ParamSpec("localise", False, "Find the goal by imagined turning in place when the head cannot see it from "
              "here, and carry that belief (cost pose).", read_only=True),
    ParamSpec("handover_distance", 0.0, "Within this estimated goal distance (m) the servo law drives; 0 = never.",
              read_only=True),
    ParamSpec("backend", "auto", "Inference runtime for goal images (camera models): auto, torch, "
              "onnxruntime or tensorrt.", read_only=True),
    ParamSpec("device", "cpu", "cpu or cuda (goal images).", read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics reports.", read_only=True),
]


@dataclass(frozen=True)
class WorldModelParams:
    """The node's parameters, read once at start-up; runtime changes swap in a validated copy."""

    model: str = ""
    dynamics: str = ""
    goal_image: str = ""
    horizon: int = 12
    samples: int = 400
    iterations: int = 4
    elites: int = 40
    max_linear: float = 0.3
    max_angular: float = 0.8
    max_linear_accel: float = 0.8
    max_angular_accel: float = 3.0
    stale_timeout: float = 0.5
    tolerance: float = 0.0
    collision: bool = True
    collision_radius: float = 0.3
    seed: int = 0
    cost: str = "latent"
    action_repeat: int = 1
    localise: bool = False
    handover_distance: float = 0.0
    backend: str = "auto"
    device: str = "cpu"
    diagnostics_period: float = 1.0

    def validate(self) -> None:
        for name in ("stale_timeout", "diagnostics_period"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ConfigError(f"tolerance must be >= 0 (0 = the model's calibrated value), got {self.tolerance}")

    def mpc_config(self, dynamics: LatentDynamics, tolerance: float, head: Any = None) -> MpcConfig:
        shaped = self.cost == "pose" or self.handover_distance > 0
        config = MpcConfig(
            dynamics=dynamics, horizon=self.horizon, samples=self.samples, iterations=self.iterations,
            elites=min(self.elites, self.samples), max_linear=self.max_linear, max_angular=self.max_angular,
            max_linear_accel=self.max_linear_accel, max_angular_accel=self.max_angular_accel,
            collision_radius=self.collision_radius, tolerance=tolerance, seed=self.seed, cost=self.cost,
            head=head, action_repeat=self.action_repeat, localise=self.localise,
            handover_distance=self.handover_distance,
            servo=ServoConfig(tolerance=tolerance, max_linear=self.max_linear, max_angular=self.max_angular)
            if shaped else None)
        config.validate()
        return config


def dynamics_dir(path: str, model_dir: Path) -> Path:
    """The `dynamics` parameter -> a directory: empty means <model>/dynamics."""
    return Path(path.strip()).expanduser() if path.strip() else model_dir / DYNAMICS_SUBDIR


class _Diagnostics(DiagnosticsPublisher):
    """The shared publisher, raised to ERROR while unexpected failures have been counted."""

    def __init__(self, *args: Any, errors: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._errors = errors

    def build(self) -> Any:
        array = super().build()
        errors = self._errors()
        if errors:
            array.status[0].level = bytes([ERROR_LEVEL])
            array.status[0].message = f"{errors} unexpected error(s) in planning; " + array.status[0].message
        return array


class WorldModelNode(Node):
    """vae/latent_stamped + cmd_vel (+ scan) + goal -> predicted latent, CEM plan -> cmd_vel; fail-safe."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.params = WorldModelParams(**declare_parameters(self, PARAMETERS))
        self.params.validate()
        self.model_dir = control_model_dir(self.params.model)
        self.config = load_config(self.model_dir)
        self.dynamics_dir = dynamics_dir(self.params.dynamics, self.model_dir)
        self.dynamics = load_dynamics_dir(self.dynamics_dir)
        import torch

        # One thread: small batched matmuls gain nothing from more, and the encoder shares the cores
        # (bench/planner.py: threaded BLAS on a loaded 2-core machine is 10-40x slower).
        torch.set_num_threads(1)
        if self.dynamics.latent_dim != self.config.latent_dim:
            raise ConfigError(f"dynamics {self.dynamics_dir} predicts {self.dynamics.latent_dim}-D latents but the "
                              f"model {self.model_dir} has {self.config.latent_dim}")
        self._calibrated = calibrated_tolerance(self.config.training)
        self._head = None
        if self.params.cost == "pose" or self.params.handover_distance > 0:
            from vae_ros.control.pose_head import PoseHeadNumpy

            self._head = PoseHeadNumpy.load(self.model_dir, self.config.latent_dim)
        self.mpc_config = self.params.mpc_config(self.dynamics, self._tolerance(self.params), self._head)
        self._warn_if_other_model()

        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image, LaserScan
        from std_msgs.msg import Float32MultiArray
        from std_srvs.srv import Trigger

        self._twist = Twist
        self.state = MpcState()
        self.goal: np.ndarray | None = None
        self.goal_source = ""
        self.status = IDLE
        self._latest: np.ndarray | None = None
        self._latest_stamp_ns: int | None = None
        self._executed = (0.0, 0.0)  # newest command seen on cmd_vel
        self._obstacles: np.ndarray | None = None
        self._prediction: tuple[int, np.ndarray, np.ndarray] | None = None  # (stamp ns, mean, var) for t+dt
        self._pred_error = ValueWindow(200)
        self._pred_zscore = ValueWindow(200)
        self._plan_ms = ValueWindow(500)
        self._internal_errors = 0
        self._backend: Any = None
        self._closed = False
        self._lock = threading.RLock()  # goal and planner state: executor thread vs planner thread

        self._cmd_pub = self.create_publisher(Twist, CMD_TOPIC, COMMAND_QOS)
        self._pred_pub = self.create_publisher(Image, PREDICTED_TOPIC, LATENT_QOS)
        self.stats = NodeStats()
        self._worker = LatestWorker(self._step, self.stats.on_dropped, self._on_worker_failure,
                                    name="world_model_planner")
        self._latent_sub = self.create_subscription(Image, LATENT_TOPIC, self._on_latent, LATENT_QOS)
        self._cmd_sub = self.create_subscription(Twist, CMD_TOPIC, self._on_cmd_vel, COMMAND_QOS)
        self._scan_sub = self.create_subscription(LaserScan, SCAN_TOPIC, self._on_scan, sensor_qos(depth=1))
        self._goal_latent_sub = self.create_subscription(Float32MultiArray, GOAL_LATENT_TOPIC, self._on_goal_latent,
                                                         LATENT_QOS)
        self._goal_image_sub = self.create_subscription(Image, GOAL_IMAGE_TOPIC, self._on_goal_image, LATENT_QOS)
        self._set_goal_srv = self.create_service(Trigger, SET_GOAL_SERVICE, self._on_set_goal)
        self._watchdog = self.create_timer(0.1, self._on_watchdog)
        self._diagnostics = _Diagnostics(
            self, self.stats, f"{self.get_fully_qualified_name()}: world model",
            hardware_id=str(self.dynamics_dir), period=self.params.diagnostics_period,
            extra=self._diagnostic_values, errors=lambda: self._internal_errors)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        _stop_before_shutdown()
        if self.params.goal_image:
            self._set_goal(self._encode_goal_file(self.params.goal_image), "goal_image parameter")
        self.get_logger().info(
            f"model {self.model_dir} (latent {self.config.latent_dim}), dynamics {self.dynamics_dir} "
            f"({self.dynamics.members} members, dt {self.dynamics.dt:.3f} s); CEM {self.mpc_config.samples} x "
            f"{self.mpc_config.iterations} over {self.mpc_config.horizon} steps; {self._latent_sub.topic_name} -> "
            f"{self._pred_pub.topic_name}, {self._cmd_pub.topic_name}; "
            f"{'goal from ' + self.goal_source if self.goal is not None else 'waiting for a goal'}")

    def _tolerance(self, params: WorldModelParams) -> float:
        tolerance = params.tolerance or self._calibrated
        if not tolerance:
            raise ConfigError(f"{self.model_dir} has no calibrated tolerance (model.json training.control.tolerance); "
                              "set the `tolerance` parameter")
        return tolerance

    def _warn_if_other_model(self) -> None:
        trained_on = self.dynamics.config.latent_model.get("weights_sha256")
        if not trained_on:
            return
        from vae_ros.core.backends import weights_digest

        if weights_digest(self.model_dir) != trained_on:
            self.get_logger().warning(f"dynamics {self.dynamics_dir} was trained on the latents of another model "
                                      f"than {self.model_dir}: its predictions are likely meaningless")

    # -- goals -----------------------------------------------------------------------------------------------
    def _set_goal(self, latent: np.ndarray, source: str) -> None:
        with self._lock:
            self.goal = np.asarray(latent, dtype=np.float32).copy()
            self.goal_source = source
            self.state = MpcState(command=self.state.command, step=self.state.step)
            self.status = PLANNING
        self.get_logger().info(f"new goal from {source}")

    def _image_goal_refusal(self) -> str:
        return (f"goal images need a camera model; {self.model_dir} is a {self.config.modality} model: teach the "
                f"goal with {SET_GOAL_SERVICE} or send its latent on {GOAL_LATENT_TOPIC}")

    def _image_backend(self) -> Any:
        if self._backend is None:
            from vae_ros.core.backends import create_backend

            self._backend = create_backend(self.model_dir, self.params.backend, self.params.device)
        return self._backend

    def _encode_goal_file(self, path: str) -> np.ndarray:
        if self.config.modality != "image":
            raise ConfigError(f"goal_image {path!r}: {self._image_goal_refusal()}")
        from vae_ros.core.data import read_image_file
        from vae_ros.core.preprocess import preprocess_image

        sample = preprocess_image(read_image_file(path), self.config.image_spec)
        return np.asarray(self._image_backend().encode(sample[None])[0][0])

    def _on_goal_image(self, msg: Any) -> None:
        if self.config.modality != "image":
            self._reject(f"goal image: {self._image_goal_refusal()}")
            return
        try:
            from vae_ros.conversions import msg_to_model_input

            sample = msg_to_model_input(msg, self.config)
            self._set_goal(np.asarray(self._image_backend().encode(sample[None])[0][0]), GOAL_IMAGE_TOPIC)
        except VaeRosError as err:
            self._reject(f"goal image: {err}")

    def _on_goal_latent(self, msg: Any) -> None:
        try:
            mean, _ = msg_to_latent(msg, expected_dim=self.config.latent_dim)
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

    # -- inputs ----------------------------------------------------------------------------------------------
    def _on_cmd_vel(self, msg: Any) -> None:
        v, w = float(msg.linear.x), float(msg.angular.z)
        if math.isfinite(v) and math.isfinite(w):
            self._executed = (v, w)

    def _on_scan(self, msg: Any) -> None:
        if not self.params.collision:
            return
        try:
            self._obstacles = scan_obstacles(np.asarray(msg.ranges, np.float32), float(msg.angle_min),
                                             float(msg.angle_increment))
        except (ValueError, TypeError) as err:
            self._reject(f"scan: {err}")

    def _on_latent(self, msg: Any) -> None:
        """Executor thread: check the latent, score the last prediction, hand the step to the planner thread."""
        self.stats.on_received()
        try:
            mean, _, header = stamped_msg_to_latent(msg, expected_dim=self.config.latent_dim)
        except InputError as err:
            self._reject(f"latent: {err}")
            return
        stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        self._latest, self._latest_stamp_ns = mean, stamp
        self._score_prediction(stamp, mean)
        self._worker.submit((mean, header, stamp, time.perf_counter()))

    def _step(self, item: tuple[np.ndarray, Any, int, float]) -> None:
        """Planner thread (newest latent only): plan, command, predict. Never raises: fails safe instead."""
        mean, header, stamp, received = item
        try:
            with self._lock:
                if stamp != self._latest_stamp_ns or self._is_stale():
                    self.stats.on_dropped()  # superseded or too old by now: the watchdog holds the robot
                    return
                command = self._control(mean)
            self._predict(mean, command, header, stamp)
        except VaeRosError as err:
            self._reject(f"planning: {err}")
            self._stop()
            return
        except Exception as err:  # noqa: BLE001 - one bad step must not take the robot's controller down
            self._internal_errors += 1
            self.get_logger().error(f"planning failed ({type(err).__name__}: {err}); stopping the robot\n"
                                    f"{traceback.format_exc()}", throttle_duration_sec=WARN_THROTTLE_S)
            self._stop()
            return
        self.stats.on_published(time.perf_counter() - received)

    def _control(self, z: np.ndarray) -> tuple[float, float]:
        """Plan and publish a command when a goal is set (lock held); the action the next interval will see."""
        if self.goal is None:  # the contract: zero velocity and wait; predict for what cmd_vel last carried
            self._publish_command(0.0, 0.0)
            return self._executed
        started = time.perf_counter()
        obstacles = self._obstacles if self.params.collision else None
        self.state, (v, w) = plan_step(self.state, z, self.goal, self.mpc_config, obstacles)
        self._plan_ms.add((time.perf_counter() - started) * 1e3)
        self.status = PLANNING if self.state.status not in (CONVERGED, LOST) else self.state.status
        if self.status in (CONVERGED, LOST):
            v, w = 0.0, 0.0
        if self._is_stale():  # the latent aged while planning: the watchdog's zero stands
            self._stop()
            return (0.0, 0.0)
        self._publish_command(v, w)
        return (v, w)

    def _predict(self, z: np.ndarray, command: tuple[float, float], header: Any, stamp: int) -> None:
        """Publish z_{t+1} = f(z_t, a_t), stamped t + dt, and keep it to score against the next latent."""
        mean, var = self.dynamics.predict(z[None], np.array([command], np.float32))
        dt_ns = int(round(self.dynamics.dt * 1e9))
        target = stamp + dt_ns
        self._prediction = (target, mean[0], var[0])
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        stamped = Header(frame_id=str(header.frame_id),
                         stamp=Time(sec=target // 1_000_000_000, nanosec=target % 1_000_000_000))
        self._pred_pub.publish(latent_to_stamped_msg(mean[0], np.log(np.maximum(var[0], 1e-12)), stamped))

    def _score_prediction(self, stamp: int, z: np.ndarray) -> None:
        """Running one-step error: the last prediction against this latent, if it predicted this time."""
        if self._prediction is None:
            return
        target, mean, var = self._prediction
        if abs(stamp - target) <= 0.5 * self.dynamics.dt * 1e9:
            err = z - mean
            self._pred_error.add(float(np.linalg.norm(err)))
            self._pred_zscore.add(float(np.sqrt(np.mean(err**2 / var))))
        self._prediction = None

    # -- safety ----------------------------------------------------------------------------------------------
    def _is_stale(self) -> bool:
        if self._latest_stamp_ns is None:
            return True
        age = (self.get_clock().now().nanoseconds - self._latest_stamp_ns) * 1e-9
        return age > self.params.stale_timeout

    def _on_watchdog(self) -> None:
        """Zero velocity while the newest latent is older than stale_timeout (or none came yet)."""
        if not self._is_stale():
            return
        if self.goal is not None:
            if self.status != STALE:
                self.get_logger().warning(f"no fresh latent for {self.params.stale_timeout} s: stopping",
                                          throttle_duration_sec=WARN_THROTTLE_S)
            self.status = STALE
        self._stop()

    def _stop(self) -> None:
        with self._lock:
            self.state = dataclasses.replace(self.state, command=(0.0, 0.0), plan=None)
            self._publish_command(0.0, 0.0)

    def _on_worker_failure(self) -> None:  # _step never raises; kept for LatestWorker's contract
        self._internal_errors += 1

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

        names = {f.name for f in dataclasses.fields(WorldModelParams)}
        updates = {p.name: p.value for p in parameters if p.name in names}
        try:
            candidate = dataclasses.replace(self.params, **updates)
            candidate.validate()
            mpc_config = candidate.mpc_config(self.dynamics, self._tolerance(candidate), self._head)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        if mpc_config.horizon != self.mpc_config.horizon:
            self.state = dataclasses.replace(self.state, plan=None)  # the warm start has the old length
        self.params, self.mpc_config = candidate, mpc_config
        return SetParametersResult(successful=True)

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        def fmt(value: float) -> str:
            return "nan" if math.isnan(value) else f"{value:.4f}"

        pred, zs, plan_ms = self._pred_error.summary(), self._pred_zscore.summary(), self._plan_ms.summary()
        return [
            ("state", self.status),
            ("latent_error", fmt(self.state.error) if math.isfinite(self.state.error) else "none"),
            ("tolerance", fmt(self.mpc_config.tolerance)),
            ("goal_source", self.goal_source or "none"),
            ("prediction_error_mean", fmt(pred.mean)),
            ("prediction_error_p50", fmt(pred.p50)),
            ("prediction_error_count", str(pred.count)),
            ("prediction_zscore_rms_mean", fmt(zs.mean)),
            ("plan_time_p50_ms", fmt(plan_ms.p50)),
            ("plan_time_p99_ms", fmt(plan_ms.p99)),
            ("plan_time_max_ms", fmt(plan_ms.max)),
            ("plan_cost", fmt(self.state.cost) if math.isfinite(self.state.cost) else "none"),
            ("command", f"{self.state.command[0]:.3f} m/s, {self.state.command[1]:.3f} rad/s"),
            ("internal_errors", str(self._internal_errors)),
        ]

    def close(self) -> None:
        """Fail safe on the way out: a last zero command (run_node calls this in its finally)."""
        if self._closed:
            return
        self._closed = True
        self._worker.close()
        try:
            self._publish_command(0.0, 0.0)
            from rclpy.duration import Duration

            # Reliable subscribers (the base) acknowledge the stop before the process goes.
            self._cmd_pub.wait_for_all_acked(Duration(seconds=0.5))
        except Exception as err:  # noqa: BLE001 - the context may already be gone; nothing else to do
            print(f"{NODE_NAME}: could not publish the final zero command: {err}", file=sys.stderr)


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stop_before_shutdown() -> None:
    """Let SIGINT / SIGTERM reach run_node as KeyboardInterrupt while the ROS context is still valid.

    rclpy's own handlers shut the context down first, so the final zero command of close() could no longer
    be published (measured: "publisher's context is invalid"). Python's handlers run between callbacks (the
    0.1 s watchdog timer bounds the wait), run_node then calls close(), which publishes the zero, and only
    then shuts rclpy down. Only in the main thread (where run_node builds the node).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    from rclpy.signals import uninstall_signal_handlers

    uninstall_signal_handlers()
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)


def main(args: list[str] | None = None) -> int:
    """Console script / `python -m vae_ros.world_model_node` entry point."""
    return run_node(WorldModelNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
