"""Evaluation metrics over datasets, latent traversals, the eval report and its PNGs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import bagutil
import numpy as np
import pytest
import torch

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig, ScanSpec
from vae_ros.core.data import BagSource, ImageFolderSource, batched, iter_samples
from vae_ros.core.errors import DataError
from vae_ros.core.evaluate import (
    evaluate_batches,
    format_table,
    latent_traversals,
    run_evaluation,
    top_dims,
)
from vae_ros.core.losses import vae_loss
from vae_ros.core.models import build_model

PNG = b"\x89PNG\r\n\x1a\n"
IMAGE = ModelConfig(modality="image", image=ImageSpec(32, 32, 3), arch=ArchSpec(latent_dim=4, channels=[8, 16]))
SCAN = ModelConfig(modality="scan", scan=ScanSpec(beams=64), arch=ArchSpec(latent_dim=3, channels=[8, 16]))


def _images(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, size=(count, 3, 32, 32)).astype(np.float32)  # (N, 3, 32, 32)


def test_metrics_match_a_direct_computation() -> None:
    model = build_model(IMAGE).eval()
    x = _images(12)
    result, examples = evaluate_batches(model, [x[:5], x[5:]], seed=3, keep_examples=7)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        mu, logvar = model.encode(xt)
        x_hat = model.decode(mu).numpy()
        terms = vae_loss(model.decode_logits(mu), xt, mu, logvar, IMAGE)
    mse = ((x_hat - x) ** 2).mean()
    assert result.samples == 12 and result.mse == pytest.approx(mse, rel=1e-5)
    per_sample = 10 * np.log10(1.0 / ((x_hat - x) ** 2).reshape(12, -1).mean(axis=1))
    assert result.psnr_db == pytest.approx(per_sample.mean(), rel=1e-5)
    assert result.kl == pytest.approx(float(terms.kl), rel=1e-5)
    np.testing.assert_allclose(result.kl_per_dim, terms.kl_per_dim.numpy(), rtol=1e-5)
    assert result.elbo == pytest.approx(-(result.recon_nll + result.kl), rel=1e-6)
    assert len(result.latent_variance) == 4 and result.range_mae_m is None
    np.testing.assert_allclose(result.latent_variance, mu.double().var(dim=0).numpy(), rtol=1e-5)
    assert examples is not None and examples.inputs.shape == (7, 3, 32, 32)
    np.testing.assert_allclose(examples.reconstructions, x_hat[:7], atol=1e-6)


def test_the_elbo_estimate_is_repeatable_and_seeded() -> None:
    model = build_model(IMAGE).eval()
    x = _images(8)
    first, _ = evaluate_batches(model, [x], seed=1)
    again, _ = evaluate_batches(model, [x], seed=1)
    other, _ = evaluate_batches(model, [x], seed=2)
    assert first.elbo == again.elbo and first.elbo != other.elbo
    assert first.mse == other.mse  # the mean reconstruction does not depend on the sample


def test_lidar_range_error_is_in_metres_over_valid_beams_only() -> None:
    model = build_model(SCAN).eval()
    rng = np.random.default_rng(1)
    x = np.stack([rng.uniform(0.1, 0.9, size=(6, 64)), np.ones((6, 64))], axis=1).astype(np.float32)
    x[:, 1, :10] = 0.0  # invalid beams: their (wild) values must not count
    x[:, 0, :10] = 1e3
    result, _ = evaluate_batches(model, [x])
    with torch.no_grad():
        out = model.decode(model.encode(torch.from_numpy(x))[0]).numpy()[:, 0]  # (6, 64)
    err = np.abs(out[:, 10:] - x[:, 0, 10:]) * SCAN.scan_spec.range_max
    assert result.range_mae_m == pytest.approx(err.mean(), rel=1e-5)
    assert result.range_rmse_m == pytest.approx(math.sqrt((err ** 2).mean()), rel=1e-5)
    assert result.psnr_db is None


def test_no_batches_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no samples"):
        evaluate_batches(build_model(IMAGE), [])


def test_traversals_change_only_the_chosen_dimension() -> None:
    model = build_model(IMAGE).eval()
    reference = np.array([0.5, -0.2, 0.1, 0.0], dtype=np.float32)
    out = latent_traversals(model, reference, dims=[2, 0], values=(-3.0, 0.0, 3.0))
    assert out.shape == (2, 3, 3, 32, 32)
    with torch.no_grad():
        z = torch.tensor([[0.5, -0.2, 3.0, 0.0]])
        np.testing.assert_allclose(out[0, 2], model.decode(z)[0].numpy(), atol=1e-6)
    assert not np.allclose(out[0, 0], out[0, 2])
    assert top_dims([0.1, 2.0, 0.5], [1.0, 1.0, 1.0], k=2) == [1, 2]


def test_run_evaluation_writes_metrics_and_plots(tmp_path: Path) -> None:
    folder = bagutil.write_image_folder(tmp_path / "images", 10, broken=1)
    model = build_model(IMAGE).eval()
    report = run_evaluation(model, "untrained", ImageFolderSource(folder), tmp_path / "eval", batch_size=4,
                            top_k=2, examples=3, progress=False)
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved == report
    assert report["metrics"]["samples"] == 10 and report["skipped"] == 1
    assert len(report["traversal_dims"]) == 2
    for name in ("reconstructions.png", "traversals.png", "kl_per_dim.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:8] == PNG
    table = format_table(report["metrics"])
    assert "PSNR (dB)" in table and "active units" in table and "range error" not in table


@pytest.mark.parametrize("modality", ["scan", "pointcloud"])
def test_lidar_plots_are_written(tmp_path: Path, modality: str) -> None:
    if modality == "scan":
        source = BagSource(bagutil.write_scan_bag(tmp_path / "bag", 5, beams=64), "/scan")
        config = SCAN
    else:
        source = BagSource(bagutil.write_cloud_bag(tmp_path / "bag", 5), "/lidar/points")
        config = ModelConfig(modality="pointcloud", arch=ArchSpec(latent_dim=3, channels=[8, 16]))
    report = run_evaluation(build_model(config).eval(), "m", source, tmp_path / "eval", examples=2,
                            progress=False)
    assert report["metrics"]["range_mae_m"] > 0
    assert "range error MAE (m)" in format_table(report["metrics"])
    for name in ("reconstructions.png", "traversals.png", "kl_per_dim.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:8] == PNG
    # The batched helper keeps every sample, the last batch may be short.
    sizes = [len(b) for b in batched(iter_samples(source, config, split="all"), 2)]
    assert sizes == [2, 2, 1]
