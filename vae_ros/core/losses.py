"""The VAE objective: negative ELBO with beta, free bits and a KL annealing schedule.

- ELBO = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) (Kingma & Welling 2014, "Auto-Encoding Variational
  Bayes"), in nats per sample: summed over the elements of a sample, averaged over the batch.
- beta weights the KL term (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a
  Constrained Variational Framework").
- KL annealing ramps that weight from 0 to 1 (Bowman et al. 2016, "Generating Sentences from a Continuous
  Space"), or repeats the ramp in cycles (Fu et al. 2019, "Cyclical Annealing Schedule: A Simple Approach
  to Mitigating KL Vanishing"). The trainer passes beta * KLAnnealing.weight(step) as `beta`.
- Free bits: each latent dimension's batch-averaged KL is clamped below at `free_bits` nats in the
  optimised loss, so the optimiser gains nothing by collapsing it further (Kingma et al. 2016, "Improved
  Variational Inference with Inverse Autoregressive Flow"). Reported KL and ELBO always use the true KL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vae_ros.core.config import ModelConfig
from vae_ros.core.errors import ConfigError, InputError

_LOG_2PI = math.log(2.0 * math.pi)
ANNEALING_KINDS = ("linear", "cyclical", "none")


@dataclass
class LossTerms:
    """One batch's objective. `loss` carries the graph; the reported terms are detached.

    loss: scalar to backpropagate = recon_nll + beta * free-bits KL (batch mean, nats).
    elbo: scalar true ELBO per sample (nats, higher is better) = -(recon_nll + kl).
    recon_nll: scalar -log p(x|z) per sample (nats), over valid elements only for LiDAR.
    kl: scalar true KL(q(z|x) || p(z)) per sample (nats).
    kl_per_dim: (D,) KL of each latent dimension, averaged over the batch.
    elbo_per_sample: (B,) true ELBO of each sample (for anomaly scores and evaluation histograms).
    """

    loss: torch.Tensor
    elbo: torch.Tensor
    recon_nll: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor
    elbo_per_sample: torch.Tensor


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per element: (B, D) -> (B, D), in nats (closed form)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def reconstruction_nll(
    logits: torch.Tensor,
    target: torch.Tensor,
    likelihood: str,
    obs_std: float = 0.1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """-log p(target | logits) per sample (B,), in nats, summed over (valid) elements.

    gaussian: N(target; sigmoid(logits), obs_std^2) with its log-normaliser, so values are true nats.
    bernoulli: binary cross-entropy with logits; targets in [0, 1] (continuous targets are allowed, the
    usual relaxation for images, though then the value is not a normalised likelihood).
    mask: same shape as target (or broadcastable), 1 where an element counts, 0 where it is ignored.
    """
    if logits.shape != target.shape:
        raise InputError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    if likelihood == "gaussian":
        mean = torch.sigmoid(logits)
        log_std = math.log(obs_std)
        nll = 0.5 * ((target - mean) / obs_std).pow(2) + log_std + 0.5 * _LOG_2PI
    elif likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        raise ConfigError(f"likelihood must be 'gaussian' or 'bernoulli', got {likelihood!r}")
    if mask is not None:
        nll = nll * mask
    return nll.flatten(1).sum(dim=1)  # (B,)


def split_target(x: torch.Tensor, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Model input -> (reconstruction target, validity mask or None).

    Images: the image itself, no mask. LiDAR (B, 2, ...): channel 0 (normalised range) is the target and
    channel 1 the validity mask, so invalid beams/pixels never enter the likelihood.
    """
    if config.modality == "image":
        return x, None
    return x[:, :1], x[:, 1:2]


def vae_loss(
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    config: ModelConfig,
    beta: float = 1.0,
    free_bits: float = 0.0,
) -> LossTerms:
    """Negative ELBO for one batch: logits (B, C_out, ...), x (B, *input_shape), mu/logvar (B, D).

    Reductions: sum over the elements of a sample, mean over the batch. `beta` multiplies the KL in the
    optimised loss (pass beta * annealing weight); `free_bits` (nats per dimension) clamps each dimension's
    batch-averaged KL from below in the optimised loss only.
    """
    if beta < 0 or free_bits < 0:
        raise ConfigError(f"beta and free_bits must be >= 0, got beta={beta}, free_bits={free_bits}")
    if mu.shape != logvar.shape or mu.dim() != 2 or mu.shape[0] != x.shape[0]:
        raise InputError(
            f"mu and logvar must both be (B, D) with B = {x.shape[0]}, got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    target, mask = split_target(x, config)
    recon = reconstruction_nll(logits, target, config.arch.likelihood, config.arch.obs_std, mask)  # (B,)
    kl_elem = gaussian_kl(mu, logvar)  # (B, D)
    kl_sample = kl_elem.sum(dim=1)  # (B,)
    kl_per_dim = kl_elem.mean(dim=0)  # (D,)
    kl_opt = torch.clamp(kl_per_dim, min=free_bits).sum() if free_bits > 0 else kl_sample.mean()
    recon_mean = recon.mean()
    loss = recon_mean + beta * kl_opt
    elbo_per_sample = -(recon + kl_sample).detach()
    return LossTerms(
        loss=loss,
        elbo=elbo_per_sample.mean(),
        recon_nll=recon_mean.detach(),
        kl=kl_sample.mean().detach(),
        kl_per_dim=kl_per_dim.detach(),
        elbo_per_sample=elbo_per_sample,
    )


@dataclass
class KLAnnealing:
    """KL weight schedule in [0, 1] by optimisation step.

    linear (Bowman et al. 2016): step / warmup_steps, then 1.
    cyclical (Fu et al. 2019): the linear ramp over `warmup_steps` at the start of every cycle of
    `cycle_steps` steps (default 2 * warmup_steps, i.e. ramp for half a cycle, as the paper's R = 0.5), 1
    for the rest of the cycle.
    none: always 1.
    """

    kind: str = "linear"
    warmup_steps: int = 1000
    cycle_steps: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ANNEALING_KINDS:
            raise ConfigError(f"KL annealing must be one of {ANNEALING_KINDS}, got {self.kind!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"KL warm-up steps must be >= 0, got {self.warmup_steps}")
        if self.kind == "cyclical":
            if self.cycle_steps is None:
                self.cycle_steps = 2 * self.warmup_steps
            if self.cycle_steps < max(self.warmup_steps, 1):
                raise ConfigError(
                    f"cycle_steps ({self.cycle_steps}) must be >= warmup_steps ({self.warmup_steps}) and >= 1"
                )

    def weight(self, step: int) -> float:
        """The KL weight at optimisation step `step` (0-based)."""
        if self.kind == "none" or self.warmup_steps == 0:
            return 1.0
        if self.kind == "cyclical" and self.cycle_steps:
            step = step % self.cycle_steps
        return min(1.0, max(0, step) / self.warmup_steps)
