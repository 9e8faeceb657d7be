"""encoder_node and decoder_node: one model on one runtime (load, warm up, diagnostics values).
"""

from __future__ import annotations

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


def load_inference_model(node: Any, params: InferenceParams, threads: int | None = None) -> InferenceModel:
    """The model the parameters name (the packaged default for the modality when `model` is empty), checked
    against `modality`, on the runtime asked for; a fallback runtime is said once in the log."""
    from vae_ros.core.backends import create_backend, load_config
    from vae_ros.core.model_dir import resolve_model_dir

    model_dir = resolve_model_dir(params.model, params.modality or "image")
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


def warm_up_model(node: Any, model: InferenceModel, run: Callable[[np.ndarray], Any], shape: tuple[int, ...],
                  count: int) -> None:
    """`count` runs on a blank (1, *shape) input before the first message (engine builds, CUDA start)."""
    from vae_ros.core.accel import warm_up, warm_up_summary

    model.warm_up = warm_up_summary(warm_up(run, shape, count))
    if model.warm_up:
        node.get_logger().info(model.warm_up)
