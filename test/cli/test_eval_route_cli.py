"""`vae-ros eval-route` end to end: real MuJoCo worlds, the packaged control model through ONNX Runtime, the route
follower; results judged by the simulator's ground truth, written as JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from probe import run_cli


def test_eval_route_compares_the_lidar_latent_with_odometry_replay(tmp_path: Path) -> None:
    out = tmp_path / "route"
    result = run_cli("eval-route", "--seeds", "7919", "--routes", "1", "--modality", "odometry", "lidar",
                     "--lighting", "default", "--relocalise", "4", "--out", str(out), "--json",
                     str(tmp_path / "r.json"), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "seed 7919 route 1/1" in result.stderr  # progress
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["summary"]) == {"odometry@default", "control@default"}
    rows = {r["method"]: r for r in report["repeats"]}
    assert set(rows) == {"odometry", "control"}
    # Same route, same start, same odometry noise: the latent match corrects what the replay cannot.
    assert rows["control"]["final_position_error"] < rows["odometry"]["final_position_error"]
    assert rows["control"]["mean_path_error"] < rows["odometry"]["mean_path_error"]
    assert rows["control"]["keyframes"] >= 20 and 5.0 <= rows["control"]["route_length"] <= 16.0
    reloc = report["summary"]["control@default"]["relocalise"]
    assert reloc["queries"] == 4
    for name in ("route_paths.png", "route_success.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "control@default" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--odom-error", "11"], "--odom-error"),
    (["--modality", "sonar"], "--modality"),
    (["--model", "/nonexistent/model"], "does not exist"),
    (["--relocalise", "-1"], "--relocalise"),
])
def test_eval_route_bad_arguments_give_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("eval-route", "--routes", "1", "--out", str(tmp_path / "o"), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
