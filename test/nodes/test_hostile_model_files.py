"""Issue 21 §3: controllers started on hostile control-model files refuse to start, with one clear line.

world_model_node with `servo_head.safetensors` linked to /dev/zero said at INFO level that it planned on the
latent distance (latent_servo_node refused the same file); with a 10 GB sparse head it passed 2 GB; it drove
on dynamics weights that were all NaN, and at full speed on dynamics trained on another model's latents
(only a start-up warning). Every case now ends the process with exit status 2 and one line naming the file.
All cases start together (short-lived processes) to keep the module quick.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile_inputs import safetensors_claiming
from node_helpers import param_args, split_peak_rss, start_node

from vae_ros.resources import default_model_dir

pytestmark = pytest.mark.ros

HEAD = "servo_head.safetensors"


def _control_copy(path: Path) -> Path:
    shutil.copytree(default_model_dir("control"), path, ignore=shutil.ignore_patterns("eval", "*.png"))
    return path


def _zero_head(model: Path) -> None:
    (model / HEAD).unlink()
    (model / HEAD).symlink_to("/dev/zero")


def _sparse_head(model: Path) -> None:
    safetensors_claiming(model / HEAD, {"net.0.weight": ("F32", [(10 << 30) // 4])})


def _nan_dynamics(model: Path) -> None:
    from safetensors.numpy import load_file, save_file

    weights = model / "dynamics" / "weights.safetensors"
    save_file({k: np.full_like(v, np.nan) for k, v in load_file(str(weights)).items()}, str(weights))


def _other_models_dynamics(model: Path) -> None:
    """The dynamics as trained on the packaged scan model's latents (same size, another encoder)."""
    from vae_ros.core.backends import weights_digest

    config = model / "dynamics" / "dynamics.json"
    data = json.loads(config.read_text())
    data["latent_model"]["weights_sha256"] = weights_digest(default_model_dir("scan"))
    config.write_text(json.dumps(data))


CASES = {
    "world_model zero head": ("world_model_node", _zero_head),
    "latent_servo zero head": ("latent_servo_node", _zero_head),
    "world_model sparse head": ("world_model_node", _sparse_head),
    "world_model nan dynamics": ("world_model_node", _nan_dynamics),
    "world_model other model's dynamics": ("world_model_node", _other_models_dynamics),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hostile_control")
    models, procs = {}, {}
    for index, (name, (module, spoil)) in enumerate(CASES.items()):
        models[name] = _control_copy(root / f"model{index}")
        spoil(models[name])
        procs[name] = start_node(module, "-r", f"__ns:=/hostile{index}", *param_args(model=models[name]),
                                 peak_rss=True)
    results: dict[str, Any] = {"models": models}
    peaks: list[float] = []
    started = time.monotonic()
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=max(1.0, 120 - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:  # still running: it started on the file instead of refusing it
            proc.kill()
            out, _ = proc.communicate()
        out, peak_mb = split_peak_rss(out)  # each node's own peak (test/peak_rss.py: not the test process's)
        peaks.append(peak_mb)
        results[name] = (proc.returncode, [line for line in out.splitlines() if line.strip()])
    results["peak_mb"] = max(peaks)
    return results


@pytest.mark.parametrize("case, words", [
    ("world_model zero head", "is a link to /dev/zero, which is a character device, not a regular file; refused"),
    ("latent_servo zero head", "is a link to /dev/zero, which is a character device, not a regular file; refused"),
    ("world_model sparse head", "bytes, more than the 268435456 bytes allowed for it; refused"),
])
def test_a_servo_head_that_cannot_be_read_stops_both_controllers(outcomes: dict[str, Any], case: str,
                                                                 words: str) -> None:
    code, lines = outcomes[case]
    node = case.split()[0] + "_node"
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"{node}: error: {outcomes['models'][case] / HEAD} ") and lines[0].endswith(words)


def test_nan_dynamics_weights_stop_the_world_model(outcomes: dict[str, Any]) -> None:
    code, lines = outcomes["world_model nan dynamics"]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("world_model_node: error: dynamics weights: tensor ")
    assert lines[0].endswith("holds NaN or infinite values")


def test_dynamics_of_another_model_stop_the_world_model(outcomes: dict[str, Any]) -> None:
    code, lines = outcomes["world_model other model's dynamics"]
    model = outcomes["models"]["world_model other model's dynamics"]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"world_model_node: error: dynamics {model / 'dynamics'} was trained on the "
                               f"latents of another model than {model}")
    assert "train-dynamics --model" in lines[0]


def test_hostile_files_cost_bounded_memory(outcomes: dict[str, Any]) -> None:
    assert outcomes["peak_mb"] < 1000, f"{outcomes['peak_mb']:.0f} MB"
