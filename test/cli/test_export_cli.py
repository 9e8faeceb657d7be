"""`vae-ros export` end to end: a bag written here with rosbags -> `vae-ros train` -> every export format
-> matching latents in every backend available here; and one clear error line for what cannot work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bagutil
import numpy as np
import pytest

from vae_ros.apps.cli import main
from vae_ros.core.backends import create_backend
from vae_ros.core.data import open_source

REPO = Path(__file__).resolve().parents[2]
TOPIC = "/camera/image_raw"
TINY = ["--image-size", "32", "--latent-dim", "4", "--arch-channels", "8,16,32", "--batch-size", "16",
        "--lr", "3e-3", "--warmup-steps", "10", "--val-percent", "20", "--seed", "1", "--quiet"]


def vae_ros(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=240, cwd=REPO)


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.endswith(" ...")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bagutil.write_image_bag(tmp_path_factory.mktemp("export_cli") / "camera", 80, storage="mcap")


@pytest.fixture(scope="module")
def trained(bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export_cli") / "model"
    result = vae_ros("train", "--bag", str(bag), "--topic", TOPIC, "--out", str(out), "--epochs", "2", *TINY)
    assert result.returncode == 0, result.stderr
    return out


def test_trained_model_exports_and_every_backend_agrees(trained: Path, bag: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    result = vae_ros("export", "--model", str(trained), "--format", "onnx")
    assert result.returncode == 0, result.stderr
    assert "encoder.onnx, decoder.onnx" in result.stdout and "max_abs_mean" in result.stdout
    # INT8 with no data flags: calibrated on the bag that model.json's training summary names.
    assert main(["export", "--model", str(trained), "--format", "int8", "--calib-samples", "32"]) == 0
    out = capsys.readouterr().out
    assert "encoder.int8.onnx" in out and "cosine similarity" in out
    assert main(["export", "--model", str(trained), "--format", "torchscript"]) == 0
    exports = json.loads((trained / "model.json").read_text())["exports"]
    assert {"encoder.onnx", "decoder.onnx", "encoder.int8.onnx", "encoder.torchscript.pt"} <= set(exports)

    # Real frames of the bag, through the same decoding the encoder node uses.
    from vae_ros.core.backends import load_config
    from vae_ros.core.data import iter_samples

    config = load_config(trained)
    x = np.stack(list(iter_samples(open_source(bag=str(bag), topic=TOPIC), config, limit=12, split="all")))
    ref, _ = create_backend(trained, "torch").encode(x)
    for backend in ("onnxruntime", "auto"):
        mean, _ = create_backend(trained, backend).encode(x)
        assert np.abs(mean - ref).max() <= 1e-4, backend
    int8, _ = create_backend(trained, "onnxruntime", precision="int8").encode(x)
    cosine = np.sum(ref * int8, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(int8, axis=1))
    print(f"\nINT8 vs FP32 on bag frames of a `vae-ros train` model: cosine mean {cosine.mean():.5f}")
    assert cosine.mean() >= 0.99


def test_export_into_another_directory(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert main(["export", "--model", str(trained), "--format", "onnx", "--out", str(out)]) == 0
    assert (out / "encoder.onnx").is_file() and (out / "weights.safetensors").is_file()
    assert create_backend(out).name == "onnxruntime"


def test_errors_are_one_line(trained: Path, tmp_path: Path) -> None:
    assert_one_error_line(vae_ros("export", "--model", str(tmp_path / "missing")), "does not exist")
    assert_one_error_line(vae_ros("export", "--model", str(trained), "--format", "tensorrt"), "torch_tensorrt")


def test_int8_without_data_and_misplaced_flags(tmp_path: Path, trained: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy"
    assert main(["export", "--model", str(trained), "--format", "onnx", "--out", str(copy)]) == 0
    data = json.loads((copy / "model.json").read_text())
    data["training"]["source"]["path"] = str(tmp_path / "gone")  # the training bag is not on this machine
    (copy / "model.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["export", "--model", str(copy), "--format", "int8"]) == 2
    assert "pass --bag PATH --topic NAME or --images DIR" in capsys.readouterr().err
    assert main(["export", "--model", str(copy), "--format", "onnx", "--images", str(tmp_path)]) == 2
    assert "calibration data for --format int8 only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["export", "--model", str(copy), "--format", "tensorrt", "--batch-sizes", "0"])
    assert info.value.code == 2
