"""PNG writers for training curves, reconstructions, latent traversals and KL per dimension.

matplotlib is imported inside each writer and drawn with `matplotlib.figure.Figure` + FigureCanvasAgg, never
pyplot, so no global backend is selected and nothing happens at import time (works headless, in threads,
and leaves a user's interactive backend alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.config import ModelConfig

_DPI = 100


def _figure(width_in: float, height_in: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def save_training_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Train / validation ELBO, reconstruction NLL and KL (nats per sample) against the epoch."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(12, 3.6)
    axes = fig.subplots(1, 3)
    epochs = [h["epoch"] for h in history]
    for ax, key, title in zip(axes, ("elbo", "recon_nll", "kl"),
                              ("ELBO (higher is better)", "reconstruction NLL", "KL"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [h.get(f"{split}_{key}") for h in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [math.nan if v is None else v for v in values], style, label=split,
                        markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("nats per sample")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def save_fused_training_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Fused training (vae_ros.control.training.fused): the camera expert's fit to the scan posterior (NLL),
    its held-out latent error against a blind expert, and the image PSNR from each sensor subset, per epoch."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(12, 3.6)
    axes = fig.subplots(1, 3)
    epochs = [h["epoch"] for h in history]
    panels = (
        ("match NLL (nats per sample)", (("train_match_nll", "train", "-o"), ("val_match_nll", "val", "-s"))),
        ("held-out latent error, camera alone", (("val_latent_error", "camera expert", "-o"),
                                                 ("val_blind_latent_error", "blind (mean latent)", "--"))),
        ("held-out image PSNR (dB)", (("val_psnr_scan_db", "from scan", "-o"), ("val_psnr_camera_db", "from camera", "-s"),
                                      ("val_psnr_both_db", "from both", "-^"))),
    )
    for ax, (title, lines) in zip(axes, panels, strict=True):
        for key, label, style in lines:
            ax.plot(epochs, [h.get(key, math.nan) for h in history], style, label=label, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def _to_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) in [0, 1] -> what imshow wants: (H, W, 3) RGB or (H, W) with a grey colormap."""
    image = np.clip(image, 0.0, 1.0)
    if image.shape[0] == 3:
        return image.transpose(1, 2, 0), None
    return image[0], "gray"


def _show_image(ax: Any, image: np.ndarray) -> None:
    """A (C, H, W) image in [0, 1] in its cell: RGB or grey, pixels unsmoothed, no ticks."""
    shown, cmap = _to_display(image)
    ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _scan_angles_deg(config: ModelConfig) -> np.ndarray:
    spec = config.scan_spec
    width = (spec.angle_max - spec.angle_min) / spec.beams
    return np.degrees(spec.angle_min + (np.arange(spec.beams) + 0.5) * width)


def _range_image(sample: np.ndarray, range_max: float, masked: bool) -> np.ndarray:
    """(2, rows, cols) input or (1, rows, cols) output -> (rows, cols) metres, NaN where invalid."""
    ranges = sample[0] * range_max
    if masked and sample.shape[0] > 1:
        ranges = np.where(sample[1] > 0.5, ranges, np.nan)
    return ranges


def save_reconstructions(inputs: np.ndarray, outputs: np.ndarray, config: ModelConfig,
                         path: str | Path) -> Path:
    """Inputs (K, C, ...) beside their reconstructions (K, C_out, ...), as the modality is best seen:
    an image grid (top row input, bottom row output), range vs angle for scans, range images for clouds."""
    count = len(inputs)
    if config.modality == "image":
        fig = _figure(1.6 * count + 0.6, 3.6)
        axes = np.array(fig.subplots(2, count, squeeze=False))
        for k in range(count):
            for row, (batch, name) in enumerate(((inputs, "input"), (outputs, "reconstruction"))):
                ax = axes[row, k]
                _show_image(ax, batch[k])
                if k == 0:
                    ax.set_ylabel(name)
    elif config.modality == "scan":
        range_max = config.scan_spec.range_max
        angles = _scan_angles_deg(config)
        fig = _figure(10, 2.2 * count + 0.4)
        axes = np.array(fig.subplots(count, 1, squeeze=False))[:, 0]
        for k, ax in enumerate(axes):
            valid = inputs[k, 1] > 0.5
            ax.plot(angles[valid], inputs[k, 0, valid] * range_max, ".", markersize=2, label="input (valid)")
            ax.plot(angles, outputs[k, 0] * range_max, "-", linewidth=1, label="reconstruction")
            ax.set_ylabel("range (m)")
            ax.set_xlim(angles[0], angles[-1])
            ax.grid(alpha=0.3)
        axes[0].legend(loc="upper right", fontsize=8)
        axes[-1].set_xlabel("beam angle (deg)")
    else:
        range_max = config.pointcloud_spec.range_max
        rows, cols = config.pointcloud_spec.rows, config.pointcloud_spec.cols
        fig = _figure(10, count * 2 * max(0.9, 10 * rows / cols) + 0.8)
        axes = np.array(fig.subplots(2 * count, 1, squeeze=False))[:, 0]
        image = None
        for k in range(count):
            for j, (sample, name, masked) in enumerate(((inputs[k], "input", True),
                                                        (outputs[k], "recon", False))):
                ax = axes[2 * k + j]
                image = ax.imshow(_range_image(sample, range_max, masked), aspect="auto", vmin=0.0,
                                  vmax=range_max, cmap="viridis", interpolation="nearest")
                ax.set_ylabel(f"{name} {k}", fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
        if image is not None:
            fig.colorbar(image, ax=list(axes), label="range (m)")
    fig.suptitle("inputs and reconstructions")
    return _save(fig, path)


def save_traversals(decoded: np.ndarray, dims: Sequence[int], values: Sequence[float], config: ModelConfig,
                    path: str | Path) -> Path:
    """Latent traversals: decoded (K, S, C_out, ...) = dim dims[k] set to values[s], the rest fixed.

    Images: a K x S grid. Scans: one panel per dimension with S range curves. Clouds: K x S range images.
    """
    count, steps = decoded.shape[:2]
    if config.modality == "scan":
        range_max = config.scan_spec.range_max
        angles = _scan_angles_deg(config)
        fig = _figure(10, 2.2 * count + 0.4)
        axes = np.array(fig.subplots(count, 1, squeeze=False))[:, 0]
        from matplotlib import colormaps

        cmap = colormaps["coolwarm"]
        for k, ax in enumerate(axes):
            for s in range(steps):
                ax.plot(angles, decoded[k, s, 0] * range_max, color=cmap(s / max(1, steps - 1)),
                        linewidth=1, label=f"{values[s]:+.1f}")
            ax.set_ylabel(f"z[{dims[k]}]: range (m)", fontsize=8)
            ax.set_xlim(angles[0], angles[-1])
            ax.grid(alpha=0.3)
        axes[0].legend(loc="upper right", fontsize=7, ncol=steps)
        axes[-1].set_xlabel("beam angle (deg)")
    else:
        aspect: str | float = "auto" if config.modality == "pointcloud" else "equal"
        cell_h = 0.6 if config.modality == "pointcloud" else 1.3
        cell_w = 2.4 if config.modality == "pointcloud" else 1.3
        fig = _figure(cell_w * steps + 0.8, cell_h * count + 0.8)
        axes = np.array(fig.subplots(count, steps, squeeze=False))
        for k in range(count):
            for s in range(steps):
                ax = axes[k, s]
                if config.modality == "image":
                    _show_image(ax, decoded[k, s])
                else:
                    range_max = config.pointcloud_spec.range_max
                    ax.imshow(decoded[k, s, 0] * range_max, aspect=aspect, vmin=0.0, vmax=range_max,
                              cmap="viridis", interpolation="nearest")
                    ax.set_xticks([])
                    ax.set_yticks([])
                if s == 0:
                    ax.set_ylabel(f"z[{dims[k]}]", fontsize=8)
                if k == count - 1:
                    ax.set_xlabel(f"{values[s]:+.1f}", fontsize=8)
    fig.suptitle("latent traversals (rows: latent dimension, columns: its value)")
    return _save(fig, path)


def save_kl_per_dim(kl_per_dim: Sequence[float], path: str | Path,
                    variance: Sequence[float] | None = None, threshold: float = 0.01) -> Path:
    """Bar chart of the KL of each latent dimension; active units (variance > threshold) in colour."""
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    dims = np.arange(kl.size)
    active = (np.asarray(variance) > threshold) if variance is not None else np.ones(kl.size, dtype=bool)
    fig = _figure(max(5.0, 0.35 * kl.size + 1.5), 3.2)
    ax = fig.subplots()
    ax.bar(dims[active], kl[active], color="tab:blue", label="active")
    if (~active).any():
        ax.bar(dims[~active], kl[~active], color="tab:gray", label="inactive")
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats)")
    ax.set_xticks(dims)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"KL per dimension ({int(active.sum())} of {kl.size} active)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def save_fused_demo(images: np.ndarray, truth_m: np.ndarray, angles_rad: np.ndarray, from_camera_m: np.ndarray,
                    from_both_m: np.ndarray, image_from_scan: np.ndarray, half_fov_rad: float, path: str | Path
                    ) -> Path:
    """A fused camera + LiDAR model's cross-modal completion, one row per view: the camera image, the image
    drawn from the LiDAR alone, and a top-down view of the true scan beside the scan predicted from the camera
    alone and from both sensors (the camera's field of view shaded). images / image_from_scan (K, C, H, W) in
    [0, 1]; truth_m (K, beams) metres, NaN where no return; from_camera_m / from_both_m (K, beams) metres."""
    from matplotlib.patches import Wedge

    count = len(images)
    fig = _figure(9.0, 3.0 * count + 0.4)
    axes = np.array(fig.subplots(count, 3, squeeze=False, width_ratios=(1, 1, 1.3)))
    cos, sin = np.cos(angles_rad), np.sin(angles_rad)
    for k in range(count):
        for col, (batch, title) in enumerate(((images, "camera image"), (image_from_scan, "image from the LiDAR alone"))):
            ax = axes[k, col]
            _show_image(ax, batch[k])
            if k == 0:
                ax.set_title(title, fontsize=9)
        ax = axes[k, 2]
        reach = float(np.nanmax(np.concatenate([truth_m[k], from_camera_m[k], from_both_m[k]])))
        ax.add_patch(Wedge((0.0, 0.0), reach, -math.degrees(half_fov_rad), math.degrees(half_fov_rad),
                           color="tab:orange", alpha=0.12, label="camera's view"))
        ax.plot(truth_m[k] * cos, truth_m[k] * sin, ".", color="black", markersize=2.5, label="true scan")
        ax.plot(from_camera_m[k] * cos, from_camera_m[k] * sin, "-", color="tab:orange", linewidth=1.2,
                label="from the camera alone")
        ax.plot(from_both_m[k] * cos, from_both_m[k] * sin, "-", color="tab:blue", linewidth=0.8, alpha=0.7,
                label="from both sensors")
        ax.plot([0.0], [0.0], "^", color="tab:red", markersize=6)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_xlabel("x forward (m)", fontsize=8)
        ax.set_ylabel("y left (m)", fontsize=8)
        ax.tick_params(labelsize=7)
        if k == 0:
            ax.set_title("LaserScan, top down (robot at the origin)", fontsize=9)
            ax.legend(loc="lower left", fontsize=7)
    fig.suptitle("fused camera + LiDAR model: each sensor predicted from the other (held-out views)")
    return _save(fig, path)
