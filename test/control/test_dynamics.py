"""The latent world model's core: command alignment, training, evaluation, the dynamics directory."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from dynamics_helpers import DT, synthetic_trajectory, trained_unicycle_dynamics

from vae_ros.control.evaluation.dynamics_eval import evaluate, format_table, save_plots
from vae_ros.control.runtime.dynamics import DYNAMICS_FILE, WEIGHTS_FILE, load_dynamics_dir
from vae_ros.control.training.dynamics import export_onnx
from vae_ros.control.training.dynamics_data import command_signal, interval_actions
from vae_ros.core.errors import ModelFileError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dynamics_dir(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("dynamics") / "unicycle"
    dyn = trained_unicycle_dynamics(path)
    return path, dyn


def test_core_is_ros_free() -> None:
    import subprocess

    code = ("import sys, vae_ros.control.runtime.dynamics, vae_ros.control.training.dynamics_data, vae_ros.control.runtime.planner, "
            "vae_ros.control.evaluation.dynamics_eval; sys.exit('rclpy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_commands_are_averaged_over_each_interval() -> None:
    latent_t = np.array([0.0, 0.1, 0.2, 0.3, 1.5])
    # A command at each latent stamp (collect's case) is the interval's action exactly ...
    change_t, values = command_signal(np.array([0.0, 0.1, 0.2]), np.array([[1.0, 0.0], [2.0, 0.5], [3.0, -1.0]]),
                                      timeout=0.5)
    actions = interval_actions(latent_t, change_t, values)
    np.testing.assert_allclose(actions[:3], [[1.0, 0.0], [2.0, 0.5], [3.0, -1.0]], atol=1e-6)
    # ... and the last one expires after the timeout: 0.5 s of 3.0 over the 1.2 s interval [0.3, 1.5).
    np.testing.assert_allclose(actions[3], [3.0 * 0.4 / 1.2, -1.0 * 0.4 / 1.2], atol=1e-6)
    # A command received 30 ms late (a live servo) mixes into its interval by time share.
    change_t, values = command_signal(np.array([0.03, 0.13]), np.array([[1.0, 0.0], [2.0, 0.0]]), timeout=0.5)
    actions = interval_actions(np.array([0.0, 0.1, 0.2]), change_t, values)
    np.testing.assert_allclose(actions[:, 0], [0.7, 0.3 * 1.0 + 0.7 * 2.0], atol=1e-6)


def test_ensemble_beats_baselines_on_held_out_data(dynamics_dir, tmp_path) -> None:
    _, dyn = dynamics_dir
    train = [synthetic_trajectory(s) for s in range(4)]
    test = [synthetic_trajectory(10, frames=300)]
    result = evaluate(dyn, test, train, horizons_s=(0.1, 0.5, 1.0))
    rows = {row["horizon_s"]: row for row in result["table"]}
    assert rows[0.5]["steps"] == 5
    for h in (0.5, 1.0):
        assert rows[h]["ensemble"]["r2"] > 0.8, rows[h]["ensemble"]
        assert rows[h]["ensemble"]["rmse"] < 0.5 * rows[h]["no_change"]["rmse"]
        assert abs(rows[h]["no_change"]["r2"]) < 0.2
        assert len(rows[h]["ensemble"]["r2_per_dim"]) == 4
        assert "pose" in rows[h]["ensemble"]  # the trajectories carry poses
    table = format_table(result)
    assert "| 0.5 s |" in table and "ensemble" in table
    written = save_plots(result, [{"step": 1.0, "train_nll": 0.0, "val_nll": 0.0}], tmp_path)
    assert all(p.stat().st_size > 1000 for p in written)


def test_dynamics_directory_round_trip_and_refusals(dynamics_dir, tmp_path) -> None:
    path, dyn = dynamics_dir
    loaded = load_dynamics_dir(path)
    z = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    a = np.tile(np.array([[0.2, 0.5]], np.float32), (5, 1))
    np.testing.assert_allclose(loaded.predict(z, a)[0], dyn.predict(z, a)[0], rtol=1e-6)
    assert loaded.dt == pytest.approx(DT)
    meta = json.loads((path / DYNAMICS_FILE).read_text())
    assert meta["format"] == "vae_ros.dynamics" and meta["members"] == 3

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / DYNAMICS_FILE).write_text((path / DYNAMICS_FILE).read_text())
    torch.save({"x": torch.zeros(1)}, pickled / WEIGHTS_FILE)
    with pytest.raises(ModelFileError, match="pickle"):
        load_dynamics_dir(pickled)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_dynamics_dir(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / DYNAMICS_FILE).write_text('{"format": "something else"}')
    (broken / WEIGHTS_FILE).write_bytes(b"{}")
    with pytest.raises(ModelFileError, match="not a vae_ros dynamics"):
        load_dynamics_dir(broken)


def test_onnx_export_matches_numpy(dynamics_dir, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    _, dyn = dynamics_dir
    out = export_onnx(dyn, tmp_path / "dynamics.onnx")
    model = onnx.load(str(out))  # pinned for JetPack 6's ONNX Runtime (vae_ros.core.export.pin_onnx_versions)
    assert (model.ir_version, [(o.domain, o.version) for o in model.opset_import]) == (8, [("", 17)])
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    z = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    a = np.random.default_rng(2).uniform(-0.5, 0.5, size=(7, 2)).astype(np.float32)
    mean, var = session.run(None, {"z": z, "action": a})
    ref_mean, ref_var = dyn.predict(z, a)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-5)
    np.testing.assert_allclose(var, ref_var, rtol=1e-4, atol=1e-7)


def test_split_rollouts_agree_in_torch_and_numpy(dynamics_dir) -> None:
    _, dyn = dynamics_dir
    rng = np.random.default_rng(4)
    z0 = rng.normal(size=4).astype(np.float32)
    actions = rng.uniform(-0.3, 0.3, size=(7, 5, 2)).astype(np.float32)  # 7 candidates over 3 members
    dyn.rollout_backend = "numpy"
    ref = dyn.rollout_split(z0, actions)
    dyn.rollout_backend = "torch"
    got = dyn.rollout_split(z0, actions)
    assert got.shape == (7, 5, 4)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # Candidate i rolls out with member i mod 3: candidate 4 is member 1's own rollout.
    z = np.broadcast_to(z0, (3, 1, 4)).copy()
    for h in range(5):
        z = dyn.step_members(z, np.broadcast_to(actions[4, h], (3, 1, 2)))
        np.testing.assert_allclose(got[4, h], z[1, 0], atol=1e-5)
