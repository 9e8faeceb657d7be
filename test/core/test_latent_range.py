"""vae_ros.core.latent_range: the bound latents are held to, from model.json or the default, and the packaged
models' recorded ranges (issue 21)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vae_ros.core.errors import InputError, ModelFileError
from vae_ros.core.latent_range import (
    DEFAULT_LATENT_BOUND,
    LATENT_RANGE_KEY,
    check_latent_range,
    latent_bound,
    latent_range_entry,
)
from vae_ros.resources import models_dir


def test_bound_from_model_json_or_the_default() -> None:
    assert latent_bound({}) == DEFAULT_LATENT_BOUND
    assert latent_bound({LATENT_RANGE_KEY: latent_range_entry(2.5, 100, "test")}) == pytest.approx(10.0)
    for bad in ({"bound": "x"}, {"bound": -1.0}, {"bound": float("inf")}, "nonsense"):
        with pytest.raises(ModelFileError, match="latent_range"):
            latent_bound({LATENT_RANGE_KEY: bad})


@pytest.mark.parametrize("z", [np.full(16, 1e30), np.eye(16)[1] * -1e30, np.full(16, 3e38), np.full(16, 1e4),
                               np.array([0.0, np.nan]), np.array([np.inf])])
def test_absurd_latents_are_refused_naming_the_element(z: np.ndarray) -> None:
    with pytest.raises(InputError, match="outside the model's latent range"):
        check_latent_range(z.astype(np.float32), DEFAULT_LATENT_BOUND, "goal latent")


def test_latents_the_prior_produces_pass() -> None:
    z = np.random.default_rng(0).standard_normal((1000, 16))  # (N, D) ~ N(0, I)
    for row in z:
        check_latent_range(row, DEFAULT_LATENT_BOUND)


@pytest.mark.parametrize("name", ["control_default", "scan_default", "image_default", "pointcloud_default"])
def test_packaged_models_record_their_range(name: str) -> None:
    training = json.loads((models_dir() / name / "model.json").read_text())["training"]
    entry = training[LATENT_RANGE_KEY]
    assert 0 < entry["abs_max"] < entry["bound"] == pytest.approx(entry["margin"] * entry["abs_max"], abs=0.01)
    assert latent_bound(training) == entry["bound"] <= DEFAULT_LATENT_BOUND
