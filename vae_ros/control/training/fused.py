"""Training a fused camera + LiDAR model whose joint latent is a control-fit LiDAR latent (torch).

The joint latent space is the one of a trained scan model (the packaged control model: control-fit, with its
servo head), so a robot with its LiDAR sees exactly the latent the controllers were built on. The camera gets
an expert over that same latent and the joint latent gets a camera decoder:

- the camera's expert q(z | image) is fitted to the scan expert's posterior at the same pose: the Gaussian
  negative log-likelihood of the scan posterior's mean under the camera's (mean, variance + the scan's
  variance). Its variance learns where the camera cannot tell (what is behind the robot, out of its 60 degree
  view), so the product of posteriors (vae_ros.core.fused.fuse) leans on the LiDAR there and on the camera
  where it sees. Only this term trains the camera's encoder: it must land on the joint latent, not on what
  is easy to draw.
- the camera's decoder draws the image from joint latents of every sensor subset (scan alone, camera alone,
  both: MVAE's subset training, Wu & Goodman 2018), so a LiDAR-only robot gets a predicted view.
- the scan's expert and decoder are the scan model's, unchanged.

Views under several lightings teach the camera's expert a latent that the light does not move: its target,
the LiDAR's posterior, does not see light. Data come from the simulator's worlds (`simulator_pairs`) or
from a bag with both topics (`vae-ros train --topic IMAGE --topic SCAN`: `build_from_bag`, each scan paired
with the camera frame nearest in header stamp within the sync slop).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError

LIGHTINGS = ("default", "default", "default", "dim", "bright", "side")  # drawn per view: mostly the teach light


@dataclass
class FusedTrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 5e-4
    seed: int = 0
    recon_weight: float = 1.0
    threads: int | None = None

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or not self.lr > 0:
            raise ConfigError("fused training needs epochs >= 1, batch_size >= 2 and lr > 0")


def simulator_pairs(seeds: Sequence[int], per_seed: int, image_spec: Any, scan_spec: Any,
                    rng: np.random.Generator, lightings: Sequence[str] = LIGHTINGS, image_size: int = 128,
                    log: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired camera and LiDAR model inputs at random free poses of the simulator's worlds `seeds`, the camera
    under a lighting drawn from `lightings` -> (images (N, C, H, W), scans (N, 2, beams), poses (N, 4) =
    (seed, x, y, yaw)). Images are rendered at sim_node's default size and preprocessed as encoder_node does."""
    from vae_ros.core.preprocess import preprocess_image, preprocess_scan
    from vae_ros.sim.world import SimConfig, SimWorld

    images, scans, poses = [], [], []
    for seed in seeds:
        worlds = {light: SimWorld(SimConfig(seed=int(seed), image_width=image_size, image_height=image_size,
                                            lighting=light)) for light in dict.fromkeys(lightings)}
        try:
            first = next(iter(worlds.values()))
            geo = first.scan_geometry
            count = 0
            while count < per_seed:
                x, y = rng.uniform(-2.7, 2.7, 2)
                if first.clearance(float(x), float(y)) < 0.05:
                    continue
                yaw = float(rng.uniform(-math.pi, math.pi))
                light = lightings[int(rng.integers(len(lightings)))]
                world = worlds[light]
                world.set_pose(float(x), float(y), yaw)
                first.set_pose(float(x), float(y), yaw)
                images.append(preprocess_image(world.render(), image_spec))
                scans.append(preprocess_scan(first.scan(), geo.angle_min, geo.angle_increment, geo.range_min,
                                             geo.range_max, scan_spec))
                poses.append((seed, x, y, yaw))
                count += 1
        finally:
            for world in worlds.values():
                world.close()
        if log is not None:
            log(f"world {seed}: {per_seed} paired views")
    return np.stack(images), np.stack(scans), np.asarray(poses, dtype=np.float64)


def scan_posteriors(scan_model_dir: Path, scans: np.ndarray, threads: int | None = None,
                    batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The scan model's posterior (mean, logvar) of each scan: the camera expert's target."""
    from vae_ros.core.backends import create_backend

    backend = create_backend(scan_model_dir, "auto", "cpu", threads=threads)
    means, logvars = [], []
    for i in range(0, len(scans), batch):
        m, lv = backend.encode(scans[i:i + batch])
        means.append(np.asarray(m, np.float32))
        logvars.append(np.asarray(lv, np.float32))
    return np.concatenate(means), np.concatenate(logvars)


def _fuse_torch(mu_a: Any, logvar_a: Any, mu_b: Any, logvar_b: Any) -> tuple[Any, Any]:
    """vae_ros.core.fused.fuse for two experts, in torch (training)."""
    import torch

    l_a = torch.clamp(torch.exp(-logvar_a) - 1.0, min=0.0)
    l_b = torch.clamp(torch.exp(-logvar_b) - 1.0, min=0.0)
    gain = l_a + l_b
    mean = (l_a * mu_a + l_b * mu_b + 1e-9 * 0.5 * (mu_a + mu_b)) / (gain + 1e-9)
    return mean, -torch.log1p(gain)


def train_camera_expert(images: np.ndarray, target_mean: np.ndarray, target_logvar: np.ndarray,
                        val: tuple[np.ndarray, np.ndarray, np.ndarray], camera_init: Path,
                        config: FusedTrainConfig, log: Callable[[str], None] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Fit the camera's expert and decoder (an image VAE of `camera_init`'s architecture, started from its
    weights) -> (model config, model in eval mode, training summary)."""
    import torch

    from vae_ros.core.losses import reconstruction_nll
    from vae_ros.core.model_dir import load_model_dir

    config.validate()
    say = log if log is not None else (lambda _line: None)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    model_config, model = load_model_dir(camera_init)
    if model_config.latent_dim != target_mean.shape[1]:
        raise ConfigError(f"{camera_init} has a {model_config.latent_dim}-D latent; the joint latent is "
                          f"{target_mean.shape[1]}-D")
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    m_all = torch.from_numpy(np.ascontiguousarray(target_mean, dtype=np.float32))
    lv_all = torch.from_numpy(np.ascontiguousarray(target_logvar, dtype=np.float32))
    _rescale_to_joint_latent(model, x_all[:1024], m_all)
    initial = evaluate_camera_expert(model, *val)  # the starting point, on the joint latent's scale
    say(f"before training: camera-alone latent error {initial['val_latent_error']:.3f} "
        f"(blind {initial['val_blind_latent_error']:.3f}), match NLL {initial['val_match_nll']:.2f}")
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = max(len(x_all) // config.batch_size, 1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs * steps_per_epoch)
    likelihood, obs_std = model_config.arch.likelihood, model_config.arch.obs_std
    pixels = float(np.prod(model_config.input_shape))
    history = []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(len(x_all))
        totals = torch.zeros(2)
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            x, m_s, lv_s = x_all[idx], m_all[idx], lv_all[idx]
            mu_c, lv_c = model.encode(x)
            var = torch.exp(lv_c) + torch.exp(lv_s)
            match = 0.5 * (((m_s - mu_c) ** 2) / var + torch.log(var)).sum(dim=1).mean()
            # The decoder draws the image from the joint latent of a random subset: scan, camera or both.
            with torch.no_grad():
                joint_mu, joint_lv = _fuse_torch(m_s, lv_s, mu_c, lv_c)
                subset = torch.randint(0, 3, (len(idx), 1))
                mu = torch.where(subset == 0, m_s, torch.where(subset == 1, mu_c, joint_mu))
                lv = torch.where(subset == 0, lv_s, torch.where(subset == 1, lv_c, joint_lv))
                z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            recon = reconstruction_nll(model.decode_logits(z), x, likelihood, obs_std).mean() / pixels
            loss = match + config.recon_weight * recon * pixels / 1000.0
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
            optimiser.step()
            schedule.step()
            totals += torch.stack([match.detach(), recon.detach()])
        row = {"epoch": epoch, "train_match_nll": float(totals[0]) / steps_per_epoch,
               "train_recon_nll_per_pixel": float(totals[1]) / steps_per_epoch,
               **evaluate_camera_expert(model, *val)}
        history.append(row)
        say(f"epoch {epoch}/{config.epochs}: match {row['train_match_nll']:.2f} (val {row['val_match_nll']:.2f}), "
            f"camera-alone latent error {row['val_latent_error']:.3f} (blind {row['val_blind_latent_error']:.3f}), "
            f"image PSNR scan/camera/both {row['val_psnr_scan_db']:.1f}/{row['val_psnr_camera_db']:.1f}/"
            f"{row['val_psnr_both_db']:.1f} dB ({time.perf_counter() - started:.0f} s)")
        model.train()
    model.eval()
    summary = {"history": history, "initial": initial, "final": history[-1], "time_s": time.perf_counter() - started,
               "train_config": {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
                                "seed": config.seed, "recon_weight": config.recon_weight},
               "samples": {"train": int(len(x_all)), "val": int(len(val[0]))}}
    return model_config, model, summary


def _rescale_to_joint_latent(model: Any, images: Any, joint_means: Any) -> None:
    """Start the camera model on the joint latent's scale: its encoder's output layers and its decoder's input
    layer are rescaled per dimension from the image latent's statistics (on `images`) to the joint latent's
    (`joint_means`), so decoder(z_joint) starts as the image model's decoder of a latent of its own spread.
    Without this the decoder sees inputs ~10x smaller than it was trained on and learns nothing for epochs."""
    import torch

    model.eval()
    with torch.no_grad():
        mu_img, _ = model.encode(images)
        m_i, s_i = mu_img.mean(dim=0), mu_img.std(dim=0).clamp(min=1e-3)
        m_j, s_j = joint_means.mean(dim=0), joint_means.std(dim=0).clamp(min=1e-3)
        ratio = s_j / s_i  # (D,)
        enc, dec = model.encoder, model.decoder
        # mu_joint = m_j + ratio * (W h + b - m_i)
        enc.fc_mu.weight.mul_(ratio[:, None])
        enc.fc_mu.bias.copy_(m_j + ratio * (enc.fc_mu.bias - m_i))
        enc.fc_logvar.bias.add_(2.0 * torch.log(ratio))
        # decoder input: z_img = m_i + (z_joint - m_j) / ratio
        w = dec.fc.weight.clone()
        dec.fc.bias.add_(w @ (m_i - m_j / ratio))
        dec.fc.weight.copy_(w / ratio[None, :])


def evaluate_camera_expert(model: Any, images: np.ndarray, target_mean: np.ndarray,
                           target_logvar: np.ndarray) -> dict[str, float]:
    """On held-out pairs: the camera expert's fit to the scan posterior (NLL, mean latent distance, against a
    blind expert that always says the training mean) and the image PSNR from each subset's joint mean."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        m_s = torch.from_numpy(np.ascontiguousarray(target_mean, dtype=np.float32))
        lv_s = torch.from_numpy(np.ascontiguousarray(target_logvar, dtype=np.float32))
        mu_c, lv_c = model.encode(x)
        var = torch.exp(lv_c) + torch.exp(lv_s)
        match = 0.5 * (((m_s - mu_c) ** 2) / var + torch.log(var)).sum(dim=1).mean()
        joint_mu, _ = _fuse_torch(m_s, lv_s, mu_c, lv_c)
        psnr = {}
        for name, z in (("scan", m_s), ("camera", mu_c), ("both", joint_mu)):
            mse = ((model.decode(z) - x) ** 2).flatten(1).mean(dim=1).mean()
            psnr[name] = float(10.0 * torch.log10(1.0 / mse))
    model.train(was_training)
    return {"val_match_nll": float(match),
            "val_latent_error": float(torch.linalg.norm(mu_c - m_s, dim=1).mean()),
            "val_blind_latent_error": float(torch.linalg.norm(m_s - m_s.mean(dim=0), dim=1).mean()),
            "val_psnr_scan_db": psnr["scan"], "val_psnr_camera_db": psnr["camera"], "val_psnr_both_db": psnr["both"]}


def write_fused_model(out: Path, scan_model_dir: Path, camera_config: Any, camera_model: Any,
                      training: dict[str, Any]) -> Path:
    """The fused model directory: camera/ (saved and exported to ONNX), scan/ (a copy of the scan model's
    files: model.json, weights, exports, servo head and training curves; its dynamics are not copied),
    servo_head.safetensors beside them."""
    from vae_ros.core.export import export_onnx
    from vae_ros.core.fused import FusedConfig
    from vae_ros.core.model_dir import save_model_dir
    from vae_ros.core.train import CURVES_FILE

    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; choose a new folder")
    staging = out.with_name(f".{out.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        camera_config.training = {k: v for k, v in training.items() if k != "history"}
        save_model_dir(staging / "camera", camera_config, camera_model)
        export_onnx(staging / "camera")
        (staging / "scan").mkdir()
        for name in ("model.json", "weights.safetensors", "encoder.onnx", "decoder.onnx", "servo_head.safetensors",
                     CURVES_FILE):
            if (scan_model_dir / name).is_file():
                shutil.copy2(scan_model_dir / name, staging / "scan" / name)
        if (scan_model_dir / "servo_head.safetensors").is_file():
            shutil.copy2(scan_model_dir / "servo_head.safetensors", staging / "servo_head.safetensors")
        latent_dim = int(camera_config.latent_dim)
        FusedConfig(("camera", "scan"), latent_dim, training=training).save(staging)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def build_from_simulator(out: Path, scan_model_dir: Path, camera_init: Path, seeds: Sequence[int], per_seed: int,
                         val_seeds: Sequence[int], val_per_seed: int, config: FusedTrainConfig,
                         log: Callable[[str], None] | None = None) -> Path:
    """The packaged fused model: paired views of the simulator's worlds, the camera expert fitted, written."""
    from vae_ros.core.backends import load_config

    say = log if log is not None else (lambda _line: None)
    image_spec = load_config(camera_init).image_spec
    scan_spec = load_config(scan_model_dir).scan_spec
    rng = np.random.default_rng(config.seed)
    started = time.perf_counter()
    images, scans, _ = simulator_pairs(seeds, per_seed, image_spec, scan_spec, rng, log=say)
    val_images, val_scans, _ = simulator_pairs(val_seeds, val_per_seed, image_spec, scan_spec, rng, log=say)
    mean, logvar = scan_posteriors(scan_model_dir, scans, config.threads)
    val_mean, val_logvar = scan_posteriors(scan_model_dir, val_scans, config.threads)
    say(f"{len(images)} training and {len(val_images)} held-out pairs in {time.perf_counter() - started:.0f} s")
    camera_config, model, summary = train_camera_expert(images, mean, logvar, (val_images, val_mean, val_logvar),
                                                        camera_init, config, say)
    summary["source"] = {"kind": "simulator", "seeds": [int(s) for s in seeds], "per_seed": per_seed,
                         "val_seeds": [int(s) for s in val_seeds], "val_per_seed": val_per_seed,
                         "lightings": list(dict.fromkeys(LIGHTINGS)), "scan_model": str(scan_model_dir.name),
                         "camera_init": str(camera_init.name)}
    return write_fused_model(out, scan_model_dir, camera_config, model, summary)


@dataclass
class BagPairs:
    """Camera and LiDAR model inputs of one bag, paired by header stamp."""

    images: np.ndarray  # (N, C, H, W) the camera expert's input
    scans: np.ndarray  # (N, 2, beams) the scan model's input
    keys: list[str]  # the scan's index among the bag's usable scans, for the split
    offsets_s: np.ndarray  # (N,) |camera stamp - scan stamp| of each pair
    source: dict[str, Any]  # path, topics, counts: for the training summary


def robot_namespace(topic: str, sensor: str) -> str:
    """The namespace a sensor topic sits in, without the sensor's own part: /robot1 for /robot1/scan,
    /robot1/camera/image_raw and /robot1/camera/image_raw/compressed; / for /scan and /camera/image_raw."""
    parts = [p for p in topic.split("/") if p]
    own = 1 if sensor == "scan" else (3 if parts and parts[-1] == "compressed" else 2)
    return "/" + "/".join(parts[:max(len(parts) - own, 0)])


def fused_sensor_topics(bag: str | Path, topics: Sequence[str]) -> dict[str, Any]:
    """The bag's camera and LiDAR topics for fused training -> {"camera": BagSource, "scan": BagSource}.
    DataError for a topic missing from the bag; ConfigError for anything but one camera topic (Image or
    CompressedImage) and one LaserScan, or for two sensors of different robots (sibling namespaces)."""
    from vae_ros.core.data import BagSource
    from vae_ros.core.fused import SENSOR_MODALITY

    sensor_of = {modality: sensor for sensor, modality in SENSOR_MODALITY.items()}
    if len(topics) != 2:
        raise ConfigError(f"fused training takes two --topic (a camera and a LaserScan), got {len(topics)}")
    found: dict[str, Any] = {}
    for topic in topics:
        source = BagSource(bag, topic)  # names a missing topic, with the bag's topics
        sensor = sensor_of.get(source.modality)
        if sensor is None:
            raise ConfigError(f"{source.topic} holds {source.msgtype}, which a fused model cannot take: it fuses a "
                              f"camera (sensor_msgs/Image or CompressedImage) with a LaserScan")
        if sensor in found:
            raise ConfigError(f"{found[sensor].topic} and {source.topic} are both {sensor} topics; a fused model "
                              f"takes one camera (Image or CompressedImage) and one LaserScan")
        found[sensor] = source
    camera, scan = found["camera"], found["scan"]
    spaces = {name: robot_namespace(found[name].topic, name) for name in found}
    a, b = ([p for p in spaces[name].split("/") if p] for name in ("camera", "scan"))
    if a[:len(b)] != b and b[:len(a)] != a:
        raise ConfigError(f"{camera.topic} and {scan.topic} are in different namespaces ({spaces['camera']}, "
                          f"{spaces['scan']}): sensors of different robots cannot be fused; give one robot's "
                          f"camera and LiDAR")
    return found


def pair_by_stamp(scan_ns: np.ndarray, camera_ns: np.ndarray, slop_s: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each scan with the camera frame nearest in header stamp, kept within `slop_s`; a frame pairs with one
    scan at most (the nearest), so no view lands in two pairs (or in both splits) -> (scan index (P,),
    camera index (P,), offset in seconds (P,)) in scan order. DataError, with the typical offset, when none
    pairs."""
    from vae_ros.core.data import nearest_stamps
    from vae_ros.core.errors import DataError

    camera_idx, gap = nearest_stamps(camera_ns, scan_ns)
    within = np.flatnonzero(gap <= slop_s)
    if within.size == 0:
        raise DataError(f"no camera frame within {slop_s:g} s of any scan; the median offset is "
                        f"{float(np.median(gap)):.2f} s: the sensors' clocks differ, or pass --sync-slop")
    by_frame = within[np.lexsort((gap[within], camera_idx[within]))]  # by frame, nearest scan first
    _, first = np.unique(camera_idx[by_frame], return_index=True)
    keep = np.sort(by_frame[first])
    return keep, camera_idx[keep], gap[keep]


def read_bag_pairs(bag: str | Path, topics: Sequence[str], camera_config: Any, scan_config: Any,
                   slop_s: float, progress: bool = False, key: Callable[[int], str] = str) -> BagPairs:
    """The bag's camera frames and scans, preprocessed as encoder_node does (the camera model's image spec, the
    scan model's scan spec) and paired by header stamp within `slop_s` (pair_by_stamp); each pair keyed for the
    split by `key` of its scan's index among the bag's usable scans."""
    from vae_ros.core.conversions.model_input import msg_to_model_input
    from vae_ros.core.data import read_stamped
    from vae_ros.core.errors import DataError

    if not (slop_s > 0 and math.isfinite(slop_s)):
        raise ConfigError(f"the sync slop must be a positive number of seconds, got {slop_s}")
    sources = fused_sensor_topics(bag, topics)
    camera, scan = sources["camera"], sources["scan"]
    readings = read_stamped(scan, {camera.topic: lambda msg: msg_to_model_input(msg, camera_config),
                                   scan.topic: lambda msg: msg_to_model_input(msg, scan_config)}, progress)
    frames, scans = readings[camera.topic], readings[scan.topic]
    for topic, got in ((camera.topic, frames), (scan.topic, scans)):
        if not got.values:
            raise DataError(f"bag {bag}: no usable message on {topic} ({got.rejected} rejected)")
    scan_idx, camera_idx, offsets = pair_by_stamp(scans.stamps, frames.stamps, slop_s)
    source = {"kind": "bag", "path": str(Path(bag).resolve()), "camera_topic": camera.topic,
              "scan_topic": scan.topic, "sync_slop_s": slop_s, "scans": len(scans.values),
              "camera_frames": len(frames.values), "pairs": int(scan_idx.size),
              "unpaired_scans": int(len(scans.values) - scan_idx.size),
              "rejected": {"camera": frames.rejected, "scan": scans.rejected},
              "median_offset_s": float(np.median(offsets))}
    return BagPairs(np.stack([frames.values[i] for i in camera_idx]), np.stack([scans.values[i] for i in scan_idx]),
                    [key(int(i)) for i in scan_idx], offsets, source)


def check_fused_models(scan_model_dir: Path, camera_init: Path) -> tuple[Any, Any]:
    """(scan model config, camera model config) of the joint scan model and the camera's starting model;
    ConfigError unless they are a scan and an image model of one latent size."""
    from vae_ros.core.backends import load_config

    scan_config, camera_config = load_config(scan_model_dir), load_config(camera_init)
    check_fused_configs(scan_config, camera_config, f"the joint model {scan_model_dir}", str(camera_init))
    return scan_config, camera_config


def check_fused_configs(scan_config: Any, camera_config: Any, scan_name: str, camera_name: str) -> None:
    """ConfigError unless the LiDAR expert's config is a scan model's and the camera's an image model's, of one
    latent size (`scan_name`, `camera_name` say where each came from)."""
    if scan_config.modality != "scan" or camera_config.modality != "image":
        raise ConfigError(f"the joint model must be a scan model and the camera's start an image model; got "
                          f"{scan_name} ({scan_config.modality}) and {camera_name} ({camera_config.modality})")
    if scan_config.latent_dim != camera_config.latent_dim:
        raise ConfigError(f"latent sizes differ: {scan_name} has {scan_config.latent_dim}, the camera's start "
                          f"{camera_name} has {camera_config.latent_dim}; they must be equal")


def split_bag_pairs(pairs: BagPairs, val_percent: float, log: Callable[[str], None] | None = None) -> np.ndarray:
    """The held-out mask (N,) of `pairs`: the stable split of vae_ros.core.data.split_of on each pair's key;
    DataError when either side is too small."""
    from vae_ros.core.data import split_of
    from vae_ros.core.errors import DataError

    val = np.array([split_of(key, val_percent) == "val" for key in pairs.keys], dtype=bool)
    if (~val).sum() < 2 or not val.any():
        raise DataError(f"{len(val)} pairs with --val-percent {val_percent:g} leave too few for "
                        f"{'validation' if not val.any() else 'training'}; record more or change --val-percent")
    source = pairs.source
    if log is not None:
        log(f"{source['pairs']} pairs of {source['scans']} scans and {source['camera_frames']} camera frames "
            f"(median offset {source['median_offset_s'] * 1000:.1f} ms; {int((~val).sum())} train, "
            f"{int(val.sum())} held out)")
    return val


def _check_val_percent(val_percent: float) -> None:
    if not 0.0 < val_percent < 100.0:
        raise ConfigError(f"fused training needs held-out pairs: --val-percent must be in (0, 100), got {val_percent}")


def fit_camera_to_scan_model(pairs: BagPairs, val: np.ndarray, scan_model_dir: Path, camera_init: Path,
                             config: FusedTrainConfig, log: Callable[[str], None] | None = None
                             ) -> tuple[Any, Any, dict[str, Any]]:
    """The camera's expert fitted to `scan_model_dir`'s posteriors of the paired scans (`val` held out) ->
    (camera model config, camera model, training summary with the pairs' source), for write_fused_model."""
    mean, logvar = scan_posteriors(scan_model_dir, pairs.scans[~val], config.threads)
    val_mean, val_logvar = scan_posteriors(scan_model_dir, pairs.scans[val], config.threads)
    camera_model_config, model, summary = train_camera_expert(
        pairs.images[~val], mean, logvar, (pairs.images[val], val_mean, val_logvar), camera_init, config, log)
    summary["source"] = {**pairs.source, "camera_init": str(Path(camera_init).resolve())}
    return camera_model_config, model, summary


def build_from_bag(out: Path, bag: str | Path, topics: Sequence[str], scan_model_dir: Path, camera_init: Path,
                   config: FusedTrainConfig, slop_s: float, val_percent: float, progress: bool = False,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """A fused model from a bag with a camera and a LiDAR topic: pairs by stamp, a held-out share (the stable
    split of vae_ros.core.data.split_of on each pair's key), the scan posteriors as targets, the camera's
    expert fitted, the model directory written -> the training summary (as in its model.json)."""
    config.validate()
    _check_val_percent(val_percent)
    scan_config, camera_config = check_fused_models(scan_model_dir, camera_init)
    pairs = read_bag_pairs(bag, topics, camera_config, scan_config, slop_s, progress)
    val = split_bag_pairs(pairs, val_percent, log)
    camera_model_config, model, summary = fit_camera_to_scan_model(pairs, val, scan_model_dir, camera_init, config,
                                                                   log)
    summary["source"].update(val_percent=val_percent, scan_model=str(Path(scan_model_dir).resolve()))
    write_fused_model(out, scan_model_dir, camera_model_config, model, summary)
    return summary


def build_control_fit_from_bag(out: Path, bag: str | Path, topics: Sequence[str], pose_topic: str,
                               scan_config: Any, control: Any, camera_init: Path, config: FusedTrainConfig,
                               slop_s: float, progress: bool = False,
                               log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fused model whose joint latent is trained here, from the same bag (`vae-ros train --topic CAMERA
    --topic SCAN --pose-topic ODOM`), in two stages:

    1. the LiDAR's expert: control-fit training of a scan model (`scan_config`) on the bag's scans and
       odometry, exactly as `vae-ros train --topic SCAN --pose-topic ODOM` (train_metric.train_control with
       `control`, a ControlTrainConfig): pose-metric term, servo head, calibrated tolerance, its curves;
    2. the camera's expert fitted to that new latent from the bag's camera + scan pairs (train_camera_expert).

    Both stages hold out the same scans (the split keys are train_metric.sample_key's), so the camera's held-out
    pairs are scans the LiDAR's expert never trained on. Everything the bag lacks (a topic, odometry within the
    pose gap, pairs within the slop) is found before either stage trains. -> (the fused training summary, with
    `scan_stage`: the LiDAR stage's in short, the LiDAR stage's whole summary: scan/model.json's training)."""
    from vae_ros.control.training.train_metric import (
        find_pose_topic,
        read_posed_samples,
        sample_key,
        train_control,
    )
    from vae_ros.core.backends import load_config
    from vae_ros.core.export import export_onnx

    say = log if log is not None else (lambda _line: None)
    config.validate()
    control.validate()
    _check_val_percent(control.val_percent)
    scan_config.validate()
    camera_config = load_config(camera_init)
    check_fused_configs(scan_config, camera_config, "the LiDAR expert (--latent-dim)", str(camera_init))
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; choose a new folder")
    sources = fused_sensor_topics(bag, topics)
    scan_topic = sources["scan"].topic
    odom_topic = find_pose_topic(sources["scan"], pose_topic)
    started = time.perf_counter()
    data = read_posed_samples([str(bag)], scan_topic, odom_topic, scan_config, progress=progress)
    pairs = read_bag_pairs(bag, topics, camera_config, scan_config, slop_s, progress,
                           key=lambda index: sample_key(0, index))
    val = split_bag_pairs(pairs, control.val_percent, say)
    say(f"{len(data.inputs)} scans with {odom_topic} poses; read in {time.perf_counter() - started:.0f} s")
    stage = out.with_name(f".{out.name}.scan.partial")
    if stage.exists():
        shutil.rmtree(stage)
    try:
        say(f"stage 1/2: control-fit training of the LiDAR expert on {scan_topic} with {odom_topic} poses "
            f"({control.steps} steps)")
        scan_summary = train_control(data, scan_config, control, stage, progress=progress)
        export_onnx(stage)  # the LiDAR expert runs on every backend, as the camera's does
        say(f"stage 2/2: the camera's expert fitted to the new joint latent ({config.epochs} epochs)")
        camera_model_config, model, summary = fit_camera_to_scan_model(pairs, val, stage, camera_init, config, say)
        best, calibration = scan_summary["best"], scan_summary["control"]["calibration"]
        summary["source"].update(val_percent=control.val_percent, pose_topic=odom_topic,
                                 scan_model="scan/ (control-fit from this bag)")
        summary["scan_stage"] = {
            "kind": scan_summary["kind"], "pose_topic": odom_topic, "samples": scan_summary["samples"],
            "steps": control.steps, "best": {k: best[k] for k in ("epoch", "val_metric", "val_spearman_1_5m",
                                                                  "val_recon_nll", "val_kl")},
            "tolerance": calibration.get("tolerance"), "time_s": scan_summary["time_s"],
            "device": scan_summary["device"], "summary": "scan/model.json training"}
        write_fused_model(out, stage, camera_model_config, model, summary)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return summary, scan_summary


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from vae_ros.resources import models_dir

    parser = argparse.ArgumentParser(description="build the packaged fused model from the simulator")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(12)))
    parser.add_argument("--per-seed", type=int, default=1000)
    parser.add_argument("--val-seeds", type=int, nargs="+", default=[12, 13])
    parser.add_argument("--val-per-seed", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--camera-init", type=Path, default=None,
                        help="image model directory the camera's expert starts from (default: the packaged "
                             "image_default; models/fused_default/camera trains the packaged expert further)")
    parser.add_argument("--lr", type=float, default=FusedTrainConfig.lr)
    parser.add_argument("--seed", type=int, default=FusedTrainConfig.seed)
    args = parser.parse_args(argv)
    camera_init = args.camera_init if args.camera_init is not None else models_dir() / "image_default"
    build_from_simulator(args.out, models_dir() / "control_default", camera_init, args.seeds,
                         args.per_seed, args.val_seeds, args.val_per_seed,
                         FusedTrainConfig(epochs=args.epochs, threads=args.threads, lr=args.lr, seed=args.seed),
                         log=print)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
