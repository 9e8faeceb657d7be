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


def test_the_pair_slop_is_the_one_the_training_recording_was_paired_with() -> None:
    from vae_ros.core.fused import SYNC_SLOP_S

    def config(training: dict) -> FusedConfig:
        return FusedConfig(("camera", "scan"), 16, training=training)

    assert config({"source": {"kind": "bag", "sync_slop_s": 0.2}}).pair_slop_s == 0.2
    # A model trained in the simulator records no slop; a record that is not a usable figure is not trusted.
    assert config({"source": {"kind": "simulator"}}).pair_slop_s == SYNC_SLOP_S
    for bad in (0, -0.1, float("nan"), 5.0, "0.2", True, None):
        assert config({"source": {"sync_slop_s": bad}}).pair_slop_s == SYNC_SLOP_S
    assert config({"source": "bag"}).pair_slop_s == SYNC_SLOP_S
    assert load_fused_config(models_dir() / "fused_default").pair_slop_s == SYNC_SLOP_S


def test_the_controllers_pair_a_frame_and_a_scan_within_the_models_slop() -> None:
    """goal_align's LiveSensors: a frame and a scan 0.15 s apart pair under a model paired at 0.2 s (a robot whose
    sensors needed a wider window), not under the default."""
    import math

    from vae_ros.control.runtime.image_goal import ScanGeometry
    from vae_ros.ros.nodes.goal_align import GoalAlign

    geometry = ScanGeometry(angle_min=-math.pi, angle_increment=2 * math.pi / 360, range_min=0.1, range_max=10.0)
    found = []
    for slop in (None, 0.2):
        extra = {} if slop is None else {"pair_slop_s": slop}
        align = GoalAlign(Path("unused"), "onnxruntime", "cpu", lambda w, h: None, lambda: 10**10,  # type: ignore[arg-type, return-value]
                          **extra)
        align.sensors.add_frame(10**10, np.zeros((4, 4, 3), np.uint8))
        align.sensors.add_scan(10**10 - 150_000_000, np.ones(360, np.float32), geometry)
        found.append(align.sensors.newest_pair(0))
    assert found[0] is None
    assert found[1] is not None and found[1].stamp_ns == 10**10
