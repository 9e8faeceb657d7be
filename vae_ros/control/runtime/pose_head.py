"""The servo's interaction model: (current latent, goal latent) -> where the goal lies in the robot frame.

Classic image-based servoing linearises the feature error through an interaction matrix; in a learned
latent space that linearisation holds only near the goal (measured: Gauss-Newton steps through the
encoder's Jacobian, estimated from re-projected scans, reached the goal in 8-12 % of closed-loop episodes
while greedy descent of the same latent distance succeeded from 94-97 % of grid starts). Instead, a small
MLP trained beside the encoder regresses the goal's pose relative to the robot from the latent pair, as in
Bateux et al., ICRA 2018 ("Training deep neural networks for visual servoing"), which regresses the
relative pose between the current and the desired image and closes the loop with a position-based law.
Here it reads latents, so the servo needs nothing but `vae/latent_stamped` and a goal latent.

Input [z, z* - z] (2D,), output (dx, dy, sin dyaw, cos dyaw). Trained jointly with the pose-metric VAE on
pairs within 1.6 m of each other, weighted toward near pairs where convergence is decided.
Inference is plain NumPy from safetensors (a few kFLOP), so the servo node needs no torch: this module never
imports it. The torch head and its loss, for training, are in vae_ros.control.training.pose_head_train.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from vae_ros.core.errors import InputError, ModelFileError
from vae_ros.core.model_dir import SERVO_HEAD_FILE as HEAD_FILE


def combine_estimates(fwd: Any, bwd: Any, xp: ModuleType) -> Any:
    """(B, 3) goal poses (dx, dy, dyaw) from the head's two (B, 4) outputs per latent pair.

    fwd is the goal seen from the robot, bwd the robot seen from the goal; bwd is inverted into the robot frame
    and the two are averaged (the yaw as the angle of the summed unit vectors). xp is the array module, numpy or
    torch: both have arctan2, sin, cos, and stack with the axis as its second argument. The same operations in
    the same order in both, so PoseHeadNumpy.estimate_batch and its torch twin
    (vae_ros.control.runtime.plan_torch) agree up to the libraries' rounding.
    """
    f_yaw = xp.arctan2(fwd[:, 2], fwd[:, 3])
    b_yaw = xp.arctan2(bwd[:, 2], bwd[:, 3])
    c, s = xp.cos(b_yaw), xp.sin(b_yaw)
    ix, iy = -(c * bwd[:, 0] + s * bwd[:, 1]), -(-s * bwd[:, 0] + c * bwd[:, 1])
    yaw = xp.arctan2(xp.sin(f_yaw) - xp.sin(b_yaw), xp.cos(f_yaw) + xp.cos(b_yaw))
    return xp.stack([(fwd[:, 0] + ix) / 2, (fwd[:, 1] + iy) / 2, yaw], 1)


class PoseHeadNumpy:
    """The trained head for inference: NumPy matmuls over safetensors arrays (no torch at run time)."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], latent_dim: int) -> None:
        self.layers = layers
        self.latent_dim = latent_dim
        self._layers32 = [(np.ascontiguousarray(w.T, np.float32), b.astype(np.float32)) for w, b in layers]
        # The first layer sees [z, goal - z] (forward) and [goal, z - goal] (backward): with its weights split
        # as W = [Wa | Wb], that is z (Wa - Wb)^T + goal Wb^T, and z Wb^T + goal (Wa - Wb)^T. So a batch needs
        # one (B, D) x (D, 2H) product for both directions, and the goal's part once (estimate_batch).
        w1t, b1 = self._layers32[0] if self._layers32 else (np.zeros((0, 0), np.float32), np.zeros(0, np.float32))
        wa, wb = w1t[:latent_dim], w1t[latent_dim:]  # (2D, H); none in a placeholder (baselines.py)
        self._first_z = np.ascontiguousarray(np.concatenate([wa - wb, wb], 1))  # (D, 2H): forward | backward
        self._first_goal = np.ascontiguousarray(np.concatenate([wb, wa - wb], 1))
        self._first_bias = np.concatenate([b1, b1])

    def batch_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """What estimate_batch multiplies by, float32: the first layer's (D, 2H) latent and goal parts, its
        (2H,) bias, and every layer's (transposed weight, bias); for the same head on a torch device
        (vae_ros.control.runtime.plan_torch)."""
        return self._first_z, self._first_goal, self._first_bias, self._layers32

    @classmethod
    def load(cls, model_dir: str | Path, latent_dim: int) -> PoseHeadNumpy:
        from vae_ros.core.files import MAX_CONTROL_WEIGHTS_BYTES
        from vae_ros.core.model_dir import load_safetensors_numpy

        path = Path(model_dir) / HEAD_FILE
        if not os.path.lexists(path):
            raise ModelFileError(f"{path} is missing: the model has no servo head (train it with "
                                 "`vae-ros train --pose-topic odom`)")
        # A FIFO, a link to /dev/zero, a huge or inconsistent file: refused before anything is read.
        state = load_safetensors_numpy(path, MAX_CONTROL_WEIGHTS_BYTES)
        layers = []
        index = 0
        while f"net.{index}.weight" in state:
            layers.append((state[f"net.{index}.weight"].astype(np.float64), state[f"net.{index}.bias"].astype(np.float64)))
            index += 2  # Linear, ReLU, Linear, ...
        if not layers or layers[0][0].shape[1] != 2 * latent_dim or layers[-1][0].shape[0] != 4:
            raise ModelFileError(f"{path} does not fit a {latent_dim}-D latent (expected inputs {2 * latent_dim}, "
                                 "outputs 4)")
        return cls(layers, latent_dim)

    def _forward(self, inputs: np.ndarray) -> np.ndarray:
        h = inputs  # (B, 2D)
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight.T + bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        if not np.all(np.isfinite(h)):
            raise InputError("servo head output is not finite")
        return h  # (B, 4)

    def estimate_batch(self, z: np.ndarray, z_goal: np.ndarray) -> np.ndarray:
        """`estimate` for many latents against one goal, in float32: z (B, D), z_goal (D,) -> (B, 3); or pair
        by pair against as many goals, z_goal (B, D) (the planner's turned goals, see planner.turned_look).

        What the world model's planner scores its predicted latents with (thousands per plan)."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise InputError(f"servo head expects (B, {self.latent_dim}) latents, got {z.shape}")
        goals = np.asarray(z_goal, dtype=np.float32)
        if goals.ndim == 2 and goals.shape[0] not in (1, z.shape[0]):
            raise InputError(f"servo head expects one goal or one per latent, got {goals.shape} for {z.shape}")
        goal = goals.reshape(1, -1) if goals.ndim < 2 else goals  # (1 or B, D)
        if goal.ndim != 2 or goal.shape[1] != self.latent_dim:
            raise InputError(f"servo head expects {self.latent_dim}-D goal latents, got {goals.shape}")
        b = z.shape[0]
        h = z @ self._first_z  # (B, 2H): each row the forward then the backward pre-activation
        h += goal @ self._first_goal + self._first_bias
        h = h.reshape(2 * b, -1)  # rows: forward 0, backward 0, forward 1, ...
        layers = len(self._layers32)
        for i in range(layers):
            if i > 0:
                weight_t, bias = self._layers32[i]
                h = h @ weight_t
                h += bias
            if i < layers - 1:
                np.maximum(h, 0.0, out=h)
        h = h.reshape(b, 2, -1)
        return combine_estimates(h[:, 0], h[:, 1], np)  # the goal seen from the robot; the robot from the goal

    def estimate(self, z: np.ndarray, z_goal: np.ndarray) -> np.ndarray:
        """(3,) goal pose in the robot frame: dx, dy (m), dyaw (rad).

        Both directions are asked: where the goal is seen from the robot, and where the robot is seen from
        the goal (inverted); their mean halves what is not symmetric in the head's errors.
        """
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        z_goal = np.asarray(z_goal, dtype=np.float64).reshape(-1)
        if z.size != self.latent_dim or z_goal.size != self.latent_dim:
            raise InputError(f"servo head expects {self.latent_dim}-D latents, got {z.size} and {z_goal.size}")
        out = self._forward(np.stack([np.concatenate([z, z_goal - z]), np.concatenate([z_goal, z - z_goal])]))
        fx, fy, f_yaw = out[0, 0], out[0, 1], math.atan2(out[0, 2], out[0, 3])
        bx, by, b_yaw = out[1, 0], out[1, 1], math.atan2(out[1, 2], out[1, 3])  # the robot in the goal frame
        c, s = math.cos(b_yaw), math.sin(b_yaw)
        ix, iy = -(c * bx + s * by), -(-s * bx + c * by)  # inverted: the goal in the robot frame
        yaw = math.atan2(math.sin(f_yaw) + math.sin(-b_yaw), math.cos(f_yaw) + math.cos(-b_yaw))
        return np.array([(fx + ix) / 2, (fy + iy) / 2, yaw])
