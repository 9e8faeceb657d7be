"""The batch-1 encoder replayed from a CUDA graph (vae_ros.core.cuda_graph): on a CPU nothing changes and `on` is
refused in one line; on a GPU (marked gpu) the replayed latents are eager's, input after input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vae_ros.core.backends import TorchBackend, create_backend
from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.cuda_graph import apply_cuda_graph, cuda_graph_target
from vae_ros.core.errors import ConfigError
from vae_ros.core.model_dir import save_model_dir
from vae_ros.core.models import build_model


def _model(tmp_path: Path) -> Path:
    config = ModelConfig("image", arch=ArchSpec(latent_dim=8, channels=[8, 16, 32]),
                         image=ImageSpec(height=64, width=64, channels=3))
    torch.manual_seed(0)
    return save_model_dir(tmp_path / "model", config, build_model(config))


def test_off_the_gpu_nothing_is_graphed_and_on_is_refused(tmp_path: Path) -> None:
    backend = create_backend(_model(tmp_path), "torch", "cpu")
    assert cuda_graph_target("auto", backend) is False and cuda_graph_target("off", backend) is False
    assert apply_cuda_graph("auto", backend) == "" and backend.graphed is None  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="cuda_graph 'on' needs backend torch on device cuda"):
        cuda_graph_target("on", backend)
    with pytest.raises(ConfigError, match="cuda_graph must be one of auto, on, off"):
        cuda_graph_target("yes", backend)
    onnx_like = type("OnnxBackend", (), {"name": "onnxruntime"})()
    assert cuda_graph_target("auto", onnx_like) is False


@pytest.mark.gpu
def test_replayed_latents_are_eagers_input_after_input(tmp_path: Path) -> None:
    backend = create_backend(_model(tmp_path), "torch", "cuda")
    assert isinstance(backend, TorchBackend)
    line = apply_cuda_graph("on", backend, runs=5)
    assert backend.graphed is not None and "replaying the graph" in line, line
    eager = TorchBackend(backend.model_dir, "cuda")
    rng = np.random.default_rng(0)
    for _ in range(3):  # each replay must see its own input, not the one captured
        x = rng.random((1, 3, 64, 64), dtype=np.float32)
        got, ref = backend.encode(x), eager.encode(x)
        np.testing.assert_allclose(got[0], ref[0], atol=1e-5)
        np.testing.assert_allclose(got[1], ref[1], atol=1e-5)
        on_device = backend.encode_tensor(torch.from_numpy(x).to(backend.device))
        np.testing.assert_allclose(on_device[0], ref[0], atol=1e-5)
    batch = rng.random((2, 3, 64, 64), dtype=np.float32)  # batch 2: eager, as before
    np.testing.assert_allclose(backend.encode(batch)[0], eager.encode(batch)[0], atol=1e-5)
    auto = create_backend(backend.model_dir, "torch", "cuda")
    assert "ms eager" in apply_cuda_graph("auto", auto, runs=5)  # measured, whichever it kept
