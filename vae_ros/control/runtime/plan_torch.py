"""The planner's batched work on a torch device (world_model_node `plan_device`): planner.sequence_costs in torch.

A plan's cost is its rollouts and their scoring: every CEM candidate (150 by default, and the servo's and the
motion primitives in the first iteration) through the dynamics ensemble for the whole horizon, the pose head on
the predicted latents of every held command, the belief carried along each path, and the collision cost against
the LiDAR points. TorchPlanCosts does exactly that, in float32, on one torch device (a GPU: one batched kernel
chain per model step instead of NumPy's per-call overheads on a small CPU), with the weights copied there once.

What stays on the host, in NumPy, in both paths: the CEM itself (sampling, clipping, the rate limits, sorting,
refitting) and the rest of a plan step (look-around, the servo rollout, the detour grid). So the random draws are
the NumPy Generator's in both: the same seed gives the same candidates, and the device only scores them. The
plans are then the same as NumPy's wherever the two paths' costs (float32, the same operations in the same order,
up to the libraries' rounding: within 1e-5 relative) sort the candidates alike: test/control/test_plan_torch.py
checks several planning steps of the packaged control model for equality.

Per CEM iteration the device receives the candidates' commands (N, H, 2) and returns their costs (N,) and the
cheapest one's predicted latents: one synchronisation per iteration.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vae_ros.control.runtime.dynamics import LatentDynamics
from vae_ros.control.runtime.pose_head import combine_estimates
from vae_ros.core.errors import BackendUnavailableError

if TYPE_CHECKING:
    from vae_ros.control.runtime.planner import MpcConfig
    from vae_ros.control.runtime.pose_head import PoseHeadNumpy


def _wrap(angles: torch.Tensor) -> torch.Tensor:
    """Angles in (-pi, pi], as vae_ros.sim.geometry.wrap_angles."""
    return torch.atan2(torch.sin(angles), torch.cos(angles))


class DeviceRows:
    """Predicted latents (N, H, D) left on the device; indexing one candidate brings only its row to the host."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __getitem__(self, index: int) -> np.ndarray:
        return self.tensor[int(index)].cpu().numpy()

    def numpy(self) -> np.ndarray:
        """All of them on the host (N, H, D): for tests and benchmarks."""
        return self.tensor.cpu().numpy()


class TorchPlanCosts:
    """planner.sequence_costs on `device` for one dynamics ensemble and (for the pose cost) one pose head.

    MpcConfig(device_costs=TorchPlanCosts(...)) makes planner.plan score its candidates here."""

    def __init__(self, dynamics: LatentDynamics, head: PoseHeadNumpy | None, device: torch.device | str) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise BackendUnavailableError(f"planning on cuda was asked for, but torch {torch.__version__} ({build}) "
                                          "sees no CUDA device; set plan_device to cpu or auto")
        self.dynamics = dynamics

        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(self.device)

        self._w = [put(w) for w, _ in dynamics.layers]  # (E, in, out)
        self._b = [put(b) for _, b in dynamics.layers]  # (E, 1, out)
        self._z_mean, self._z_std = put(dynamics.z_mean), put(dynamics.z_std)
        self._a_scale, self._dz_mean, self._dz_std = put(dynamics.a_scale), put(dynamics.dz_mean), put(dynamics.dz_std)
        self.head = head
        if head is not None:  # the head's fused first layer (PoseHeadNumpy.estimate_batch) and the rest
            first_z, first_goal, first_bias, layers = head.batch_weights()
            self._first_z, self._first_goal, self._first_bias = put(first_z), put(first_goal), put(first_bias)
            self._head_layers = [(put(w_t), put(b)) for w_t, b in layers]
        self._constants: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor, np.ndarray]] = {}
        self._tensors: dict[tuple[Any, ...], torch.Tensor] = {}

    # -- the dynamics: planner's candidate split across members (LatentDynamics.rollout_split) -------------------
    def rollout_split(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z0 (D,), actions (N, H, 2) -> (N, H, D): candidate i rolls out with member i mod E."""
        n, h = actions.shape[:2]
        e, d = self.dynamics.members, self.dynamics.latent_dim
        per = -(-n // e)  # ceil
        if per * e != n:
            actions = torch.cat([actions, actions[-1:].expand(per * e - n, h, 2)])
        acts = actions.reshape(per, e, h, 2).transpose(0, 1) / self._a_scale  # (E, per, H, 2): member k rows k, k+E..
        cur = z0.expand(e, per, d)
        out = torch.empty(e, per, h, d, device=self.device)
        last = len(self._w) - 1
        for step in range(h):
            x = torch.cat([(cur - self._z_mean) / self._z_std, acts[:, :, step]], dim=-1)
            for i, (w, b) in enumerate(zip(self._w, self._b, strict=True)):
                x = torch.baddbmm(b, x, w)  # (E, per, out)
                if i < last:
                    x = torch.nn.functional.silu(x)
            cur = cur + (x[..., :d] * self._dz_std + self._dz_mean)
            out[:, :, step] = cur
        return out.transpose(0, 1).reshape(per * e, h, d)[:n]

    # -- the head: PoseHeadNumpy.estimate_batch -----------------------------------------------------------------
    def estimate_batch(self, z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """z (B, D), one goal (D,) -> (B, 3) goal poses (dx, dy, dyaw) in each latent's robot frame."""
        b = z.shape[0]
        h = z @ self._first_z + (z_goal[None] @ self._first_goal + self._first_bias)  # (B, 2H): forward | backward
        h = h.reshape(2 * b, -1)
        layers = len(self._head_layers)
        for i in range(layers):
            if i > 0:
                weight_t, bias = self._head_layers[i]
                h = h @ weight_t + bias
            if i < layers - 1:
                h = torch.relu(h)
        h = h.reshape(b, 2, -1)
        return combine_estimates(h[:, 0], h[:, 1], torch)  # forward, backward: as in NumPy

    # -- the cost ---------------------------------------------------------------------------------------------
    def _step_constants(self, config: MpcConfig, h: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        from vae_ros.control.runtime.planner import step_weights

        key = (h, config.cost, config.action_repeat, config.terminal_weight)
        if key not in self._constants:
            steps, weights = step_weights(config, h)
            self._constants[key] = (torch.from_numpy(steps).to(self.device),
                                    torch.from_numpy(weights).to(self.device), steps)
        return self._constants[key]

    def _limits(self, config: MpcConfig) -> torch.Tensor:
        """(2,) the speed limits on the device, made once per pair of limits (a parameter change makes another)."""
        key = ("limits", config.max_linear, config.max_angular)
        if key not in self._tensors:
            self._tensors[key] = torch.from_numpy(config.limits).to(self.device)
        return self._tensors[key]

    def sequence_costs(self, config: MpcConfig, z: np.ndarray, z_goal: np.ndarray, actions: np.ndarray,
                       obstacles: np.ndarray | None = None, belief: np.ndarray | None = None,
                       waypoint: np.ndarray | None = None) -> tuple[np.ndarray, DeviceRows]:
        """planner.sequence_costs (its docstring has the cost): -> (costs (N,) on the host, predicted latents
        (N, H, D) left on the device)."""
        from vae_ros.control.runtime.planner import collision_cost_radius

        dt = self.dynamics.dt
        n, h = actions.shape[:2]
        with torch.inference_mode():
            a = torch.from_numpy(np.ascontiguousarray(actions, np.float32)).to(self.device)  # (N, H, 2)
            goal = torch.from_numpy(np.asarray(z_goal, np.float32)).to(self.device)
            pred = self.rollout_split(torch.from_numpy(np.asarray(z, np.float32)).to(self.device), a)  # (N, H, D)
            steps, weights, steps_host = self._step_constants(config, h)
            positions: torch.Tensor | None = None
            if config.cost == "pose":
                scored = pred[:, steps].reshape(-1, pred.shape[-1])  # (N * S, D)
                readings = self.estimate_batch(scored, goal).reshape(n, steps_host.size, 3)
                if belief is not None:
                    positions = _kinematic_positions(a, dt)
                    carried = _goal_in_frames(torch.from_numpy(np.asarray(belief, np.float32)).to(self.device), a,
                                              positions, dt, steps)
                    gap = readings[..., :2] - carried[..., :2]
                    agree = ((torch.hypot(gap[..., 0], gap[..., 1]) < 0.3)
                             & (_wrap(readings[..., 2] - carried[..., 2]).abs() < math.radians(30.0)))
                    readings = torch.where(agree[..., None], readings, carried)
                per_step = _pose_cost(config, readings)
                if waypoint is not None:  # round what blocks the way: drive to the waypoint
                    positions = _kinematic_positions(a, dt) if positions is None else positions
                    pos = positions[:, steps]
                    per_step = torch.hypot(pos[..., 0] - float(waypoint[0]), pos[..., 1] - float(waypoint[1]))
            else:
                per_step = ((pred[:, steps] - goal) ** 2).sum(-1)  # (N, S)
            cost = (per_step * weights).sum(1)
            cost = cost + config.effort_weight * ((a / self._limits(config)) ** 2).sum((1, 2))
            if obstacles is not None and len(obstacles):
                # Only points the robot could touch within the horizon matter (picked on the host: P is small).
                reach = h * dt * config.max_linear + collision_cost_radius(config) + config.collision_speed_margin
                near_host = obstacles[(obstacles**2).sum(1) <= reach**2]
                if len(near_host):
                    near = torch.from_numpy(np.ascontiguousarray(near_host, np.float32)).to(self.device)  # (P, 2)
                    positions = _kinematic_positions(a, dt) if positions is None else positions  # (N, H, 2)
                    cross = positions.reshape(-1, 2) @ (-2.0 * near.T) + (near**2).sum(1)  # (N * H, P)
                    gap2 = torch.clamp(cross.min(1).values.reshape(n, h) + (positions**2).sum(-1), min=0.0)
                    base = collision_cost_radius(config)
                    radius = base + config.collision_speed_margin * a[..., 0].abs()  # (N, H)
                    # The speed margin is for approaching: never more than the robot's distance now.
                    nearest = float(np.sqrt((near_host**2).sum(1).min()))
                    radius = torch.clamp(radius, max=max(base, nearest))
                    cost = cost + config.collision_weight * (torch.clamp(1.0 - gap2.sqrt() / radius, min=0.0) ** 2).sum(1)
            return cost.cpu().numpy(), DeviceRows(pred)


def _kinematic_positions(actions: torch.Tensor, dt: float) -> torch.Tensor:
    """planner._kinematic_positions: (N, H, 2) commands -> (N, H, 2) robot-frame positions after each step."""
    yaw = torch.cumsum(actions[..., 1], dim=1) * dt
    heading = yaw - actions[..., 1] * dt * 0.5  # mid-step heading
    dx = actions[..., 0] * torch.cos(heading) * dt
    dy = actions[..., 0] * torch.sin(heading) * dt
    return torch.stack([torch.cumsum(dx, dim=1), torch.cumsum(dy, dim=1)], dim=-1)


def _goal_in_frames(goal: torch.Tensor, actions: torch.Tensor, positions: torch.Tensor, dt: float,
                    steps: torch.Tensor) -> torch.Tensor:
    """planner._goal_in_frames: a goal pose (3,) seen after each of `steps` of the sequences: (N, S, 3)."""
    pos = positions[:, steps]  # (N, S, 2)
    yaw = (torch.cumsum(actions[..., 1], dim=1) * dt)[:, steps]  # (N, S)
    rel = goal[:2] - pos
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack([c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1],
                        _wrap(goal[2] - yaw)], dim=-1)


def _pose_cost(config: MpcConfig, estimate: torch.Tensor) -> torch.Tensor:
    """planner.pose_cost: (..., 3) goal poses -> (...)."""
    dx, dy, dyaw = estimate[..., 0], estimate[..., 1], estimate[..., 2]
    rho = torch.hypot(dx, dy)
    bearing = torch.atan2(dy, dx).abs()
    bearing_error = torch.minimum(bearing, math.pi - bearing)  # backwards is as good as forwards
    r = max(config.near_radius, 1e-6)
    far = torch.clamp((rho - r) / r, 0.0, 1.0)
    return rho + config.heading_weight * far * bearing_error + config.yaw_weight * dyaw.abs()


def measure_plans(config: MpcConfig, costs: TorchPlanCosts, runs: int = 5) -> tuple[float, float]:
    """(median ms of planner.plan scored here in NumPy, median ms scored by `costs`), `runs` interleaved plans each
    after one warm-up, with `config`'s settings on latents drawn round the dynamics' training mean, a goal among
    them and 60 LiDAR points round the robot: what world_model_node's plan_device auto decides by."""
    import statistics
    import time
    from dataclasses import replace

    from vae_ros.control.runtime.planner import plan

    dyn = config.dynamics
    rng = np.random.default_rng(0)
    latents = (dyn.z_mean + 0.8 * dyn.z_std * rng.standard_normal((runs + 2, dyn.latent_dim))).astype(np.float32)
    angles = np.linspace(0.3, 2 * math.pi - 0.3, 60)
    obstacles = (0.9 * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(np.float32)
    configs = (replace(config, device_costs=None), replace(config, device_costs=costs))
    times: tuple[list[float], list[float]] = ([], [])
    for index in range(runs + 1):
        for config_k, times_k in zip(configs, times, strict=True):
            started = time.perf_counter()
            plan(config_k, latents[index], latents[-1], None, (0.0, 0.0), np.random.default_rng(index), obstacles)
            if index:  # the first is the warm-up (CUDA kernels load, cuBLAS starts)
                times_k.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def open_plan_costs(dynamics: LatentDynamics, head: PoseHeadNumpy | None, device: str) -> TorchPlanCosts:
    """TorchPlanCosts on `device` ("cuda" or "cpu"), with one thread where it runs on the CPU (as the NumPy and
    torch rollouts: threaded BLAS on a small loaded CPU was 10-40x slower, bench/planner.py)."""
    if device == "cpu":
        torch.set_num_threads(1)
    return TorchPlanCosts(dynamics, head, device)
