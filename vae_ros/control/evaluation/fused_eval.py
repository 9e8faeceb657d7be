"""The fused camera + LiDAR model measured in the simulator's held-out worlds (issue 19, section 3).

- Reconstruction (`reconstruction_report`): the scan's range error in metres over the full turn and within the
  camera's view, and the image's PSNR, from both sensors, each alone and the other alone (cross-modal), beside
  the single-sensor models, a blind baseline (the training set's mean scan / mean image) and nearest-neighbour
  retrieval from the training set (the other sensor's reading of the training view nearest to this one).
- Control (`FusedServoModel`, `SensorDrop`): the servo's episodes (vae_ros.control.evaluation.episodes) on the
  fused latent, with a sensor cut mid-episode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError
from vae_ros.core.fused import fuse

CAMERA_HALF_FOV = math.radians(30.0)  # the simulator's camera: 60 degrees across (square image, fovy 60)
IMAGE_SIZE = 128  # px rendered: sim_node's default, preprocessed to the model's size as encoder_node does


class FusedServoModel:
    """A fused model as an episode's representation (episodes.ServoModel): the joint latent of the sensors in
    `active`, and the pose head of the joint latent (the model's servo_head.safetensors)."""

    def __init__(self, model_dir: str | Path, backend: str = "auto", threads: int | None = None,
                 goal_per_subset: bool = True) -> None:
        from vae_ros.control.runtime.control_model import calibrated_tolerance
        from vae_ros.control.runtime.pose_head import PoseHeadNumpy
        from vae_ros.core.fused import FusedModel

        self.model_dir = Path(model_dir)
        self.fused = FusedModel(self.model_dir, backend, threads=threads)
        self.head = PoseHeadNumpy.load(self.model_dir, self.fused.latent_dim)
        self.tolerance = calibrated_tolerance(self.fused.configs["scan"].training)
        self.active: set[str] = set(self.fused.sensors)
        self.drop: SensorDrop | None = None
        self.last_sensors: list[str] = sorted(self.active)
        self.goal_per_subset = goal_per_subset  # False: the goal stays the joint latent of every sensor

    @property
    def latent_dim(self) -> int:
        return self.fused.latent_dim

    def inputs(self, world: Any, sensors: Sequence[str]) -> dict[str, np.ndarray]:
        """Each sensor's preprocessed input (a batch of one) from the simulated robot's sensors now."""
        from vae_ros.core.preprocess import preprocess_image, preprocess_scan

        out = {}
        if "camera" in sensors:
            out["camera"] = preprocess_image(world.render(), self.fused.configs["camera"].image_spec)[None]
        if "scan" in sensors:
            geo = world.scan_geometry
            out["scan"] = preprocess_scan(world.scan(), geo.angle_min, geo.angle_increment, geo.range_min,
                                          geo.range_max, self.fused.configs["scan"].scan_spec)[None]
        return out

    def latent(self, world: Any) -> np.ndarray:
        sensors = self.drop.sensors() if self.drop is not None else sorted(self.active)
        first = self.drop is not None and self.drop.calls == 1  # the goal's observation
        self.last_sensors = sensors
        experts = {s: self.fused.encode_sensor(s, b) for s, b in self.inputs(world, sensors).items()}
        if first:
            self.goal_experts = experts
        mean, _ = fuse(experts)
        return np.asarray(mean[0], dtype=np.float64)

    def goal_latent(self, z_goal: np.ndarray) -> np.ndarray:
        """The goal as the sensors of the newest latent see it: the joint latent of the goal's posteriors of
        those sensors (the goal is taught with every sensor and each one's posterior kept), so that a robot that
        lost its LiDAR compares camera with camera; `z_goal` when the goal's posteriors are not known."""
        experts = getattr(self, "goal_experts", None)
        if not self.goal_per_subset or not experts or not all(s in experts for s in self.last_sensors):
            return z_goal
        mean, _ = fuse({s: experts[s] for s in self.last_sensors})
        return np.asarray(mean[0], dtype=np.float64)

    def estimate(self, z: np.ndarray, z_goal: np.ndarray) -> np.ndarray:
        return self.head.estimate(z, z_goal)

    def scan_missing(self) -> bool:
        """Whether the newest latent was made without the LiDAR (the scan safety layer then has no scan)."""
        return "scan" not in self.last_sensors


@dataclass
class SensorDrop:
    """A sensor cut `after` seconds into each episode: the first latent (the goal's) sees every sensor, then one
    latent per control step at `rate`. Reset per episode (`reset`)."""

    sensors_all: tuple[str, ...]
    cut: str | None
    after: float
    rate: float = 10.0
    calls: int = 0

    def reset(self) -> None:
        self.calls = 0

    def sensors(self) -> list[str]:
        t = (self.calls - 1) / self.rate  # call 0: the goal; call k: control step k - 1
        self.calls += 1
        if self.cut is None or self.calls == 1 or t < self.after:
            return list(self.sensors_all)
        return [s for s in self.sensors_all if s != self.cut]


# -- reconstruction --------------------------------------------------------------------------------------------
def paired_views(seeds: Sequence[int], per_seed: int, image_spec: Any, scan_spec: Any, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, scan inputs, true ranges in metres (N, beams) on the model's bins) at random free poses."""
    from vae_ros.control.training.fused import simulator_pairs

    images, scans, _ = simulator_pairs(seeds, per_seed, image_spec, scan_spec, rng, lightings=("default",),
                                       image_size=IMAGE_SIZE)
    ranges = scans[:, 0] * scan_spec.range_max
    return images, scans, np.where(scans[:, 1] > 0.5, ranges, np.nan)


def _scan_errors(pred_norm: np.ndarray, truth_m: np.ndarray, range_max: float, angles: np.ndarray) -> dict[str, float]:
    pred = np.asarray(pred_norm, dtype=np.float64).reshape(truth_m.shape) * range_max
    err = np.abs(pred - truth_m)
    ahead = np.abs(np.angle(np.exp(1j * angles))) <= CAMERA_HALF_FOV
    return {"scan_mae_m": float(np.nanmean(err)), "scan_mae_in_view_m": float(np.nanmean(err[:, ahead]))}


def _nearest(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Index of the nearest row of `pool` (squared L2) for each query."""
    q, p = np.asarray(queries, dtype=np.float64), np.asarray(pool, dtype=np.float64)
    d = (q ** 2).sum(1)[:, None] + (p ** 2).sum(1)[None, :] - 2.0 * q @ p.T
    return np.asarray(np.argmin(d, axis=1))


def _psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(pred, dtype=np.float64).reshape(truth.shape) - truth) ** 2))
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def reconstruction_report(fused_dir: Path, image_model: Path, scan_model: Path, seeds: Sequence[int],
                          per_seed: int, train_seeds: Sequence[int], train_per_seed: int, seed: int = 0,
                          backend: str = "auto", threads: int | None = None) -> dict[str, dict[str, float]]:
    """Rows: from both / scan alone / camera alone (the fused model), the single-sensor models, blind, nearest
    neighbour -> {"scan_mae_m", "scan_mae_in_view_m", "image_psnr_db"} (None where a row has no such output)."""
    from vae_ros.core.backends import create_backend, load_config
    from vae_ros.core.fused import FusedModel

    fused = FusedModel(fused_dir, backend, threads=threads)
    image_spec, scan_spec = fused.configs["camera"].image_spec, fused.configs["scan"].scan_spec
    if load_config(image_model).image_spec != image_spec or load_config(scan_model).scan_spec != scan_spec:
        raise ConfigError("the single-sensor models must take the fused model's inputs (same image and scan specs)")
    rng = np.random.default_rng(seed)
    images, scans, truth = paired_views(seeds, per_seed, image_spec, scan_spec, rng)
    train_images, train_scans, _ = paired_views(train_seeds, train_per_seed, image_spec, scan_spec, rng)
    angles = scan_spec.angle_min + (np.arange(scan_spec.beams) + 0.5) * (scan_spec.angle_max - scan_spec.angle_min) \
        / scan_spec.beams
    rows: dict[str, dict[str, Any]] = {}
    experts = {"camera": fused.encode_sensor("camera", images), "scan": fused.encode_sensor("scan", scans)}
    for name, subset in (("fused: both sensors", ("camera", "scan")), ("fused: scan alone", ("scan",)),
                         ("fused: camera alone", ("camera",))):
        z, _ = fuse({s: experts[s] for s in subset})
        rows[name] = {**_scan_errors(fused.decode("scan", z), truth, scan_spec.range_max, angles),
                      "image_psnr_db": _psnr(fused.decode("camera", z), images)}
    for name, path, modality in (("image model alone", image_model, "image"), ("scan model alone", scan_model, "scan")):
        b = create_backend(path, backend, "cpu", threads=threads)
        z, _ = b.encode(images if modality == "image" else scans)
        out = b.decode(np.asarray(z, dtype=np.float32))
        rows[name] = ({"image_psnr_db": _psnr(out, images), "scan_mae_m": None, "scan_mae_in_view_m": None}
                      if modality == "image" else {**_scan_errors(out, truth, scan_spec.range_max, angles),
                                                   "image_psnr_db": None})
    mean_image, mean_scan = train_images.mean(axis=0), train_scans[:, 0].mean(axis=0)
    rows["blind: training mean"] = {
        **_scan_errors(np.broadcast_to(mean_scan, truth.shape), truth, scan_spec.range_max, angles),
        "image_psnr_db": _psnr(np.broadcast_to(mean_image, images.shape), images)}
    # Cross-modal retrieval: the training view whose image (scan) is nearest gives its scan (image).
    nearest_by_image = _nearest(images.reshape(len(images), -1), train_images.reshape(len(train_images), -1))
    nearest_by_scan = _nearest(scans[:, 0], train_scans[:, 0])
    rows["nearest neighbour, camera -> scan"] = {
        **_scan_errors(train_scans[nearest_by_image, 0], truth, scan_spec.range_max, angles), "image_psnr_db": None}
    rows["nearest neighbour, scan -> camera"] = {
        "image_psnr_db": _psnr(train_images[nearest_by_scan], images), "scan_mae_m": None, "scan_mae_in_view_m": None}
    return rows


def demo_figure(fused_dir: Path, seeds: Sequence[int], per_seed: int, path: Path, seed: int = 0,
                backend: str = "auto", threads: int | None = None) -> Path:
    """The demo picture of cross-modal completion (vae_ros.core.plots.save_fused_demo) at `per_seed` random free
    poses of each world in `seeds`: the camera image, the image drawn from the LiDAR alone, the true scan, the scan
    predicted from the camera alone and from both sensors."""
    from vae_ros.core.fused import FusedModel
    from vae_ros.core.plots import save_fused_demo

    fused = FusedModel(fused_dir, backend, threads=threads)
    image_spec, scan_spec = fused.configs["camera"].image_spec, fused.configs["scan"].scan_spec
    images, scans, truth = paired_views(seeds, per_seed, image_spec, scan_spec, np.random.default_rng(seed))
    angles = scan_spec.angle_min + (np.arange(scan_spec.beams) + 0.5) * (scan_spec.angle_max - scan_spec.angle_min) \
        / scan_spec.beams
    experts = {"camera": fused.encode_sensor("camera", images), "scan": fused.encode_sensor("scan", scans)}

    def scan_from(subset: tuple[str, ...]) -> np.ndarray:
        z, _ = fuse({s: experts[s] for s in subset})
        return np.asarray(fused.decode("scan", z), dtype=np.float64).reshape(truth.shape) * scan_spec.range_max

    z_scan, _ = fuse({"scan": experts["scan"]})
    image_from_scan = np.asarray(fused.decode("camera", z_scan), dtype=np.float64).reshape(images.shape)
    return save_fused_demo(images, truth, angles, scan_from(("camera",)), scan_from(("camera", "scan")),
                           image_from_scan, CAMERA_HALF_FOV, path)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m vae_ros.control.evaluation.fused_eval`: the reconstruction table of a fused model."""
    import argparse
    import json

    from vae_ros.resources import models_dir

    parser = argparse.ArgumentParser(description="a fused model's reconstructions in held-out worlds, beside the "
                                                 "single-sensor models, a blind baseline and nearest neighbours")
    parser.add_argument("--model", type=Path, default=models_dir() / "fused_default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7919, 4242])
    parser.add_argument("--views", type=int, default=150, help="random free poses per world seed (150)")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=list(range(12)),
                        help="worlds of the blind baseline and the nearest-neighbour pool (0-11: the training worlds)")
    parser.add_argument("--train-views", type=int, default=100, help="views per training world (100)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="only draw the demo picture (camera image, image from the LiDAR, true scan, scan from "
                             "the camera alone and from both) of --plot-views poses per world here, no table")
    parser.add_argument("--plot-views", type=int, default=2, help="poses per world seed in --plot (2)")
    args = parser.parse_args(argv)
    if args.plot is not None:
        print(f"wrote {demo_figure(args.model, args.seeds, args.plot_views, args.plot, threads=1)}")
        return 0
    rows = reconstruction_report(args.model, models_dir() / "image_default", models_dir() / "scan_default",
                                 args.seeds, args.views, args.train_seeds, args.train_views, threads=1)
    print(f"{'':38s} {'scan MAE m':>11s} {'in view m':>10s} {'image PSNR dB':>14s}")
    for name, row in rows.items():
        cells = [f"{row[k]:.3f}" if row[k] is not None else "-" for k in ("scan_mae_m", "scan_mae_in_view_m")]
        psnr = f"{row['image_psnr_db']:.1f}" if row["image_psnr_db"] is not None else "-"
        print(f"{name:38s} {cells[0]:>11s} {cells[1]:>10s} {psnr:>14s}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
