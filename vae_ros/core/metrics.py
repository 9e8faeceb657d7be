"""Evaluation metrics: PSNR and active units (the KL per latent dimension is vae_ros.core.losses').

Inputs may be torch tensors or NumPy arrays (converted to float64 torch tensors on the CPU, so metrics are
exact whatever the model's dtype). Scalars come back as Python floats/ints, vectors as float64 tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from vae_ros.core.errors import InputError

ArrayLike = torch.Tensor | np.ndarray


def _as_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.asarray(value, dtype=np.float64))
    if isinstance(value, torch.Tensor):
        return value.detach().to(device="cpu", dtype=torch.float64)
    raise InputError(f"{name} must be a torch tensor or NumPy array, got {type(value).__name__}")


def psnr_per_sample(
    x_hat: ArrayLike, x: ArrayLike, mask: ArrayLike | None = None, max_val: float = 1.0
) -> torch.Tensor:
    """Peak signal-to-noise ratio of each sample (B,), in dB: 10 log10(max_val^2 / MSE).

    x_hat, x: (B, ...) in [0, max_val]. mask (broadcastable to x): only elements where it is non-zero count
    (LiDAR validity). MSE is floored at 1e-10 so a perfect reconstruction reads 100 dB (max_val 1), not inf.
    """
    pred, ref = _as_tensor(x_hat, "x_hat"), _as_tensor(x, "x")
    if pred.shape != ref.shape or pred.dim() < 2:
        raise InputError(f"x_hat {tuple(pred.shape)} and x {tuple(ref.shape)} must be equal (B, ...) shapes")
    err = (pred - ref).pow(2)
    if mask is None:
        mse = err.flatten(1).mean(dim=1)
    else:
        weights = torch.broadcast_to(_as_tensor(mask, "mask"), err.shape)
        count = weights.flatten(1).sum(dim=1)
        if bool((count == 0).any()):
            raise InputError("psnr mask has a sample with no valid element")
        mse = (err * weights).flatten(1).sum(dim=1) / count
    return 10.0 * torch.log10(max_val**2 / mse.clamp(min=1e-10))


def psnr(x_hat: ArrayLike, x: ArrayLike, mask: ArrayLike | None = None, max_val: float = 1.0) -> float:
    """Mean over the batch of per-sample PSNR (dB); see psnr_per_sample."""
    return float(psnr_per_sample(x_hat, x, mask, max_val).mean())


def active_units(means: ArrayLike, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Active units (Burda et al. 2016, "Importance Weighted Autoencoders"): dims with Cov_x(E_q[z_i]) > threshold.

    means: (N, D) posterior means over a data set (N >= 2). Returns (count, per-dimension variance (D,)),
    the variance with Bessel's correction.
    """
    m = _as_tensor(means, "means")
    if m.dim() != 2 or m.shape[0] < 2:
        raise InputError(f"active_units needs posterior means shaped (N >= 2, D), got {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()):
        raise InputError("posterior means hold NaN or infinite values")
    variance = m.var(dim=0, correction=1)  # (D,)
    return int((variance > threshold).sum()), variance

