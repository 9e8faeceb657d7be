"""encoder_node: sensor messages -> VAE latents on `vae/latent` (std_msgs/Float32MultiArray) and
`vae/latent_stamped` (sensor_msgs/Image, 32FC1, with the input's header).

Inputs by modality (relative topic names, remap as needed):
- image: `camera/image_raw` (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1, 32FC1),
  or `camera/image_raw/compressed` (sensor_msgs/CompressedImage, JPEG or PNG) with `compressed:=true`;
- scan: `scan` (sensor_msgs/LaserScan, any beam count; mapped onto the model's beams by the rule in
  vae_ros.core.preprocess.preprocess_scan);
- pointcloud: `lidar/points` (sensor_msgs/PointCloud2 with float32 or float64 x, y, z).

Preprocessing comes from the model's model.json through vae_ros.conversions.msg_to_model_input, the same
path training uses. The input subscription is raw (serialized bytes, decoded with rosbags: about 4x cheaper
than rclpy's conversion for a 640x480 image), keep-last 1, and matches its publishers' reliability
(vae_ros.ros.qos). Messages are encoded in the subscription callback: while the model is busy, DDS keeps only
the newest frame, so stale frames are never queued and never cost Python time. (A hand-off to a worker
thread was measured too: the executor then takes every frame off the wire, and under a flood of 640x480
frames the node encoded half as many.) "dropped" in /diagnostics counts frames published but never
encoded, from gaps in the publisher's sequence numbers; it needs rclpy's MessageInfo (Iron and later) and
a single publisher on the topic, and stays 0 otherwise. Malformed messages are rejected with a throttled
warning and counted; the node keeps going. Health goes to /diagnostics once a second.

Outputs, each latent on both latent topics (reliable, vae_ros.ros.qos.LATENT_QOS):
- `vae/latent`: the contract's Float32MultiArray layout (with `publish_variance:=true` also the
  log-variances); no header, kept as it was for existing consumers;
- `vae/latent_stamped`: sensor_msgs/Image, encoding 32FC1, width D, height 1 (means) or 2 (row 1 the
  log-variances, with `publish_variance:=true`), step 4·D, little-endian, header (stamp and frame_id) copied
  from the sensor message that was encoded, so the latent keeps the sensor time through `ros2 bag record`
  and message_filters (vae_ros.conversions.latent_to_stamped_msg);
- with `publish_anomaly_score:=true`, `vae/anomaly_score` (std_msgs/Float32; `anomaly_metric`:
  `reconstruction` = mean squared reconstruction error, `neg_elbo` = negative ELBO in nats).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.node import Node

from vae_ros.core.anomaly import anomaly_score
from vae_ros.core.conversions.latent import latent_to_msg, latent_to_stamped_msg
from vae_ros.core.conversions.model_input import msg_to_model_input
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError
from vae_ros.ros.interface import (
    ANOMALY_TOPIC,
    CAMERA_TOPIC,
    CLOUD_TOPIC,
    COMPRESSED_CAMERA_TOPIC,
    LATENT_STAMPED_TOPIC,
    LATENT_TOPIC,
    SCAN_TOPIC,
)
from vae_ros.ros.kit.declare import declare_params, on_parameter_changes
from vae_ros.ros.kit.guard import CdrDecoder, MessageGuard, stamp_age
from vae_ros.ros.kit.health import DiagnosticsPublisher
from vae_ros.ros.kit.inference import load_inference_model, warm_up_model
from vae_ros.ros.kit.params import EncoderParams
from vae_ros.ros.kit.run import run_node
from vae_ros.ros.qos import LATENT_QOS, PublisherMatchingSubscription, reliability_from_name

NODE_NAME = "encoder_node"
# input kind -> (default topic, rosbags/ROS message type)
INPUTS = {
    "image": (CAMERA_TOPIC, "sensor_msgs/msg/Image"),
    "compressed": (COMPRESSED_CAMERA_TOPIC, "sensor_msgs/msg/CompressedImage"),
    "scan": (SCAN_TOPIC, "sensor_msgs/msg/LaserScan"),
    "pointcloud": (CLOUD_TOPIC, "sensor_msgs/msg/PointCloud2"),
}


def _message_info_supported() -> bool:
    """rclpy passes MessageInfo (publication sequence numbers) to two-argument callbacks since Iron."""
    from rclpy.subscription import Subscription

    return hasattr(Subscription, "CallbackType")


class EncoderNode(Node):
    """Sensor message -> preprocess (model.json) -> backend.encode -> vae/latent (+ anomaly score)."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.params = declare_params(self, EncoderParams)

        # Model: the directory decides the modality and the preprocessing.
        self.model = load_inference_model(self, self.params, threads=self.params.threads or None)
        self.config, self.backend, model_dir = self.model.config, self.model.backend, self.model.model_dir
        if self.params.compressed and self.config.modality != "image":
            raise ConfigError(f"compressed:=true needs an image model, but {model_dir} is {self.config.modality!r}")

        def blank_run(x: np.ndarray) -> None:  # (1, *input_shape) zeros
            mean, _ = self.backend.encode(x)
            if self.params.publish_anomaly_score:
                self.backend.decode(mean)

        warm_up_model(self, self.model, blank_run, self.config.input_shape, self.params.warmup)
        self.model_dir = model_dir
        self.kind = "compressed" if self.params.compressed else self.config.modality
        topic, msgtype = INPUTS[self.kind]
        self._cdr = CdrDecoder(msgtype)

        # Outputs.
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float32, Float32MultiArray

        self._float32 = Float32
        self._latent_pub = self.create_publisher(Float32MultiArray, LATENT_TOPIC, LATENT_QOS)
        self._stamped_pub = self.create_publisher(Image, LATENT_STAMPED_TOPIC, LATENT_QOS)
        self._anomaly_pub: Any = None
        if self.params.publish_anomaly_score:
            self._anomaly_pub = self.create_publisher(Float32, ANOMALY_TOPIC, LATENT_QOS)

        self.stats = NodeStats()
        self._guard = MessageGuard.for_stats(self, self.stats)
        self._last_sequence: int | None = None
        callbacks = {"image": self._on_image, "compressed": self._on_compressed, "scan": self._on_scan,
                     "pointcloud": self._on_pointcloud}
        receive = callbacks[self.kind]
        # Humble: callbacks take the message only (no MessageInfo).
        callback: Callable[..., None] = receive if _message_info_supported() else lambda raw: receive(raw, None)
        self._input = PublisherMatchingSubscription(
            self, _ros_type(msgtype), topic, callback, raw=True,
            fixed=reliability_from_name(self.params.qos_reliability),
        )
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: encoder", hardware_id=str(model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        on_parameter_changes(self, lambda: self.params, self._apply_params)
        self.get_logger().info(
            f"{self.config.modality} model {model_dir} (latent {self.config.latent_dim}) on {self.backend.name}; "
            f"{self._input.topic_name} ({msgtype}) -> {self._latent_pub.topic_name}, {self._stamped_pub.topic_name}"
        )

    # -- callbacks: raw (serialized) messages ------------------------------------------------------------------
    def _on_image(self, raw: bytes, info: Any) -> None:
        self._receive(raw, info)

    def _on_compressed(self, raw: bytes, info: Any) -> None:
        self._receive(raw, info)

    def _on_scan(self, raw: bytes, info: Any) -> None:
        self._receive(raw, info)

    def _on_pointcloud(self, raw: bytes, info: Any) -> None:
        self._receive(raw, info)

    def _receive(self, raw: bytes, info: Any) -> None:
        self.stats.on_received()
        self._count_skipped(info)
        self._guard.run(f"a {self.kind} message", self._encode, raw)

    def _count_skipped(self, info: Any) -> None:
        """Frames between the previous one encoded and this one were published but never encoded."""
        sequence = info.get("publication_sequence_number") if info else None
        if not isinstance(sequence, int) or self._input.publisher_count != 1:
            self._last_sequence = None  # unknown, or several publishers whose numbers interleave
            return
        if self._last_sequence is not None and sequence > self._last_sequence + 1:
            self.stats.on_dropped(sequence - self._last_sequence - 1)
        self._last_sequence = sequence

    def _encode(self, raw: bytes) -> None:
        """Decode, preprocess, encode and publish one message. A bad one raises before anything is published:
        the guard (_receive) rejects it, counted, with a throttled log."""
        start = time.perf_counter()
        params = self.params
        msg = self._cdr.decode(raw)
        x = msg_to_model_input(msg, self.config, params.max_image_pixels)[None]  # (1, *input_shape)
        mean, logvar = self.backend.encode(x)  # (1, D) each
        variance = logvar[0] if params.publish_variance else None
        latent_msg = latent_to_msg(mean[0], variance)
        stamped_msg = latent_to_stamped_msg(mean[0], variance, msg.header)  # the sensor's stamp and frame
        score = None
        if params.publish_anomaly_score:
            x_hat = self.backend.decode(mean)  # (1, C_out, ...)
            score = anomaly_score(x, x_hat, mean, logvar, self.config, params.anomaly_metric)
        self._latent_pub.publish(latent_msg)
        self._stamped_pub.publish(stamped_msg)
        if score is not None and self._anomaly_pub is not None:
            self._anomaly_pub.publish(self._float32(data=float(score)))
        self.stats.on_published(time.perf_counter() - start, stamp_age(self, msg.header.stamp))

    # -- parameters ------------------------------------------------------------------------------------------
    def _apply_params(self, params: EncoderParams) -> None:
        if params.publish_anomaly_score and self._anomaly_pub is None:
            self._anomaly_pub = self.create_publisher(self._float32, ANOMALY_TOPIC, LATENT_QOS)
        self.params = params

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        return self.model.diagnostic_values(("input_topic", self._input.topic_name),
                                            ("input_reliability", self._input.reliability.name.lower()))


def _ros_type(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    import importlib

    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def main(args: list[str] | None = None) -> int:
    """Console script / `python -m vae_ros.ros.nodes.encoder_node` entry point."""
    return run_node(EncoderNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
