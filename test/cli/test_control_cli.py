"""Control-fit training end to end through the CLI: collect --policy cover -> train --pose-topic -> a model
directory the servo can use; eval-control's closed-loop episodes on the packaged control model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ros_env

from vae_ros.resources import default_model_dir

CONTROL = default_model_dir("control")


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ros_env.ros_env(OMP_NUM_THREADS="1"))


@pytest.fixture(scope="module")
def cover_bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("cover")
    bags = []
    for seed in (2, 3):
        bag = root / f"world{seed}"
        result = _cli("collect", "--out", str(bag), "--duration", "20", "--seed", str(seed), "--policy", "cover",
                      "--no-camera", "--quiet")
        assert result.returncode == 0, result.stderr
        bags.append(bag)
    return bags


def test_cover_collection_places_the_robot_in_clusters_without_commands(cover_bags: list[Path]) -> None:
    from rosbags.highlevel import AnyReader

    with AnyReader([cover_bags[0]]) as reader:
        assert "/cmd_vel" not in reader.topics  # the robot is placed, not driven
        odom = [c for c in reader.connections if c.topic == "/odom"]
        poses = []
        for connection, _, raw in reader.messages(connections=odom):
            p = reader.deserialize(raw, connection.msgtype).pose.pose.position
            poses.append((p.x, p.y))
    poses = np.array(poses)
    assert len(poses) == 200
    # 50 poses per anchor within 1.3 m of it: the first cluster is tight, the whole recording is not.
    first = poses[:50]
    assert np.max(np.linalg.norm(first - first.mean(0), axis=1)) < 2.6
    assert np.ptp(poses[:, 0]) > 1.0 or np.ptp(poses[:, 1]) > 1.0


def test_train_with_pose_topic_writes_a_control_model(cover_bags: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "control"
    args = ["train", "--topic", "scan", "--pose-topic", "odom", "--out", str(out), "--steps", "60",
            "--arch-channels", "8,16,32,32", "--batch-size", "32", "--quiet"]
    for bag in cover_bags:
        args += ["--bag", str(bag)]
    result = _cli(*args)
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "model.json").read_text())
    control = config["training"]["control"]
    assert config["modality"] == "scan" and control["metric"]["weight"] > 0
    assert control["head"]["file"] == "servo_head.safetensors" and (out / "servo_head.safetensors").is_file()
    assert "tolerance" in control  # calibrated, or None with the reason when 60 steps are too few
    assert len(config["training"]["sources"]) == 2 and config["training"]["samples"]["train"] > 300
    assert (out / "training_curves.png").is_file()
    from vae_ros.control.runtime.control_model import ControlModel

    model = ControlModel(out, backend="torch")
    assert model.estimate(np.zeros(16), np.ones(16)).shape == (3,)


def test_several_bags_need_a_pose_topic(cover_bags: list[Path], tmp_path: Path) -> None:
    result = _cli("train", "--bag", str(cover_bags[0]), "--bag", str(cover_bags[1]), "--topic", "scan",
                  "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--pose-topic" in result.stderr


@pytest.mark.skipif(not (CONTROL / "model.json").is_file(), reason="packaged control model not built")
def test_eval_control_episodes_on_the_packaged_model(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = _cli("eval-control", "--seeds", "0", "--episodes", "4", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "episodes.json").read_text())
    summary = record["in_process"]
    assert summary["episodes"] == 4 and record["seeds"] == [0]
    for episode in record["episodes"]:
        start, goal = episode["episode"]["start"], episode["episode"]["goal"]
        assert 0.3 <= math.hypot(start[0] - goal[0], start[1] - goal[1]) <= 1.0
        assert episode["success"] == (episode["final_position_error"] <= 0.10
                                      and math.degrees(episode["final_yaw_error"]) <= 5.0)
    assert summary["success_rate"] >= 0.5  # 87 % over 100 held-out episodes; 4 seeded ones here
    for png in ("episodes_trajectories.png", "episodes_latent_error.png", "episodes_starts.png"):
        assert (out / png).stat().st_size > 10_000
    assert "world seed 0" in result.stdout


@pytest.mark.skipif(not (CONTROL / "model.json").is_file(), reason="packaged control model not built")
def test_eval_control_compares_with_and_without_the_scan_safety_layer_on_the_same_episodes(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = _cli("eval-control", "--seeds", "7919", "--episodes", "2", "--episode-seed", "123", "--scan-safety",
                  "both", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "episodes.json").read_text())
    assert record["scan_safety"] is True and "--scan-safety both" in record["command"]
    unchecked = record["without_scan_safety"]
    assert [e["episode"] for e in unchecked["episodes"]] == [e["episode"] for e in record["episodes"]]
    for summary in (record["in_process"], unchecked["in_process"]):
        assert summary["episodes"] == 2 and summary["min_clearance_m"] > -1.0
    assert all(e["safety_slowed"] == e["safety_stopped"] == 0 for e in unchecked["episodes"])
    assert "the same episodes without the scan safety layer" in result.stdout
    assert "min clearance" in result.stdout
