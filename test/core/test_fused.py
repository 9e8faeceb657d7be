"""The fused model's joint posterior (product of posteriors over the prior) and its model directory checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vae_ros.core.errors import InputError, ModelFileError
from vae_ros.core.fused import FusedConfig, fuse, is_fused_model, load_fused_config
from vae_ros.resources import models_dir


def test_one_sensor_alone_is_its_own_posterior() -> None:
    mean = np.array([[0.5, -1.0, 2.0]], np.float32)
    logvar = np.log(np.array([[0.04, 0.25, 0.5]], np.float32))
    joint_mean, joint_logvar = fuse({"scan": (mean, logvar)})
    np.testing.assert_allclose(joint_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(joint_logvar, logvar, rtol=1e-5)


def test_two_sensors_combine_by_precision_over_the_prior() -> None:
    # scan: sure (var 0.01) of 1.0; camera: unsure (var 0.5) of 3.0. Beyond the prior they add precision 99
    # and 1: joint precision 101, mean (99 * 1 + 1 * 3) / 100.
    scan = (np.array([1.0]), np.log(np.array([0.01])))
    camera = (np.array([3.0]), np.log(np.array([0.5])))
    mean, logvar = fuse({"scan": scan, "camera": camera})
    assert mean[0] == pytest.approx((99 * 1.0 + 1 * 3.0) / 100, rel=1e-5)
    assert np.exp(-logvar[0]) == pytest.approx(101.0, rel=1e-5)
    # An expert that knows nothing (the prior's own width or wider) changes nothing.
    blind = (np.array([7.0]), np.log(np.array([4.0])))
    mean_b, logvar_b = fuse({"scan": scan, "camera": blind})
    assert mean_b[0] == pytest.approx(1.0, rel=1e-5) and np.exp(logvar_b[0]) == pytest.approx(0.01, rel=1e-4)


def test_fusing_refuses_nothing_mismatched_shapes_and_nan() -> None:
    good = (np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(InputError):
        fuse({})
    with pytest.raises(InputError, match="camera"):
        fuse({"scan": good, "camera": (np.zeros((2, 4)), np.zeros((2, 4)))})
    with pytest.raises(InputError, match="NaN"):
        fuse({"scan": good, "camera": (np.full((2, 3), np.nan), np.zeros((2, 3)))})


def _fake_fused(tmp_path: Path, sensors: list[str], latent_dim: int = 16) -> Path:
    root = tmp_path / "fused"
    root.mkdir()
    for sensor, source in (("camera", "image_default"), ("scan", "control_default")):
        if (models_dir() / source / "model.json").is_file():
            (root / sensor).mkdir()
            shutil.copy(models_dir() / source / "model.json", root / sensor / "model.json")
    FusedConfig(tuple(sensors), latent_dim).save(root)
    return root


def test_the_model_directory_is_checked_against_its_sensors_models(tmp_path: Path) -> None:
    if not (models_dir() / "image_default" / "model.json").is_file():
        pytest.skip("packaged models not built")
    root = _fake_fused(tmp_path, ["camera", "scan"])
    assert is_fused_model(root) and not is_fused_model(models_dir() / "image_default")
    assert load_fused_config(root).sensors == ("camera", "scan")
    raw = json.loads((root / "model.json").read_text())
    for change, message in (({"sensors": ["camera", "sonar"]}, "sonar"), ({"latent_dim": 8}, "latent size"),
                            ({"format_version": 9}, "format_version"), ({"sensors": "camera"}, "list")):
        (root / "model.json").write_text(json.dumps({**raw, **change}))
        with pytest.raises(ModelFileError, match=message):
            load_fused_config(root)
    (root / "model.json").write_text(json.dumps(raw))
    shutil.rmtree(root / "scan")
    with pytest.raises(ModelFileError, match="scan"):
        load_fused_config(root)
