"""What the ROS tests share: wait on a condition, and a test-side rclpy node that records what arrives."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, poll: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed; returns its last value as a bool.

    Use as `assert wait_for(...), why`: a test waits on the condition it checks, never on a fixed time.
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


class Probe:
    """An rclpy node spun on a background thread, recording the messages of each topic it subscribes to.

    own_context: a private rclpy context (init here, shut down in close), for tests that must not share the
    process's default context; otherwise the default one, initialised if needed and left running.
    """

    def __init__(self, name: str = "probe", own_context: bool = False) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context() if own_context else None
        if self.context is not None:
            rclpy.init(context=self.context)
        elif not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(name, context=self.context)
        self.lock = threading.Lock()
        self.recorded: dict[str, list[Any]] = {}
        self.publishers: dict[str, Any] = {}  # by topic, for tests that publish
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def record(self, msg_type: Any, topic: str, qos: Any = 10) -> None:
        self.recorded[topic] = []

        def on_message(msg: Any) -> None:
            with self.lock:
                self.recorded[topic].append(msg)

        self.node.create_subscription(msg_type, topic, on_message, qos)

    def messages(self, topic: str) -> list[Any]:
        with self.lock:
            return list(self.recorded[topic])

    def clear(self, topic: str) -> None:
        with self.lock:
            self.recorded[topic].clear()

    def wait_for(self, predicate: Callable[[], object], timeout: float = 20.0, poll: float = 0.05) -> bool:
        return wait_for(predicate, timeout, poll)

    def close(self) -> None:
        self._running = False
        self._thread.join(2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        if self.context is not None:
            self.context.try_shutdown()
