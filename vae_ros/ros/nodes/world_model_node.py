"""world_model_node: a learned latent world model on the robot: one-step predictions and MPC toward a goal.

Inputs (relative names; remap as needed):
- `vae/latent_stamped` (sensor_msgs/Image 32FC1, from encoder_node): the current latent z_t, stamped with
  its sensor message. Each fresh latent is one model step.
- `cmd_vel` (geometry_msgs/Twist): the executed commands (this node's own while it plans, another
  controller's or a joystick's while it has no goal): the action the one-step prediction is made for.
- `scan` (sensor_msgs/LaserScan): the newest scan gives obstacle points for the planner's collision cost
  (parameter `collision`), and every command passes the controllers' scan safety layer on it
  (vae_ros.ros.nodes.control_base: no fresh scan, no motion, unless `scan_safety:=false`).
- Goals, changeable while running, exactly as latent_servo_node takes them (vae_ros.ros.nodes.control_base):
  `servo/set_goal` (std_srvs/Trigger: the current latent becomes the goal), `servo/clear_goal` (forget it
  and stop), `servo/goal_latent` (std_msgs/Float32MultiArray), `servo/goal_image` / the `goal_image`
  parameter: encoded by a camera model, looked up among remembered camera views for a LiDAR model (a fused
  model: aligned with the live view through the live scan (`goal_align`), else its camera expert's joint latent
  of the image until a view matches).

Outputs: `world_model/predicted_latent` (the one-step prediction z_{t+1} = f(z_t, a_t) in the stamped
layout: row 0 the ensemble mean, row 1 the log of its predictive variance, stamped t + dt, the time it
predicts), `world_model/planned_latents` (after each plan: the latents the chosen plan predicts, one row
per planned step, row k for time t + (k+1)·dt, sensor_msgs/Image 32FC1 of height `horizon`, stamped t like
the latent it planned from; none while the servo law drives near the goal), `cmd_vel` (the first command of
each plan) and /diagnostics: state (idle, planning,
converged, lost, stale), the running one-step prediction error, planning time (p50/p99/max), plan cost.

The planner (vae_ros.control.runtime.planner.plan_step: the cross-entropy method over the ensemble) is pure and
ROS-free; this file is its shell. Fail-safe as the servo: zero velocity when no goal is set, when the
newest latent is older than `stale_timeout` (by its header stamp against this node's clock: set
use_sim_time with a simulator), when a step fails, on convergence and on shutdown.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.runtime.control_model import (
    control_model_dir,
    encode_scans,
    goal_turner,
    latent_model_dir,
    servo_head_dir,
    turned_scans,
)
from vae_ros.control.runtime.dynamics import load_dynamics_dir, plan_device, rollout_runtime
from vae_ros.control.runtime.planner import CONVERGED, LOST, PLAN, MpcState, plan_step, scan_obstacles
from vae_ros.control.runtime.route_follower import full_turn_scan_model
from vae_ros.core.backends import load_config
from vae_ros.core.conversions.latent import latent_rows_to_msg, latent_to_stamped_msg, stamped_msg_to_latent
from vae_ros.core.diagnostics import NodeStats, ValueWindow
from vae_ros.core.errors import BackendUnavailableError, ConfigError
from vae_ros.core.model_dir import DYNAMICS_DIR
from vae_ros.ros.interface import CMD_TOPIC, PLANNED_TOPIC, PREDICTED_TOPIC
from vae_ros.ros.kit.declare import declare_params, on_parameter_changes
from vae_ros.ros.kit.guard import WARN_THROTTLE_S, LatestWorker
from vae_ros.ros.kit.health import DiagnosticsPublisher
from vae_ros.ros.kit.params import WorldModelParams
from vae_ros.ros.kit.run import run_node
from vae_ros.ros.nodes.control_base import ControlNode, converged_tolerance
from vae_ros.ros.qos import COMMAND_QOS, LATENT_QOS

NODE_NAME = "world_model_node"
PLANNING = "planning"


def dynamics_dir(path: str, model_dir: Path) -> Path:
    """The `dynamics` parameter -> a directory: empty means <model>/dynamics, for a fused model the LiDAR expert's
    (<model>/scan/dynamics) where the fused model has none of its own (its latent is that expert's)."""
    if path.strip():
        return Path(path.strip()).expanduser()
    own = model_dir / DYNAMICS_DIR
    return own if own.exists() else latent_model_dir(model_dir) / DYNAMICS_DIR


class WorldModelNode(ControlNode):
    """vae/latent_stamped + cmd_vel (+ scan) + goal -> predicted latent, CEM plan -> cmd_vel; fail-safe."""

    ACTIVE = PLANNING

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.params: WorldModelParams = declare_params(self, WorldModelParams)
        self.model_dir = control_model_dir(self.params.model)
        self.latent_dir = latent_model_dir(self.model_dir)  # a fused model's LiDAR expert: its latent space
        self.config = load_config(self.latent_dir)
        self.dynamics_dir = dynamics_dir(self.params.dynamics, self.model_dir)
        self.dynamics = load_dynamics_dir(self.dynamics_dir)
        self.dynamics.rollout_backend = rollout_runtime(self.params.backend)
        if self.dynamics.rollout_backend == "torch":  # only where the node runs torch anyway (the import rule)
            import torch

            # One thread: small batched matmuls gain nothing from more, and the encoder shares the cores
            # (bench/planner.py: threaded BLAS on a loaded 2-core machine is 10-40x slower).
            torch.set_num_threads(1)
            self._threads = "torch rollouts, 1 thread"
        else:
            from vae_ros.core.blas import limit_blas_threads

            self._threads = f"NumPy rollouts, {limit_blas_threads(1)}"
        if self.dynamics.latent_dim != self.config.latent_dim:
            raise ConfigError(f"dynamics {self.dynamics_dir} predicts {self.dynamics.latent_dim}-D latents but the "
                              f"model {self.model_dir} has {self.config.latent_dim}")
        self._refuse_other_model()
        self._head = self._load_head()
        self._goal_turner = self._make_goal_turner()
        self._device_costs: Any = None
        self.mpc_config = self.params.mpc_config(self.dynamics, self._tolerance(self.params), self._head,
                                                 self._goal_turner)
        self._device_costs = self._open_device_costs(self.mpc_config)
        self.mpc_config = dataclasses.replace(self.mpc_config, device_costs=self._device_costs)
        self._turn_scans = self.params.localiser == "turned_scan" and full_turn_scan_model(self.config)
        self._scan_ranges: tuple[np.ndarray, float, float, float, float] | None = None  # newest scan, turned_scan

        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image

        self.state = MpcState()
        self._executed = (0.0, 0.0)  # newest command seen on cmd_vel
        self._obstacles: np.ndarray | None = None
        self._prediction: tuple[int, np.ndarray, np.ndarray] | None = None  # (stamp ns, mean, var) for t+dt
        self._pred_error = ValueWindow(200)
        self._pred_zscore = ValueWindow(200)
        self._plan_ms = ValueWindow(500)
        self._late_plans = 0  # plans dropped because a stop, clear or new goal came meanwhile, or they took too long
        self._backend: Any = None
        self.stats = NodeStats()
        # Goal and planner state are shared by the executor thread and the planner thread.
        self._start_control(self.config.latent_dim, self.model_dir, self.config.modality, lock=threading.RLock())
        # Planning failures take the one path of a bad message (the guard): a domain error is a rejection, anything
        # else an error in the node's stats (/diagnostics ERROR until a report without new ones); both stop the robot.
        self._worker = LatestWorker(self._guard.wrap("a planning step", self._step), self.stats.on_dropped,
                                    self._on_worker_failure, name="world_model_planner")
        self._pred_pub = self.create_publisher(Image, PREDICTED_TOPIC, LATENT_QOS)
        self._plan_pub = self.create_publisher(Image, PLANNED_TOPIC, LATENT_QOS)
        self._cmd_sub = self.create_subscription(Twist, CMD_TOPIC, self._on_cmd_vel, COMMAND_QOS)
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: world model",
            hardware_id=str(self.dynamics_dir), period=self.params.diagnostics_period,
            extra=self._diagnostic_values)
        on_parameter_changes(self, lambda: self.params, self._apply_params)
        self._goal_image_parameter(self.params.goal_image)
        self.get_logger().info(
            f"model {self.model_dir} (latent {self.config.latent_dim}), dynamics {self.dynamics_dir} "
            f"({self.dynamics.members} members, dt {self.dynamics.dt:.3f} s); CEM {self.mpc_config.samples} x "
            f"{self.mpc_config.iterations} over {self.mpc_config.horizon} steps ({self._threads}); "
            f"{self._latent_sub.topic_name} -> "
            f"{self._pred_pub.topic_name}, {self._plan_pub.topic_name}, {self._cmd_pub.topic_name}; "
            f"{'goal from ' + self.goal_source if self.goal is not None else 'waiting for a goal'}")

    def _tolerance(self, params: WorldModelParams) -> float:
        return converged_tolerance(params.tolerance, self.model_dir, self.config.training)

    def _open_device_costs(self, config: Any) -> Any:
        """The planner's costs on the GPU (plan_device; vae_ros.control.runtime.plan_torch), or None to score them
        in NumPy here. cuda: on the GPU, and without a usable one the start ends with one line. auto (with device
        cuda): a few plans timed each way with `config`, the GPU kept only where it was faster; said once in the
        log either way."""
        if plan_device(self.params.plan_device, self.params.device) == "cpu":
            return None
        try:  # torch may be absent where the node's GPU runtime is ONNX Runtime's
            from vae_ros.control.runtime.plan_torch import measure_plans, open_plan_costs

            costs = open_plan_costs(self.dynamics, self._head, "cuda")
        except (ImportError, BackendUnavailableError) as err:
            why = f"torch does not import: {err}" if isinstance(err, ImportError) else str(err)
            if self.params.plan_device == "cuda":
                raise ConfigError(f"plan_device cuda: {why}") from err
            self.get_logger().warning(f"plan_device auto: planning on the CPU ({why})")
            return None
        log = self.get_logger()
        if self.params.plan_device == "auto":
            cpu_ms, device_ms = measure_plans(config, costs)
            if device_ms >= cpu_ms:
                log.info(f"plan_device auto: planning on the CPU ({cpu_ms:.1f} ms a plan; {device_ms:.1f} ms with the "
                         f"candidates scored on {costs.device})")
                return None
            log.info(f"plan_device auto: candidates scored on {costs.device} ({device_ms:.1f} ms a plan; "
                     f"{cpu_ms:.1f} ms on the CPU)")
        else:
            log.info(f"plan_device cuda: candidates rolled out and scored on {costs.device}")
        return costs

    def _refuse_other_model(self) -> None:
        """Dynamics trained on another model's latents predict nonsense for this one: refuse to drive on them.
        Dynamics that recorded no model digest (trained from a bag of latents) are taken as they are."""
        trained_on = self.dynamics.config.latent_model.get("weights_sha256")
        if not trained_on:
            return
        from vae_ros.core.backends import weights_digest

        digest = weights_digest(self.latent_dir)  # a fused model: its LiDAR expert's (latent_model_dir)
        if digest != trained_on:
            raise ConfigError(f"dynamics {self.dynamics_dir} was trained on the latents of another model than "
                              f"{self.model_dir} (weights sha256 {str(trained_on)[:12]}..., this model's "
                              f"{digest[:12]}...): its predictions would be meaningless; "
                              "pass the dynamics trained for this model, or train them with "
                              f"`vae-ros train-dynamics --model {self.model_dir}`")

    # -- controller state and goal images (ControlNode hooks) -------------------------------------------------
    def _reset_for_goal(self) -> None:
        self.state = MpcState(command=self.state.command, step=self.state.step)

    def _reset_command(self) -> None:
        self.state = dataclasses.replace(self.state, command=(0.0, 0.0), plan=None)

    def _goal_estimate(self, z: np.ndarray, goal: np.ndarray) -> np.ndarray | None:
        """goal_align's searches on the way look around where the pose head puts the goal; without the head (the
        latent cost) the aligned goal is not refined."""
        return None if self._head is None else np.asarray(self._head.estimate(z, goal), dtype=np.float64)

    def _goal_encoder(self) -> Any:
        if self._backend is None:
            from vae_ros.core.backends import create_backend

            self._backend = create_backend(self.latent_dir, self.params.backend, self.params.device)
        return self._backend

    def _make_goal_turner(self) -> Any:
        """The planner's goal_turner (the goal's scan decoded, turned and encoded by this model's runtime) for the
        turned_goal and both localisers on a full-turn LiDAR model; None otherwise (imagined look-around)."""
        if self.params.localiser not in ("turned_goal", "both"):
            return None
        if not full_turn_scan_model(self.config):
            self.get_logger().warning(f"localiser {self.params.localiser}: {self.latent_dir} is not a full-turn "
                                      "LiDAR model, so its goal cannot be turned; looking round in imagination")
            return None
        return lambda z_goal, turns: goal_turner(self._goal_encoder(), z_goal, turns)

    def _turned_scan(self) -> Any:
        """The planner's turned_scan for the newest LaserScan (localiser turned_scan), or None without one."""
        if not self._turn_scans or self._scan_ranges is None:
            return None
        ranges, angle_min, increment, range_min, range_max = self._scan_ranges
        spec = self.config.scan_spec

        def turned(turns: np.ndarray) -> np.ndarray:
            scans = turned_scans(ranges, increment, turns)
            return encode_scans(self._goal_encoder(), spec, scans, angle_min, increment, range_min, range_max)
        return turned

    def _load_head(self) -> Any:
        """The control model's relative-pose head where the pose cost wants it (None for the latent cost)."""
        from vae_ros.core.model_dir import SERVO_HEAD_FILE

        # Present at all (a link to /dev/zero, a FIFO too): PoseHeadNumpy.load then refuses what it cannot read,
        # as the servo does, rather than this node planning on another cost without a word.
        head_dir = servo_head_dir(self.model_dir)
        has_head = os.path.lexists(head_dir / SERVO_HEAD_FILE)
        cost = self.params.plan_cost(has_head)
        if cost != "pose":
            if self.params.cost == "auto":
                self.get_logger().info(f"{self.model_dir} has no {SERVO_HEAD_FILE}: planning on the latent distance")
            return None
        from vae_ros.control.runtime.pose_head import PoseHeadNumpy

        return PoseHeadNumpy.load(head_dir, self.config.latent_dim)

    # -- inputs ----------------------------------------------------------------------------------------------
    def _on_cmd_vel(self, msg: Any) -> None:
        v, w = float(msg.linear.x), float(msg.angular.z)
        if math.isfinite(v) and math.isfinite(w):
            self._executed = (v, w)

    def _on_scan_ranges(self, msg: Any, ranges: np.ndarray) -> None:
        """The scan (the base subscribes to it for the safety layer) as the planner's obstacle points."""
        if self.params.collision:
            self._obstacles = scan_obstacles(ranges, float(msg.angle_min), float(msg.angle_increment))
        if self._turn_scans:
            self._scan_ranges = (ranges, float(msg.angle_min), float(msg.angle_increment), float(msg.range_min),
                                 float(msg.range_max))

    def _on_latent(self, msg: Any) -> None:
        """Executor thread: check the latent, score the last prediction, hand the step to the planner thread."""
        self.stats.on_received()
        mean, _, header = stamped_msg_to_latent(msg, expected_dim=self.config.latent_dim)
        stamp = self._record_latent(mean, header)
        self._score_prediction(stamp, mean)
        self._worker.submit((mean, header, stamp, time.perf_counter()))

    def _step(self, item: tuple[np.ndarray, Any, int, float]) -> None:
        """Planner thread (newest latent only, through the guard, which counts a failure and stops the robot):
        plan, command, predict.

        The lock is held only to read the goal and state and to commit the result, never while planning, so
        the watchdog, clear_goal and set_parameters never wait for a plan (see _control)."""
        mean, header, stamp, received = item
        command = self._control(mean, header, stamp)
        if command is None:
            return
        self._predict(mean, command, header, stamp)
        self.stats.on_published(time.perf_counter() - received)

    def _control(self, z: np.ndarray, header: Any, stamp: int) -> tuple[float, float] | None:
        """Plan and publish a command when a goal is set; the action the next interval will see, or None when
        the latent was superseded or the plan came too late (nothing published: the watchdog holds the robot)."""
        with self._lock:
            if stamp != self._latest_stamp_ns or self._is_stale(stamp):
                self.stats.on_dropped()  # superseded or too old by now
                return None
            if self.goal is None:  # the contract: zero velocity and wait (or goal_align looking around); predict for
                self._publish_command(*self._idle_command())  # what cmd_vel last carried
                return self._executed
            epoch, state, goal, config = self._command_epoch, self.state, self.goal, self.mpc_config
            obstacles = self._obstacles if self.params.collision else None
            turned_scan = self._turned_scan()
        started = time.perf_counter()
        state, (v, w) = plan_step(state, z, goal, config, obstacles, turned_scan)  # pure: nothing shared is touched
        plan_s = time.perf_counter() - started
        if state.mode == PLAN and state.status not in (CONVERGED, LOST):  # a CEM plan, not a servo-law step
            self._plan_ms.add(plan_s * 1e3)
        with self._lock:
            # Acted on only if nothing stopped, cleared or replaced the goal meanwhile and its latent is still
            # fresh: a slow plan is dropped rather than followed (the watchdog's zero stands).
            if epoch != self._command_epoch or self._is_stale(stamp):
                self._late_plans += 1
                self.get_logger().warning(
                    f"dropped a plan that took {plan_s * 1e3:.0f} ms: "
                    + ("the robot was stopped, or the goal changed, meanwhile" if epoch != self._command_epoch
                       else f"its latent is older than stale_timeout ({self.params.stale_timeout} s) by now"),
                    throttle_duration_sec=WARN_THROTTLE_S)
                return None
            self.state = state
            self.status = PLANNING if state.status not in (CONVERGED, LOST) else state.status
            if self.status in (CONVERGED, LOST):
                v, w = 0.0, 0.0
            sent = self._publish_command(v, w)  # through the scan safety layer
            if sent != (v, w):
                v, w = sent
                self.state = dataclasses.replace(self.state, command=sent)
        if state.mode == PLAN and state.predicted is not None and self.status == PLANNING:
            self._plan_pub.publish(latent_rows_to_msg(state.predicted, header))
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

    def _on_worker_failure(self) -> None:
        """What escaped the guard (a BaseException) ended the planner thread: counted, and the robot stopped."""
        self.stats.on_error("the planner thread stopped")
        self._stop()

    # -- parameters and health -------------------------------------------------------------------------------
    def _apply_params(self, params: WorldModelParams) -> None:
        mpc_config = params.mpc_config(self.dynamics, self._tolerance(params), self._head, self._goal_turner,
                                       self._device_costs)
        with self._lock:  # held briefly: planning runs outside it
            if mpc_config.horizon != self.mpc_config.horizon:
                self.state = dataclasses.replace(self.state, plan=None)  # the warm start has the old length
                self._command_epoch += 1  # a plan in progress has the old length too: dropped
            self.params, self.mpc_config = params, mpc_config

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
            ("plan_time_count", str(plan_ms.count)),
            ("plan_cost", fmt(self.state.cost) if math.isfinite(self.state.cost) else "none"),
            ("plan_device", "cpu" if self._device_costs is None else str(self._device_costs.device)),
            ("command", f"{self.state.command[0]:.3f} m/s, {self.state.command[1]:.3f} rad/s"),
            ("late_plans_dropped", str(self._late_plans)),
            *self._safety_diagnostics(),
            *self._link_diagnostics(),
            *self._view_diagnostics(),
        ]

    def close(self) -> None:
        """Stop the planner thread, then the last zero command (ControlNode.close)."""
        self._worker.close()
        super().close()


def main(args: list[str] | None = None) -> int:
    """Console script / `python -m vae_ros.ros.nodes.world_model_node` entry point."""
    return run_node(WorldModelNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
