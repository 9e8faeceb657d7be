"""Representations of what the robot observes, for measuring how fit each is for servoing.

A representation maps observations (camera images and/or LiDAR scans taken at known poses) to vectors
z (N, D); a servo drives the latent distance |z - z*| to a goal's z* to zero. Baselines (raw pixels, a PCA
of pixels, raw scan ranges), any vae_ros model directory (through the same preprocessing and backends the
encoder node uses) and the true pose (an oracle that checks the harness) share one interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_ros.core.config import ImageSpec
from vae_ros.core.errors import ConfigError, InputError, ModelFileError
from vae_ros.core.model_dir import CONFIG_FILE
from vae_ros.core.preprocess import preprocess_image, preprocess_scan
from vae_ros.sim.world import ScanGeometry, SimConfig

if TYPE_CHECKING:
    from vae_ros.sim.world import SimWorld

SENSORS = frozenset({"camera", "scan"})
# Baseline names accepted by representation_from_name; anything else is a model directory.
BASELINES = ("pixels", "pca", "raw_scan", "pose")
PIXEL_SPEC = ImageSpec(height=64, width=64, channels=3)


def _default_scan_geometry() -> ScanGeometry:
    """The simulator's LaserScan geometry with its default configuration, without building a world."""
    from vae_ros.sim.world import SimWorld

    # SimWorld.scan_geometry reads only `config`: evaluate it on a stand-in, so the geometry is defined once.
    stand_in: Any = SimpleNamespace(config=SimConfig())
    geometry: ScanGeometry = SimWorld.scan_geometry.__get__(stand_in)
    return geometry


@dataclass
class Observations:
    """What the robot saw at N poses. Fields a representation does not need may be None."""

    images: np.ndarray | None  # (N, H, W, 3) uint8 RGB as SimWorld.render()
    scans: np.ndarray | None  # (N, beams) float32 ranges as SimWorld.scan()
    poses: np.ndarray | None = None  # (N, 3) ground truth [x, y, yaw] (m, m, rad), for oracles and plots
    scan_geometry: ScanGeometry | None = None  # of `scans`; None = the simulator's default geometry

    def __len__(self) -> int:
        for field in (self.images, self.scans, self.poses):
            if field is not None:
                return len(field)
        return 0

    def require(self, what: str) -> np.ndarray:
        """The named field ("images", "scans", "poses"), or InputError if it was not observed."""
        value = getattr(self, what)
        if value is None:
            raise InputError(f"these observations hold no {what}; observe them with the sensor that gives them")
        return np.asarray(value)

    def geometry(self) -> ScanGeometry:
        return self.scan_geometry if self.scan_geometry is not None else _default_scan_geometry()


class Representation(ABC):
    """Observations -> vectors (N, D) float64 whose Euclidean distance a servo descends."""

    name: str = ""
    sensors: frozenset[str] = frozenset()  # subset of SENSORS: what observe() must capture for encode()

    def fit(self, obs: Observations) -> None:
        """Learn from observations of training worlds (never of the evaluation grid). Default: nothing."""
        return None

    @abstractmethod
    def encode(self, obs: Observations) -> np.ndarray:
        """(N, D) float64 representation of N observations."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _pixels(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3 * 64 * 64) float32 in [0, 1]: INTER_AREA to 64x64, the image models' input."""
    return np.stack([preprocess_image(image, PIXEL_SPEC).reshape(-1) for image in images])


class PixelsRepresentation(Representation):
    """Raw 64x64 RGB pixels in [0, 1], flattened (12288-D)."""

    name = "pixels"
    sensors = frozenset({"camera"})

    def encode(self, obs: Observations) -> np.ndarray:
        return _pixels(obs.require("images")).astype(np.float64)


class PcaRepresentation(Representation):
    """The first k principal components of 64x64 pixels, fitted on images of training worlds."""

    sensors = frozenset({"camera"})

    def __init__(self, k: int = 16) -> None:
        if k < 1:
            raise ConfigError(f"PCA needs k >= 1 components, got {k}")
        self.k = k
        self.name = "pca" if k == 16 else f"pca{k}"
        self._mean: np.ndarray | None = None  # (P,)
        self._components: np.ndarray | None = None  # (k, P)

    def fit(self, obs: Observations) -> None:
        pixels = _pixels(obs.require("images"))  # (N, P)
        if len(pixels) < self.k:
            raise ConfigError(f"PCA with k={self.k} needs at least {self.k} images to fit, got {len(pixels)}")
        mean = pixels.mean(axis=0)
        centred = pixels - mean  # (N, P)
        # Principal directions from the eigenvectors of the smaller of the Gram (N x N) and covariance (P x P)
        # matrices: an order of magnitude faster than an SVD of the (N, P) data when N << P (frames vs pixels).
        if len(centred) <= centred.shape[1]:
            values, vectors = np.linalg.eigh((centred @ centred.T).astype(np.float64))  # ascending
            top = np.argsort(values)[::-1][: self.k]
            components = (centred.T.astype(np.float64) @ vectors[:, top]) / np.sqrt(np.maximum(values[top], 1e-12))
            components = components.T  # (k, P), unit rows
        else:
            values, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
            components = vectors[:, np.argsort(values)[::-1][: self.k]].T
        self._mean, self._components = mean, components

    @property
    def fitted(self) -> bool:
        return self._components is not None

    def encode(self, obs: Observations) -> np.ndarray:
        if self._mean is None or self._components is None:
            raise ConfigError("PCA representation is not fitted: call fit() on images of training worlds first")
        pixels = _pixels(obs.require("images"))
        return ((pixels - self._mean) @ self._components.T).astype(np.float64)


class RawScanRepresentation(Representation):
    """Scan ranges / range_max in [0, 1]; no return, too close and NaN read as range_max (free)."""

    name = "raw_scan"
    sensors = frozenset({"scan"})

    def encode(self, obs: Observations) -> np.ndarray:
        ranges = obs.require("scans").astype(np.float64)
        range_max = obs.geometry().range_max
        ranges = np.where(np.isfinite(ranges) & (ranges >= 0), np.minimum(ranges, range_max), range_max)
        return ranges / range_max


class PoseRepresentation(Representation):
    """The true pose [x, y, w * yaw] (an oracle): checks the harness, and is the bar for every other one."""

    name = "pose"
    sensors = frozenset()

    def __init__(self, yaw_weight: float = 1.0) -> None:
        self.yaw_weight = yaw_weight  # m per rad

    def encode(self, obs: Observations) -> np.ndarray:
        poses = obs.require("poses").astype(np.float64)
        return poses * np.array([1.0, 1.0, self.yaw_weight])


class ModelRepresentation(Representation):
    """Latent means of a vae_ros model directory (image or scan modality), preprocessed and encoded exactly as
    encoder_node does (vae_ros.core.preprocess, vae_ros.core.backends), in batches."""

    def __init__(self, model_dir: str | Path, backend: str = "auto", device: str = "cpu", batch_size: int = 256,
                 threads: int | None = None, name: str | None = None) -> None:
        from vae_ros.core.backends import create_backend, load_config

        self.model_dir = Path(model_dir)
        self.config = load_config(self.model_dir)
        modality = self.config.modality
        if modality == "image":
            self.sensors = frozenset({"camera"})
        elif modality == "scan":
            self.sensors = frozenset({"scan"})
        else:
            raise ConfigError(f"{self.model_dir}: modality {modality!r} cannot be measured here; "
                              "image and scan models can")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.name = name or self.model_dir.resolve().name
        self.batch_size = batch_size
        self.backend = create_backend(self.model_dir, backend, device, threads=threads)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def preprocess(self, obs: Observations) -> np.ndarray:
        """(N, *config.input_shape) float32: the model's input for each observation."""
        if self.config.modality == "image":
            spec = self.config.image_spec
            return np.stack([preprocess_image(image, spec) for image in obs.require("images")])
        geo = obs.geometry()
        scan_spec = self.config.scan_spec
        return np.stack([preprocess_scan(ranges, geo.angle_min, geo.angle_increment, geo.range_min, geo.range_max,
                                         scan_spec) for ranges in obs.require("scans")])

    def encode(self, obs: Observations) -> np.ndarray:
        inputs = self.preprocess(obs)
        means = [self.backend.encode(inputs[start:start + self.batch_size])[0]
                 for start in range(0, len(inputs), self.batch_size)]
        if not means:
            return np.zeros((0, self.latent_dim))
        return np.concatenate(means).astype(np.float64)


def representation_from_name(name: str, *, backend: str = "auto", device: str = "cpu", pca_components: int = 16,
                             threads: int | None = None) -> Representation:
    """"pixels", "pca", "raw_scan", "pose" (the true pose, an oracle) or a model directory (named after it).

    A model directory that does not exist as given is looked up among the packaged models by its name, so
    `models/image_default` works from any working directory.
    """
    if name == "pixels":
        return PixelsRepresentation()
    if name == "pca":
        return PcaRepresentation(pca_components)
    if name == "raw_scan":
        return RawScanRepresentation()
    if name == "pose":
        return PoseRepresentation()
    path = Path(name).expanduser()
    if not path.is_dir():
        from vae_ros.resources import models_dir

        packaged = models_dir() / path.name
        if not (packaged / CONFIG_FILE).is_file():
            raise ModelFileError(f"representation {name!r} is neither one of {', '.join(BASELINES)} nor a model "
                                 "directory")
        path = packaged
    return ModelRepresentation(path, backend=backend, device=device, threads=threads)


def sensors_of(representations: Collection[Representation]) -> frozenset[str]:
    """Every sensor some representation needs."""
    needed: frozenset[str] = frozenset()
    for rep in representations:
        needed |= rep.sensors
    unknown = needed - SENSORS
    if unknown:
        raise ConfigError(f"unknown sensors {sorted(unknown)}; expected a subset of {sorted(SENSORS)}")
    return needed


def observe(world: SimWorld, poses: np.ndarray | Sequence[Sequence[float]], sensors: Collection[str]) -> Observations:
    """Place the robot at each pose (SimWorld.set_pose) and capture what `sensors` ("camera", "scan") give.

    Poses in collision make set_pose raise ConfigError: excluding them is the caller's job. Rendering is the
    cost (tens of ms a frame), so the camera is used only when asked for.
    """
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    unknown = set(sensors) - SENSORS
    if unknown:
        raise ConfigError(f"unknown sensors {sorted(unknown)}; expected a subset of {sorted(SENSORS)}")
    images: list[np.ndarray] = []
    scans: list[np.ndarray] = []
    for x, y, yaw in poses:
        world.set_pose(float(x), float(y), float(yaw))
        if "camera" in sensors:
            images.append(world.render())
        if "scan" in sensors:
            scans.append(world.scan())
    cfg = world.config
    empty_images: Any = np.zeros((0, cfg.image_height, cfg.image_width, 3), np.uint8)
    return Observations(
        images=(np.stack(images) if images else empty_images) if "camera" in sensors else None,
        scans=(np.stack(scans) if scans else np.zeros((0, cfg.scan_beams), np.float32)) if "scan" in sensors
        else None,
        poses=poses,
        scan_geometry=world.scan_geometry,
    )
