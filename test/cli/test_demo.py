"""`vae-ros demo` end to end: real sim_node, encoders, decoder and latent_servo_node (or world_model_node) over
DDS, packaged models."""

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
    # The goal was given as the camera frame seen there, recognised among the servo's remembered views.
    assert summary["goal_source"].startswith("servo/goal_image (remembered view, NCC"), summary["goal_source"]
    assert summary["servo_status"] == "converged"
    assert summary["final_position_error_m"] <= 0.10 and summary["final_yaw_error_deg"] <= 5.0
    assert summary["success"] is True
    assert summary["latent_error_last"] < summary["latent_error_first"] / 5
    assert summary["path_length_m"] > 0.4
    for png in ("demo_trajectory.png", "demo_frames.png"):
        assert (out / png).stat().st_size > 10_000
    assert not (out / "demo_plans.png").exists()  # plans only with --controller world_model
    assert "final position error" in result.stdout


@pytest.mark.skipif(not (default_model_dir("control") / "dynamics" / "dynamics.json").is_file(),
                    reason="packaged control model or its dynamics not built (scripts/make_control_model.sh, "
                           "scripts/make_dynamics_model.sh)")
def test_demo_with_the_world_model_reaches_a_goal_behind_the_robot_and_plots_its_plans(tmp_path: Path) -> None:
    out = tmp_path / "demo_wm"
    result = subprocess.run(
        [sys.executable, "-m", "vae_ros.cli", "demo", "--controller", "world_model", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=400, env=ros_env.ros_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["controller"] == "world_model"
    assert summary["goal_source"].startswith("servo/goal_image (remembered view"), summary["goal_source"]
    # A start the servo cannot handle (the goal behind, turned > 90 deg), and the MPC brought it back.
    assert summary["start_error_m"] > 1.0 and summary["start_error_deg"] > 90.0
    assert summary["servo_status"] == "converged" and summary["success"] is True
    assert summary["final_position_error_m"] <= 0.10 and summary["final_yaw_error_deg"] <= 5.0
    assert summary["latent_error_last"] < summary["latent_error_first"] / 5
    # world_model_node published its plans on world_model/planned_latents, and the demo plotted them.
    assert summary["plans"] >= 5
    assert (out / "logs" / "world_model_node.log").is_file()
    assert not (out / "logs" / "latent_servo_node.log").exists()
    for png in ("demo_trajectory.png", "demo_plans.png", "demo_frames.png"):
        assert (out / png).stat().st_size > 10_000
    assert "world model verdict" in result.stdout and "demo_plans.png" in result.stdout


def test_demo_rejects_bad_timeout(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.cli", "demo", "--timeout", "0", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=60, env=ros_env.ros_env())
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "timeout" in result.stderr
