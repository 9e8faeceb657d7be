"""Goal-reaching runs through the real ROS 2 nodes: what `vae-ros demo` and `eval-control --ros` share.

A ServoSession starts sim_node, an encoder_node on the control model (publishing `vae/latent_stamped`) and
the controller (`controller`: latent_servo_node, or world_model_node with the model's packaged dynamics) as
separate processes over DDS (optionally also a camera encoder and a decoder, so the camera frames and their
reconstructions can be shown), plus an in-process probe node that places the robot (sim_node's
`initial_pose` parameter), teaches goals (`servo/set_goal`, which both controllers take) and records what
the controller does, judged by the simulator's ground-truth odometry; with the world model also every plan
it publishes on `world_model/planned_latents`. Everything follows the simulator's /clock.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from vae_ros.apps.sim_probe import SimProbe
from vae_ros.core.conversions.common import planar_pose, stamp_ns
from vae_ros.core.errors import ConfigError, InputError, RosError
from vae_ros.ros import interface

IMAGE_LATENT_TOPIC = "vae/image_latent"
CONTROLLERS = ("servo", "world_model")
# Node name and the suffix of its /diagnostics status name, by controller.
_CONTROLLER_NODE = {"servo": ("latent_servo_node", ": latent servo"), "world_model": ("world_model_node", ": world model")}
# ControlNode._on_set_goal answers "goal set from the latent stamped <ns> ns": the latent that became the goal.
_GOAL_STAMP = re.compile(r"stamped (\d+) ns")
_KEEP_LATENTS = 3000  # newest stamped latents kept (5 min at 10 Hz)
SET_GOAL_RETRY_S = 5.0  # s servo/set_goal is asked again while the controller has no fresh latent


@dataclass
class SessionConfig:
    seed: int = 0
    rate: float = 10.0
    control_model: str = ""  # empty: the packaged control model
    controller: str = "servo"  # servo (latent_servo_node) or world_model (world_model_node)
    dynamics: str = ""  # world_model: dynamics directory; empty: <control model>/dynamics
    backend: str = "auto"
    camera_views: bool = False  # also run the camera encoder + decoder (for the demo's pictures)
    goal_image: bool = False  # start_from gives the goal as the camera frame seen there (servo/goal_image)
    log_dir: Path = Path("servo_logs")
    startup_timeout: float = 90.0
    initial_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    controller_params: tuple[str, ...] = ()  # more controller parameters, "name:=value"


@dataclass
class ServoRun:
    """What happened between placing the robot at a start and the servo's verdict."""

    status: str  # converged, lost, timeout
    time_s: float  # simulated seconds from the first command to the verdict
    poses: list[tuple[float, float, float, float]] = field(default_factory=list)  # (t, x, y, yaw) from odom
    # (t, latent error |z - z_goal|): the servo's servo/error; for the world model (which publishes none) the
    # control latents against the taught goal latent, t their stamps.
    errors: list[tuple[float, float]] = field(default_factory=list)
    final_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # world model: (t, (H, D) predicted latents) per plan, t the stamp of the latent it planned from.
    plans: list[tuple[float, np.ndarray]] = field(default_factory=list)


class ServoSession(SimProbe):
    """Use as a context manager; every process started is stopped on exit, also after an error."""

    def __init__(self, config: SessionConfig) -> None:
        if config.controller not in CONTROLLERS:
            raise ConfigError(f"controller must be one of {', '.join(CONTROLLERS)}, got {config.controller!r}")
        super().__init__(config.log_dir)
        self.config = config
        self.controller_node, self._status_suffix = _CONTROLLER_NODE[config.controller]
        self.goal_latent: np.ndarray | None = None  # the latent taught by the last teach_goal
        self._latents: dict[int, np.ndarray] = {}  # control latents by stamp (newest _KEEP_LATENTS)
        self._plans: list[tuple[float, np.ndarray]] = []
        self.controller_values: dict[str, str] = {}  # the controller's newest /diagnostics key-values
        self._odom: list[tuple[float, float, float, float]] = []
        self._errors: list[tuple[float, float]] = []
        self._servo_state = ""
        self._servo_state_ns = 0  # stamp of the diagnostics that reported it
        self._frames: dict[int, np.ndarray] = {}  # camera frames by stamp (camera_views or goal_image)
        self.goal_image: np.ndarray | None = None  # the camera frame seen with the taught goal (goal_image)
        self._reconstructions: dict[int, np.ndarray] = {}
        self._set_goal: Any = None  # service clients, made in _start_probe
        self._clear_goal: Any = None

    # -- processes -------------------------------------------------------------------------------------------
    def _start(self, name: str, module: str, args: list[str]) -> None:
        self.nodes.start_node(name, module, args)

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        """The node processes still running, by node name."""
        return self.nodes.procs

    def __enter__(self) -> ServoSession:
        cfg = self.config
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        sim_time = ["-p", "use_sim_time:=true"]
        model = ["-p", f"model:={cfg.control_model}"] if cfg.control_model else []
        x, y, yaw = cfg.initial_pose
        try:
            self._start("sim_node", "vae_ros.ros.nodes.sim_node", [
                "-p", f"rate:={float(cfg.rate)}", "-p", f"seed:={cfg.seed}", "-p", "lidar:=scan",
                "-p", f"initial_pose:=[{x:.6f}, {y:.6f}, {yaw:.6f}]"])
            control_model = cfg.control_model or str(_control_model_path())
            from vae_ros.core.fused import FUSED_MODALITY, is_fused_model

            # A fused camera + LiDAR model: one fused encoder of the simulator's camera and scan.
            modality = FUSED_MODALITY if is_fused_model(control_model) else "scan"
            self._start("control_encoder_node", "vae_ros.ros.nodes.encoder_node", [
                "-p", f"modality:={modality}", "-p", f"model:={control_model}", "-p", f"backend:={cfg.backend}",
                *sim_time])
            controller_args = [*model, "-p", "diagnostics_period:=0.2", *sim_time]
            for assignment in cfg.controller_params:
                controller_args += ["-p", assignment]
            if cfg.controller == "world_model":  # the servo runs no model of its own: no backend to choose
                controller_args += ["-p", f"backend:={cfg.backend}"]
            if cfg.controller == "world_model" and cfg.dynamics:
                controller_args += ["-p", f"dynamics:={cfg.dynamics}"]
            self._start(self.controller_node, f"vae_ros.ros.nodes.{self.controller_node}", controller_args)
            if cfg.camera_views:
                image_latent_remaps = ["-r", f"{interface.LATENT_TOPIC}:={IMAGE_LATENT_TOPIC}",
                                       "-r", f"{interface.LATENT_STAMPED_TOPIC}:={IMAGE_LATENT_TOPIC}_stamped"]
                self._start("image_encoder_node", "vae_ros.ros.nodes.encoder_node", [
                    "-p", "modality:=image", "-p", f"backend:={cfg.backend}", *sim_time,
                    *image_latent_remaps])
                self._start("decoder_node", "vae_ros.ros.nodes.decoder_node", [
                    "-p", "modality:=image", "-p", f"backend:={cfg.backend}", *sim_time,
                    *image_latent_remaps])
            self._start_probe()
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    # -- probe -----------------------------------------------------------------------------------------------
    def _start_probe(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float32
        from std_srvs.srv import Trigger

        from vae_ros.ros.qos import LATENT_QOS, sensor_qos

        node = self._open_probe("vae_ros_servo_probe")
        node.create_subscription(Odometry, interface.GROUND_TRUTH_ODOM_TOPIC, self._on_odom, LATENT_QOS)  # judging only
        node.create_subscription(Float32, interface.SERVO_ERROR_TOPIC, self._on_error, LATENT_QOS)
        node.create_subscription(Image, interface.LATENT_STAMPED_TOPIC, self._on_latent, LATENT_QOS)
        node.create_subscription(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, self._on_diagnostics, LATENT_QOS)
        if self.config.controller == "world_model":
            node.create_subscription(Image, interface.PLANNED_TOPIC, self._on_plan, LATENT_QOS)
        if self.config.camera_views or self.config.goal_image:
            node.create_subscription(Image, interface.CAMERA_TOPIC, self._on_camera, sensor_qos(depth=5))
        if self.config.camera_views:
            node.create_subscription(Image, interface.RECONSTRUCTION_TOPIC, self._on_reconstruction, LATENT_QOS)
        self._goal_image_pub = node.create_publisher(Image, interface.GOAL_IMAGE_TOPIC, LATENT_QOS)
        self._set_goal = node.create_client(Trigger, interface.SET_GOAL_SERVICE)
        from std_msgs.msg import Float32MultiArray

        self._goal_pub = node.create_publisher(Float32MultiArray, interface.GOAL_LATENT_TOPIC, LATENT_QOS)
        self._clear_goal = node.create_client(Trigger, interface.CLEAR_GOAL_SERVICE)
        self._spin_probe()

    def _on_odom(self, msg: Any) -> None:
        pose = planar_pose(msg.pose.pose)
        with self._lock:
            self._odom.append((stamp_ns(msg.header.stamp) * 1e-9, *pose))

    def _on_error(self, msg: Any) -> None:
        with self._lock:
            self._errors.append((self._clock_ns * 1e-9, float(msg.data)))

    def _on_latent(self, msg: Any) -> None:
        from vae_ros.core.conversions.latent import stamped_msg_to_latent

        try:
            mean, _, header = stamped_msg_to_latent(msg)
        except InputError:
            return  # not a latent the controller would take either; the encoder's diagnostics count it
        stamp = stamp_ns(header.stamp)
        with self._lock:
            self._latent_stamps.append(stamp)
            self._latents[stamp] = mean
            if len(self._latents) > _KEEP_LATENTS:
                self._latents.pop(next(iter(self._latents)))

    def _on_plan(self, msg: Any) -> None:
        from vae_ros.core.conversions.latent import msg_to_latent_rows

        try:
            rows, header = msg_to_latent_rows(msg)
        except InputError:
            return
        with self._lock:
            self._plans.append((stamp_ns(header.stamp) * 1e-9, rows))

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith(self._status_suffix):
                with self._lock:
                    self.controller_values = {kv.key: kv.value for kv in status.values}
                for kv in status.values:
                    if kv.key == "state":
                        with self._lock:
                            self._servo_state = kv.value
                            self._servo_state_ns = stamp_ns(msg.header.stamp)

    def _on_camera(self, msg: Any) -> None:
        from vae_ros.core.conversions.image import image_msg_to_array

        with self._lock:
            self._frames[stamp_ns(msg.header.stamp)] = image_msg_to_array(msg)
            if len(self._frames) > 600:
                self._frames.pop(next(iter(self._frames)))

    def _on_reconstruction(self, msg: Any) -> None:
        from vae_ros.core.conversions.image import image_msg_to_array

        with self._lock:
            self._reconstructions[stamp_ns(msg.header.stamp)] = image_msg_to_array(msg)
            if len(self._reconstructions) > 600:
                self._reconstructions.pop(next(iter(self._reconstructions)))

    # -- waiting ---------------------------------------------------------------------------------------------
    def _wait_ready(self) -> None:
        self.wait(f"the first control latent and {self.controller_node}'s diagnostics",
                   lambda: bool(self._latent_stamps) and bool(self._servo_state), self.config.startup_timeout)
        self.wait(f"{self.controller_node}'s goal services and sim_node's parameters",
                   lambda: self._set_goal.service_is_ready() and self._clear_goal.service_is_ready()
                   and self._set_params.service_is_ready(),
                   self.config.startup_timeout)

    @property
    def servo_state(self) -> str:
        with self._lock:
            return self._servo_state

    def latest_pose(self) -> tuple[float, float, float]:
        with self._lock:
            if not self._odom:
                raise RosError("no odometry received from sim_node")
            _, x, y, yaw = self._odom[-1]
        return x, y, yaw

    def clear_goal(self) -> None:
        """The controller forgets its goal and stops (servo/clear_goal), so placing the robot moves nothing."""
        from std_srvs.srv import Trigger

        self.call(self._clear_goal, Trigger.Request(), interface.CLEAR_GOAL_SERVICE)

    def teach_at(self, pose: tuple[float, float, float]) -> None:
        """Place the robot at `pose` with the servo idle, and teach that view as the goal."""
        self.clear_goal()
        self.place(pose)
        self.teach_goal()

    def teach_goal(self) -> None:
        """The current observation becomes the controller's goal (servo/set_goal); kept as `goal_latent`."""
        from std_srvs.srv import Trigger

        # The only refusal is "no fresh latent": right after the nodes start, the controller may not have
        # discovered the encoder yet although this session has (seen once in a test run); ask again briefly.
        deadline = time.monotonic() + SET_GOAL_RETRY_S
        while not (response := self.call(self._set_goal, Trigger.Request(), interface.SET_GOAL_SERVICE)).success:
            if time.monotonic() > deadline:
                raise RosError(f"{interface.SET_GOAL_SERVICE} failed: {response.message}")
            time.sleep(0.1)
        match = _GOAL_STAMP.search(response.message)
        with self._lock:
            if match and int(match.group(1)) in self._latents:
                stamp = int(match.group(1))
            else:  # the robot stands still while it is taught: the newest latent is the same view
                stamp = self._latent_stamps[-1]
            self.goal_latent = self._latents[stamp].copy()
        if self.config.goal_image:  # the frame of that instant (the camera and the LiDAR share stamps)
            self.wait("the camera frame of the taught goal", lambda: stamp in self._frames, 10.0)
            with self._lock:
                self.goal_image = self._frames[stamp].copy()
            # The controller must have remembered views of this place before the robot leaves it (its
            # /diagnostics are published after the view memory has grown: wait for two more reports).
            seen = self._remembered_views()
            self.wait(f"{self.controller_node} to remember views of the goal place",
                       lambda: self._remembered_views() >= seen + 3, 20.0)

    def start_from(self, pose: tuple[float, float, float]) -> None:
        """Move the robot to `pose` with the controller idle, then give it the taught goal back
        (`servo/goal_latent`), so it starts afresh from there.

        The robot is teleported, not driven: a controller that carries a belief of where the goal is (the
        world model's look-around, the servo's fused estimate) would otherwise keep the one from where the
        goal was taught (measured: the world model then believed it was at the goal and never moved).
        """
        if self.goal_latent is None:
            raise RosError("no goal taught yet (teach_at / teach_goal first)")
        from vae_ros.core.conversions.latent import latent_to_msg

        self.clear_goal()
        self.place(pose)
        self.wait(f"{self.controller_node} to report no goal", lambda: self._controller_value("goal_source") == "none",
                   20.0)
        if self.config.goal_image:
            self._give_goal_image()
            return
        self.wait("the controller's goal_latent subscription", lambda: self._goal_pub.get_subscription_count() > 0,
                   10.0)
        self._goal_pub.publish(latent_to_msg(self.goal_latent))
        self.wait(f"{self.controller_node} to take the goal latent",
                   lambda: self._controller_value("goal_source") == interface.GOAL_LATENT_TOPIC, 20.0)

    def give_photo_goal(self, goal: tuple[float, float, float], start: tuple[float, float, float],
                        timeout: float = 90.0) -> None:
        """The goal as a photo alone: the camera frame seen at `goal` (the controller idle), then the robot moved to
        `start` and the photo sent on servo/goal_image; returns once the controller has made a goal of it (with a
        fused model: after looking around and aligning, goal_align). Needs SessionConfig.goal_image (the camera
        subscription); a controller with view_memory:=0 has not remembered the goal's view."""
        from builtin_interfaces.msg import Time

        from vae_ros.ros.sim_messages import image_msg

        self.clear_goal()
        self.place(goal)
        after = int((self.sim_time + 0.1) * 1e9)
        def frame_after() -> bool:  # the probe's executor adds frames meanwhile: read them under its lock
            with self._lock:
                return bool(self._frames) and max(self._frames) >= after

        self.wait("a camera frame at the goal", frame_after, 20.0)
        with self._lock:
            photo = self._frames[max(self._frames)].copy()
        self.clear_goal()
        self.place(start)
        self.wait(f"{self.controller_node} to report no goal", lambda: self._controller_value("goal_source") == "none",
                   20.0)
        self.wait("the controller's goal_image subscription",
                   lambda: self._goal_image_pub.get_subscription_count() > 0, 10.0)
        self._goal_image_pub.publish(image_msg(photo, Time()))
        self.wait(f"{self.controller_node} to make a goal of the photo",
                   lambda: self._controller_value("goal_source").startswith(interface.GOAL_IMAGE_TOPIC), timeout)

    def _give_goal_image(self) -> None:
        """The goal as the camera frame seen there (servo/goal_image): the controller looks it up among the
        views it remembers (view_memory) and takes the latent seen with it."""
        from vae_ros.ros.sim_messages import image_msg

        if self.goal_image is None:
            raise RosError("no goal image kept (SessionConfig.goal_image was off when the goal was taught)")
        self.wait("the controller's goal_image subscription",
                   lambda: self._goal_image_pub.get_subscription_count() > 0, 10.0)
        from builtin_interfaces.msg import Time

        self._goal_image_pub.publish(image_msg(self.goal_image, Time()))
        self.wait(f"{self.controller_node} to recognise the goal image",
                   lambda: self._controller_value("goal_source").startswith(interface.GOAL_IMAGE_TOPIC), 20.0)

    def _remembered_views(self) -> int:
        value = self._controller_value("remembered_views")
        return int(value) if value.isdigit() else 0

    def _controller_value(self, key: str) -> str:
        with self._lock:
            return self.controller_values.get(key, "")

    def servo(self, timeout: float = 40.0) -> ServoRun:
        """Record until the controller says converged or lost (or `timeout` simulated seconds), then let it
        stop."""
        start = self.sim_time
        with self._lock:
            first_odom, first_error, first_plan = len(self._odom), len(self._errors), len(self._plans)

        def verdict() -> str:
            # Only diagnostics stamped after the servo saw the new start count (older ones may say converged).
            with self._lock:
                fresh = self._servo_state_ns > int((start + 0.3) * 1e9)
                return self._servo_state if fresh and self._servo_state in ("converged", "lost") else ""

        self.wait(f"{self.controller_node}'s verdict", lambda: bool(verdict()) or self.sim_time - start > timeout,
                   timeout * 4 + 30)
        status = verdict() or "timeout"
        end = self.sim_time
        self.wait("the robot to stop", lambda: self.sim_time - end > 0.5, 10.0)
        with self._lock:
            poses = self._odom[first_odom:]
            errors = self._errors[first_error:]
            plans = self._plans[first_plan:]
            if self.config.controller == "world_model" and self.goal_latent is not None:
                goal = self.goal_latent
                errors = [(stamp * 1e-9, float(np.linalg.norm(z - goal))) for stamp, z in self._latents.items()
                          if start * 1e9 <= stamp <= end * 1e9]
        final = self.latest_pose()
        return ServoRun(status=status, time_s=end - start, poses=poses, errors=errors, final_pose=final,
                        plans=plans)

    def frame_near(self, t: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(camera frame, its reconstruction) with the stamp nearest to simulated time t (camera_views)."""
        with self._lock:
            if not self._frames:
                return None, None
            stamp = min(self._frames, key=lambda s: abs(s * 1e-9 - t))
            return self._frames[stamp], self._reconstructions.get(stamp)


Pose = tuple[float, float, float]
T = TypeVar("T")


def judged_episodes(groups: Iterable[tuple[SessionConfig, Sequence[T]]],
                    give_goal: Callable[[ServoSession, T], tuple[Pose, Pose]],
                    time_limit: float) -> Iterator[tuple[T, ServoSession, dict[str, Any]]]:
    """Episodes through the real nodes, judged on the simulator's ground truth: for each (config, items) one
    ServoSession; for each item `give_goal` places the robot and gives the goal its own way (a taught latent,
    a photo) and returns (goal, start); then the servo runs for up to `time_limit` simulated seconds.
    Yields (item, session, row), row holding seed, start, goal, status, success (within 0.10 m and 5 deg),
    final_position_error, final_yaw_error and time_s; the caller adds its own fields. Every process is
    stopped when a group ends, also on an error."""
    from vae_ros.control.evaluation.episodes import pose_error
    from vae_ros.control.training.metric import SUCCESS_POSITION_M, SUCCESS_YAW_RAD

    for config, items in groups:
        with ServoSession(config) as session:
            for item in items:
                goal, start = give_goal(session, item)
                run = session.servo(timeout=time_limit)
                pos, yaw = pose_error(run.final_pose, goal)
                yield item, session, {"seed": config.seed, "start": start, "goal": goal, "status": run.status,
                                      "success": bool(pos <= SUCCESS_POSITION_M and yaw <= SUCCESS_YAW_RAD),
                                      "final_position_error": pos, "final_yaw_error": yaw, "time_s": run.time_s}


def episode_line(number: int, row: dict[str, Any], in_process: str) -> str:
    """One progress line per judged episode: `ros episode N: status, cm / deg (in process ...)`."""
    return (f"ros episode {number}: {row['status']}, {row['final_position_error'] * 100:.1f} cm / "
            f"{math.degrees(row['final_yaw_error']):.1f} deg ({in_process})")


def _control_model_path() -> Path:
    from vae_ros.control.runtime.control_model import control_model_dir

    return control_model_dir("")
