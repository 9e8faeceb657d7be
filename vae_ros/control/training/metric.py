"""The pose-metric term that makes a latent space fit for servoing, and its calibration (ROS-free).

A reconstruction-trained latent is no better than raw sensor data for servoing: its distance to a goal
has local minima a short way from the goal. The metric term ties latent distance to SE(2) pose distance,

    d_pose(i, j) = sqrt(|p_i - p_j|^2 + (w * wrap(yaw_i - yaw_j))^2)        (w: yaw weight, m per rad)
    L_metric = mean over pairs with d_pose < radius of (|mu_i - mu_j| - s * d_pose)^2 / (d_pose + c)

so that descending the latent distance descends the pose distance (in the spirit of metric/contrastive
representation learning for control, e.g. Sermanet et al. 2018 "Time-Contrastive Networks" and
DrLIM, Hadsell et al. 2006, with pose from odometry as the supervision). The 1 / (d + c) weight makes the
relation hold at small distances too, where convergence is decided. Pairs are only formed within one
recording (one world): poses from different bags are unrelated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import wrap_angles

if TYPE_CHECKING:  # the losses run in training only; the servo imports the thresholds without torch
    import torch

SUCCESS_POSITION_M = 0.10
SUCCESS_YAW_RAD = math.radians(5.0)


@dataclass(frozen=True)
class MetricSpec:
    """The metric term's settings; stored in model.json under training.control.metric."""

    weight: float = 300.0  # multiplies L_metric in the loss (reconstruction NLL is summed over the input)
    yaw_weight: float = 1.0  # m per rad in d_pose
    scale: float = 1.0  # latent units per metre of d_pose
    radius: float = 2.5  # m: pairs farther apart are not constrained
    offset: float = 0.1  # c in the 1 / (d + c) weight, m

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"metric {name} must be a positive number, got {value}")


def pose_distance(poses: torch.Tensor, yaw_weight: float) -> torch.Tensor:
    """(B, B) d_pose between all pairs of poses (B, 3) = (x, y, yaw)."""
    import torch

    dx = poses[:, None, 0] - poses[None, :, 0]
    dy = poses[:, None, 1] - poses[None, :, 1]
    dyaw = torch.remainder(poses[:, None, 2] - poses[None, :, 2] + math.pi, 2 * math.pi) - math.pi
    return torch.sqrt(dx * dx + dy * dy + (yaw_weight * dyaw) ** 2 + 1e-12)


def latent_distance(mu: torch.Tensor) -> torch.Tensor:
    """(B, B) Euclidean distances between latent means (B, D); differentiable at zero."""
    import torch

    return torch.sqrt(((mu[:, None, :] - mu[None, :, :]) ** 2).sum(-1) + 1e-9)


def metric_loss(mu: torch.Tensor, poses: torch.Tensor, spec: MetricSpec) -> torch.Tensor:
    """L_metric over the upper-triangle pairs of a batch from one recording."""
    import torch

    batch = mu.shape[0]
    rows, cols = torch.triu_indices(batch, batch, 1, device=mu.device)
    d_pose = pose_distance(poses, spec.yaw_weight)[rows, cols]
    d_lat = latent_distance(mu)[rows, cols]
    near = d_pose < spec.radius
    if not bool(near.any()):
        return mu.sum() * 0.0
    residual = (d_lat - spec.scale * d_pose)[near]
    return (residual * residual / (d_pose[near] + spec.offset)).mean()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (ties broken by order; fine for continuous values)."""
    rank_a = np.argsort(np.argsort(a)).astype(np.float64)
    rank_b = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def pair_errors(poses_a: np.ndarray, poses_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (m) and absolute yaw (rad) errors between matching rows of two (N, 3) pose arrays."""
    pos = np.hypot(poses_a[:, 0] - poses_b[:, 0], poses_a[:, 1] - poses_b[:, 1])
    yaw = np.abs(wrap_angles(poses_a[:, 2] - poses_b[:, 2]))
    return pos, yaw


def calibrate_tolerance(latents: np.ndarray, poses: np.ndarray, groups: np.ndarray, rng: np.random.Generator,
                        precision: float = 0.95, pairs: int = 200_000) -> dict[str, Any]:
    """The latent error below which two observations are within 0.10 m and 5 deg, with `precision`.

    Samples pairs within a group (a recording) that are at most 0.6 m / 30 deg apart, the region where
    a converging servo is. Returns the tolerance with the precision and recall it achieves on them.
    """
    latents = np.asarray(latents, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    idx_a, idx_b = [], []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        if members.size < 2:
            continue
        a = rng.choice(members, pairs // max(1, len(np.unique(groups))))
        b = rng.choice(members, a.size)
        pos, yaw = pair_errors(poses[a], poses[b])
        keep = (a != b) & (pos <= 0.6) & (yaw <= math.radians(30))
        # Pairs at random are rarely close: add each sample's nearest neighbours in pose too.
        idx_a.append(a[keep])
        idx_b.append(b[keep])
        sub = poses[members]
        for i in rng.choice(members.size, min(members.size, 2000), replace=False):
            pos_i, yaw_i = pair_errors(np.repeat(sub[i:i + 1], members.size, 0), sub)
            close = np.flatnonzero((pos_i <= 0.3) & (yaw_i <= math.radians(15)))
            close = close[close != i]
            idx_a.append(np.full(close.size, members[i]))
            idx_b.append(members[close])
    if not idx_a:
        raise ConfigError("tolerance calibration needs recordings with at least two samples")
    a = np.concatenate(idx_a)
    b = np.concatenate(idx_b)
    if a.size < 100:
        raise ConfigError(f"tolerance calibration found only {a.size} nearby pairs; record denser data")
    pos, yaw = pair_errors(poses[a], poses[b])
    within = (pos <= SUCCESS_POSITION_M) & (yaw <= SUCCESS_YAW_RAD)
    error = np.linalg.norm(latents[a] - latents[b], axis=1)
    order = np.argsort(error)
    hits = np.cumsum(within[order])
    prec = hits / np.arange(1, order.size + 1)
    ok = np.flatnonzero(prec >= precision)
    # The largest error whose running precision still meets the target (skip the first few noisy ranks).
    ok = ok[ok >= 9]
    if ok.size == 0:
        raise ConfigError(f"no latent tolerance reaches {precision:.0%} precision; the latent does not "
                          "separate poses within 0.10 m / 5 deg")
    cut = int(ok[-1])
    tolerance = float(error[order[cut]])
    recall = float(hits[cut] / max(1, within.sum()))
    return {"tolerance": tolerance, "precision": float(prec[cut]), "recall": recall, "pairs": int(a.size),
            "rule": f"largest latent error whose pairs are within {SUCCESS_POSITION_M} m and "
                    f"{math.degrees(SUCCESS_YAW_RAD):.0f} deg with >= {precision:.0%} precision"}
