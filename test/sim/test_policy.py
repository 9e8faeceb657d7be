"""The exploration policy: reproducible, smooth, slows and turns away from obstacles, never hits anything."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ros.core.errors import InputError
from vae_ros.sim.geometry import ROBOT_RADIUS
from vae_ros.sim.policy import ExplorationPolicy, PolicyConfig
from vae_ros.sim.world import SimConfig, SimWorld

ANGLES = -math.pi + (np.arange(360) + 0.5) * (2 * math.pi / 360)


def _open_space() -> np.ndarray:
    return np.full(360, np.inf)


def _wall_ahead(distance: float, wall_side_extra: float = 0.0) -> np.ndarray:
    """A straight wall across the robot's path at `distance`; everything else free. Optional wider gap left."""
    ranges = np.full(360, np.inf)
    forward = np.cos(ANGLES) > 1e-3
    ranges[forward] = distance / np.cos(ANGLES[forward])
    if wall_side_extra:
        ranges[forward & (ANGLES > 0.3)] += wall_side_extra
    return ranges


def _run(policy: ExplorationPolicy, ranges: np.ndarray, steps: int) -> list[tuple[float, float]]:
    state = policy.initial_state()
    commands = []
    for _ in range(steps):
        state, command = policy.step(state, ranges, ANGLES, 0.1)
        commands.append(command)
    return commands


def test_same_seed_same_commands_and_other_seed_other_commands() -> None:
    a = _run(ExplorationPolicy(seed=1), _open_space(), 50)
    b = _run(ExplorationPolicy(seed=1), _open_space(), 50)
    c = _run(ExplorationPolicy(seed=2), _open_space(), 50)
    assert a == b
    assert a != c


def test_open_space_cruises_forward_with_smooth_commands() -> None:
    config = PolicyConfig()
    commands = np.array(_run(ExplorationPolicy(config, seed=0), _open_space(), 100))
    assert commands[-50:, 0] == pytest.approx(config.cruise_linear)
    steps = np.abs(np.diff(commands, axis=0))
    assert steps[:, 0].max() <= config.linear_accel * 0.1 + 1e-9
    assert steps[:, 1].max() <= config.angular_accel * 0.1 + 1e-9
    assert np.abs(commands[:, 1]).max() > 0.05  # it does wander


def test_obstacle_ahead_stops_and_turns_towards_open_side() -> None:
    commands = np.array(_run(ExplorationPolicy(seed=0), _wall_ahead(0.4, wall_side_extra=2.0), 20))
    assert abs(commands[-1, 0]) < 1e-9
    assert commands[-1, 1] > 0.5  # the left side is more open
    commands = np.array(_run(ExplorationPolicy(seed=0), _wall_ahead(0.9), 30))
    assert 0 < commands[-1, 0] < PolicyConfig().cruise_linear


def test_bad_inputs_are_rejected() -> None:
    policy = ExplorationPolicy()
    with pytest.raises(InputError):
        policy.step(policy.initial_state(), np.ones(10), ANGLES, 0.1)
    with pytest.raises(InputError):
        policy.step(policy.initial_state(), _open_space(), ANGLES, 0.0)


def test_closed_loop_exploration_covers_the_room_without_collisions() -> None:
    with SimWorld(SimConfig(seed=5, image_width=16, image_height=16)) as world:
        policy = ExplorationPolicy(seed=5)
        state = policy.initial_state()
        angles = world.scan_geometry.angles
        nearest, cells = math.inf, set()
        for _ in range(1200):  # two simulated minutes at 10 Hz
            ranges = world.scan()
            nearest = min(nearest, float(ranges.min()))
            state, (linear, angular) = policy.step(state, ranges, angles, 0.1)
            world.step(linear, angular, 0.1)
            pose = world.pose()
            cells.add((math.floor(pose.x), math.floor(pose.y)))
    assert nearest > ROBOT_RADIUS + 0.05  # the chassis never touched anything
    assert len(cells) >= 16  # of the 36 one-metre cells, many are visited
