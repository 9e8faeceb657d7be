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

A fused camera + LiDAR model (vae_ros.core.fused; `model:=` its directory, modality `fused` or empty; another
modality is refused) subscribes to the camera (Image, or CompressedImage with `compressed:=true`) and to `scan`,
each as above, and publishes ONE latent per pair: the joint posterior (vae_ros.core.fused.fuse) of the
messages paired by header stamp within `sync_slop`, published on the arrival of the message that completes the
pair (vae_ros.core.sensor_sync: a scan pairs with the nearest waiting camera frame; each message in one pair
at most). Its header: the NEWER of the two stamps (the latent holds what the sensors saw up to then, so a
controller's stale check measures the newest information) and the LiDAR's frame_id (the frame its decoded scan
belongs in: decoder_node's `vae/scan`; the scan's last frame while the scan is left out, the camera's before
any scan). A sensor without a usable message (none, or only rejected ones: counted as usual) for
`sensor_timeout` is left out: latents then come from the other alone, one per message, and the waiting one
is released at once; one log line says when a sensor drops out and one when it is back (a sensor that flaps, e.g.
one slower than `sensor_timeout`: a few lines, then one per SENSOR_LOG_PERIOD_S that counts the changes). /diagnostics
`sensors` names the sensors of the last latent (`camera,scan`, `camera` or `scan`). Stamps that never pair
(a clock offset, a slop below the sensors' latency) are not a silent stop: after `sensor_timeout` without a
pair each message is published alone, a warning gives the offset found, and /diagnostics says `unpaired`.
`publish_variance` publishes the joint log-variances. `publish_anomaly_score` is refused for a fused model.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.node import Node

from vae_ros.core.anomaly import anomaly_score
from vae_ros.core.conversions.common import stamp_ns
from vae_ros.core.conversions.latent import latent_to_msg, latent_to_stamped_msg
from vae_ros.core.conversions.model_input import msg_to_model_input, msg_to_pixels
from vae_ros.core.cuda_graph import apply_cuda_graph
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError
from vae_ros.core.preprocess import preprocess_on_device
from vae_ros.core.sensor_sync import PERIOD_SAMPLES, Group, SensorSync
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
from vae_ros.ros.kit.inference import (
    load_fused_inference,
    load_inference_model,
    resolve_inference_dir,
    warm_up_model,
)
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
# A fused model's sensor -> its input kind (the camera's is "compressed" with compressed:=true).
SENSOR_INPUTS = {"camera": "image", "scan": "scan"}
UNPAIRED = "stamps unpaired"  # StateLines' key of the stamps' pairing (the sensors' keys are their names)
SYNC_POLL_S = 0.05  # how often a fused encoder checks for a sensor that dropped out (steady clock)
# A sensor's drop-out and return lines: up to SENSOR_LOG_BURST at once, then one per SENSOR_LOG_PERIOD_S (a sensor
# that flaps, e.g. one slower than sensor_timeout, said twice per message); the state held is said once allowed.
SENSOR_LOG_BURST, SENSOR_LOG_PERIOD_S = 4, 2.0


class StateLines:
    """When to log a state that may flap (a sensor in / out, stamps paired / unpaired): per key, a line on each
    change up to SENSOR_LOG_BURST at once, then one per SENSOR_LOG_PERIOD_S (a token bucket), each saying the state
    held then and how often it changed since the last line. `said(key)`: the state the log last gave."""

    def __init__(self) -> None:
        self._said: dict[str, bool] = {}
        self._changes: dict[str, int] = {}
        self._allowance: dict[str, tuple[float, float]] = {}  # lines allowed, refilled at
        self._state: dict[str, bool] = {}

    def said(self, key: str) -> bool:
        return self._said.get(key, False)

    def update(self, key: str, state: bool, now: float) -> int | None:
        """Records `key`'s state at `now`; the number of changes since the last line when a line is due (the
        state differs from the one said and the bucket allows one), else None."""
        if state != self._state.get(key, False):
            self._changes[key] = self._changes.get(key, 0) + 1
        self._state[key] = state
        if state == self.said(key):
            return None
        allowed, since = self._allowance.get(key, (float(SENSOR_LOG_BURST), now))
        allowed = min(float(SENSOR_LOG_BURST), allowed + (now - since) / SENSOR_LOG_PERIOD_S)
        if allowed < 1.0:
            self._allowance[key] = (allowed, now)
            return None
        self._allowance[key] = (allowed - 1.0, now)
        self._said[key] = state
        return self._changes.pop(key, 0)


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
        model_dir, fused = resolve_inference_dir(self.params)
        self.model_dir = model_dir
        if fused:
            self._load_fused(model_dir)
        else:
            self._load_single()

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
        self._inputs: dict[str, Any] = {}  # fused: sensor -> its subscription
        if fused:
            self._subscribe_fused()
            inputs = ", ".join(f"{sub.topic_name} ({INPUTS[self._kinds[s]][1]})" for s, sub in self._inputs.items())
            what = (f"fused model {model_dir} ({', '.join(self._fused.model.sensors)}, latent "
                    f"{self._fused.model.latent_dim}, sync_slop {self.params.sync_slop:g} s, sensor_timeout "
                    f"{self.params.sensor_timeout:g} s)")
        else:
            inputs = self._subscribe_single()
            what = (f"{self.config.modality} model {model_dir} (latent {self.config.latent_dim}) on "
                    f"{self.backend.name}, preprocessing on {self._preprocess_where()}")
        self._diagnostics = DiagnosticsPublisher(
            self, self.stats, f"{self.get_fully_qualified_name()}: encoder", hardware_id=str(model_dir),
            period=self.params.diagnostics_period, extra=self._diagnostic_values,
        )
        on_parameter_changes(self, lambda: self.params, self._apply_params)
        self.get_logger().info(f"{what}; {inputs} -> {self._latent_pub.topic_name}, {self._stamped_pub.topic_name}")

    def _load_single(self) -> None:
        """One model of one sensor (image, scan, pointcloud)."""
        self.model = load_inference_model(self, self.params, threads=self.params.threads or None)
        self.config, self.backend, model_dir = self.model.config, self.model.backend, self.model.model_dir
        if self.params.compressed and self.config.modality != "image":
            raise ConfigError(f"compressed:=true needs an image model, but {model_dir} is {self.config.modality!r}")

        def blank_run(x: np.ndarray) -> None:  # (1, *input_shape) zeros
            mean, _ = self.backend.encode(x)
            if self.params.publish_anomaly_score:
                self.backend.decode(mean)

        warm_up_model(self, self.model, blank_run, self.config.input_shape, self.params.warmup)
        self.kind = "compressed" if self.params.compressed else self.config.modality
        self._on_device: Any = None  # a DevicePreprocessor where images are preprocessed on the model's device
        self._torch_backend: Any = None  # and the TorchBackend that takes its tensors
        if preprocess_on_device(self.params.preprocess, self.config.modality, self.backend):
            from vae_ros.core.preprocess_torch import DevicePreprocessor

            self._torch_backend = self.backend
            self._on_device = DevicePreprocessor(self.config.image_spec, self._torch_backend.device)
        self._cuda_graph = apply_cuda_graph(self.params.cuda_graph, self.backend)  # '' unless torch on CUDA
        if self._cuda_graph:
            self.get_logger().info(self._cuda_graph)
        self._cdr = CdrDecoder(INPUTS[self.kind][1])

    def _subscribe_single(self) -> str:
        topic, msgtype = INPUTS[self.kind]
        callbacks = {"image": self._on_image, "compressed": self._on_compressed, "scan": self._on_scan,
                     "pointcloud": self._on_pointcloud}
        receive = callbacks[self.kind]
        # Humble: callbacks take the message only (no MessageInfo).
        callback: Callable[..., None] = receive if _message_info_supported() else lambda raw: receive(raw, None)
        self._input = PublisherMatchingSubscription(
            self, _ros_type(msgtype), topic, callback, raw=True,
            fixed=reliability_from_name(self.params.qos_reliability),
        )
        return f"{self._input.topic_name} ({msgtype})"

    # -- a fused model: one subscription per sensor, paired by stamp -----------------------------------------
    def _load_fused(self, model_dir: Any) -> None:
        params = self.params
        if params.publish_anomaly_score:
            raise ConfigError(f"publish_anomaly_score is not available for the fused model {model_dir}; encode one "
                              f"sensor with its own model directory (e.g. {model_dir}/scan) for an anomaly score")
        if params.preprocess == "device":
            raise ConfigError(f"preprocess 'device' serves one image model; the fused model {model_dir} preprocesses "
                              "on the CPU: set preprocess to auto or cpu")
        from vae_ros.core.fused import load_fused_config

        sensors = load_fused_config(model_dir).sensors
        unserved = [s for s in sensors if s not in SENSOR_INPUTS]
        if unserved:
            raise ConfigError(f"fused model {model_dir} has sensors {', '.join(unserved)}; encoder_node serves "
                              f"{', '.join(SENSOR_INPUTS)}")
        self._fused = load_fused_inference(self, params, model_dir, threads=params.threads or None,
                                           warm=lambda model, sensor, x: model.encode_sensor(sensor, x))
        self._kinds = {s: "compressed" if s == "camera" and params.compressed else SENSOR_INPUTS[s] for s in sensors}
        self._cdrs = {s: CdrDecoder(INPUTS[kind][1]) for s, kind in self._kinds.items()}
        self._sync = SensorSync(sensors, params.sync_slop, params.sensor_timeout)
        # The log lines of each sensor's drop-outs (keyed by sensor: live) and of stamps not pairing (UNPAIRED).
        self._state_lines = StateLines()
        self._slow_said: set[str] = set()  # sensors whose period was found longer than sensor_timeout (said once)
        self._last_sensors = "none"  # the sensors of the last latent, for /diagnostics
        self._scan_frame = ""  # the LiDAR's newest frame_id (a fused latent's frame)

    def _subscribe_fused(self) -> None:
        for sensor, kind in self._kinds.items():
            topic, msgtype = INPUTS[kind]
            self._inputs[sensor] = PublisherMatchingSubscription(
                self, _ros_type(msgtype), topic, self._sensor_callback(sensor), raw=True,
                fixed=reliability_from_name(self.params.qos_reliability))
        from rclpy.clock import Clock, ClockType

        self._sync_timer = self.create_timer(SYNC_POLL_S, self._guard.wrap("the sensor check", self._on_sync_timer),
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _sensor_callback(self, sensor: str) -> Callable[[bytes], None]:
        """The raw callback of one sensor's subscription (the message only: no sequence gaps counted here)."""

        def on_sensor(raw: bytes) -> None:
            self.stats.on_received()
            self._guard.run(f"a {sensor} message", self._fused_receive, sensor, raw)

        return on_sensor

    def _fused_receive(self, sensor: str, raw: bytes) -> None:
        """Decode and preprocess one sensor message (a bad one raises: rejected, and its sensor stays silent),
        then let the pairing rule say which latents it completes."""
        start = time.perf_counter()
        msg = self._cdrs[sensor].decode(raw)
        x = msg_to_model_input(msg, self._fused.model.configs[sensor], self.params.max_image_pixels)[None]
        frame_id = str(msg.header.frame_id)
        if sensor == "scan":
            self._scan_frame = frame_id
        groups = self._sync.add(sensor, stamp_ns(msg.header.stamp), time.monotonic(), (x, frame_id))
        self._said_sensors()
        for group in groups:
            self._publish_group(group, start)

    def _on_sync_timer(self) -> None:
        start = time.perf_counter()
        groups = self._sync.poll(time.monotonic())
        self._said_sensors()
        for group in groups:
            self._publish_group(group, start)

    def _said_sensors(self) -> None:
        """One log line when a sensor drops out or comes back; one when stamps stop (or start again) pairing. A state
        that flaps gets a few lines, then one per SENSOR_LOG_PERIOD_S with the number of changes (StateLines)."""
        now = time.monotonic()
        live = self._sync.live(now)
        for sensor in self._sync.sensors:
            is_live = sensor in live
            changes = self._state_lines.update(sensor, is_live, now)
            if changes is None:
                continue
            flapping = (f" (in or out {changes} times since the last line on it: is sensor_timeout "
                        f"{self.params.sensor_timeout:g} s shorter than its period?)") if changes > 1 else ""
            if is_live:
                self.get_logger().info(f"{sensor} is in: latents from {','.join(live)}{flapping}")
            else:
                self.get_logger().warning(
                    f"{sensor} dropped out: no usable message for {self.params.sensor_timeout:g} s; latents from "
                    f"{','.join(live) or 'no sensor'} until it is back{flapping}")
        for sensor in self._sync.sensors:
            period = self._sync.period_s(sensor)
            if period is not None and period >= self.params.sensor_timeout and sensor not in self._slow_said:
                self._slow_said.add(sensor)
                self.get_logger().warning(
                    f"{sensor} messages arrive every {period:.3g} s (median of the last {PERIOD_SAMPLES}), not within "
                    f"sensor_timeout {self.params.sensor_timeout:g} s: it drops out between two of its messages, so "
                    f"each instant gets a latent of the other sensor alone before the joint one; set sensor_timeout "
                    f"above {1.5 * period:.2g} s (read-only: at start)")
        unpaired = self._sync.unpaired(now)
        changes = self._state_lines.update(UNPAIRED, unpaired, now)
        if changes is None:
            return
        flapping = (f" (paired and unpaired {changes} times since the last line: do the stamps' offset and "
                    f"sync_slop {self.params.sync_slop:g} s lie close?)") if changes > 1 else ""
        if unpaired:
            offset = self._sync.offset_s()
            self.get_logger().warning(
                f"{' and '.join(live)} stamps have not paired within sync_slop {self.params.sync_slop:g} s for "
                f"{self.params.sensor_timeout:g} s (newest {live[-1]} stamp - newest {live[0]} stamp = "
                f"{offset or 0.0:+.3f} s): each message is encoded alone; check the clocks' synchronisation or "
                f"raise sync_slop{flapping}")
        else:
            self.get_logger().info(f"sensor stamps pair again{flapping}")

    def _publish_group(self, group: Group, start: float) -> None:
        """The joint latent of one group: each expert on its message, fused, published once."""
        from types import SimpleNamespace

        from builtin_interfaces.msg import Time

        from vae_ros.core.fused import fuse

        experts = {s.sensor: self._fused.model.encode_sensor(s.sensor, s.item[0]) for s in group.samples}
        mean, logvar = fuse(experts)  # (1, D) each
        newest = max(group.samples, key=lambda s: s.stamp_ns)
        sec, nanosec = divmod(group.stamp_ns, 1_000_000_000)
        header = SimpleNamespace(stamp=Time(sec=sec, nanosec=nanosec),
                                 frame_id=self._scan_frame or str(newest.item[1]))
        variance = logvar[0] if self.params.publish_variance else None
        latent_msg = latent_to_msg(mean[0], variance)
        stamped_msg = latent_to_stamped_msg(mean[0], variance, header)
        self._latent_pub.publish(latent_msg)
        self._stamped_pub.publish(stamped_msg)
        self._last_sensors = ",".join(group.sensors)
        self.stats.on_published(time.perf_counter() - start, stamp_age(self, header.stamp))

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
        x: np.ndarray | None  # (1, *input_shape), on the host
        if self._on_device is not None:  # resized and normalised on the model's device (preprocess)
            pixels, order = msg_to_pixels(msg, self.config, params.max_image_pixels)  # as in the message
            x_device = self._on_device(pixels, order)  # (1, *input_shape)
            mean, logvar = self._torch_backend.encode_tensor(x_device)  # (1, D) each
            x = x_device.cpu().numpy() if params.publish_anomaly_score else None
        else:
            x = msg_to_model_input(msg, self.config, params.max_image_pixels)[None]
            mean, logvar = self.backend.encode(x)
        variance = logvar[0] if params.publish_variance else None
        latent_msg = latent_to_msg(mean[0], variance)
        stamped_msg = latent_to_stamped_msg(mean[0], variance, msg.header)  # the sensor's stamp and frame
        score = None
        if params.publish_anomaly_score and x is not None:
            x_hat = self.backend.decode(mean)  # (1, C_out, ...)
            score = anomaly_score(x, x_hat, mean, logvar, self.config, params.anomaly_metric)
        self._latent_pub.publish(latent_msg)
        self._stamped_pub.publish(stamped_msg)
        if score is not None and self._anomaly_pub is not None:
            self._anomaly_pub.publish(self._float32(data=float(score)))
        self.stats.on_published(time.perf_counter() - start, stamp_age(self, msg.header.stamp))

    # -- parameters ------------------------------------------------------------------------------------------
    def _apply_params(self, params: EncoderParams) -> None:
        if params.publish_anomaly_score and self._inputs:
            raise ConfigError(f"publish_anomaly_score is not available for the fused model {self.model_dir}")
        if params.publish_anomaly_score and self._anomaly_pub is None:
            self._anomaly_pub = self.create_publisher(self._float32, ANOMALY_TOPIC, LATENT_QOS)
        self.params = params

    def _diagnostic_values(self) -> list[tuple[str, str]]:
        if self._inputs:
            offset = self._sync.offset_s()
            return self._fused.diagnostic_values(
                ("input_topic", ", ".join(sub.topic_name for sub in self._inputs.values())),
                ("input_reliability", ", ".join(sub.reliability.name.lower() for sub in self._inputs.values())),
                ("sensors", self._last_sensors),
                ("live_sensors", ",".join(self._sync.live(time.monotonic())) or "none"),
                ("unpaired", "yes" if self._sync.unpaired(time.monotonic()) else "no"),
                ("stamp_offset_s", "none" if offset is None else f"{offset:+.3f}"))
        return self.model.diagnostic_values(("input_topic", self._input.topic_name),
                                            ("input_reliability", self._input.reliability.name.lower()),
                                            ("preprocess", self._preprocess_where()),
                                            ("cuda_graph", "on" if getattr(self.backend, "graphed", None) else "off"))

    def _preprocess_where(self) -> str:
        """Where inputs are preprocessed: 'cpu', or the torch device ('device cuda:0')."""
        return "cpu" if self._on_device is None else f"device {self._on_device.device}"


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
