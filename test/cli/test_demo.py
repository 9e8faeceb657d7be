"""`vae-ros demo` end to end: real sim_node, encoders, decoder and latent_servo_node over DDS, packaged models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import ros_env

from vae_ros.resources import default_model_dir

pytestmark = pytest.mark.ros


@pytest.mark.skipif(not (default_model_dir("control") / "model.json").is_file(),
                    reason="packaged control model not built (bash scripts/make_control_model.sh)")
def test_demo_teaches_a_goal_and_servos_back_to_it(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "vae_ros.cli", "demo", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=400, env=ros_env.ros_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    # The robot was really moved away, and came back by latent servoing (judged by the simulator's odometry).
    assert summary["start_error_m"] > 0.5
    assert summary["servo_status"] == "converged"
    assert summary["final_position_error_m"] <= 0.10 and summary["final_yaw_error_deg"] <= 5.0
    assert summary["success"] is True
    assert summary["latent_error_last"] < summary["latent_error_first"] / 5
    assert summary["path_length_m"] > 0.4
    for png in ("demo_trajectory.png", "demo_frames.png"):
        assert (out / png).stat().st_size > 10_000
    assert "final position error" in result.stdout


def test_demo_rejects_bad_timeout(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.cli", "demo", "--timeout", "0", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=60, env=ros_env.ros_env())
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "timeout" in result.stderr
