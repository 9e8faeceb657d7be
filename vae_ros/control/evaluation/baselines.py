"""The servo's controller on baseline representations (ROS-free): a relative-pose head per representation.

The latent servo's interaction model is the relative-pose head (vae_ros.control.runtime.pose_head): [z, z* - z] ->
the goal's (dx, dy, sin, cos dyaw) in the robot frame. To run *the same controller* on a representation that
was not trained for control (raw pixels, a PCA of pixels, a reconstruction-only VAE latent, raw scan
ranges), each gets its own head, trained on its frozen features with the control model's head recipe
(RelativePoseHead, head_loss, neighbourhood batches of one world, one-cycle Adam) on `cover` poses
(vae_ros.sim.policy.CoverPolicy) of training worlds (seeds 2-9 by default; never the evaluation seeds
0 and 1), and its own convergence tolerance calibrated like the control model's
(vae_ros.control.training.metric.calibrate_tolerance) on held-out poses of the same training worlds.

Features are the representation's vectors, standardised with training statistics: the per-dimension mean
is removed and all dimensions are divided by one scale (the RMS of their standard deviations), so the
relative scales of the representation -- and so its latent distance, which decides convergence -- are
kept. Representations wider than `max_direct_dim` (raw 64x64 pixels: 12288-D) go through a PCA front end
(`front_dim` components fitted on the training frames) first: a linear map the head's first layer could
learn, made explicit to keep the head small and its training affordable on CPU.

    estimator = train_baseline_head(representation_from_name("raw_scan"))
    z, z_goal = estimator.latent(world), ...            # what run_episode calls
    estimator.estimate(z, z_goal)                       # (dx, dy, dyaw), PoseHeadNumpy's symmetric estimate
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_ros.control.evaluation.representations import (
    Observations,
    PcaRepresentation,
    Representation,
    observe,
)
from vae_ros.control.runtime.pose_head import PoseHeadNumpy
from vae_ros.control.training.metric import (
    SUCCESS_POSITION_M,
    SUCCESS_YAW_RAD,
    calibrate_tolerance,
    pair_errors,
)
from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import wrap_angle

if TYPE_CHECKING:
    from vae_ros.sim.world import SimConfig, SimWorld

LOG = logging.getLogger(__name__)
DEFAULT_TRAIN_SEEDS = (2, 3, 4, 5, 6, 7, 8, 9)
# Recall of the packaged control model's calibrated tolerance (models/control_default, training.control.
# calibration.recall): the fallback when a baseline reaches no tolerance with the calibration's precision.
CONTROL_MODEL_RECALL = 0.143
CAMERA_IMAGE_SIZE = 64  # px: rendered frames for camera representations (the basin harness's size)
SCAN_ONLY_IMAGE_SIZE = 16  # px: the camera is not used; the smallest cheap renderer


@dataclass(frozen=True)
class BaselineHeadConfig:
    """How a baseline's head is trained and its tolerance calibrated (m, rad)."""

    batch_size: int = 64  # one anchor cluster + `far_per_batch` poses of other clusters of the same world
    far_per_batch: int = 16
    lr: float = 2e-3  # peak of the one-cycle schedule (the control model's)
    hidden: tuple[int, ...] = (256, 256)  # the control model's head
    max_direct_dim: int = 512  # wider representations go through a PCA front end ...
    front_dim: int = 64  # ... to this many components
    fit_frames: int = 2000  # training frames a PCA (the representation's or the front end's) is fitted on
    val_clusters_per_seed: int = 2  # held-out cover clusters per training world, for the head's error
    calibration_goals_per_seed: int = 6  # held-out goals per training world for the tolerance ...
    calibration_poses_per_goal: int = 30  # ... each with poses around it:
    calibration_radius: float = 0.4  # m
    calibration_yaw: float = math.radians(20.0)
    reference_recall: float = CONTROL_MODEL_RECALL

    def validate(self) -> None:
        if self.batch_size < 8 or not 0 <= self.far_per_batch < self.batch_size:
            raise ConfigError("baseline head: batch_size >= 8 and 0 <= far_per_batch < batch_size")
        if not (self.lr > 0 and self.front_dim >= 1 and self.max_direct_dim >= self.front_dim):
            raise ConfigError("baseline head: lr > 0 and 1 <= front_dim <= max_direct_dim")
        if self.calibration_goals_per_seed < 1 or self.calibration_poses_per_goal < 2:
            raise ConfigError("baseline head: at least one calibration goal with two poses per world")
        if not 0 < self.reference_recall <= 1:
            raise ConfigError("baseline head: reference_recall must be in (0, 1]")


def sim_config_for(representation: Representation, seed: int) -> SimConfig:
    """The simulator configuration a representation observes with: 64x64 frames when it uses the camera."""
    from vae_ros.sim.world import SimConfig

    size = CAMERA_IMAGE_SIZE if "camera" in representation.sensors else SCAN_ONLY_IMAGE_SIZE
    return SimConfig(seed=int(seed), image_width=size, image_height=size)


def current_observation(world: SimWorld, sensors: frozenset[str]) -> Observations:
    """What the robot senses where it stands (no pose change), as one observation."""
    pose = world.pose()
    return Observations(
        images=world.render()[None] if "camera" in sensors else None,
        scans=world.scan()[None] if "scan" in sensors else None,
        poses=np.array([[pose.x, pose.y, pose.yaw]]),
        scan_geometry=world.scan_geometry,
    )


def _subset(obs: Observations, index: np.ndarray | slice) -> Observations:
    return Observations(
        images=None if obs.images is None else obs.images[index],
        scans=None if obs.scans is None else obs.scans[index],
        poses=None if obs.poses is None else obs.poses[index],
        scan_geometry=obs.scan_geometry,
    )


def _concat(parts: Sequence[Observations]) -> Observations:
    def cat(name: str) -> np.ndarray | None:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return Observations(images=cat("images"), scans=cat("scans"), poses=cat("poses"),
                        scan_geometry=parts[0].scan_geometry if parts else None)


def _pca_basis(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (P,), components (k, P)) of rows x (N, P), through the smaller Gram matrix when N < P."""
    mean = x.mean(axis=0)
    centred = (x - mean).astype(np.float64)
    k = min(k, len(x) - 1, x.shape[1])
    if len(centred) <= centred.shape[1]:
        values, vectors = np.linalg.eigh(centred @ centred.T)
        top = np.argsort(values)[::-1][:k]
        components = (centred.T @ vectors[:, top]) / np.sqrt(np.maximum(values[top], 1e-12))
        return mean, components.T
    values, vectors = np.linalg.eigh(centred.T @ centred)
    return mean, vectors[:, np.argsort(values)[::-1][:k]].T


class BaselineEstimator:
    """A representation, its feature standardisation, its relative-pose head and its tolerance.

    Has what vae_ros.control.evaluation.episodes.run_episode needs of a servo model: `latent(world)` (the current
    observation's standardised features) and `estimate(z, z_goal)` (PoseHeadNumpy's symmetric estimate).
    """

    def __init__(self, representation: Representation, head: PoseHeadNumpy, offset: np.ndarray, scale: float,
                 front: tuple[np.ndarray, np.ndarray] | None = None, tolerance: float | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.representation = representation
        self.head = head
        self.offset = np.asarray(offset, dtype=np.float64)
        self.scale = float(scale)
        self.front = front  # (mean, components) of the PCA front end, or None
        self.tolerance = tolerance
        self.info: dict[str, Any] = info if info is not None else {}

    @property
    def name(self) -> str:
        return self.representation.name

    @property
    def sensors(self) -> frozenset[str]:
        return self.representation.sensors

    @property
    def latent_dim(self) -> int:
        return self.head.latent_dim

    def sim_config(self, seed: int) -> SimConfig:
        return sim_config_for(self.representation, seed)

    def raw_features(self, obs: Observations, chunk: int = 500) -> np.ndarray:
        """(N, F) the representation's vectors, through the PCA front end when there is one (in chunks)."""
        parts = []
        for start in range(0, len(obs), chunk):
            x = self.representation.encode(_subset(obs, slice(start, start + chunk)))
            if self.front is not None:
                x = (x - self.front[0]) @ self.front[1].T
            parts.append(np.asarray(x, dtype=np.float64))
        return np.concatenate(parts) if parts else np.zeros((0, self.latent_dim))

    def features(self, obs: Observations) -> np.ndarray:
        """(N, D) standardised features: what the servo calls the latent."""
        return (self.raw_features(obs) - self.offset) / self.scale

    def latent(self, world: SimWorld) -> np.ndarray:
        """(D,) the features of what the robot senses now."""
        return self.features(current_observation(world, self.sensors))[0]

    def estimate(self, z: np.ndarray, z_goal: np.ndarray) -> np.ndarray:
        """(3,) the goal's (dx, dy, dyaw) in the robot frame."""
        return self.head.estimate(z, z_goal)


def _cover_observations(representation: Representation, seeds: Sequence[int], count: int, first: int,
                        seed: int) -> tuple[Observations, np.ndarray]:
    """Cover poses [first, first + count) of each world seed, observed; and (N,) world index per sample."""
    from vae_ros.sim.policy import CoverPolicy
    from vae_ros.sim.world import SimWorld

    parts, groups = [], []
    for group, world_seed in enumerate(seeds):
        with SimWorld(sim_config_for(representation, world_seed)) as world:
            policy = CoverPolicy(world.clearance, seed=1000 * seed + int(world_seed))
            poses = np.array([policy.pose(i) for i in range(first, first + count)])
            parts.append(observe(world, poses, representation.sensors))
        groups.append(np.full(count, group))
    return _concat(parts), np.concatenate(groups)


def _calibration_observations(representation: Representation, seeds: Sequence[int], config: BaselineHeadConfig,
                              seed: int) -> tuple[Observations, np.ndarray]:
    """Held-out poses around held-out goals of each training world (where a converging servo is)."""
    from vae_ros.sim.world import SimWorld

    parts, groups = [], []
    for group, world_seed in enumerate(seeds):
        rng = np.random.default_rng([seed, int(world_seed), 7])
        poses: list[tuple[float, float, float]] = []
        with SimWorld(sim_config_for(representation, world_seed)) as world:
            for _ in range(config.calibration_goals_per_seed):
                for _ in range(10_000):
                    gx, gy = rng.uniform(-2.5, 2.5, size=2)
                    if world.clearance(gx, gy) >= 0.4:
                        break
                gyaw = float(rng.uniform(-math.pi, math.pi))
                placed = 0
                while placed < config.calibration_poses_per_goal:
                    r = config.calibration_radius * math.sqrt(rng.uniform())
                    a = rng.uniform(-math.pi, math.pi)
                    x, y = gx + r * math.cos(a), gy + r * math.sin(a)
                    if world.clearance(x, y) < 0.02:
                        continue
                    yaw = gyaw + float(rng.uniform(-config.calibration_yaw, config.calibration_yaw))
                    poses.append((float(x), float(y), wrap_angle(yaw)))
                    placed += 1
            parts.append(observe(world, np.array(poses), representation.sensors))
        groups.append(np.full(len(poses), group))
    return _concat(parts), np.concatenate(groups)


def _tolerance(latents: np.ndarray, poses: np.ndarray, groups: np.ndarray, config: BaselineHeadConfig,
               seed: int) -> dict[str, Any]:
    """calibrate_tolerance; when no tolerance reaches its precision, the one with the control model's recall."""
    try:
        result = calibrate_tolerance(latents, poses, groups, np.random.default_rng(seed))
        result["method"] = "calibrated"
        return result
    except ConfigError as err:
        reason = str(err)
    # Fallback: every pair within 0.6 m / 30 deg of one world; the error quantile that gives the recall.
    rows, cols = [], []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        a, b = np.triu_indices(members.size, 1)
        rows.append(members[a])
        cols.append(members[b])
    a, b = np.concatenate(rows), np.concatenate(cols)
    pos, yaw = pair_errors(poses[a], poses[b])
    keep = (pos <= 0.6) & (yaw <= math.radians(30))
    a, b, pos, yaw = a[keep], b[keep], pos[keep], yaw[keep]
    within = (pos <= SUCCESS_POSITION_M) & (yaw <= SUCCESS_YAW_RAD)
    error = np.linalg.norm(latents[a] - latents[b], axis=1)
    if not within.any():
        raise ConfigError(f"tolerance calibration failed ({reason}) and no held-out pair is within 0.10 m / 5 deg")
    tolerance = float(np.quantile(error[within], config.reference_recall))
    below = error <= tolerance
    precision = float(within[below].mean()) if below.any() else float("nan")
    LOG.warning("%s; tolerance %.4g set to the control model's recall %.3f (precision %.2f)", reason, tolerance,
                config.reference_recall, precision)
    return {"tolerance": tolerance, "precision": precision, "recall": config.reference_recall, "pairs": int(a.size),
            "method": "fallback: control model's recall", "calibration_error": reason}


def _head_error(head: PoseHeadNumpy, z: np.ndarray, poses: np.ndarray, groups: np.ndarray, rng: np.random.Generator,
                pairs: int = 2000, radius: float = 1.0) -> dict[str, float]:
    """Median / p90 of the symmetric estimate's position (m) and yaw (deg) error on held-out pairs < radius."""
    a_all, b_all = [], []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        grid_a, grid_b = np.meshgrid(members, members, indexing="ij")
        a, b = grid_a.ravel(), grid_b.ravel()
        pos, _ = pair_errors(poses[a], poses[b])
        keep = (a != b) & (pos < radius)
        a_all.append(a[keep])
        b_all.append(b[keep])
    a, b = np.concatenate(a_all), np.concatenate(b_all)
    if a.size == 0:
        return {}
    pick = rng.choice(a.size, min(pairs, a.size), replace=False)
    pos_err, yaw_err = [], []
    for i, j in zip(a[pick], b[pick], strict=True):
        dx, dy, dyaw = head.estimate(z[i], z[j])
        c, s = math.cos(poses[i, 2]), math.sin(poses[i, 2])
        tx = c * (poses[j, 0] - poses[i, 0]) + s * (poses[j, 1] - poses[i, 1])
        ty = -s * (poses[j, 0] - poses[i, 0]) + c * (poses[j, 1] - poses[i, 1])
        pos_err.append(math.hypot(dx - tx, dy - ty))
        yaw_err.append(abs(math.degrees(wrap_angle(dyaw - (poses[j, 2] - poses[i, 2])))))
    return {"position_m_median": float(np.median(pos_err)), "position_m_p90": float(np.percentile(pos_err, 90)),
            "yaw_deg_median": float(np.median(yaw_err)), "yaw_deg_p90": float(np.percentile(yaw_err, 90)),
            "pairs": int(len(pos_err))}


def train_baseline_head(representation: Representation, train_seeds: Sequence[int] = DEFAULT_TRAIN_SEEDS,
                        poses_per_seed: int = 1000, steps: int = 2000, seed: int = 0,
                        config: BaselineHeadConfig | None = None,
                        log: Callable[[str], None] | None = None) -> BaselineEstimator:
    """Observe cover poses of `train_seeds`, fit the representation (PCA) and a head; calibrate a tolerance."""
    import time

    import torch

    from vae_ros.control.training.metric import pose_distance
    from vae_ros.control.training.pose_head_train import RelativePoseHead, head_loss
    from vae_ros.sim.policy import CoverConfig

    config = config if config is not None else BaselineHeadConfig()
    config.validate()
    seeds = [int(s) for s in train_seeds]
    if not seeds or steps < 1 or poses_per_seed < config.batch_size:
        raise ConfigError(f"baseline head: needs training seeds, steps >= 1 and poses_per_seed >= "
                          f"{config.batch_size}")
    say = log if log is not None else LOG.info
    started = time.perf_counter()
    per_anchor = CoverConfig().per_anchor
    val_count = config.val_clusters_per_seed * per_anchor
    # Training and held-out cover clusters in one pass per world (cluster indices continue past training).
    obs, groups = _cover_observations(representation, seeds, poses_per_seed + val_count, 0, seed)
    index = np.arange(len(obs)) % (poses_per_seed + val_count)
    train_mask = index < poses_per_seed
    train_obs, val_obs = _subset(obs, train_mask), _subset(obs, ~train_mask)
    train_groups, val_groups = groups[train_mask], groups[~train_mask]
    cal_obs, cal_groups = _calibration_observations(representation, seeds, config, seed)
    rng = np.random.default_rng(seed)
    fit_pick = np.sort(rng.choice(len(train_obs), min(config.fit_frames, len(train_obs)), replace=False))
    if isinstance(representation, PcaRepresentation) and not representation.fitted:
        representation.fit(_subset(train_obs, fit_pick))
    say(f"{representation.name}: observed {len(obs) + len(cal_obs)} poses of world seeds "
        f"{' '.join(map(str, seeds))} in {time.perf_counter() - started:.0f} s")

    estimator = BaselineEstimator(representation, PoseHeadNumpy([], 0), np.zeros(0), 1.0)
    probe = estimator.raw_features(_subset(train_obs, slice(0, 2)))
    if probe.shape[1] > config.max_direct_dim:
        fit_x = representation.encode(_subset(train_obs, fit_pick))
        estimator.front = _pca_basis(fit_x, config.front_dim)
        del fit_x
    x_train = estimator.raw_features(train_obs)
    offset = x_train.mean(axis=0)
    scale = float(np.sqrt(np.mean(x_train.var(axis=0)))) or 1.0
    estimator.offset, estimator.scale = offset, scale
    z_train = (x_train - offset) / scale
    dim = z_train.shape[1]

    torch.manual_seed(seed)
    head = RelativePoseHead(dim, config.hidden)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr / 10)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.1)
    z_t = torch.from_numpy(z_train).float()
    p_t = torch.from_numpy(np.asarray(train_obs.poses)).float()
    cluster = index[train_mask] // per_anchor + 10_000 * train_groups  # one id per (world, cluster)
    clusters = {int(c): np.flatnonzero(cluster == c) for c in np.unique(cluster)}
    worlds = {int(g): np.flatnonzero(train_groups == g) for g in np.unique(train_groups)}
    ids = list(clusters)
    losses = []
    for _ in range(steps):
        members = clusters[ids[rng.integers(len(ids))]]
        near = rng.choice(members, min(members.size, config.batch_size - config.far_per_batch), replace=False)
        world = worlds[int(train_groups[members[0]])]
        far = rng.choice(world, config.batch_size - near.size, replace=False)
        batch = torch.from_numpy(np.concatenate([near, far]))
        p = p_t[batch]
        loss = head_loss(head, z_t[batch], p, pose_distance(p, 1.0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    layers = [(m.weight.detach().double().numpy().copy(), m.bias.detach().double().numpy().copy())
              for m in head.net if isinstance(m, torch.nn.Linear)]
    estimator.head = PoseHeadNumpy(layers, dim)

    z_val = estimator.features(val_obs)
    head_error = _head_error(estimator.head, z_val, np.asarray(val_obs.poses), val_groups, rng)
    z_cal = estimator.features(cal_obs)
    calibration = _tolerance(z_cal, np.asarray(cal_obs.poses), cal_groups, config, seed)
    estimator.tolerance = float(calibration["tolerance"])
    estimator.info = {
        "representation": representation.name, "train_seeds": seeds, "poses_per_seed": poses_per_seed,
        "steps": steps, "seed": seed, "features": int(probe.shape[1]) if estimator.front is None else
        f"{representation.encode(_subset(train_obs, slice(0, 1))).shape[1]} -> PCA {dim}",
        "latent_dim": dim, "scale": scale, "final_train_loss": float(np.mean(losses[-100:])),
        "head_error_held_out": head_error, "calibration": calibration, "tolerance": estimator.tolerance,
        "seconds": round(time.perf_counter() - started, 1), "config": asdict(config),
    }
    say(f"{representation.name}: head trained ({steps} steps, {dim}-D features): held-out goal estimate "
        f"{head_error.get('position_m_median', float('nan')) * 100:.1f} cm / "
        f"{head_error.get('yaw_deg_median', float('nan')):.1f} deg median; tolerance {estimator.tolerance:.4g} "
        f"({calibration['method']}, precision {calibration['precision']:.2f}, recall {calibration['recall']:.2f}); "
        f"{time.perf_counter() - started:.0f} s")
    return estimator
