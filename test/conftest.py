"""Shared pytest set-up: isolate DDS before anything imports rclpy; seed everything; tests marked `gpu` skip,
saying why, where torch sees no CUDA device (CI, these development machines)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ros_env  # noqa: E402

ros_env.apply_to_this_process()

# launch_testing files: run by `launch_test` (test_real_launch.py does, with the real launch), not by pytest.
collect_ignore = ["launch_tests"]


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover - torch is part of the dev environment
        pass


def cuda_absent_reason() -> str:
    """Why the `gpu` tests cannot run here, or '' when torch sees a CUDA device."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return "needs a CUDA GPU: torch is not installed"
    if torch.cuda.is_available():
        return ""
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    return f"needs a CUDA GPU: torch {torch.__version__} ({build}) sees none (run scripts/gpu_check.sh on a GPU machine)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    reason = cuda_absent_reason() if gpu_items else ""
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))
