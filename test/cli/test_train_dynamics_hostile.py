"""Issue 21 §3: `vae-ros train-dynamics` on bags with NaN, infinite or absurd commands and latents.

Before: NaN or inf commands gave "dynamics: a_scale must hold 2 finite numbers", which did not name the
commands; commands or latents of 1e30 gave a LinAlgError traceback. Now such messages are dropped (a base
ignores a NaN command, as sim_node does; no robot executes 1e30 m/s, no VAE produces a latent of 1e30), with
one line that names the topic and the count, and the model trains on the rest; a bag with no usable command
is one error line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_dynamics_cli import latent_bag

from vae_ros.apps.cli import main
from vae_ros.control.runtime.dynamics import load_dynamics_dir
from vae_ros.control.training.dynamics import fit_linear
from vae_ros.control.training.dynamics_data import Trajectory
from vae_ros.core.errors import DataError

torch.set_num_threads(1)
FAST = ["--odom-topic", "", "--steps", "40", "--batch-size", "64", "--members", "2", "--hidden", "16",
        "--horizons", "0.1,0.5", "--quiet", "--no-onnx"]


def train_dynamics(*args: str) -> int:
    """`vae-ros train-dynamics ARGS` in this process, its log lines on this test's captured stderr (the CLI
    adds its handler only where the logger has none)."""
    logging.getLogger("vae_ros").handlers = []
    return main(["train-dynamics", *args])


@pytest.mark.parametrize("case, bad, words", [
    ("nan commands", {"bad_command": float("nan")}, "dropped 15 of 150 commands on /cmd_vel (15 NaN or infinite, "
                                                     "0 beyond +-100 m/s or rad/s)"),
    ("inf commands", {"bad_command": float("inf")}, "dropped 15 of 150 commands on /cmd_vel (15 NaN or infinite"),
    ("huge commands", {"bad_command": 1e30}, "dropped 15 of 150 commands on /cmd_vel (0 NaN or infinite, 15 beyond"),
    ("huge latents", {"bad_latent": 1e30}, "dropped 15 of 150 latents from /vae/latent_stamped with values beyond "
                                           "+-1000"),
])
def test_bad_commands_and_latents_are_dropped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          case: str, bad: dict[str, float], words: str) -> None:
    bag = latent_bag(tmp_path / "bag", **bad)
    out = tmp_path / "dyn"
    code = train_dynamics("--bag", str(bag), "--out", str(out), *FAST)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err and "a_scale" not in err
    dropped = [line for line in err.splitlines() if "dropped" in line]
    assert len(dropped) == 1 and dropped[0].startswith(f"vae-ros train-dynamics: warning: {bag}: {words}"), err
    dynamics = load_dynamics_dir(out)  # trained on the good messages: normalisation of the real range
    assert max(np.abs(dynamics.a_scale)) < 1.0 and max(np.abs(dynamics.z_mean)) < 10


def test_a_bag_with_no_usable_command_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = latent_bag(tmp_path / "bag", bad_command=float("nan"), every=1)
    code = train_dynamics("--bag", str(bag), "--out", str(tmp_path / "dyn"), *FAST)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"vae-ros train-dynamics: error: {bag}: none of the 150 commands on "
                                            "/cmd_vel is usable (150 NaN or infinite, 0 beyond +-100 m/s or rad/s)")
    assert not (tmp_path / "dyn" / "dynamics.json").exists()


def test_the_linear_fit_on_absurd_values_is_a_data_error() -> None:
    t = np.arange(20) * 0.1
    z = np.full((20, 3), 3e38, np.float32)
    with pytest.raises(DataError, match="the linear baseline cannot be fitted"):
        fit_linear([Trajectory("absurd", t, z, np.full((19, 2), 3e38, np.float32))])
