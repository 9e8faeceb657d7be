"""Model-predictive control in latent space (ROS-free, pure): the cross-entropy method over a learned model.

Each step plans a sequence of `horizon` differential-drive commands (v, w), one per model step (the
dynamics' dt), that brings the predicted latent to the goal latent, and executes the first one
(receding horizon). The plan is found by the cross-entropy method (Rubinstein 1999; as in PlaNet, Hafner
et al. 2019): sample `samples` sequences from a Gaussian, roll them out through the ensemble in one batch,
refit the Gaussian to the `elites` cheapest, `iterations` times. The mean is warm-started from the last
plan shifted by one step, and the sampled first command respects the acceleration limits from the
command sent last. Candidates are split evenly across ensemble members (each member rolls out its share;
PETS' trajectory sampling), so every member's view of the dynamics is represented at the cost of one.

Cost of a sequence: mean squared latent distance to the goal over the horizon (the last step weighted by
`terminal_weight`), a small effort term, and, when obstacle points from the latest LiDAR scan are given
(robot frame), a collision penalty on the poses the commands reach by unicycle kinematics.

State is passed explicitly: `plan_step(state, z, z_goal, config) -> (state, (v, w))`; `mpc_step` has the
servo's signature shape `(state, z, z_goal, jacobian, dt, config)` so closed-loop evaluation
(vae_ros.control.episodes) can run either controller. Convergence and LOST follow the servo's rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vae_ros.control.dynamics import LatentDynamics
from vae_ros.control.servo import CONVERGED, LOST, SERVOING, verdict
from vae_ros.core.errors import ConfigError, InputError


@dataclass(frozen=True)
class MpcConfig:
    """The model and the planner's settings. Units: m, rad, s; `tolerance` in latent units."""

    dynamics: LatentDynamics = field(repr=False)
    horizon: int = 12  # model steps (each dynamics.dt seconds)
    samples: int = 400  # candidate sequences per iteration
    iterations: int = 4  # CEM refits per plan
    elites: int = 40  # cheapest candidates the Gaussian is refitted to
    max_linear: float = 0.3  # m/s
    max_angular: float = 0.8  # rad/s
    max_linear_accel: float = 0.8  # m/s^2
    max_angular_accel: float = 3.0  # rad/s^2
    init_std: float = 0.5  # initial sampling std, as a fraction of the speed limits
    min_std: float = 0.05  # floor of the refitted std, same units
    smoothing: float = 0.1  # share of the previous mean/std kept at each refit
    terminal_weight: float = 5.0
    effort_weight: float = 0.01  # per step, on commands normalised by the limits
    collision_radius: float = 0.3  # m: robot radius plus margin to any obstacle point
    collision_weight: float = 100.0
    tolerance: float = 1.0  # latent error norm that counts as converged
    settle_steps: int = 3
    resume_factor: float = 1.5
    lost_after_s: float = 20.0
    seed: int = 0

    def validate(self) -> None:
        for name in ("horizon", "samples", "iterations", "elites", "settle_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"planner {name} must be >= 1, got {getattr(self, name)}")
        if self.elites > self.samples:
            raise ConfigError(f"planner elites ({self.elites}) must not exceed samples ({self.samples})")
        for name in ("max_linear", "max_angular", "max_linear_accel", "max_angular_accel", "init_std", "min_std",
                     "tolerance", "lost_after_s", "collision_radius"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"planner {name} must be a positive number, got {value}")
        for name in ("terminal_weight", "effort_weight", "collision_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"planner {name} must be >= 0, got {value}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"planner smoothing must be in [0, 1), got {self.smoothing}")
        if self.resume_factor < 1:
            raise ConfigError("planner resume_factor must be >= 1")

    @property
    def limits(self) -> np.ndarray:
        return np.array([self.max_linear, self.max_angular], np.float32)


@dataclass(frozen=True)
class MpcState:
    """What the planner carries from step to step (the node owns it)."""

    status: str = SERVOING
    command: tuple[float, float] = (0.0, 0.0)  # last (v, w) sent
    plan: np.ndarray | None = field(default=None, repr=False)  # (H, 2) mean of the last plan
    predicted: np.ndarray | None = field(default=None, repr=False)  # (H, D) latents the plan predicts
    cost: float = math.inf  # cost of the executed plan
    step: int = 0  # plans made (seeds the sampling: the step is reproducible)
    settled: int = 0
    best_error: float = math.inf
    since_progress: float = 0.0
    error: float = math.inf  # latent error norm at the last step


def _kinematic_positions(actions: np.ndarray, dt: float) -> np.ndarray:
    """(N, H, 2) commands -> (N, H, 2) robot-frame positions after each step (unicycle, from the origin)."""
    yaw = np.cumsum(actions[..., 1], axis=1) * dt  # heading after each step
    heading = yaw - actions[..., 1] * dt * 0.5  # mid-step heading
    dx = actions[..., 0] * np.cos(heading) * dt
    dy = actions[..., 0] * np.sin(heading) * dt
    return np.stack([np.cumsum(dx, axis=1), np.cumsum(dy, axis=1)], axis=-1)


def sequence_costs(config: MpcConfig, z: np.ndarray, z_goal: np.ndarray, actions: np.ndarray,
                   obstacles: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cost of each candidate and its predicted latents: actions (N, H, 2) -> ((N,), (N, H, D)).

    Candidates are split across ensemble members (candidate i rolls out with member i mod E).
    """
    dyn = config.dynamics
    h = actions.shape[1]
    pred = dyn.rollout_split(z, actions)  # (N, H, D)
    dist = ((pred - z_goal.astype(np.float32)) ** 2).sum(-1)  # (N, H)
    weights = np.ones(h, np.float32)
    weights[-1] = config.terminal_weight
    cost = (dist * weights).sum(1) / weights.sum()
    cost += config.effort_weight * ((actions / config.limits) ** 2).sum((1, 2))
    if obstacles is not None and len(obstacles):
        # Only points the robot could touch within the horizon matter.
        reach = h * dyn.dt * config.max_linear + config.collision_radius
        near = obstacles[(obstacles**2).sum(1) <= reach**2]
        if len(near):
            pos = _kinematic_positions(actions, dyn.dt)  # (N, H, 2)
            gap2 = ((pos[:, :, None, :] - near[None, None]) ** 2).sum(-1).min(-1)  # (N, H) squared
            gap = np.sqrt(gap2)
            cost += config.collision_weight * (np.maximum(0.0, 1.0 - gap / config.collision_radius) ** 2).sum(1)
    return cost, pred


def plan(config: MpcConfig, z: np.ndarray, z_goal: np.ndarray, warm: np.ndarray | None,
         command: tuple[float, float], rng: np.random.Generator, obstacles: np.ndarray | None = None,
         ) -> tuple[np.ndarray, float, np.ndarray]:
    """CEM: -> (plan (H, 2), its cost, its predicted latents (H, D))."""
    h, limits = config.horizon, config.limits
    mean = np.zeros((h, 2), np.float32)
    if warm is not None:  # shift the last plan by one step, repeating its final command
        k = min(h, warm.shape[0] - 1)
        mean[:k] = warm[1 : k + 1]
        mean[k:] = warm[-1]
    std = np.broadcast_to(config.init_std * limits, (h, 2)).astype(np.float32)
    # Reachable first commands under the acceleration limits.
    dt = config.dynamics.dt
    first_lo = np.maximum(-limits, np.array(command, np.float32) - dt * np.array(
        [config.max_linear_accel, config.max_angular_accel], np.float32))
    first_hi = np.minimum(limits, np.array(command, np.float32) + dt * np.array(
        [config.max_linear_accel, config.max_angular_accel], np.float32))
    best = (math.inf, mean.copy(), np.zeros((h, config.dynamics.latent_dim), np.float32))
    for _ in range(config.iterations):
        eps = rng.standard_normal((config.samples, h, 2)).astype(np.float32)
        cand = mean + std * eps
        cand[0] = mean  # keep the current mean in the race
        cand[1] = 0.0  # and standing still
        cand = np.clip(cand, -limits, limits)
        cand[:, 0] = np.clip(cand[:, 0], first_lo, first_hi)
        cost, pred = sequence_costs(config, z, z_goal, cand, obstacles)
        order = np.argsort(cost)
        if cost[order[0]] < best[0]:
            best = (float(cost[order[0]]), cand[order[0]].copy(), pred[order[0]].copy())
        elites = cand[order[: config.elites]]
        new_mean = elites.mean(0)
        new_std = np.maximum(elites.std(0), config.min_std * limits)
        mean = config.smoothing * mean + (1 - config.smoothing) * new_mean
        std = config.smoothing * std + (1 - config.smoothing) * new_std
    return best[1], best[0], best[2]


def plan_step(state: MpcState, z: np.ndarray, z_goal: np.ndarray, config: MpcConfig,
              obstacles: np.ndarray | None = None) -> tuple[MpcState, tuple[float, float]]:
    """One receding-horizon step: (state, latent, goal latent, config[, obstacle points (P, 2) robot frame])
    -> (state, (v, w)). Assumes one call per model step (config.dynamics.dt seconds)."""
    dyn = config.dynamics
    z = np.asarray(z, np.float32).reshape(-1)
    z_goal = np.asarray(z_goal, np.float32).reshape(-1)
    if z.shape != (dyn.latent_dim,) or z_goal.shape != (dyn.latent_dim,):
        raise InputError(f"latent and goal must have the dynamics model's {dyn.latent_dim} dimensions, got "
                         f"{z.size} and {z_goal.size}")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(z_goal))):
        raise InputError("latent or goal latent holds NaN or inf")
    if obstacles is not None:
        obstacles = np.asarray(obstacles, np.float32).reshape(-1, 2)
    error = float(np.linalg.norm(z - z_goal))
    dt = dyn.dt
    status, settled, best, since = verdict(state, error, dt, config)
    common: dict[str, Any] = {"settled": settled, "best_error": best, "since_progress": since, "error": error,
              "step": state.step + 1}
    if status in (CONVERGED, LOST):
        return replace(state, status=status, command=(0.0, 0.0), plan=None, **common), (0.0, 0.0)
    rng = np.random.default_rng((config.seed, state.step))
    sequence, cost, predicted = plan(config, z, z_goal, state.plan, state.command, rng, obstacles)
    v, w = float(sequence[0, 0]), float(sequence[0, 1])
    return replace(state, status=status, command=(v, w), plan=sequence, predicted=predicted, cost=cost,
                   **common), (v, w)


def mpc_step(state: MpcState, z: np.ndarray, z_goal: np.ndarray, jacobian: np.ndarray | None, dt: float,
             config: MpcConfig) -> tuple[MpcState, tuple[float, float]]:
    """plan_step with the servo's signature shape (servo_step(state, z, z_goal, J, dt, cfg)).

    The interaction matrix is not needed (the model predicts); dt must match the model's step, since the
    plan is made in model steps.
    """
    del jacobian
    if not (math.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive number of seconds, got {dt}")
    if abs(dt - config.dynamics.dt) > 0.5 * config.dynamics.dt:
        raise ConfigError(f"the control period {dt:.3f} s does not match the dynamics model's step "
                          f"{config.dynamics.dt:.3f} s")
    return plan_step(state, z, z_goal, config)


def scan_obstacles(ranges: np.ndarray, angle_min: float, angle_increment: float, max_range: float = 1.5,
                   max_points: int = 90) -> np.ndarray:
    """Obstacle points (P, 2) in the sensor frame from a LaserScan's ranges: returns closer than max_range,
    thinned to at most max_points (the collision cost compares every rollout pose with every point)."""
    r = np.asarray(ranges, np.float32)
    angles = angle_min + angle_increment * np.arange(r.size, dtype=np.float32)
    keep = np.isfinite(r) & (r > 0) & (r < max_range)
    pts = np.stack([r[keep] * np.cos(angles[keep]), r[keep] * np.sin(angles[keep])], axis=1)
    if pts.shape[0] > max_points:
        pts = pts[np.linspace(0, pts.shape[0] - 1, max_points).astype(int)]
    return pts
