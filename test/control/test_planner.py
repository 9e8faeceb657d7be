"""The latent MPC (CEM) planner: pure, limited, reproducible, and it reaches goals through a learned model."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from dynamics_helpers import trained_unicycle_dynamics, unicycle_latent, unicycle_step

from vae_ros.control.runtime.planner import (
    CONVERGED,
    MpcConfig,
    MpcState,
    detour_field,
    detour_waypoint,
    motion_primitives,
    plan,
    plan_step,
    safe_command,
    scan_obstacles,
    sequence_costs,
)
from vae_ros.core.errors import ConfigError, InputError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> MpcConfig:
    dyn = trained_unicycle_dynamics(tmp_path_factory.mktemp("dyn") / "unicycle")
    cfg = MpcConfig(dynamics=dyn, horizon=10, samples=200, iterations=3, elites=20, tolerance=0.08, seed=3)
    cfg.validate()
    return cfg


def _run(config: MpcConfig, start: np.ndarray, goal: np.ndarray, steps: int) -> tuple[np.ndarray, MpcState,
                                                                                       list[tuple[float, float]]]:
    z_goal = unicycle_latent(goal[None])[0]
    pose, state, commands = start.copy(), MpcState(), []
    for _ in range(steps):
        state, (v, w) = plan_step(state, unicycle_latent(pose[None])[0], z_goal, config)
        commands.append((v, w))
        if state.status == CONVERGED:
            break
        pose = unicycle_step(pose, np.array([v, w]))
    return pose, state, commands


def test_reaches_a_goal_through_the_learned_model(config: MpcConfig) -> None:
    goal = np.array([0.6, 0.3, 0.5])
    pose, state, commands = _run(config, np.zeros(3), goal, steps=120)
    assert math.hypot(pose[0] - goal[0], pose[1] - goal[1]) < 0.12, pose
    assert state.status == CONVERGED
    cmds = np.array(commands)
    assert np.all(np.abs(cmds[:, 0]) <= config.max_linear + 1e-6)
    assert np.all(np.abs(cmds[:, 1]) <= config.max_angular + 1e-6)
    # Acceleration limits between consecutive commands (dt = the model step).
    dv = np.abs(np.diff(np.vstack([[0.0, 0.0], cmds]), axis=0))
    assert np.all(dv[:, 0] <= config.max_linear_accel * config.dynamics.dt + 1e-5)
    assert np.all(dv[:, 1] <= config.max_angular_accel * config.dynamics.dt + 1e-5)
    assert state.predicted is not None and state.predicted.shape == (config.horizon, 4)


def test_goal_behind_the_robot(config: MpcConfig) -> None:
    goal = np.array([-0.5, 0.0, math.pi])
    pose, _, _ = _run(config, np.zeros(3), goal, steps=150)
    assert math.hypot(pose[0] - goal[0], pose[1] - goal[1]) < 0.15, pose


def test_step_is_pure_and_reproducible(config: MpcConfig) -> None:
    z = unicycle_latent(np.array([[0.0, 0.0, 0.0]]))[0]
    goal = unicycle_latent(np.array([[0.5, 0.0, 0.0]]))[0]
    state = MpcState()
    s1, c1 = plan_step(state, z, goal, config)
    s2, c2 = plan_step(state, z, goal, config)
    assert c1 == c2 and state.plan is None and state.step == 0
    assert s1.step == 1 and s1.plan is not None
    # Warm start: the next plan begins from the shifted last one.
    s3, _ = plan_step(s1, z, goal, config)
    assert s3.step == 2 and s3.plan is not None and np.isfinite(s3.cost)
    np.testing.assert_array_equal(s1.plan, s2.plan)


def test_bad_inputs_and_configs_are_refused(config: MpcConfig) -> None:
    with pytest.raises(InputError, match="dimensions"):
        plan_step(MpcState(), np.zeros(3), np.zeros(4), config)
    with pytest.raises(InputError, match="NaN"):
        plan_step(MpcState(), np.full(4, np.nan), np.zeros(4), config)
    with pytest.raises(ConfigError, match="elites"):
        replace(config, elites=500).validate()
    _, (v, w) = plan_step(MpcState(), np.zeros(4), np.ones(4), config)
    assert math.isfinite(v) and math.isfinite(w)


def test_collision_cost_from_a_scan(config: MpcConfig) -> None:
    # A wall 0.4 m ahead: driving straight costs more than turning away, all else equal.
    angles = np.linspace(-math.pi, math.pi, 360, endpoint=False)
    ranges = np.full(360, np.inf, np.float32)
    ahead = np.abs(angles) < 0.6
    ranges[ahead] = 0.4 / np.cos(angles[ahead])
    obstacles = scan_obstacles(ranges, -math.pi, 2 * math.pi / 360)
    assert 0 < obstacles.shape[0] <= 90 and np.all(obstacles[:, 0] > 0.35)
    straight = np.tile([0.3, 0.0], (1, config.horizon, 1)).astype(np.float32)
    still = np.zeros_like(straight)
    z = np.zeros(4, np.float32)
    free, _ = sequence_costs(config, z, z, np.concatenate([straight, still]))
    walled, _ = sequence_costs(config, z, z, np.concatenate([straight, still]), obstacles)
    assert walled[0] - free[0] > 10.0
    assert walled[1] == pytest.approx(free[1])


def _wall(x: float, half: float = 0.4) -> np.ndarray:
    """Obstacle points of a wall across the robot's way at x (robot frame), from y = -half to +half."""
    return np.stack([np.full(41, x), np.linspace(-half, half, 41)], 1).astype(np.float32)


def test_fail_safe_stops_short_of_what_the_lidar_sees_but_lets_the_robot_turn_and_back_off(
        config: MpcConfig) -> None:
    wall = _wall(0.35)  # the robot's centre may come to robot_radius + safety_margin = 0.25 m of it
    (v, w), cut = safe_command((0.3, 0.5), wall, config)
    assert cut and 0.0 <= v < 0.3 and w == 0.5  # slowed (or stopped); the turn is kept
    (v, w), cut = safe_command((0.3, 0.0), _wall(0.26), config)
    assert cut and 0.0 <= v * config.safety_time <= 0.26 - 0.25  # a crawl that stops short of the 0.01 m left
    (v, w), cut = safe_command((0.3, 0.0), _wall(0.25), config)
    assert cut and v == 0.0  # nothing left: stopped
    assert safe_command((-0.3, 0.2), wall, config) == ((-0.3, 0.2), False)  # backing off is fine
    assert safe_command((0.0, 0.8), _wall(0.21), config) == ((0.0, 0.8), False)  # turning in place too
    assert safe_command((0.3, 0.0), _wall(2.0), config) == ((0.3, 0.0), False)  # far away: untouched
    assert safe_command((0.3, 0.0), None, config) == ((0.3, 0.0), False)
    off = replace(config, fail_safe=False)
    assert safe_command((0.3, 0.0), _wall(0.26), off) == ((0.3, 0.0), False)
    (v, _), cut = safe_command((-0.2, 0.0), _wall(0.22), config)  # already too close: moving away is allowed
    assert not cut and v == -0.2


def test_detour_goes_round_a_wall_and_is_off_for_a_free_way(config: MpcConfig) -> None:
    goal = np.array([1.6, 0.05])
    assert detour_field(_wall(0.8), np.array([0.5, 0.0]), config) is None  # the goal before the wall
    assert detour_field(np.zeros((0, 2), np.float32), goal, config) is None
    assert detour_field(_wall(0.8), np.array([9.0, 0.0]), config) is None  # off the grid
    field = detour_field(_wall(0.8), goal, config)
    assert field is not None
    centre = field.shape[0] // 2
    assert field[centre, centre] > 1.6 + 0.3  # the way round is longer than the straight line through the wall
    waypoint = detour_waypoint(field, goal, config)
    assert waypoint is not None
    assert abs(waypoint[1]) > 0.4  # towards one end of the wall (it spans y -0.4..0.4) ...
    assert 0.4 < np.hypot(*waypoint) <= config.detour_lookahead + config.detour_cell  # ... lookahead away
    near = detour_field(_wall(0.8), np.array([1.0, 0.7]), config)  # a goal just round the wall's end
    assert near is not None
    far_ahead = replace(config, detour_lookahead=5.0)
    np.testing.assert_allclose(detour_waypoint(near, np.array([1.0, 0.7]), far_ahead), [1.0, 0.7])
    close = detour_field(_wall(0.2), goal, config)  # the robot nearer the wall than the collision radius
    assert close is not None and np.isfinite(close[centre, centre])


def test_motion_primitives_move_a_little_and_stop(config: MpcConfig) -> None:
    prims = motion_primitives(replace(config, action_repeat=1))  # 5 decisions at most: within the horizon
    assert prims.shape[1:] == (config.horizon, 2)
    assert np.all(prims[:, -1] == 0.0)  # every one ends standing still
    assert np.abs(prims[..., 0]).max() <= config.max_linear and np.abs(prims[..., 1]).max() <= config.max_angular
    turned_first = (prims[:, 0, 0] == 0) & (prims[:, 0, 1] != 0)
    assert turned_first.any() and (prims[turned_first][:, :, 0] != 0).any(1).all()  # turn in place, then drive


def test_a_plan_that_must_move_does_not_stand_still(config: MpcConfig) -> None:
    # At the goal standing still is cheapest; after a stall the plan must move over its first decision.
    z = unicycle_latent(np.zeros((1, 3)))[0]
    rng = np.random.default_rng(0)
    sequence, _, _ = plan(config, z, z, None, (0.0, 0.0), rng)
    assert np.abs(sequence[0] / config.limits).max() < 0.2
    moved, cost, _ = plan(config, z, z, None, (0.0, 0.0), np.random.default_rng(0), must_move=True)
    assert np.abs(moved[: config.action_repeat] / config.limits).max() >= 0.2 and np.isfinite(cost)


def test_plan_step_never_drives_into_what_the_lidar_sees(config: MpcConfig) -> None:
    # The goal 1 m straight ahead, a wall 0.3 m ahead: the plan drives forward at speed; the fail-safe slows
    # the step so that, held safety_time, it stays robot_radius + safety_margin from the wall, and counts it.
    goal = unicycle_latent(np.array([[1.0, 0.0, 0.0]]))[0]
    z = unicycle_latent(np.zeros((1, 3)))[0]
    state = MpcState(command=(0.3, 0.0))
    off = replace(config, fail_safe=False)
    _, (v_free, _) = plan_step(state, z, goal, off, _wall(0.3, half=1.0))
    slowed, (v, _) = plan_step(state, z, goal, config, _wall(0.3, half=1.0))
    keep = config.robot_radius + config.safety_margin
    assert v < v_free and v * config.safety_time <= 0.3 - keep + 1e-6
    assert slowed.safety_stops == 1
