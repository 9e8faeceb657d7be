"""`vae-ros eval` in a subprocess: metrics table, metrics.json and PNGs from a model and a bag."""

from __future__ import annotations

import json
from pathlib import Path

import bagutil
import pytest
from test_train_cli import assert_one_error_line, vae_ros

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.data import BagSource
from vae_ros.core.train import TrainConfig, train

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_and_bag(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    bag = bagutil.write_image_bag(root / "camera", 60, storage="sqlite3", compressed=True, bad=[3])
    config = ModelConfig(modality="image", image=ImageSpec(32, 32, 3), arch=ArchSpec(latent_dim=4, channels=[8, 16]))
    train(BagSource(bag, "/camera/image_raw"), config,
          TrainConfig(epochs=1, batch_size=16, val_percent=20.0, warmup_steps=5), root / "model", progress=False)
    return root / "model", bag


def test_eval_prints_metrics_and_writes_json_and_plots(model_and_bag: tuple[Path, Path], tmp_path: Path) -> None:
    model, bag = model_and_bag
    result = vae_ros("eval", "--model", str(model), "--bag", str(bag), "--topic", "/camera/image_raw",
                     "--out", str(tmp_path), "--top-k", "3", "--examples", "4", "--quiet")
    assert result.returncode == 0, result.stderr
    for row in ("ELBO (nats/sample)", "reconstruction MSE", "PSNR (dB)", "KL per dimension", "active units"):
        assert row in result.stdout
    report = json.loads((tmp_path / "metrics.json").read_text())
    metrics = report["metrics"]
    assert metrics["samples"] == 59 and report["skipped"] == 1
    assert len(metrics["kl_per_dim"]) == 4 and metrics["psnr_db"] > 0 and metrics["elbo"] < 1e9
    assert len(report["traversal_dims"]) == 3
    for name in ("reconstructions.png", "traversals.png", "kl_per_dim.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG


def test_eval_on_the_validation_split_uses_the_training_split(model_and_bag: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    model, bag = model_and_bag
    result = vae_ros("eval", "--model", str(model), "--bag", str(bag), "--topic", "/camera/image_raw",
                     "--out", str(tmp_path), "--split", "val", "--quiet")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "metrics.json").read_text())
    trained = json.loads((model / "model.json").read_text())["training"]
    assert report["metrics"]["samples"] == trained["samples"]["val"]
    assert report["val_percent"] == 20.0


@pytest.mark.parametrize("case", ["missing model", "wrong modality", "missing bag"])
def test_eval_errors_are_one_line(case: str, model_and_bag: tuple[Path, Path], tmp_path: Path) -> None:
    model, bag = model_and_bag
    data = ["--bag", str(bag), "--topic", "/camera/image_raw"]
    if case == "missing model":
        args, fragment = ["--model", str(tmp_path / "none"), *data], "does not exist"
    elif case == "wrong modality":
        scan_bag = bagutil.write_scan_bag(tmp_path / "scan", 3, beams=64)
        args, fragment = ["--model", str(model), "--bag", str(scan_bag), "--topic", "/scan"], "modality"
    else:
        args, fragment = ["--model", str(model), "--bag", str(tmp_path / "nope"), "--topic", "/x"], "does not exist"
    assert_one_error_line(vae_ros("eval", *args, "--out", str(tmp_path / "out")), fragment)
