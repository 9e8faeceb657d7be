"""bench/plan_device.py and bench/preprocess_device.py (scripts/gpu_check.py's GPU rows, here on the CPU): they run,
report what they measured, find the device paths equal to the CPU paths, and refuse bad arguments in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_plan_device_bench_times_numpy_and_torch_and_their_plans_agree(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    proc = _run("bench/plan_device.py", "--devices", "numpy,torch-cpu,cuda", "--rounds", "2", "--warmup", "1",
                "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["baseline"] == "numpy" and set(report["rows"]) >= {"numpy", "torch-cpu"}
    assert report["planner"]["samples"] == 150 and report["planner"]["horizon"] == 30
    for row in report["rows"].values():
        assert row["median_ms"] > 0 and row["speedup_vs_first"] > 0
        assert row["max_plan_difference"] <= 1e-5  # the same draws: the same plans
    assert "cuda" in report["rows"] or "sees no CUDA device" in report["skipped"]["cuda"]
    assert "torch-cpu" in proc.stdout


def test_plan_device_bench_refuses_a_cuda_baseline_and_unknown_variants() -> None:
    for devices in ("cuda,numpy", "numpy,gpu"):
        proc = _run("bench/plan_device.py", "--devices", devices)
        assert proc.returncode == 2 and "--devices" in proc.stderr and "Traceback" not in proc.stderr


def test_preprocess_device_bench_reports_rows_and_the_input_difference(tmp_path: Path) -> None:
    out = tmp_path / "preprocess.json"
    proc = _run("bench/preprocess_device.py", "--rounds", "2", "--warmup", "1", "--width", "160", "--height", "120",
                "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["rows"]) == {"model alone", "preprocess cpu", "preprocess device", "resize only, cpu",
                                   "resize only, device"}
    assert report["rows"]["model alone"]["vs_model"] == 1.0
    assert report["input_difference"]["max"] <= 1.0 / 255.0 + 1e-6
    assert set(report["interpolate_vs_cv2"]) == {"area", "bilinear antialias", "bicubic antialias"}
    assert "preprocess device" in proc.stdout
