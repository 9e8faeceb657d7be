"""The pose-metric term, the tolerance calibration and the servo head's NumPy inference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vae_ros.control.runtime.pose_head import HEAD_FILE, PoseHeadNumpy
from vae_ros.control.training.metric import (
    MetricSpec,
    calibrate_tolerance,
    metric_loss,
    pose_distance,
    spearman,
)
from vae_ros.control.training.pose_head_train import RelativePoseHead, head_loss, relative_pose_targets
from vae_ros.core.errors import ConfigError, InputError, ModelFileError


def _poses(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.column_stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n),
                                             rng.uniform(-1.2, 1.2, n)]))


def test_pose_distance_wraps_yaw_and_weights_it() -> None:
    poses = torch.tensor([[0.0, 0.0, math.pi - 0.1], [0.0, 0.0, -math.pi + 0.1], [0.3, 0.4, math.pi - 0.1]])
    d = pose_distance(poses, yaw_weight=2.0)
    assert float(d[0, 1]) == pytest.approx(0.4, abs=1e-6)  # 0.2 rad across the wrap, x 2 m/rad
    assert float(d[0, 2]) == pytest.approx(0.5, abs=1e-6)


def test_metric_loss_is_zero_for_an_isometric_latent_and_positive_otherwise() -> None:
    poses = _poses(32)
    spec = MetricSpec(yaw_weight=1.0, scale=1.0, radius=10.0)
    isometric = torch.cat([poses[:, :2], poses[:, 2:3]], dim=1)  # (x, y, yaw): exact for |dyaw| < pi
    assert float(metric_loss(isometric, poses, spec)) < 1e-6
    assert float(metric_loss(2.0 * isometric, poses, spec)) > 0.1
    assert float(metric_loss(torch.randn(32, 16, generator=torch.Generator().manual_seed(0)), poses, spec)) > 0.1


def test_spearman_of_monotone_and_reversed() -> None:
    a = np.arange(20.0)
    assert spearman(a, a ** 3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)


def test_calibrated_tolerance_separates_near_poses_when_the_latent_is_the_pose() -> None:
    rng = np.random.default_rng(0)
    poses = np.column_stack([rng.uniform(-0.5, 0.5, 3000), rng.uniform(-0.5, 0.5, 3000), rng.uniform(-0.5, 0.5, 3000)])
    groups = np.zeros(3000, dtype=int)
    calibration = calibrate_tolerance(poses.copy(), poses, groups, rng)
    # With z = pose, |dz| < tol keeps position < 0.10 m and yaw < 5 deg (0.087 rad) for tol near 0.1.
    assert 0.05 < calibration["tolerance"] <= 0.15 and calibration["precision"] >= 0.95
    with pytest.raises(ConfigError):  # a latent that is pure noise cannot be calibrated
        calibrate_tolerance(rng.normal(size=(3000, 16)), poses, groups, rng)


def test_relative_pose_targets_are_the_goal_in_the_robot_frame() -> None:
    poses = torch.tensor([[1.0, 1.0, math.pi / 2], [1.0, 2.0, math.pi / 2 + 0.3]])
    target = relative_pose_targets(poses, torch.tensor([0]), torch.tensor([1]))[0]
    assert target[0].item() == pytest.approx(1.0, abs=1e-6)  # straight ahead of a robot facing +y
    assert target[1].item() == pytest.approx(0.0, abs=1e-6)
    assert math.atan2(target[2].item(), target[3].item()) == pytest.approx(0.3, abs=1e-6)


def test_head_learns_and_numpy_inference_matches_torch(tmp_path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: one thread, and no spinning against a busy machine
    torch.manual_seed(0)
    poses = _poses(64).float()
    latents = torch.cat([poses[:, :2], torch.sin(poses[:, 2:3]), torch.cos(poses[:, 2:3])], dim=1)  # (64, 4)
    head = RelativePoseHead(4, hidden=(64, 64))
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss = head_loss(head, latents, poses, pose_distance(poses, 1.0), radius=10.0)
        first = first if first is not None else float(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    assert float(loss.detach()) < first / 5
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp_path / HEAD_FILE))
    numpy_head = PoseHeadNumpy.load(tmp_path, 4)
    z, goal = latents[3].double().numpy(), latents[10].double().numpy()
    with torch.no_grad():
        forward = head(latents[3:4], latents[10:11])[0].numpy()
    np.testing.assert_allclose(numpy_head._forward(np.concatenate([z, goal - z])[None])[0], forward, atol=1e-5)
    estimate = numpy_head.estimate(z, goal)
    truth = relative_pose_targets(poses.double(), torch.tensor([3]), torch.tensor([10]))[0].numpy()
    assert np.hypot(*(estimate[:2] - truth[:2])) < 0.2
    with pytest.raises(InputError):
        numpy_head.estimate(np.zeros(3), np.zeros(4))


def test_head_file_problems_are_one_clear_error(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="servo head"):
        PoseHeadNumpy.load(tmp_path, 16)
    (tmp_path / HEAD_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelFileError, match="safetensors"):
        PoseHeadNumpy.load(tmp_path, 16)
    save_file({"net.0.weight": torch.zeros(8, 10), "net.0.bias": torch.zeros(8),
               "net.2.weight": torch.zeros(4, 8), "net.2.bias": torch.zeros(4)}, str(tmp_path / HEAD_FILE))
    with pytest.raises(ModelFileError, match="16-D"):
        PoseHeadNumpy.load(tmp_path, 16)
