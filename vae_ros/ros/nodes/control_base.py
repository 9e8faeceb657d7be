"""What the latent controllers (latent_servo_node, world_model_node, route_follower_node) share: goals, the
newest latent, the stale-input watchdog and a velocity output that fails safe. A controller subclasses
ControlNode, loads its model, calls `_start_control` and implements its step on `_on_latent`. A controller
whose goal is not a latent (the route follower: its route) sets GOAL_INPUTS = False: it has no goal-latent and
goal-image inputs and no view memory, and overrides what set_goal does.

(Over 500 lines on purpose: every rule that keeps a controller safe lives here, once, so that each new
controller inherits all of them: goals and their clearing, the stale and future-stamp watchdog, the latent
range, the scan safety layer, goal images.)

Goals, changeable while running: `servo/set_goal` (std_srvs/Trigger: the newest fresh latent becomes the
goal), `servo/clear_goal` (std_srvs/Trigger: forget the goal and stop), `servo/goal_latent`
(std_msgs/Float32MultiArray in the contract's layout) and `servo/goal_image` (sensor_msgs/Image). A camera
model encodes a goal image (`_encode_goal_image`); a model of another sensor (the packaged LaserScan control
model) looks it up among the camera views it has seen (`view_memory`, vae_ros.control.runtime.view_memory: frames
on `camera/image_raw` kept beside the latent of the same instant): the matching view's latent becomes the
goal, and an image that matches no remembered view waits, the robot stopped, until one does. A fused camera +
LiDAR model looks it up the same way; an image no remembered view matches is, with `goal_align` (the default),
aligned with the live view (vae_ros.ros.nodes.goal_align: the newest camera frame and the scan paired with it
give the goal's pose, and the goal is the joint latent of the live scan moved there and the image), the robot
turning in place to either side first for more views (`goal_align_look`, `_idle_command`) and otherwise stopped
during that search, and the search repeated on the way every `goal_align_period`; where the search
finds no sound match, or with `goal_align:=false`, the goal is the camera expert's joint latent of the image
(its posterior mean from the image alone). A view the robot sees that matches the photo replaces either. Work
on a goal image started before a newer goal or a clear_goal is dropped (`_goal_generation`); the log line of
the new goal and /diagnostics `goal_source` / `goal_align` say which (docs/FUSION.md).

Scan safety (vae_ros.control.runtime.safety, the layer every controller and the in-process episodes run): every
command is checked against the newest LaserScan on `scan` (sensor-data QoS) before it is published: along
the commanded arc the robot slows down and stops where the free space is shorter than `safety_margin`
beyond `robot_radius`, and never pushes into an obstacle; turning in place stays allowed. With no scan, or
one older than `scan_timeout` (its header stamp against this node's clock), every command is zero.
/diagnostics `blocked` says what it did ("no", "slowed: 0.12 m free ahead", "stopped: ..."), and a stop of
a moving command is logged (throttled). `scan_safety:=false` switches it off.

Fail-safe: zero velocity on `cmd_vel` while no goal is set, when the newest latent is older than
`stale_timeout` (its header stamp against this node's clock; a 0.1 s watchdog on the steady clock checks),
when a message is rejected while a goal is set, on an unexpected error, and once more on shutdown (`close`,
after SIGINT / SIGTERM, while the ROS context is still valid).

Input safety, here so that every controller has it (issue 21):
- time both ways: a latent stamped more than `max_clock_skew` ahead of this node's clock is rejected (its age
  would be negative, so it would never go stale), counted (`future_stamped`) and said;
- range: current and goal latents outside the model's latent range (vae_ros.core.latent_range, from
  model.json) are rejected with the reason (`out_of_range`);
- clear_goal wins: goal latents that arrived or were sent before the last clear_goal (their source timestamp,
  where rclpy gives the message info) are dropped and counted (`goals_dropped_after_clear`);
- goal images are refused over `max_image_pixels` before any conversion, and converted, encoded or looked up
  on their own thread, so that the watchdog and the latents never wait for one.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from vae_ros.control.runtime.control_model import calibrated_tolerance, goal_camera_dir, latent_model_dir
from vae_ros.control.runtime.image_goal import ScanGeometry
from vae_ros.control.runtime.safety import (
    STOPPED,
    SafetyVerdict,
    guard_command,
    scan_points,
    stop_without_scan,
)
from vae_ros.control.runtime.view_memory import Match, ViewMemory, ViewMemoryConfig, view_descriptor
from vae_ros.core.conversions.common import stamp_ns
from vae_ros.core.conversions.image import image_msg_to_array
from vae_ros.core.conversions.latent import msg_to_latent
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import InputError
from vae_ros.core.fused import load_fused_config
from vae_ros.core.latent_range import check_latent_range, latent_bound
from vae_ros.ros.interface import (
    CAMERA_TOPIC,
    CLEAR_GOAL_SERVICE,
    CMD_TOPIC,
    GOAL_IMAGE_TOPIC,
    GOAL_LATENT_TOPIC,
    LATENT_STAMPED_TOPIC,
    SCAN_TOPIC,
    SET_GOAL_SERVICE,
)
from vae_ros.ros.kit.declare import refuse_unknown_parameters
from vae_ros.ros.kit.guard import CLOCK_MISMATCH_S, WARN_THROTTLE_S, CdrDecoder, LatestWorker, MessageGuard
from vae_ros.ros.kit.params import ControlParams, ControlShellParams
from vae_ros.ros.kit.run import interrupt
from vae_ros.ros.nodes.goal_align import (
    ALIGNED,
    ALIGNING,
    FELL_BACK,
    NO_GOAL_IMAGE,
    OFF,
    PAIR_WAIT_S,
    SEARCHING,
    START_PAIR_WAIT_S,
    AlignDone,
    AlignRefreshed,
    AlignStarted,
    GoalAlign,
)
from vae_ros.ros.qos import COMMAND_QOS, LATENT_QOS, SENSOR_QOS, sensor_qos

IDLE, STALE = "idle", "stale"
WATCHDOG_PERIOD_S = 0.1
# No latent for this long while the graph shows publishers of the topic: said once in the log (and the count
# is always in /diagnostics), since a controller waiting on a link that delivers nothing only ever says "stale".
SILENT_LINK_S = 10.0
FINAL_STOP_ACK_S = 0.5
GOAL_LOG_THROTTLE_S = 1.0


class ControlNode(Node):
    """Base of the latent controllers: goal inputs, the newest latent, the watchdog and cmd_vel.

    Subclasses set `params` (a ControlShellParams; a ControlParams with GOAL_INPUTS) and `stats` before
    `_start_control`, and may override the
    hooks `_reset_for_goal` (a new goal: restart the controller's state), `_reset_command` (a stop: the
    command state is zero) and `_goal_encoder` (the backend that encodes goal images with a camera model).
    """

    ACTIVE: ClassVar[str] = "active"  # the status while a goal is being pursued
    GOAL_DTYPE: ClassVar[type] = np.float32
    # A node that publishes cmd_vel refuses to start on a parameter it does not know (kit/declare.py).
    REFUSE_UNKNOWN_PARAMETERS: ClassVar[bool] = True
    # Goals as latents and images (servo/goal_latent, servo/goal_image, the goal_image parameter, the view
    # memory). False: none of them (a controller whose goal is something else, e.g. the route follower's route).
    GOAL_INPUTS: ClassVar[bool] = True

    params: ControlShellParams
    stats: NodeStats

    def __init__(self, node_name: str, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        stop_before_shutdown()

    def _start_control(self, latent_dim: int, model_dir: Path, modality: str, lock: Any = None) -> None:
        """The latent subscription (to `_on_latent`), cmd_vel, the goal subscriptions and services and the
        watchdog. `lock` guards goal and controller state where a planner thread shares them."""
        if self.REFUSE_UNKNOWN_PARAMETERS:  # before cmd_vel exists: a misspelt limit must not drive the robot
            refuse_unknown_parameters(self)
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image, LaserScan
        from std_msgs.msg import Float32MultiArray
        from std_srvs.srv import Trigger

        self._twist = Twist
        self._latent_dim = latent_dim
        self._control_model_dir = model_dir
        self._modality = modality
        self.goal: np.ndarray | None = None
        self.goal_source = ""
        self._last_goal_logged = ""  # the source of the last "new goal" log line (_set_goal)
        self.status = IDLE
        self._latest: np.ndarray | None = None  # newest latent, for set_goal
        self._latest_stamp_ns: int | None = None
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._last_arrival_ns = self._steady.now().nanoseconds  # of the newest latent (start-up until one)
        self._arrival_offset_s: float | None = None  # node clock - stamp of the newest latent that arrived
        from vae_ros.core.backends import load_config

        # A fused model's latent range is its LiDAR expert's (control_model.latent_model_dir).
        self._latent_bound = latent_bound(load_config(latent_model_dir(model_dir)).training)
        # A fused model's camera expert: goal images become joint latents through it (docs/FUSION.md).
        self._goal_camera_dir = goal_camera_dir(model_dir)
        self._goal_camera_backend: Any = None
        # Bumped (lock held) by every new goal, clear and stop: work begun before (a plan) must not act after.
        self._command_epoch = 0
        # Bumped (lock held) by every new goal, goal image and clear, but not by a stop: work on a goal image (a
        # lookup, an alignment of several seconds, during which the watchdog may stop the robot many times) may set
        # the goal only while no newer goal or clear came meanwhile.
        self._goal_generation = 0
        self._align: GoalAlign | None = None  # goal images aligned with the live view (goal_align)
        self._cleared_wall_ns = 0  # time.time_ns() of the last clear_goal (goal latents sent before are dropped)
        self._safety_counts = {"future_stamped": 0, "out_of_range": 0, "goals_dropped_after_clear": 0}
        self._silent_link_said = False
        self._link_checked_ns = 0  # steady time the graph was last asked for publishers (_check_link)
        self._closed = False
        self._lock: Any = lock if lock is not None else contextlib.nullcontext()
        self._cmd_pub = self.create_publisher(Twist, CMD_TOPIC, COMMAND_QOS)
        # One bad message is logged, counted and dropped, and the robot is stopped (fail safe).
        self._guard = MessageGuard(self, self._on_rejected, self._on_error)
        self._latent_sub = self.create_subscription(Image, LATENT_STAMPED_TOPIC, self._guard.wrap("a latent", self._on_latent),
                                                    LATENT_QOS)
        self._views_lock = threading.Lock()  # the view memory: the executor adds, the goal-image thread searches
        # Goal images for models of other sensors: remembered camera views (see the module docstring).
        self.views: ViewMemory | None = None
        # (descriptor, source) of a goal image waiting for its view
        self._pending_goal_image: tuple[np.ndarray, str] | None = None
        self.goal_image_score: float | None = None  # NCC of the goal image's view (matched or best so far)
        self._goal_latent_sub: Any = None
        self._goal_image_worker: LatestWorker | None = None
        goal_params = self.params if isinstance(self.params, ControlParams) else None
        if self.GOAL_INPUTS and goal_params is not None:
            self._goal_latent_sub = self.create_subscription(
                Float32MultiArray, GOAL_LATENT_TOPIC, self._goal_latent_callback(), LATENT_QOS)
            # Goal images arrive raw: their size is checked before anything is converted, and the work
            # (conversion, encoding, the view lookup) runs on its own thread; the outcome is applied here
            # (_on_goal_image_done).
            self._image_decoder = CdrDecoder("sensor_msgs/msg/Image")
            # (what the worker made of it, or its error; source; the goal generation it belongs to)
            self._goal_image_outcome: tuple[Any, str, int] | None = None
            self._outcome_lock = threading.Lock()
            self._goal_image_done = self.create_guard_condition(
                self._guard.wrap("a goal image", self._on_goal_image_done))
            self._goal_image_worker = LatestWorker(self._goal_image_work, self.stats.on_dropped, lambda: None,
                                                   name="goal_image")
            self._goal_image_sub = self.create_subscription(
                Image, GOAL_IMAGE_TOPIC, self._guard.wrap("a goal image", self._on_goal_image), LATENT_QOS, raw=True)
            if goal_params.goal_align and self._goal_camera_dir is not None:
                # A fused model's goal images are aligned with the live view (vae_ros.ros.nodes.goal_align).
                self._align = GoalAlign(latent_model_dir(model_dir), getattr(self.params, "backend", "auto"),
                                        getattr(self.params, "device", "cpu"), goal_params.camera_geometry,
                                        lambda: self.get_clock().now().nanoseconds,
                                        load_fused_config(model_dir).pair_slop_s)
                self._align_timer = self.create_timer(goal_params.goal_align_period, self._on_align_timer,
                                                      clock=self._steady)
            if modality != "image" and goal_params.view_memory > 0:
                self.views = ViewMemory(ViewMemoryConfig(capacity=goal_params.view_memory,
                                                         min_score=goal_params.view_match))
            if self.views is not None or self._align is not None:
                # Not through the guard: the camera only serves goal images, so a bad frame is counted, not a stop.
                self._camera_sub = self.create_subscription(Image, CAMERA_TOPIC, self._on_camera, SENSOR_QOS)
        # The scan safety layer: the newest scan's points (robot frame) and stamp, what it did last.
        self._scan: tuple[int, np.ndarray] | None = None
        self._last_sent = (0.0, 0.0)
        self._verdict: SafetyVerdict | None = None
        self._scan_sub = self.create_subscription(LaserScan, SCAN_TOPIC, self._guard.wrap("a scan", self._on_scan),
                                                  sensor_qos(depth=1))
        self._set_goal_srv = self.create_service(Trigger, SET_GOAL_SERVICE, self._on_set_goal)
        self._clear_goal_srv = self.create_service(Trigger, CLEAR_GOAL_SERVICE, self._on_clear_goal)
        # On the steady clock: it also wakes the executor at least every 0.1 s, so Ctrl-C is handled (see
        # stop_before_shutdown) even when no input arrives (a stopped simulator stops the sim-time clock too).
        self._watchdog = self.create_timer(WATCHDOG_PERIOD_S, self._on_watchdog, clock=self._steady)
        stop_before_shutdown()

    # -- hooks -----------------------------------------------------------------------------------------------
    def _on_latent(self, msg: Any) -> None:
        """A stamped latent (sensor_msgs/Image 32FC1) arrived: one control step."""
        raise NotImplementedError

    def _reset_for_goal(self) -> None:
        """A new goal was set (lock held): restart the controller's state."""

    def _reset_command(self) -> None:
        """The robot is being stopped (lock held): the controller's command state becomes zero."""

    def _on_scan_ranges(self, msg: Any, ranges: np.ndarray) -> None:
        """A LaserScan arrived (after the safety layer took it): what else the controller makes of it."""

    def _goal_encoder(self) -> Any:
        """The backend (vae_ros.core.backends) that encodes goal images of a camera model; none by default."""
        raise InputError(self._image_goal_refusal())

    def _goal_estimate(self, z: np.ndarray, goal: np.ndarray) -> np.ndarray | None:
        """Where the controller puts the goal (x, y, yaw in the robot frame) from the latents (its servo head), for
        goal_align's searches on the way; None: it cannot say (no head), and the aligned goal is not refined."""
        return None

    # -- goal images encoded (camera models) -----------------------------------------------------------------
    def _encodes_goal_images(self) -> bool:
        """Whether goal images are encoded: a camera model, or a fused model with a camera expert."""
        return self._modality == "image" or self._goal_camera_dir is not None

    def _encode_goal(self, image: np.ndarray) -> np.ndarray:
        """A goal image (H, W[, C]) -> its latent (D,), by the controller's camera model, or for a fused model by
        its camera expert (the posterior mean of the joint latent given the image alone)."""
        from vae_ros.core.backends import load_config
        from vae_ros.core.preprocess import preprocess_image

        if self._goal_camera_dir is not None:
            return np.asarray(self._camera_posterior(image)[0][0])
        if self._modality != "image":
            raise InputError(self._image_goal_refusal())
        sample = preprocess_image(image, load_config(latent_model_dir(self._control_model_dir)).image_spec)  # (C, H, W)
        return np.asarray(self._goal_encoder().encode(sample[None])[0][0])

    def _camera_posterior(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A goal image (H, W[, C]) -> the fused model's camera expert's posterior (mean, logvar), (1, D) each."""
        from vae_ros.core.backends import load_config
        from vae_ros.core.preprocess import preprocess_image

        if self._goal_camera_dir is None:
            raise InputError(self._image_goal_refusal())
        sample = preprocess_image(image, load_config(self._goal_camera_dir).image_spec)  # (C, H, W)
        mean, logvar = self._camera_expert().encode(sample[None])
        return np.asarray(mean, dtype=np.float32), np.asarray(logvar, dtype=np.float32)

    def _camera_expert(self) -> Any:
        """The fused model's camera expert (a backend: ONNX Runtime where the export is there, no torch), made on
        first use; the node's `backend` and `device` where it has them."""
        if self._goal_camera_backend is None:
            from vae_ros.core.backends import create_backend

            if self._goal_camera_dir is None:
                raise InputError(self._image_goal_refusal())
            backend, device = getattr(self.params, "backend", "auto"), getattr(self.params, "device", "cpu")
            self._goal_camera_backend = create_backend(self._goal_camera_dir, backend, device, threads=1)
        return self._goal_camera_backend

    def _encode_goal_image(self, msg: Any) -> np.ndarray:
        """A goal image message (sensor_msgs/Image) -> its latent (D,)."""
        return self._encode_goal(image_msg_to_array(msg))

    def _goal_image_parameter(self, path: str) -> None:
        """The `goal_image` parameter (a file; empty: none): encoded by a camera model, or with the view
        memory looked up as soon as a view matches it. ConfigError for a file that cannot give a goal."""
        if not path:
            return
        from vae_ros.core.errors import ConfigError
        from vae_ros.core.preprocess import read_image_file

        if self.views is None and not self._encodes_goal_images():
            raise ConfigError(f"goal_image {path!r}: {self._image_goal_refusal()}")
        try:
            if self._align is not None and self._goal_image_worker is not None:
                # Aligned on the goal-image thread once the camera and the LiDAR are there (sensors may still be
                # starting: a longer wait than for a goal on the topic).
                self._goal_image_worker.submit(("image", read_image_file(path), self._new_goal_generation(),
                                                f"goal_image {path}", START_PAIR_WAIT_S))
            elif self.views is not None:
                image = read_image_file(path)
                self._apply_view_lookup(*self._lookup_view(image), f"goal_image {path}",
                                        *self._camera_fallback(image))
            else:
                self._set_goal(self._encode_goal(read_image_file(path)), "goal_image parameter")
        except InputError as err:
            raise ConfigError(f"goal_image {path!r}: {err}") from err

    def _image_goal_refusal(self) -> str:
        return (f"goal images need a camera model, a fused model with a camera expert or the view memory "
                f"(view_memory > 0); {self._control_model_dir} "
                f"is a {self._modality} model: teach the goal with {SET_GOAL_SERVICE} or send its latent on "
                f"{GOAL_LATENT_TOPIC}")

    # -- goals -----------------------------------------------------------------------------------------------
    def _set_goal(self, latent: np.ndarray, source: str, image_score: float | None = None) -> None:
        """A new goal (it replaces a goal image still waiting for its view); image_score: the NCC of the
        remembered view a goal image matched."""
        check_latent_range(latent, self._latent_bound, "goal latent")
        with self._lock:
            self._command_epoch += 1
            self._goal_generation += 1
            self.goal = np.asarray(latent, dtype=self.GOAL_DTYPE).copy()
            self.goal_source = source
            self._pending_goal_image, self.goal_image_score = None, image_score
            self._reset_for_goal()
            self.status = self.ACTIVE
            if self._align is not None:  # an aligned goal says so after this (_on_align_done)
                self._align.phase = NO_GOAL_IMAGE
        # A goal from another source than the last one logged is always said; more goals from the same source
        # are throttled: a publisher flooding goals (1000/s) must not flood the log too (a blocked log pipe once
        # stalled the node). /diagnostics always names the current goal_source.
        if source != self._last_goal_logged:
            self._last_goal_logged = source
            self.get_logger().info(f"new goal from {source}")
        else:
            self.get_logger().info(f"new goal from {source}", throttle_duration_sec=GOAL_LOG_THROTTLE_S)

    def _goal_latent_callback(self) -> Any:
        """The goal-latent subscription's callback: with the message info (its source timestamp) where rclpy
        passes one (Iron and later: a callback of two parameters), else the message alone."""
        from rclpy.subscription import Subscription

        if not hasattr(Subscription, "CallbackType"):  # Humble: no message info; clear_goal drains the queue
            return self._guard.wrap("a goal latent", self._on_goal_latent)

        def on_goal_latent(msg: Any, info: Any) -> None:
            self._guard.run("a goal latent", self._on_goal_latent, msg, info)

        return on_goal_latent

    def _on_goal_latent(self, msg: Any, info: Any = None) -> None:
        sent_ns = int(info.get("source_timestamp", 0) or 0) if isinstance(info, dict) else 0
        if 0 < sent_ns <= self._cleared_wall_ns:
            # Sent before the last clear_goal, delivered after it (a flood queued behind the clear): a goal
            # the operator has already withdrawn.
            self._safety_counts["goals_dropped_after_clear"] += 1
            self.get_logger().warning(
                f"dropped a goal latent sent {(self._cleared_wall_ns - sent_ns) * 1e-9:.3f} s before the last "
                f"{CLEAR_GOAL_SERVICE}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        mean, _ = msg_to_latent(msg, expected_dim=self._latent_dim)
        if not np.all(np.isfinite(mean)):
            raise InputError("goal latent holds NaN or inf")
        self._check_range(mean, "goal latent")
        self._set_goal(mean, GOAL_LATENT_TOPIC)

    def _check_range(self, latent: np.ndarray, what: str) -> None:
        try:
            check_latent_range(latent, self._latent_bound, what)
        except InputError:
            self._safety_counts["out_of_range"] += 1
            raise

    # -- goal images: checked here, worked on by the goal-image thread, applied here -------------------------
    def _on_goal_image(self, raw: bytes) -> None:
        """A serialized sensor_msgs/Image: refused over max_image_pixels before anything is converted."""
        msg = self._image_decoder.decode(raw)  # its data stays a view on the bytes
        limit = self.params.max_image_pixels if isinstance(self.params, ControlParams) else 0
        height, width = int(msg.height), int(msg.width)
        if limit and height * width > limit:
            raise InputError(f"goal image is {width}x{height} = {width * height} pixels, more than "
                             f"max_image_pixels ({limit}); refused before any conversion")
        if self._goal_image_worker is not None:
            self._goal_image_worker.submit(("message", msg, self._new_goal_generation(), GOAL_IMAGE_TOPIC,
                                            PAIR_WAIT_S))

    def _new_goal_generation(self) -> int:
        """A goal image arrived: work on the goal before it (a lookup, an alignment, a refresh) may no longer set it."""
        with self._lock:
            self._goal_generation += 1
            return self._goal_generation

    def _goal_image_work(self, item: tuple[str, Any, int, str, float]) -> None:
        """Goal-image thread: the latent (camera models), the view lookup, or the alignment with the live view (a
        fused model with goal_align; also its refreshes); the outcome goes to the executor."""
        kind, payload, generation, source, wait_s = item
        outcome: Any
        try:
            if kind == "refresh":
                outcome = self._refresh_work(generation)
            else:
                image = image_msg_to_array(payload) if kind == "message" else payload
                if self._align is not None:
                    outcome = self._align_work(image, generation, source, wait_s)
                elif self.views is None:
                    outcome = self._encode_goal(image)
                else:
                    outcome = (*self._lookup_view(image), *self._camera_fallback(image))
        except Exception as err:  # noqa: BLE001 - re-raised in the executor, where the guard counts it
            outcome = err
        if outcome is not None:
            self._post_goal_image_outcome(outcome, source, generation)

    def _post_goal_image_outcome(self, outcome: Any, source: str, generation: int) -> None:
        """Goal-image thread -> executor (_on_goal_image_done); a newer outcome replaces one not yet applied."""
        with self._outcome_lock:
            self._goal_image_outcome = (outcome, source, generation)
        self._goal_image_done.trigger()

    def _on_goal_image_done(self) -> None:
        """Executor: apply what the goal-image thread made of the newest goal image, unless a newer goal, goal image
        or clear came meanwhile (its generation)."""
        with self._outcome_lock:
            done, self._goal_image_outcome = self._goal_image_outcome, None
        if done is None:
            return
        outcome, source, generation = done
        if generation != self._goal_generation:
            # Superseded: what a goal image begun before a newer goal or a clear gives is never applied.
            if isinstance(outcome, AlignDone) and self._align is not None:
                self._align.dropped += 1
                self.get_logger().info(f"goal image from {source}: its alignment ended after a newer goal or a "
                                       f"{CLEAR_GOAL_SERVICE}; not applied",
                                       throttle_duration_sec=GOAL_LOG_THROTTLE_S)  # a flood of goal images
            return
        if isinstance(outcome, BaseException):
            # A goal image that gives no goal (malformed, or its work failed); it ended the work on the goal before.
            with self._lock:
                if self.status == ALIGNING:  # the alignment it superseded (or was) is over: no search runs any more
                    self.status = IDLE
                    if self._align is not None:
                        self._align.phase = NO_GOAL_IMAGE
                elif self._align is not None and self._align.phase == ALIGNED:
                    self._align.generation = self._goal_generation  # the aligned goal stays, and its refreshes
            raise outcome
        if isinstance(outcome, AlignStarted):
            self._on_align_started(outcome)
        elif isinstance(outcome, AlignDone):
            self._on_align_done(outcome)
        elif isinstance(outcome, AlignRefreshed):
            self._on_align_refreshed(outcome)
        elif isinstance(outcome, tuple):
            found, descriptor, *camera = outcome  # camera: [the camera expert's latent] with a fused model
            self._apply_view_lookup(found, descriptor, source, *camera)
        else:
            self._set_goal(outcome, source)

    # -- goal images aligned with the live view (goal_align; vae_ros.ros.nodes.goal_align) -------------------
    def _align_work(self, image: np.ndarray, generation: int, source: str, wait_s: float) -> Any:
        """Goal-image thread: a remembered view that matches wins; otherwise the robot stops (AlignStarted), the
        newest camera frame and the scan paired with it give the goal (AlignDone), or, where there is no pair or
        the image shares too little with the live view, the camera expert's joint latent of it does."""
        align = self._align
        if align is None:
            raise InputError(self._image_goal_refusal())
        found, descriptor = self._lookup_view(image) if self.views is not None else (None, None)
        if found is not None and self.views is not None and found.score >= self.views.config.min_score:
            return (found, descriptor)
        posterior = self._camera_posterior(image)
        self._post_goal_image_outcome(AlignStarted(generation, source, found, descriptor), source, generation)

        def current() -> bool:
            return self._goal_generation == generation

        pair = align.wait_for_pair(wait_s, current)
        camera_latent = np.asarray(posterior[0][0])
        if not current():  # posted all the same: the executor drops it and counts it (goal_align_dropped)
            return AlignDone(generation, source, found, descriptor, camera_latent, None, "superseded")
        if pair is None:
            reason = (f"no camera frame on {CAMERA_TOPIC} and scan on {SCAN_TOPIC} stamped within "
                      f"{align.sensors.slop_ns * 1e-9:g} s of each other in {wait_s:g} s")
            return AlignDone(generation, source, found, descriptor, camera_latent, None, reason)
        try:
            finder = align.finder(image, posterior, pair)
        except InputError as err:  # a photo of another aspect than the live camera's: said before turning
            return AlignDone(generation, source, found, descriptor, camera_latent, None, str(err))
        look = self._goal_align_look()
        pairs = align.look_around(pair, look, current)
        if not current():
            return AlignDone(generation, source, found, descriptor, camera_latent, None, "superseded")
        try:
            result = align.search_wide(finder, pairs)
        except InputError as err:  # a live view or scan the search cannot use (e.g. a scan of no beams)
            return AlignDone(generation, source, found, descriptor, camera_latent, None, f"the live view: {err}")
        reason = ""
        if not result.matched:
            reason = "the goal image shares too little with the live view (no candidate pose sees enough of it)"
        elif not np.all(np.abs(result.latent) <= self._latent_bound):
            reason = f"the aligned latent lies outside the model's latent range ({self._latent_bound:g})"
        return AlignDone(generation, source, found, descriptor, camera_latent, None if reason else result, reason)

    def _goal_align_look(self) -> float:
        """goal_align_look in degrees (0: no looking around; controllers without ControlParams never align)."""
        return float(self.params.goal_align_look) if isinstance(self.params, ControlParams) else 0.0

    def _idle_command(self) -> tuple[float, float]:
        """The command while no goal is set: zero, or goal_align's turn in place while it looks around (status
        ALIGNING); the caller publishes it through the scan safety layer, on a fresh latent only."""
        align = self._align
        if align is None or self.status != ALIGNING or self._is_stale():
            return (0.0, 0.0)
        command = align.look_command
        return (0.0, 0.0) if command is None else command

    def _refresh_work(self, generation: int) -> AlignRefreshed | None:
        """Goal-image thread: a search around where the controller estimates the aligned goal."""
        align, goal = self._align, self.goal
        if align is None or goal is None or generation != self._goal_generation:
            return None
        result = align.search_local(lambda z: self._goal_estimate(z, goal))
        if result is None or not np.all(np.abs(result.latent) <= self._latent_bound):
            return None
        return AlignRefreshed(generation, result)

    def _on_align_started(self, started: AlignStarted) -> None:
        """Executor: the robot stops while the goal image is aligned; a remembered view may still match meanwhile."""
        with self._lock:
            self.goal, self.goal_source, self.status = None, "", ALIGNING
            self._pending_goal_image = None if started.descriptor is None else (started.descriptor, started.source)
            self.goal_image_score = None if started.found is None else started.found.score
            self._stop()
            self._reset_for_goal()
        if self._align is not None:
            self._align.phase, self._align.started = SEARCHING, time.monotonic()
        look = self._goal_align_look()
        how = (f"the robot turns in place to +-{look:g} deg for more views, then stands while it searches" if look > 0
               else "the robot stopped meanwhile")
        # Throttled as the goals' line is (_set_goal): a flood of goal images starts (and ends) as many alignments.
        self.get_logger().info(f"goal image from {started.source}: aligning it with the live view through the live "
                               f"scan ({how})", throttle_duration_sec=GOAL_LOG_THROTTLE_S)

    def _on_align_done(self, done: AlignDone) -> None:
        """Executor: the aligned goal, or (said in one line) the camera expert's joint latent of the image."""
        align = self._align
        if align is None:
            return
        if done.result is None:
            self.get_logger().warning(f"goal image from {done.source} not aligned: {done.reason}; its goal is the "
                                      "camera expert's joint latent of the image")
            if self.views is not None and done.descriptor is not None:
                self._apply_view_lookup(done.found, done.descriptor, done.source, done.camera_latent)
            else:
                self._set_goal(done.camera_latent, f"{done.source} (the camera expert's joint latent of the image)")
            align.phase, align.reason = FELL_BACK, done.reason
            return
        self._set_goal(done.result.latent, f"{done.source} (aligned with the live view through the live scan, NCC "
                                           f"{done.result.score:.2f})")
        with self._lock:
            if done.descriptor is not None:  # a remembered view that matches the image still replaces it (_remember)
                self._pending_goal_image = (done.descriptor, done.source)
            align.phase, align.generation = ALIGNED, self._goal_generation
            align.score, align.refreshes = done.result.score, 0

    def _on_align_refreshed(self, refreshed: AlignRefreshed) -> None:
        """Executor: a search on the way refined the aligned goal. Its latent replaces the goal without resetting the
        controller (no new goal: the same place, better placed), as the evaluation does (fused_goal, `align`)."""
        align = self._align
        if align is None or align.phase != ALIGNED or refreshed.generation != align.generation:
            return
        with self._lock:
            self.goal = np.asarray(refreshed.result.latent, dtype=self.GOAL_DTYPE).copy()
            align.score, align.refreshes = refreshed.result.score, align.refreshes + 1
            self.goal_source = (f"{self.goal_source.split(' (aligned')[0]} (aligned with the live view through the "
                                f"live scan, NCC {align.score:.2f}, refined {align.refreshes}x)")

    def _on_align_timer(self) -> None:
        """Every goal_align_period: a search on the way for an aligned goal (on the goal-image thread)."""
        align, worker = self._align, self._goal_image_worker
        if align is None or worker is None or align.phase != ALIGNED or align.generation != self._goal_generation:
            return
        worker.submit(("refresh", None, align.generation, GOAL_IMAGE_TOPIC, 0.0))

    def _lookup_view(self, image: np.ndarray) -> tuple[Match | None, np.ndarray]:
        """A goal image for a model of another sensor -> (the remembered view most like it, its descriptor)."""
        views = self.views
        if views is None:
            raise InputError(self._image_goal_refusal())
        with self._views_lock:
            found = views.best(image)  # InputError for an image that cannot be a view (uniform, bad shape)
        return found, view_descriptor(image, views.config.size)

    def _camera_fallback(self, image: np.ndarray) -> tuple[np.ndarray] | tuple[()]:
        """With a fused model's camera expert: (the image's joint latent,), for a goal image no remembered view
        matches; () otherwise (the robot then waits for the view)."""
        return (self._encode_goal(image),) if self._goal_camera_dir is not None else ()

    def _apply_view_lookup(self, found: Match | None, descriptor: np.ndarray, source: str,
                           camera_latent: np.ndarray | None = None) -> None:
        """The latent of the remembered view the goal image shows becomes the goal. Otherwise, with a fused model,
        the camera expert's joint latent of the image (`camera_latent`) is the goal until a view the robot sees
        matches the image (that view's latent replaces it: _remember); else the robot stops and waits."""
        views = self.views
        if views is None:
            raise InputError(self._image_goal_refusal())
        if found is not None and found.score >= views.config.min_score:
            self._goal_matched(found, source)
            return
        best = "no view remembered yet" if found is None else f"best NCC {found.score:.3f}"
        if camera_latent is not None:
            self._set_goal(camera_latent, f"{source} (the camera expert's joint latent of the image: it matches no "
                                          f"remembered view, {best}; replaced by the view's latent once one matches)")
            with self._lock:
                self._pending_goal_image = (descriptor, source)
                self.goal_image_score = None if found is None else found.score
            return
        # Not seen (yet): stop and wait. Every new view is compared with it (_remember).
        with self._lock:
            self._goal_generation += 1
            self.goal, self.goal_source, self.status = None, "", IDLE
            self._pending_goal_image = (descriptor, source)
            self.goal_image_score = None if found is None else found.score
            self._stop()
            self._reset_for_goal()
        self.get_logger().warning(f"goal image from {source} matches no remembered camera view ({best} < "
                                  f"{views.config.min_score}); stopped, waiting until the robot has seen it")

    def _goal_matched(self, found: Match, source: str) -> None:
        self._set_goal(found.latent, f"{source} (remembered view, NCC {found.score:.3f})", found.score)

    def _on_camera(self, msg: Any) -> None:
        """A camera frame for the view memory: paired with the latent of the same stamp when it arrives.

        The camera only serves goal images, so a frame that cannot be used is counted and logged (throttled)
        but does not stop the robot."""
        views = self.views
        stamp = stamp_ns(msg.header.stamp)
        try:
            image = image_msg_to_array(msg)
            if views is not None:
                with self._views_lock:
                    views.add_frame(stamp, image)
            if self._align is not None:
                self._align.sensors.add_frame(stamp, image)
        except InputError as err:
            self.stats.on_rejected(f"camera frame: {err}")
            self.get_logger().warning(f"camera frame rejected: {err}", throttle_duration_sec=WARN_THROTTLE_S)

    def _remember(self, mean: np.ndarray, stamp_ns: int) -> None:
        """The newest latent joins the view memory; a waiting goal image is looked up again."""
        if self.views is None:
            return
        with self._views_lock:
            if not self.views.add_latent(stamp_ns, mean):
                return
        pending = self._pending_goal_image
        if pending is not None:  # the older views were compared already: only the new one
            with self._views_lock:
                found = self.views.newest(pending[0])
            if found is not None and found.score >= self.views.config.min_score:
                self._goal_matched(found, pending[1])
            elif found is not None:
                self.goal_image_score = max(found.score, self.goal_image_score or -1.0)

    def _link_diagnostics(self) -> list[tuple[str, str]]:
        """How many publishers of the latent topic the graph shows: with `received` still 0, a link that
        delivers nothing (a QoS mismatch, a wrong remapping on the other side, a broken transport)."""
        return [("latent_publishers", str(self.count_publishers(self._latent_sub.topic_name)))]

    def _view_diagnostics(self) -> list[tuple[str, str]]:
        """Diagnostics of goal images: the view memory (none when it is off) and `goal_align` (goal images of a fused
        model aligned with the live view: off, none, searching, aligned NCC x (n refreshes), fell back: why)."""
        align = self._align
        aligned = [("goal_align", OFF if align is None else align.describe()),
                   ("goal_align_dropped", "0" if align is None else str(align.dropped))] \
            if self.GOAL_INPUTS and self._goal_camera_dir is not None else []
        if self.views is None:
            return aligned
        if self._pending_goal_image is not None:
            score = "none" if self.goal_image_score is None else f"{self.goal_image_score:.3f}"
            if self.goal is None:
                what = "aligning with the live view" if self.status == ALIGNING else "waiting for a matching view"
            elif align is not None and align.phase == ALIGNED:
                what = "aligned latent until a view matches"
            else:
                what = "camera expert's latent until a view matches"
            goal = f"{what} ({self._pending_goal_image[1]}; best NCC so far {score})"
        elif self.goal_image_score is not None:
            goal = f"matched, NCC {self.goal_image_score:.3f}"
        else:
            goal = "none"
        return [("remembered_views", str(len(self.views))), ("goal_image", goal), *aligned]

    def _on_set_goal(self, _request: Any, response: Any) -> Any:
        latest = self._latest
        if latest is None or self._is_stale():
            response.success = False
            response.message = self._no_fresh_latent()
            return response
        self._set_goal(latest, SET_GOAL_SERVICE)
        response.success = True
        response.message = f"goal set from the latent stamped {self._latest_stamp_ns} ns"
        return response

    def _no_fresh_latent(self) -> str:
        """Why set_goal has no latent to take: none arrived, or they arrive stamped on another clock, or old."""
        topic = self._latent_sub.topic_name
        offset = self._arrival_offset_s
        recent = (self._steady.now().nanoseconds - self._last_arrival_ns) * 1e-9 < max(2.0, 4 * self.params.stale_timeout)
        if offset is not None and recent and abs(offset) > CLOCK_MISMATCH_S:
            side = "behind" if offset > 0 else "ahead of"
            return (f"latents arrive on {topic}, but stamped {abs(offset):.0f} s {side} this node's clock: they come "
                    "from another clock; with a simulator or a bag, set use_sim_time:=true on this node (or false "
                    "if the latents are stamped with wall time); across machines, synchronise the clocks (chrony, PTP)")
        if offset is not None and recent:
            return (f"latents arrive on {topic}, but the newest is stamped {offset:.2f} s from this node's clock "
                    f"(stale_timeout {self.params.stale_timeout} s, max_clock_skew {self.params.max_clock_skew} s): "
                    "no fresh latent to take as the goal")
        return f"no fresh latent on {topic} to take as the goal"

    def _on_clear_goal(self, _request: Any, response: Any) -> Any:
        """Forget the goal and stop: idle until the next goal (e.g. before moving the robot). Goal latents
        that arrived before are dropped: those still queued, and those sent before (by source timestamp)."""
        self._cleared_wall_ns = time.time_ns()
        self._drain_goal_latents()
        with self._lock:
            self._command_epoch += 1
            self._goal_generation += 1  # a goal image still being aligned (or refined) no longer sets the goal
            had = self.goal is not None or self._pending_goal_image is not None or self.status == ALIGNING
            self.goal, self.goal_source, self.status = None, "", IDLE
            if self._align is not None:
                self._align.phase = NO_GOAL_IMAGE
            self._pending_goal_image, self.goal_image_score = None, None
            self._stop()
            self._reset_for_goal()
        response.success = True
        response.message = "goal cleared; stopped" if had else "no goal was set"
        return response

    def _drain_goal_latents(self) -> None:
        """Take (and drop) the goal latents queued in the subscription: they arrived before the clear."""
        sub = self._goal_latent_sub
        if sub is None:  # no goal-latent input (GOAL_INPUTS False)
            return
        for _ in range(10_000):  # the queue's depth bounds it; this only guards against a publisher outpacing us
            with sub.handle:
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
            if taken is None:
                return
            self._safety_counts["goals_dropped_after_clear"] += 1

    # -- the scan safety layer ------------------------------------------------------------------------------
    def _on_scan(self, msg: Any) -> None:
        try:
            ranges = np.asarray(msg.ranges, np.float32)
            points = scan_points(ranges, float(msg.angle_min), float(msg.angle_increment), float(msg.range_min),
                                 float(msg.range_max))
        except (ValueError, TypeError) as err:  # InputError is a ValueError
            raise InputError(f"scan: {err}") from err
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        self._scan = (stamp, points)
        if self._align is not None:
            self._align.sensors.add_scan(stamp, ranges, ScanGeometry(
                float(msg.angle_min), float(msg.angle_increment), float(msg.range_min), float(msg.range_max)))
        self._on_scan_ranges(msg, ranges)

    def _scan_problem(self) -> str:
        """Why the newest scan cannot judge a command ('' when it can)."""
        if self._scan is None:
            return f"no scan on {self._scan_sub.topic_name} yet"
        age = (self.get_clock().now().nanoseconds - self._scan[0]) * 1e-9
        if abs(age) > self.params.scan_timeout:
            when = f"{age:.1f} s old" if age > 0 else f"stamped {-age:.1f} s in the future"
            return f"the newest scan on {self._scan_sub.topic_name} is {when} (scan_timeout {self.params.scan_timeout} s)"
        return ""

    def _limit(self, linear: float, angular: float) -> tuple[float, float]:
        """A command through the scan safety layer; said in /diagnostics and, when it stops the robot, the log."""
        config = self.params.safety_config()
        problem = self._scan_problem() if config.enabled else ""
        if problem:
            verdict = stop_without_scan((linear, angular), problem)
        else:
            verdict = guard_command((linear, angular), None if self._scan is None else self._scan[1], config)
        self._verdict = verdict
        if verdict.state == STOPPED and (verdict.requested[0] != 0.0 or (problem and verdict.requested[1] != 0.0)):
            self.get_logger().warning(
                f"scan safety stopped the robot ({verdict.requested[0]:.2f} m/s, {verdict.requested[1]:.2f} rad/s "
                f"asked): {verdict.describe().removeprefix('stopped: ')}", throttle_duration_sec=WARN_THROTTLE_S)
        return verdict.command

    def _safety_diagnostics(self) -> list[tuple[str, str]]:
        """Counts of the inputs the shared safety rules refused, the bound latents are held to, and `blocked`:
        what the scan safety layer did to the last command."""
        verdict = self._verdict
        return [*((name, str(count)) for name, count in self._safety_counts.items()),
                ("latent_bound", f"{self._latent_bound:g}"),
                ("blocked", "no command yet" if verdict is None else verdict.describe())]

    # -- the newest latent and the watchdog ------------------------------------------------------------------
    def _record_latent(self, mean: np.ndarray, header: Any) -> int:
        """Keep the newest latent (for set_goal and the watchdog); returns its stamp in ns.

        InputError (the latent is not kept) for a stamp further ahead of this node's clock than max_clock_skew
        and for a latent outside the model's range."""
        stamp = stamp_ns(header.stamp)
        self._last_arrival_ns = self._steady.now().nanoseconds
        self._silent_link_said = False
        now_ns = self.get_clock().now().nanoseconds
        offset = (now_ns - stamp) * 1e-9  # its age; negative: from the future
        self._arrival_offset_s = offset
        if now_ns == 0 and self.get_parameter("use_sim_time").value:
            # Simulated time before the first /clock message: every stamp is "in the future". Still refused
            # (nothing moves on it), but the reason is the clock that has not started, not a skew.
            self._safety_counts["future_stamped"] += 1
            raise InputError("no /clock message yet (use_sim_time is true): waiting for the simulated clock")
        if -offset > self.params.max_clock_skew:
            self._safety_counts["future_stamped"] += 1
            raise InputError(
                f"latent stamped {-offset:.3f} s in the future of this node's clock (more than max_clock_skew "
                f"{self.params.max_clock_skew} s): check the clock synchronisation between the machines (chrony, "
                "PTP) and use_sim_time (true on every node with a simulator or a bag, false otherwise)")
        self._check_range(mean, "latent")
        self._latest, self._latest_stamp_ns = mean, stamp
        if self._align is not None:
            self._align.sensors.add_latent(stamp, mean)
        self._remember(mean, stamp)
        return stamp

    def _is_stale(self, stamp_ns: int | None = None) -> bool:
        """Whether the newest latent (or the one stamped stamp_ns) is no basis for a command: older than
        stale_timeout, or stamped further ahead of this node's clock than max_clock_skew (a clock that
        jumped back: a future stamp must never count as fresh)."""
        stamp = self._latest_stamp_ns if stamp_ns is None else stamp_ns
        if stamp is None:
            return True
        age = (self.get_clock().now().nanoseconds - stamp) * 1e-9
        return age > self.params.stale_timeout or -age > self.params.max_clock_skew

    def _on_watchdog(self) -> None:
        """Zero velocity while the newest latent is older than stale_timeout (or none came yet), or while the
        robot moves with the scan safety layer on and no fresh scan.

        It never waits for a planner: the lock is only ever held for short state changes (see _stop)."""
        if not self._is_stale():
            if self._last_sent != (0.0, 0.0) and self.params.scan_safety and self._scan_problem():
                self._limit(*self._last_sent)  # said as the layer says it (diagnostics, the log) ...
                self._stop()  # ... and the robot stopped now, not at the next control step
            return
        self._check_link()
        if self.goal is not None:
            if self.status != STALE:
                self.get_logger().warning(f"no fresh latent for {self.params.stale_timeout} s: stopping",
                                          throttle_duration_sec=WARN_THROTTLE_S)
            self.status = STALE
        self._stop()

    def _check_link(self) -> None:
        """Say (once per silence) when publishers of the latent topic exist but none of their latents has
        arrived for SILENT_LINK_S (wall time): the node would otherwise only report that its input is stale."""
        now = self._steady.now().nanoseconds
        silent_s = (now - self._last_arrival_ns) * 1e-9
        # Past SILENT_LINK_S, the graph is asked at most once a second (the watchdog ticks ten times).
        if self._silent_link_said or silent_s < SILENT_LINK_S or now - self._link_checked_ns < 1_000_000_000:
            return
        self._link_checked_ns = now
        publishers = self.count_publishers(self._latent_sub.topic_name)
        if publishers == 0:
            return
        self._silent_link_said = True
        self.get_logger().warning(
            f"{publishers} publisher(s) of {self._latent_sub.topic_name} in the graph, but no latent arrived for "
            f"{silent_s:.0f} s: check that they publish (ros2 topic hz), with compatible QoS (ros2 topic info -v); "
            "if they do, see 'One link silent' in docs/ROBOT.md")

    # -- output ----------------------------------------------------------------------------------------------
    def _publish_command(self, linear: float, angular: float) -> tuple[float, float]:
        """Publish a command through the scan safety layer; returns what was sent."""
        linear, angular = self._limit(float(linear), float(angular))
        msg = self._twist()
        msg.linear.x = linear
        msg.angular.z = angular
        self._cmd_pub.publish(msg)
        self._last_sent = (linear, angular)
        return linear, angular

    def _stop(self) -> None:
        """Zero velocity now; work begun before (a plan in progress) may no longer command (_command_epoch)."""
        with self._lock:
            self._command_epoch += 1
            self._reset_command()
            self._publish_command(0.0, 0.0)

    def _on_rejected(self, reason: str) -> None:
        self.stats.on_rejected(reason)
        if self.goal is not None:
            self._stop()

    def _on_error(self, reason: str) -> None:
        self.stats.on_error(reason)
        self._stop()

    def close(self) -> None:
        """Fail safe on the way out: a last zero command (run_node calls this in its finally)."""
        if self._closed:
            return
        self._closed = True
        if self._align is not None:
            self._align.close()
        if self._goal_image_worker is not None:
            self._goal_image_worker.close()
        try:
            self._publish_command(0.0, 0.0)
            from rclpy.duration import Duration

            # Reliable subscribers (the base) acknowledge the stop before the process goes.
            self._cmd_pub.wait_for_all_acked(Duration(seconds=FINAL_STOP_ACK_S))
        except Exception as err:  # noqa: BLE001 - the context may already be gone; nothing else to do
            print(f"{self.get_name()}: could not publish the final zero command: {err}", file=sys.stderr)


def converged_tolerance(tolerance: float, model_dir: Path, training: dict[str, Any]) -> float:
    """The `tolerance` parameter, or where it is 0 the model's calibrated value (model.json
    training.control.tolerance); ConfigError when there is neither."""
    value = tolerance or calibrated_tolerance(training)
    if not value:
        from vae_ros.core.errors import ConfigError

        raise ConfigError(f"{model_dir} has no calibrated tolerance (model.json training.control.tolerance); set "
                          "the `tolerance` parameter")
    return value


def stop_before_shutdown() -> None:
    """Let SIGINT / SIGTERM reach run_node as KeyboardInterrupt while the ROS context is still valid.

    rclpy's own handlers shut the context down first, so the final zero command of close() could no longer
    be published (measured: "publisher's context is invalid"). Python's handlers run between callbacks (the
    0.1 s watchdog timer bounds the wait), run_node then calls close(), which publishes the zero, and only
    then shuts rclpy down. Only in the main thread (where run_node builds the node).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    from rclpy.signals import uninstall_signal_handlers

    uninstall_signal_handlers()
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
