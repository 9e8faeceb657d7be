"""vae_ros.core.diagnostics: rates, windows, counters and levels, on a fake clock (no ROS)."""

from __future__ import annotations

import math
import threading

import pytest

from vae_ros.core.diagnostics import ERROR, OK, WARN, NodeStats, RateWindow, ValueWindow
from vae_ros.core.errors import ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_window_counts_events_in_the_window() -> None:
    clock = FakeClock()
    rate = RateWindow(window=2.0, clock=clock)
    assert rate.rate() == 0.0
    for _ in range(30):  # 30 Hz for 3 s
        clock.now += 1 / 30
        rate.tick()
    assert rate.rate() == pytest.approx(30.0, rel=0.05)
    assert rate.total == 30
    clock.now += 5.0  # silence: the window empties
    assert rate.rate() == 0.0
    assert rate.seconds_since_last() == pytest.approx(5.0)


def test_young_rate_window_divides_by_its_age() -> None:
    clock = FakeClock()
    rate = RateWindow(window=10.0, clock=clock)
    for _ in range(10):
        clock.now += 0.1
        rate.tick()
    assert rate.rate() == pytest.approx(10.0)  # 10 events in 1 s, not 10 in 10 s


def test_value_window_percentiles_are_observed_values() -> None:
    window = ValueWindow(size=1000)
    assert math.isnan(window.summary().p50) and window.summary().count == 0
    for value in range(1, 101):
        window.add(float(value))
    window.add(math.nan)
    window.add(math.inf)
    summary = window.summary()
    assert summary.count == 100
    assert summary.p50 == 50.0 and summary.p99 == 99.0 and summary.max == 100.0
    assert summary.mean == pytest.approx(50.5)
    small = ValueWindow(size=3)
    for value in (1.0, 2.0, 3.0, 4.0):
        small.add(value)
    assert small.summary().count == 3 and small.summary().max == 4.0 and small.summary().mean == 3.0


def test_invalid_windows_are_refused() -> None:
    with pytest.raises(ConfigError, match="positive"):
        RateWindow(window=0.0)
    with pytest.raises(ConfigError, match=">= 1"):
        ValueWindow(size=0)


def test_node_stats_report_and_levels() -> None:
    clock = FakeClock()
    stats = NodeStats(rate_window=5.0, stale_after=2.0, clock=clock)
    for i in range(20):
        clock.now += 0.1
        stats.on_received()
        stats.on_published(processing_s=0.002, latency_s=0.004 + 0.001 * (i % 2))
    stats.on_dropped(3)
    snap = stats.snapshot()
    assert snap.level == OK
    assert snap.input_rate_hz == pytest.approx(10.0) and snap.output_rate_hz == pytest.approx(10.0)
    assert snap.received == 20 and snap.published == 20 and snap.dropped == 3 and snap.rejected == 0
    assert snap.processing_ms.mean == pytest.approx(2.0)
    assert snap.latency_ms.p50 == pytest.approx(4.0) and snap.latency_ms.max == pytest.approx(5.0)
    values = dict(snap.values())
    assert values["dropped"] == "3" and values["latency_p50_ms"] == "4.000" and "last_rejection" not in values

    stats.on_rejected("image encoding 'yuv' is not supported")
    stats.on_rejected("image step 3 is too small")
    snap = stats.snapshot()
    assert snap.level == WARN and "2 message(s) rejected" in snap.message and "step" in snap.message
    assert dict(snap.values())["rejected"] == "2"
    assert stats.snapshot().level == OK  # the warning covers one report period

    clock.now += 3.0  # no input for longer than stale_after
    snap = stats.snapshot()
    assert snap.level == WARN and "no input" in snap.message


def test_unexpected_errors_are_counted_apart_and_reported_as_error() -> None:
    stats = NodeStats(clock=FakeClock())
    stats.on_rejected("image step 3 is too small")
    stats.on_error("MemoryError: Unable to allocate 3.6 GiB")
    snap = stats.snapshot()
    assert snap.level == ERROR and "1 message(s) failed" in snap.message and "MemoryError" in snap.message
    values = dict(snap.values())
    assert values["errors"] == "1" and values["rejected"] == "1" and "MemoryError" in values["last_error"]
    assert stats.snapshot().level == OK  # like rejections, the level covers the report period it happened in
    assert dict(stats.snapshot().values())["errors"] == "1"  # the count stays


def test_node_stats_without_expected_input_never_go_stale() -> None:
    clock = FakeClock()
    stats = NodeStats(stale_after=1.0, expect_input=False, clock=clock)
    clock.now += 10.0
    assert stats.snapshot().level == OK


def test_node_stats_are_thread_safe() -> None:
    stats = NodeStats()

    def work() -> None:
        for _ in range(2000):
            stats.on_received()
            stats.on_published(0.001)
            stats.on_dropped()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = stats.snapshot()
    assert snap.received == 8000 and snap.published == 8000 and snap.dropped == 8000
