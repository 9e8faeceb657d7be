"""scripts/gpu_check.sh on a machine without a GPU (CI, here): one line saying so, exit 77, quickly; the `gpu`
marker is registered and its tests skip with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a CUDA GPU")
def test_gpu_check_without_a_gpu_is_one_line_and_exit_77() -> None:
    started = time.monotonic()
    result = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHON=sys.executable))
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 77, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA GPU here") and "Traceback" not in lines[0]
    assert time.monotonic() - started < 60  # torch's import, then nothing


def test_the_gpu_marker_is_registered_and_make_has_the_target() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "--markers"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert "@pytest.mark.gpu: needs a CUDA GPU" in result.stdout
    assert "\ngpu-check:\n\tbash scripts/gpu_check.sh\n" in (REPO / "Makefile").read_text()


def test_the_preprocess_and_plan_rows_run_on_the_cpu_in_plumbing_mode() -> None:
    result = subprocess.run(["bash", "scripts/gpu_check.sh", "--device", "cpu", "--only", "preprocess,plan"], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHON=sys.executable))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0] + " " + line.split()[1]: line for line in result.stdout.splitlines()[3:] if line.strip()}
    assert set(rows) == {"preprocess 640x480", "plan cpu"}, result.stdout
    assert all(" FAIL " not in line for line in rows.values()), result.stdout
    assert "plans differ by <= 0" in rows["plan cpu"] and "x the model alone" in rows["preprocess 640x480"]
