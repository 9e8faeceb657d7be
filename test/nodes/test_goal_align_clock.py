"""The look-around of goal_align (vae_ros.ros.nodes.goal_align.GoalAlign.look_around) is timed on the node's clock:
under use_sim_time with a simulator slower than real time, the robot still turns as far; a clock that stands still
ends it after a bounded wall time. No ROS here: the clock is a function, the sensors are fed by a thread."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.runtime.image_goal import LOOK_TURN_RATE, ScanGeometry
from vae_ros.ros.nodes.goal_align import LOOK_SETTLE_S, GoalAlign, LivePair

GEOMETRY = ScanGeometry(angle_min=-math.pi, angle_increment=2 * math.pi / 360, range_min=0.1, range_max=10.0)


class RecordingAlign(GoalAlign):
    """GoalAlign that records, on its own clock, each turn command the executor would be sent."""

    commands: list[tuple[int, Any]]

    @property  # type: ignore[override]
    def look_command(self) -> Any:
        return self.__dict__.get("_look_command")

    @look_command.setter
    def look_command(self, value: Any) -> None:
        self.__dict__.setdefault("commands", []).append((self._clock_ns(), value))
        self.__dict__["_look_command"] = value


def _align(clock_ns: Callable[[], int]) -> RecordingAlign:
    return RecordingAlign(Path("unused"), "onnxruntime", "cpu", lambda w, h: None, clock_ns)  # type: ignore[arg-type, return-value]


def _feed(align: GoalAlign, clock_ns: Callable[[], int], stop: threading.Event) -> threading.Thread:
    """A camera frame and a scan of the same stamp every 20 ms of wall time, as the node's callbacks add them."""
    def run() -> None:
        while not stop.wait(0.02):
            stamp = clock_ns()
            align.sensors.add_frame(stamp, np.zeros((4, 4, 3), np.uint8))
            align.sensors.add_scan(stamp, np.ones(360, np.float32), GEOMETRY)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _first(clock_ns: Callable[[], int]) -> LivePair:
    return LivePair(clock_ns(), np.zeros((4, 4, 3), np.uint8), np.ones(360, np.float32), GEOMETRY)


def test_a_simulator_at_half_speed_turns_the_robot_as_far() -> None:
    start = time.monotonic()

    def sim_clock() -> int:  # simulated time at half the wall clock's rate, from 1 s
        return int((1.0 + 0.5 * (time.monotonic() - start)) * 1e9)

    align, stop = _align(sim_clock), threading.Event()
    feeder = _feed(align, sim_clock, stop)
    try:
        views = align.look_around(_first(sim_clock), 20.0, lambda: True)
    finally:
        stop.set()
        feeder.join(2.0)
    assert len(views) == 3 and views[1].stamp_ns > views[0].stamp_ns and views[2].stamp_ns > views[1].stamp_ns
    # The commands in order (after __init__'s None): turn left, stop, turn right, stop, none (look-around over).
    commands = align.commands[1:]
    assert [c for _, c in commands] == [(0.0, LOOK_TURN_RATE), (0.0, 0.0), (0.0, -LOOK_TURN_RATE), (0.0, 0.0), None]
    times = [t * 1e-9 for t, _ in commands]
    turn_s = math.radians(20.0) / LOOK_TURN_RATE
    # Turned for the whole turn in simulated time (on the steady clock it would be half of it, 10 deg), and stopped
    # for the settle before each view. The upper bounds only leave room for a busy machine.
    for (begin, end), wanted in (((0, 1), turn_s), ((2, 3), 2 * turn_s), ((1, 2), LOOK_SETTLE_S)):
        held = times[end] - times[begin]
        assert wanted - 0.01 <= held <= wanted + 1.0, (begin, end, held, wanted)


def test_a_clock_that_stands_still_ends_the_look_around_with_the_view_it_has() -> None:
    def paused() -> int:  # a paused simulator: /clock stands at 5 s
        return 5_000_000_000

    align = _align(paused)
    began = time.monotonic()
    views = align.look_around(_first(paused), 5.0, lambda: True)
    waited = time.monotonic() - began
    assert len(views) == 1 and align.look_command is None
    # It gave up on the first turn (10 times its 0.15 s plus 2 s of wall time), and commanded a stop then.
    assert [c for _, c in align.commands[1:]] == [(0.0, LOOK_TURN_RATE), (0.0, 0.0), None]
    assert waited >= 2.0, waited


def test_a_clock_that_jumps_back_mid_turn_ends_the_turn_at_once() -> None:
    """A simulator reset (or a bag that loops, or an NTP step) sends the node's clock back while the robot turns: the
    turn ends there (the views so far are searched) instead of turning on for 10 times its length of wall time."""
    start = time.monotonic()

    def reset_clock() -> int:  # 100 s, then after 0.1 s of wall time the simulator restarts at 0 s
        elapsed = time.monotonic() - start
        return int((100.0 + elapsed if elapsed < 0.1 else elapsed - 0.1) * 1e9)

    align = _align(reset_clock)
    began = time.monotonic()
    views = align.look_around(_first(reset_clock), 40.0, lambda: True)
    waited = time.monotonic() - began
    assert len(views) == 1 and align.look_command is None
    commands = align.commands[1:]
    assert [c for _, c in commands] == [(0.0, LOOK_TURN_RATE), (0.0, 0.0), None]
    # The turn of 40 deg lasts 1.16 s on a clock that keeps time; here it ended when the clock went back.
    assert waited < 1.0, waited
