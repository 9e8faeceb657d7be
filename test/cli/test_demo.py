"""`vae-ros demo` end to end: real sim_node, encoders, decoder and latent_servo_node (or world_model_node) over
DDS, packaged models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from probe import NEEDS_PACKAGED_DYNAMICS, run_cli

from vae_ros.resources import default_model_dir

pytestmark = pytest.mark.ros


@pytest.mark.skipif(not (default_model_dir("control") / "model.json").is_file(),
                    reason="packaged control model not built (bash scripts/make_control_model.sh)")
def test_demo_teaches_a_goal_and_servos_back_to_it(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", str(out), "--quiet", timeout=400)
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


@NEEDS_PACKAGED_DYNAMICS
def test_demo_with_the_world_model_reaches_a_goal_behind_the_robot_and_plots_its_plans(tmp_path: Path) -> None:
    out = tmp_path / "demo_wm"
    # What a previous (servo) demo left there: its files and logs go, anything else stays.
    (out / "logs").mkdir(parents=True)
    for stale in ("logs/latent_servo_node.log", "logs/world_model_node.log", "summary.json", "demo_plans.png"):
        (out / stale).write_text("from the previous demo")
    (out / "notes.txt").write_text("mine")
    result = run_cli("demo", "--controller", "world_model", "--out", str(out), "--quiet", timeout=400)
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
    # Plan times over the planning steps only (the settled steps after convergence once made the p50 "0 ms").
    assert 0 < summary["plan_time_count"] <= summary["plans"] + 2 and summary["plan_time_p50_ms"] > 1.0
    assert f"plan time p50 / p99 ({summary['plan_time_count']:.0f} planning steps)" in result.stdout
    assert "previous demo" not in (out / "logs" / "world_model_node.log").read_text()
    assert not (out / "logs" / "latent_servo_node.log").exists()
    assert (out / "notes.txt").read_text() == "mine"
    for png in ("demo_trajectory.png", "demo_plans.png", "demo_frames.png"):
        assert (out / png).stat().st_size > 10_000
    assert "world model verdict" in result.stdout and "demo_plans.png" in result.stdout


def test_demo_rejects_bad_timeout(tmp_path: Path) -> None:
    result = run_cli("demo", "--timeout", "0", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "timeout" in result.stderr


def test_plans_the_head_cannot_read_are_not_drawn_as_poses() -> None:
    """demo_plans.png draws a plan in pose terms only where the head reads its first step near odometry."""
    from vae_ros.apps.demo import HEAD_READ_DEG, HEAD_READ_M, _pose_at, _readable

    poses = [(10.0 + 0.1 * i, 0.01 * i, 0.0, 0.5) for i in range(30)]  # (t, x, y, yaw) from odometry
    assert _pose_at(poses, 11.02) == (0.1, 0.0, 0.5)
    assert _pose_at(poses, 20.0) is None  # no odometry near that time: not readable
    assert _readable(np.array([0.1 + 0.9 * HEAD_READ_M, 0.0, 0.5]), (0.1, 0.0, 0.5))
    assert not _readable(np.array([0.1 + 1.1 * HEAD_READ_M, 0.0, 0.5]), (0.1, 0.0, 0.5))
    assert not _readable(np.array([0.1, 0.0, 0.5 + math.radians(1.1 * HEAD_READ_DEG)]), (0.1, 0.0, 0.5))
    assert _readable(np.array([0.1, 0.0, math.pi - 0.01]), (0.1, 0.0, -math.pi + 0.01))  # yaw wraps
    assert not _readable(np.array([0.1, 0.0, 0.5]), None)


def test_a_previous_demos_files_are_removed_and_nothing_else(tmp_path: Path) -> None:
    from vae_ros.apps.demo import DEMO_FILES, clear_previous_run

    (tmp_path / "logs").mkdir()
    for name in (*DEMO_FILES, "logs/world_model_node.log", "logs/sim_node.log"):
        (tmp_path / name).write_text("old")
    (tmp_path / "mine.txt").write_text("mine")
    (tmp_path / "logs" / "notes.md").write_text("mine")
    clear_previous_run(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["logs", "logs/notes.md", "mine.txt"]


@pytest.mark.skipif(not (default_model_dir("control") / "model.json").is_file(),
                    reason="packaged control model not built (bash scripts/make_control_model.sh)")
def test_route_demo_robot1_teaches_by_driving_and_robot2_repeats_from_a_displaced_start(tmp_path: Path) -> None:
    """`vae-ros demo --route`: sim_node (odom_error 1), the control encoder, vae-ros record, vae-ros teach and
    route_follower_node over DDS; robot1 teaches, robot2 (its own namespace and nodes) repeats; judged by ground
    truth."""
    from vae_ros.ros.route_file import load_route

    out = tmp_path / "demo_route"
    (out / "logs").mkdir(parents=True)
    (out / "demo_trajectory.png").write_text("from a previous servo demo")  # goes: OUT never mixes two runs
    result = run_cli("demo", "--route", "--out", str(out), "--quiet", timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "route" and summary["odom_error"] == 1.0
    assert (summary["taught_by"], summary["repeated_by"]) == ("robot1", "robot2")
    # Taught: a path of a few metres with a turn, keyframes every 0.25 m / 10 deg, from the recorded bag.
    assert summary["taught_path_length_m"] > 3.0 and summary["route_length_m"] > 3.0
    assert summary["keyframes"] >= 12
    route = load_route(out / "route")
    assert len(route) == summary["keyframes"]
    assert float(np.ptp(route.poses[:, 2])) > np.radians(60)  # the turn is in the route
    assert (out / "teach_bag" / "metadata.yaml").is_file()
    assert route.meta["latent_topic"] == "/robot1/vae/latent_stamped"  # robot1's recording ...
    # The repeat started off the route (0.15 m aside, 10 deg turned) and the follower finished it.
    assert summary["start_offset_m"] == pytest.approx(0.15, abs=1e-3)
    assert summary["start_offset_deg"] == pytest.approx(10.0, abs=0.1)
    assert summary["follower_status"] == "done", summary["follower_states"]
    # Judged by ground truth: at the last keyframe, on the taught path all the way, nothing touched.
    assert summary["final_position_error_m"] <= 0.10 and summary["final_yaw_error_deg"] <= 5.0
    assert summary["max_path_error_m"] <= 0.3 and summary["coverage"] >= 0.98 and not summary["collided"]
    assert summary["repeated_path_length_m"] > 0.8 * summary["taught_path_length_m"]
    assert summary["success"] is True
    # The odometry did drift (odom_error 1): the repeat cannot have been a replay of exact poses.
    assert summary["odometry_drift_teach_m"] > 0.005
    assert (out / "demo_route.png").stat().st_size > 20_000
    assert not (out / "demo_trajectory.png").exists()
    assert {"sim_node.log", "control_encoder_node.log", "recorder.log"} <= {
        p.name for p in (out / "logs" / "robot1").iterdir()}
    assert {"sim_node.log", "control_encoder_node.log", "route_follower_node.log"} <= {
        p.name for p in (out / "logs" / "robot2").iterdir()}
    follower_log = (out / "logs" / "robot2" / "route_follower_node.log").read_text()
    assert "route done" in follower_log  # ... repeated by robot2's follower, on robot2's topics
    assert "/robot2/vae/latent_stamped" in follower_log and "/robot2/cmd_vel" in follower_log
    assert "final position error" in result.stdout and "demo_route.png" in result.stdout


def test_route_demo_refuses_the_goal_demos_flags(tmp_path: Path) -> None:
    for args in (("--route", "--controller", "world_model"), ("--route", "--goal", "0", "0", "0"),
                 ("--odom-error", "1.0")):
        result = run_cli("demo", *args, "--out", str(tmp_path))
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "logs").exists()  # refused before anything started


def test_a_previous_route_demos_bag_and_route_go_and_folders_of_other_things_are_refused(tmp_path: Path) -> None:
    from vae_ros.apps.demo import clear_previous_run
    from vae_ros.core.errors import VaeRosError

    bag, route = tmp_path / "teach_bag", tmp_path / "route"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("old")
    (bag / "teach_bag.mcap").write_bytes(b"old")
    route.mkdir()
    (route / "route.json").write_text("{}")
    (route / "route.mcap").write_bytes(b"old")
    clear_previous_run(tmp_path)
    assert not bag.exists() and not route.exists()
    for folder, name in ((bag, "thesis.tex"), (route, "notes.txt")):
        folder.mkdir()
        (folder / name).write_text("mine")
        with pytest.raises(VaeRosError, match=str(folder)):
            clear_previous_run(tmp_path)
        assert (folder / name).read_text() == "mine"
        (folder / name).unlink()
        folder.rmdir()
