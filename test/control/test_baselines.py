"""Baseline representations under the latent servo's controller: their heads, tolerances and episodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vae_ros.control.baselines import BaselineHeadConfig, _tolerance, train_baseline_head
from vae_ros.control.control_model import ControlModel
from vae_ros.control.episodes import EpisodeConfig, run_episode, sample_episodes
from vae_ros.control.representations import Observations, PoseRepresentation
from vae_ros.control.servo import ServoConfig
from vae_ros.resources import models_dir
from vae_ros.sim.world import SimConfig, SimWorld


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _relative(pose: np.ndarray, goal: np.ndarray) -> np.ndarray:
    c, s = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = goal[0] - pose[0], goal[1] - pose[1]
    return np.array([c * dx + s * dy, -s * dx + c * dy, math.atan2(math.sin(goal[2] - pose[2]),
                                                                   math.cos(goal[2] - pose[2]))])


def test_pose_head_estimates_the_relative_pose_and_closes_the_loop() -> None:
    estimator = train_baseline_head(PoseRepresentation(), train_seeds=[2, 3], poses_per_seed=200, steps=800)
    error = estimator.info["head_error_held_out"]
    assert error["position_m_median"] < 0.10 and error["yaw_deg_median"] < 3.0, error
    assert estimator.info["calibration"]["method"] == "calibrated"
    # Near the goal, where convergence is decided, the estimate is close to the truth.
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(50):
        pose = np.array([rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-2.5, 2.5)])
        goal = pose + np.array([*rng.uniform(-0.3, 0.3, 2), rng.uniform(-0.3, 0.3)])
        z, z_goal = estimator.features(Observations(images=None, scans=None, poses=np.stack([pose, goal])))
        estimate, truth = estimator.estimate(z, z_goal), _relative(pose, goal)
        errors.append((math.hypot(*(estimate[:2] - truth[:2])), abs(estimate[2] - truth[2])))
    position, yaw = np.median(errors, axis=0)
    assert position < 0.05 and math.degrees(yaw) < 3.0, (position, math.degrees(yaw))
    with SimWorld(estimator.sim_config(0)) as world:
        episodes = sample_episodes(world, 3, np.random.default_rng([0, 0]))
        servo = ServoConfig(tolerance=estimator.tolerance)
        results = [run_episode(world, estimator, e, servo, EpisodeConfig(time_limit=30.0)) for e in episodes]
    assert all(r.success for r in results), [(r.status, r.final_position_error) for r in results]


def test_tolerance_falls_back_to_the_control_models_recall_when_calibration_fails() -> None:
    rng = np.random.default_rng(0)
    poses = np.concatenate([rng.uniform(-0.3, 0.3, (200, 2)), rng.uniform(-0.3, 0.3, (200, 1))], axis=1)
    latents = rng.normal(size=(200, 8))  # carries no pose: no tolerance reaches 95 % precision
    result = _tolerance(latents, poses, np.zeros(200, int), BaselineHeadConfig(), 0)
    assert result["method"].startswith("fallback") and result["recall"] == BaselineHeadConfig().reference_recall
    assert result["tolerance"] > 0 and "precision" in result["calibration_error"]


# The ControlModel path of run_episode, recorded with main's run_episode before it took other servo models
# (main 93fafe8; same sampling, models/control_default, world seed 0, 20 s limit): status, final errors,
# time, path, steps, sum of latent errors.
STORED = [
    ("converged", 0.06334569499737153, 0.012136782575638438, 9.699999999999982, 1.0835803060272744, 98,
     160.5614782777213),
    ("converged", 0.030142481492512332, 0.015683484071707717, 5.799999999999995, 0.556956911085606, 59,
     69.87637537053688),
]


def test_control_model_episodes_are_unchanged() -> None:
    model = ControlModel(models_dir() / "control_default", threads=1)
    assert model.tolerance is not None
    with SimWorld(SimConfig(seed=0, image_width=16, image_height=16)) as world:
        episodes = sample_episodes(world, 2, np.random.default_rng([0, 0]))
        for episode, stored in zip(episodes, STORED, strict=True):
            r = run_episode(world, model, episode, ServoConfig(tolerance=model.tolerance), EpisodeConfig(time_limit=20.0))
            got = (r.status, r.final_position_error, r.final_yaw_error, r.time_s, r.path_length, len(r.latent_error),
                   float(sum(r.latent_error)))
            assert got[0] == stored[0] and got[5] == stored[5]
            assert got[1:5] == pytest.approx(stored[1:5], rel=1e-6, abs=1e-9)
            assert got[6] == pytest.approx(stored[6], rel=1e-6)
