"""Training a control-fit VAE: ELBO + the pose-metric term, from bags holding a sensor topic and odometry.

    vae-ros train --bag w2 --bag w3 ... --topic scan --pose-topic odom --out models/my_control

Each bag is one recording of one world; the metric term pairs samples of the same bag only (vae_ros.
control.metric). Samples are the sensor messages, each paired with the odometry message nearest in header
stamp (within `max_pose_gap`); the sensor needs no pose at run time. Batches are neighbourhoods: an anchor
sample and samples near it in pose, plus a few from anywhere in the same recording, so that both the
fine structure near a goal and the ordering at a metre's distance are constrained.

Data is held in RAM as preprocessed arrays (a 360-beam scan is 2.9 kB: 100k samples are 290 MB). The
validation split is deterministic (vae_ros.core.data.split_of on "bag:index"); the best validation loss is
kept. After training the latent error tolerance that means "within 0.10 m and 5 deg" is calibrated on
the validation samples and stored in model.json (training.control), where latent_servo_node reads it.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae_ros.control.training.metric import (
    MetricSpec,
    calibrate_tolerance,
    latent_distance,
    metric_loss,
    pose_distance,
    spearman,
)
from vae_ros.control.training.pose_head_train import (
    HEAD_FILE,
    RelativePoseHead,
    head_loss,
    head_state,
    relative_pose_targets,
)
from vae_ros.core.config import ModelConfig
from vae_ros.core.data import split_of
from vae_ros.core.errors import ConfigError, DataError
from vae_ros.core.losses import vae_loss
from vae_ros.core.model_dir import save_model_dir
from vae_ros.core.models import VAE, build_model, parameter_count

LOG = logging.getLogger(__name__)
CURVES_FILE = "training_curves.png"
ODOMETRY = "nav_msgs/msg/Odometry"


@dataclass
class PosedSamples:
    """Preprocessed samples with their poses, from several recordings."""

    inputs: np.ndarray  # (N, *input_shape) float32
    poses: np.ndarray  # (N, 3) x, y, yaw
    groups: np.ndarray  # (N,) recording index
    keys: list[str] = field(default_factory=list)  # "bag:index", for the split
    sources: list[dict[str, Any]] = field(default_factory=list)

    def subset(self, mask: np.ndarray) -> PosedSamples:
        keys = [k for k, m in zip(self.keys, mask, strict=True) if m]
        return PosedSamples(self.inputs[mask], self.poses[mask], self.groups[mask], keys, self.sources)


def read_posed_samples(bags: list[str], topic: str, pose_topic: str, config: ModelConfig,
                       max_pose_gap: float = 0.05, progress: bool = True) -> PosedSamples:
    """Every sensor message of `topic` in each bag, preprocessed, with the nearest-stamped odometry pose."""
    from vae_ros.core.conversions.common import planar_pose
    from vae_ros.core.conversions.model_input import msg_to_model_input
    from vae_ros.core.data import BagSource, nearest_stamps, read_stamped

    inputs: list[np.ndarray] = []
    poses: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    keys: list[str] = []
    sources: list[dict[str, Any]] = []
    for group, bag in enumerate(bags):
        sensor = BagSource(bag, topic)
        sensor.check_modality(config)
        odom_topic = find_pose_topic(sensor, pose_topic)
        readings = read_stamped(sensor, {sensor.topic: lambda msg: msg_to_model_input(msg, config),
                                         odom_topic: lambda msg: planar_pose(msg.pose.pose)}, progress=progress)
        samples, odom = readings[sensor.topic].values, readings[odom_topic]
        rejected = readings[sensor.topic].rejected + odom.rejected
        if not samples or not odom.values:
            raise DataError(f"bag {bag} has no usable {topic} messages or no {pose_topic} odometry")
        odom_p = np.asarray(odom.values, dtype=np.float64)
        nearest, gap = nearest_stamps(odom.stamps, readings[sensor.topic].stamps)
        keep = gap <= max_pose_gap
        if not keep.any():
            raise DataError(f"bag {bag}: no {topic} message has {pose_topic} odometry within {max_pose_gap} s")
        kept = np.flatnonzero(keep)
        inputs.append(np.stack([samples[i] for i in kept]))
        poses.append(odom_p[nearest[kept]])
        groups.append(np.full(kept.size, group))
        keys += [sample_key(group, int(i)) for i in kept]
        sources.append({"path": str(Path(bag).resolve()), "topic": sensor.topic, "pose_topic": odom_topic,
                        "samples": int(kept.size), "without_pose": int((~keep).sum()), "rejected": rejected})
        LOG.info("%s: %d samples with poses (%d without odometry within %.2f s, %d rejected)", bag, kept.size,
                 int((~keep).sum()), max_pose_gap, rejected)
    return PosedSamples(np.concatenate(inputs), np.concatenate(poses), np.concatenate(groups), keys, sources)


def sample_key(group: int, index: int) -> str:
    """The split key of a recording's `index`-th usable sensor message ("bag:index", vae_ros.core.data.split_of):
    fused training with --pose-topic keys its pairs the same way, so both stages hold out the same scans."""
    return f"{group}:{index}"


def find_pose_topic(source: Any, topic: str) -> str:
    """The bag's name of pose topic `topic` (given with or without the leading /); DataError, in one line, when
    the bag has no such topic (its topics listed) or it is not nav_msgs/Odometry."""
    wanted = topic if topic.startswith("/") else "/" + topic
    with source._reader() as reader:
        for name, info in reader.topics.items():
            if name in (topic, wanted):
                if info.msgtype != ODOMETRY:
                    raise DataError(f"pose topic {name} in {source.path} holds {info.msgtype}, expected {ODOMETRY}")
                return str(name)
        listing = ", ".join(sorted(reader.topics))
    raise DataError(f"bag {source.path} has no pose topic {topic!r}; its topics are: {listing}")


@dataclass
class ControlTrainConfig:
    """Optimisation settings of control-fit training."""

    steps: int = 6000
    batch_size: int = 64
    neighbourhood: float = 1.3  # m: anchor neighbourhood a batch is drawn from
    far_per_batch: int = 16  # samples from anywhere in the anchor's recording
    lr: float = 2e-3  # peak of the one-cycle schedule
    beta: float = 1.0
    warmup_steps: int = 500  # KL linear warm-up
    val_percent: float = 10.0
    val_every: int = 500
    seed: int = 0
    device: str = "cpu"
    grad_clip: float = 100.0
    head_weight: float = 2000.0  # weight of the relative-pose head's regression loss
    head_hidden: tuple[int, ...] = (256, 256)
    metric: MetricSpec = field(default_factory=MetricSpec)

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 8 or not 0 <= self.far_per_batch < self.batch_size:
            raise ConfigError("steps must be >= 1, batch_size >= 8 and 0 <= far_per_batch < batch_size")
        if not (self.lr > 0 and self.neighbourhood > 0 and self.beta >= 0 and 0 < self.val_percent < 100):
            raise ConfigError("lr and neighbourhood must be > 0, beta >= 0, val_percent in (0, 100)")
        self.metric.validate()


class _Batcher:
    """Neighbourhood batches: anchor + samples within `neighbourhood` of it + a few far ones, one recording."""

    def __init__(self, data: PosedSamples, config: ControlTrainConfig, rng: np.random.Generator) -> None:
        self.data, self.config, self.rng = data, config, rng
        self.members = {int(g): np.flatnonzero(data.groups == g) for g in np.unique(data.groups)}
        self.group_ids = [g for g, m in self.members.items() if m.size >= config.batch_size]
        if not self.group_ids:
            raise DataError(f"every recording has fewer than batch_size={config.batch_size} training samples")

    def __call__(self) -> np.ndarray:
        cfg, rng = self.config, self.rng
        members = self.members[self.group_ids[rng.integers(len(self.group_ids))]]
        anchor = members[rng.integers(members.size)]
        poses = self.data.poses[members]
        near = members[np.hypot(poses[:, 0] - self.data.poses[anchor, 0],
                                poses[:, 1] - self.data.poses[anchor, 1]) <= cfg.neighbourhood]
        n_near = min(near.size, cfg.batch_size - cfg.far_per_batch)
        chosen = rng.choice(near, n_near, replace=False)
        far = rng.choice(members, cfg.batch_size - n_near, replace=False)
        return np.concatenate([chosen, far])


def _evaluate(model: VAE, head: RelativePoseHead, config: ModelConfig, data: PosedSamples, spec: MetricSpec,
              device: torch.device, rng: np.random.Generator) -> dict[str, float]:
    """Validation: ELBO terms over all samples, metric loss and distance correlation on neighbourhoods."""
    model.eval()
    head.eval()
    mus = []
    recon, kl = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, len(data.inputs), 256):
            x = torch.from_numpy(data.inputs[start:start + 256]).to(device)
            mu, logvar = model.encoder(x)
            terms = vae_loss(model.decoder(mu), x, mu, logvar, config)
            recon += float(terms.recon_nll) * len(x)
            kl += float(terms.kl) * len(x)
            mus.append(mu.cpu().numpy())
    latents = np.concatenate(mus)
    n = len(data.inputs)
    metric_values, head_values, head_pos, head_yaw, lat_d, pose_d = [], [], [], [], [], []
    for group in np.unique(data.groups):
        members = np.flatnonzero(data.groups == group)
        for _ in range(8):
            pick = rng.choice(members, min(64, members.size), replace=False)
            mu_t = torch.from_numpy(latents[pick])
            pose_t = torch.from_numpy(data.poses[pick])
            metric_values.append(float(metric_loss(mu_t, pose_t, spec)))
            with torch.no_grad():
                dist = pose_distance(pose_t, spec.yaw_weight)
                head_values.append(float(head_loss(head, mu_t.float(), pose_t.float(), dist.float())))
                near_rows, near_cols = torch.nonzero((dist < 1.0) & (dist > 0), as_tuple=True)
                if near_rows.numel():
                    out = head(mu_t[near_rows].float(), mu_t[near_cols].float())
                    target = relative_pose_targets(pose_t.float(), near_rows, near_cols)
                    head_pos.append(torch.hypot(out[:, 0] - target[:, 0], out[:, 1] - target[:, 1]).numpy())
                    err = torch.atan2(out[:, 2], out[:, 3]) - torch.atan2(target[:, 2], target[:, 3])
                    head_yaw.append(torch.rad2deg(torch.abs(torch.remainder(err + math.pi, 2 * math.pi) - math.pi)).numpy())
            rows, cols = np.triu_indices(len(pick), 1)
            lat_d.append(latent_distance(mu_t).numpy()[rows, cols])
            pose_d.append(pose_distance(pose_t, spec.yaw_weight).numpy()[rows, cols])
    lat = np.concatenate(lat_d)
    pose = np.concatenate(pose_d)
    near = pose < 1.5
    rho = spearman(lat[near], pose[near]) if near.sum() > 2 else float("nan")
    model.train()
    head.train()
    return {"val_recon_nll": recon / n, "val_kl": kl / n, "val_elbo": -(recon + kl) / n,
            "val_metric": float(np.mean(metric_values)), "val_spearman_1_5m": float(rho),
            "val_head": float(np.mean(head_values)),
            "val_head_position_m": float(np.median(np.concatenate(head_pos))) if head_pos else float("nan"),
            "val_head_yaw_deg": float(np.median(np.concatenate(head_yaw))) if head_yaw else float("nan")}


def train_control(data: PosedSamples, model_config: ModelConfig, config: ControlTrainConfig,
                  out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train, keep the best validation weights, calibrate the tolerance and write a model directory."""
    from tqdm import tqdm

    from vae_ros.core.plots import save_training_curves
    from vae_ros.core.train import select_device

    config.validate()
    model_config.validate()
    out = Path(out_dir)
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    is_val = np.array([split_of(k, config.val_percent) == "val" for k in data.keys])
    train_set, val_set = data.subset(~is_val), data.subset(is_val)
    if len(val_set.inputs) < 16:
        raise DataError(f"only {len(val_set.inputs)} validation samples: record more data")
    batcher = _Batcher(train_set, config, rng)
    inputs = torch.from_numpy(train_set.inputs)
    poses = torch.from_numpy(train_set.poses).float()

    model = build_model(model_config).to(device)
    head = RelativePoseHead(model_config.latent_dim, config.head_hidden).to(device)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=config.lr / 10)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps,
                                                   pct_start=0.1)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_head: dict[str, torch.Tensor] = {}
    started = time.perf_counter()
    window: list[tuple[float, float, float, float]] = []
    model.train()
    bar = tqdm(range(config.steps), desc="train (control)", unit="step", disable=not progress, file=sys.stderr)
    for step in bar:
        idx = torch.from_numpy(batcher())
        x = inputs[idx].to(device)
        p = poses[idx].to(device)
        mu, logvar = model.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        kl_weight = config.beta * min(1.0, step / max(1, config.warmup_steps))
        terms = vae_loss(model.decoder(z), x, mu, logvar, model_config, beta=kl_weight)
        metric = metric_loss(mu, p, config.metric)
        head_term = head_loss(head, mu, p, pose_distance(p, config.metric.yaw_weight))
        loss = terms.loss + config.metric.weight * metric + config.head_weight * head_term
        if not torch.isfinite(loss):
            raise DataError(f"training diverged at step {step} (loss {float(loss)}); lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        window.append((float(terms.recon_nll), float(terms.kl), float(metric.detach()), float(head_term.detach())))
        last = step == config.steps - 1
        if (step + 1) % config.val_every == 0 or last:
            recon, kl, met, head_value = (float(np.mean(v)) for v in zip(*window, strict=True))
            window = []
            record = {"epoch": step + 1, "train_recon_nll": recon, "train_kl": kl, "train_metric": met,
                      "train_head": head_value, "train_elbo": -(recon + kl)}
            record.update(_evaluate(model, head, model_config, val_set, config.metric, device, rng))
            score = (record["val_metric"] * config.metric.weight + record["val_head"] * config.head_weight
                     + record["val_recon_nll"] + record["val_kl"])
            record["val_loss"] = score
            history.append(record)
            improved = best is None or score < best["val_loss"]
            if improved:
                best = record
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                best_head = head_state(head)
            bar.set_postfix(metric=f"{record['val_metric']:.3f}", rho=f"{record['val_spearman_1_5m']:.3f}")
            LOG.info("step %d/%d: val metric %.4f, head %.4f (goal estimate %.3f m / %.1f deg median), "
                     "Spearman %.3f, recon %.1f, KL %.1f%s", step + 1, config.steps, record["val_metric"],
                     record["val_head"], record["val_head_position_m"], record["val_head_yaw_deg"],
                     record["val_spearman_1_5m"], record["val_recon_nll"], record["val_kl"],
                     " (best)" if improved else "")
    bar.close()
    if best_state is None or best is None:
        raise DataError("training produced no validation result")
    model.load_state_dict(best_state)
    model.eval()
    latents = encode_means(model, val_set.inputs, device)
    try:
        calibration = calibrate_tolerance(latents, val_set.poses, val_set.groups, np.random.default_rng(config.seed))
    except ConfigError as err:
        # The model is still written (it may be worth inspecting); the servo then asks for `tolerance`.
        LOG.warning("servo tolerance not calibrated: %s", err)
        calibration = {"tolerance": None, "error": str(err)}
    summary: dict[str, Any] = {
        "kind": "control",
        "sources": data.sources,
        "samples": {"train": int(len(train_set.inputs)), "val": int(len(val_set.inputs))},
        "train_config": {k: v for k, v in asdict(config).items() if k != "metric"},
        "best": best,
        "history": history,
        "parameters": parameter_count(model),
        "time_s": time.perf_counter() - started,
        "device": str(device),
        "torch_version": torch.__version__,
        "control": {"metric": asdict(config.metric), "tolerance": calibration["tolerance"],
                    "calibration": calibration},
    }
    from vae_ros.core.latent_range import LATENT_RANGE_KEY, latent_range_entry

    summary[LATENT_RANGE_KEY] = latent_range_entry(float(np.abs(latents).max()), len(latents), "validation split")
    summary["control"]["head"] = {"file": HEAD_FILE, "hidden": list(config.head_hidden),
                                  "inputs": "[z, z_goal - z]", "outputs": "dx, dy, sin dyaw, cos dyaw"}
    model_config.training = summary
    save_model_dir(out, model_config, model)
    from safetensors.torch import save_file

    save_file(best_head, str(out / HEAD_FILE))
    save_training_curves(history, out / CURVES_FILE)
    return summary


def encode_means(model: VAE, inputs: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """(N, D) latent means of preprocessed inputs."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), 512):
            mu, _ = model.encoder(torch.from_numpy(inputs[start:start + 512]).to(device))
            out.append(mu.cpu().numpy())
    return np.concatenate(out).astype(np.float64)
