"""Shared pytest set-up: isolate DDS before anything imports rclpy; seed everything."""

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
