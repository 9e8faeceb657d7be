"""The import rule without ROS processes: what the ONNX Runtime nodes import and build leaves torch unloaded.

A fresh interpreter imports the four inference nodes' modules, then builds and runs what they build on
backend onnxruntime (encoder and decoder sessions of the packaged image model, the control model's NumPy
servo head, a dynamics ensemble planning with NumPy rollouts) and reports which of torch and
safetensors.torch are in sys.modules. test/nodes/test_lean_nodes.py checks the same on running nodes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from vae_ros.control.runtime.dynamics import DynamicsConfig, save_dynamics_dir

_SCRIPT = """
import json, sys
import numpy as np
import vae_ros.ros.nodes.encoder_node, vae_ros.ros.nodes.decoder_node, vae_ros.ros.nodes.latent_servo_node, vae_ros.ros.nodes.world_model_node
from vae_ros.control.runtime.control_model import ControlModel, control_model_dir
from vae_ros.control.runtime.dynamics import load_dynamics_dir, rollout_runtime
from vae_ros.control.runtime.planner import MpcConfig, MpcState, plan_step
from vae_ros.core.backends import create_backend
from vae_ros.core.model_dir import resolve_model_dir

backend = create_backend(resolve_model_dir("", "image"), "onnxruntime")
mean, _ = backend.encode(np.zeros((1, *backend.config.input_shape), np.float32))
backend.decode(mean)
control = ControlModel(control_model_dir(""), "onnxruntime")
control.estimate(np.zeros(control.latent_dim), np.full(control.latent_dim, 0.2))
dynamics = load_dynamics_dir(sys.argv[1])
dynamics.rollout_backend = rollout_runtime(sys.argv[2])
d = dynamics.latent_dim
config = MpcConfig(dynamics=dynamics, tolerance=0.001, samples=16, elites=4, iterations=2, horizon=4)
plan_step(MpcState(), np.zeros(d, np.float32), np.ones(d, np.float32), config)
print(json.dumps({"loaded": sorted(m for m in ("torch", "safetensors.torch") if m in sys.modules),
                  "rollouts": dynamics.rollout_backend}))
"""


def _dynamics(path: Path, d: int = 4, members: int = 2, hidden: int = 8) -> Path:
    rng = np.random.default_rng(0)
    config = DynamicsConfig(latent_dim=d, members=members, hidden=[hidden], dt=0.1, z_mean=[0.0] * d,
                            z_std=[1.0] * d, a_scale=[0.3, 0.8], dz_mean=[0.0] * d, dz_std=[0.05] * d)
    weights = {"layers.0.weight": rng.normal(0, 0.5, (members, d + 2, hidden)).astype(np.float32),
               "layers.0.bias": np.zeros((members, hidden), np.float32),
               "layers.1.weight": rng.normal(0, 0.5, (members, hidden, 2 * d)).astype(np.float32),
               "layers.1.bias": np.zeros((members, 2 * d), np.float32)}
    return save_dynamics_dir(path, config, weights)


def _run(dynamics: Path, backend: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(dynamics), backend], capture_output=True,
                            text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_onnxruntime_inference_paths_never_load_torch(tmp_path: Path) -> None:
    report = _run(_dynamics(tmp_path / "dynamics"), "onnxruntime")
    assert report == {"loaded": [], "rollouts": "numpy"}


def test_backend_torch_plans_with_torch_rollouts_and_the_probe_sees_it(tmp_path: Path) -> None:
    # Control: the same probe reports torch once the torch rollouts load it, so the test above can fail.
    report = _run(_dynamics(tmp_path / "dynamics"), "torch")
    assert report == {"loaded": ["torch"], "rollouts": "torch"}
