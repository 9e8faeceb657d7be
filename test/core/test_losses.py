"""The VAE objective against torch.distributions, LiDAR masking, beta, free bits and KL annealing."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig, ScanSpec
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.core.losses import KLAnnealing, gaussian_kl, reconstruction_nll, vae_loss
from vae_ros.core.models import build_model


def _image_config(likelihood: str, obs_std: float = 0.1) -> ModelConfig:
    return ModelConfig("image", arch=ArchSpec(latent_dim=3, channels=[8, 8], likelihood=likelihood, obs_std=obs_std),
                       image=ImageSpec(height=16, width=16, channels=1))


def _scan_config() -> ModelConfig:
    return ModelConfig("scan", arch=ArchSpec(latent_dim=3, channels=[8, 8], obs_std=0.2), scan=ScanSpec(beams=16))


def test_gaussian_nll_is_the_normal_log_density_in_nats() -> None:
    logits, x = torch.randn(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    expected = -Normal(torch.sigmoid(logits), 0.25).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, x, "gaussian", 0.25), expected)


def test_bernoulli_nll_is_the_bernoulli_log_mass() -> None:
    logits, x = torch.randn(4, 3, 8, 8), (torch.rand(4, 3, 8, 8) > 0.5).float()
    expected = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, x, "bernoulli"), expected)


def test_kl_matches_torch_distributions() -> None:
    mu, logvar = torch.randn(5, 4), torch.randn(5, 4)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_vae_loss_sums_over_elements_and_averages_over_the_batch(likelihood: str) -> None:
    config = _image_config(likelihood)
    logits, x = torch.randn(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    mu, logvar = torch.randn(2, 3), torch.randn(2, 3)
    terms = vae_loss(logits, x, mu, logvar, config)
    recon = reconstruction_nll(logits, x, likelihood, 0.1)  # (2,)
    kl = gaussian_kl(mu, logvar).sum(1)  # (2,)
    torch.testing.assert_close(terms.recon_nll, recon.mean())
    torch.testing.assert_close(terms.kl, kl.mean())
    torch.testing.assert_close(terms.elbo, -(recon + kl).mean())
    torch.testing.assert_close(terms.elbo_per_sample, -(recon + kl))
    torch.testing.assert_close(terms.kl_per_dim, gaussian_kl(mu, logvar).mean(0))
    torch.testing.assert_close(terms.loss, (recon + kl).mean())
    # Repeating the batch changes nothing (mean over the batch).
    doubled = vae_loss(logits.repeat(2, 1, 1, 1), x.repeat(2, 1, 1, 1), mu.repeat(2, 1), logvar.repeat(2, 1), config)
    torch.testing.assert_close(doubled.loss, terms.loss)


def test_lidar_uses_channel_0_as_target_and_channel_1_as_mask() -> None:
    config = _scan_config()
    torch.manual_seed(0)
    ranges = torch.rand(2, 1, 16)
    mask = (torch.rand(2, 1, 16) > 0.3).float()
    x = torch.cat([ranges, mask], dim=1)  # (2, 2, 16)
    logits, mu, logvar = torch.randn(2, 1, 16), torch.zeros(2, 3), torch.zeros(2, 3)
    terms = vae_loss(logits, x, mu, logvar, config)
    per_elem = -Normal(torch.sigmoid(logits), 0.2).log_prob(ranges)
    torch.testing.assert_close(terms.recon_nll, (per_elem * mask).flatten(1).sum(1).mean())
    # Whatever sits in invalid bins is ignored.
    changed = x.clone()
    changed[:, 0][mask[:, 0] == 0] = 0.123
    torch.testing.assert_close(vae_loss(logits, changed, mu, logvar, config).loss, terms.loss)
    # A valid bin does count.
    changed = x.clone()
    changed[:, 0][mask[:, 0] == 1] = 0.9
    assert not torch.allclose(vae_loss(logits, changed, mu, logvar, config).loss, terms.loss)


def test_beta_weights_the_kl_in_the_loss_only() -> None:
    config = _image_config("gaussian")
    args = (torch.randn(2, 1, 16, 16), torch.rand(2, 1, 16, 16), torch.randn(2, 3), torch.randn(2, 3))
    base = vae_loss(*args, config)
    heavy = vae_loss(*args, config, beta=4.0)
    torch.testing.assert_close(heavy.loss, base.recon_nll + 4.0 * base.kl)
    torch.testing.assert_close(heavy.elbo, base.elbo)
    torch.testing.assert_close(vae_loss(*args, config, beta=0.0).loss, base.recon_nll)


def test_free_bits_clamp_the_optimised_kl_per_dimension_only() -> None:
    config = _image_config("gaussian")
    logits, x = torch.randn(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    # Dim 0 carries ~2 nats, dims 1 and 2 are collapsed onto the prior (KL 0).
    mu = torch.zeros(4, 3)
    mu[:, 0] = 2.0
    mu.requires_grad_(True)
    logvar = torch.zeros(4, 3)
    terms = vae_loss(logits, x, mu, logvar, config, free_bits=0.5)
    torch.testing.assert_close(terms.kl, torch.tensor(2.0))  # reported KL is the true one
    torch.testing.assert_close(terms.loss, terms.recon_nll + 2.0 + 0.5 + 0.5)
    terms.loss.backward()
    assert mu.grad is not None
    assert torch.all(mu.grad[:, 1:] == 0)  # below the floor: no pressure towards (or away from) the prior
    assert torch.all(mu.grad[:, 0] > 0)  # above it: the usual KL gradient


def test_bad_arguments_raise_domain_errors() -> None:
    config = _image_config("gaussian")
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(InputError, match="same shape"):
        vae_loss(torch.randn(2, 3, 16, 16), x, torch.zeros(2, 3), torch.zeros(2, 3), config)
    with pytest.raises(InputError, match=r"\(B, D\)"):
        vae_loss(torch.randn(2, 1, 16, 16), x, torch.zeros(3, 3), torch.zeros(3, 3), config)
    with pytest.raises(ConfigError, match="beta"):
        vae_loss(torch.randn(2, 1, 16, 16), x, torch.zeros(2, 3), torch.zeros(2, 3), config, beta=-1.0)
    with pytest.raises(ConfigError, match="likelihood"):
        reconstruction_nll(torch.randn(1, 1, 4), torch.rand(1, 1, 4), "laplace")


def test_kl_annealing_schedules() -> None:
    linear = KLAnnealing("linear", warmup_steps=10)
    assert [linear.weight(s) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]
    cyclical = KLAnnealing("cyclical", warmup_steps=4, cycle_steps=10)
    assert [cyclical.weight(s) for s in (0, 2, 4, 9, 10, 12, 25)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0]
    assert KLAnnealing("cyclical", warmup_steps=4).cycle_steps == 8
    assert KLAnnealing("none", warmup_steps=10).weight(0) == 1.0
    assert KLAnnealing("linear", warmup_steps=0).weight(0) == 1.0
    with pytest.raises(ConfigError, match="KL annealing must be one of"):
        KLAnnealing("sigmoid")
    with pytest.raises(ConfigError, match="cycle_steps"):
        KLAnnealing("cyclical", warmup_steps=10, cycle_steps=5)


def test_a_few_steps_on_a_fixed_batch_raise_the_elbo() -> None:
    config = _image_config("bernoulli")
    model = build_model(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.rand(8, 1, 16, 16)
    elbos = []
    for _ in range(25):
        logits, mu, logvar = model(x)
        terms = vae_loss(logits, x, mu, logvar, config)
        optimiser.zero_grad()
        terms.loss.backward()
        optimiser.step()
        elbos.append(float(terms.elbo))
    assert all(math.isfinite(e) for e in elbos)
    assert sum(elbos[-5:]) / 5 > sum(elbos[:5]) / 5 + 1.0
