"""From a LaserScan to what the servo needs: the latent z and the interaction matrix J (ROS-free).

The same code serves latent_servo_node and the in-process evaluation, so both see identical numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vae_ros.control.scan_warp import (
    DEFAULT_STEPS,
    central_difference_jacobian,
    jacobian_displacements,
    warp_scans,
)
from vae_ros.core.config import ModelConfig
from vae_ros.core.errors import ConfigError
from vae_ros.core.preprocess import preprocess_scan

# scans (K, beams) float32 ranges -> latent means (K, D)
ScanEncoder = Callable[[np.ndarray], np.ndarray]


def model_scan_encoder(backend: Any, config: ModelConfig, angle_min: float, angle_increment: float,
                       range_min: float, range_max: float) -> ScanEncoder:
    """A ScanEncoder for scans of one geometry through a model's preprocessing and a vae_ros backend."""
    if config.modality != "scan":
        raise ConfigError(f"the servo's interaction matrix needs a LaserScan model, got modality {config.modality!r}")
    spec = config.scan_spec

    def encode(scans: np.ndarray) -> np.ndarray:
        batch = np.stack([preprocess_scan(r, angle_min, angle_increment, range_min, range_max, spec)
                          for r in np.asarray(scans, dtype=np.float32)])  # (K, 2, beams)
        mean, _ = backend.encode(batch)
        return np.asarray(mean, dtype=np.float64)  # (K, D)

    return encode


class ScanLatentSensor:
    """LaserScan -> (latent z, interaction matrix J (D, 3)) with one batched encoder call of 7 scans."""

    def __init__(self, encode: ScanEncoder, angle_min: float, angle_increment: float, range_max: float,
                 steps: tuple[float, float, float] = DEFAULT_STEPS) -> None:
        self.encode = encode
        self.angle_min = angle_min
        self.angle_increment = angle_increment
        self.range_max = range_max
        self.steps = steps
        self._displacements = jacobian_displacements(steps)

    def latent(self, ranges: np.ndarray) -> np.ndarray:
        return np.asarray(self.encode(np.asarray(ranges, dtype=np.float32)[None]), dtype=np.float64)[0]

    def latent_and_jacobian(self, ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ranges = np.asarray(ranges, dtype=np.float32)
        warped = warp_scans(ranges, self.angle_min, self.angle_increment, self.range_max, self._displacements)
        latents = np.asarray(self.encode(np.concatenate([ranges[None], warped])), dtype=np.float64)  # (7, D)
        return latents[0], central_difference_jacobian(latents[1:], self.steps)
