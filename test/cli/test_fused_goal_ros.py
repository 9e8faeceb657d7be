"""`python -m vae_ros.apps.fused_goal_ros`: a goal given as a photo alone, repeated through the real
nodes (sim_node, the fused encoder_node and latent_servo_node with goal_align over DDS, the packaged fused model,
simulated time) beside the same episode in process."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from vae_ros.core.fused import is_fused_model
from vae_ros.resources import models_dir

pytestmark = [pytest.mark.ros,
              pytest.mark.skipif(not is_fused_model(models_dir() / "fused_default"), reason="models/fused_default not built")]


def test_a_photo_goal_runs_through_the_nodes_and_is_judged_beside_the_same_episode_in_process(tmp_path: Path) -> None:
    import ros_env

    out, logs = tmp_path / "goal.json", tmp_path / "logs"
    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.fused_goal_ros", "--episodes", "1",
                             "--episode-seed", "2027", "--seeds", "7919",
                             "--ros-logs", str(logs), "--json", str(out)],
                            capture_output=True, text=True, timeout=600, env=ros_env.ros_env())
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(out.read_text())
    (in_process,) = record["episodes"]["align+look"]
    (row,) = record["ros"]["episodes"]
    assert row["start"] == pytest.approx(in_process["episode"]["start"])
    assert row["goal"] == pytest.approx(in_process["episode"]["goal"])
    assert row["in_process_success"] == in_process["success"]
    # The node made its goal from the photo by aligning it (no remembered view: view_memory:=0), after looking
    # around, and brought the robot most of the way (judged by the simulator's ground truth).
    assert "aligned with the live view through the live scan" in row["goal_source"], row
    log = (logs / "seed7919" / "latent_servo_node.log").read_text()
    assert "turns in place" in log and "new goal from servo/goal_image (aligned" in log, log[-2000:]
    start_distance = math.dist(row["start"][:2], row["goal"][:2])
    assert math.isfinite(row["final_position_error"]) and row["final_position_error"] < start_distance / 2
