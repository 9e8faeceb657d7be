"""The parameters of every vae_ros node, declared once: name, default (its type is the ROS parameter's type),
description, read-only flag and range, as fields of one frozen dataclass per node.

Each node declares its dataclass's fields (vae_ros.ros.kit.run.declare_params) and reads them into it once;
the launch files derive their parameter arguments (type and description) from the same fields
(vae_ros.ros.kit.launch.parameter_arguments_of), and test/test_config_files.py checks config/*.yaml
against them. This module imports neither rclpy nor the models, so a launch file can read it cheaply.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from vae_ros.core.errors import ConfigError
from vae_ros.core.fused import SYNC_SLOP_S
from vae_ros.core.image_header import DEFAULT_MAX_IMAGE_PIXELS
from vae_ros.sim.world import CAMERA_FOVY_DEG, CAMERA_OFFSET, LIDAR_OFFSET

if TYPE_CHECKING:
    from vae_ros.control.runtime.dynamics import LatentDynamics
    from vae_ros.control.runtime.planner import MpcConfig
    from vae_ros.control.runtime.route_follower import FollowerConfig
    from vae_ros.control.runtime.safety import SafetyConfig
    from vae_ros.control.runtime.servo import ServoConfig


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: name, default (its type is the parameter's type), description, read-only, and an
    inclusive (low, high) range the ROS descriptor enforces (None: any value of the type)."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    range: tuple[float, float] | None = None

    @property
    def kind(self) -> type:
        """The parameter's Python type: bool, int, float, str, or list for arrays."""
        return list if isinstance(self.default, list | tuple) else type(self.default)


def param(default: Any, description: str, *, read_only: bool = False,
          range: tuple[float, float] | None = None) -> Any:  # noqa: A002 - the ROS descriptor's word
    """A parameters-dataclass field that is also a ROS parameter declaration."""
    return field(default=default, metadata={"description": description, "read_only": read_only, "range": range})


def specs_of(params_type: type) -> list[ParamSpec]:
    """The ParamSpec of every field of a parameters dataclass, in field order."""
    return [ParamSpec(f.name, f.default, f.metadata["description"], f.metadata["read_only"], f.metadata["range"])
            for f in dataclasses.fields(params_type)]


P = TypeVar("P", bound="NodeParams")


@dataclass(frozen=True)
class NodeParams:
    """Base of the nodes' parameter dataclasses: read once at start-up; runtime changes swap in a validated
    copy (`updated`)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid value and what is allowed."""

    def check_ranges(self) -> None:
        """Raise ConfigError for a value outside its field's range (the range the ROS descriptor enforces too,
        so that values set before the node runs, from YAML or in code, are held to it as well) or not finite."""
        for spec in specs_of(type(self)):
            if spec.range is None:
                continue
            value, (low, high) = getattr(self, spec.name), spec.range
            if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
                raise ConfigError(f"{spec.name} must be in [{low:g}, {high:g}], got {value!r}")

    @classmethod
    def from_values(cls: type[P], values: dict[str, Any]) -> P:
        """Values as rclpy gives them (arrays as lists) -> a validated instance (ranges first, then validate)."""
        converted = {name: tuple(float(v) for v in value) if isinstance(_default(cls, name), tuple) else value
                     for name, value in values.items()}
        params = cls(**converted)
        params.check_ranges()
        params.validate()
        return params

    def updated(self: P, values: dict[str, Any]) -> P:
        """A validated copy with the fields named in `values` replaced (other names are ignored)."""
        names = {f.name for f in dataclasses.fields(self)}
        return type(self).from_values({**dataclasses.asdict(self), **{k: v for k, v in values.items() if k in names}})


def _default(cls: type, name: str) -> Any:
    return next((f.default for f in dataclasses.fields(cls) if f.name == name), None)


def _require_positive(params: Any, names: Sequence[str]) -> None:
    for name in names:
        value = getattr(params, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value}")


def _require_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_runtime(backend: str, device: str) -> None:
    from vae_ros.core.backends import BACKENDS, DEVICES

    _require_choice("backend", backend, BACKENDS)
    _require_choice("device", device, DEVICES)


# -- encoder_node and decoder_node ----------------------------------------------------------------------------
_BACKEND = "Inference runtime: auto, torch, onnxruntime or tensorrt."
_DIAGNOSTICS_PERIOD = "Seconds between /diagnostics reports."
# Ranges shared by several nodes (inclusive; the ROS descriptor enforces them, so does check_ranges).
DIAGNOSTICS_PERIOD_RANGE = (0.05, 60.0)
SEED_RANGE = (0, 2**31 - 1)
MAX_IMAGE_PIXELS_RANGE = (0, 16384 * 16384)


@dataclass(frozen=True)
class InferenceParams(NodeParams):
    """What encoder_node and decoder_node share: the model and how it runs."""

    model: str = param("", "Model directory (model.json + weights.safetensors); empty = the packaged default for "
                           "the modality.", read_only=True)
    modality: str = param("", "image, scan, pointcloud or fused (a camera + LiDAR model: models/fused_default when "
                              "`model` is empty); empty = the model's (image when `model` is empty too). Must "
                              "match the model: a fused model serves modality fused or empty only.", read_only=True)
    backend: str = param("auto", _BACKEND, read_only=True)
    device: str = param("cpu", "cpu or cuda.", read_only=True)
    engine_cache: str = param("", "Folder kept across starts for TensorRT engines (backend tensorrt): built on the "
                                  "first start on the device, then reused; one subfolder per model weights. Empty = "
                                  "the model directory's trt/.", read_only=True)
    warmup: int = param(0, "Inferences on a blank input at start, before the first message is accepted (TensorRT "
                           "builds or loads its engines, CUDA initialises); 0 = none.", read_only=True,
                        range=(0, 1000))
    diagnostics_period: float = param(1.0, _DIAGNOSTICS_PERIOD, read_only=True, range=DIAGNOSTICS_PERIOD_RANGE)

    def validate(self) -> None:
        from vae_ros.core.config import MODALITIES
        from vae_ros.core.fused import FUSED_MODALITY

        if self.modality not in ("", *MODALITIES, FUSED_MODALITY):
            raise ConfigError(f"modality must be one of {', '.join((*MODALITIES, FUSED_MODALITY))} (or empty), "
                              f"got {self.modality!r}")
        _check_runtime(self.backend, self.device)
        if not self.diagnostics_period > 0:
            raise ConfigError(f"diagnostics_period must be > 0 seconds, got {self.diagnostics_period}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0 inferences, got {self.warmup}")


@dataclass(frozen=True)
class EncoderParams(InferenceParams):
    """encoder_node's parameters."""

    compressed: bool = param(False, "Image modality (and a fused model's camera): subscribe to "
                                    "sensor_msgs/CompressedImage (JPEG/PNG) on camera/image_raw/compressed instead "
                                    "of Image on camera/image_raw.", read_only=True)
    publish_variance: bool = param(False, "Also publish the latent log-variances (vae/latent: layout stat x latent; "
                                          "vae/latent_stamped: a second row).")
    publish_anomaly_score: bool = param(False, "Publish an anomaly score per input on vae/anomaly_score.")
    anomaly_metric: str = param("reconstruction", "reconstruction (mean squared error, normalised units) or "
                                                  "neg_elbo (negative ELBO, nats).")
    qos_reliability: str = param("auto", "Input reliability: auto (match the publishers, as rosbag2 does), "
                                         "best_effort or reliable.", read_only=True)
    threads: int = param(0, "CPU threads for ONNX Runtime inference; 0 = all cores up to 4.", read_only=True,
                         range=(0, 256))
    preprocess: str = param("auto", "Where an image model's input is resized and normalised: cpu (NumPy/OpenCV, as "
                                    "training did), device (on backend torch's device: the frame crosses to the GPU "
                                    "as uint8, same values within one grey level; vae_ros.core.preprocess_torch) or "
                                    "auto (device where the backend is torch on cuda, else cpu). Other modalities and "
                                    "fused models preprocess on the CPU.", read_only=True)
    cuda_graph: str = param("auto", "Backend torch on cuda: replay the batch-1 encoder from a CUDA graph (one launch "
                                    "instead of one per layer; vae_ros.core.cuda_graph). auto: timed against eager "
                                    "at start (50 runs each, said in the log) and kept where faster; on; off. Other "
                                    "backends and devices: unused (on is refused).", read_only=True)
    max_image_pixels: int = param(DEFAULT_MAX_IMAGE_PIXELS, "Compressed images declaring more pixels (width x "
                                  "height, read from the PNG/JPEG header) are refused before decoding; 0 = no limit.",
                                  range=MAX_IMAGE_PIXELS_RANGE)
    sync_slop: float = param(SYNC_SLOP_S, "Fused model: seconds between a camera frame's and a scan's header stamps that "
                                   "still pair into one latent (half the period of a 10 Hz LiDAR: each scan pairs "
                                   "with one frame at most, and a camera of 10 Hz or more has one within it).",
                             read_only=True, range=(0.0, 1.0))
    sensor_timeout: float = param(0.3, "Fused model: seconds without a usable message (none, or only rejected "
                                       "ones) after which a sensor is left out and latents come from the others "
                                       "alone; it is back with its next usable message. Below the controllers' "
                                       "stale_timeout (0.5 s), so they keep latents through a drop-out.",
                                  read_only=True, range=(0.02, 10.0))

    def validate(self) -> None:
        from vae_ros.core.anomaly import ANOMALY_METRICS
        from vae_ros.core.cuda_graph import CUDA_GRAPH_CHOICES
        from vae_ros.core.preprocess import PREPROCESS_CHOICES
        from vae_ros.ros.qos import RELIABILITY_CHOICES

        super().validate()
        if self.max_image_pixels < 0:
            raise ConfigError(f"max_image_pixels must be >= 0 (0 = no limit), got {self.max_image_pixels}")
        _require_choice("anomaly_metric", self.anomaly_metric, ANOMALY_METRICS)
        _require_choice("qos_reliability", self.qos_reliability, RELIABILITY_CHOICES)
        _require_choice("preprocess", self.preprocess, PREPROCESS_CHOICES)
        _require_choice("cuda_graph", self.cuda_graph, CUDA_GRAPH_CHOICES)
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0 = automatic), got {self.threads}")
        if self.compressed and self.modality not in ("", "image", "fused"):
            raise ConfigError(f"compressed:=true needs the image modality (or fused: its camera), got modality {self.modality!r}")


@dataclass(frozen=True)
class DecoderParams(InferenceParams):
    """decoder_node's parameters."""

    frame_id: str = param("vae", "header.frame_id of what is decoded from unstamped latents (vae/latent) and from "
                                 "prior samples; outputs of vae/latent_stamped carry the latent's own header.")
    generate: bool = param(False, "Sample latents from the prior N(0, I) at generate_rate instead of subscribing "
                                  "to vae/latent and vae/latent_stamped.", read_only=True)
    generate_rate: float = param(1.0, "Samples per second in generation mode (> 0).", range=(0.01, 1000.0))
    seed: int = param(0, "Seed of the prior samples in generation mode.", read_only=True, range=SEED_RANGE)

    def validate(self) -> None:
        super().validate()
        if not (self.generate_rate > 0 and self.generate_rate <= 1000):
            raise ConfigError(f"generate_rate must be in (0, 1000] Hz, got {self.generate_rate}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


# -- sim_node -------------------------------------------------------------------------------------------------
LIDAR_MODES = ("scan", "pointcloud", "both", "none")
MAX_SIM_RATE = 100.0


@dataclass(frozen=True)
class SimNodeParams(NodeParams):
    """sim_node's parameters; max_linear, max_angular, cmd_timeout and initial_pose change at runtime."""

    rate: float = param(10.0, "Sensor frames per second (simulated time advances 1/rate per frame).",
                        read_only=True, range=(0.1, MAX_SIM_RATE))
    image_width: int = param(128, "Camera image width in pixels.", read_only=True, range=(8, 4096))
    image_height: int = param(128, "Camera image height in pixels.", read_only=True, range=(8, 4096))
    lidar: str = param("scan", "LiDAR to publish: scan (LaserScan on `scan`), pointcloud (PointCloud2 on "
                               "`lidar/points`), both, or none.", read_only=True)
    seed: int = param(0, "World seed: object placement and colours.", read_only=True, range=SEED_RANGE)
    initial_pose: tuple[float, float, float] = param(
        (0.0, 0.0, 0.0), "[x, y, yaw] of the robot in the odom frame (m, m, rad), e.g. '[1.0, 0.5, 1.57]'; "
                         "setting it at runtime teleports the robot there at rest.")
    max_linear: float = param(0.5, "Limit of |cmd_vel.linear.x| in m/s.", range=(0.0, 1.0))
    max_angular: float = param(1.5, "Limit of |cmd_vel.angular.z| in rad/s.", range=(0.0, 2.0))
    cmd_timeout: float = param(0.5, "Seconds (simulated) without a fresh cmd_vel after which the robot stops.",
                               range=(0.01, 10.0))
    publish_camera: bool = param(True, "Publish camera/image_raw (rendering costs CPU).", read_only=True)
    odom_error: float = param(0.0, "Wheel-odometry error on `odom`: 0 = ideal (odom is the ground truth); 1 = the "
                                   "typical error of a small wheeled robot (scale +2 % linear, -3 % angular, heading "
                                   "drift 0.02 rad per metre, 2 % speed noise; vae_ros.sim.odometry); larger values "
                                   "scale every term. The true pose is always on ground_truth/odom.",
                              read_only=True, range=(0.0, 10.0))
    lighting: str = param("default", "Light of the room as the camera sees it: default (what the packaged models "
                                     "saw), dim (about half), bright (about 1.5x), side (a low warm sun from one "
                                     "side).", read_only=True)

    def validate(self) -> None:
        from vae_ros.sim.world import LIGHTING

        _require_choice("lidar", self.lidar, LIDAR_MODES)
        _require_choice("lighting", self.lighting, tuple(LIGHTING))
        if not (math.isfinite(self.odom_error) and 0.0 <= self.odom_error <= 10.0):
            raise ConfigError(f"odom_error must be in 0..10 (0 = ideal, 1 = typical), got {self.odom_error!r}")
        if not 0 < self.rate <= MAX_SIM_RATE:
            raise ConfigError(f"rate must be in (0, {MAX_SIM_RATE:g}] Hz, got {self.rate!r}")
        for name in ("image_width", "image_height"):
            if not 8 <= getattr(self, name) <= 4096:
                raise ConfigError(f"{name} must be an integer in 8..4096, got {getattr(self, name)!r}")
        if len(self.initial_pose) != 3 or not all(math.isfinite(v) for v in self.initial_pose):
            raise ConfigError(f"initial_pose must be [x, y, yaw] (three finite numbers), got {list(self.initial_pose)}")
        for name in ("max_linear", "max_angular"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be a non-negative float, got {getattr(self, name)!r}")
        if not self.cmd_timeout > 0:
            raise ConfigError(f"cmd_timeout must be a positive float (seconds), got {self.cmd_timeout!r}")


# -- latent_servo_node and world_model_node -------------------------------------------------------------------
# Rollout steps (horizon x samples x iterations) one plan may cost: 4.4x the default 30 x 150 x 3. Measured with
# the packaged control model on a loaded 2-core CPU (one plan_step, cold): 13500 (default) 32-71 ms, 54000
# 86-126 ms, 90000 170-240 ms, 2000000 (100 x 2000 x 10) 3.2-4.2 s.
PLAN_BUDGET = 60_000
_GOAL_WAIT = "empty = wait for a goal on servo/goal_latent, servo/goal_image or servo/set_goal."


@dataclass(frozen=True)
class ControlShellParams(NodeParams):
    """What every controller on the control-node shell (vae_ros.ros.nodes.control_base) has: the model, limits,
    the stale-input watchdog and the scan safety layer."""

    model: str = param("", "VAE model directory whose latents this node receives; empty = the packaged "
                           "models/control_default.", read_only=True)
    max_linear: float = param(0.3, "Speed limit (m/s).", range=(0.0, 2.0))
    max_angular: float = param(0.8, "Turn-rate limit (rad/s).", range=(0.0, 4.0))
    max_linear_accel: float = param(0.8, "Linear acceleration limit (m/s^2).", range=(0.0, 10.0))
    max_angular_accel: float = param(3.0, "Angular acceleration limit (rad/s^2).", range=(0.0, 20.0))
    stale_timeout: float = param(0.5, "Seconds since the newest latent's header stamp after which the node "
                                      "publishes zero velocity (at most 10 s: the stop must not be switched off).",
                                 range=(0.01, 10.0))
    max_clock_skew: float = param(0.2, "Seconds a latent's header stamp may lie ahead of this node's clock "
                                       "(clock offset between machines); a latent stamped further in the future is "
                                       "rejected and the robot stopped: check the clocks' synchronisation (chrony, "
                                       "PTP) and use_sim_time.", range=(0.0, 1.0))
    scan_safety: bool = param(True, "Scan safety layer on every command: checked against the newest LaserScan "
                                    "on `scan`, the robot slows down and stops where the free space along its "
                                    "commanded arc (forwards or backwards) is shorter than safety_margin, and never "
                                    "pushes into an obstacle; turning in place stays allowed. With no fresh scan "
                                    "every command is zero. false = commands pass unchecked (only with another "
                                    "safety system on the base).", read_only=True)
    safety_margin: float = param(0.2, "Scan safety layer: distance (m) kept beyond robot_radius from every scan "
                                      "point along the command held 0.6 s (0.2 covers what the simulator's scan "
                                      "plane misses: a post under a sphere, box corners). 0..1.",
                                 read_only=True, range=(0.0, 1.0))
    robot_radius: float = param(0.2, "Radius (m) of the robot's circular footprint round the scan's origin (the "
                                     "simulated robot's: 0.2). 0.05..2.", read_only=True, range=(0.05, 2.0))
    scan_timeout: float = param(0.5, "Seconds between the newest scan's header stamp and this node's clock (either "
                                     "way) after which the scan safety layer has no scan and every command is zero. "
                                     "0.05..5.", read_only=True, range=(0.05, 5.0))
    diagnostics_period: float = param(1.0, _DIAGNOSTICS_PERIOD, read_only=True, range=DIAGNOSTICS_PERIOD_RANGE)

    def validate(self) -> None:
        _require_positive(self, ("stale_timeout", "diagnostics_period", "max_linear", "max_angular",
                                 "max_linear_accel", "max_angular_accel"))
        for name, (low, high) in (("safety_margin", (0.0, 1.0)), ("robot_radius", (0.05, 2.0)),
                                  ("scan_timeout", (0.05, 5.0))):
            if not low <= getattr(self, name) <= high:  # NaN fails too
                raise ConfigError(f"{name} must be in [{low}, {high}], got {getattr(self, name)}")

    def safety_config(self) -> SafetyConfig:
        """The scan safety layer (vae_ros.control.runtime.safety) as these parameters set it."""
        from vae_ros.control.runtime.safety import SafetyConfig

        return SafetyConfig(enabled=self.scan_safety, robot_radius=self.robot_radius, margin=self.safety_margin)


@dataclass(frozen=True)
class ControlParams(ControlShellParams):
    """What the two goal controllers (latent servo, world model) share beside the shell's: goals (a goal image,
    the view memory) and the converged tolerance."""

    goal_image: str = param("", "Image file whose latent is the goal at start: encoded by a camera model, or "
                                "with another model looked up among the remembered camera views (view_memory) as "
                                "soon as one matches (a fused model: aligned with the live view, goal_align, or its "
                                "camera expert's joint latent of the image until then); " + _GOAL_WAIT, read_only=True)
    tolerance: float = param(0.0, "Latent error norm that counts as converged; 0 = the model's calibrated value "
                                  "(model.json training.control.tolerance: <= 0.10 m and 5 deg).", range=(0.0, 100.0))
    view_memory: int = param(3000, "Camera views (camera/image_raw) remembered beside the latent of the same "
                                   "instant, so that goal images work with a model of another sensor (the "
                                   "LaserScan control model): a goal image selects the view it matches and its "
                                   "latent becomes the goal. 0 = off; unused with camera models.", read_only=True,
                              range=(0, 20000))
    view_match: float = param(0.99, "Normalised cross-correlation a goal image must reach against a remembered "
                                    "view (1 = the same frame).", read_only=True, range=(0.0, 1.0))
    max_image_pixels: int = param(DEFAULT_MAX_IMAGE_PIXELS, "Goal images (servo/goal_image) of more pixels (width x "
                                  "height) are refused before any conversion; 0 = no limit.",
                                  range=MAX_IMAGE_PIXELS_RANGE)
    goal_align: bool = param(True, "A fused camera + LiDAR model: a goal image that matches no remembered view is "
                                   "aligned with the live camera image through the live LaserScan's geometry (the "
                                   "robot looks around first, goal_align_look, then stands while it searches, 1-3 s "
                                   "per view on a small CPU), and the goal latent is the joint "
                                   "latent of the live scan moved to the pose found and the image (docs/FUSION.md, "
                                   "'A goal given as an image alone'); refined on the way every goal_align_period. "
                                   "false = the camera expert's joint latent of the image.", read_only=True)
    goal_align_look: float = param(40.0, "goal_align: before its search at the start the robot looks around, turning "
                                         "in place to +goal_align_look degrees, then to -goal_align_look, a view at "
                                         "each heading (the best match wins: from the start it often sees too little "
                                         "of the photo's view); 0 = it searches from where it stands, without "
                                         "turning.", read_only=True, range=(0.0, 90.0))
    goal_align_period: float = param(1.0, "Seconds between two searches on the way around where the controller "
                                          "estimates the goal (goal_align); a match of NCC >= 0.9 replaces the goal.",
                                     read_only=True, range=(0.1, 60.0))
    camera_fovy: float = param(CAMERA_FOVY_DEG, "goal_align: the camera's vertical field of view in degrees (of "
                                                "camera/image_raw as published: the simulator's camera by default).",
                               read_only=True, range=(1.0, 170.0))
    camera_offset: tuple[float, float, float] = param(
        CAMERA_OFFSET, "goal_align: [x, y, z] of the camera in base_link (m; x forward, y left, z up above the "
                       "floor), looking along +x (the simulator's camera by default).", read_only=True)
    lidar_offset: tuple[float, float] = param(
        LIDAR_OFFSET[:2], "goal_align: [x, y] of the LiDAR (the LaserScan's origin) in base_link (m; the "
                          "simulator's by default).", read_only=True)

    def validate(self) -> None:
        super().validate()
        if self.view_memory < 0 or not 0.0 < self.view_match <= 1.0:
            raise ConfigError(f"view_memory must be >= 0 and view_match in (0, 1], got {self.view_memory} and "
                              f"{self.view_match}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ConfigError(f"tolerance must be >= 0 (0 = the model's calibrated value), got {self.tolerance}")
        offset = tuple(self.camera_offset)
        if len(offset) != 3 or not all(math.isfinite(v) and abs(v) <= 10.0 for v in offset) or not offset[2] > 0:
            raise ConfigError(f"camera_offset must be [x, y, z] in metres (finite, within 10 m, z > 0: the camera "
                              f"above the floor), got {list(offset)}")
        lidar = tuple(self.lidar_offset)
        if len(lidar) != 2 or not all(math.isfinite(v) and abs(v) <= 10.0 for v in lidar):
            raise ConfigError(f"lidar_offset must be [x, y] in metres (finite, within 10 m), got {list(lidar)}")

    def camera_geometry(self, width: int, height: int) -> Any:
        """goal_align's CameraGeometry (vae_ros.control.runtime.image_goal) for camera frames of this size."""
        from vae_ros.control.runtime.image_goal import CameraGeometry

        x, y, z = self.camera_offset
        return CameraGeometry(int(width), int(height), float(self.camera_fovy), (float(x), float(y), float(z)),
                              (float(self.lidar_offset[0]), float(self.lidar_offset[1])))


@dataclass(frozen=True)
class ServoParams(ControlParams):
    """latent_servo_node's parameters."""

    model: str = param("", "Control model directory (a LaserScan VAE trained with `vae-ros train --pose-topic`); "
                           "empty = the packaged models/control_default.", read_only=True)
    gain: float = param(1.0, "Proportional gain on the estimated distance to the goal (1/s).", range=(0.0, 20.0))
    angular_gain: float = param(2.0, "Gain on heading and final yaw errors (1/s).", range=(0.0, 20.0))
    backoff_distance: float = param(0.3, "Where a sideways offset is left once the yaw is aligned, back off "
                                         "until the goal is this far ahead (m, straight back along the goal's "
                                         "heading, with nothing watching behind) and approach again; 0 = never.",
                                    range=(0.0, 2.0))

    def validate(self) -> None:
        _require_positive(self, ("gain", "angular_gain"))
        if not (math.isfinite(self.backoff_distance) and self.backoff_distance >= 0):
            raise ConfigError(f"backoff_distance must be >= 0 (0 = never back off), got {self.backoff_distance}")
        super().validate()

    def servo_config(self, tolerance: float) -> ServoConfig:
        from vae_ros.control.runtime.servo import ServoConfig

        config = ServoConfig(
            tolerance=tolerance, gain=self.gain, angular_gain=self.angular_gain,
            max_linear=self.max_linear, max_angular=self.max_angular, max_linear_accel=self.max_linear_accel,
            max_angular_accel=self.max_angular_accel, backoff_distance=self.backoff_distance)
        config.validate()
        return config


@dataclass(frozen=True)
class WorldModelParams(ControlParams):
    """world_model_node's parameters."""

    dynamics: str = param("", "Dynamics directory (`vae-ros train-dynamics --out`) trained on that model's "
                              "latents; empty = <model>/dynamics.", read_only=True)
    horizon: int = param(30, "Planning horizon in model steps (each the dynamics' dt, e.g. 0.1 s); horizon x "
                             f"samples x iterations at most {PLAN_BUDGET}.", range=(1, 100))
    samples: int = param(150, "Candidate command sequences per CEM iteration.", range=(1, 2000))
    iterations: int = param(3, "CEM iterations per plan.", range=(1, 10))
    elites: int = param(15, "Cheapest candidates the CEM refits to (at most samples).", range=(1, 2000))
    collision: bool = param(True, "Add a collision cost from the newest LaserScan on `scan` to the plan.")
    collision_radius: float = param(0.3, "Robot radius plus margin for the collision cost (m).", range=(0.01, 2.0))
    seed: int = param(0, "Seed of the planner's sampling (each plan is reproducible from it and its step).",
                      range=SEED_RANGE)
    cost: str = param("auto", "Plan cost: pose (the control model's relative-pose head on the predicted latents, "
                              "shaped for a differential drive), latent (squared latent distance to the goal), "
                              "or auto (pose when the model has the head, servo_head.safetensors).",
                      read_only=True)
    action_repeat: int = param(5, "Model steps each planned command is held (horizon / action_repeat decisions).",
                               read_only=True, range=(1, 100))
    localise: bool = param(True, "With the pose cost: find the goal by imagined turning in place when the head "
                                 "cannot see it from here, and carry that belief.", read_only=True)
    localiser: str = param("imagined", "With localise: how the goal is looked for when the head cannot see it: "
                                       "imagined (the dynamics imagine turning in place), turned_scan (the "
                                       "newest full-turn LaserScan turned in place and encoded: real views, "
                                       "no model), turned_goal (the goal's scan decoded, turned and encoded "
                                       "again) or both (imagined and turned_goal in one vote); a model whose "
                                       "LiDAR does not see the full turn falls back to imagined.",
                           read_only=True)
    handover_distance: float = param(0.8, "With the pose cost: within this estimated goal distance (m) the servo "
                                          "law drives; 0 = never.", read_only=True, range=(0.0, 5.0))
    backend: str = param("auto", "Runtime of the model's encoder where the node encodes an observation itself "
                                 "(goal images, with camera models): auto, torch, onnxruntime or tensorrt. "
                                 "torch and tensorrt also run the planner's rollouts in torch (faster, but the "
                                 "node loads torch); otherwise they run in NumPy.", read_only=True)
    device: str = param("cpu", "cpu or cuda, for that encoder.", read_only=True)
    plan_device: str = param("auto", "Where each plan's candidates are rolled out and scored (the dynamics, the "
                                     "pose head, the collision cost, batched): cpu (NumPy, or torch rollouts as "
                                     "`backend` says), cuda (torch on the GPU; vae_ros.control.runtime.plan_torch; the "
                                     "same plans up to float rounding) or auto (with `device` cuda: a few plans timed "
                                     "each way at start, the GPU kept where faster; otherwise cpu, and torch is not "
                                     "loaded for it). The CEM's sampling and refits stay on the CPU.", read_only=True)

    def validate(self) -> None:
        super().validate()
        _check_runtime(self.backend, self.device)
        from vae_ros.control.runtime.dynamics import plan_device

        plan_device(self.plan_device, self.device)  # ConfigError for a choice it does not know
        if self.cost not in ("auto", "pose", "latent"):
            raise ConfigError(f"cost must be auto, pose or latent, got {self.cost!r}")
        from vae_ros.control.runtime.planner import LOCALISERS

        if self.localiser not in LOCALISERS:
            raise ConfigError(f"localiser must be one of {', '.join(LOCALISERS)}, got {self.localiser!r}")
        if not (math.isfinite(self.handover_distance) and self.handover_distance >= 0):
            raise ConfigError(f"handover_distance must be >= 0, got {self.handover_distance}")
        work = self.horizon * self.samples * self.iterations
        if work > PLAN_BUDGET:
            raise ConfigError(f"horizon x samples x iterations = {self.horizon} x {self.samples} x {self.iterations} "
                              f"= {work} rollout steps per plan, more than {PLAN_BUDGET} (a plan must finish well "
                              "within the stale timeout on a small CPU); lower one of them")

    def plan_cost(self, has_head: bool) -> str:
        """The cost the planner uses: `cost`, with auto resolved by whether the model has the pose head."""
        return ("pose" if has_head else "latent") if self.cost == "auto" else self.cost

    def mpc_config(self, dynamics: LatentDynamics, tolerance: float, head: Any = None,
                   goal_turner: Any = None, device_costs: Any = None) -> MpcConfig:
        from vae_ros.control.runtime.planner import MpcConfig, differential_drive_config
        from vae_ros.control.runtime.servo import ServoConfig

        common: dict[str, Any] = dict(
            horizon=self.horizon, samples=self.samples, iterations=self.iterations,
            elites=min(self.elites, self.samples), max_linear=self.max_linear, max_angular=self.max_angular,
            max_linear_accel=self.max_linear_accel, max_angular_accel=self.max_angular_accel,
            collision_radius=self.collision_radius, seed=self.seed, action_repeat=self.action_repeat,
            safety_margin=self.safety_margin, robot_radius=self.robot_radius, fail_safe=self.scan_safety,
            device_costs=device_costs)
        if self.plan_cost(head is not None) == "pose":
            # The planner as measured in eval-control (differential_drive_config), with these parameters.
            servo = ServoConfig(tolerance=tolerance, max_linear=self.max_linear, max_angular=self.max_angular)
            return differential_drive_config(dynamics, head, tolerance, servo=servo, localise=self.localise,
                                             handover_distance=self.handover_distance, localiser=self.localiser,
                                             goal_turner=goal_turner, **common)
        config = MpcConfig(dynamics=dynamics, tolerance=tolerance, **common)
        config.validate()
        return config


@dataclass(frozen=True)
class RouteFollowerParams(ControlShellParams):
    """route_follower_node's parameters. Limits and follower settings default to FollowerConfig's (the values
    eval-route measures with; test/control checks they agree)."""

    route: str = param("", "Route folder written by `vae-ros teach --out ROUTE` (required): the keyframes' latents "
                           "and odometry poses, and the digest of the model that made them.", read_only=True)
    model: str = param("", "Model directory whose latents this node receives: the route's model (its weights "
                           "digest must be the one the route records); empty = the packaged "
                           "models/control_default.", read_only=True)
    max_linear: float = param(0.25, "Speed limit (m/s).", range=(0.0, 2.0))
    max_angular: float = param(0.8, "Turn-rate limit (rad/s).", range=(0.0, 4.0))
    max_linear_accel: float = param(0.5, "Linear acceleration limit (m/s^2).", range=(0.0, 10.0))
    max_angular_accel: float = param(2.0, "Angular acceleration limit (rad/s^2).", range=(0.0, 20.0))
    lost_timeout: float = param(3.0, "Seconds without a confident match before the follower is lost and stops; it "
                                     "keeps matching and resumes when a confident match returns.",
                                range=(0.1, 60.0))
    odom_timeout: float = param(0.5, "Seconds between the newest odometry's header stamp and this node's clock "
                                     "(either way) after which odometry counts as missing: the robot stops until "
                                     "fresh odometry arrives (the follower moves its estimate by odometry "
                                     "increments between latent matches).", range=(0.05, 5.0))
    lookahead: float = param(0.35, "Metres along the taught path ahead of the robot's projection that pure "
                                   "pursuit steers toward.", range=(0.05, 2.0))
    window: float = param(1.0, "Metres of path each side of the current estimate searched for the latent match "
                               "(place recognition searches the whole route).", range=(0.1, 20.0))
    min_quality: float = param(0.25, "Match quality (1 - best / median keyframe distance) that counts as a "
                                     "confident match.", range=(0.01, 1.0))
    goal_tolerance: float = param(0.04, "Metres from the last keyframe (by the follower's estimate) within which, "
                                        "turned less than 2.5 deg, the route is done.", range=(0.005, 0.5))

    def validate(self) -> None:
        _require_positive(self, ("lost_timeout", "odom_timeout", "lookahead", "window", "goal_tolerance"))
        super().validate()

    def follower_config(self) -> FollowerConfig:
        """The follower's law (vae_ros.control.runtime.route_follower) as these parameters set it."""
        from vae_ros.control.runtime.route_follower import FollowerConfig

        config = FollowerConfig(max_linear=self.max_linear, max_angular=self.max_angular,
                                max_linear_accel=self.max_linear_accel, max_angular_accel=self.max_angular_accel,
                                lookahead=self.lookahead, window_m=self.window, min_quality=self.min_quality,
                                lost_timeout=self.lost_timeout, goal_tolerance=self.goal_tolerance)
        config.validate()
        return config


# Node name -> its parameters (the launch files and the config tests look them up here).
NODE_PARAMS: dict[str, type[NodeParams]] = {
    "encoder_node": EncoderParams,
    "decoder_node": DecoderParams,
    "sim_node": SimNodeParams,
    "latent_servo_node": ServoParams,
    "world_model_node": WorldModelParams,
    "route_follower_node": RouteFollowerParams,
}
