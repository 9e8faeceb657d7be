"""`vae-ros train` end to end in a subprocess: a bag written here -> a model directory that reloads."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import bagutil
import pytest
import torch

from vae_ros.apps.cli.train import prepare_out_dir
from vae_ros.core.errors import ConfigError
from vae_ros.core.model_dir import load_model_dir

TINY = ["--image-size", "32", "--latent-dim", "4", "--arch-channels", "8,16,32", "--batch-size", "16",
        "--lr", "3e-3", "--warmup-steps", "10", "--val-percent", "20", "--seed", "1", "--quiet"]


REPO = Path(__file__).resolve().parents[2]


def vae_ros(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=240, cwd=REPO)


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def image_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bagutil.write_image_bag(tmp_path_factory.mktemp("cli") / "camera", 120, storage="mcap", bad=[7])


@pytest.fixture(scope="module")
def trained(image_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("cli") / "model"
    result = vae_ros("train", "--bag", str(image_bag), "--topic", "/camera/image_raw", "--out", str(out),
                     "--epochs", "2", *TINY)
    return out, result


def test_train_from_a_bag_writes_a_model_that_reloads(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, result = trained
    assert result.returncode == 0, result.stderr
    assert "best epoch" in result.stdout and "PSNR" in result.stdout
    assert "skipped 1 of" in result.stderr  # the broken message was counted, not fatal
    config, model = load_model_dir(out)
    assert config.modality == "image" and config.input_shape == (3, 32, 32) and config.latent_dim == 4
    with torch.no_grad():
        mu, _ = model.encode(torch.zeros(1, 3, 32, 32))
    assert mu.shape == (1, 4)
    assert (out / "training_curves.png").stat().st_size > 1000
    summary = config.training
    assert summary["source"]["topic"] == "/camera/image_raw" and summary["epochs"] == 2
    assert summary["samples"]["skipped"] == 1 and summary["samples"]["train"] + summary["samples"]["val"] == 119
    for key in ("val_elbo", "val_recon_nll", "val_kl", "val_psnr_db", "val_mse", "active_units", "kl_per_dim"):
        assert summary["best"][key] is not None, key
    assert summary["time_s"] > 0
    first, second = summary["history"]
    assert second["val_elbo"] > first["val_elbo"]  # learning, not just running


def test_train_refuses_a_non_empty_out_dir_then_resumes(image_bag: Path,
                                                        trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = trained
    args = ["train", "--bag", str(image_bag), "--topic", "/camera/image_raw", "--out", str(out), *TINY]
    assert_one_error_line(vae_ros(*args, "--epochs", "3"), "not empty", "--resume", "--force")
    result = vae_ros(*args, "--epochs", "3", "--resume")
    assert result.returncode == 0, result.stderr
    training = json.loads((out / "model.json").read_text())["training"]
    assert [h["epoch"] for h in training["history"]] == [1, 2, 3]
    assert training["samples"]["train"] + training["samples"]["val"] == 119


def test_force_removes_only_training_artifacts(tmp_path: Path) -> None:
    for name in ("model.json", "weights.safetensors", "training_curves.png", "encoder.onnx", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text("{}")
    with pytest.raises(ConfigError, match="not empty"):
        prepare_out_dir(tmp_path, resume=False, force=False)
    prepare_out_dir(tmp_path, resume=False, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_train_infers_the_scan_modality_from_the_topic(tmp_path: Path) -> None:
    bag = bagutil.write_scan_bag(tmp_path / "scan", 24, storage="sqlite3", beams=64)
    result = vae_ros("train", "--bag", str(bag), "--topic", "scan", "--out", str(tmp_path / "m"), "--epochs", "1",
                     "--latent-dim", "3", "--arch-channels", "8,16", "--batch-size", "8", "--val-percent", "25",
                     "--quiet")
    assert result.returncode == 0, result.stderr
    config, _ = load_model_dir(tmp_path / "m")
    assert config.modality == "scan" and config.scan_spec.beams == 64 and config.scan_spec.wraps
    assert "range error" in result.stdout


def test_train_from_an_image_folder_in_grey(tmp_path: Path) -> None:
    folder = bagutil.write_image_folder(tmp_path / "photos", 24, broken=1)
    result = vae_ros("train", "--images", str(folder), "--out", str(tmp_path / "m"), "--epochs", "1",
                     "--channels", "1", "--image-size", "32", "--latent-dim", "3", "--arch-channels", "8,16",
                     "--batch-size", "8", "--val-percent", "25", "--quiet")
    assert result.returncode == 0, result.stderr
    config, _ = load_model_dir(tmp_path / "m")
    assert config.input_shape == (1, 32, 32)
    assert config.training["source"]["kind"] == "images" and config.training["samples"]["skipped"] == 1


@pytest.mark.parametrize("case", ["missing bag", "missing topic", "no topic", "missing images", "both sources",
                                  "bad image size", "modality mismatch", "cuda", "bad number"])
def test_bad_arguments_give_one_error_line(case: str, image_bag: Path, tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "out")]
    bag = ["--bag", str(image_bag)]
    topic = ["--topic", "/camera/image_raw"]
    args, fragments = {
        "missing bag": (["--bag", str(tmp_path / "nope"), *topic, *out], ["does not exist"]),
        "missing topic": ([*bag, "--topic", "/front_camera", *out], ["no topic", "/camera/image_raw"]),
        "no topic": ([*bag, *out], ["--topic"]),
        "missing images": (["--images", str(tmp_path / "nope"), *out], ["does not exist"]),
        "both sources": ([*bag, *topic, "--images", str(tmp_path), *out], ["not both"]),
        "bad image size": ([*bag, *topic, *out, "--image-size", "40"], ["multiple of 16"]),
        "modality mismatch": ([*bag, *topic, *out, "--modality", "scan"], ["modality"]),
        "cuda": ([*bag, *topic, *out, "--device", "cuda"], ["CUDA"]),
        "bad number": ([*bag, *topic, *out, "--epochs", "zero"], ["--epochs"]),
    }[case]
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = vae_ros("train", *args)
    if case == "bad number":  # argparse: usage line + one error line, exit 2
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "--epochs" in result.stderr.strip().splitlines()[-1]
        return
    assert_one_error_line(result, *fragments)
    assert result.returncode == 2
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_force_removes_exactly_what_training_and_export_write(tmp_path: Path) -> None:
    from vae_ros.apps.cli.train import prepare_out_dir

    written = ["model.json", "weights.safetensors", "encoder.torchscript.pt", "decoder.torchscript.pt",
               "encoder.int8.onnx", "servo_head.safetensors", "training_curves.png"]
    for name in [*written, "notes.txt"]:
        (tmp_path / name).write_text("x")
    (tmp_path / "trt").mkdir()
    (tmp_path / "trt" / "engine.ep").write_text("x")
    prepare_out_dir(tmp_path, resume=False, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # the user's own file stays


# -- --precision, --channels-last, --compile (issue 20 section 2) -----------------------------------------------
def test_bf16_and_channels_last_train_and_are_recorded(image_bag: Path, tmp_path: Path) -> None:
    result = vae_ros("train", "--bag", str(image_bag), "--topic", "/camera/image_raw", "--out", str(tmp_path / "m"),
                     "--epochs", "1", "--image-size", "32", "--latent-dim", "3", "--arch-channels", "8,16",
                     "--batch-size", "16", "--precision", "bf16", "--channels-last", "--quiet")
    assert result.returncode == 0, result.stderr
    config, _ = load_model_dir(tmp_path / "m")
    assert config.training["train_config"]["precision"] == "bf16"
    assert config.training["train_config"]["channels_last"] is True and config.training["train_config"]["compile"] is False
    assert all(map(math.isfinite, (config.training["val_elbo"], config.training["history"][0]["train_elbo"])))


@pytest.mark.parametrize(("args", "fragment"), [
    (["--precision", "fp16"], "--precision"),
    (["--precision"], "--precision"),
    (["--pose-topic", "odom", "--precision", "bf16"], "--precision bf16: not supported for control-fit training"),
    (["--pose-topic", "odom", "--compile"], "--compile: not supported for control-fit training"),
    (["--topic", "scan", "--channels-last"], "--channels-last: not supported for fused training"),
])
def test_bad_speed_flags_exit_2_with_one_line(image_bag: Path, tmp_path: Path, args: list[str], fragment: str) -> None:
    result = vae_ros("train", "--bag", str(image_bag), "--topic", "/camera/image_raw", "--out", str(tmp_path / "o"),
                     *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not (tmp_path / "o").exists()
