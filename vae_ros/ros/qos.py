"""Named QoS profiles, defined once, and sensor subscriptions that match their publishers' reliability.

- Sensor inputs: keep-last with depth 1, volatile: a slow consumer takes the newest frame and never
  works through a queue of stale ones (latest frame wins).
- Latents, commands, odometry, /clock and /diagnostics: reliable, keep-last 10: small messages that
  consumers must not lose.
- What is published once for late joiners (route/path): reliable, transient local, keep last 1.

Reliability of sensor inputs is matched to the publishers, as rosbag2 does for recording:
- A best-effort subscription receives from reliable and best-effort publishers alike, so it is the safe
  choice while no publisher is known, or when any publisher is best effort.
- When every publisher on the topic is reliable, the subscription becomes reliable too. Delivery between
  the two is then reliable, so fragments of a large message lost on the wire are re-sent; a best-effort
  subscription to a reliable publisher gets best-effort delivery (measured with Fast DDS defaults:
  1-8 of 150 640x480 frames arrive best effort, all of them reliable). Keep-last depth 1 still means
  the newest frame replaces an unread one, so reliability never queues stale frames.
- Publishers come and go, so the choice is re-checked periodically and the subscription re-created when
  it changes (a frame in flight at that moment can be lost, once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vae_ros.core.errors import ConfigError

SENSOR_DEPTH = 1


def _keep_last(depth: int, reliability: ReliabilityPolicy) -> QoSProfile:
    """Keep-last `depth`, volatile: every stream here (none replays old messages to late joiners)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


# Sensor inputs: best effort, keep last 1, volatile (what the contract calls sensor-data QoS).
SENSOR_QOS = _keep_last(SENSOR_DEPTH, ReliabilityPolicy.BEST_EFFORT)
# Latents, anomaly scores, reconstructions for viewers: reliable, small queue.
LATENT_QOS = _keep_last(10, ReliabilityPolicy.RELIABLE)
# Velocity commands: reliable; a lost stop command is worse than a late one.
COMMAND_QOS = _keep_last(10, ReliabilityPolicy.RELIABLE)
# A simulator's odometry and /clock: reliable, small queue.
STATE_QOS = _keep_last(10, ReliabilityPolicy.RELIABLE)
# /diagnostics: reliable, as diagnostic_updater publishes it.
DIAGNOSTICS_QOS = _keep_last(10, ReliabilityPolicy.RELIABLE)
# Published once and kept for late joiners (RViz opened later), as a latched ROS 1 topic: the route follower's
# route/path. Reliable, transient local, keep last 1 (vae_ros.ros.interface.LATCHED).
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Values of the encoder's `qos_reliability` parameter.
RELIABILITY_CHOICES = ("auto", "best_effort", "reliable")


def sensor_qos(reliability: ReliabilityPolicy = ReliabilityPolicy.BEST_EFFORT, depth: int = SENSOR_DEPTH) -> QoSProfile:
    """Sensor-input QoS (keep last `depth`, volatile) with the given reliability."""
    if depth < 1:
        raise ConfigError(f"sensor queue depth must be >= 1, got {depth}")
    return _keep_last(depth, reliability)


def matching_reliability(publisher_reliabilities: Iterable[ReliabilityPolicy]) -> ReliabilityPolicy:
    """The reliability a subscription should use to receive from all these publishers as well as possible:
    RELIABLE when there is at least one publisher and all are reliable, else BEST_EFFORT (rosbag2's rule)."""
    policies = list(publisher_reliabilities)
    if policies and all(p == ReliabilityPolicy.RELIABLE for p in policies):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def reliability_from_name(name: str) -> ReliabilityPolicy | None:
    """'auto' -> None (match publishers), 'best_effort' / 'reliable' -> that policy."""
    if name not in RELIABILITY_CHOICES:
        raise ConfigError(f"qos_reliability must be one of {', '.join(RELIABILITY_CHOICES)}, got {name!r}")
    if name == "auto":
        return None
    return ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT


class PublisherMatchingSubscription:
    """A sensor subscription (keep last `depth`) whose reliability follows the topic's publishers.

    With `fixed` set, the reliability is that policy and never changes. `publisher_count` is the number of
    publishers at the last check (every `check_period` seconds). `raw=True` delivers the serialized
    CDR bytes (the encoder deserialises them itself, cheaper than rclpy's conversion for large messages).
    """

    def __init__(
        self,
        node: Node,
        msg_type: Any,
        topic: str,
        callback: Callable[..., None],
        depth: int = SENSOR_DEPTH,
        raw: bool = False,
        check_period: float = 1.0,
        fixed: ReliabilityPolicy | None = None,
    ) -> None:
        self._node = node
        self._msg_type = msg_type
        self._topic = topic
        self._callback = callback
        self._depth = depth
        self._raw = raw
        self._fixed = fixed
        self.changes = 0
        self.publisher_count = 0
        self.reliability = fixed if fixed is not None else ReliabilityPolicy.BEST_EFFORT
        self.subscription = self._create(self.reliability)
        # The resolved name (namespace, remapping) is what the graph API knows the publishers by.
        self.topic_name: str = self.subscription.topic_name
        self.check()
        self._timer = node.create_timer(check_period, self._on_check_timer)

    def _create(self, reliability: ReliabilityPolicy) -> Any:
        return self._node.create_subscription(
            self._msg_type, self._topic, self._callback, sensor_qos(reliability, self._depth), raw=self._raw
        )

    def _on_check_timer(self) -> None:
        self.check()

    def check(self) -> ReliabilityPolicy:
        """Re-read the publishers of the topic; re-create the subscription if the matching policy changed."""
        infos = self._node.get_publishers_info_by_topic(self.topic_name)
        self.publisher_count = len(infos)
        if self._fixed is not None:
            return self.reliability
        wanted = matching_reliability(info.qos_profile.reliability for info in infos)
        if wanted != self.reliability:
            self._node.destroy_subscription(self.subscription)
            self.subscription = self._create(wanted)
            self.reliability = wanted
            self.changes += 1
            self._node.get_logger().info(
                f"{self.topic_name}: {len(infos)} publisher(s); subscribing {wanted.name.lower()} to match them"
            )
        return self.reliability

    def close(self) -> None:
        """Stop checking and destroy the subscription."""
        self._node.destroy_timer(self._timer)
        self._node.destroy_subscription(self.subscription)
