"""bench/plan_time.py: the closed-loop plan-step timing runs and reports what it measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_plan_time_bench_times_the_plans_of_a_hard_episode(tmp_path: Path) -> None:
    out = tmp_path / "plan_time.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "bench/plan_time.py", "--episodes", "1", "--busy", "0", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    quiet = json.loads(out.read_text())["quiet"]
    assert quiet["plans"] > 10  # a hard start is planned for, step after step
    assert 0 < quiet["p50_ms"] <= quiet["p90_ms"] <= quiet["p99_ms"] <= quiet["max_ms"]
    assert 0.0 <= quiet["over_budget"] <= 1.0
    assert "| quiet |" in proc.stdout


def test_plan_time_bench_refuses_a_bad_count() -> None:
    proc = subprocess.run([sys.executable, "bench/plan_time.py", "--episodes", "0"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "--episodes must be >= 1" in proc.stderr
