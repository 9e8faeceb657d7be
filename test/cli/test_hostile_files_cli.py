"""Issue 10, section 5: bad files give one clear line through the CLI, never a traceback.

Each case printed a 20-40-line traceback before: train/eval on a sqlite3 bag with a corrupted page (train
also left an empty output folder), export into a read-only model directory, model.json values of the
wrong type, a latent_dim of 1e8 (allocated before the weights were checked).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import bagutil
import pytest

from vae_ros.apps.cli import main
from vae_ros.resources import default_model_dir

REPO = Path(__file__).resolve().parents[2]
TOPIC = "/camera/image_raw"


def vae_ros(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=240, cwd=REPO)


def error_line(stderr: str) -> str:
    """The one line of stderr, progress lines ("vae-ros export: onnx of DIR ...") aside."""
    lines = [line for line in stderr.strip().splitlines() if not line.endswith(" ...")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, error_line(capsys.readouterr().err)


def corrupt_sqlite_bag(path: Path) -> Path:
    """A sqlite3 bag of 40 images of 120x160 whose data pages are fine to open, but one overflow page in
    the middle points its chain past the end of the file: sqlite finds it only when reading that message."""
    bagutil.write_bag(path, ((TOPIC, i * 10**8, bagutil.image_msg(bagutil.square_scene(i, 120, 160), i * 10**8))
                             for i in range(40)), storage="sqlite3")
    db = next(path.glob("*.db3"))
    data = bytearray(db.read_bytes())
    page_size = struct.unpack(">H", data[16:18])[0]
    pages = len(data) // page_size
    for page in range(pages // 2, pages):
        base = page * page_size
        (next_page,) = struct.unpack(">I", data[base:base + 4])
        if 1 < next_page <= pages and data[base] == 0:  # an overflow page that continues a chain
            data[base:base + 4] = struct.pack(">I", pages * 10)
            break
    else:
        raise AssertionError("no overflow page found to corrupt")
    db.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def damaged_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corrupt_sqlite_bag(tmp_path_factory.mktemp("damaged") / "bag")


def test_train_on_a_corrupted_sqlite3_page_is_one_line_and_leaves_no_folder(damaged_bag: Path,
                                                                            tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = vae_ros("train", "--bag", str(damaged_bag), "--topic", TOPIC, "--out", str(out), "--epochs", "1",
                     "--image-size", "32", "--latent-dim", "4", "--arch-channels", "8,16", "--quiet")
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert line.startswith("vae-ros train: error: bag ") and "is damaged: reading message" in line
    assert "database disk image is malformed" in line
    assert not out.exists()


def test_eval_on_a_corrupted_sqlite3_page_is_one_line(damaged_bag: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    code, line = run_main(capsys, "eval", "--bag", str(damaged_bag), "--topic", TOPIC, "--model",
                          str(default_model_dir("image")), "--out", str(out), "--quiet")
    assert code == 2 and line.startswith("vae-ros eval: error: bag ") and "is damaged" in line
    assert not out.exists()


@pytest.fixture
def image_model(tmp_path: Path) -> Path:
    """A copy of the packaged image model, without its exports."""
    copy = tmp_path / "image"
    shutil.copytree(default_model_dir("image"), copy, ignore=shutil.ignore_patterns("eval", "*.png", "*.onnx"))
    data = json.loads((copy / "model.json").read_text())
    data.pop("exports", None)
    (copy / "model.json").write_text(json.dumps(data))
    return copy


def test_export_into_a_read_only_model_directory_is_one_line(image_model: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from vae_ros.core import export

    image_model.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root writes anyway: make the write fail as it does for everyone else
            def read_only(*args: Any, **kwargs: Any) -> None:
                raise PermissionError(13, "Permission denied", str(image_model / ".encoder.onnx.tmp"))

            monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == image_model else True)
            code, line = run_main(capsys, "export", "--model", str(image_model), "--format", "onnx")
            assert code == 2 and "the model directory is read-only" in line and "--out DIR" in line
            monkeypatch.undo()
            monkeypatch.setattr(export, "_onnx_export", read_only)
            code, line = run_main(capsys, "export", "--model", str(image_model), "--format", "onnx")
            assert code == 2 and "Permission denied" in line and "--out DIR" in line
        else:
            code, line = run_main(capsys, "export", "--model", str(image_model), "--format", "onnx")
            assert code == 2 and "the model directory is read-only" in line
        assert line.startswith("vae-ros export: error: cannot write ") and str(image_model) in line
    finally:
        image_model.chmod(0o755)
    assert not (image_model / "encoder.onnx").exists()


@pytest.mark.parametrize("section, key, value, words", [
    ("image", "height", "64", "model.json image.height must be an integer, got '64'"),
    (None, "format_version", "one", "model.json format_version must be an integer, got 'one'"),
    ("arch", "channels", [32, "64"], "model.json arch.channels must be a list of integers"),
    ("arch", "obs_std", "0.1", "model.json arch.obs_std must be a finite number"),
    ("arch", "latent_dimm", 16, "model.json arch has an unknown field 'latent_dimm'"),
    (None, "training", [], "model.json training must be an object"),
])
def test_model_json_values_of_the_wrong_type_are_one_line(image_model: Path, capsys: pytest.CaptureFixture[str],
                                                          section: str | None, key: str, value: Any,
                                                          words: str) -> None:
    data = json.loads((image_model / "model.json").read_text())
    (data[section] if section else data)[key] = value
    (image_model / "model.json").write_text(json.dumps(data))
    code, line = run_main(capsys, "export", "--model", str(image_model), "--format", "onnx")
    assert code == 2 and line.startswith("vae-ros export: error: ") and words in line, line


def test_a_huge_latent_dim_is_refused_before_anything_is_allocated(image_model: Path) -> None:
    data = json.loads((image_model / "model.json").read_text())
    data["arch"]["latent_dim"] = 100_000_000  # 819 GB of decoder weights, had they been allocated
    (image_model / "model.json").write_text(json.dumps(data))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = vae_ros("export", "--model", str(image_model), "--format", "onnx")
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert "weights.safetensors does not match model.json" in line
    assert "model.json's architecture expects (2048, 100000000)" in line
    assert peak_mb < 2000, f"{peak_mb:.0f} MB"
