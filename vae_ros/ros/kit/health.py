"""/diagnostics of a node: the publisher that turns any health source (counters, a report) into a
diagnostic_msgs/DiagnosticArray at a fixed period.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


# -- diagnostics ----------------------------------------------------------------------------------------------
class HealthReport(Protocol):
    """What one DiagnosticStatus carries (core.diagnostics.StatsSnapshot is one)."""

    @property
    def level(self) -> int: ...

    @property
    def message(self) -> str: ...

    def values(self) -> list[tuple[str, str]]: ...


class HealthSource(Protocol):
    """Where a node's health comes from (core.diagnostics.NodeStats is one)."""

    def snapshot(self) -> HealthReport: ...


class DiagnosticsPublisher:
    """Publishes one DiagnosticStatus for a node on /diagnostics every `period` seconds from its health
    source (usually NodeStats).

    `extra` returns additional (key, value) pairs (backend, model, QoS in use...); `stamp` the header stamp
    (default: the node's clock now); `clock` the timer's clock (default: the node's).
    """

    def __init__(
        self,
        node: Any,
        stats: HealthSource,
        name: str,
        hardware_id: str = "",
        period: float = 1.0,
        extra: Callable[[], list[tuple[str, str]]] | None = None,
        stamp: Callable[[], Any] | None = None,
        clock: Any = None,
    ) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from vae_ros.ros.interface import DIAGNOSTICS_TOPIC
        from vae_ros.ros.qos import DIAGNOSTICS_QOS

        self._node = node
        self._stats = stats
        self._name = name
        self._hardware_id = hardware_id
        self._extra = extra
        self._stamp = stamp or (lambda: node.get_clock().now().to_msg())
        self._publisher = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        self._timer = node.create_timer(period, self.publish, clock=clock)

    def build(self) -> Any:
        """The DiagnosticArray for the current snapshot."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        snap = self._stats.snapshot()
        status = DiagnosticStatus()
        status.level = bytes([snap.level])
        status.name = self._name
        status.message = snap.message
        status.hardware_id = self._hardware_id
        pairs = snap.values() + (self._extra() if self._extra else [])
        status.values = [KeyValue(key=key, value=value) for key, value in pairs]
        array = DiagnosticArray()
        array.header.stamp = self._stamp()
        array.status = [status]
        return array

    def publish(self) -> None:
        self._publisher.publish(self.build())
