"""vae_ros.ros.qos: named profiles and the publisher-matching sensor subscription (real rclpy, in-process)."""

from __future__ import annotations

from typing import Any

import pytest
from probe import Probe, wait_for
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vae_ros.core.errors import ConfigError
from vae_ros.ros.qos import (
    LATENT_QOS,
    SENSOR_QOS,
    PublisherMatchingSubscription,
    matching_reliability,
    reliability_from_name,
    sensor_qos,
)

RELIABLE, BEST_EFFORT = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


def test_profiles() -> None:
    assert SENSOR_QOS.reliability == BEST_EFFORT and SENSOR_QOS.history == HistoryPolicy.KEEP_LAST
    assert SENSOR_QOS.depth == 1 and SENSOR_QOS.durability == DurabilityPolicy.VOLATILE
    assert LATENT_QOS.reliability == RELIABLE
    assert sensor_qos(RELIABLE, 2).reliability == RELIABLE and sensor_qos(RELIABLE, 2).depth == 2
    with pytest.raises(ConfigError):
        sensor_qos(depth=0)


def test_matching_rule_is_rosbag2s() -> None:
    assert matching_reliability([]) == BEST_EFFORT  # nobody yet: accept anyone
    assert matching_reliability([RELIABLE]) == RELIABLE
    assert matching_reliability([RELIABLE, RELIABLE]) == RELIABLE
    assert matching_reliability([RELIABLE, BEST_EFFORT]) == BEST_EFFORT  # a reliable reader would miss one
    assert matching_reliability([BEST_EFFORT]) == BEST_EFFORT


def test_reliability_names() -> None:
    assert reliability_from_name("auto") is None
    assert reliability_from_name("reliable") == RELIABLE
    assert reliability_from_name("best_effort") == BEST_EFFORT
    with pytest.raises(ConfigError, match="qos_reliability"):
        reliability_from_name("sometimes")


@pytest.fixture()
def spinning() -> Any:
    probe = Probe("qos_test")
    yield probe.node
    probe.close()


def test_subscription_follows_its_publishers(spinning: Any) -> None:
    from std_msgs.msg import String

    node = spinning
    received: list[str] = []
    topic = "/qos_test/follow"
    sub = PublisherMatchingSubscription(node, String, topic, lambda m: received.append(m.data), check_period=0.1)
    assert sub.reliability == BEST_EFFORT  # no publisher yet

    reliable = node.create_publisher(String, topic, QoSProfile(depth=5, reliability=RELIABLE))
    assert wait_for(lambda: sub.reliability == RELIABLE)
    assert wait_for(lambda: reliable.get_subscription_count() == 1)
    assert wait_for(lambda: (reliable.publish(String(data="r")), "r" in received)[1])

    best_effort = node.create_publisher(String, topic, QoSProfile(depth=5, reliability=BEST_EFFORT))
    assert wait_for(lambda: sub.reliability == BEST_EFFORT)  # a reliable reader could not hear it
    assert wait_for(lambda: best_effort.get_subscription_count() == 1)
    assert wait_for(lambda: (best_effort.publish(String(data="b")), "b" in received)[1])
    assert sub.changes == 2

    node.destroy_publisher(best_effort)
    assert wait_for(lambda: sub.reliability == RELIABLE)
    sub.close()


def test_fixed_reliability_never_changes(spinning: Any) -> None:
    from std_msgs.msg import String

    node = spinning
    topic = "/qos_test/fixed"
    sub = PublisherMatchingSubscription(node, String, topic, lambda m: None, check_period=0.1, fixed=BEST_EFFORT)
    node.create_publisher(String, topic, QoSProfile(depth=5, reliability=RELIABLE))
    assert wait_for(lambda: sub.publisher_count == 1)  # the timer's check has seen the reliable publisher
    assert sub.check() == BEST_EFFORT  # and one more, now that it is there for certain
    assert sub.reliability == BEST_EFFORT and sub.changes == 0
    sub.close()
