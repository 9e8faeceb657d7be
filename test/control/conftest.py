"""Fixtures of the world-model planner tests (test_world_model_control.py, test_world_model_localise.py): the
packaged control model and its differential-drive MPC configuration, each made once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from vae_ros.control.runtime.control_model import ControlModel
from vae_ros.control.runtime.dynamics import load_dynamics_dir
from vae_ros.control.runtime.planner import MpcConfig, differential_drive_config

MODEL = Path(__file__).resolve().parents[2] / "models" / "control_default"


@pytest.fixture(scope="module")
def model() -> ControlModel:
    return ControlModel(MODEL)


@pytest.fixture(scope="module")
def config(model: ControlModel) -> MpcConfig:
    assert model.tolerance is not None
    return differential_drive_config(load_dynamics_dir(MODEL / "dynamics"), model.head, model.tolerance)
