"""decoder_node: latents -> reconstructions on `vae/reconstruction` (sensor_msgs/Image), and for LiDAR
models the decoded geometry as LiDAR messages: `vae/scan` (sensor_msgs/LaserScan) or `vae/points`
(sensor_msgs/PointCloud2).

Inputs (reliable, vae_ros.ros.qos.LATENT_QOS), whichever arrives:
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

A fused camera + LiDAR model (vae_ros.core.fused) decodes each latent once per sensor: the camera's
reconstruction on `vae/reconstruction` (as an image model's) and the decoded scan on `vae/scan` (as a scan
model's, with the scan expert's geometry from its model.json), both with the latent's header. A fused
encoder's latents carry the LiDAR's frame_id (encoder_node), so the decoded scan lands in the LiDAR's frame;
a camera-only robot thus gets a predicted scan, a LiDAR-only one a predicted view. Latents are held to the
LiDAR expert's latent range (the joint latent is that expert's).

With `generate:=true` the node does not subscribe; it samples the prior N(0, I) (seeded by `seed`) at
`generate_rate` Hz and publishes what the decoder makes of it, stamped with its clock. Latents of the
wrong size or layout, and latents outside the model's latent range (vae_ros.core.latent_range: a latent of
1e30 would decode to a scan of nothing but +inf, "free space"), are rejected with a throttled warning and
counted in /diagnostics.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
from rclpy.node import Node

from vae_ros.core.config import ModelConfig
from vae_ros.core.conversions.image import array_to_image_msg
from vae_ros.core.conversions.latent import msg_to_latent, stamped_msg_to_latent
from vae_ros.core.conversions.lidar import decoded_to_pointcloud_msg, decoded_to_scan_msg
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.latent_range import check_latent_range, latent_bound
from vae_ros.ros.interface import (
    DECODED_POINTS_TOPIC,
    DECODED_SCAN_TOPIC,
    LATENT_STAMPED_TOPIC,
    LATENT_TOPIC,
    RECONSTRUCTION_TOPIC,
)
from vae_ros.ros.kit.declare import declare_params, on_parameter_changes
from vae_ros.ros.kit.guard import LatestWorker, MessageGuard, stamp_age
from vae_ros.ros.kit.health import DiagnosticsPublisher
from vae_ros.ros.kit.inference import (
    load_fused_inference,
    load_inference_model,
    resolve_inference_dir,
    warm_up_model,
)
from vae_ros.ros.kit.params import DecoderParams
from vae_ros.ros.kit.run import run_node
from vae_ros.ros.qos import LATENT_QOS

NODE_NAME = "decoder_node"
# Latents on vae/latent are ignored while the last stamped latent is younger than this (seconds): the
# encoder publishes each latent on both topics, and the stamped copy carries the sensor's time.
STAMPED_PREFERENCE_S = 1.0


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
        self.params = declare_params(self, DecoderParams)
        model_dir, fused = resolve_inference_dir(self.params)
        self.model_dir = model_dir
        self._fused: Any = None
        if fused:
            # Each sensor's decoder as that sensor's own model would run (one model per sensor, same latent).
            self._fused = load_fused_inference(self, self.params, model_dir)
            self._sensors = self._fused.model.sensors
            self._sensor_configs = {s: self._fused.model.configs[s] for s in self._sensors}
            # The joint latent is the LiDAR expert's (the camera's is trained onto it): its latent range.
            first = "scan" if "scan" in self._sensors else self._sensors[0]
            self._latent_bound = latent_bound(self._sensor_configs[first].training)
            latent_dim, modality = self._fused.model.latent_dim, "fused"
            warm_up_model(self, self._fused, self._decode_all, (latent_dim,), self.params.warmup)
        else:
            self.model = load_inference_model(self, self.params)
            self.config, self.backend = self.model.config, self.model.backend
            self._sensors = (self.config.modality,)
            self._sensor_configs = {self.config.modality: self.config}
            warm_up_model(self, self.model, self.backend.decode, (self.config.latent_dim,), self.params.warmup)
            self._latent_bound = latent_bound(self.config.training)
            latent_dim, modality = self.config.latent_dim, self.config.modality
        self.latent_dim = latent_dim

        from sensor_msgs.msg import Image, LaserScan, PointCloud2
        from std_msgs.msg import Float32MultiArray

        self._image_pub = self.create_publisher(Image, RECONSTRUCTION_TOPIC, LATENT_QOS)
        # The decoded geometry as the LiDAR message it came from (issue 12): rviz, costmaps, TF-aware users.
        self._lidar_pub: Any = None
        modalities = {c.modality for c in self._sensor_configs.values()}
        if "scan" in modalities:
            self._lidar_pub = self.create_publisher(LaserScan, DECODED_SCAN_TOPIC, LATENT_QOS)
        elif "pointcloud" in modalities:
            self._lidar_pub = self.create_publisher(PointCloud2, DECODED_POINTS_TOPIC, LATENT_QOS)
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
            self._stamped_sub = self.create_subscription(Image, LATENT_STAMPED_TOPIC, on_stamped, LATENT_QOS)
            source = f"{self._stamped_sub.topic_name} or {self._latent_sub.topic_name}"
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: decoder", hardware_id=str(model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        on_parameter_changes(self, lambda: self.params, self._apply_params)
        outputs = self._image_pub.topic_name + (f", {self._lidar_pub.topic_name}" if self._lidar_pub else "")
        runtime = (", ".join(f"{s}: {b.name}" for s, b in self._fused.model.backends.items()) if self._fused
                   else self.backend.name)
        self.get_logger().info(f"{modality} model {model_dir} (latent {latent_dim}) on {runtime}; {source} -> {outputs}")

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
        self._latent_input = LATENT_STAMPED_TOPIC
        if self._worker is not None:
            self._worker.submit((True, msg))

    def _on_generate_timer(self) -> None:
        z = self._rng.standard_normal((1, self.latent_dim)).astype(np.float32)  # (1, D) ~ N(0, I)
        self._publish_decoded(z, time.perf_counter(), None)

    def _decode(self, item: tuple[bool, Any]) -> None:
        """Worker thread (through the guard, which rejects a bad latent): check the latent against the model,
        decode, publish."""
        start = time.perf_counter()
        stamped, msg = item
        header = None
        if stamped:
            mean, _, header = stamped_msg_to_latent(msg, expected_dim=self.latent_dim)  # (D,)
        else:
            mean, _ = msg_to_latent(msg, expected_dim=self.latent_dim)  # (D,)
        check_latent_range(mean, self._latent_bound)
        self._publish_decoded(mean[None], start, header)

    def _publish_decoded(self, z: np.ndarray, start: float, header: Any) -> None:
        """Decode z (1, D) and publish the reconstruction (and LiDAR message) with the latent's header, or
        with this node's clock and frame_id when the latent had none. Raises before publishing anything when
        the output cannot be built (the guard counts it)."""
        if header is not None:
            frame_id, stamp = str(header.frame_id), header.stamp
        else:
            frame_id, stamp = self.params.frame_id, self.get_clock().now().to_msg()
        decoded = self._decode_all(z)  # sensor -> (1, C_out, ...)
        # The viewable image: the camera's where there is one, else the LiDAR's ranges.
        viewed = next((s for s in self._sensors if self._sensor_configs[s].modality == "image"), self._sensors[0])
        image, encoding = reconstruction_to_image(decoded[viewed][0], self._sensor_configs[viewed])
        msg = array_to_image_msg(image, encoding, frame_id=frame_id, stamp=stamp)
        lidar_msg = None
        for sensor, x_hat in decoded.items():
            config = self._sensor_configs[sensor]
            if config.modality == "scan":
                lidar_msg = decoded_to_scan_msg(x_hat[0], config.scan_spec, frame_id=frame_id, stamp=stamp)
            elif config.modality == "pointcloud":
                lidar_msg = decoded_to_pointcloud_msg(x_hat[0], config.pointcloud_spec, frame_id=frame_id,
                                                      stamp=stamp)
        self._image_pub.publish(msg)
        if lidar_msg is not None and self._lidar_pub is not None:
            self._lidar_pub.publish(lidar_msg)
        # From a stamped latent: sensor stamp -> decoded output, the whole chain across machines.
        self.stats.on_published(time.perf_counter() - start,
                                stamp_age(self, header.stamp) if header is not None else None)

    def _decode_all(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """z (1, D) -> each sensor's decoder output (1, C_out, ...) (one sensor for a single-sensor model)."""
        if self._fused is not None:
            return {s: self._fused.model.decode(s, z) for s in self._sensors}
        return {self._sensors[0]: self.backend.decode(z)}

    def _on_worker_failure(self) -> None:
        self.failed = True
        self.get_logger().fatal("the decoder worker stopped on an unexpected error (see the traceback); exiting")
        self.context.try_shutdown()

    # -- parameters ------------------------------------------------------------------------------------------
    def _apply_params(self, params: DecoderParams) -> None:
        if self._timer is not None and params.generate_rate != self.params.generate_rate:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / params.generate_rate,
                                            self._guard.wrap("a prior sample", self._on_generate_timer))
        self.params = params

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        model = self._fused if self._fused is not None else self.model
        return model.diagnostic_values(("mode", "generate" if self.params.generate else "decode"),
                                            ("latent_input", self._latent_input),
                                            ("latent_bound", f"{self._latent_bound:g}"))

    def close(self) -> None:
        """Stop the worker (the node is destroyed by the caller)."""
        if self._worker is not None:
            self._worker.close()


def main(args: list[str] | None = None) -> int:
    """Console script / `python -m vae_ros.ros.nodes.decoder_node` entry point."""
    return run_node(DecoderNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
