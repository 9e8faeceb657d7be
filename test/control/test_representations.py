"""Representations: model latents equal the encoder node's path; baselines compute what they claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vae_ros.control.evaluation.representations import (
    ModelRepresentation,
    Observations,
    PcaRepresentation,
    PixelsRepresentation,
    PoseRepresentation,
    RawScanRepresentation,
    observe,
    representation_from_name,
)
from vae_ros.core.backends import create_backend
from vae_ros.core.conversions.model_input import msg_to_model_input
from vae_ros.core.errors import ConfigError, InputError, ModelFileError
from vae_ros.ros.sim_messages import image_msg, scan_msg, time_msg
from vae_ros.sim.world import SimConfig, SimWorld

REPO = Path(__file__).resolve().parents[2]
POSES = np.array([[0.0, 0.0, 0.0], [0.5, -0.3, 1.0], [-1.0, 0.4, -2.5], [0.2, 1.0, 3.0]])


@pytest.fixture(scope="module")
def observations() -> Observations:
    with SimWorld(SimConfig(seed=0)) as world:
        return observe(world, POSES, {"camera", "scan"})


def test_observe_captures_only_the_sensors_asked_for() -> None:
    with SimWorld(SimConfig(seed=0)) as world:
        scans_only = observe(world, POSES, {"scan"})
        assert scans_only.images is None and scans_only.scans is not None
        assert scans_only.scans.shape == (4, 360) and scans_only.scans.dtype == np.float32
        np.testing.assert_array_equal(scans_only.poses, POSES)
        world.set_pose(*POSES[2])
        np.testing.assert_array_equal(scans_only.scans[2], world.scan())
        nothing = observe(world, POSES, set())
        assert nothing.images is None and nothing.scans is None and len(nothing) == 4
        with pytest.raises(ConfigError, match="unknown sensors"):
            observe(world, POSES, {"sonar"})


@pytest.mark.parametrize("model", ["scan_default", "image_default"])
def test_model_latent_equals_the_encoder_node_path(model: str, observations: Observations) -> None:
    model_dir = REPO / "models" / model
    rep = ModelRepresentation(model_dir, backend="onnxruntime", batch_size=3)  # 3: batches of 3 and 1
    assert rep.name == model and rep.sensors == frozenset({"camera" if model.startswith("image") else "scan"})
    latents = rep.encode(observations)
    assert latents.shape == (4, 16) and latents.dtype == np.float64
    # The node's path: a ROS message, msg_to_model_input, the backend's means.
    backend = create_backend(model_dir, "onnxruntime")
    stamp = time_msg(0.0)
    geometry = observations.geometry()
    for i in range(4):
        if model.startswith("image"):
            assert observations.images is not None
            msg = image_msg(observations.images[i], stamp)
        else:
            assert observations.scans is not None
            msg = scan_msg(observations.scans[i], geometry, stamp, 0.1)
        mean, _ = backend.encode(msg_to_model_input(msg, backend.config)[None])
        np.testing.assert_allclose(latents[i], mean[0], rtol=0, atol=1e-5)
    # Different poses really give different latents (the comparison above is not between constants).
    assert np.linalg.norm(latents[0] - latents[1]) > 0.1


def test_pixels_are_64x64_rgb_in_unit_range(observations: Observations) -> None:
    pixels = PixelsRepresentation().encode(observations)
    assert pixels.shape == (4, 64 * 64 * 3) and pixels.dtype == np.float64
    assert 0.0 <= pixels.min() and pixels.max() <= 1.0 and pixels.std() > 0.05


def test_pca_matches_an_svd_and_needs_fitting(observations: Observations) -> None:
    pca = PcaRepresentation(k=3)
    with pytest.raises(ConfigError, match="not fitted"):
        pca.encode(observations)
    with SimWorld(SimConfig(seed=2)) as world:
        rng = np.random.default_rng(0)
        poses = np.column_stack([rng.uniform(-0.5, 0.5, (40, 2)), rng.uniform(-np.pi, np.pi, 40)])
        train = observe(world, poses, {"camera"})
    pca.fit(train)
    codes = pca.encode(observations)
    assert codes.shape == (4, 3)
    pixels = PixelsRepresentation().encode(train)
    mean = pixels.mean(axis=0)
    _, _, vt = np.linalg.svd(pixels - mean, full_matrices=False)
    reference = (PixelsRepresentation().encode(observations) - mean) @ vt[:3].T
    np.testing.assert_allclose(np.abs(codes), np.abs(reference), rtol=1e-3, atol=1e-3)  # up to sign
    with pytest.raises(ConfigError, match="at least 3 images"):
        PcaRepresentation(k=3).fit(Observations(images=train.images[:2] if train.images is not None else None,
                                                scans=None))


def test_raw_scan_normalises_and_reads_invalid_beams_as_free() -> None:
    scans = np.array([[1.0, np.inf, -np.inf, np.nan, 25.0, 5.0]], dtype=np.float32)
    out = RawScanRepresentation().encode(Observations(images=None, scans=scans))
    np.testing.assert_allclose(out, [[0.1, 1.0, 1.0, 1.0, 1.0, 0.5]])
    with pytest.raises(InputError, match="no scans"):
        RawScanRepresentation().encode(Observations(images=np.zeros((1, 8, 8, 3), np.uint8), scans=None))


def test_representation_from_name() -> None:
    assert isinstance(representation_from_name("pixels"), PixelsRepresentation)
    assert isinstance(representation_from_name("pca"), PcaRepresentation)
    assert isinstance(representation_from_name("raw_scan"), RawScanRepresentation)
    assert isinstance(representation_from_name("pose"), PoseRepresentation)
    rep = representation_from_name(str(REPO / "models" / "scan_default"))
    assert isinstance(rep, ModelRepresentation) and rep.name == "scan_default"
    # A relative path that does not exist here falls back to the packaged model of that name.
    assert representation_from_name("somewhere/else/image_default").name == "image_default"
    with pytest.raises(ModelFileError, match="neither"):
        representation_from_name("no_such_model")
    with pytest.raises(ConfigError, match="pointcloud"):
        representation_from_name(str(REPO / "models" / "pointcloud_default"))
