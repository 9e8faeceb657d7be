"""decoder_node: latents on `vae/latent` -> reconstructions on `vae/reconstruction` (sensor_msgs/Image).

What the image holds, by the model's modality:
- image models: the decoded picture, rgb8 (3-channel models) or mono8 (1-channel), at the model's size;
- scan models: a 1 x beams 32FC1 image of decoded ranges in metres (beam order as in the model);
- pointcloud models: the rows x cols 32FC1 spherical range image in metres (row 0 looks up).
  rqt_image_view and rviz show 32FC1 images scaled to their range.

Latents carry no header, so reconstructions are stamped with the node's clock when published, in the
frame named by the `frame_id` parameter. With `generate:=true` the node does not subscribe; it samples the
prior N(0, I) (seeded by `seed`) at `generate_rate` Hz and publishes what the decoder makes of it.
Latents of the wrong size or layout are rejected with a throttled warning and counted in /diagnostics.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.node import Node

from vae_ros.conversions import array_to_image_msg, msg_to_latent
from vae_ros.core.backends import create_backend, load_config
from vae_ros.core.config import ModelConfig
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError, InputError, VaeRosError
from vae_ros.core.model_dir import resolve_model_dir
from vae_ros.node_utils import (
    DiagnosticsPublisher,
    LatestWorker,
    ParamSpec,
    declare_parameters,
    run_node,
    validate_inference_parameters,
)
from vae_ros.qos import LATENT_QOS

NODE_NAME = "decoder_node"
LATENT_TOPIC = "vae/latent"
RECONSTRUCTION_TOPIC = "vae/reconstruction"
WARN_THROTTLE_S = 2.0

PARAMETERS = [
    ParamSpec("model", "", "Model directory (model.json + weights.safetensors); empty = the packaged default "
              "for the modality.", read_only=True),
    ParamSpec("modality", "", "image, scan or pointcloud; empty = the model's (image when `model` is empty too).",
              read_only=True),
    ParamSpec("backend", "auto", "Inference runtime: auto, torch, onnxruntime or tensorrt.", read_only=True),
    ParamSpec("device", "cpu", "cpu or cuda.", read_only=True),
    ParamSpec("frame_id", "vae", "header.frame_id of the published reconstructions."),
    ParamSpec("generate", False, "Sample latents from the prior N(0, I) at generate_rate instead of "
              "subscribing to vae/latent.", read_only=True),
    ParamSpec("generate_rate", 1.0, "Samples per second in generation mode (> 0)."),
    ParamSpec("seed", 0, "Seed of the prior samples in generation mode.", read_only=True),
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
    diagnostics_period: float = 1.0

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid value and what is allowed."""
        validate_inference_parameters(self.modality, self.backend, self.device, self.diagnostics_period)
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
    """vae/latent -> backend.decode -> vae/reconstruction; or prior samples -> vae/reconstruction."""

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
        self.backend = create_backend(model_dir, self.params.backend, self.params.device)
        self.model_dir = model_dir

        from sensor_msgs.msg import Image
        from std_msgs.msg import Float32MultiArray

        self._image_pub = self.create_publisher(Image, RECONSTRUCTION_TOPIC, LATENT_QOS)
        self.stats = NodeStats(expect_input=not self.params.generate)
        self._worker: LatestWorker | None = None
        self._timer: Any = None
        self._rng = np.random.default_rng(self.params.seed)
        if self.params.generate:
            self._timer = self.create_timer(1.0 / self.params.generate_rate, self._on_generate_timer)
            source = f"prior samples at {self.params.generate_rate:g} Hz"
        else:
            self._worker = LatestWorker(self._decode, self.stats.on_dropped, self._on_worker_failure,
                                        name="vae_ros_decoder")
            self._latent_sub = self.create_subscription(Float32MultiArray, LATENT_TOPIC, self._on_latent, LATENT_QOS)
            source = self._latent_sub.topic_name
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: decoder", hardware_id=str(model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f"{self.config.modality} model {model_dir} (latent {self.config.latent_dim}) on {self.backend.name}; "
            f"{source} -> {self._image_pub.topic_name}"
        )

    # -- callbacks -------------------------------------------------------------------------------------------
    def _on_latent(self, msg: Any) -> None:
        self.stats.on_received()
        if self._worker is not None:
            self._worker.submit(msg)

    def _on_generate_timer(self) -> None:
        z = self._rng.standard_normal((1, self.config.latent_dim)).astype(np.float32)  # (1, D) ~ N(0, I)
        self._publish_reconstruction(z, time.perf_counter())

    def _decode(self, msg: Any) -> None:
        """Worker thread: check the latent against the model, decode, publish; reject bad latents."""
        start = time.perf_counter()
        try:
            mean, _ = msg_to_latent(msg, expected_dim=self.config.latent_dim)  # (D,)
        except InputError as err:
            self.stats.on_rejected(str(err))
            self.get_logger().warning(f"rejected a latent: {err}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        self._publish_reconstruction(mean[None], start)

    def _publish_reconstruction(self, z: np.ndarray, start: float) -> None:
        try:
            x_hat = self.backend.decode(z)  # (1, C_out, ...)
            image, encoding = reconstruction_to_image(x_hat[0], self.config)
            msg = array_to_image_msg(image, encoding, frame_id=self.params.frame_id,
                                     stamp=self.get_clock().now().to_msg())
        except VaeRosError as err:
            self.stats.on_rejected(str(err))
            self.get_logger().warning(f"could not decode a latent: {err}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        self._image_pub.publish(msg)
        self.stats.on_published(time.perf_counter() - start)

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
            self._timer = self.create_timer(1.0 / candidate.generate_rate, self._on_generate_timer)
        self.params = candidate
        return SetParametersResult(successful=True)

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        return [
            ("backend", self.backend.name),
            ("modality", self.config.modality),
            ("latent_dim", str(self.config.latent_dim)),
            ("mode", "generate" if self.params.generate else "decode"),
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
