"""`vae-ros bench`: the models benchmark times every backend available here against torch eager, and the
nodes part is dispatched to the node benchmark when its code exists (faked here to test the dispatch)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vae_ros.apps.cli import main
from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.export import export_onnx
from vae_ros.core.model_dir import save_model_dir
from vae_ros.core.models import build_model

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--repeats", "3", "--warmup", "1", "--batch", "4"]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = ModelConfig("image", arch=ArchSpec(latent_dim=4, channels=[8, 16, 16]),
                         image=ImageSpec(height=32, width=32, channels=3))
    return save_model_dir(tmp_path / "model", config, build_model(config).eval())


def test_bench_models_times_every_cpu_backend(model_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    assert main(["bench", "models", "--model", str(model_dir), *QUICK, "--threads", "1", "--json", str(out)]) == 0
    assert torch.get_num_threads() == threads  # the process's setting is restored
    table = capsys.readouterr().out
    for name in ("torch", "torchscript", "onnxruntime", "onnxruntime-int8"):
        assert f"\n{name} " in table
    assert "tensorrt" in table and "skipped" in table  # no TensorRT here, and the table says so
    report = json.loads(out.read_text())
    rows = {row["backend"]: row for row in report["results"]}
    assert set(rows) == {"torch", "torchscript", "onnxruntime", "onnxruntime-int8"}
    assert rows["torch"]["latency_speedup"] == 1.0 and rows["torch"]["throughput_speedup"] == 1.0
    for row in rows.values():
        assert row["latency_ms"] > 0 and row["throughput"] > 0
        assert row["latency_speedup"] == pytest.approx(rows["torch"]["latency_ms"] / row["latency_ms"])
    assert report["batch"] == 4 and report["repeats"] == 3
    assert report["torch_threads"] == report["onnxruntime_threads"] == 1
    # The user's model directory is left as it was: missing exports were made in a temporary copy.
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.json", "weights.safetensors"]
    assert "exported for this run" in rows["onnxruntime"]["note"]


def test_bench_uses_existing_exports(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export_onnx(model_dir)
    assert main(["bench", "models", "--model", str(model_dir), *QUICK, "--backends", "onnxruntime"]) == 0
    table = capsys.readouterr().out
    assert "\ntorch " in table and "\nonnxruntime " in table  # torch is always there as the reference
    assert "exported for this run" not in table and "torchscript" not in table


def test_bench_bad_arguments(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "models", "--model", str(model_dir), "--backends", "tflite"]) == 2
    assert "unknown backend" in capsys.readouterr().err
    assert main(["bench", "models", "--model", str(model_dir), "--repeats", "0"]) == 2
    assert main(["bench", "models", "--model", str(tmp_path / "missing"), *QUICK]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bench_nodes_dispatch(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    import vae_ros.apps.benchmarks.nodes as nodes

    calls: list[argparse.Namespace] = []
    monkeypatch.setattr(nodes, "run_from_args", lambda args: calls.append(args) or 0)  # it starts real nodes
    assert main(["bench", "nodes", "--model", str(model_dir)]) == 0
    assert len(calls) == 1 and calls[0].model == str(model_dir)
    # No target: models, then nodes, then footprint (faked too: it starts real nodes; its own test runs it).
    import vae_ros.apps.benchmarks.footprint as footprint

    footprints: list[argparse.Namespace] = []
    monkeypatch.setattr(footprint, "run_from_args", lambda args: footprints.append(args) or 0)
    assert main(["bench", "--model", str(model_dir), *QUICK, "--backends", "torch"]) == 0
    assert len(calls) == 2 and len(footprints) == 1 and "\ntorch " in capsys.readouterr().out


def test_bench_models_wrapper_runs_from_the_repository(model_dir: Path) -> None:
    result = subprocess.run([sys.executable, "bench/models.py", "--model", str(model_dir), *QUICK,
                             "--backends", "torch"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "encoder benchmark" in result.stdout and "\ntorch " in result.stdout


def test_bench_train_times_the_training_loop_against_a_bare_loop(model_dir: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Tiny and few steps: the fields and the table, not the speed (no timing assertions on a shared CPU)."""
    out = tmp_path / "train.json"
    assert main(["bench", "train", "--model", str(model_dir), "--batch", "4", "--windows", "3", "--steps", "2",
                 "--warmup", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "training step loop vs a bare loop: image model" in table and "batch 4, fp32" in table
    assert "\nvae_ros " in table and "\nbare " in table and "target of 0.9x on cpu" in table
    report = json.loads(out.read_text())
    assert (report["device"], report["batch"], report["precision"]) == ("cpu", 4, "fp32")
    assert (report["windows"], report["steps_per_window"], report["warmup_steps"]) == (3, 2, 1)
    assert report["input_shape"] == [3, 32, 32] and report["target"] == 0.9
    assert len(report["project_windows"]) == len(report["bare_windows"]) == 3
    assert report["project_samples_per_s"] > 0 and report["bare_samples_per_s"] > 0
    pairs = [p / b for p, b in zip(report["project_windows"], report["bare_windows"], strict=True)]
    assert report["window_ratios"] == pytest.approx(pairs, abs=1e-3)
    assert report["ratio"] == pytest.approx(sorted(pairs)[1], abs=1e-3)  # the median of three
    # Without --steps the window length comes from the warm-up's step time; a bad option is one clear line.
    assert main(["bench", "train", "--model", str(model_dir), "--batch", "4", "--windows", "1", "--warmup", "1"]) == 0
    assert main(["bench", "train", "--model", str(model_dir), "--batch", "1"]) != 0
    assert "--batch must be >= 2" in capsys.readouterr().err
    assert main(["bench", "train", "--model", str(model_dir), "--device", "cuda"]) != 0  # no CUDA here
    assert "CUDA is not available" in capsys.readouterr().err


def test_bench_train_at_bf16_and_channels_last(model_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Both loops at the same settings: the table and the JSON say which; bad values are one line, exit 2."""
    out = tmp_path / "train.json"
    assert main(["bench", "train", "--model", str(model_dir), "--batch", "4", "--windows", "1", "--steps", "2",
                 "--warmup", "1", "--precision", "bf16", "--channels-last", "--json", str(out)]) == 0
    assert "batch 4, bf16, channels_last, torch" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert (report["precision"], report["channels_last"], report["compiled"]) == ("bf16", True, False)
    assert report["project_samples_per_s"] > 0 and report["bare_samples_per_s"] > 0
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "train", "--model", str(model_dir), "--precision", "fp8"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--precision" in err[0]
