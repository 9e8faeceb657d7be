"""Evaluation of a VAE over a dataset: ELBO, reconstruction error, KL per dimension, active units, plots.

Used by training (validation every epoch) and by `vae-ros eval`. It runs the torch model directly (exact;
the inference backends are checked against torch by their own parity tests). Batches stream through, so a
dataset larger than memory works; only the posterior means (N, D) are kept, for active units.

- ELBO, reconstruction NLL and KL (nats per sample) use one reparameterised sample per input drawn from a
  generator seeded by `seed`, so the estimate is unbiased and the same on every call.
- Reconstruction errors use the mean decoding sigmoid(decoder(mu)): MSE and PSNR (images, [0, 1] scale);
  for LiDAR the mean absolute and RMS range error in metres over valid beams/pixels.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae_ros.core.config import ModelConfig
from vae_ros.core.data import DataSource, SplitDataset, batched
from vae_ros.core.errors import DataError
from vae_ros.core.losses import split_target, vae_loss
from vae_ros.core.metrics import active_units, psnr_per_sample
from vae_ros.core.models import VAE

ACTIVE_THRESHOLD = 0.01
TRAVERSAL_VALUES = (-3.0, -1.5, 0.0, 1.5, 3.0)


@dataclass
class EvalResult:
    """Dataset-level metrics (per-sample means); LiDAR fields are None for images and vice versa."""

    samples: int
    elbo: float
    recon_nll: float
    kl: float
    kl_per_dim: list[float]
    active_units: int | None
    latent_variance: list[float]
    mse: float | None = None
    psnr_db: float | None = None
    range_mae_m: float | None = None
    range_rmse_m: float | None = None
    latent_abs_max: float = 0.0  # the largest |mean_i| over the samples (vae_ros.core.latent_range)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Examples:
    """A few inputs (K, C, ...) with their mean reconstructions (K, C_out, ...) and posterior means (K, D)."""

    inputs: np.ndarray
    reconstructions: np.ndarray
    means: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def _range_max(config: ModelConfig) -> float:
    return config.scan_spec.range_max if config.modality == "scan" else config.pointcloud_spec.range_max


@torch.no_grad()
def evaluate_batches(model: VAE, batches: Iterable[np.ndarray | torch.Tensor], device: str = "cpu",
                     seed: int = 0, keep_examples: int = 0) -> tuple[EvalResult, Examples | None]:
    """Metrics of `model` (put in eval mode) over batches (B, *input_shape); DataError when there are none."""
    config = model.config
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    count = 0
    sums = {"elbo": 0.0, "recon_nll": 0.0, "kl": 0.0, "sq_err": 0.0, "elements": 0.0, "psnr": 0.0,
            "abs_m": 0.0, "sq_m": 0.0, "valid": 0.0}
    kl_dim_sum: torch.Tensor | None = None
    means: list[np.ndarray] = []
    kept_in: list[np.ndarray] = []
    kept_out: list[np.ndarray] = []
    kept_count = 0
    for batch in batches:
        x = (batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch))).to(device)
        size = x.shape[0]
        mu, logvar = model.encode(x)  # (B, D), (B, D)
        eps = torch.randn(mu.shape, generator=generator, device=device, dtype=mu.dtype)
        logits = model.decode_logits(mu + torch.exp(0.5 * logvar) * eps)
        terms = vae_loss(logits, x, mu, logvar, config)
        x_hat = model.decode(mu)  # (B, C_out, ...) mean reconstruction
        target, mask = split_target(x, config)
        count += size
        sums["elbo"] += float(terms.elbo) * size
        sums["recon_nll"] += float(terms.recon_nll) * size
        sums["kl"] += float(terms.kl) * size
        kl_b = terms.kl_per_dim.double().cpu() * size
        kl_dim_sum = kl_b if kl_dim_sum is None else kl_dim_sum + kl_b
        if mask is None:
            sums["sq_err"] += float((x_hat - target).double().pow(2).sum())
            sums["elements"] += target.numel()
            sums["psnr"] += float(psnr_per_sample(x_hat, target).sum())
        else:
            err_m = (x_hat - target).double().abs() * _range_max(config) * mask
            sums["abs_m"] += float(err_m.sum())
            sums["sq_m"] += float(err_m.pow(2).sum())
            sums["valid"] += float(mask.sum())
        means.append(mu.double().cpu().numpy())
        if kept_count < keep_examples:
            room = keep_examples - kept_count
            kept_in.append(x[:room].cpu().numpy())
            kept_out.append(x_hat[:room].cpu().numpy())
            kept_count += len(kept_in[-1])
    if count == 0 or kl_dim_sum is None:
        raise DataError("no samples to evaluate (the split is empty or nothing could be decoded)")
    all_means = np.concatenate(means)  # (N, D)
    if count >= 2:
        active, variance = active_units(all_means, ACTIVE_THRESHOLD)
        variance_list = [float(v) for v in variance]
    else:
        active, variance_list = None, [0.0] * all_means.shape[1]
    result = EvalResult(
        samples=count,
        elbo=sums["elbo"] / count,
        recon_nll=sums["recon_nll"] / count,
        kl=sums["kl"] / count,
        kl_per_dim=[float(v) for v in kl_dim_sum / count],
        active_units=active,
        latent_variance=variance_list,
        latent_abs_max=float(np.abs(all_means).max()),
    )
    if config.modality == "image":
        result.mse = sums["sq_err"] / sums["elements"]
        result.psnr_db = sums["psnr"] / count
    elif sums["valid"] > 0:
        result.range_mae_m = sums["abs_m"] / sums["valid"]
        result.range_rmse_m = math.sqrt(sums["sq_m"] / sums["valid"])
    examples = None
    if keep_examples > 0:
        examples = Examples(np.concatenate(kept_in), np.concatenate(kept_out), all_means[:keep_examples])
    return result, examples


@torch.no_grad()
def latent_traversals(model: VAE, reference: np.ndarray, dims: list[int],
                      values: tuple[float, ...] = TRAVERSAL_VALUES, device: str = "cpu") -> np.ndarray:
    """Decode reference (D,) with dimension dims[k] set to values[s]: -> (K, S, C_out, ...) in [0, 1]."""
    model.eval()
    z = np.repeat(np.asarray(reference, dtype=np.float32)[None, None], len(dims), axis=0)
    z = np.repeat(z, len(values), axis=1)  # (K, S, D)
    for k, dim in enumerate(dims):
        z[k, :, dim] = values
    flat = torch.from_numpy(z.reshape(-1, z.shape[-1])).to(device)  # (K * S, D)
    out = model.decode(flat).cpu().numpy()  # (K * S, C_out, ...)
    return out.reshape(len(dims), len(values), *out.shape[1:])


def top_dims(variance: list[float], kl_per_dim: list[float], k: int) -> list[int]:
    """The k most active latent dimensions (by posterior-mean variance, then KL), most active first."""
    order = sorted(range(len(variance)), key=lambda i: (variance[i], kl_per_dim[i]), reverse=True)
    return order[:max(1, min(k, len(order)))]


def run_evaluation(model: VAE, model_dir: str | Path, source: DataSource, out_dir: str | Path,
                   batch_size: int = 64, split: str = "all", val_percent: float = 10.0,
                   limit: int | None = None, top_k: int = 4, examples: int = 8, seed: int = 0,
                   device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Evaluate a loaded model on a source; write metrics.json, reconstructions.png, traversals.png and
    kl_per_dim.png into out_dir; return what metrics.json holds."""
    from vae_ros.core import plots

    config = model.config
    source.check_modality(config)
    if batch_size < 1:
        raise DataError(f"batch size must be >= 1, got {batch_size}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output folder {out}: {err}") from err
    dataset = SplitDataset(source, config, split, val_percent, shuffle=False, cache_bytes=0)
    samples = iter(dataset)
    if limit is not None:
        samples = (s for _, s in zip(range(limit), samples, strict=False))
    batches: Iterable[np.ndarray] = batched(samples, batch_size)
    if progress:
        from tqdm import tqdm

        share = {"all": 100.0, "val": val_percent, "train": 100.0 - val_percent}[split] / 100.0
        total = round(len(source) * share)
        total = total if limit is None else min(limit, total)
        batches = tqdm(batches, total=math.ceil(total / batch_size), unit="batch", desc="eval",
                       dynamic_ncols=True)
    started = time.monotonic()
    result, kept = evaluate_batches(model, batches, device, seed, keep_examples=examples)
    elapsed = time.monotonic() - started
    dims = top_dims(result.latent_variance, result.kl_per_dim, top_k)
    files = {}
    if kept is not None:
        files["reconstructions"] = plots.save_reconstructions(kept.inputs, kept.reconstructions, config,
                                                              out / "reconstructions.png")
        decoded = latent_traversals(model, kept.means[0], dims, device=device)
        files["traversals"] = plots.save_traversals(decoded, dims, TRAVERSAL_VALUES, config,
                                                    out / "traversals.png")
    files["kl_per_dim"] = plots.save_kl_per_dim(result.kl_per_dim, out / "kl_per_dim.png",
                                                result.latent_variance, ACTIVE_THRESHOLD)
    report = {
        "model": str(model_dir),
        "modality": config.modality,
        "latent_dim": config.latent_dim,
        "source": source.describe(),
        "split": split,
        "val_percent": val_percent if split != "all" else None,
        "skipped": dataset.stats.skipped,
        "first_skip_reason": dataset.stats.first_error,
        "metrics": result.to_dict(),
        "traversal_dims": dims,
        "seconds": round(elapsed, 3),
        "files": {name: path.name for name, path in files.items()},
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_table(result: EvalResult | dict[str, Any]) -> str:
    """The metrics as an aligned two-column text table for the terminal."""
    data = result.to_dict() if isinstance(result, EvalResult) else result
    rows: list[tuple[str, str]] = [
        ("samples", f"{data['samples']}"),
        ("ELBO (nats/sample)", f"{data['elbo']:.3f}"),
        ("reconstruction NLL", f"{data['recon_nll']:.3f}"),
        ("KL (nats/sample)", f"{data['kl']:.3f}"),
    ]
    if data.get("mse") is not None:
        rows.append(("reconstruction MSE", f"{data['mse']:.6f}"))
        rows.append(("PSNR (dB)", f"{data['psnr_db']:.2f}"))
    if data.get("range_mae_m") is not None:
        rows.append(("range error MAE (m)", f"{data['range_mae_m']:.4f}"))
        rows.append(("range error RMSE (m)", f"{data['range_rmse_m']:.4f}"))
    kl = data["kl_per_dim"]
    active = data["active_units"]
    rows.append(("active units", f"{active if active is not None else 'n/a'} of {len(kl)}"))
    rows.append(("KL per dimension", " ".join(f"{v:.2f}" for v in kl)))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
