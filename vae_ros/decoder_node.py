"""decoder_node: latents -> reconstructions on `vae/reconstruction` (sensor_msgs/Image), and for LiDAR
models the decoded geometry as LiDAR messages: `vae/scan` (sensor_msgs/LaserScan) or `vae/points`
(sensor_msgs/PointCloud2).

Inputs (reliable, vae_ros.qos.LATENT_QOS), whichever arrives:
- `vae/latent_stamped` (sensor_msgs/Image 32FC1, the contract's stamped layout): the outputs carry its
  header, i.e. the stamp and frame_id of the sensor message the encoder encoded, so TF lookups and
  message_filters work on the receiving side, on another machine too;
- `vae/latent` (std_msgs/Float32MultiArray): no header, so the outputs are stamped with this node's clock
  and the `frame_id` parameter. An encoder publishes every latent on both topics; while stamped latents
  arrive (the last less than STAMPED_PREFERENCE_S ago) latents on `vae/latent` are ignored, so one
  encoding is decoded once. A base station should subscribe to the robot's `vae/latent_stamped` only
  (launch/base_station.launch.py), which also halves the traffic between the machines.

Outputs, by the model's modality:
- image models: `vae/reconstruction`, the decoded picture, rgb8 (3-channel models) or mono8 (1-channel);
- scan models: `vae/reconstruction`, a 1 x beams 32FC1 image of decoded ranges in metres (beam order as in
  the model), and `vae/scan`, a LaserScan with the model's geometry from model.json (beam i at the centre
  of model bin i, range_min 0, range_max the model's);
- pointcloud models: `vae/reconstruction`, the rows x cols 32FC1 spherical range image in metres (row 0
  looks up), and `vae/points`, a PointCloud2 with float32 x, y, z and a uint16 `ring` (the range-image
  row), one point per pixel with a return. rqt_image_view and rviz show 32FC1 images scaled to their range.
The LiDAR models predict ranges only (no validity channel): a decoded bin at NO_RETURN_FRACTION (0.98) of
range_max or beyond is "no return", +inf in the LaserScan (REP-117) and no point in the cloud
(vae_ros.conversions.decoded_to_scan_msg / decoded_to_pointcloud_msg).

With `generate:=true` the node does not subscribe; it samples the prior N(0, I) (seeded by `seed`) at
`generate_rate` Hz and publishes what the decoder makes of it, stamped with its clock. Latents of the
wrong size or layout are rejected with a throttled warning and counted in /diagnostics.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.node import Node

from vae_ros.conversions import (
    array_to_image_msg,
    decoded_to_pointcloud_msg,
    decoded_to_scan_msg,
    msg_to_latent,
    stamped_msg_to_latent,
)
from vae_ros.core.accel import warm_up, warm_up_summary
from vae_ros.core.backends import create_backend, load_config
from vae_ros.core.config import ModelConfig
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError, InputError, VaeRosError
from vae_ros.core.model_dir import resolve_model_dir
from vae_ros.node_utils import (
    DiagnosticsPublisher,
    LatestWorker,
    MessageGuard,
    ParamSpec,
    declare_parameters,
    run_node,
    stamp_age,
    validate_inference_parameters,
)
from vae_ros.qos import LATENT_QOS

NODE_NAME = "decoder_node"
LATENT_TOPIC = "vae/latent"
STAMPED_LATENT_TOPIC = "vae/latent_stamped"
RECONSTRUCTION_TOPIC = "vae/reconstruction"
SCAN_TOPIC = "vae/scan"
POINTS_TOPIC = "vae/points"
WARN_THROTTLE_S = 2.0
# Latents on vae/latent are ignored while the last stamped latent is younger than this (seconds): the
# encoder publishes each latent on both topics, and the stamped copy carries the sensor's time.
STAMPED_PREFERENCE_S = 1.0

PARAMETERS = [
    ParamSpec("model", "", "Model directory (model.json + weights.safetensors); empty = the packaged default "
              "for the modality.", read_only=True),
    ParamSpec("modality", "", "image, scan or pointcloud; empty = the model's (image when `model` is empty too).",
              read_only=True),
    ParamSpec("backend", "auto", "Inference runtime: auto, torch, onnxruntime or tensorrt.", read_only=True),
    ParamSpec("device", "cpu", "cpu or cuda.", read_only=True),
    ParamSpec("frame_id", "vae", "header.frame_id of what is decoded from unstamped latents (vae/latent) and "
              "from prior samples; outputs of vae/latent_stamped carry the latent's own header."),
    ParamSpec("generate", False, "Sample latents from the prior N(0, I) at generate_rate instead of "
              "subscribing to vae/latent and vae/latent_stamped.", read_only=True),
    ParamSpec("generate_rate", 1.0, "Samples per second in generation mode (> 0)."),
    ParamSpec("seed", 0, "Seed of the prior samples in generation mode.", read_only=True),
    ParamSpec("engine_cache", "", "Folder kept across starts for TensorRT engines (backend tensorrt): built on the "
              "first start on the device, then reused; one subfolder per model weights. Empty = the model "
              "directory's trt/.", read_only=True),
    ParamSpec("warmup", 0, "Inferences on a blank input at start, before the first message is accepted (TensorRT "
              "builds or loads its engines, CUDA initialises); 0 = none.", read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics reports.", read_only=True),
]


@dataclass(frozen=True)
class DecoderParams:
    """The decoder's parameters, read once at start-up; runtime changes swap in a validated copy."""

    model: str = ""
    modality: str = ""
    backend: str = "auto"
    device: str = "cpu"
    frame_id: str = "vae"
    generate: bool = False
    generate_rate: float = 1.0
    seed: int = 0
    engine_cache: str = ""
    warmup: int = 0
    diagnostics_period: float = 1.0

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid value and what is allowed."""
        validate_inference_parameters(self.modality, self.backend, self.device, self.diagnostics_period)
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0 inferences, got {self.warmup}")
        if not (self.generate_rate > 0 and self.generate_rate <= 1000):
            raise ConfigError(f"generate_rate must be in (0, 1000] Hz, got {self.generate_rate}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


def reconstruction_to_image(x_hat: np.ndarray, config: ModelConfig) -> tuple[np.ndarray, str]:
    """One decoder output (C_out, ...) in [0, 1] -> (image array, ROS encoding) as documented above."""
    if config.modality == "image":
        pixels = np.clip(np.rint(x_hat * 255.0), 0, 255).astype(np.uint8)  # (C, H, W)
        if pixels.shape[0] == 3:
            return np.ascontiguousarray(pixels.transpose(1, 2, 0)), "rgb8"  # (H, W, 3)
        return np.ascontiguousarray(pixels[0]), "mono8"  # (H, W)
    range_max = config.scan_spec.range_max if config.modality == "scan" else config.pointcloud_spec.range_max
    ranges = (x_hat[0] * np.float32(range_max)).astype(np.float32)  # (beams,) or (rows, cols), metres
    return np.ascontiguousarray(ranges.reshape(1, -1) if ranges.ndim == 1 else ranges), "32FC1"


class DecoderNode(Node):
    """vae/latent_stamped or vae/latent -> backend.decode -> vae/reconstruction (+ vae/scan or vae/points);
    or prior samples -> the same outputs."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.failed = False
        self.params = DecoderParams(**declare_parameters(self, PARAMETERS))
        self.params.validate()

        model_dir = resolve_model_dir(self.params.model, self.params.modality or "image")
        self.config = load_config(model_dir)
        if self.params.modality and self.params.modality != self.config.modality:
            raise ConfigError(
                f"modality {self.params.modality!r} does not match the model's {self.config.modality!r} "
                f"({model_dir}); set modality to {self.config.modality!r} or pass another model"
            )
        self.backend = create_backend(model_dir, self.params.backend, self.params.device,
                                      engine_cache=self.params.engine_cache or None)
        if self.backend.fallback:  # said once, here; /diagnostics repeats it
            self.get_logger().warning(self.backend.fallback)
        self.warm_up = warm_up_summary(warm_up(self.backend.decode, (self.config.latent_dim,), self.params.warmup))
        if self.warm_up:
            self.get_logger().info(self.warm_up)
        self.model_dir = model_dir

        from sensor_msgs.msg import Image, LaserScan, PointCloud2
        from std_msgs.msg import Float32MultiArray

        self._image_pub = self.create_publisher(Image, RECONSTRUCTION_TOPIC, LATENT_QOS)
        # The decoded geometry as the LiDAR message it came from (issue 12): rviz, costmaps, TF-aware users.
        self._lidar_pub: Any = None
        if self.config.modality == "scan":
            self._lidar_pub = self.create_publisher(LaserScan, SCAN_TOPIC, LATENT_QOS)
        elif self.config.modality == "pointcloud":
            self._lidar_pub = self.create_publisher(PointCloud2, POINTS_TOPIC, LATENT_QOS)
        self._last_stamped = -math.inf  # time.monotonic() of the last stamped latent
        self._latent_input = "none"  # which latent topic was decoded last, for /diagnostics
        self.stats = NodeStats(expect_input=not self.params.generate)
        self._guard = guard = MessageGuard.for_stats(self, self.stats)
        self._worker: LatestWorker | None = None
        self._timer: Any = None
        self._rng = np.random.default_rng(self.params.seed)
        if self.params.generate:
            self._timer = self.create_timer(1.0 / self.params.generate_rate,
                                            guard.wrap("a prior sample", self._on_generate_timer))
            source = f"prior samples at {self.params.generate_rate:g} Hz"
        else:
            self._worker = LatestWorker(guard.wrap("a latent", self._decode), self.stats.on_dropped,
                                        self._on_worker_failure, name="vae_ros_decoder")
            self._latent_sub = self.create_subscription(Float32MultiArray, LATENT_TOPIC,
                                                        guard.wrap("a latent", self._on_latent), LATENT_QOS)
            on_stamped = guard.wrap("a stamped latent", self._on_stamped_latent)
            self._stamped_sub = self.create_subscription(Image, STAMPED_LATENT_TOPIC, on_stamped, LATENT_QOS)
            source = f"{self._stamped_sub.topic_name} or {self._latent_sub.topic_name}"
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: decoder", hardware_id=str(model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        outputs = self._image_pub.topic_name + (f", {self._lidar_pub.topic_name}" if self._lidar_pub else "")
        self.get_logger().info(
            f"{self.config.modality} model {model_dir} (latent {self.config.latent_dim}) on {self.backend.name}; "
            f"{source} -> {outputs}"
        )

    # -- callbacks -------------------------------------------------------------------------------------------
    def _on_latent(self, msg: Any) -> None:
        if time.monotonic() - self._last_stamped < STAMPED_PREFERENCE_S:
            return  # the stamped copy of this latent is (or will be) decoded
        self.stats.on_received()
        self._latent_input = LATENT_TOPIC
        if self._worker is not None:
            self._worker.submit((False, msg))

    def _on_stamped_latent(self, msg: Any) -> None:
        self._last_stamped = time.monotonic()
        self.stats.on_received()
        self._latent_input = STAMPED_LATENT_TOPIC
        if self._worker is not None:
            self._worker.submit((True, msg))

    def _on_generate_timer(self) -> None:
        z = self._rng.standard_normal((1, self.config.latent_dim)).astype(np.float32)  # (1, D) ~ N(0, I)
        self._publish_decoded(z, time.perf_counter(), None)

    def _decode(self, item: tuple[bool, Any]) -> None:
        """Worker thread: check the latent against the model, decode, publish; reject bad latents."""
        start = time.perf_counter()
        stamped, msg = item
        header = None
        try:
            if stamped:
                mean, _, header = stamped_msg_to_latent(msg, expected_dim=self.config.latent_dim)  # (D,)
            else:
                mean, _ = msg_to_latent(msg, expected_dim=self.config.latent_dim)  # (D,)
        except InputError as err:
            self.stats.on_rejected(str(err))
            kind = "stamped latent" if stamped else "latent"
            self.get_logger().warning(f"rejected a {kind}: {err}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        self._publish_decoded(mean[None], start, header)

    def _publish_decoded(self, z: np.ndarray, start: float, header: Any) -> None:
        """Decode z (1, D) and publish the reconstruction (and LiDAR message) with the latent's header, or
        with this node's clock and frame_id when the latent had none."""
        if header is not None:
            frame_id, stamp = str(header.frame_id), header.stamp
        else:
            frame_id, stamp = self.params.frame_id, self.get_clock().now().to_msg()
        try:
            x_hat = self.backend.decode(z)  # (1, C_out, ...)
            image, encoding = reconstruction_to_image(x_hat[0], self.config)
            msg = array_to_image_msg(image, encoding, frame_id=frame_id, stamp=stamp)
            lidar_msg = None
            if self.config.modality == "scan":
                lidar_msg = decoded_to_scan_msg(x_hat[0], self.config.scan_spec, frame_id=frame_id, stamp=stamp)
            elif self.config.modality == "pointcloud":
                lidar_msg = decoded_to_pointcloud_msg(x_hat[0], self.config.pointcloud_spec, frame_id=frame_id,
                                                      stamp=stamp)
        except VaeRosError as err:
            self.stats.on_rejected(str(err))
            self.get_logger().warning(f"could not decode a latent: {err}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        self._image_pub.publish(msg)
        if lidar_msg is not None and self._lidar_pub is not None:
            self._lidar_pub.publish(lidar_msg)
        # From a stamped latent: sensor stamp -> decoded output, the whole chain across machines.
        self.stats.on_published(time.perf_counter() - start,
                                stamp_age(self, header.stamp) if header is not None else None)

    def _on_worker_failure(self) -> None:
        self.failed = True
        self.get_logger().fatal("the decoder worker stopped on an unexpected error (see the traceback); exiting")
        self.context.try_shutdown()

    # -- parameters ------------------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters: list[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        names = {f.name for f in dataclasses.fields(DecoderParams)}
        updates = {p.name: p.value for p in parameters if p.name in names}
        try:
            candidate = dataclasses.replace(self.params, **updates)
            candidate.validate()
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        if self._timer is not None and candidate.generate_rate != self.params.generate_rate:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / candidate.generate_rate,
                                            self._guard.wrap("a prior sample", self._on_generate_timer))
        self.params = candidate
        return SetParametersResult(successful=True)

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        return [
            ("backend", self.backend.name),
            ("modality", self.config.modality),
            ("latent_dim", str(self.config.latent_dim)),
            ("mode", "generate" if self.params.generate else "decode"),
            ("latent_input", self._latent_input),
            *([("fallback", self.backend.fallback)] if self.backend.fallback else []),
            *([("warm_up", self.warm_up)] if self.warm_up else []),
        ]

    def close(self) -> None:
        """Stop the worker (the node is destroyed by the caller)."""
        if self._worker is not None:
            self._worker.close()


def main(args: list[str] | None = None) -> int:
    """Console script / `python -m vae_ros.decoder_node` entry point."""
    return run_node(DecoderNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
