"""Synthetic latent trajectories for the world-model tests: a unicycle whose 'latent' is its pose features."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vae_ros.control.runtime.dynamics import LatentDynamics, save_dynamics_dir
from vae_ros.control.training.dynamics import DynamicsTrainConfig, train_dynamics
from vae_ros.control.training.dynamics_data import Trajectory

DT = 0.1


def unicycle_latent(pose: np.ndarray) -> np.ndarray:
    """(N, 3) poses -> (N, 4) latents (x, y, cos yaw, sin yaw): a smooth, metric 'latent space'."""
    return np.stack([pose[:, 0], pose[:, 1], np.cos(pose[:, 2]), np.sin(pose[:, 2])], axis=1).astype(np.float32)


def unicycle_step(pose: np.ndarray, action: np.ndarray, dt: float = DT) -> np.ndarray:
    x, y, yaw = pose
    v, w = action
    mid = yaw + 0.5 * w * dt
    return np.array([x + v * math.cos(mid) * dt, y + v * math.sin(mid) * dt, yaw + w * dt])


def synthetic_trajectory(seed: int, frames: int = 600, name: str = "synthetic") -> Trajectory:
    """A random drive near the origin: commands drawn across the limits, each held for 0.3-1.5 s."""
    rng = np.random.default_rng(seed)
    pose = np.array([0.0, 0.0, rng.uniform(-math.pi, math.pi)])
    action = np.zeros(2)
    hold = 0
    poses, actions = [pose], []
    for _ in range(frames - 1):
        if hold == 0:
            action = np.array([rng.uniform(-0.35, 0.35), rng.uniform(-0.9, 0.9)])
            hold = int(rng.integers(3, 15))
            if np.hypot(pose[0], pose[1]) > 1.5:  # head back toward the centre
                action[0] = 0.3 * math.copysign(1.0, -(pose[0] * math.cos(pose[2]) + pose[1] * math.sin(pose[2])))
        hold -= 1
        actions.append(action.copy())
        pose = unicycle_step(pose, action)
        poses.append(pose)
    p = np.array(poses)
    return Trajectory(name=f"{name}{seed}", t=np.arange(frames) * DT, z=unicycle_latent(p),
                      actions=np.array(actions, np.float32), poses=p)


def trained_unicycle_dynamics(tmp: Path, steps: int = 1500) -> LatentDynamics:
    trajs = [synthetic_trajectory(s) for s in range(4)]
    config, weights, _ = train_dynamics(trajs, DynamicsTrainConfig(members=3, hidden=(64, 64), steps=steps,
                                                                   batch_size=128, lr=3e-3, seed=0))
    save_dynamics_dir(tmp, config, weights)
    return LatentDynamics(config, weights)
