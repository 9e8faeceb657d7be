"""The anomaly score of one input (NumPy, no torch, so the lean nodes compute it): the reconstruction error, or the
negative ELBO with the terms of vae_ros.core.losses.vae_loss (test_node_utils checks they agree).
"""

from __future__ import annotations

import math

import numpy as np

from vae_ros.core.config import ModelConfig
from vae_ros.core.errors import ConfigError, InputError

ANOMALY_METRICS = ("reconstruction", "neg_elbo")


# -- anomaly scores -------------------------------------------------------------------------------------------
def anomaly_score(
    x: np.ndarray, x_hat: np.ndarray, mean: np.ndarray, logvar: np.ndarray, config: ModelConfig, metric: str
) -> float:
    """How unusual one input is to the model; higher means more anomalous.

    x: (1, *input_shape) model input; x_hat: (1, C_out, ...) decoder output in [0, 1] for the latent mean;
    mean, logvar: (1, D). metric "reconstruction": mean squared error over the (valid) elements, in
    normalised units. "neg_elbo": -ELBO in nats per sample, the same terms as core.losses.vae_loss with
    the decoder evaluated at the mean (gaussian: N(x; x_hat, obs_std^2); bernoulli: cross-entropy).
    """
    if metric not in ANOMALY_METRICS:
        raise ConfigError(f"anomaly_metric must be one of {', '.join(ANOMALY_METRICS)}, got {metric!r}")
    x64 = np.asarray(x, dtype=np.float64)
    if config.modality == "image":
        target, mask = x64, None
    else:
        target, mask = x64[:, :1], x64[:, 1:2]  # (1, 1, ...) range and validity
    pred = np.asarray(x_hat, dtype=np.float64)
    if pred.shape != target.shape:
        raise InputError(f"reconstruction {pred.shape} does not match the target {target.shape}")
    if metric == "reconstruction":
        err = (pred - target) ** 2
        if mask is None:
            return float(err.mean())
        valid = float(mask.sum())
        return float((err * mask).sum() / valid) if valid > 0 else 0.0
    if config.arch.likelihood == "gaussian":
        std = config.arch.obs_std
        nll = 0.5 * ((target - pred) / std) ** 2 + math.log(std) + 0.5 * math.log(2.0 * math.pi)
    else:
        eps = 1e-7  # the decoder's probabilities, clipped as BCE-with-logits would saturate
        p = np.clip(pred, eps, 1.0 - eps)
        nll = -(target * np.log(p) + (1.0 - target) * np.log1p(-p))
    if mask is not None:
        nll = nll * mask
    mu = np.asarray(mean, dtype=np.float64)
    lv = np.asarray(logvar, dtype=np.float64)
    kl = 0.5 * (mu**2 + np.exp(lv) - 1.0 - lv)
    return float(nll.sum() + kl.sum())
