"""How far from the origin a model's latents may lie: the bound every consumer of latents checks them against.

A VAE encoder is a bounded function of its normalised input, so its posterior means stay within a few units
of the origin (the prior is N(0, I)). A latent far outside that range (1e30, 3e38, 1e4) was not made by the
model: a corrupted message, a wrong model or an attack. Controllers must not drive toward it and the decoder
must not publish it (a scan decoder turns it into "nothing there").

Training records the range it saw in model.json (`training.latent_range`: the largest |mean_i| over its
validation split, and `bound` = LATENT_RANGE_MARGIN times that); models without it get DEFAULT_LATENT_BOUND.
Measured on the packaged models (10 simulator worlds x 100 random free poses): largest |mean_i| 1.4
(control), 5.3 (scan), 6.0 (point cloud), 9.0 (camera); over their whole input domain (constant, noise and
binary inputs) 5.3, 5.8, 3.8 and 17.4. Hence the default, 50, about 3x the worst of those.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vae_ros.core.errors import InputError, ModelFileError

LATENT_RANGE_KEY = "latent_range"  # under model.json "training"
DEFAULT_LATENT_BOUND = 50.0
LATENT_RANGE_MARGIN = 4.0


def latent_range_entry(abs_max: float, samples: int, source: str) -> dict[str, Any]:
    """model.json training.latent_range from the largest |mean_i| seen over `samples` latents of `source`."""
    return {"abs_max": round(float(abs_max), 4), "bound": round(float(LATENT_RANGE_MARGIN * abs_max), 2),
            "margin": LATENT_RANGE_MARGIN, "samples": int(samples), "source": source}


def latent_bound(training: dict[str, Any] | None) -> float:
    """The bound on |z_i| for a model: training.latent_range.bound, or DEFAULT_LATENT_BOUND without one.

    ModelFileError for a present but malformed entry (a bound that is not a positive finite number)."""
    entry = training.get(LATENT_RANGE_KEY) if isinstance(training, dict) else None
    if entry is None:
        return DEFAULT_LATENT_BOUND
    value: Any = entry.get("bound") if isinstance(entry, dict) else None
    try:
        bound = float(value)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"model.json training.{LATENT_RANGE_KEY}.bound must be a number, got {value!r}") from err
    if not (math.isfinite(bound) and bound > 0):
        raise ModelFileError(f"model.json training.{LATENT_RANGE_KEY}.bound must be a positive number, got {bound}")
    return bound


def check_latent_range(z: np.ndarray, bound: float, what: str = "latent") -> None:
    """InputError when any |z_i| exceeds `bound` (or is not finite), naming the worst element."""
    values = np.asarray(z, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return
    magnitudes = np.abs(values)
    worst = int(np.argmax(np.where(np.isfinite(magnitudes), magnitudes, np.inf)))
    if not magnitudes[worst] <= bound:
        raise InputError(f"{what} element {worst} is {values[worst]:.6g}, outside the model's latent range "
                         f"|z_i| <= {bound:g} (model.json training.{LATENT_RANGE_KEY}): not a latent this model "
                         "produces (a corrupted message, another model's latent?)")
