"""The world model's MPC shaped for a differential drive: pose cost, look-around localisation, hard episodes,
the `drive` data policy, and one closed-loop hard start on the packaged models (real MuJoCo, real encoder)."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vae_ros.control.evaluation.episodes import (
    Episode,
    EpisodeConfig,
    WorldModelController,
    path_is_free,
    run_episode,
    sample_hard_episodes,
)
from vae_ros.control.runtime.control_model import ControlModel
from vae_ros.control.runtime.planner import (
    MpcConfig,
    MpcState,
    look_around,
    plan_step,
    pose_cost,
)
from vae_ros.control.runtime.route import relative_pose
from vae_ros.control.runtime.servo import ServoConfig
from vae_ros.sim.geometry import wrap_angle
from vae_ros.sim.policy import DrivePolicy
from vae_ros.sim.world import SimConfig, SimWorld

REPO = Path(__file__).resolve().parents[2]
# The fixtures model and config (the packaged control model, its MPC configuration): test/control/conftest.py.


@pytest.fixture(scope="module")
def hard_start(model: ControlModel) -> tuple[Episode, np.ndarray, np.ndarray]:
    """The first hard episode of world seed 0 and the latents at its start and goal."""
    with SimWorld(SimConfig(seed=0, image_width=16, image_height=16)) as world:
        episode = sample_hard_episodes(world, 1, np.random.default_rng([0, 0]))[0]
        world.set_pose(*episode.goal)
        z_goal = model.latent(world)
        world.set_pose(*episode.start)
        return episode, model.latent(world), z_goal


def test_pose_cost_falls_all_the_way_to_the_goal_forwards_or_backwards(config: MpcConfig) -> None:
    # A robot turned 120 deg from the goal's yaw, the goal 1 m behind it: every step closer must be cheaper
    # (a cost with the yaw term only near the goal stopped the robot at the near zone's edge).
    distances = np.linspace(1.0, 0.0, 11)
    behind = np.stack([-distances, np.zeros_like(distances), np.full_like(distances, math.radians(120))], 1)
    cost = pose_cost(config, behind)
    assert np.all(np.diff(cost) < 0)
    ahead = behind * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(pose_cost(config, ahead), cost)  # driving backwards is as good as forwards
    aligned = pose_cost(config, np.array([[0.0, 0.0, 0.0]]))[0]
    assert aligned == 0.0 and cost[-1] > aligned  # at the goal position only the yaw is left


def test_estimate_batch_matches_estimate(model: ControlModel) -> None:
    rng = np.random.default_rng(0)
    z, goal = rng.normal(size=(5, model.latent_dim)), rng.normal(size=model.latent_dim)
    batch = model.head.estimate_batch(z, goal)
    for row, latent in zip(batch, z, strict=True):
        single = model.head.estimate(latent, goal)
        np.testing.assert_allclose(row[:2], single[:2], atol=1e-4)
        assert abs(wrap_angle(row[2] - single[2])) < 1e-4


def test_hard_episodes_put_the_goal_behind_and_turned_and_block_every_third() -> None:
    with SimWorld(SimConfig(seed=0, image_width=16, image_height=16)) as world:
        episodes = sample_hard_episodes(world, 9, np.random.default_rng(4))
        for index, episode in enumerate(episodes):
            assert 1.0 <= episode.start_distance <= 2.0
            assert episode.start_yaw_error >= math.radians(90)
            goal = relative_pose(episode.start, episode.goal)
            assert goal[0] <= 1e-9  # behind the robot
            blocked = not path_is_free(world, episode.start[:2], episode.goal[:2])
            assert blocked == (index % 3 == 2)


def test_look_around_finds_a_goal_the_head_cannot_see(model: ControlModel, config: MpcConfig,
                                                      hard_start: tuple[Episode, np.ndarray, np.ndarray]) -> None:
    episode, z, z_goal = hard_start
    truth = relative_pose(episode.start, episode.goal)
    direct = model.estimate(z, z_goal)
    belief, support = look_around(config, z, z_goal, (0.0, 0.0))
    assert np.hypot(*(direct[:2] - truth[:2])) > 0.5  # the head alone is far off here ...
    assert np.hypot(*(belief[:2] - truth[:2])) < 0.4  # ... the imagined look-around is not
    assert abs(wrap_angle(belief[2] - truth[2])) < math.radians(25)
    assert support > 10


def test_a_goal_disproved_on_arrival_is_excluded_and_looked_for_elsewhere(
        config: MpcConfig, hard_start: tuple[Episode, np.ndarray, np.ndarray]) -> None:
    episode, z, z_goal = hard_start
    truth = relative_pose(episode.start, episode.goal)
    belief, _ = look_around(config, z, z_goal, (0.0, 0.0))
    elsewhere, support = look_around(config, z, z_goal, (0.0, 0.0), np.array([belief[:2]], np.float32))
    assert support == 0 or np.hypot(*(elsewhere[:2] - belief[:2])) >= config.reject_radius
    # A robot that believes it stands at the goal while the latent error stays far above the tolerance without
    # improving (here: the hard start itself, 1-2 m away) gives that place up after reject_after_s and finds
    # the real goal; a step earlier, or with the error still falling, it does not.
    assert config.reject_factor > 0
    steps = round(config.reject_after_s / config.dynamics.dt)
    stuck = MpcState(belief=(0.0, 0.0, 0.0), support=50, arrived=steps - 2, step=1, best_error=0.01,
                     since_progress=config.reject_after_s)
    waiting, _ = plan_step(stuck, z, z_goal, config)
    assert waiting.rejected == () and waiting.arrived == steps - 1
    falling, _ = plan_step(replace(waiting, best_error=math.inf, since_progress=0.0), z, z_goal, config)
    assert falling.rejected == ()
    state, _ = plan_step(waiting, z, z_goal, config)
    assert len(state.rejected) == 1 and np.hypot(*state.rejected[0]) < 0.05
    assert state.belief is not None and np.hypot(state.belief[0] - truth[0], state.belief[1] - truth[1]) < 0.4
    assert state.arrived == 0 and state.best_error == math.inf  # a fresh progress window for the new goal


def test_world_model_reaches_a_hard_start_the_servo_misses(model: ControlModel, config: MpcConfig) -> None:
    assert model.tolerance is not None
    servo = ServoConfig(tolerance=model.tolerance)
    with SimWorld(SimConfig(seed=0, image_width=16, image_height=16)) as world:
        episode = sample_hard_episodes(world, 1, np.random.default_rng([0, 0]))[0]
        episode_config = EpisodeConfig(time_limit=30.0)
        by_servo = run_episode(world, model, episode, servo, episode_config)
        by_model = run_episode(world, model, episode, servo, episode_config,
                               controller=WorldModelController(config))
    assert not by_servo.success
    assert by_model.success and not by_model.collided
    assert by_model.handover_s is not None and by_model.handover_s > 1.0  # the MPC drove first
    assert len(by_model.step_ms) == len(by_model.latent_error)


def test_drive_policy_reverses_turns_in_place_and_keeps_clear() -> None:
    with SimWorld(SimConfig(seed=3, image_width=16, image_height=16)) as world:
        policy = DrivePolicy(world.clearance, seed=5)
        state = policy.initial_state()
        commands, closest = [], math.inf
        for _ in range(1200):  # 120 s
            pose = world.pose()
            state, command = policy.step(state, (pose.x, pose.y, pose.yaw), 0.1)
            commands.append(command)
            world.step(*command, 0.1)
            closest = min(closest, world.clearance(world.pose().x, world.pose().y))
    cmd = np.array(commands)
    assert closest > 0.0
    assert (cmd[:, 0] < -0.1).mean() > 0.1 and (cmd[:, 0] > 0.1).mean() > 0.1
    assert ((np.abs(cmd[:, 0]) < 0.01) & (np.abs(cmd[:, 1]) > 0.3)).mean() > 0.05  # turning in place
    assert np.abs(cmd[:, 0]).max() <= 0.3 + 1e-9 and np.abs(cmd[:, 1]).max() <= 0.8 + 1e-9
    again = DrivePolicy(world.clearance, seed=5)
    replay = again.initial_state()
    replay, first = again.step(replay, (0.0, 0.0, 0.0), 0.1)
    assert first == DrivePolicy(world.clearance, seed=5).step(again.initial_state(), (0.0, 0.0, 0.0), 0.1)[1]


def test_eval_control_world_model_without_dynamics_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "eval-control", "--controller", "world_model",
                             "--dynamics", str(tmp_path / "missing"), "--episodes", "1", "--out", str(tmp_path),
                             "--quiet"], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "missing" in result.stderr.strip().splitlines()[-1]
