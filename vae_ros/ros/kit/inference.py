"""encoder_node and decoder_node: one model on one runtime (load, warm up, diagnostics values); a fused camera +
LiDAR model (vae_ros.core.fused): one runtime per sensor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_ros.core.config import ModelConfig
from vae_ros.core.errors import ConfigError
from vae_ros.ros.kit.params import InferenceParams

if TYPE_CHECKING:
    from vae_ros.core.backends import InferenceBackend
    from vae_ros.core.fused import FusedModel


# -- encoder_node and decoder_node: one model on one runtime ---------------------------------------------------
@dataclass
class InferenceModel:
    """A VAE loaded for a node: directory, config, backend and what its warm-up did."""

    model_dir: Path
    config: ModelConfig
    backend: InferenceBackend
    warm_up: str = ""

    def diagnostic_values(self, *node_values: tuple[str, str]) -> list[tuple[str, str]]:
        """The /diagnostics pairs every inference node reports, with the node's own in the middle."""
        return [
            ("backend", self.backend.name),
            ("modality", self.config.modality),
            ("latent_dim", str(self.config.latent_dim)),
            *node_values,
            *([("fallback", self.backend.fallback)] if self.backend.fallback else []),
            *([("warm_up", self.warm_up)] if self.warm_up else []),
        ]


def resolve_inference_dir(params: InferenceParams) -> tuple[Path, bool]:
    """The model directory the parameters name (the packaged default for the modality when `model` is empty) and
    whether it is a fused model. A fused model serves modality `fused` or empty only: ConfigError, one line, for
    another (its camera or scan alone is its sub-directory, a model of its own)."""
    from vae_ros.core.fused import FUSED_MODALITY, is_fused_model
    from vae_ros.core.model_dir import resolve_model_dir

    model_dir = resolve_model_dir(params.model, params.modality or "image")
    fused = is_fused_model(model_dir)
    if fused and params.modality not in ("", FUSED_MODALITY):
        raise ConfigError(
            f"modality {params.modality!r} does not match the model's {FUSED_MODALITY!r} ({model_dir}); set modality "
            f"to {FUSED_MODALITY!r} (or leave it empty), or pass one sensor's model directory (e.g. "
            f"{model_dir / 'camera'}) to encode that sensor alone"
        )
    return model_dir, fused


def load_inference_model(node: Any, params: InferenceParams, threads: int | None = None) -> InferenceModel:
    """The model the parameters name (the packaged default for the modality when `model` is empty), checked
    against `modality`, on the runtime asked for; a fallback runtime is said once in the log."""
    from vae_ros.core.backends import create_backend, load_config

    model_dir, _ = resolve_inference_dir(params)
    config = load_config(model_dir)
    if params.modality and params.modality != config.modality:
        raise ConfigError(
            f"modality {params.modality!r} does not match the model's {config.modality!r} "
            f"({model_dir}); set modality to {config.modality!r} or pass another model"
        )
    backend = create_backend(model_dir, params.backend, params.device, threads=threads,
                             engine_cache=params.engine_cache or None)
    if backend.auto_choice:  # backend auto: what it chose and why, said once; /diagnostics repeats a fallback
        node.get_logger().info(backend.auto_choice)
    elif backend.fallback:  # said once, here; /diagnostics repeats it
        node.get_logger().warning(backend.fallback)
    return InferenceModel(model_dir, config, backend)


@dataclass
class FusedInference:
    """A fused model loaded for a node: one runtime per sensor (vae_ros.core.fused.FusedModel)."""

    model_dir: Path
    model: FusedModel
    warm_up: str = ""

    def diagnostic_values(self, *node_values: tuple[str, str]) -> list[tuple[str, str]]:
        """The pairs of InferenceModel.diagnostic_values; backend names each sensor's runtime."""
        backends = self.model.backends
        fallbacks = [f"{s}: {b.fallback}" for s, b in backends.items() if b.fallback]
        return [
            ("backend", ", ".join(f"{s}: {b.name}" for s, b in backends.items())),
            ("modality", "fused"),
            ("latent_dim", str(self.model.latent_dim)),
            *node_values,
            *([("fallback", "; ".join(fallbacks))] if fallbacks else []),
            *([("warm_up", self.warm_up)] if self.warm_up else []),
        ]


def load_fused_inference(node: Any, params: InferenceParams, model_dir: Path, threads: int | None = None,
                         warm: Callable[[FusedModel, str, np.ndarray], Any] | None = None) -> FusedInference:
    """A fused model directory on the runtime asked for, each sensor's fallback said once; `warm(model, sensor, x)`
    runs `params.warmup` times per sensor on a blank input before the first message."""
    from vae_ros.core.accel import warm_up, warm_up_summary
    from vae_ros.core.fused import FusedModel

    model = FusedModel(model_dir, params.backend, params.device, threads=threads)
    for sensor, backend in model.backends.items():
        if backend.fallback:
            node.get_logger().warning(f"{sensor}: {backend.fallback}")
    loaded = FusedInference(model_dir, model)
    if warm is not None and params.warmup:
        summaries = []
        for sensor in model.sensors:
            run = functools.partial(warm, model, sensor)
            summaries.append(f"{sensor}: {warm_up_summary(warm_up(run, model.configs[sensor].input_shape, params.warmup))}")
        loaded.warm_up = "; ".join(summaries)
        node.get_logger().info(loaded.warm_up)
    return loaded


def warm_up_model(node: Any, model: InferenceModel, run: Callable[[np.ndarray], Any], shape: tuple[int, ...],
                  count: int) -> None:
    """`count` runs on a blank (1, *shape) input before the first message (engine builds, CUDA start)."""
    from vae_ros.core.accel import warm_up, warm_up_summary

    model.warm_up = warm_up_summary(warm_up(run, shape, count))
    if model.warm_up:
        node.get_logger().info(model.warm_up)
