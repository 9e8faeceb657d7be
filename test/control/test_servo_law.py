"""The servo's control law on an ideal unicycle: it reaches goals from every side, obeys its limits,
declares convergence from the latent error and stops; it reports LOST when no progress is made."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from vae_ros.control.runtime.servo import (
    CONVERGED,
    LOST,
    SERVOING,
    ServoConfig,
    ServoState,
    servo_step,
)
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.sim.geometry import wrap_angle

DT = 0.1


def _relative(pose: np.ndarray, goal: np.ndarray) -> np.ndarray:
    dx, dy = goal[0] - pose[0], goal[1] - pose[1]
    c, s = math.cos(pose[2]), math.sin(pose[2])
    return np.array([c * dx + s * dy, -s * dx + c * dy, wrap_angle(goal[2] - pose[2])])


def _drive(start: tuple[float, float, float], config: ServoConfig, seconds: float = 40.0,
           estimate_noise: float = 0.0, seed: int = 0,
           state: ServoState | None = None) -> tuple[ServoState, np.ndarray, list[tuple[float, float]]]:
    """Integrate a unicycle under the law; the 'latent' is the pose error itself (an ideal metric latent)."""
    rng = np.random.default_rng(seed)
    pose = np.array(start, dtype=np.float64)
    goal = np.zeros(3)
    state = ServoState() if state is None else state
    commands = []
    for _ in range(int(seconds / DT)):
        rel = _relative(pose, goal)
        estimate = rel + rng.normal(0.0, estimate_noise, size=3)
        state, (v, w) = servo_step(state, -rel, np.zeros(3), estimate, DT, config)
        commands.append((v, w))
        if state.status in (CONVERGED, LOST):
            break
        pose = pose + DT * np.array([v * math.cos(pose[2]), v * math.sin(pose[2]), w])
    return state, pose, commands


STARTS = [(0.8, 0.0, 0.0), (-0.8, 0.3, 0.5), (0.0, 0.9, -0.7), (0.5, -0.6, 0.78), (-0.4, -0.4, -0.3),
          (0.2, 0.25, 0.7), (-0.9, 0.0, 0.0), (0.0, -0.5, 0.0)]


@pytest.mark.parametrize("start", STARTS)
def test_reaches_the_goal_from_any_side_and_declares_convergence(start) -> None:
    # The law aligns the yaw in place once within fine_radius (0.05 m), so a tolerance above that converges.
    config = ServoConfig(tolerance=0.06)
    state, pose, _ = _drive(start, config)
    assert state.status == CONVERGED
    # The ideal latent is the pose error itself, so converging means |(dx, dy, dyaw)| < tolerance.
    assert math.hypot(pose[0], pose[1]) < 0.06 and abs(wrap_angle(pose[2])) < 0.06


def test_converges_with_a_noisy_goal_estimate() -> None:
    reached = 0
    for seed, start in enumerate(STARTS):
        state, pose, _ = _drive(start, ServoConfig(tolerance=0.08), estimate_noise=0.01, seed=seed)
        reached += state.status == CONVERGED and math.hypot(pose[0], pose[1]) < 0.1
    assert reached == len(STARTS)


def test_velocity_and_acceleration_limits_hold() -> None:
    config = ServoConfig(tolerance=0.06, max_linear=0.2, max_angular=0.5, max_linear_accel=0.5, max_angular_accel=1.0)
    _, _, commands = _drive((-0.9, 0.4, 0.6), config)
    v = np.array([c[0] for c in commands])
    w = np.array([c[1] for c in commands])
    assert np.abs(v).max() <= 0.2 + 1e-12 and np.abs(w).max() <= 0.5 + 1e-12
    assert np.abs(np.diff(np.concatenate([[0.0], v]))).max() <= 0.5 * DT + 1e-12
    assert np.abs(np.diff(np.concatenate([[0.0], w]))).max() <= 1.0 * DT + 1e-12
    assert np.abs(v).max() > 0.15  # the limits were actually reached, so the check can fail


def test_a_goal_behind_is_reached_driving_backwards_without_turning_around() -> None:
    state, _, commands = _drive((0.6, 0.0, 0.0), ServoConfig(tolerance=0.06))  # goal 0.6 m behind, same heading
    assert state.status == CONVERGED
    assert min(c[0] for c in commands) < -0.1 and max(c[0] for c in commands) <= 1e-9


@pytest.mark.parametrize("side", [0.12, -0.09])
def test_a_sideways_offset_left_after_the_yaw_alignment_is_backed_off_and_approached_again(side: float) -> None:
    # The robot is in the in-place yaw alignment (as when the goal estimate said "here" and, once the yaw was
    # right, showed the goal beside it): turning in place cannot remove that, so it backs off and comes back.
    aligning = ServoState(fine=True)
    config = ServoConfig(tolerance=0.06)
    state, pose, commands = _drive((0.0, side, 0.0), config, state=aligning)
    assert state.status == CONVERGED and math.hypot(pose[0], pose[1]) < 0.06
    assert min(c[0] for c in commands[:10]) < -0.1  # it backed off first
    # Without the back-off the same start is a trap: the servo gives up.
    state, pose, _ = _drive((0.0, side, 0.0), ServoConfig(tolerance=0.06, backoff_distance=0.0), state=aligning)
    assert state.status == LOST and math.hypot(pose[0], pose[1]) > 0.08


def _aliased(rel: np.ndarray) -> np.ndarray:
    # A head trained on goals within about 70 deg of yaw: beyond that it reads an alias, a goal just behind
    # the robot turned the other way (as measured on the packaged model).
    if abs(rel[2]) <= math.radians(70.0):
        return rel
    return np.array([-0.5, 0.0, -0.6 * np.sign(rel[2])])


def test_readings_beyond_the_heads_yaw_range_do_not_lead_the_robot_away() -> None:
    # The goal 0.8 m to the left, same heading: turning to drive there takes the yaw error to 90 deg, where
    # the head reads an alias. The estimate is carried by the robot's own motion there instead.
    def drive(config: ServoConfig) -> tuple[ServoState, np.ndarray]:
        pose, goal, state = np.array([0.0, -0.8, 0.0]), np.zeros(3), ServoState()
        for _ in range(int(40.0 / DT)):
            rel = _relative(pose, goal)
            state, (v, w) = servo_step(state, -rel, np.zeros(3), _aliased(rel), DT, config)
            if state.status in (CONVERGED, LOST):
                break
            pose = pose + DT * np.array([v * math.cos(pose[2]), v * math.sin(pose[2]), w])
        return state, pose

    state, pose = drive(ServoConfig(tolerance=0.06))
    assert state.status == CONVERGED and math.hypot(pose[0], pose[1]) < 0.06
    # Blending every reading (a range of 180 deg), the alias leads the robot away: it never gets there.
    state, pose = drive(ServoConfig(tolerance=0.06, head_yaw_range=math.pi))
    assert state.status != CONVERGED and math.hypot(pose[0], pose[1]) > 0.3


def test_brakes_as_soon_as_the_error_is_under_the_tolerance() -> None:
    config = ServoConfig(tolerance=0.1, settle_steps=3, max_angular_accel=100.0)
    state = ServoState(command=(0.0, 0.5))
    state, command = servo_step(state, np.zeros(3), np.full(3, 0.03), np.array([0.0, 0.0, 0.05]), DT, config)
    assert state.status == SERVOING and state.settled == 1 and command == (0.0, 0.0)


def test_stays_converged_within_the_resume_band_and_resumes_beyond_it() -> None:
    config = ServoConfig(tolerance=0.1, settle_steps=2)
    state = ServoState()
    for _ in range(2):
        state, command = servo_step(state, np.zeros(3), np.full(3, 0.01), np.zeros(3), DT, config)
    assert state.status == CONVERGED and command == (0.0, 0.0)
    state, _ = servo_step(state, np.zeros(3), np.full(3, 0.12 / math.sqrt(3)), np.array([0.1, 0, 0]), DT, config)
    assert state.status == CONVERGED  # 0.12 < 1.5 x tolerance
    state, command = servo_step(state, np.zeros(3), np.full(3, 0.3), np.array([0.3, 0, 0]), DT, config)
    assert state.status == SERVOING


def test_lost_when_the_error_does_not_improve() -> None:
    config = ServoConfig(tolerance=0.05, lost_after_s=2.0)
    state = ServoState()
    statuses = []
    for _ in range(40):
        state, command = servo_step(state, np.zeros(3), np.ones(3), np.array([0.5, 0.0, 0.0]), DT, config)
        statuses.append(state.status)
    assert statuses[10] == SERVOING and statuses[-1] == LOST
    assert command == pytest.approx((0.0, 0.0), abs=0.1)  # decelerating to zero within the accel limit


@pytest.mark.parametrize("bad", [dict(tolerance=0.0), dict(max_linear=-1.0), dict(coarse_radius=0.01),
                                 dict(settle_steps=0), dict(resume_factor=0.5), dict(gain=math.nan),
                                 dict(backoff_distance=-0.1), dict(lateral_tolerance=-0.1),
                                 dict(head_yaw_range=0.0)])
def test_invalid_configs_are_refused(bad) -> None:
    with pytest.raises(ConfigError):
        ServoConfig(**bad).validate()


def test_invalid_inputs_raise_input_error() -> None:
    config = ServoConfig()
    with pytest.raises(InputError):
        servo_step(ServoState(), np.zeros(3), np.zeros(4), np.zeros(3), DT, config)
    with pytest.raises(InputError):
        servo_step(ServoState(), np.array([np.nan, 0, 0]), np.zeros(3), np.zeros(3), DT, config)
    with pytest.raises(InputError):
        servo_step(ServoState(), np.zeros(3), np.zeros(3), np.array([0.0, np.inf, 0.0]), DT, config)
    with pytest.raises(InputError):
        servo_step(ServoState(), np.zeros(3), np.zeros(3), np.zeros(3), 0.0, config)


def test_the_goal_estimate_is_carried_through_the_robot_motion_before_blending() -> None:
    from vae_ros.control.runtime.servo import _fuse

    # Weight 0: pure prediction. Driving 0.5 m toward a goal 1 m ahead leaves it 0.5 m ahead.
    np.testing.assert_allclose(_fuse((1.0, 0.0, 0.0), (1.0, 0.0), np.zeros(3), 0.5, 0.0), [0.5, 0.0, 0.0], atol=1e-12)
    # Turning 90 deg left in place puts a goal that was ahead on the right, its yaw 90 deg to the right.
    np.testing.assert_allclose(_fuse((1.0, 0.0, 0.0), (0.0, math.pi / 2), np.zeros(3), 1.0, 0.0),
                               [0.0, -1.0, -math.pi / 2], atol=1e-12)
    # Beyond the trusted yaw the new estimate is ignored: the previous one, moved, stands.
    np.testing.assert_allclose(_fuse((1.0, 0.0, 1.5), (0.0, 0.0), np.array([-1.0, 0.0, 0.0]), 0.1, 0.5, 1.0),
                               [1.0, 0.0, 1.5], atol=1e-12)
    # Weight 1 (or no history): the new estimate as it is; in between, the mean.
    np.testing.assert_allclose(_fuse(None, (0.3, 0.1), np.array([0.2, 0.1, 0.3]), 0.1, 0.5), [0.2, 0.1, 0.3])
    np.testing.assert_allclose(_fuse((1.0, 0.0, 0.2), (0.0, 0.0), np.array([0.0, 0.0, 0.0]), 0.1, 0.5),
                               [0.5, 0.0, 0.1], atol=1e-12)


def _drive_with_wall_behind(side: float, wall_x: float, config: ServoConfig,
                            tell_servo: bool = True) -> tuple[ServoState, np.ndarray, int]:
    """_drive from the in-place yaw alignment beside the goal, with a wall behind the robot at x = wall_x that
    stops backing (sent v = 0, as the scan safety layer sends it); the servo carries the command sent (as the
    nodes and the episodes tell it) unless not tell_servo. Returns (state, pose, steps held back)."""
    pose = np.array([0.0, side, 0.0])
    state = ServoState(fine=True)
    held = 0
    for _ in range(int(40.0 / DT)):
        rel = _relative(pose, np.zeros(3))
        state, (v, w) = servo_step(state, -rel, np.zeros(3), rel, DT, config)
        if state.status in (CONVERGED, LOST):
            break
        if v < 0.0 and pose[0] + v * DT * math.cos(pose[2]) < wall_x:
            v, held = 0.0, held + 1
            if tell_servo:
                state = replace(state, command=(v, w))
        pose = pose + DT * np.array([v * math.cos(pose[2]), v * math.sin(pose[2]), w])
    return state, pose, held


def test_a_back_off_held_back_by_a_wall_ends_and_the_robot_approaches_from_there() -> None:
    config = ServoConfig(tolerance=0.06)
    state, pose, held = _drive_with_wall_behind(0.1, -0.12, config)
    assert held > 0  # the back-off did run into the wall ...
    assert state.status == CONVERGED and math.hypot(pose[0], pose[1]) < 0.06  # ... and the goal was reached
    # A servo that is not told (it believes it is backing) asks to back off until it gives up.
    state, _, held = _drive_with_wall_behind(0.1, -0.12, config, tell_servo=False)
    assert state.status == LOST and held > 100
