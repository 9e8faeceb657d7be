"""The fused encoder's log lines for states that may flap (a sensor in / out, stamps paired / unpaired):
vae_ros.ros.nodes.encoder_node.StateLines, on a made-up clock (no ROS)."""

from __future__ import annotations

from vae_ros.ros.nodes.encoder_node import SENSOR_LOG_BURST, SENSOR_LOG_PERIOD_S, UNPAIRED, StateLines


def test_a_steady_change_is_said_at_once_and_once() -> None:
    lines = StateLines()
    assert lines.update(UNPAIRED, False, 0.0) is None  # the state the log starts from: nothing to say
    assert lines.update(UNPAIRED, True, 1.0) == 1
    assert lines.said(UNPAIRED)
    assert all(lines.update(UNPAIRED, True, 1.0 + 0.05 * i) is None for i in range(100))
    assert lines.update(UNPAIRED, False, 10.0) == 1 and not lines.said(UNPAIRED)


def test_a_flapping_state_gets_a_burst_then_one_line_per_period_counting_the_changes() -> None:
    """Stamps whose offset sits at sync_slop pair and unpair every 50 ms poll for 20 s: the log said each change
    (400 lines); now a burst, then one line per period, and each line after the burst counts the changes."""
    lines, said = StateLines(), []
    for i in range(400):
        now = 0.05 * i
        changes = lines.update(UNPAIRED, i % 2 == 1, now)
        if changes is not None:
            said.append((now, changes))
    assert SENSOR_LOG_BURST <= len(said) <= SENSOR_LOG_BURST + 20.0 / SENSOR_LOG_PERIOD_S + 1
    assert [c for _, c in said[:SENSOR_LOG_BURST]] == [1] * SENSOR_LOG_BURST
    later = said[SENSOR_LOG_BURST:]
    assert later and all(c > 1 for _, c in later)
    gaps = [b - a for (a, _), (b, _) in zip(later, later[1:], strict=False)]
    assert all(gap >= SENSOR_LOG_PERIOD_S - 0.051 for gap in gaps), gaps
    # Every change is either said or counted in a later line (none lost but the ones since the last line).
    assert sum(c for _, c in said) <= 399 and sum(c for _, c in said) >= 399 - SENSOR_LOG_PERIOD_S / 0.05


def test_keys_have_their_own_allowance() -> None:
    lines = StateLines()
    for i in range(2 * SENSOR_LOG_BURST):
        lines.update("camera", i % 2 == 0, 0.01 * i)
    assert lines.update("scan", True, 0.2) == 1  # the camera's flapping used none of the scan's lines
