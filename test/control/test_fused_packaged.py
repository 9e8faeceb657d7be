"""The packaged fused model: its LiDAR expert is the control model, its camera lands near the joint latent."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ros.core.backends import weights_digest
from vae_ros.core.fused import FusedModel, fuse, load_fused_config
from vae_ros.resources import models_dir

FUSED = models_dir() / "fused_default"
pytestmark = pytest.mark.skipif(not (FUSED / "model.json").is_file(), reason="packaged fused model not built")


def test_the_lidar_expert_is_the_control_model_so_controllers_see_the_same_latent() -> None:
    config = load_fused_config(FUSED)
    assert config.sensors == ("camera", "scan") and config.latent_dim == 16
    assert weights_digest(FUSED / "scan") == weights_digest(models_dir() / "control_default")
    assert (FUSED / "servo_head.safetensors").read_bytes() == \
        (models_dir() / "control_default" / "servo_head.safetensors").read_bytes()


def test_in_unseen_worlds_the_camera_alone_lands_nearer_the_lidar_latent_than_a_blind_guess() -> None:
    from vae_ros.control.training.fused import simulator_pairs

    model = FusedModel(FUSED, threads=1)
    rng = np.random.default_rng(5)
    images, scans, _ = simulator_pairs([7919, 4242], 15, model.configs["camera"].image_spec,
                                       model.configs["scan"].scan_spec, rng, lightings=("default",))
    camera = model.encode_sensor("camera", images)
    scan = model.encode_sensor("scan", scans)
    error = np.linalg.norm(camera[0] - scan[0], axis=1).mean()
    blind = np.linalg.norm(scan[0] - scan[0].mean(axis=0), axis=1).mean()
    assert error < 0.85 * blind, (error, blind)
    # Both sensors: the LiDAR is sure where the camera is not, so the joint stays near the LiDAR's latent.
    both, _ = fuse({"camera": camera, "scan": scan})
    assert np.linalg.norm(both - scan[0], axis=1).mean() < 0.25 * error


def test_the_demo_picture_draws_each_sensor_from_the_other(tmp_path: object) -> None:
    """`fused_eval --plot`: the camera image, the image from the LiDAR, the true scan and the scan predicted from
    the camera alone / both, at held-out poses, written as a PNG of one row per view."""
    from pathlib import Path

    from PIL import Image

    from vae_ros.control.evaluation.fused_eval import main

    out = Path(str(tmp_path)) / "demo.png"
    assert main(["--plot", str(out), "--seeds", "7919", "--plot-views", "2"]) == 0
    with Image.open(out) as png:
        width, height = png.size
    assert png.format == "PNG" and width > 600 and height > 2 * 250, (png.format, width, height)
