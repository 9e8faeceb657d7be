"""PSNR and active units on hand-computable inputs (the KL per dimension is tested in test_losses.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_ros.core.errors import InputError
from vae_ros.core.metrics import active_units, psnr, psnr_per_sample


def test_psnr_of_a_known_error() -> None:
    x = np.full((2, 3, 4, 4), 0.5, dtype=np.float32)
    x_hat = x + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(x_hat, x) == pytest.approx(20.0, abs=1e-4)
    assert psnr(torch.from_numpy(x_hat), torch.from_numpy(x)) == pytest.approx(20.0, abs=1e-4)
    assert psnr(x_hat * 255, x * 255, max_val=255.0) == pytest.approx(20.0, abs=1e-4)
    assert psnr(x, x) == pytest.approx(100.0)  # perfect: floored MSE, finite


def test_psnr_per_sample_and_mean() -> None:
    x = torch.zeros(2, 1, 8)
    x_hat = torch.stack([torch.full((1, 8), 0.1), torch.full((1, 8), 0.01)])
    per = psnr_per_sample(x_hat, x)
    torch.testing.assert_close(per, torch.tensor([20.0, 40.0], dtype=torch.float64))
    assert psnr(x_hat, x) == pytest.approx(30.0)


def test_psnr_mask_counts_only_valid_elements() -> None:
    x = torch.zeros(1, 1, 4)
    x_hat = torch.tensor([[[0.1, 0.1, 0.9, 0.9]]])
    mask = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    assert psnr(x_hat, x, mask=mask) == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(InputError, match="no valid element"):
        psnr(x_hat, x, mask=torch.zeros(1, 1, 4))
    with pytest.raises(InputError, match="equal"):
        psnr(x_hat, torch.zeros(1, 1, 5))


def test_active_units_follow_the_variance_of_the_means() -> None:
    rng = np.random.default_rng(0)
    means = np.stack([rng.normal(0, 1.0, 1000), rng.normal(0, 0.05, 1000), np.full(1000, 3.0),
                      rng.normal(0, 0.2, 1000)], axis=1)  # variances ~1, 0.0025, 0, 0.04
    count, variance = active_units(means)
    assert count == 2
    assert variance.shape == (4,)
    assert variance[0] == pytest.approx(1.0, rel=0.1) and variance[2] == 0.0
    assert active_units(means, threshold=1e-3)[0] == 3
    with pytest.raises(InputError, match="N >= 2"):
        active_units(np.zeros((1, 4)))
    with pytest.raises(InputError, match="NaN"):
        active_units(np.array([[0.0, np.nan], [1.0, 2.0]]))

