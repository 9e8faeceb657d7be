"""The fused encoder's pairing rule (vae_ros.core.sensor_sync): pairs by stamp within the slop, a silent sensor
left out after the timeout and back in with its messages, stamps that never pair published alone."""

from __future__ import annotations

import pytest

from vae_ros.core.errors import ConfigError
from vae_ros.core.sensor_sync import SensorSync

MS = 1_000_000
SENSORS = ("camera", "scan")


def _sync() -> SensorSync:
    return SensorSync(SENSORS, slop_s=0.05, timeout_s=0.3)


def test_a_scan_pairs_with_the_nearest_waiting_camera_frame_within_the_slop() -> None:
    sync = _sync()
    assert [g.sensors for g in sync.add("camera", 0, 0.0, "c0")] == [("camera",)]  # alone: the scan unheard
    # The scan joins: it pairs with the frame already published alone (the joint latent of that instant).
    assert [g.sensors for g in sync.add("scan", 5 * MS, 0.01, "s0")] == [SENSORS]
    assert sync.add("camera", 100 * MS, 0.10, "c1") == []  # waits for its scan
    assert sync.add("camera", 133 * MS, 0.13, "c2") == []
    (group,) = sync.add("scan", 120 * MS, 0.14, "s1")
    assert group.sensors == SENSORS and [s.item for s in group.samples] == ["c2", "s1"]  # nearest: 13 ms
    assert group.stamp_ns == 133 * MS and group.paired  # the newer stamp
    assert sync.add("scan", 140 * MS, 0.15, "s2") == []  # c2 is taken: one group per message


def test_a_silent_sensor_is_left_out_and_comes_back() -> None:
    sync = _sync()
    sync.add("camera", 0, 0.0, "c")
    sync.add("scan", 0, 0.0, "s")
    assert sync.add("camera", 100 * MS, 0.1, "c") == []  # waits for the scan, which stopped
    assert sync.poll(0.2) == []
    (released,) = sync.poll(0.31)  # the scan is out: the waiting frame goes alone
    assert released.sensors == ("camera",) and released.stamp_ns == 100 * MS
    assert sync.poll(0.32) == []  # released once
    assert sync.live(0.31) == ("camera",)
    assert [g.sensors for g in sync.add("camera", 400 * MS, 0.4, "c")] == [("camera",)]
    assert [g.sensors for g in sync.add("scan", 410 * MS, 0.41, "s")] == [SENSORS]  # back in
    assert [g.sensors for g in sync.add("camera", 500 * MS, 0.5, "c")] == []
    assert [g.sensors for g in sync.add("scan", 510 * MS, 0.51, "s")] == [SENSORS]


def test_stamps_that_never_pair_go_alone_after_the_timeout() -> None:
    sync = _sync()
    out = []
    for k in range(10):  # camera stamped 1 s ahead of the scan, both at 10 Hz
        now = 0.1 * k
        out += sync.add("camera", (1000 + 100 * k) * MS, now, "c")
        out += sync.add("scan", 100 * k * MS, now + 0.01, "s")
    assert sync.unpaired(1.0)
    assert sync.offset_s() == pytest.approx(-1.0)
    assert not any(g.paired for g in out)
    assert {g.sensors for g in out[-4:]} == {("camera",), ("scan",)}  # each alone now
    # A partner within the slop ends it.
    sync.add("camera", 2000 * MS, 1.0, "c")
    (group,) = sync.add("scan", 2010 * MS, 1.01, "s")
    assert group.paired and not sync.unpaired(1.01)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        SensorSync(("camera", "camera"), 0.05, 0.3)
    with pytest.raises(ConfigError):
        SensorSync(SENSORS, 0.05, 0.0)


def test_a_sensors_period_is_the_median_gap_between_its_messages() -> None:
    from vae_ros.core.sensor_sync import PERIOD_SAMPLES

    sync = SensorSync(("camera", "scan"), 0.05, 0.3)
    now = 0.0
    for i in range(PERIOD_SAMPLES):
        sync.add("camera", int(now * 1e9), now, i)
        now += 0.4 if i != 3 else 5.0  # one long silence does not move the median
    assert sync.period_s("camera") is None  # PERIOD_SAMPLES messages: one gap short
    sync.add("camera", int(now * 1e9), now, PERIOD_SAMPLES)
    assert sync.period_s("camera") == pytest.approx(0.4)
    assert sync.period_s("scan") is None
