"""A fused camera + LiDAR model: one joint latent from either sensor or both (ROS-free; no torch at import).

A fused model is a model directory that holds one complete model directory per sensor:

    model.json                {"format_version": 1, "modality": "fused", "sensors": ["camera", "scan"],
                               "latent_dim": 16, "fusion": "product of posteriors", "training": {...}}
    camera/                   an image model directory (model.json, weights.safetensors, encoder.onnx, ...):
                              its encoder is the camera's expert q(z | image), its decoder draws the image from z
    scan/                     a scan model directory: the LiDAR's expert q(z | scan) and its decoder
    servo_head.safetensors    (optional) the relative-pose head of the joint latent, for the controllers

so every runtime (torch, ONNX Runtime, TensorRT), every export and every file check of a single-sensor model
serves each sensor of a fused one, and nothing is unpickled.

The joint posterior (MVAE, Wu & Goodman 2018: a product of experts). Each expert is a posterior over the same
latent under the same standard-normal prior, so each adds l_i = p_i - 1 of precision beyond the prior
(p_i = 1 / sigma_i^2, clipped at the prior's 1: a posterior is never wider than its prior). The joint
posterior of any non-empty subset of sensors has

    precision = 1 + sum_i l_i,          mean = sum_i l_i mu_i / sum_i l_i

the product of the posteriors divided by the prior once for each expert beyond the first, with each expert's
mean weighted by the information it adds. A sensor alone gives exactly its own posterior; two agreeing
sensors a sharper one; a sensor that knows little about a dimension (l_i near 0) moves it little, and one no
sharper than the prior not at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError, InputError, ModelFileError

FUSED_MODALITY = "fused"
FUSED_FORMAT_VERSION = 1
CONFIG_FILE = "model.json"
# The sensors a fused model may combine, in the order model.json lists them, and the modality of each one's
# model directory.
SENSOR_MODALITY = {"camera": "image", "scan": "scan"}
# Seconds between two sensors' header stamps that still pair: encoder_node's `sync_slop` default and
# `vae-ros train --sync-slop`'s (a 10 Hz LiDAR and a 30 Hz camera are never stamped identically).
SYNC_SLOP_S = 0.05
MAX_PAIR_SLOP_S = 1.0  # encoder_node's sync_slop range ends here
MAX_LOGVAR = 30.0  # |log sigma^2| beyond this is not a posterior (exp overflows float32 near 88)


def is_fused_model(model_dir: str | Path) -> bool:
    """Whether `model_dir` is a fused model directory (its model.json says modality "fused")."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        return False
    from vae_ros.core.config import read_json_object

    try:
        return read_json_object(path).get("modality") == FUSED_MODALITY
    except (ModelFileError, OSError, ValueError):
        return False


@dataclass(frozen=True)
class FusedConfig:
    """model.json of a fused model directory."""

    sensors: tuple[str, ...]
    latent_dim: int
    fusion: str = "product of posteriors"
    training: dict[str, Any] = field(default_factory=dict)
    format_version: int = FUSED_FORMAT_VERSION

    def validate(self) -> None:
        if not self.sensors or len(set(self.sensors)) != len(self.sensors):
            raise ConfigError(f"a fused model needs distinct sensors, got {list(self.sensors)}")
        unknown = [s for s in self.sensors if s not in SENSOR_MODALITY]
        if unknown:
            raise ConfigError(f"fused model sensors must be among {', '.join(SENSOR_MODALITY)}, got {unknown}")
        if not (isinstance(self.latent_dim, int) and self.latent_dim >= 1):
            raise ConfigError(f"fused model latent_dim must be a positive integer, got {self.latent_dim!r}")
        if self.format_version != FUSED_FORMAT_VERSION:
            raise ConfigError(f"fused model format_version {self.format_version} is not supported "
                              f"(this vae_ros reads {FUSED_FORMAT_VERSION})")

    @property
    def pair_slop_s(self) -> float:
        """Seconds between a camera frame's and a scan's stamps that pair, for this model's sensors: the slop its
        training recording was paired with (`vae-ros train --sync-slop`, in the training summary's source), else
        SYNC_SLOP_S (a model trained in the simulator, or one whose record holds no usable figure)."""
        source = self.training.get("source")
        slop = source.get("sync_slop_s") if isinstance(source, dict) else None
        if isinstance(slop, (int, float)) and not isinstance(slop, bool) and 0 < slop <= MAX_PAIR_SLOP_S:
            return float(slop)
        return SYNC_SLOP_S

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": self.format_version, "modality": FUSED_MODALITY, "sensors": list(self.sensors),
                "latent_dim": self.latent_dim, "fusion": self.fusion, "training": self.training}

    def save(self, model_dir: str | Path) -> None:
        path = Path(model_dir) / CONFIG_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)


def load_fused_config(model_dir: str | Path) -> FusedConfig:
    """model.json of a fused model, checked against the sensors' own model directories (each present, of its
    sensor's modality and of the joint latent size). One clear error otherwise."""
    from vae_ros.core.backends import load_config
    from vae_ros.core.config import read_json_object

    root = Path(model_dir)
    if not root.is_dir():
        raise ModelFileError(f"model directory {root} does not exist or is not a directory")
    raw = read_json_object(root / CONFIG_FILE)
    if raw.get("modality") != FUSED_MODALITY:
        raise ModelFileError(f"{root / CONFIG_FILE}: modality is {raw.get('modality')!r}, not {FUSED_MODALITY!r}")
    sensors, latent_dim = raw.get("sensors"), raw.get("latent_dim")
    if not isinstance(sensors, list) or not all(isinstance(s, str) for s in sensors):
        raise ModelFileError(f"{root / CONFIG_FILE}: `sensors` must be a list of sensor names")
    try:
        config = FusedConfig(tuple(sensors), latent_dim if isinstance(latent_dim, int) else -1,
                             str(raw.get("fusion", "product of posteriors")), dict(raw.get("training") or {}),
                             int(raw.get("format_version", FUSED_FORMAT_VERSION)))
        config.validate()
    except ConfigError as err:
        raise ModelFileError(f"{root / CONFIG_FILE}: {err}") from err
    for sensor in config.sensors:
        sub = root / sensor
        sub_config = load_config(sub)
        if sub_config.modality != SENSOR_MODALITY[sensor]:
            raise ModelFileError(f"{sub}: the {sensor} expert must be a {SENSOR_MODALITY[sensor]} model, "
                                 f"got {sub_config.modality}")
        if sub_config.latent_dim != config.latent_dim:
            raise ModelFileError(f"{sub}: latent size {sub_config.latent_dim} is not the fused model's "
                                 f"{config.latent_dim}")
    return config


def fused_weights_digest(model_dir: str | Path, sensors: Sequence[str]) -> str:
    """One SHA-256 for a fused model: of its sensors' weight digests in order (routes and dynamics record it)."""
    import hashlib

    from vae_ros.core.backends import weights_digest

    digest = hashlib.sha256()
    for sensor in sensors:
        digest.update(f"{sensor}:{weights_digest(Path(model_dir) / sensor)}\n".encode())
    return digest.hexdigest()


def fuse(experts: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """{sensor: (mean (B, D) or (D,), logvar)} of one or more experts -> the joint (mean, logvar): precision
    1 + sum l_i, mean sum l_i mu_i / sum l_i, l_i = max(1 / sigma_i^2 - 1, 0) (module docstring)."""
    if not experts:
        raise InputError("fusing needs at least one sensor's posterior")
    means: list[np.ndarray] = []
    gains: list[np.ndarray] = []
    shape = None
    for sensor, (mean, logvar) in experts.items():
        mean = np.asarray(mean, dtype=np.float64)
        logvar = np.asarray(logvar, dtype=np.float64)
        if shape is None:
            shape = mean.shape
        if mean.shape != shape or logvar.shape != shape:
            raise InputError(f"{sensor}: posterior of shape {mean.shape} / {logvar.shape}, expected {shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(logvar))):
            raise InputError(f"{sensor}: posterior holds NaN or inf")
        means.append(mean)
        gains.append(np.maximum(np.exp(-np.clip(logvar, -MAX_LOGVAR, MAX_LOGVAR)) - 1.0, 0.0))
    gain = np.sum(gains, axis=0)
    # Where no expert adds anything beyond the prior, their plain average (each is the prior's mean then).
    tiny = 1e-9
    mean = (np.sum([g * m for g, m in zip(gains, means, strict=True)], axis=0) + tiny * np.mean(means, axis=0)) \
        / (gain + tiny)
    return mean.astype(np.float32), (-np.log1p(gain)).astype(np.float32)


class FusedModel:
    """A fused model at run time: one inference backend per sensor (vae_ros.core.backends.create_backend on the
    sensor's model directory) and the joint posterior of whichever sensors are given."""

    def __init__(self, model_dir: str | Path, backend: str = "auto", device: str = "cpu",
                 threads: int | None = None, sensors: Sequence[str] | None = None) -> None:
        from vae_ros.core.backends import create_backend, load_config

        self.model_dir = Path(model_dir)
        self.config = load_fused_config(self.model_dir)
        wanted = tuple(sensors) if sensors is not None else self.config.sensors
        missing = [s for s in wanted if s not in self.config.sensors]
        if missing:
            raise ConfigError(f"{self.model_dir} was trained on {', '.join(self.config.sensors)}, not on "
                              f"{', '.join(missing)}")
        self.sensors = wanted
        self.configs = {s: load_config(self.model_dir / s) for s in self.config.sensors}
        self.backends = {s: create_backend(self.model_dir / s, backend, device, threads=threads) for s in wanted}

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode_sensor(self, sensor: str, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One sensor's expert on a preprocessed batch (its model's input) -> (mean, logvar) (B, D)."""
        if sensor not in self.backends:
            raise InputError(f"sensor {sensor!r} is not one of this model's: {', '.join(self.sensors)}")
        mean, logvar = self.backends[sensor].encode(batch)
        return np.asarray(mean, dtype=np.float32), np.asarray(logvar, dtype=np.float32)

    def encode(self, batches: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """{sensor: preprocessed batch} (any non-empty subset, equal batch sizes) -> the joint (mean, logvar)."""
        return fuse({s: self.encode_sensor(s, b) for s, b in batches.items()})

    def decode(self, sensor: str, z: np.ndarray) -> np.ndarray:
        """The sensor's reconstruction of joint latents z (B, D), in its model's output space ([0, 1])."""
        if sensor not in self.backends:
            raise InputError(f"sensor {sensor!r} is not one of this model's: {', '.join(self.sensors)}")
        return np.asarray(self.backends[sensor].decode(np.asarray(z, dtype=np.float32)))
