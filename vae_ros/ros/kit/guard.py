"""One path for a bad message: MessageGuard wraps every callback's per-message work (a domain error is logged
throttled, counted and dropped; anything else is logged with its traceback and counted as an error; the node keeps
running), the latest-wins worker thread, stamp ages, raw CDR decoding.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from vae_ros.core.conversions.common import stamp_ns
from vae_ros.core.diagnostics import NodeStats
from vae_ros.core.errors import ConfigError, InputError, VaeRosError

# Stamps further than this from the node's clock come from another time source (sim time vs wall time,
# an unsynchronised sensor computer): an end-to-end latency computed from them would be meaningless.
CLOCK_MISMATCH_S = 60.0


def stamp_age(node: Any, stamp: Any) -> float | None:
    """Seconds from a header stamp (sec, nanosec) to the node's clock now.

    None for an unset (zero) stamp, and for a stamp more than CLOCK_MISMATCH_S away from the node's clock,
    which is logged (throttled) with the usual cause: a simulator or bag publishing sim time to a node
    without use_sim_time.
    """
    stamped = stamp_ns(stamp)
    if stamped <= 0:
        return None
    age = (node.get_clock().now().nanoseconds - stamped) * 1e-9
    if abs(age) > CLOCK_MISMATCH_S:
        node.get_logger().warning(
            f"input header stamps are {age:.0f} s away from this node's clock, so no end-to-end latency is "
            "reported; if the input comes from a simulator or a bag, set use_sim_time:=true; if it comes from "
            "another machine, synchronise the two clocks (chrony, PTP)",
            throttle_duration_sec=60.0,
        )
        return None
    return age


# -- per-message exception safety ---------------------------------------------------------------------------
WARN_THROTTLE_S = 2.0
ERROR_THROTTLE_S = 10.0


class MessageGuard:
    """Runs one message's work so that no single message can take the node down.

    A VaeRosError (a malformed or unusable message) is logged as a throttled warning and passed to
    `on_rejected`; anything else (a bug, a MemoryError from a hostile message) is logged at error level
    with its traceback, throttled, and passed to `on_error`, which nodes surface in /diagnostics as
    ERROR. Either way the message is dropped and the node goes on. Only per-message work is wrapped:
    start-up errors still end the process (run_node). KeyboardInterrupt and SystemExit pass through.
    """

    def __init__(self, node: Any, on_rejected: Callable[[str], None], on_error: Callable[[str], None]) -> None:
        self._node = node
        self._on_rejected = on_rejected
        self._on_error = on_error

    @classmethod
    def for_stats(cls, node: Any, stats: NodeStats) -> MessageGuard:
        """The usual guard: rejections and errors counted in the node's NodeStats."""
        return cls(node, stats.on_rejected, stats.on_error)

    def run(self, what: str, work: Callable[..., Any], *args: Any) -> bool:
        """Call work(*args); True when it completed, False when the message was dropped."""
        try:
            work(*args)
        except VaeRosError as err:
            self._on_rejected(str(err))
            self._node.get_logger().warning(f"rejected {what}: {err}", throttle_duration_sec=WARN_THROTTLE_S)
            return False
        except Exception as err:  # one bad message must not stop the robot's perception
            context = getattr(self._node, "context", None)
            if context is not None and not context.ok():
                return False  # Ctrl-C shut the context down under this message (its publish failed): no error
            self._on_error(f"{type(err).__name__}: {err}")
            self._node.get_logger().error(
                f"unexpected error while processing {what} (dropped; the node keeps running):\n"
                f"{traceback.format_exc()}", throttle_duration_sec=ERROR_THROTTLE_S)
            return False
        return True

    def wrap(self, what: str, work: Callable[..., Any]) -> Callable[..., None]:
        """A callback that runs work through the guard (for subscriptions, timers, workers)."""

        def guarded(*args: Any) -> None:
            self.run(what, work, *args)

        return guarded


# -- latest-wins worker ---------------------------------------------------------------------------------------
class LatestWorker:
    """Processes submitted items on its own thread, newest only: an item still waiting when a newer one
    arrives is dropped (and counted), so a slow model never works through stale frames, and the executor
    thread stays free to take messages off the wire, run timers and answer parameter requests.

    Nodes pass `process` through MessageGuard.wrap, so one bad item is logged, counted and dropped. What
    still escapes (a process not wrapped, or a BaseException) ends the thread with its traceback and
    `on_failure` runs (the nodes shut down their context so `main` exits non-zero).
    """

    def __init__(
        self,
        process: Callable[[Any], None],
        on_dropped: Callable[[int], None],
        on_failure: Callable[[], None],
        name: str = "vae_ros_worker",
    ) -> None:
        self._process = process
        self._on_dropped = on_dropped
        self._on_failure = on_failure
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._stopping = False
        self.failed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Hand over the newest item; replaces (drops) one not yet started."""
        with self._cond:
            dropped = self._has_pending
            self._pending, self._has_pending = item, True
            self._cond.notify()
        if dropped:
            self._on_dropped(1)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
            done = False
            try:
                self._process(item)
                done = True
            finally:
                if not done:
                    self.failed = True
                    self._on_failure()

    def close(self, timeout: float = 2.0) -> None:
        """Stop after the item in progress; a pending one is discarded."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


# -- raw (CDR) messages ---------------------------------------------------------------------------------------
class CdrDecoder:
    """Serialized CDR bytes -> a rosbags message dataclass whose arrays are views on the bytes.

    The encoder subscribes raw and decodes with this: for a 640x480 image it costs about 0.1 ms where
    rclpy's conversion to a Python message costs about 0.4 ms, and vae_ros.conversions reads rosbags
    messages exactly like rclpy ones (the training path uses them too).
    """

    def __init__(self, msgtype: str) -> None:
        from rosbags.serde import SerdeError
        from rosbags.typesys import Stores, get_typestore

        self.msgtype = msgtype  # e.g. "sensor_msgs/msg/Image"
        self._typestore = get_typestore(Stores.LATEST)
        self._errors: tuple[type[BaseException], ...] = (SerdeError, ValueError, IndexError, KeyError)
        if msgtype not in self._typestore.types:
            raise ConfigError(f"message type {msgtype} is unknown to rosbags")

    def decode(self, raw: bytes) -> Any:
        try:
            return self._typestore.deserialize_cdr(raw, self.msgtype)
        except self._errors as err:
            raise InputError(f"{self.msgtype} message could not be deserialised: {err}") from err
