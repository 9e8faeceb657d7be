"""`vae-ros demo` end to end: real sim_node, encoders and decoder processes over DDS, packaged models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import ros_env

from vae_ros.resources import default_model_dir

pytestmark = pytest.mark.ros


@pytest.mark.skipif(not (default_model_dir("image") / "model.json").is_file(),
                    reason="packaged models not built (make models)")
def test_demo_closes_the_loop_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "vae_ros.cli", "demo", "--duration", "6", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=240, env=ros_env.ros_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    # The loop closed: images became latents and reconstructions, scans became latents and commands.
    assert summary["camera_frames"] > 10
    assert summary["latent_fraction"] > 0.8
    assert summary["scan_latents"] > 10
    assert summary["reconstructions"] > 10
    assert summary["commands"] > 10
    assert summary["distance_m"] > 0.2  # the robot actually drove
    assert summary["reconstruction_psnr_db"] > 15.0  # a trained model, not noise
    assert 0 < summary["camera_to_latent_p50_ms"] < 1000  # one clock, so a plausible latency
    for png in ("demo_trajectory.png", "demo_reconstructions.png"):
        assert (out / png).stat().st_size > 10_000
    assert "image latents" in result.stdout


def test_demo_rejects_bad_duration(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.cli", "demo", "--duration", "0", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=60, env=ros_env.ros_env())
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "duration" in result.stderr
