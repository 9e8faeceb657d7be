"""`vae-ros eval-control --ros`: the in-process episodes repeated through the real nodes (sim_node, encoder_node
and world_model_node over DDS, packaged models, in real time) and compared one by one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from probe import NEEDS_PACKAGED_DYNAMICS, run_cli

pytestmark = pytest.mark.ros


@NEEDS_PACKAGED_DYNAMICS
def test_the_world_model_runs_the_same_episode_through_ros(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    # 60 candidates per CEM iteration instead of 150 in the node (--ros-param): on a loaded 2-core CI machine the
    # full plan can outlast stale_timeout, and the node then drops it (it stands still, as it should).
    result = run_cli("eval-control", "--controller", "world_model", "--seeds", "0", "--episodes", "1", "--ros", "1",
                     "--ros-param", "samples:=60", "--time-limit", "30", "--out", str(out), "--quiet", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((out / "episodes.json").read_text())
    assert record["controller"] == "world_model"
    in_process = record["episodes"][0]
    (row,) = record["ros"]["episodes"]
    # The same episode, placed in the simulator node: the same start and goal as in process.
    assert row["seed"] == 0 and row["in_process_success"] == in_process["success"]
    assert row["start"] == pytest.approx(in_process["episode"]["start"])
    assert row["goal"] == pytest.approx(in_process["episode"]["goal"])
    # world_model_node (not the servo) drove, from the taught goal given back after the robot was placed,
    # and brought the robot most of the way (judged by the simulator's ground truth).
    log = (out / "ros_logs" / "seed0" / "world_model_node.log").read_text()
    assert "servo/goal_latent" in log
    assert "CEM 60 x 3" in log  # the --ros-param reached the node
    start_distance = math.dist(row["start"][:2], row["goal"][:2])
    assert math.isfinite(row["final_position_error"]) and row["final_position_error"] < start_distance / 2
    assert record["ros"]["agreement"] in (0.0, 1.0)
