"""`vae-ros eval-control --baselines`: the same episodes with baseline representations, rows and a PNG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_ros.apps.cli import main

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def test_baselines_run_on_the_same_episodes_and_write_rows(tmp_path: Path) -> None:
    out = tmp_path / "control"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "vae_ros.apps.cli", "eval-control", "--seeds", "0", "--episodes", "2", "--time-limit", "15",
         "--baselines", "raw_scan", "--baseline-seeds", "2", "--baseline-poses", "100", "--baseline-steps", "50",
         "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=240, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    assert "the same controller on baseline representations" in result.stdout
    assert any(line.split()[:1] == ["raw_scan"] for line in result.stdout.splitlines()), result.stdout
    record = json.loads((out / "episodes.json").read_text())
    entry = record["baselines"]["raw_scan"]
    assert entry["in_process"]["episodes"] == 2 and 0.0 <= entry["in_process"]["success_rate"] <= 1.0
    for key in ("final_position_error_m", "final_yaw_error_deg", "time_s_median_success", "path_ratio_median_success"):
        assert key in entry["in_process"]
    assert entry["tolerance"] > 0 and entry["head"]["train_seeds"] == [2]
    # The very same start/goal pairs as the control model's.
    assert [e["episode"] for e in entry["episodes"]] == [e["episode"] for e in record["episodes"]]
    assert "--baselines raw_scan" in record["command"]
    assert (out / "episodes_comparison.png").read_bytes()[:8] == PNG


def test_baseline_seeds_must_differ_from_the_evaluation_seeds(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval-control", "--seeds", "0", "2", "--baselines", "raw_scan", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--baseline-seeds [2]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
