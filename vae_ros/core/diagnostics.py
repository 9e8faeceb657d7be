"""Node health bookkeeping without ROS: message rates, timing windows and counters.

Nodes feed a NodeStats from their callbacks (possibly from several threads) and turn a periodic
snapshot into a diagnostic_msgs/DiagnosticArray. Keeping the arithmetic here makes it testable without
rclpy and identical across nodes. Times are seconds on a monotonic clock unless a name says otherwise.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from vae_ros.core.errors import ConfigError

# DiagnosticStatus levels (diagnostic_msgs/DiagnosticStatus), repeated so the core needs no ROS import.
OK = 0
WARN = 1
ERROR = 2

Clock = Callable[[], float]


class RateWindow:
    """Events per second over the last `window` seconds (a sliding window of event times)."""

    def __init__(self, window: float = 5.0, clock: Clock = time.monotonic) -> None:
        if not window > 0:
            raise ConfigError(f"rate window must be positive seconds, got {window}")
        self.window = float(window)
        self._clock = clock
        self._times: deque[float] = deque()
        self._started = clock()
        self._last = math.nan
        self.total = 0

    def _trim(self, now: float) -> None:
        horizon = now - self.window
        while self._times and self._times[0] < horizon:
            self._times.popleft()

    def tick(self, now: float | None = None) -> None:
        """Record one event (at `now`, default the clock's current time)."""
        now = self._clock() if now is None else now
        self._times.append(now)
        self._last = now
        self.total += 1
        self._trim(now)

    def rate(self, now: float | None = None) -> float:
        """Events per second in the window; a young window divides by its actual age, not by `window`."""
        now = self._clock() if now is None else now
        self._trim(now)
        span = min(self.window, now - self._started)
        if span <= 0 or not self._times:
            return 0.0
        return len(self._times) / span

    def age(self, now: float | None = None) -> float:
        """Seconds since the window was created."""
        now = self._clock() if now is None else now
        return now - self._started

    def seconds_since_last(self, now: float | None = None) -> float:
        """Age of the newest event, or inf when there has been none yet."""
        now = self._clock() if now is None else now
        return math.inf if math.isnan(self._last) else now - self._last


@dataclass(frozen=True)
class WindowSummary:
    """Statistics of the values in a ValueWindow (same unit as the values; NaN when empty)."""

    count: int
    mean: float
    p50: float
    p99: float
    max: float


class ValueWindow:
    """The last `size` values of a measurement (processing time, latency), for mean/percentiles/max."""

    def __init__(self, size: int = 1000) -> None:
        if size < 1:
            raise ConfigError(f"value window size must be >= 1, got {size}")
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        """Record one value; NaN and inf are ignored (a broken clock must not poison the statistics)."""
        if math.isfinite(value):
            self._values.append(float(value))

    def summary(self) -> WindowSummary:
        """Count, mean, median, 99th percentile (nearest rank) and maximum of the window."""
        values = sorted(self._values)
        n = len(values)
        if n == 0:
            nan = math.nan
            return WindowSummary(0, nan, nan, nan, nan)

        def rank(q: float) -> float:  # nearest-rank percentile: an actual observed value
            return values[min(n - 1, max(0, math.ceil(q * n) - 1))]

        return WindowSummary(n, sum(values) / n, rank(0.50), rank(0.99), values[-1])


@dataclass(frozen=True)
class StatsSnapshot:
    """One report of a node's health: what a DiagnosticStatus carries (level, message, key/values)."""

    level: int
    message: str
    input_rate_hz: float
    output_rate_hz: float
    received: int
    published: int
    dropped: int
    rejected: int
    processing_ms: WindowSummary
    latency_ms: WindowSummary
    last_rejection: str
    errors: int = 0
    last_error: str = ""

    def values(self) -> list[tuple[str, str]]:
        """(key, value) pairs with units in the key names, for DiagnosticStatus.values."""

        def fmt(value: float) -> str:
            return "nan" if math.isnan(value) else f"{value:.3f}"

        pairs = [
            ("input_rate_hz", fmt(self.input_rate_hz)),
            ("output_rate_hz", fmt(self.output_rate_hz)),
            ("received", str(self.received)),
            ("published", str(self.published)),
            ("dropped", str(self.dropped)),
            ("rejected", str(self.rejected)),
            ("errors", str(self.errors)),
            ("processing_time_mean_ms", fmt(self.processing_ms.mean)),
            ("processing_time_p99_ms", fmt(self.processing_ms.p99)),
            ("processing_time_max_ms", fmt(self.processing_ms.max)),
            ("latency_p50_ms", fmt(self.latency_ms.p50)),
            ("latency_p99_ms", fmt(self.latency_ms.p99)),
            ("latency_max_ms", fmt(self.latency_ms.max)),
        ]
        if self.last_rejection:
            pairs.append(("last_rejection", self.last_rejection))
        if self.last_error:
            pairs.append(("last_error", self.last_error))
        return pairs


class NodeStats:
    """Thread-safe health counters of one node: input/output rates, processing time, end-to-end latency,
    dropped (superseded by a newer message before being processed) and rejected (malformed) messages,
    and errors (a message whose processing raised something unexpected: a bug, a MemoryError).

    The level is ERROR when errors happened since the previous snapshot; WARN when messages were rejected
    since then, or when input is expected but none arrived for `stale_after` seconds; OK otherwise.
    """

    def __init__(
        self,
        rate_window: float = 5.0,
        value_window: int = 1000,
        stale_after: float = 5.0,
        expect_input: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._input = RateWindow(rate_window, clock)
        self._output = RateWindow(rate_window, clock)
        self._processing = ValueWindow(value_window)
        self._latency = ValueWindow(value_window)
        self.stale_after = stale_after
        self.expect_input = expect_input
        self.dropped = 0
        self.rejected = 0
        self._rejected_at_last_snapshot = 0
        self.last_rejection = ""
        self.errors = 0
        self._errors_at_last_snapshot = 0
        self.last_error = ""

    @property
    def received(self) -> int:
        return self._input.total

    @property
    def published(self) -> int:
        return self._output.total

    def on_received(self) -> None:
        """A message arrived (before any checks)."""
        with self._lock:
            self._input.tick()

    def on_published(self, processing_s: float, latency_s: float | None = None) -> None:
        """An output was published after `processing_s` seconds of work; `latency_s` is the end-to-end
        time from the input's header stamp to publication, when the input carried a stamp."""
        with self._lock:
            self._output.tick()
            self._processing.add(processing_s * 1e3)
            if latency_s is not None:
                self._latency.add(latency_s * 1e3)

    def on_dropped(self, count: int = 1) -> None:
        """`count` messages were superseded by newer ones before being processed (latest wins)."""
        with self._lock:
            self.dropped += count

    def on_rejected(self, reason: str) -> None:
        """A malformed message was refused; `reason` is kept (the latest one) for the report."""
        with self._lock:
            self.rejected += 1
            self.last_rejection = reason

    def on_error(self, reason: str) -> None:
        """Processing one message failed unexpectedly (not a rejection); `reason` is kept for the report."""
        with self._lock:
            self.errors += 1
            self.last_error = reason

    def snapshot(self) -> StatsSnapshot:
        """The current report; also starts a new period for the 'rejected since last report' warning."""
        with self._lock:
            now = self._clock()
            input_rate, output_rate = self._input.rate(now), self._output.rate(now)
            new_rejections = self.rejected - self._rejected_at_last_snapshot
            self._rejected_at_last_snapshot = self.rejected
            new_errors = self.errors - self._errors_at_last_snapshot
            self._errors_at_last_snapshot = self.errors
            idle = self._input.seconds_since_last(now)
            problems = []
            if new_errors:
                problems.append(f"{new_errors} message(s) failed with an unexpected error: {self.last_error}")
            if new_rejections:
                problems.append(f"{new_rejections} message(s) rejected: {self.last_rejection}")
            if self.expect_input and idle > self.stale_after and self._input.age(now) > self.stale_after:
                problems.append(f"no input for more than {self.stale_after:g} s")
            level = ERROR if new_errors else WARN if problems else OK
            message = "; ".join(problems) if problems else (
                f"in {input_rate:.1f} Hz, out {output_rate:.1f} Hz" if self.expect_input else f"out {output_rate:.1f} Hz"
            )
            return StatsSnapshot(
                level=level,
                message=message,
                input_rate_hz=input_rate,
                output_rate_hz=output_rate,
                received=self._input.total,
                published=self._output.total,
                dropped=self.dropped,
                rejected=self.rejected,
                processing_ms=self._processing.summary(),
                latency_ms=self._latency.summary(),
                last_rejection=self.last_rejection,
                errors=self.errors,
                last_error=self.last_error,
            )
