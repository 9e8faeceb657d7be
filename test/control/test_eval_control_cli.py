"""`vae-ros eval-control --basin` end to end on a tiny grid, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vae_ros.apps.cli import main

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
TINY_GRID = ["--extent", "0.3", "--step", "0.1", "--yaw-extent", "10", "--yaw-step", "5", "--start-min", "0.2"]


def _vae_ros(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=240, cwd=REPO)


def test_basin_runs_end_to_end_and_writes_json_and_pngs(tmp_path: Path) -> None:
    out = tmp_path / "basin"
    result = _vae_ros("eval-control", "--basin", "--representations", "pose", "pixels", "pca",
                      "models/image_default", "models/scan_default", "raw_scan", "--seeds", "0", "--goals", "1",
                      *TINY_GRID, "--pca-fit-seeds", "2", "--pca-fit-samples", "40", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    names = ["pose", "pixels", "pca", "image_default", "scan_default", "raw_scan"]
    for name in names:
        assert f"| {name} |" in result.stdout
    record = json.loads((out / "basin.json").read_text())
    assert list(record["representations"]) == names
    assert record["config"]["extent"] == 0.3 and record["seeds"] == [0] and len(record["goals"]) == 1
    assert record["command"].startswith("vae-ros eval-control --basin --representations pose pixels")
    starts = record["goals"][0]["starts"]
    assert starts > 50
    for name in names:
        row = record["representations"][name]
        assert row["starts"] == starts and 0.0 <= row["greedy_pct"] <= 100.0
    assert record["representations"]["pose"]["greedy_pct"] == 100.0
    assert record["representations"]["pose"]["jacobian_pct"] == 100.0
    for png in ["basin_success.png", "basin_distance.png", *[f"basin_map_{n}.png" for n in names]]:
        assert (out / png).read_bytes()[:8] == PNG, png


def _one_error_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines and fragment in lines[-1], result.stderr
    assert len(lines) <= 2  # argparse errors add the usage line


def test_bad_model_directory_is_one_line(tmp_path: Path) -> None:
    result = _vae_ros("eval-control", "--basin", "--representations", "no/such_model", "--out", str(tmp_path))
    _one_error_line(result, "no/such_model")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "fragment"), [
    (["--basin", "--step", "-0.1"], "--step"),
    (["--basin", "--goals", "0"], "--goals"),
    (["--basin", "--seeds", "x"], "--seeds"),
    (["--basin", "--step", "0.5", "--extent", "0.3"], "step"),
    (["--basin", "--representations", "pose", "pose"], "twice"),
    (["--basin", "--representations", "pca", "--seeds", "2"], "pca-fit-seeds"),
    (["--ros", "-1"], "--ros must be"),
    (["--ros", "1", "--ros-param", "samples=60"], "--ros-param"),
    (["--ros-param", "samples:=60"], "give --ros N"),
    (["--model", "/nonexistent/control"], "does not exist"),
    (["--drop", "scan"], "not one"),  # the packaged control model is not a fused model
    (["--drop", "sonar"], "--drop"),
    (["--drop-after", "-1"], "--drop-after"),
    (["--localiser", "turned_scan"], "--controller world_model"),  # the servo has no look-around
    (["--controller", "world_model", "--localiser", "sideways"], "--localiser"),
])
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], fragment: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["eval-control", *args, "--out", str(tmp_path / "out")])
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert lines and fragment in lines[-1] and len(lines) <= 2, captured.err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_basin_options() -> None:
    result = _vae_ros("eval-control", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: vae-ros eval-control")
    for option in ("--basin", "--representations", "--pca-fit-seeds", "--yaw-step"):
        assert option in result.stdout
