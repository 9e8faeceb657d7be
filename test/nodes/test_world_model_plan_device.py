"""world_model_node's plan_device at start, over real ROS 2: cuda where torch sees no GPU ends the start with one line
(a GPU machine plans there instead: test/control/test_plan_torch.py compares those plans with NumPy's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from node_helpers import make_model_dir, param_args, random_dynamics, start_node, stop_node

pytestmark = pytest.mark.ros


def test_plan_device_cuda_without_a_gpu_is_one_clear_line(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the node plans on it")
    model = make_model_dir(tmp_path / "scan", "scan", latent_dim=4, seed=3, beams=64)
    random_dynamics(tmp_path / "dynamics", 4)
    proc = start_node("world_model_node", "-r", "__ns:=/wm_plan_device", *param_args(
        model=model, dynamics=tmp_path / "dynamics", tolerance=0.01, plan_device="cuda"))
    out = stop_node(proc, timeout=30.0) if proc.wait(60.0) is None else (proc.stdout.read() if proc.stdout else "")
    assert proc.returncode == 2, out
    assert "world_model_node: error: plan_device cuda: planning on cuda was asked for" in out and "Traceback" not in out
