"""Training side of the servo's relative-pose head (torch): the MLP, its targets and its loss.

vae_ros.control.runtime.pose_head holds the NumPy inference the servo runs (no torch); this module is what
`vae-ros train --pose-topic` and the baselines train with, and what writes the weights it reads.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vae_ros.control.runtime.pose_head import HEAD_FILE

__all__ = ["HEAD_FILE", "RelativePoseHead", "head_loss", "head_state", "relative_pose_targets"]


class RelativePoseHead(nn.Module):
    """[z, z* - z] (B, 2D) -> (B, 4) = (dx, dy, sin dyaw, cos dyaw) of the goal in the robot frame."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 2 * latent_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 4))
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        self.hidden = tuple(hidden)

    def forward(self, z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, z_goal - z], dim=1))


def relative_pose_targets(poses: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(P, 4) targets: pose `cols` seen from pose `rows` (dx, dy in the rows' robot frame, sin, cos dyaw)."""
    c, s = torch.cos(poses[rows, 2]), torch.sin(poses[rows, 2])
    dx = poses[cols, 0] - poses[rows, 0]
    dy = poses[cols, 1] - poses[rows, 1]
    dyaw = poses[cols, 2] - poses[rows, 2]
    return torch.stack([c * dx + s * dy, -s * dx + c * dy, torch.sin(dyaw), torch.cos(dyaw)], dim=1)


def head_loss(head: RelativePoseHead, mu: torch.Tensor, poses: torch.Tensor, pose_distance: torch.Tensor,
              radius: float = 1.6, offset: float = 0.1) -> torch.Tensor:
    """Smooth-L1 regression of every ordered pair of a batch closer than `radius`, weighted by 1 / (d + offset)."""
    batch = mu.shape[0]
    near = (pose_distance < radius) & ~torch.eye(batch, dtype=torch.bool, device=mu.device)
    rows, cols = torch.nonzero(near, as_tuple=True)
    if rows.numel() == 0:
        return mu.sum() * 0.0
    target = relative_pose_targets(poses, rows, cols)
    out = head(mu[rows], mu[cols])
    weight = 1.0 / (pose_distance[rows, cols] + offset)
    per = nn.functional.smooth_l1_loss(out, target, reduction="none", beta=0.05)  # (P, 4)
    return (weight[:, None] * per).mean()


def head_state(head: RelativePoseHead) -> dict[str, Any]:
    """Contiguous CPU tensors for safetensors."""
    return {name: t.detach().cpu().contiguous().clone() for name, t in head.state_dict().items()}
