"""`vae-ros export --prune`: what cannot work gives one clear error line and exit 2, never a traceback, and writes
nothing. (The pruning itself, end to end, is test/core/test_prune.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vae_ros.apps.cli import main
from vae_ros.resources import models_dir

REPO = Path(__file__).resolve().parents[2]


def _one_error_line(capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.endswith(" ...")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("model", "args", "fragments"), [
    ("image_default", ["--prune", "0"], ["in (0, 1)"]),
    ("image_default", ["--prune", "1.5"], ["in (0, 1)"]),
    ("image_default", ["--prune", "-0.25"], ["in (0, 1)"]),
    ("image_default", ["--prune", "0.99"], ["stage 0 with no channel"]),  # 16 channels * 0.01 rounds to 0
    ("scan_default", ["--prune", "0.001"], ["removes no channel"]),
    ("fused_default", ["--prune", "0.5"], ["fused model"]),
    # The packaged model's training bag is not on this machine, and no data was given.
    ("scan_default", ["--prune", "0.5"], ["--bag PATH --topic NAME or --images DIR"]),
    ("scan_default", ["--prune", "0.5", "--fine-tune-epochs", "-1"], ["--fine-tune-epochs must be >= 0"]),
])
def test_bad_arguments_exit_2_with_one_line(model: str, args: list[str], fragments: list[str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pruned"
    assert main(["export", "--model", str(models_dir() / model), "--out", str(out), *args]) == 2
    _one_error_line(capsys, *fragments)
    assert not out.exists()


def test_prune_needs_out_and_never_writes_into_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = models_dir() / "scan_default"
    assert main(["export", "--model", str(model), "--prune", "0.5"]) == 2
    _one_error_line(capsys, "pass --out DIR")
    assert main(["export", "--model", str(model), "--prune", "0.5", "--out", str(model)]) == 2
    _one_error_line(capsys, "not --model itself")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert main(["export", "--model", str(model), "--prune", "0.5", "--out", str(tmp_path / "taken")]) == 2
    _one_error_line(capsys, "not an empty directory")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert main(["export", "--model", str(model), "--json", str(tmp_path / "r.json")]) == 2
    _one_error_line(capsys, "--json is the pruning report")


def test_a_bad_fraction_from_the_shell_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", "export", "--model",
                             str(models_dir() / "image_default"), "--prune", "1", "--out", str(tmp_path / "p")],
                            capture_output=True, text=True, timeout=240, cwd=REPO)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if not line.endswith(" ...")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "in (0, 1)" in lines[0]


def test_bench_prune_needs_a_bag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "prune"]) == 2
    _one_error_line(capsys, "--prune-bag")
